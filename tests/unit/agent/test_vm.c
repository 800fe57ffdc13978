/* forge-agent as a VM's init: what the kernel command line and the host's HELLO tell it
 * (vm-init.c, vm-sync.c). The machine is faked: these tests run on a real host, whose
 * clock and hostname must not change. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/vm.h"
#include "proto/proto.h"

#define SEC 1000000000LL

/* The fake machine: its state and what was done to it. */
static struct {
        int64_t clock_ns;
        char hostname[PROTO_HOSTNAME_MAX + 1];
        int64_t pids_max;
        int clock_sets, hostname_sets, pids_sets;
        int fail; /* -errno every setter returns, or 0 */
} m;

static int fake_clock_get(int64_t *ret_ns) {
        *ret_ns = m.clock_ns;
        return 0;
}

static int fake_clock_set(int64_t ns) {
        if (m.fail)
                return m.fail;
        m.clock_ns = ns;
        m.clock_sets++;
        return 0;
}

static int fake_hostname_get(char *ret, size_t size) {
        snprintf(ret, size, "%s", m.hostname);
        return 0;
}

static int fake_hostname_set(const char *name) {
        if (m.fail)
                return m.fail;
        snprintf(m.hostname, sizeof(m.hostname), "%s", name);
        m.hostname_sets++;
        return 0;
}

static int fake_pids_max_get(int64_t *ret) {
        *ret = m.pids_max;
        return 0;
}

static int fake_pids_max_set(int64_t max) {
        if (m.fail)
                return m.fail;
        m.pids_max = max;
        m.pids_sets++;
        return 0;
}

static const VmSyncOps fake_ops = {
        .clock_get = fake_clock_get,
        .clock_set = fake_clock_set,
        .hostname_get = fake_hostname_get,
        .hostname_set = fake_hostname_set,
        .pids_max_get = fake_pids_max_get,
        .pids_max_set = fake_pids_max_set,
};

static int setup(void **state) {
        memset(&m, 0, sizeof(m));
        m.clock_ns = 1000 * SEC;
        snprintf(m.hostname, sizeof(m.hostname), "source");
        return 0;
}

static ProtoHello hello_none(void) {
        return (ProtoHello){.version = PROTO_VERSION, .time_ns = -1, .pids_max = -1};
}

/* A restored VM's clock is the saved one: set from the host's when off by more than the
 * slack, in either direction; left alone within it. */
static void test_sync_clock(void **state) {
        ProtoHello h = hello_none();

        h.time_ns = m.clock_ns + 3600 * SEC;
        assert_int_equal(vm_sync(&fake_ops, &h), VM_SYNC_CLOCK);
        assert_int_equal(m.clock_ns, h.time_ns);

        h.time_ns = m.clock_ns - 2 * VM_CLOCK_SLACK_NS; /* a guest ahead of the host */
        assert_int_equal(vm_sync(&fake_ops, &h), VM_SYNC_CLOCK);
        assert_int_equal(m.clock_ns, h.time_ns);

        int64_t before = m.clock_ns;
        h.time_ns = m.clock_ns + VM_CLOCK_SLACK_NS; /* within the slack */
        assert_int_equal(vm_sync(&fake_ops, &h), 0);
        h.time_ns = before - VM_CLOCK_SLACK_NS + 1;
        assert_int_equal(vm_sync(&fake_ops, &h), 0);
        assert_int_equal(m.clock_ns, before);
        assert_int_equal(m.clock_sets, 2);
}

static void test_sync_hostname_and_pids(void **state) {
        ProtoHello h = hello_none();

        snprintf(h.hostname, sizeof(h.hostname), "fork-1");
        h.pids_max = 64;
        assert_int_equal(vm_sync(&fake_ops, &h), VM_SYNC_HOSTNAME | VM_SYNC_PIDS);
        assert_string_equal(m.hostname, "fork-1");
        assert_int_equal(m.pids_max, 64);
        /* the same again changes nothing */
        assert_int_equal(vm_sync(&fake_ops, &h), 0);
        assert_int_equal(m.hostname_sets, 1);
        assert_int_equal(m.pids_sets, 1);
        /* 0 lifts the limit */
        h.pids_max = 0;
        assert_int_equal(vm_sync(&fake_ops, &h), VM_SYNC_PIDS);
        assert_int_equal(m.pids_max, 0);
}

/* An older host's HELLO (or forged's own client's) carries none of it: nothing changes. */
static void test_sync_absent_fields(void **state) {
        ProtoHello h = hello_none();

        assert_int_equal(vm_sync(&fake_ops, &h), 0);
        assert_int_equal(m.clock_sets + m.hostname_sets + m.pids_sets, 0);
        assert_string_equal(m.hostname, "source");
}

/* A setter that fails is logged and the rest still happens; nothing counts as changed. */
static void test_sync_failures(void **state) {
        ProtoHello h = hello_none();

        h.time_ns = m.clock_ns + 10 * SEC;
        snprintf(h.hostname, sizeof(h.hostname), "other");
        h.pids_max = 10;
        m.fail = -EPERM;
        assert_int_equal(vm_sync(&fake_ops, &h), 0);
        assert_string_equal(m.hostname, "source");
}

/* The agent hands a HELLO's fields to vm_sync only when it has sync ops (a VM's init);
 * without, as in an ns sandbox, the machine is never touched. */
static void test_hello_frame_reaches_sync_only_in_a_vm(void **state) {
        Agent a = {.listen_fd = -1, .sig_fd = -1, .cgroup_procs_fd = -1};
        ProtoBuf b = {};
        ProtoHeader hdr;

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        proto_buf_put_int(&b, PROTO_TAG_TIME_NS, m.clock_ns + 60 * SEC);
        proto_buf_put_str(&b, PROTO_TAG_HOSTNAME, "restored");
        proto_buf_put_int(&b, PROTO_TAG_PIDS_MAX, 32);
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(proto_header_decode(b.data, &hdr), 0);

        assert_int_equal(agent_on_frame(&a, &hdr, b.data + PROTO_HEADER_SIZE), 0);
        assert_int_equal(m.clock_sets + m.hostname_sets + m.pids_sets, 0);

        a.sync_ops = &fake_ops;
        assert_int_equal(agent_on_frame(&a, &hdr, b.data + PROTO_HEADER_SIZE), 0);
        assert_int_equal(m.clock_sets, 1);
        assert_string_equal(m.hostname, "restored");
        assert_int_equal(m.pids_max, 32);
        proto_buf_free(&b);
}

/* CLOCK_SET after a resume: the clock is set in a VM; an agent that is no VM's init
 * answers yes and touches nothing. */
static void test_clock_set_op(void **state) {
        Agent a = {.listen_fd = -1, .sig_fd = -1, .cgroup_procs_fd = -1};
        ProtoRequest req = {.op = PROTO_OP_CLOCK_SET, .time_ns = m.clock_ns + 30 * SEC};
        char msg[64] = "";

        assert_int_equal(agent_op_clock_set(&a, &req, NULL, msg, sizeof(msg)), 0);
        assert_int_equal(m.clock_sets, 0);
        a.sync_ops = &fake_ops;
        assert_int_equal(agent_op_clock_set(&a, &req, NULL, msg, sizeof(msg)), 0);
        assert_int_equal(m.clock_sets, 1);
        assert_int_equal(m.clock_ns, req.time_ns);
        assert_int_equal(m.hostname_sets + m.pids_sets, 0);
        req.time_ns = -1;
        assert_int_equal(agent_op_clock_set(&a, &req, NULL, msg, sizeof(msg)), -EINVAL);
}

static void test_cmdline(void **state) {
        char line[] = "console=ttyS0 panic=-1 quiet forge.hostname=abc123 forge.binds=/usr,/opt/x "
                      "forge.pids=64 tsc=reliable\n";
        VmConfig c = {};

        assert_int_equal(vm_cmdline_parse(line, &c), 0);
        assert_string_equal(c.hostname, "abc123");
        assert_int_equal(c.n_binds, 2);
        assert_string_equal(c.binds[0], "/usr");
        assert_string_equal(c.binds[1], "/opt/x");
        assert_int_equal(c.pids_max, 64);

        char none[] = "console=ttyS0 forge.hostname=x";
        c = (VmConfig){};
        assert_int_equal(vm_cmdline_parse(none, &c), 0);
        assert_int_equal(c.pids_max, 0); /* no limit */

        static const char *const bad[] = {"forge.pids=-1", "forge.pids=", "forge.pids=12x",
                                          "forge.binds=usr"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char buf[64];
                snprintf(buf, sizeof(buf), "%s", bad[i]);
                c = (VmConfig){};
                assert_int_equal(vm_cmdline_parse(buf, &c), -EINVAL);
        }
}

static void test_pids_max_text(void **state) {
        char buf[32];
        int64_t v;

        vm_pids_max_format(64, buf, sizeof(buf));
        assert_string_equal(buf, "64");
        vm_pids_max_format(0, buf, sizeof(buf));
        assert_string_equal(buf, "max");
        assert_int_equal(vm_pids_max_parse("max\n", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(vm_pids_max_parse("128\n", &v), 0);
        assert_int_equal(v, 128);
        assert_int_equal(vm_pids_max_parse("maxi", &v), -EINVAL);
        assert_int_equal(vm_pids_max_parse("", &v), -EINVAL);
        assert_int_equal(vm_pids_max_parse("0", &v), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_sync_clock, setup),
                cmocka_unit_test_setup(test_sync_hostname_and_pids, setup),
                cmocka_unit_test_setup(test_sync_absent_fields, setup),
                cmocka_unit_test_setup(test_sync_failures, setup),
                cmocka_unit_test_setup(test_hello_frame_reaches_sync_only_in_a_vm, setup),
                cmocka_unit_test_setup(test_clock_set_op, setup),
                cmocka_unit_test(test_cmdline),
                cmocka_unit_test(test_pids_max_text),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
