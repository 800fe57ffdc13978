#include "daemon/core/store.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/macros.h"

static int fsync_parent(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        _cleanup_close_ int fd = -1;

        if (!copy)
                return -ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

int store_write_json(const char *path, json_t *j) {
        _cleanup_free_ char *tmp = NULL, *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        _cleanup_close_ int fd = -1;
        size_t len, done = 0;

        if (!text || asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        len = strlen(text);
        while (done < len) {
                ssize_t n = write(fd, text + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        unlink(tmp);
                        return -errno;
                }
                done += (size_t) n;
        }
        if (fsync(fd) < 0 || rename(tmp, path) < 0) {
                int r = -errno;
                unlink(tmp);
                return r;
        }
        return fsync_parent(path);
}

int store_read_json(const char *path, json_t **ret) {
        json_error_t jerr;
        json_t *j;

        if (access(path, F_OK) < 0)
                return -errno;
        j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return -EBADMSG;
        *ret = j;
        return 0;
}
