/* STAT, LIST, MKDIR, REMOVE, RENAME: each resolves through path.c and never follows a
 * symlink in the last component (lstat semantics; removal never crosses one). */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REMOVE_MAX_DEPTH 256

static int64_t file_type(mode_t m) {
        if (S_ISREG(m))
                return PROTO_FILE_REGULAR;
        if (S_ISDIR(m))
                return PROTO_FILE_DIRECTORY;
        if (S_ISLNK(m))
                return PROTO_FILE_SYMLINK;
        return PROTO_FILE_OTHER;
}

/* Puts the lstat fields of dirfd/name (plus the link target of a symlink) into b. */
static int stat_put_at(ProtoBuf *b, int dir_fd, const char *name, const char *entry_name) {
        char target[PATH_MAX + 1];
        struct stat st;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        ProtoStat ps = {
                .name = (char *) entry_name,
                .type = file_type(st.st_mode),
                .size = st.st_size,
                .mode = st.st_mode & 07777,
                .mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                .uid = st.st_uid,
                .gid = st.st_gid,
        };
        if (S_ISLNK(st.st_mode)) {
                ssize_t n = readlinkat(dir_fd, name, target, sizeof(target) - 1);
                if (n >= 0) {
                        target[n] = 0;
                        ps.link_target = target;
                }
        }
        return proto_stat_put(b, &ps);
}

int agent_op_stat(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        char *name;
        int dir_fd;

        int r = agent_open_parent(req->path, &dir_fd, &name);
        if (r < 0)
                return r;
        r = stat_put_at(fields, dir_fd, name, NULL);
        close(dir_fd);
        free(name);
        return r;
}

static int name_cmp(const void *x, const void *y) {
        return strcmp(*(char *const *) x, *(char *const *) y);
}

static void names_free(char **names, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

/* Reads all names; stops with -E2BIG once they alone would not fit one frame, so a huge
 * directory costs at most about PROTO_MAX_PAYLOAD of memory. */
static int list_read_names(DIR *d, char ***ret_names, size_t *ret_n) {
        char **names = NULL;
        size_t n = 0, cap = 0, bytes = 0;
        struct dirent *de;

        while ((de = readdir(d))) {
                if (agent_name_is_special(de->d_name))
                        continue;
                bytes += strlen(de->d_name) + 12;
                if (bytes > PROTO_MAX_PAYLOAD) {
                        names_free(names, n);
                        return -E2BIG;
                }
                if (n == cap) {
                        cap = cap ? cap * 2 : 64;
                        char **p = realloc(names, cap * sizeof(char *));
                        if (!p) {
                                names_free(names, n);
                                return -ENOMEM;
                        }
                        names = p;
                }
                if (!(names[n] = strdup(de->d_name))) {
                        names_free(names, n);
                        return -ENOMEM;
                }
                n++;
        }
        qsort(names, n, sizeof(char *), name_cmp);
        *ret_names = names;
        *ret_n = n;
        return 0;
}

static int list_put_entries(ProtoBuf *fields, int dir_fd, char **names, size_t n) {
        ProtoBuf entry = {};
        int r = 0;

        for (size_t i = 0; i < n && r >= 0; i++) {
                entry.len = 0;
                r = stat_put_at(&entry, dir_fd, names[i], names[i]);
                if (r == -ENOENT) { /* removed while we listed */
                        r = 0;
                        continue;
                }
                if (r >= 0)
                        proto_buf_put_tlv(fields, PROTO_TAG_ENTRY, entry.data, entry.len);
                if (fields->failed)
                        r = fields->failed == EMSGSIZE ? -E2BIG : -ENOMEM;
        }
        proto_buf_free(&entry);
        return r;
}

int agent_op_list(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        char **names;
        size_t n;
        int fd;

        int r = agent_open_path(req->path, O_RDONLY | O_DIRECTORY | O_NONBLOCK, &fd);
        if (r < 0)
                return r;
        DIR *d = fdopendir(fd);
        if (!d) {
                r = -errno;
                close(fd);
                return r;
        }
        r = list_read_names(d, &names, &n);
        if (r >= 0) {
                r = list_put_entries(fields, dirfd(d), names, n);
                names_free(names, n);
        }
        closedir(d);
        return r;
}

int agent_op_mkdir(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        mode_t mode = req->mode >= 0 ? (mode_t) req->mode : 0755;
        char *name;
        int fd;

        if (req->parents) {
                int r = agent_mkdir_p(req->path, mode, &fd);
                if (r >= 0)
                        close(fd);
                return r;
        }
        int r = agent_open_parent(req->path, &fd, &name);
        if (r < 0)
                return r;
        if (agent_name_is_special(name))
                r = -EEXIST;
        else if (mkdirat(fd, name, mode) < 0)
                r = -errno;
        close(fd);
        free(name);
        return r;
}

static int remove_tree(int dir_fd, const char *name, int depth);

static int remove_entry(int dir_fd, const char *name, unsigned char d_type, int depth) {
        struct stat st;

        if (d_type == DT_UNKNOWN) {
                if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return errno == ENOENT ? 0 : -errno;
                d_type = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
        }
        if (d_type == DT_DIR) {
                int r = remove_tree(dir_fd, name, depth + 1);
                if (r < 0)
                        return r;
        }
        if (unlinkat(dir_fd, name, d_type == DT_DIR ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* Empties dirfd/name. O_NOFOLLOW|O_DIRECTORY means a directory swapped for a symlink
 * mid-way fails to open instead of leading us elsewhere. */
static int remove_tree(int dir_fd, const char *name, int depth) {
        struct dirent *de;
        int r = 0;

        if (depth > REMOVE_MAX_DEPTH)
                return -ELOOP;
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                r = -errno;
                close(fd);
                return r;
        }
        while (r >= 0 && (de = readdir(d)))
                if (!agent_name_is_special(de->d_name))
                        r = remove_entry(dirfd(d), de->d_name, de->d_type, depth);
        closedir(d);
        return r;
}

int agent_op_remove(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        struct stat st;
        char *name;
        int dir_fd;

        int r = agent_open_parent(req->path, &dir_fd, &name);
        if (r < 0)
                return r;
        if (agent_name_is_special(name))
                r = -EINVAL;
        else if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                r = -errno;
        else if (S_ISDIR(st.st_mode) && req->recursive)
                r = remove_entry(dir_fd, name, DT_DIR, 0);
        else if (unlinkat(dir_fd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
                r = -errno;
        close(dir_fd);
        free(name);
        return r;
}

int agent_op_rename(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        char *name1 = NULL, *name2 = NULL;
        int fd1 = -1, fd2 = -1;

        int r = agent_open_parent(req->path, &fd1, &name1);
        if (r >= 0)
                r = agent_open_parent(req->path2, &fd2, &name2);
        if (r >= 0 && (agent_name_is_special(name1) || agent_name_is_special(name2)))
                r = -EINVAL;
        if (r >= 0 && renameat(fd1, name1, fd2, name2) < 0)
                r = -errno;
        if (fd1 >= 0)
                close(fd1);
        if (fd2 >= 0)
                close(fd2);
        free(name1);
        free(name2);
        return r;
}
