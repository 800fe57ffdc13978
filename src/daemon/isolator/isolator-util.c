#include "daemon/isolator/isolator-util.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/macros.h"

int isolator_command_run(const char *path, char *const argv[], int out_fd, const int *pass_fds,
                         size_t n_pass) {
        posix_spawn_file_actions_t actions;
        int status, r;
        pid_t pid;

        r = posix_spawn_file_actions_init(&actions);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        for (int fd = 1; fd < 3 && r == 0; fd++)
                r = out_fd >= 0 ? posix_spawn_file_actions_adddup2(&actions, out_fd, fd)
                                : posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0);
        /* dup2 clears CLOEXEC on the copy: only these fds reach the program. */
        for (size_t i = 0; i < n_pass && r == 0; i++)
                r = posix_spawn_file_actions_adddup2(&actions, pass_fds[i], 3 + (int) i);
        if (r == 0)
                r = posix_spawn(&pid, path, &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        if (r != 0)
                return -r;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
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

/* Through /proc/self/fd: sun_path is short whatever the state dir's length. */
static int unix_address(int dirfd, const char *name, struct sockaddr_un *sa) {
        *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
        if (snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd, name) >=
            (int) sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        return 0;
}

int isolator_unix_connect(const char *dir, const char *name, int *ret_fd) {
        _cleanup_close_ int dirfd = -1, fd = -1;
        struct sockaddr_un sa;
        int r;

        dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        r = unix_address(dirfd, name, &sa);
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
        int r;

        dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        r = unix_address(dirfd, name, &sa);
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
