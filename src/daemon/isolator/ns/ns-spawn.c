/* The parent side of start(): open what the child needs, clone it into fresh namespaces,
 * map its ids, put it into its cgroups, release it and wait for its exec. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macros.h"
#include "daemon/isolator/ns/cgroup.h"
#include "daemon/isolator/ns/ns-internal.h"

#define NS_CLONE_FLAGS                                                                                      \
        (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
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

/* Binds to <dir>/agent.sock through /proc/self/fd, which keeps sun_path short whatever
 * the state dir's length. */
static int listen_socket_open(int dirfd, int *ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;

        if (unlinkat(dirfd, "agent.sock", 0) < 0 && errno != ENOENT)
                return -errno;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/agent.sock", dirfd);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if (fchmodat(dirfd, "agent.sock", 0600, 0) < 0 || listen(fd, 64) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return fd_move_high(ret);
}

static unsigned long remount_flags_for(const char *source) {
        struct statvfs sv;
        unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;

        /* Flags the source mount already has are locked in a user namespace: keep them. */
        if (statvfs(source, &sv) < 0)
                return flags;
        if (sv.f_flag & ST_NOEXEC)
                flags |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME)
                flags |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME)
                flags |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME)
                flags |= MS_RELATIME;
        return flags;
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
                b->remount_flags = remount_flags_for(src);
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
                r = listen_socket_open(f->dir, &f->listen);
        if (r >= 0)
                r = open_high(AT_FDCWD, plan->agent_path, O_PATH, 0, &f->agent);
        if (r >= 0)
                r = open_high(f->dir, "agent.log", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0600,
                              &f->log);
        if (r < 0)
                return r;
        if (pipe2(f->release, O_CLOEXEC) < 0 || pipe2(f->error, O_CLOEXEC) < 0)
                return -errno;
        for (int i = 0; i < 2; i++)
                if ((r = fd_move_high(&f->release[i])) < 0 || (r = fd_move_high(&f->error[i])) < 0)
                        return r;
        return 0;
}

static int child_plan_build(const SandboxPlan *plan, const SpawnFds *f, NsChildPlan *cp) {
        const char *hostname = plan->hostname && plan->hostname[0] ? plan->hostname : plan->id;

        if (strlen(hostname) >= sizeof(cp->hostname))
                return -ENAMETOOLONG;
        snprintf(cp->hostname, sizeof(cp->hostname), "%s", hostname);
        cp->parent_fds[0] = f->release[1];
        cp->parent_fds[1] = f->error[0];
        cp->release_fd = f->release[0];
        cp->error_fd = f->error[1];
        cp->agent_fd = f->agent;
        cp->log_fd = f->log;
        cp->listen_fd = f->listen;
        if (snprintf(cp->lower, sizeof(cp->lower), "%s", plan->image_rootfs) >= (int) sizeof(cp->lower) ||
            path_join(cp->upper, sizeof(cp->upper), plan->dir, "upper") < 0 ||
            path_join(cp->work, sizeof(cp->work), plan->dir, "work") < 0 ||
            path_join(cp->root, sizeof(cp->root), plan->dir, "root") < 0)
                return -ENAMETOOLONG;
        cp->cap_last = cap_last_read();
        return binds_plan(plan, cp);
}

/* 0 once the child exec'd (the CLOEXEC pipe reads EOF), else what it reported. */
static int exec_wait(int fd, NsChildError *ret) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        for (;;) {
                int r = poll(&pfd, 1, EXEC_TIMEOUT_MS);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                n = read(fd, ret, sizeof(*ret));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                return n == 0 ? 0 : n == (ssize_t) sizeof(*ret) ? -ret->errnum : -EIO;
        }
}

static void child_kill(pid_t pid) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* Runs once the child exists: ids, cgroups, release, exec. */
static int child_supervise(const SandboxPlan *plan, pid_t pid, SpawnFds *f, ForgeError *err) {
        NsChildError ce = {.step = -1};
        unsigned long long start_time;
        int r;

        r = ns_write_id_maps(pid, plan->uid_base, plan->uid_count);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot write the uid/gid maps: %s",
                                       strerror(-r));
        r = cgroup_attach(plan->id, pid);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed",
                                       "cannot move the sandbox into its cgroups: %s", strerror(-r));
        if (write(f->release[1], "x", 1) != 1)
                return forge_error_set(err, errno, "isolator_failed", "cannot release the sandbox child");
        closep(&f->release[1]);
        r = exec_wait(f->error[0], &ce);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "sandbox setup failed at step %s: %s",
                                       ce.step >= 0 ? ns_child_step_name(ce.step) : "exec-wait",
                                       strerror(-r));
        r = ns_proc_start_time(pid, &start_time);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "the agent died right after exec");
        r = ns_pidfile_write(plan->dir, pid, start_time);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot record the sandbox pid: %s",
                                       strerror(-r));
        return 0;
}

int ns_spawn(const SandboxPlan *plan, ForgeError *err) {
        _cleanup_(spawn_fds_close) SpawnFds f = {-1, -1, -1, -1, {-1, -1}, {-1, -1}};
        _cleanup_free_ NsChildPlan *cp = calloc(1, sizeof(NsChildPlan));
        pid_t pid;
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
        pid = ns_clone(NS_CLONE_FLAGS);
        if (pid < 0)
                return forge_error_set(err, errno, "isolator_failed", "clone failed: %m");
        if (pid == 0)
                ns_child_run(cp);
        closep(&f.release[0]);
        closep(&f.error[1]);
        r = child_supervise(plan, pid, &f, err);
        if (r < 0)
                child_kill(pid);
        return r;
}
