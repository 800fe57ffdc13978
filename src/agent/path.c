/* Resolving paths from the host. Inside a sandbox "/" is the sandbox's root, so plain
 * resolution stays inside; what must be refused are procfs magic links
 * (/proc/self/root/..., /proc/<pid>/fd/...), which jump wherever a process points. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Our own copy of struct open_how: musl ships no linux/openat2.h. */
typedef struct OpenHow {
        uint64_t flags, mode, resolve;
} OpenHow;
#define AGENT_RESOLVE_NO_MAGICLINKS 0x02

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static bool openat2_missing;

/* Without openat2 (kernels before 5.6) the best cheap guard is to refuse the trees
 * that hold magic links at all. */
static bool path_may_hold_magic_links(const char *path) {
        return strncmp(path, "/proc", 5) == 0 || strncmp(path, "/dev/fd", 7) == 0;
}

int agent_openat(int dir_fd, const char *path, int flags, mode_t mode) {
        flags |= O_CLOEXEC;
        if (!openat2_missing) {
                OpenHow how = { .flags = (uint64_t) flags, .mode = (flags & O_CREAT) ? mode : 0,
                                .resolve = AGENT_RESOLVE_NO_MAGICLINKS };
                long fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
                if (fd >= 0)
                        return (int) fd;
                if (errno != ENOSYS)
                        return -errno;
                openat2_missing = true;
        }
        if (path[0] == '/' && path_may_hold_magic_links(path))
                return -ELOOP;
        int fd = openat(dir_fd, path, flags, mode);
        return fd < 0 ? -errno : fd;
}

int agent_path_check(const char *path) {
        if (!path || path[0] != '/' || strlen(path) > 4096)
                return -EINVAL;
        return 0;
}

int agent_open_path(const char *path, int flags, int *ret_fd) {
        int r = agent_path_check(path);
        if (r < 0)
                return r;
        int fd = agent_openat(AT_FDCWD, path, flags, 0);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

/* Splits off the last component: "/a/b/" gives dir "/a" and name "b"; "/" gives "/"
 * and ".". The directory is opened O_PATH, following symlinks but no magic links. */
int agent_open_parent(const char *path, int *ret_dirfd, char **ret_name) {
        int r = agent_path_check(path);
        if (r < 0)
                return r;
        char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        size_t len = strlen(copy);
        while (len > 1 && copy[len - 1] == '/')
                copy[--len] = 0;
        char *slash = strrchr(copy, '/');
        const char *name = slash[1] ? slash + 1 : ".";
        char *name_copy = strdup(name);
        if (slash == copy)
                copy[1] = 0; /* the parent is the root */
        else
                *slash = 0;
        int fd = name_copy ? agent_openat(AT_FDCWD, copy, O_PATH | O_DIRECTORY, 0) : -ENOMEM;
        free(copy);
        if (fd < 0) {
                free(name_copy);
                return fd;
        }
        *ret_dirfd = fd;
        *ret_name = name_copy;
        return 0;
}

bool agent_name_is_special(const char *name) {
        return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* mkdir -p, one component at a time through fds, so no step re-resolves a path that
 * could have changed under us. Returns an O_PATH fd of the final directory. */
int agent_mkdir_p(const char *path, mode_t mode, int *ret_fd) {
        int r = agent_path_check(path);
        if (r < 0)
                return r;
        char *copy = strdup(path), *save = NULL;
        if (!copy)
                return -ENOMEM;
        int fd = agent_openat(AT_FDCWD, "/", O_PATH | O_DIRECTORY, 0);
        for (char *comp = strtok_r(copy, "/", &save); comp && fd >= 0; comp = strtok_r(NULL, "/", &save)) {
                if (mkdirat(fd, comp, mode) < 0 && errno != EEXIST) {
                        int err = -errno;
                        close(fd);
                        fd = err;
                        break;
                }
                int next = agent_openat(fd, comp, O_PATH | O_DIRECTORY, 0);
                close(fd);
                fd = next;
        }
        free(copy);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}
