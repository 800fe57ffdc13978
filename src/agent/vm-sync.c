/* A VM's machine made to match what its host says (docs/isolator-qemu.md, "What the
 * host's HELLO sets"). A VM restored from a snapshot goes on with the clock, hostname
 * and limits of the moment and the sandbox it was saved from; the qemu isolator's HELLO
 * after every boot and restore carries the host's wall clock, the sandbox's hostname and
 * its pids limit, and the agent, as the VM's init, makes them true. An ns sandbox's
 * agent never gets here: its host sets all three from outside. */
#include "agent/vm.h"
#include "basic/fs-util.h"
#include "basic/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int real_clock_get(int64_t *ret_ns) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        *ret_ns = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
        return 0;
}

static int real_clock_set(int64_t ns) {
        struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

        return clock_settime(CLOCK_REALTIME, &ts) < 0 ? -errno : 0;
}

static int real_hostname_get(char *ret, size_t size) {
        return gethostname(ret, size) < 0 ? -errno : 0;
}

static int real_hostname_set(const char *name) {
        return sethostname(name, strlen(name)) < 0 ? -errno : 0;
}

static int real_pids_max_get(int64_t *ret) {
        char buf[32];
        int r = read_full_file(VM_CGROUP_DIR "/pids.max", buf, sizeof(buf), NULL);

        if (r < 0)
                return r;
        return vm_pids_max_parse(buf, ret);
}

static int real_pids_max_set(int64_t max) {
        char buf[32];

        vm_pids_max_format(max, buf, sizeof(buf));
        return write_string_file(VM_CGROUP_DIR "/pids.max", buf);
}

const VmSyncOps vm_sync_real_ops = {
        .clock_get = real_clock_get,
        .clock_set = real_clock_set,
        .hostname_get = real_hostname_get,
        .hostname_set = real_hostname_set,
        .pids_max_get = real_pids_max_get,
        .pids_max_set = real_pids_max_set,
};

void vm_pids_max_format(int64_t max, char *buf, size_t size) {
        if (max > 0)
                snprintf(buf, size, "%" PRId64, max);
        else
                snprintf(buf, size, "max");
}

int vm_pids_max_parse(const char *s, int64_t *ret) {
        char *end;
        long long v;

        if (strncmp(s, "max", 3) == 0 && (s[3] == 0 || s[3] == '\n')) {
                *ret = 0;
                return 0;
        }
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || end == s || (*end && *end != '\n') || v <= 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* The guest's clock goes on from where a restored machine was saved: set it when it is
 * off by more than the slack. What runs in the guest sees the clock jump; the agent's
 * own timers and the guest kernel's sleeps and timeouts run on CLOCK_MONOTONIC and do
 * not. */
static int sync_clock(const VmSyncOps *ops, int64_t host_ns) {
        int64_t guest_ns, off_ns;
        int r = ops->clock_get(&guest_ns);

        if (r < 0)
                return r;
        off_ns = host_ns - guest_ns;
        if (llabs(off_ns) <= VM_CLOCK_SLACK_NS)
                return 0;
        r = ops->clock_set(host_ns);
        if (r < 0)
                return r;
        log_info("wall clock set from the host's: %+" PRId64 " ms", off_ns / 1000000);
        return 1;
}

static int sync_hostname(const VmSyncOps *ops, const char *name) {
        char now[PROTO_HOSTNAME_MAX + 2] = "";
        int r = ops->hostname_get(now, sizeof(now));

        if (r >= 0 && strcmp(now, name) == 0)
                return 0;
        r = ops->hostname_set(name);
        if (r < 0)
                return r;
        log_info("hostname set to %s (was %s)", name, now);
        return 1;
}

static int sync_pids_max(const VmSyncOps *ops, int64_t max) {
        char was[32] = "unknown", want[32];
        int64_t now = -1;
        int r = ops->pids_max_get(&now);

        if (r >= 0 && now == max)
                return 0;
        if (r >= 0)
                vm_pids_max_format(now, was, sizeof(was));
        r = ops->pids_max_set(max);
        if (r < 0)
                return r;
        vm_pids_max_format(max, want, sizeof(want));
        log_info("pids.max of the sandbox's commands set to %s (was %s)", want, was);
        return 1;
}

int agent_op_clock_set(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        ProtoHello h = {.time_ns = req->time_ns, .pids_max = -1};

        if (req->time_ns < 0)
                return -EINVAL;
        if (a->sync_ops)
                vm_sync(a->sync_ops, &h);
        return 0;
}

unsigned vm_sync(const VmSyncOps *ops, const ProtoHello *h) {
        unsigned changed = 0;
        int r;

        if (h->time_ns >= 0) {
                r = sync_clock(ops, h->time_ns);
                if (r < 0)
                        log_warn_errno(r, "cannot set the wall clock from the host's");
                changed |= r > 0 ? VM_SYNC_CLOCK : 0;
        }
        if (h->hostname[0]) {
                r = sync_hostname(ops, h->hostname);
                if (r < 0)
                        log_warn_errno(r, "cannot set the hostname to %s", h->hostname);
                changed |= r > 0 ? VM_SYNC_HOSTNAME : 0;
        }
        if (h->pids_max >= 0) {
                r = sync_pids_max(ops, h->pids_max);
                if (r < 0)
                        log_warn_errno(r, "cannot set the sandbox's process limit");
                changed |= r > 0 ? VM_SYNC_PIDS : 0;
        }
        return changed;
}
