#include "daemon/isolator/isolator-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/copy.h"
#include "basic/fs-util.h"
#include "basic/macros.h"

/* Copies of pass_fds above every target number (3 + i), so that no dup2 into a target
 * overwrites a later source. */
static int pass_fds_move_high(const int *pass_fds, size_t n_pass, int *high, size_t *ret_n_high) {
        for (*ret_n_high = 0; *ret_n_high < n_pass; (*ret_n_high)++) {
                high[*ret_n_high] = fcntl(pass_fds[*ret_n_high], F_DUPFD_CLOEXEC, 3 + (int) n_pass);
                if (high[*ret_n_high] < 0)
                        return -errno;
        }
        return 0;
}

static void pass_fds_close(int *high, size_t n_high) {
        for (size_t i = 0; i < n_high; i++)
                close(high[i]);
}

static int child_wait(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int isolator_command_run(const char *path, char *const argv[], int out_fd, const int *pass_fds,
                         size_t n_pass) {
        posix_spawn_file_actions_t actions;
        int high[ISOLATOR_PASS_FDS_MAX], r;
        size_t n_high = 0;
        pid_t pid;

        if (n_pass > ISOLATOR_PASS_FDS_MAX)
                return -E2BIG;
        r = pass_fds_move_high(pass_fds, n_pass, high, &n_high);
        if (r < 0)
                goto out;
        r = posix_spawn_file_actions_init(&actions);
        if (r != 0) {
                r = -r;
                goto out;
        }
        r = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        for (int fd = 1; fd < 3 && r == 0; fd++)
                r = out_fd >= 0 ? posix_spawn_file_actions_adddup2(&actions, out_fd, fd)
                                : posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0);
        /* dup2 clears CLOEXEC on the copy: only these fds reach the program. */
        for (size_t i = 0; i < n_pass && r == 0; i++)
                r = posix_spawn_file_actions_adddup2(&actions, high[i], 3 + (int) i);
        if (r == 0)
                r = posix_spawn(&pid, path, &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        r = r != 0 ? -r : child_wait(pid);
out:
        pass_fds_close(high, n_high);
        return r;
}

/* What the held child needs, all prepared before the fork. */
typedef struct HeldChild {
        const char *path;
        char *const *argv;
        int null_fd, out_fd;      /* out_fd < 0: null_fd */
        int release_r, release_w; /* one byte on release_r lets it exec; EOF ends it */
        const int *high;
        size_t n_high;
} HeldChild;

void isolator_child_signals_default(void) {
        /* The kernel's struct sigaction, for the raw system call. */
        struct {
                void *handler;
                unsigned long flags;
                void *restorer;
                uint64_t mask;
        } dfl = {.handler = SIG_DFL};

        for (int sig = 1; sig < 65; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(uint64_t));
}

/* After the fork of a multi-threaded forged: system calls only (no locks, no allocation,
 * no libc state), as in ns-child.c. Signals arrive blocked (the parent blocked them for
 * the fork); handlers go back to default before anything can unblock them. */
_Noreturn static void held_child_run(const HeldChild *c) {
        uint64_t none = 0;
        int out = c->out_fd >= 0 ? c->out_fd : c->null_fd;
        char go;

        isolator_child_signals_default();
        /* Our copy of the write end would keep us waiting for ever should forged die. */
        (void) syscall(SYS_close, c->release_w);
        if (syscall(SYS_read, c->release_r, &go, 1) != 1)
                syscall(SYS_exit_group, 127);
        if (syscall(SYS_dup3, c->null_fd, 0, 0) < 0 || syscall(SYS_dup3, out, 1, 0) < 0 ||
            syscall(SYS_dup3, out, 2, 0) < 0)
                syscall(SYS_exit_group, 127);
        for (size_t i = 0; i < c->n_high; i++)
                if (syscall(SYS_dup3, c->high[i], 3 + (int) i, 0) < 0)
                        syscall(SYS_exit_group, 127);
        (void) syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
        syscall(SYS_execve, c->path, c->argv, environ);
        syscall(SYS_exit_group, 127);
        __builtin_unreachable();
}

/* Forks the held child with every signal blocked, so none of forged's handlers runs in it. */
static pid_t held_child_fork(const HeldChild *c) {
        sigset_t all, old;
        pid_t pid;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        /* Fork semantics (no new stack): the child continues here on a copy of ours. */
        pid = (pid_t) syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
        if (pid == 0)
                held_child_run(c);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return pid;
}

/* Lets the child exec, or (r < 0) kills it; then reaps it. */
static int held_child_finish(pid_t pid, int release_w, int r) {
        if (r >= 0 && write(release_w, "x", 1) != 1)
                r = -errno;
        if (r < 0) {
                kill(pid, SIGKILL);
                (void) child_wait(pid);
                return r;
        }
        return child_wait(pid);
}

int isolator_command_run_held(const char *path, char *const argv[], int out_fd, const int *pass_fds,
                              size_t n_pass, int (*on_held)(pid_t pid, void *userdata), void *userdata) {
        int high[ISOLATOR_PASS_FDS_MAX], release[2] = {-1, -1}, r;
        _cleanup_close_ int null_fd = -1;
        size_t n_high = 0;
        pid_t pid;

        if (n_pass > ISOLATOR_PASS_FDS_MAX)
                return -E2BIG;
        r = pass_fds_move_high(pass_fds, n_pass, high, &n_high);
        if (r >= 0 && pipe2(release, O_CLOEXEC) < 0)
                r = -errno;
        if (r >= 0 && (null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
                r = -errno;
        if (r < 0)
                goto out;
        pid = held_child_fork(&(HeldChild){.path = path,
                                           .argv = argv,
                                           .null_fd = null_fd,
                                           .out_fd = out_fd,
                                           .release_r = release[0],
                                           .release_w = release[1],
                                           .high = high,
                                           .n_high = n_high});
        if (pid < 0) {
                r = -errno;
                goto out;
        }
        closep(&release[0]);
        r = held_child_finish(pid, release[1], on_held(pid, userdata));
out:
        closep(&release[0]);
        closep(&release[1]);
        pass_fds_close(high, n_high);
        return r;
}

static const char *mkfs_path(void) {
        static const char *const candidates[] = {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"};

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
                if (access(candidates[i], X_OK) >= 0)
                        return candidates[i];
        return NULL;
}

int isolator_mkfs(char *const *options, const char *target, int64_t size_mb) {
        const char *mkfs = mkfs_path();
        char *argv[24], size[32];
        size_t n = 0;

        if (!mkfs)
                return -ENOENT;
        argv[n++] = (char *) "mkfs.ext4";
        argv[n++] = (char *) "-q";
        argv[n++] = (char *) "-F";
        for (; options && *options; options++) {
                if (n == ELEMENTSOF(argv) - 3)
                        return -E2BIG;
                argv[n++] = *options;
        }
        argv[n++] = (char *) target;
        if (size_mb > 0) {
                snprintf(size, sizeof(size), "%lldM", (long long) size_mb);
                argv[n++] = size;
        }
        argv[n] = NULL;
        return isolator_command_run(mkfs, argv, -1, NULL, 0);
}

/* Opens the socket's directory (*ret_dirfd, the caller's) and spells the address
 * through /proc/self/fd: sun_path is short whatever the state dir's length. */
static int unix_address(const char *dir, const char *name, int *ret_dirfd, struct sockaddr_un *sa) {
        int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (dirfd < 0)
                return -errno;
        *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
        if (snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd, name) >=
            (int) sizeof(sa->sun_path)) {
                close(dirfd);
                return -ENAMETOOLONG;
        }
        *ret_dirfd = dirfd;
        return 0;
}

int isolator_unix_connect(const char *dir, const char *name, int *ret_fd) {
        _cleanup_close_ int dirfd = -1, fd = -1;
        struct sockaddr_un sa;
        int r = unix_address(dir, name, &dirfd, &sa);

        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int isolator_unix_listen(const char *dir, const char *name, int *ret_fd) {
        _cleanup_close_ int dirfd = -1, fd = -1;
        struct sockaddr_un sa;
        int r = unix_address(dir, name, &dirfd, &sa);

        if (r < 0)
                return r;
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        /* Only forged (root) connects; the backlog covers a burst of reconnects. */
        if (fchmodat(dirfd, name, 0600, 0) < 0 || listen(fd, 64) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int fsync_parent(const char *path) {
        char dir[PATH_MAX];
        _cleanup_close_ int fd = -1;
        char *slash;

        if (snprintf(dir, sizeof(dir), "%s", path) >= (int) sizeof(dir))
                return -ENAMETOOLONG;
        slash = strrchr(dir, '/');
        if (!slash)
                return -EINVAL;
        *slash = 0;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

int isolator_file_copy(const char *src, const char *dest) {
        char tmp[PATH_MAX];
        _cleanup_close_ int in = -1, out = -1;
        int r;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", dest) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;
        in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
                return -errno;
        (void) unlink(tmp);
        out = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0)
                return -errno;
        r = copy_file_contents(in, out);
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, dest) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return fsync_parent(dest);
}

int isolator_file_from(const SandboxPlan *plan, const char *name, int dirfd, const char *dest) {
        _cleanup_close_ int src = -1, out = -1;
        char path[PATH_MAX];
        int r;

        r = path_join(path, sizeof(path), plan->from_dir, name);
        if (r < 0)
                return r;
        if (plan->from_move)
                return renameat(AT_FDCWD, path, dirfd, dest) < 0 ? -errno : 0;
        src = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (src < 0)
                return -errno;
        out = openat(dirfd, dest, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0)
                return -errno;
        r = copy_file_contents(src, out);
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        return r;
}
