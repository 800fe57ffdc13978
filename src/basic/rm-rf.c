#include "basic/rm-rf.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/macros.h"

/* Empties the directory open as fd; closes fd. Depth is bounded by the caller's stack,
 * which the kernel's PATH_MAX-free nesting could exhaust, so recursion stops at 4096. */
static int rm_contents(int fd, unsigned depth) {
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > 4096) {
                close(fd);
                return -ELOOP;
        }
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        while ((errno = 0, de = readdir(d))) {
                int q;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno == ENOENT)
                        continue;
                if (errno != EISDIR && errno != EPERM) {
                        r = r ?: -errno;
                        continue;
                }
                int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        r = r ?: -errno;
                        continue;
                }
                q = rm_contents(sub, depth + 1);
                if (q < 0)
                        r = r ?: q;
                else if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                        r = r ?: -errno;
        }
        closedir(d);
        return r;
}

int rm_rf_at(int dirfd, const char *name) {
        int fd, r;

        if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return -errno;
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        r = rm_contents(fd, 0);
        if (r < 0)
                return r;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int rm_rf(const char *path) {
        return rm_rf_at(AT_FDCWD, path);
}
