/* Images: list, build (a Server-Sent Events stream of progress), import (the tarball as
 * a streamed PUT body), remove. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libforge/internal.h"

static int no_memory(ForgeClientError *err) {
        return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
}

/* "/v1/images/<name><suffix>", the name escaped. */
static int image_path(const char *name, const char *suffix, char **ret, ForgeClientError *err) {
        _cleanup_free_ char *escaped = NULL;

        if (!name || !name[0])
                return forge__error_set(err, EINVAL, 0, "invalid_argument", "no image name given");
        escaped = forge__url_escape(name);
        if (!escaped || asprintf(ret, "/v1/images/%s%s", escaped, suffix) < 0)
                return no_memory(err);
        return 0;
}

static int image_from_json(json_t *j, ForgeImage *ret, ForgeClientError *err) {
        ForgeImage img = {.size = -1};
        const char *key;
        size_t len = 0;
        json_t *v;
        int r;

        if (!json_is_object(j))
                return forge__error_set(err, EPROTO, 200, "bad_response", "an image is not a JSON object");
        r = forge__json_strdup(j, "name", &img.name);
        r = r < 0 ? r : forge__json_strdup(j, "created", &img.created);
        if (json_is_integer(json_object_get(j, "size")))
                img.size = json_integer_value(json_object_get(j, "size"));
        json_object_foreach(json_object_get(j, "runtimes"), key, v) {
                len += strlen(key) + 1;
        }
        img.runtimes = calloc(1, len + 1);
        img.json = json_dumps(j, JSON_COMPACT);
        if (r < 0 || !img.runtimes || !img.json) {
                forge_image_clear(&img);
                return no_memory(err);
        }
        json_object_foreach(json_object_get(j, "runtimes"), key, v) {
                if (img.runtimes[0])
                        strcat(img.runtimes, ",");
                strcat(img.runtimes, key);
        }
        *ret = img;
        return 0;
}

FORGE_PUBLIC void forge_image_clear(ForgeImage *img) {
        if (!img)
                return;
        free(img->name);
        free(img->created);
        free(img->runtimes);
        free(img->json);
        *img = (ForgeImage){};
}

FORGE_PUBLIC void forge_image_list_clear(ForgeImageList *list) {
        if (!list)
                return;
        for (size_t i = 0; i < list->n_images; i++)
                forge_image_clear(&list->images[i]);
        free(list->images);
        *list = (ForgeImageList){};
}

FORGE_PUBLIC int forge_image_list(ForgeClient *c, ForgeImageList *ret, ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        ForgeImageList list = {};
        json_t *items;
        int r;

        r = forge__request_json(c, "GET", "/v1/images", NULL, &answer, err);
        if (r < 0)
                return r;
        items = json_object_get(answer, "images");
        if (!json_is_array(items))
                return forge__error_set(err, EPROTO, 200, "bad_response", "the answer lacks an image list");
        list.images = calloc(json_array_size(items) + 1, sizeof(ForgeImage));
        if (!list.images)
                return no_memory(err);
        for (size_t i = 0; i < json_array_size(items); i++) {
                r = image_from_json(json_array_get(items, i), &list.images[i], err);
                if (r < 0) {
                        forge_image_list_clear(&list);
                        return r;
                }
                list.n_images++;
        }
        *ret = list;
        return 0;
}

FORGE_PUBLIC int forge_image_remove(ForgeClient *c, const char *name, ForgeClientError *err) {
        _cleanup_free_ char *path = NULL;
        int r = image_path(name, "", &path, err);

        return r < 0 ? r : forge__request_json(c, "DELETE", path, NULL, NULL, err);
}

/* ---- build ---- */

typedef struct BuildState {
        ForgeImageProgressFn on_progress;
        void *userdata;
        ForgeSseParser sse;
        json_t *image;            /* the done event's */
        ForgeClientError failure; /* the error event's */
        int callback_error;
        bool bad;
} BuildState;

static int on_build_event(const char *event, const char *data, size_t size, void *userdata) {
        BuildState *st = userdata;
        json_t *j = json_loadb(data, size, 0, NULL);
        int r = 0;

        if (!json_is_object(j)) {
                json_decref(j);
                st->bad = true;
                return -EPROTO;
        }
        if (strcmp(event, "progress") == 0 && st->on_progress) {
                ForgeImageProgress p = {
                        .phase = json_string_value(json_object_get(j, "phase")) ?: "",
                        .bytes = (uint64_t) json_integer_value(json_object_get(j, "bytes")),
                        .message = json_string_value(json_object_get(j, "message")),
                        .image = json_string_value(json_object_get(j, "image")) ?: "",
                };
                r = st->on_progress(&p, st->userdata);
                if (r < 0)
                        st->callback_error = r;
        } else if (strcmp(event, "done") == 0)
                st->image = json_incref(j);
        else if (strcmp(event, "error") == 0)
                forge__error_set(&st->failure, EIO, 200,
                                 json_string_value(json_object_get(j, "code")) ?: "build_failed", "%s",
                                 json_string_value(json_object_get(j, "error")) ?: "the build failed");
        json_decref(j);
        return r < 0 ? r : 0;
}

static int on_build_bytes(const char *bytes, size_t size, void *userdata) {
        BuildState *st = userdata;

        return forge__sse_feed(&st->sse, bytes, size);
}

FORGE_PUBLIC int forge_image_build(ForgeClient *c, const char *name, ForgeImageProgressFn on_progress,
                                   void *userdata, ForgeImage *ret, ForgeClientError *err) {
        _cleanup_free_ char *path = NULL;
        BuildState st = {.on_progress = on_progress, .userdata = userdata};
        ForgeTransfer t = {.method = "POST", .accept = "text/event-stream"};
        int r;

        r = image_path(name, "/build", &path, err);
        if (r < 0)
                return r;
        forge__sse_init(&st.sse, on_build_event, &st);
        t.path = path;
        t.sink = on_build_bytes;
        t.sink_userdata = &st;
        r = forge__transfer_perform(c, &t, err);
        forge__transfer_done(&t);
        forge__sse_done(&st.sse);
        if (st.callback_error < 0)
                r = st.callback_error;
        else if (st.failure.code[0]) {
                if (err)
                        *err = st.failure;
                r = -EIO;
        } else if (st.bad)
                r = forge__error_set(err, EPROTO, 200, "bad_response", "a build event is not a JSON object");
        else if (r >= 0 && !st.image)
                r = forge__error_set(err, EPIPE, 200, "bad_response",
                                     "the build stream ended before the build did");
        else if (r >= 0 && ret)
                r = image_from_json(st.image, ret, err);
        json_decref(st.image);
        return r;
}

/* ---- import ---- */

static ssize_t on_tar_read(char *buf, size_t size, void *userdata) {
        int fd = *(int *) userdata;
        ssize_t n;

        do
                n = read(fd, buf, size);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

FORGE_PUBLIC int forge_image_import(ForgeClient *c, const char *name, const char *tar_path, ForgeImage *ret,
                                    ForgeClientError *err) {
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_close_ int fd = -1;
        ForgeTransfer t = {.method = "PUT"};
        struct stat st;
        int r;

        r = image_path(name, "", &path, err);
        if (r < 0)
                return r;
        fd = open(tar_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return forge__error_set(err, errno, 0, "local_io", "cannot open %s: %s", tar_path,
                                        strerror(errno));
        t.path = path;
        t.source = on_tar_read;
        t.source_userdata = &fd;
        t.source_size = S_ISREG(st.st_mode) ? (int64_t) st.st_size : -1;
        r = forge__transfer_perform(c, &t, err);
        if (r >= 0) {
                answer = json_loadb(t.response ? t.response : "", t.response_size, 0, NULL);
                r = ret ? image_from_json(answer, ret, err) : 0;
        }
        forge__transfer_done(&t);
        return r;
}
