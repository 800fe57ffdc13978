/* The files API. Uploads and downloads stream through libcurl's callbacks in the
 * transfer's own chunk size, so no file is ever held whole in memory. */
#include <string.h>
#include <sys/stat.h>

#include "basic/fd-util.h"
#include "libforge/internal.h"

static int path_error(int r, ForgeClientError *err) {
        if (r == -EINVAL)
                return forge__error_set(err, EINVAL, 0, "invalid_argument",
                                        "no sandbox id or file path given");
        return forge__error_set(err, r, 0, "local_io", "out of memory");
}

/* ---- sources and sinks ---- */

static ssize_t on_fd_read(char *buf, size_t size, void *userdata) {
        int fd = *(int *) userdata;
        ssize_t n;

        do
                n = read(fd, buf, size);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

static ssize_t on_stream_read(char *buf, size_t size, void *userdata) {
        FILE *f = userdata;
        size_t n = fread(buf, 1, size, f);

        if (n == 0 && ferror(f))
                return errno > 0 ? -errno : -EIO;
        return (ssize_t) n;
}

static int on_fd_write(const char *bytes, size_t size, void *userdata) {
        return fd_write_full(*(int *) userdata, bytes, size);
}

static int on_stream_write(const char *bytes, size_t size, void *userdata) {
        FILE *f = userdata;

        if (fwrite(bytes, 1, size, f) != size)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

/* Bytes left in fd from pos to its end when it is a regular file, else -1 (which makes
 * the upload chunked). */
static int64_t bytes_left(int fd, off_t pos) {
        struct stat st;

        if (fd < 0 || pos < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < pos)
                return -1;
        return (int64_t) (st.st_size - pos);
}

/* One streamed transfer on .../files?path=: t carries the method and the source or sink. */
static int file_transfer(ForgeClient *c, const char *id, const char *path, ForgeTransfer *t,
                         ForgeClientError *err) {
        _cleanup_free_ char *route = NULL;
        int r;

        r = forge__file_path(id, "files", path, NULL, &route);
        if (r < 0)
                return path_error(r, err);
        t->path = route;
        r = forge__transfer_perform(c, t, err);
        forge__transfer_done(t);
        return r;
}

static int file_put(ForgeClient *c, const char *id, const char *path, ForgeSourceFn source, void *userdata,
                    int64_t size, ForgeClientError *err) {
        ForgeTransfer t = {
                .method = "PUT", .source = source, .source_userdata = userdata, .source_size = size};

        return file_transfer(c, id, path, &t, err);
}

FORGE_PUBLIC int forge_file_put_fd(ForgeClient *c, const char *id, const char *path, int fd,
                                   ForgeClientError *err) {
        return file_put(c, id, path, on_fd_read, &fd, bytes_left(fd, lseek(fd, 0, SEEK_CUR)), err);
}

FORGE_PUBLIC int forge_file_put(ForgeClient *c, const char *id, const char *path, FILE *in,
                                ForgeClientError *err) {
        return file_put(c, id, path, on_stream_read, in, bytes_left(fileno(in), ftello(in)), err);
}

static int file_get(ForgeClient *c, const char *id, const char *path, ForgeSinkFn sink, void *userdata,
                    ForgeClientError *err) {
        ForgeTransfer t = {.method = "GET", .sink = sink, .sink_userdata = userdata};

        return file_transfer(c, id, path, &t, err);
}

FORGE_PUBLIC int forge_file_get_fd(ForgeClient *c, const char *id, const char *path, int fd,
                                   ForgeClientError *err) {
        return file_get(c, id, path, on_fd_write, &fd, err);
}

FORGE_PUBLIC int forge_file_get(ForgeClient *c, const char *id, const char *path, FILE *out,
                                ForgeClientError *err) {
        int r = file_get(c, id, path, on_stream_write, out, err);

        if (r >= 0 && fflush(out) != 0)
                return forge__error_set(err, errno, 0, "local_io", "%s", strerror(errno));
        return r;
}

/* ---- metadata operations ---- */

FORGE_PUBLIC void forge_dir_list_clear(ForgeDirList *list) {
        if (!list)
                return;
        for (size_t i = 0; i < list->n_entries; i++)
                forge_file_info_clear(&list->entries[i]);
        free(list->entries);
        free(list->path);
        memset(list, 0, sizeof(*list));
}

FORGE_PUBLIC int forge_file_list(ForgeClient *c, const char *id, const char *path, ForgeDirList *ret,
                                 ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *route = NULL;
        ForgeDirList list = {};
        json_t *entries;
        int r;

        r = forge__file_path(id, "files/list", path, NULL, &route);
        if (r < 0)
                return path_error(r, err);
        r = forge__request_json(c, "GET", route, NULL, &answer, err);
        if (r < 0)
                return r;
        entries = json_object_get(answer, "entries");
        if (!json_is_array(entries))
                return forge__error_set(err, EPROTO, 200, "bad_response",
                                        "the answer lacks directory entries");
        list.entries = calloc(json_array_size(entries) + 1, sizeof(ForgeFileInfo));
        if (!list.entries || forge__json_strdup(answer, "path", &list.path) < 0) {
                forge_dir_list_clear(&list);
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        }
        for (size_t i = 0; i < json_array_size(entries); i++) {
                r = forge__file_info_from_json(json_array_get(entries, i), &list.entries[i], err);
                if (r < 0) {
                        forge_dir_list_clear(&list);
                        return r;
                }
                list.n_entries++;
        }
        *ret = list;
        return 0;
}

FORGE_PUBLIC int forge_file_stat(ForgeClient *c, const char *id, const char *path, ForgeFileInfo *ret,
                                 ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *route = NULL;
        int r;

        r = forge__file_path(id, "files/stat", path, NULL, &route);
        if (r < 0)
                return path_error(r, err);
        r = forge__request_json(c, "GET", route, NULL, &answer, err);
        if (r < 0)
                return r;
        return forge__file_info_from_json(answer, ret, err);
}

FORGE_PUBLIC int forge_file_mkdir(ForgeClient *c, const char *id, const char *path, bool parents,
                                  ForgeClientError *err) {
        _cleanup_json_ json_t *body = NULL;
        _cleanup_free_ char *route = NULL;
        int r;

        if (!path || !path[0])
                return path_error(-EINVAL, err);
        r = forge__sandbox_path(id, "/files/mkdir", &route);
        if (r < 0)
                return path_error(r, err);
        body = json_pack("{s:s, s:b}", "path", path, "parents", parents);
        if (!body)
                return forge__error_set(err, EINVAL, 0, "invalid_argument", "the path is not valid UTF-8");
        return forge__request_json(c, "POST", route, body, NULL, err);
}

FORGE_PUBLIC int forge_file_remove(ForgeClient *c, const char *id, const char *path, bool recursive,
                                   ForgeClientError *err) {
        _cleanup_free_ char *route = NULL;
        int r;

        r = forge__file_path(id, "files", path, recursive ? "&recursive=1" : NULL, &route);
        if (r < 0)
                return path_error(r, err);
        return forge__request_json(c, "DELETE", route, NULL, NULL, err);
}
