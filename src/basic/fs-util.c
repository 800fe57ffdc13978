#include "basic/fs-util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/macros.h"

int write_string_file_at(int dirfd, const char *name, const char *s) {
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* Kernel knobs take the value in one write(2); a short write is an error. */
        ssize_t n = write(fd, s, strlen(s));
        if (n < 0)
                return -errno;
        return (size_t) n == strlen(s) ? 0 : -EIO;
}

int write_string_file(const char *path, const char *s) {
        return write_string_file_at(AT_FDCWD, path, s);
}

int read_full_file_at(int dirfd, const char *name, char *buf, size_t size, size_t *ret_len) {
        size_t len = 0;

        if (size == 0)
                return -EINVAL;
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        while (len < size - 1) {
                ssize_t n = read(fd, buf + len, size - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = 0;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int read_full_file(const char *path, char *buf, size_t size, size_t *ret_len) {
        return read_full_file_at(AT_FDCWD, path, buf, size, ret_len);
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;

        if (strncmp(s, "max", 3) == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0)
                return -errno;
        if (*end != 0 && *end != '\n' && *end != ' ')
                return -EINVAL;
        *ret = v;
        return 0;
}

int read_u64_file(const char *path, uint64_t *ret) {
        char buf[64];
        int r = read_full_file(path, buf, sizeof(buf), NULL);
        if (r < 0)
                return r;
        return parse_u64(buf, ret);
}

int keyed_u64_find(const char *text, const char *key, uint64_t *ret) {
        size_t klen = strlen(key);

        for (const char *line = text; line && *line;
             line = strchr(line, '\n'), line = line ? line + 1 : NULL)
                if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
                        return parse_u64(line + klen + 1, ret);
        return -ENOENT;
}

int mkdir_p(const char *path, mode_t mode) {
        char buf[PATH_MAX];

        if (strlen(path) >= sizeof(buf))
                return -ENAMETOOLONG;
        strcpy(buf, path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int fsync_directory(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

/* Makes a rename in path's directory durable. */
static int fsync_parent_dir(const char *path) {
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX];

        if (!slash)
                snprintf(dir, sizeof(dir), ".");
        else if (slash == path)
                snprintf(dir, sizeof(dir), "/");
        else if ((size_t) (slash - path) >= sizeof(dir))
                return -ENAMETOOLONG;
        else
                snprintf(dir, sizeof(dir), "%.*s", (int) (slash - path), path);
        return fsync_directory(dir);
}

int write_file_atomic(const char *path, const char *content, mode_t mode) {
        char tmp[PATH_MAX];
        int r;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long) gettid()) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        r = fd_write_full(fd, content, strlen(content));
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_parent_dir(path);
}

int path_join(char *buf, size_t size, const char *a, const char *b) {
        int n = snprintf(buf, size, "%s/%s", a, b);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}
