/* The parent side of start(): open what the child needs, fork it, map the ids of the
 * user namespace it makes, put it into its cgroups, release it, learn the pid of the init
 * it forks and wait for the agent's exec. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macros.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/cgroup.h"
#include "daemon/isolator/ns/ns-internal.h"

#define NS_FD_FLOOR 10
#define EXEC_TIMEOUT_MS 30000

pid_t ns_clone(unsigned long flags) {
        /* Fork semantics (no new stack): the child continues here on a copy of ours. */
        return (pid_t) syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
}

int ns_write_id_maps(pid_t pid, uid_t base, uint32_t count) {
        char path[64], map[64];
        int r;

        snprintf(map, sizeof(map), "0 %lu %lu\n", (unsigned long) base, (unsigned long) count);
        snprintf(path, sizeof(path), "/proc/%ld/uid_map", (long) pid);
        r = write_string_file(path, map);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/proc/%ld/setgroups", (long) pid);
        r = write_string_file(path, "deny");
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/proc/%ld/gid_map", (long) pid);
        return write_string_file(path, map);
}

/* Keeps the child's fds out of 0..9 so its final dup2s into 0..5 cannot collide. */
static int fd_move_high(int *fd) {
        if (*fd >= NS_FD_FLOOR)
                return 0;
        int moved = fcntl(*fd, F_DUPFD_CLOEXEC, NS_FD_FLOOR);
        if (moved < 0)
                return -errno;
        close(*fd);
        *fd = moved;
        return 0;
}

static int open_high(int dirfd, const char *path, int flags, mode_t mode, int *ret) {
        int fd = openat(dirfd, path, flags | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        *ret = fd;
        return fd_move_high(ret);
}

/* Read-only, nosuid, nodev inside; a source mounted noexec stays noexec. */
static uint64_t bind_attrs_for(const char *source) {
        struct statvfs sv;
        uint64_t attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

        if (statvfs(source, &sv) >= 0 && (sv.f_flag & ST_NOEXEC))
                attrs |= MOUNT_ATTR_NOEXEC;
        return attrs;
}

static int binds_plan(const SandboxPlan *plan, NsChildPlan *cp) {
        for (size_t i = 0; plan->ro_binds && plan->ro_binds[i]; i++) {
                const char *src = plan->ro_binds[i];
                if (cp->n_binds >= NS_BINDS_MAX)
                        return -E2BIG;
                if (src[0] != '/' || strstr(src, "/..") || strlen(src) >= PATH_MAX || src[1] == 0)
                        return -EINVAL;
                NsBind *b = &cp->binds[cp->n_binds++];
                snprintf(b->source, sizeof(b->source), "%s", src);
                snprintf(b->target, sizeof(b->target), "%s", src + strspn(src, "/"));
                b->attrs = bind_attrs_for(src);
                b->fd = -1;
        }
        return 0;
}

static int cap_last_read(void) {
        char buf[16];

        if (read_full_file("/proc/sys/kernel/cap_last_cap", buf, sizeof(buf), NULL) < 0)
                return CAP_LAST_CAP;
        return atoi(buf);
}

typedef struct SpawnFds {
        int dir, agent, log, listen;
        int release[2], error[2];
} SpawnFds;

/* The scope cleanup of ns_spawn(). The child's ends and release[1] are closed earlier
 * with closep(), which clears them: nothing here is closed twice (a second close of the
 * number would hit whatever another thread opened under it meanwhile). */
static void spawn_fds_close(SpawnFds *f) {
        int *all[] = {&f->dir,        &f->agent,      &f->log,      &f->listen,
                      &f->release[0], &f->release[1], &f->error[0], &f->error[1]};
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                closep(all[i]);
}

static int spawn_fds_open(const SandboxPlan *plan, SpawnFds *f) {
        int r;

        r = open_high(AT_FDCWD, plan->dir, O_PATH | O_DIRECTORY, 0, &f->dir);
        if (r >= 0)
                r = isolator_unix_listen(plan->dir, "agent.sock", &f->listen);
        if (r >= 0)
                r = fd_move_high(&f->listen);
        if (r >= 0)
                r = open_high(AT_FDCWD, plan->agent_path, O_PATH, 0, &f->agent);
        if (r >= 0)
                r = open_high(f->dir, "agent.log", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0600,
                              &f->log);
        if (r < 0)
                return r;
        /* Seqpacket: the release byte and the idmapped mounts travel as one message. */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->release) < 0 ||
            pipe2(f->error, O_CLOEXEC) < 0)
                return -errno;
        for (int i = 0; i < 2; i++)
                if ((r = fd_move_high(&f->release[i])) < 0 || (r = fd_move_high(&f->error[i])) < 0)
                        return r;
        return 0;
}

static int child_plan_build(const SandboxPlan *plan, const SpawnFds *f, NsChildPlan *cp) {
        const char *hostname = plan->hostname && plan->hostname[0] ? plan->hostname : plan->id;
        /* With a disk quota the writable layer lives on the sandbox's own filesystem. */
        const char *layers = ns_disk_is_wanted(plan) ? "disk/" : "";
        char name[16];
        int r;

        if (strlen(hostname) >= sizeof(cp->hostname))
                return -ENAMETOOLONG;
        snprintf(cp->hostname, sizeof(cp->hostname), "%s", hostname);
        snprintf(cp->shm_options, sizeof(cp->shm_options), "mode=1777,size=%lldm",
                 (long long) (plan->limits.memory_mb > 0 ? MAX(MIN(plan->limits.memory_mb / 4, NS_SHM_MAX_MB), 1)
                                                         : NS_SHM_MAX_MB));
        cp->parent_fds[0] = f->release[1];
        cp->parent_fds[1] = f->error[0];
        cp->release_fd = f->release[0];
        cp->error_fd = f->error[1];
        cp->agent_fd = f->agent;
        cp->log_fd = f->log;
        cp->listen_fd = f->listen;
        cp->image_fd = -1;
        cp->host_uid = plan->uid_base;
        cp->host_gid = (gid_t) plan->uid_base;
        if (snprintf(cp->lower, sizeof(cp->lower), "%s", plan->image_rootfs) >= (int) sizeof(cp->lower) ||
            path_join(cp->root, sizeof(cp->root), plan->dir, "root") < 0)
                return -ENAMETOOLONG;
        snprintf(name, sizeof(name), "%supper", layers);
        if (path_join(cp->upper, sizeof(cp->upper), plan->dir, name) < 0)
                return -ENAMETOOLONG;
        snprintf(name, sizeof(name), "%swork", layers);
        if (path_join(cp->work, sizeof(cp->work), plan->dir, name) < 0)
                return -ENAMETOOLONG;
        cp->cap_last = cap_last_read();
        cp->fsize_max = plan->limits.disk_mb > 0 ? (uint64_t) plan->limits.disk_mb * 1024 * 1024 : 0;
        r = ns_seccomp_program(&cp->seccomp);
        if (r < 0)
                return r;
        return binds_plan(plan, cp);
}

/* Waits for readable data on fd, EXEC_TIMEOUT_MS at most. */
static int fd_wait(int fd) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};

        for (;;) {
                int r = poll(&pfd, 1, EXEC_TIMEOUT_MS);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                return r == 0 ? -ETIMEDOUT : 0;
        }
}

/* 0 once the child exec'd (the CLOEXEC pipe reads EOF), else what it reported. */
static int exec_wait(int fd, NsChildError *ret) {
        ssize_t n;

        for (;;) {
                int r = fd_wait(fd);
                if (r < 0)
                        return r;
                n = read(fd, ret, sizeof(*ret));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                return n == 0 ? 0 : n == (ssize_t) sizeof(*ret) ? -ret->errnum : -EIO;
        }
}

/* One message of exactly size bytes from the setup child. On EOF the child failed: what
 * it reported on the error pipe is returned (and its step in ret). */
static int setup_msg_recv(const SpawnFds *f, void *buf, size_t size, NsChildError *ret) {
        ssize_t n;
        int r;

        do {
                r = fd_wait(f->release[1]);
                if (r < 0)
                        return r;
                n = recv(f->release[1], buf, size, 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0) {
                r = exec_wait(f->error[0], ret);
                return r < 0 ? r : -EPIPE;
        }
        return (size_t) n == size ? 0 : -EBADMSG;
}

static void child_kill(pid_t pid) {
        if (pid <= 0)
                return;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* The setup child exits right after it sent the init's pid. */
static int child_reap(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* One byte, with the idmapped mounts attached. */
static int release_send(int sock, const int *fds, size_t n) {
        union {
                char buf[CMSG_SPACE(sizeof(int) * (NS_BINDS_MAX + 1))];
                struct cmsghdr align;
        } control = {{0}};
        struct iovec iov = {.iov_base = (char[]){'x'}, .iov_len = 1};
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = CMSG_SPACE(sizeof(int) * n),
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
        return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

static int child_release(pid_t pid, const NsChildPlan *cp, int sock) {
        int fds[NS_BINDS_MAX + 1];
        size_t n = 1 + cp->n_binds;
        int r;

        r = ns_idmap_mounts_open(pid, cp, fds);
        if (r < 0)
                return r;
        r = release_send(sock, fds, n);
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        return r;
}

static int setup_failed(ForgeError *err, int r, const NsChildError *ce, const char *waiting_for) {
        return forge_error_set(err, r, "isolator_failed", "sandbox setup failed at step %s: %s",
                               ce->step >= 0 ? ns_child_step_name(ce->step) : waiting_for, strerror(-r));
}

/* Until the release: the child made its user namespace (owned by uid_base, it became that
 * uid first); the parent, host root with CAP_SETUID in the initial namespace, maps it,
 * moves the child into the cgroups and idmaps the image and the binds with it. The child
 * is non-dumpable since its set*id: /proc/PID/ns/user and the maps are host root's to
 * open, which we are. */
static int child_prepare(const SandboxPlan *plan, const NsChildPlan *cp, pid_t child, SpawnFds *f,
                         ForgeError *err) {
        NsChildError ce = {.step = -1};
        char msg = 0;
        int r;

        r = setup_msg_recv(f, &msg, 1, &ce);
        if (r >= 0 && msg != NS_MSG_USERNS)
                r = -EBADMSG;
        if (r < 0)
                return setup_failed(err, r, &ce, "wait-userns");
        r = ns_write_id_maps(child, plan->uid_base, plan->uid_count);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot write the uid/gid maps: %s",
                                       strerror(-r));
        r = cgroup_attach(plan->id, child);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed",
                                       "cannot move the sandbox into its cgroups: %s", strerror(-r));
        r = child_release(child, cp, f->release[1]);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed",
                                       "cannot give the sandbox its idmapped image and binds: %s",
                                       strerror(-r));
        return 0;
}

/* After the release: the setup child forks the init and exits; the init execs the agent. */
static int init_wait(const SandboxPlan *plan, pid_t child, SpawnFds *f, pid_t *ret_init, ForgeError *err) {
        NsChildError ce = {.step = -1};
        NsInitMsg msg = {0};
        unsigned long long start_time;
        int r;

        r = setup_msg_recv(f, &msg, sizeof(msg), &ce);
        if (r >= 0 && msg.pid <= 0)
                r = -EBADMSG;
        if (r < 0)
                return setup_failed(err, r, &ce, "wait-init");
        *ret_init = (pid_t) msg.pid;
        closep(&f->release[1]);
        r = exec_wait(f->error[0], &ce);
        if (r < 0)
                return setup_failed(err, r, &ce, "exec-wait");
        /* EOF on the pipe: the setup child is gone too (it held a write end). */
        r = child_reap(child);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "the setup process failed after the fork");
        r = ns_proc_start_time(*ret_init, &start_time);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "the agent died right after exec");
        r = ns_pidfile_write(plan->dir, *ret_init, start_time);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot record the sandbox pid: %s",
                                       strerror(-r));
        return 0;
}

int ns_spawn(const SandboxPlan *plan, ForgeError *err) {
        _cleanup_(spawn_fds_close) SpawnFds f = {-1, -1, -1, -1, {-1, -1}, {-1, -1}};
        _cleanup_free_ NsChildPlan *cp = calloc(1, sizeof(NsChildPlan));
        pid_t child, init = 0;
        int r;

        if (!cp)
                return forge_error_set(err, ENOMEM, "isolator_failed", "out of memory");
        r = spawn_fds_open(plan, &f);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot prepare the sandbox's files: %s",
                                       strerror(-r));
        r = child_plan_build(plan, &f, cp);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "invalid sandbox plan: %s", strerror(-r));
        /* No namespace flags: the child makes them itself, after it became uid_base. No
         * PDEATHSIG: a sandbox outlives forged. */
        child = ns_clone(0);
        if (child < 0)
                return forge_error_set(err, errno, "isolator_failed", "clone failed: %m");
        if (child == 0)
                ns_child_run(cp);
        closep(&f.release[0]);
        closep(&f.error[1]);
        r = child_prepare(plan, cp, child, &f, err);
        if (r >= 0)
                r = init_wait(plan, child, &f, &init, err);
        if (r < 0) {
                child_kill(init);
                child_kill(child);
        }
        return r;
}
