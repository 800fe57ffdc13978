/* The ns isolator: Linux namespaces, an overlay root and cgroups (DESIGN.md section 5).
 * This file is the ops table and the short orchestrators; the clone child lives in
 * ns-child.c, its parent side in ns-spawn.c; cgroups are ../cgroup*.c (shared with qemu). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macros.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/isolator.h"
#include "daemon/isolator/cgroup.h"
#include "daemon/isolator/ns/ns-internal.h"

#define INIT_EXIT_TIMEOUT_MS 5000

/* Makes dirfd/name owned by the sandbox's root, through name.tmp and a rename, so it is
 * either complete or absent. Once it exists it belongs to the sandbox: never touched again
 * from here. A leftover name.tmp was never mounted, so it is empty. */
static int dir_make_owned(int dirfd, const char *name, mode_t mode, uid_t uid) {
        char tmp[32];

        if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) >= 0)
                return 0;
        snprintf(tmp, sizeof(tmp), "%s.tmp", name);
        unlinkat(dirfd, tmp, AT_REMOVEDIR);
        if (mkdirat(dirfd, tmp, 0700) < 0)
                return -errno;
        if (fchownat(dirfd, tmp, uid, (gid_t) uid, AT_SYMLINK_NOFOLLOW) < 0 || fchmodat(dirfd, tmp, mode, 0) < 0 ||
            renameat(dirfd, tmp, dirfd, name) < 0)
                return -errno;
        return 0;
}

/* upper/ and work/ here, or on the sandbox's own disk when it has a quota. The image is
 * idmapped (ns-idmap.c), so the sandbox's root owns its files and overlay copies them up
 * on write: upper/ starts empty. */
static int layers_make(const SandboxPlan *plan, int dirfd, ForgeError *err) {
        int r = 0;

        if (!ns_disk_is_wanted(plan)) {
                r = dir_make_owned(dirfd, "upper", 0755, plan->uid_base);
                if (r >= 0)
                        r = dir_make_owned(dirfd, "work", 0700, plan->uid_base);
        }
        if (r >= 0 && mkdirat(dirfd, "root", 0755) < 0 && errno != EEXIST)
                r = -errno;
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot prepare the sandbox dirs: %s",
                                       strerror(-r));
        return ns_disk_prepare(plan, err);
}

static int plan_check(const SandboxPlan *plan, ForgeError *err) {
        if (!cgroup_id_is_valid(plan->id))
                return forge_error_set(err, EINVAL, "invalid_sandbox", "invalid sandbox id '%s'", plan->id);
        if (!plan->dir || plan->dir[0] != '/')
                return forge_error_set(err, EINVAL, "invalid_sandbox", "sandbox dir must be absolute");
        if (plan->uid_base == 0 || plan->uid_count == 0)
                return forge_error_set(err, EINVAL, "invalid_sandbox", "sandbox needs a non-root uid range");
        return 0;
}

static int ns_create(const SandboxPlan *plan, ForgeError *err) {
        _cleanup_close_ int dirfd = -1;
        int r;

        r = plan_check(plan, err);
        if (r < 0)
                return r;
        dirfd = open(plan->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dirfd < 0)
                return forge_error_set(err, errno, "isolator_failed", "cannot open %s: %m", plan->dir);
        r = layers_make(plan, dirfd, err);
        if (r < 0)
                return r;
        r = cgroup_create(plan->id, &plan->limits);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot create the sandbox cgroups: %s",
                                       strerror(-r));
        return 0;
}

static int ns_start(const SandboxPlan *plan, ForgeError *err) {
        int r = plan_check(plan, err);
        if (r < 0)
                return r;
        if (ns_init_pid(plan->dir) > 0)
                return 0;
        /* After a reboot or a crash the disk may not be mounted any more. */
        r = ns_disk_prepare(plan, err);
        if (r < 0)
                return r;
        return ns_spawn(plan, err);
}

static int ns_connect(const SandboxPlan *plan, int *ret_fd) {
        return isolator_unix_connect(plan->dir, "agent.sock", ret_fd);
}

static int ns_is_alive(const SandboxPlan *plan) {
        return ns_init_pid(plan->dir) > 0;
}

/* The disk's own filesystem knows what is used on it: cheap, unlike a walk of upper/. */
static int64_t disk_used_bytes(const SandboxPlan *plan) {
        char path[PATH_MAX];
        struct statvfs st;

        if (!ns_disk_is_wanted(plan) || snprintf(path, sizeof(path), "%s/disk/upper", plan->dir) >= (int) sizeof(path) ||
            statvfs(path, &st) < 0)
                return -1;
        return (int64_t) ((st.f_blocks - st.f_bfree) * st.f_frsize);
}

static int ns_stats(const SandboxPlan *plan, SandboxUsage *ret) {
        int r = cgroup_get_usage(plan->id, ret);

        if (r >= 0)
                ret->disk_bytes = disk_used_bytes(plan);
        return r;
}

static int ns_suspend(const SandboxPlan *plan) {
        return cgroup_freeze(plan->id, true);
}

static int ns_resume(const SandboxPlan *plan) {
        return cgroup_freeze(plan->id, false);
}

/* Killing the init of a pid namespace kills everything in it; waits for it to be gone. */
static int init_kill(const SandboxPlan *plan) {
        for (int waited = 0; waited < INIT_EXIT_TIMEOUT_MS; waited += 10) {
                pid_t pid = ns_init_pid(plan->dir);
                if (pid <= 0)
                        return pid;
                kill(pid, SIGKILL);
                nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
        }
        return -ETIMEDOUT;
}

static int ns_destroy(const SandboxPlan *plan) {
        _cleanup_close_ int dirfd = -1;
        int r, ret = 0;

        if (!cgroup_id_is_valid(plan->id))
                return -EINVAL;
        /* A frozen task never gets to die of its SIGKILL: a suspended sandbox is thawed
         * first (missing cgroups are fine, destroy is retried on anything). */
        (void) cgroup_freeze(plan->id, false);
        r = cgroup_kill_all(plan->id);
        if (r < 0)
                log_sb_warn(plan->id, r, "cgroup kill failed, killing the sandbox's init");
        r = init_kill(plan);
        if (r < 0)
                ret = r;
        r = cgroup_remove(plan->id);
        if (r < 0 && ret >= 0)
                ret = r;
        /* Whatever the plan says: reconcile passes bare plans. */
        r = ns_disk_release(plan->dir);
        if (r < 0) {
                log_sb_warn(plan->id, r, "cannot release the sandbox's disk");
                if (ret >= 0)
                        ret = r;
        }
        dirfd = open(plan->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd >= 0) {
                if (unlinkat(dirfd, "agent.sock", 0) < 0 && errno != ENOENT && ret >= 0)
                        ret = -errno;
                if (unlinkat(dirfd, "ns.pid", 0) < 0 && errno != ENOENT && ret >= 0)
                        ret = -errno;
        }
        return ret;
}

static int ns_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata) {
        int r = cgroup_reap_unknown(known, userdata);
        int d = ns_disk_reap_unknown(known, userdata);

        return r < 0 ? r : d;
}

/* The cgroup group is isolator_init_all's (both isolators use it). */
static int ns_init(const char *state_dir, ForgeError *err) {
        char abs[PATH_MAX];

        if (!realpath(state_dir, abs))
                return forge_error_set(err, errno, "internal", "cannot resolve %s", state_dir);
        return ns_disk_set_state_dir(abs);
}

/* Nothing host-wide to release: isolator_fini_all removes the empty cgroup group. */
static void ns_fini(void) {
}

static int ns_available(ForgeError *err) {
        return ns_probe(err);
}

const IsolatorOps isolator_ns = {
        .name = "ns",
        .init = ns_init,
        .fini = ns_fini,
        .available = ns_available,
        .create = ns_create,
        .start = ns_start,
        .connect = ns_connect,
        .is_alive = ns_is_alive,
        .stats = ns_stats,
        .suspend = ns_suspend,
        .resume = ns_resume,
        .snapshot = ns_disk_save,
        .destroy = ns_destroy,
        .reap_unknown = ns_reap_unknown,
};
