/* Image routes: list, inspect, build (progress as Server-Sent Events), import (a rootfs
 * tarball as the request body), remove. The image name is the path segment after
 * /v1/images/ (the router's "+": it is no sandbox id). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "daemon/core/image-build.h"
#include "daemon/core/image-import.h"
#include "daemon/core/images.h"

/* The name in /v1/images/<name>[/...]; validated. */
static int path_image_name(ApiCall *call, char ret[IMAGE_NAME_MAX + 1], ForgeError *err) {
        const char *s = http_request_path(call->req) + strlen("/v1/images/");
        size_t len = strcspn(s, "/");

        if (len > IMAGE_NAME_MAX)
                return images_name_check(s, err);
        memcpy(ret, s, len);
        ret[len] = 0;
        return images_name_check(ret, err);
}

void api_image_list(ApiCall *call) {
        json_t *list = images_list_json(call->api->manager);

        if (!list)
                return api_fail(call, "internal", "out of memory");
        api_respond_json(call, 200, json_pack("{s:o}", "images", list));
}

void api_image_get(ApiCall *call) {
        char name[IMAGE_NAME_MAX + 1];
        ForgeError err = {};
        json_t *image;

        if (path_image_name(call, name, &err) < 0 || images_check(call->api->manager, name, &err) < 0)
                return api_respond_error(call, &err);
        image = images_get_json(call->api->manager, name);
        api_respond_json(call, 200, image);
}

void api_image_delete(ApiCall *call) {
        char name[IMAGE_NAME_MAX + 1];
        ForgeError err = {};

        if (path_image_name(call, name, &err) < 0 || images_remove(call->api->manager, name, &err) < 0)
                return api_respond_error(call, &err);
        api_respond_json(call, 204, NULL);
}

/* ---- build: the call stays open as an event stream until the build ends ---- */

typedef struct BuildWatch {
        ApiCall *call;
        ImageBuild *build;
} BuildWatch;

static void watch_free(BuildWatch *w) {
        api_call_free(w->call);
        free(w);
}

static void on_build_progress(const ImageBuildEvent *ev, void *userdata) {
        BuildWatch *w = userdata;

        api_sse_json(w->call->req, "progress",
                     json_pack("{s:s, s:s, s:I, s:s?}", "image", ev->image, "phase", ev->phase, "bytes",
                               (json_int_t) ev->bytes, "message", ev->message));
}

static void on_build_done(json_t *image, const ForgeError *err, void *userdata) {
        BuildWatch *w = userdata;

        if (err)
                api_sse_json(w->call->req, "error",
                             json_pack("{s:s, s:s}", "error", err->message, "code", err->code));
        else
                api_sse_json(w->call->req, "done", json_incref(image));
        http_response_end(w->call->req);
        watch_free(w);
}

static const ImageBuildOps build_ops = {
        .on_progress = on_build_progress,
        .on_done = on_build_done,
};

/* The client went away: the build goes on; GET /v1/images lists the image once done. */
static void on_build_watcher_gone(HttpRequest *req, void *userdata) {
        BuildWatch *w = userdata;

        image_build_detach(w->build);
        watch_free(w);
}

void api_image_build(ApiCall *call) {
        char name[IMAGE_NAME_MAX + 1];
        BuildWatch *w = calloc(1, sizeof(*w));
        ForgeError err = {};

        if (!w)
                return api_fail(call, "internal", "out of memory");
        w->call = call;
        if (path_image_name(call, name, &err) < 0 ||
            image_build_start(call->api->manager, name, &build_ops, w, &w->build, &err) < 0) {
                free(w);
                return api_respond_error(call, &err);
        }
        /* The build's first step runs on the next loop iteration, after this. */
        if (http_sse_begin(call->req) < 0) {
                image_build_detach(w->build);
                watch_free(w);
                return;
        }
        http_request_on_abort(call->req, on_build_watcher_gone, w);
}

/* ---- import: the body is a rootfs tarball, kept in the new image's directory until
 * it is extracted in the thread pool ---- */

typedef struct Import {
        uv_work_t work;
        Manager *manager;
        ApiCall *call; /* NULL once answered */
        char name[IMAGE_NAME_MAX + 1];
        char *dir; /* $STATE/images/.new-<name>-XXXXXX, claimed */
        int archive_fd;
        ImageImportLimits limits;
        uint64_t received;
        bool refused; /* answered already (call freed); the rest of the body is dropped */
        ForgeError err;
} Import;

static void import_free(Import *im) {
        if (im->archive_fd >= 0)
                close(im->archive_fd);
        free(im->dir);
        free(im);
}

/* Ends the claim (keeping the image only if ok) and answers, unless answered already. */
static void import_end(Import *im, bool ok) {
        ForgeError err = {};
        int r = images_finish(im->manager, im->name, im->dir, ok, &err);

        if (!im->refused) {
                if (!ok)
                        api_respond_error(im->call, &im->err);
                else if (r < 0)
                        api_respond_error(im->call, &err);
                else
                        api_respond_json(im->call, 201, images_get_json(im->manager, im->name));
        }
        import_free(im);
}

static void import_refuse(Import *im) {
        /* Answered now; the request lives on until its body has drained. */
        im->refused = true;
        api_respond_error(TAKE_PTR(im->call), &im->err);
}

static void on_import_chunk(HttpRequest *req, const char *data, size_t len, void *userdata) {
        Import *im = userdata;

        if (im->refused)
                return;
        im->received += len;
        if (im->received > im->limits.max_bytes) {
                forge_error_set(&im->err, EFBIG, "payload_too_large",
                                "the archive is larger than %llu bytes",
                                (unsigned long long) im->limits.max_bytes);
                return import_refuse(im);
        }
        if (write(im->archive_fd, data, len) != (ssize_t) len) {
                forge_error_set(&im->err, errno ? errno : EIO, "no_space", "cannot store the archive: %m");
                return import_refuse(im);
        }
}

static void work_import(uv_work_t *w) {
        Import *im = w->data;
        _cleanup_close_ int dir_fd = open(im->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int root_fd = -1;
        json_t *meta;

        if (dir_fd < 0 || mkdirat(dir_fd, "rootfs", 0755) < 0 ||
            (root_fd = openat(dir_fd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                forge_error_set(&im->err, errno, "internal", "cannot create the image directory: %m");
                return;
        }
        if (lseek(im->archive_fd, 0, SEEK_SET) < 0 ||
            image_import_extract(im->archive_fd, root_fd, &im->limits, &im->err) < 0)
                return (void) forge_error_set(&im->err, EIO, "internal", "cannot read the stored archive");
        unlinkat(dir_fd, "archive.tar", 0);
        meta = json_pack("{s:s, s:o, s:s, s:s, s:s, s:s}", "name", im->name, "runtimes",
                         image_import_runtimes(root_fd), "shell", "/bin/sh", "user", "root", "workdir",
                         "/root", "source", "import");
        if (!meta)
                return (void) forge_error_set(&im->err, ENOMEM, "internal", "out of memory");
        if (images_meta_write(im->dir, meta, &im->err) >= 0)
                images_sync(im->dir, &im->err);
        json_decref(meta);
}

static void after_import(uv_work_t *w, int status) {
        Import *im = w->data;

        import_end(im, !forge_error_is_set(&im->err));
}

static void on_import_end(HttpRequest *req, int status, void *userdata) {
        Import *im = userdata;

        if (status < 0 && !im->refused)
                forge_error_set(&im->err, -status, "invalid_request", "the upload broke off");
        if (forge_error_is_set(&im->err))
                return import_end(im, false);
        im->work.data = im;
        if (uv_queue_work(im->manager->loop, &im->work, work_import, after_import) < 0) {
                forge_error_set(&im->err, ENOMEM, "internal", "cannot queue the extraction");
                import_end(im, false);
        }
}

/* ?max_bytes=N&max_entries=N lower the caps (never raise them) for this import. */
static int query_cap(ApiCall *call, const char *key, uint64_t *cap, ForgeError *err) {
        bool invalid = false;
        const char *v = http_request_query(call->req, key, &invalid);
        unsigned long long n;
        char *end;

        if (!v && !invalid)
                return 0;
        errno = 0;
        n = v && v[0] != '-' ? strtoull(v, &end, 10) : 0;
        if (invalid || !v || !v[0] || *end || errno || n == 0)
                return forge_error_set(err, EINVAL, "invalid_request", "'%s' is a positive integer", key);
        *cap = MIN(*cap, (uint64_t) n);
        return 0;
}

void api_image_import(ApiCall *call) {
        Import *im = calloc(1, sizeof(*im));
        _cleanup_free_ char *path = NULL;
        ForgeError err = {};

        if (!im)
                return api_fail(call, "internal", "out of memory");
        im->call = call;
        im->manager = call->api->manager;
        im->archive_fd = -1;
        im->limits = (ImageImportLimits){IMAGE_IMPORT_MAX_BYTES, IMAGE_IMPORT_MAX_ENTRIES};
        if (path_image_name(call, im->name, &err) < 0 ||
            query_cap(call, "max_bytes", &im->limits.max_bytes, &err) < 0 ||
            query_cap(call, "max_entries", &im->limits.max_entries, &err) < 0 ||
            images_begin(call->api->manager, im->name, &im->dir, &err) < 0) {
                import_free(im);
                return api_respond_error(call, &err);
        }
        if (asprintf(&path, "%s/archive.tar", im->dir) < 0 ||
            (im->archive_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
                forge_error_set(&im->err, errno ? errno : ENOMEM, "internal",
                                "cannot store the archive: %m");
                return import_end(im, false);
        }
        http_request_stream_body(call->req, on_import_chunk, on_import_end, im);
}
