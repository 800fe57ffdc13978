#include "daemon/core/image-build.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/log.h"
#include "basic/rm-rf.h"
#include "basic/time-util.h"
#include "daemon/core/image-recipe.h"
#include "daemon/core/images.h"

#define BUILD_LINE_MAX 1024
#define BUILD_CAPTURE_MAX (256 * 1024)
#define BUILD_TICK_MS 1000
/* Package lists younger than this are used as they are: builds close together (python
 * and node after base) run `apt-get update` once. Older ones, or a download that fails
 * on them, are refreshed. */
#define BUILD_LISTS_FRESH_MIN "30"
/* dpkg writes each file with fsync unless told otherwise; a build is synced once, whole,
 * at the end (images_sync), so this file lives in the new root only while it is built. */
#define BUILD_DPKG_CFG_DIR "etc/dpkg/dpkg.cfg.d"
#define BUILD_DPKG_CFG BUILD_DPKG_CFG_DIR "/zz-forge-build"

typedef struct BuildStep BuildStep;
typedef void (*BuildStepDone)(ImageBuild *b, int64_t status);

/* One child process of the build, its stdout and stderr on one pipe. */
struct BuildStep {
        ImageBuild *build;
        uv_process_t proc;
        uv_pipe_t out;
        BuildStepDone done;
        int64_t status;
        bool exited, eof;
        int open_handles;
};

struct ImageBuild {
        Manager *manager;
        char *name;
        char *dir;  /* $STATE/images/.new-<name>-XXXXXX */
        char *root; /* dir/rootfs */
        ImageRecipe recipe;
        ImageBuild *parent_build; /* the parent image's build, when this one started it */
        bool waiting_parent;      /* for a build of the parent that another request started */
        bool holds_parent;        /* the parent image is held (images_hold) while it is copied */
        char *mirror, *suite;
        const ImageBuildOps *ops; /* NULL once detached */
        void *userdata;
        const char *phase;
        char line[BUILD_LINE_MAX]; /* the line being read */
        size_t line_len;
        char message[BUILD_LINE_MAX];    /* the last complete line */
        char error_line[BUILD_LINE_MAX]; /* the last "E: " line of debootstrap */
        char *captured;                  /* the whole output of the sources step */
        size_t captured_len;
        uint64_t bytes;
        uv_timer_t tick;
        uv_work_t size_work, finish_work;
        bool sizing;   /* a size walk is in the thread pool */
        bool finished; /* on_done ran */
        unsigned refs; /* the build itself, the timer, a step, a work item */
        int64_t started_ms;
        ForgeError err;
};

static void step_first(ImageBuild *b);
static void step_parent(ImageBuild *b);

static void build_unref(ImageBuild *b) {
        if (--b->refs > 0)
                return;
        image_recipe_done(&b->recipe);
        free(b->name);
        free(b->dir);
        free(b->root);
        free(b->mirror);
        free(b->suite);
        free(b->captured);
        free(b);
}

static void build_progress(ImageBuild *b) {
        ImageBuildEvent ev = {.image = b->name,
                              .phase = b->phase,
                              .bytes = b->bytes,
                              .message = b->message[0] ? b->message : NULL};

        if (b->ops && b->ops->on_progress)
                b->ops->on_progress(&ev, b->userdata);
}

static void build_set_phase(ImageBuild *b, const char *phase) {
        if (b->phase && strcmp(b->phase, phase) == 0)
                return;
        b->phase = phase;
        build_progress(b);
}

static void on_tick_closed(uv_handle_t *h) {
        build_unref(h->data);
}

/* The end, with err NULL on success: the image is in place (or nothing is left). */
static void build_end(ImageBuild *b, const ForgeError *err) {
        ForgeError finish_err = {};
        json_t *image = NULL;
        int r;

        if (b->holds_parent) {
                images_release(b->manager, b->recipe.parent);
                b->holds_parent = false;
        }
        r = images_finish(b->manager, b->name, b->dir, !err, &finish_err);
        if (!err && r < 0)
                err = &finish_err;
        if (!err)
                image = images_get_json(b->manager, b->name);
        if (err)
                log_warn("image %s: build failed: %s", b->name, err->message);
        else
                log_info("image %s built in %.1f s", b->name,
                         (double) (time_mono_ms() - b->started_ms) / 1000);
        b->finished = true;
        if (b->ops && b->ops->on_done)
                b->ops->on_done(image, err, b->userdata);
        json_decref(image);
        uv_close((uv_handle_t *) &b->tick, on_tick_closed);
        build_unref(b);
}

/* "building image 'NAME' failed: STEP: DETAIL" */
static void build_fail(ImageBuild *b, int errnum, const char *step, const char *detail) {
        forge_error_set(&b->err, errnum, "build_failed", "building image '%s' failed: %s: %s", b->name, step,
                        detail);
        build_end(b, &b->err);
}

/* ---- the size of the new root, walked in the thread pool ---- */

static void work_size(uv_work_t *w) {
        ImageBuild *b = w->data;
        uint64_t bytes = 0;

        if (images_tree_size(b->root, &bytes) >= 0)
                b->bytes = bytes;
}

static void after_size(uv_work_t *w, int status) {
        ImageBuild *b = w->data;

        b->sizing = false;
        if (!b->finished)
                build_progress(b);
        build_unref(b);
}

static void on_tick(uv_timer_t *t) {
        ImageBuild *b = t->data;

        if (!b->phase)
                return step_first(b);
        if (b->waiting_parent)
                return step_parent(b);
        if (b->sizing || b->finished)
                return;
        b->size_work.data = b;
        if (uv_queue_work(b->manager->loop, &b->size_work, work_size, after_size) >= 0) {
                b->sizing = true;
                b->refs++;
        }
}

/* ---- running one step ---- */

/* debootstrap's "I: <Verb> ..." lines say where it is. */
static const struct {
        const char *prefix, *phase;
} phase_lines[] = {
        {"I: Retrieving", "download"}, {"I: Validating", "download"}, {"I: Checking", "resolve"},
        {"I: Resolving", "resolve"},   {"I: Found", "resolve"},       {"I: Extracting", "extract"},
        {"I: Installing", "install"},  {"I: Unpacking", "install"},   {"I: Configuring", "install"},
        /* apt-get, installing the packages of derived recipes */
        {"Reading package lists", "resolve"}, {"Get:", "download"}, {"Unpacking ", "install"},
        {"Setting up ", "install"},
};

static void build_line(ImageBuild *b, const char *line) {
        snprintf(b->message, sizeof(b->message), "%s", line);
        if (strncmp(line, "E: ", 3) == 0)
                snprintf(b->error_line, sizeof(b->error_line), "%s", line + 3);
        else if (strncmp(line, "dpkg: error", 11) == 0)
                snprintf(b->error_line, sizeof(b->error_line), "%s", line);
        for (size_t i = 0; i < ELEMENTSOF(phase_lines); i++)
                if (strncmp(line, phase_lines[i].prefix, strlen(phase_lines[i].prefix)) == 0) {
                        build_set_phase(b, phase_lines[i].phase);
                        break;
                }
}

static void build_capture(ImageBuild *b, const char *data, size_t len) {
        char *n;

        if (b->captured_len + len > BUILD_CAPTURE_MAX)
                return;
        n = realloc(b->captured, b->captured_len + len + 1);
        if (!n)
                return;
        memcpy(n + b->captured_len, data, len);
        b->captured = n;
        b->captured_len += len;
        n[b->captured_len] = 0;
}

static void on_step_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
        static char chunk[4096]; /* the loop thread only; consumed before the next read */

        *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void on_step_closed(uv_handle_t *h) {
        BuildStep *s = h->data;
        ImageBuild *b = s->build;

        if (--s->open_handles > 0)
                return;
        if (!b->finished)
                s->done(b, s->status);
        free(s);
        build_unref(b);
}

static void step_maybe_end(BuildStep *s) {
        if (!s->exited || !s->eof)
                return;
        uv_close((uv_handle_t *) &s->proc, on_step_closed);
        uv_close((uv_handle_t *) &s->out, on_step_closed);
}

static void on_step_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
        BuildStep *s = stream->data;
        ImageBuild *b = s->build;

        if (n < 0) {
                if (b->line_len > 0) {
                        b->line[b->line_len] = 0;
                        build_line(b, b->line);
                        b->line_len = 0;
                }
                uv_read_stop(stream);
                s->eof = true;
                return step_maybe_end(s);
        }
        if (!b->phase || strcmp(b->phase, "sources") == 0)
                build_capture(b, buf->base, (size_t) n);
        for (ssize_t i = 0; i < n; i++) {
                char c = buf->base[i];
                if (c == '\n' || b->line_len == sizeof(b->line) - 1) {
                        b->line[b->line_len] = 0;
                        build_line(b, b->line);
                        b->line_len = 0;
                        if (c == '\n')
                                continue;
                }
                b->line[b->line_len++] = c;
        }
}

static void on_step_exit(uv_process_t *p, int64_t status, int term_signal) {
        BuildStep *s = p->data;

        s->status = term_signal ? 128 + term_signal : status;
        s->exited = true;
        step_maybe_end(s);
}

static int build_step_run(ImageBuild *b, char **argv, BuildStepDone done) {
        BuildStep *s = calloc(1, sizeof(*s));
        uv_stdio_container_t stdio[3];
        uv_process_options_t opts;
        uv_file fds[2];
        int r;

        if (!s)
                return -ENOMEM;
        *s = (BuildStep){.build = b, .done = done};
        /* One pipe for both stdout and stderr, so lines keep their order. */
        r = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
        if (r < 0) {
                free(s);
                return r;
        }
        r = uv_pipe_init(b->manager->loop, &s->out, 0);
        if (r >= 0)
                r = uv_pipe_open(&s->out, fds[0]);
        if (r < 0) {
                close(fds[0]);
                close(fds[1]);
                free(s);
                return r;
        }
        s->out.data = s->proc.data = s;
        b->refs++;
        stdio[0] = (uv_stdio_container_t){.flags = UV_IGNORE};
        stdio[1] = stdio[2] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = fds[1]};
        opts = (uv_process_options_t){
                .file = argv[0], .args = argv, .exit_cb = on_step_exit, .stdio = stdio, .stdio_count = 3};
        r = uv_spawn(b->manager->loop, &s->proc, &opts);
        close(fds[1]);
        s->open_handles = 2;
        if (r < 0) {
                /* The process handle is closed even when spawn failed. */
                snprintf(b->message, sizeof(b->message), "cannot run %s: %s", argv[0], uv_strerror(r));
                s->exited = s->eof = true;
                s->status = 127;
                step_maybe_end(s);
                return 0;
        }
        return uv_read_start((uv_stream_t *) &s->out, on_step_alloc, on_step_read);
}

/* ---- the steps, in order ---- */

static void clean_apt(const char *root);

/* dpkg's force-unsafe-io (no fsync per unpacked file) while the root is being built. */
static int dpkg_unsafe_io_enable(const char *root) {
        _cleanup_free_ char *dir = NULL, *path = NULL;
        int r;

        if (asprintf(&dir, "%s/" BUILD_DPKG_CFG_DIR, root) < 0 ||
            asprintf(&path, "%s/" BUILD_DPKG_CFG, root) < 0)
                return -ENOMEM;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        return write_file_atomic(path,
                                 "# forged: the image is synced once when its build ends\n"
                                 "force-unsafe-io\n",
                                 0644);
}

static void work_finish(uv_work_t *w) {
        ImageBuild *b = w->data;
        _cleanup_free_ char *cfg = NULL;

        if (asprintf(&cfg, "%s/" BUILD_DPKG_CFG, b->root) < 0) {
                forge_error_set(&b->err, ENOMEM, "internal", "out of memory");
                return;
        }
        if (unlink(cfg) < 0 && errno != ENOENT) {
                forge_error_set(&b->err, errno, "internal", "cannot remove %s: %m", cfg);
                return;
        }
        clean_apt(b->root);
        if (images_meta_write(b->dir, b->recipe.meta, &b->err) >= 0)
                images_sync(b->dir, &b->err);
}

static void after_finish(uv_work_t *w, int status) {
        ImageBuild *b = w->data;

        build_end(b, forge_error_is_set(&b->err) ? &b->err : NULL);
        build_unref(b);
}

static void step_finish(ImageBuild *b) {
        build_set_phase(b, "finish");
        b->finish_work.data = b;
        b->refs++;
        if (uv_queue_work(b->manager->loop, &b->finish_work, work_finish, after_finish) < 0) {
                b->refs--;
                build_fail(b, ENOMEM, "finish", "cannot queue the last step");
        }
}

static void on_install_done(ImageBuild *b, int64_t status) {
        if (status != 0)
                return build_fail(b, EIO, "apt-get", b->error_line[0] ? b->error_line : b->message);
        step_finish(b);
}

/* The packages of derived recipes, with apt's resolver, inside the new root: chrooted
 * in a private mount namespace holding its /proc and the shared package caches.
 *
 * The caches are shared by every build (in any forged), and apt fails at once on a lock
 * another apt holds, so builds take turns with a lock of our own for what changes them:
 * apt-get update (only if the lists are older than $4 minutes or were fetched for other
 * sources) and the downloads. The installation runs after the lock is released, beside
 * other builds: on its own snapshot of the lists (hardlinks; apt replaces list files by
 * rename, never in place) and the archives read-only (it only reads the files it has
 * just downloaded). */
static const char install_script[] =
        "set -e\n"
        "root=$1 archives=$2 lists=$3 fresh_min=$4\n"
        "shift 4\n"
        "mount -t proc proc \"$root/proc\"\n"
        "[ -c \"$root/dev/null\" ] ||\n"
        "  { : > \"$root/dev/null\"; mount --bind /dev/null \"$root/dev/null\"; }\n"
        "mount --bind \"$archives\" \"$root/var/cache/apt/archives\"\n"
        "mount --bind \"$lists\" \"$root/var/lib/apt/lists\"\n"
        "apt() { chroot \"$root\" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends "
        "-o Dpkg::Use-Pty=0 \"$@\"; }\n"
        "sources() {\n"
        "  cat \"$root/etc/apt/sources.list\" \"$root\"/etc/apt/sources.list.d/* 2>/dev/null || :\n"
        "}\n"
        "update() { apt update && sources > \"$lists.sources\"; }\n"
        "exec 9>\"$lists.lock\"\n"
        "flock 9\n"
        "if [ -z \"$(find \"$lists.sources\" -mmin -\"$fresh_min\" 2>/dev/null)\" ] ||\n"
        "   ! sources | cmp -s - \"$lists.sources\"; then update; fi\n"
        "apt --download-only install \"$@\" || { update && apt --download-only install \"$@\"; }\n"
        "umount \"$root/var/lib/apt/lists\"\n"
        "for f in \"$lists\"/*; do\n"
        "  [ -f \"$f\" ] && [ \"${f##*/}\" != lock ] || continue\n"
        "  ln -f \"$f\" \"$root/var/lib/apt/lists/\" 2>/dev/null || cp \"$f\" \"$root/var/lib/apt/lists/\"\n"
        "done\n"
        "flock -u 9\n"
        "mount -o remount,bind,ro \"$root/var/cache/apt/archives\"\n"
        "apt install \"$@\"\n";

static void step_install(ImageBuild *b) {
        enum { FIXED = 19 };
        size_t n = json_array_size(b->recipe.packages), i;
        /* the fixed part, the packages, NULL */
        _cleanup_free_ char **argv = calloc(FIXED + n + 1, sizeof(char *));
        json_t *v;
        int r;

        if (!argv)
                return build_fail(b, ENOMEM, "apt-get", "out of memory");
        memcpy(argv,
               (char *[FIXED]){"setpriv", "--pdeathsig", "KILL", "--", "unshare", "--fork", "--kill-child",
                               "--mount", "--propagation", "private", "--", "sh", "-c",
                               (char *) install_script, "sh", b->root, (char *) IMAGE_PACKAGE_CACHE,
                               (char *) IMAGE_LISTS_CACHE, (char *) BUILD_LISTS_FRESH_MIN},
               FIXED * sizeof(char *));
        json_array_foreach(b->recipe.packages, i, v) {
                argv[FIXED + i] = (char *) json_string_value(v);
        }
        b->message[0] = b->error_line[0] = 0;
        build_set_phase(b, "resolve");
        r = mkdir_p(IMAGE_LISTS_CACHE "/partial", 0755);
        if (r >= 0)
                r = mkdir_p(IMAGE_PACKAGE_CACHE "/partial", 0755);
        if (r >= 0)
                r = dpkg_unsafe_io_enable(b->root);
        if (r >= 0)
                r = build_step_run(b, argv, on_install_done);
        if (r < 0)
                build_fail(b, -r, "cannot start apt-get", strerror(-r));
}

/* ---- a derived recipe: a copy of its parent image, then its own packages ---- */

static void on_copy_done(ImageBuild *b, int64_t status) {
        images_release(b->manager, b->recipe.parent);
        b->holds_parent = false;
        if (status != 0)
                return build_fail(b, EIO, "copy", b->message);
        if (json_array_size(b->recipe.packages) > 0)
                return step_install(b);
        step_finish(b);
}

/* cp -a: owners, modes, times, hardlinks, symlinks, devices and xattrs as they are;
 * --reflink=auto shares the blocks where the filesystem can (btrfs, XFS), and the data
 * goes through copy_file_range with holes kept where it cannot. */
static void step_copy(ImageBuild *b) {
        const char *from = images_hold(b->manager, b->recipe.parent);
        int r;

        if (!from)
                return build_fail(b, ENOENT, "copy", "the parent image is gone");
        b->holds_parent = true;
        char *argv[] = {"setpriv",        "--pdeathsig", "KILL",        "--",    "cp", "-a",
                        "--reflink=auto", "--",          (char *) from, b->root, NULL};
        b->message[0] = 0;
        build_set_phase(b, "copy");
        r = build_step_run(b, argv, on_copy_done);
        if (r < 0)
                build_fail(b, -r, "cannot start cp", strerror(-r));
}

static void on_parent_progress(const ImageBuildEvent *ev, void *userdata) {
        ImageBuild *b = userdata;

        if (b->ops && b->ops->on_progress)
                b->ops->on_progress(ev, b->userdata);
}

static void on_parent_done(json_t *image, const ForgeError *err, void *userdata) {
        ImageBuild *b = userdata;

        b->parent_build = NULL;
        if (!b->finished) {
                if (err)
                        build_fail(b, err->errnum, "the parent image", err->message);
                else
                        step_parent(b);
        }
        build_unref(b);
}

static const ImageBuildOps parent_ops = {
        .on_progress = on_parent_progress,
        .on_done = on_parent_done,
};

/* The parent image is copied if it exists; else built first (its progress is reported
 * too, under its name), or waited for while another request builds or imports it. */
static void step_parent(ImageBuild *b) {
        const char *parent = b->recipe.parent;
        ForgeError err = {};
        json_t *meta;
        bool imported;
        int r;

        b->waiting_parent = false;
        meta = images_get_json(b->manager, parent);
        if (meta) {
                imported = json_object_get(meta, "source") != NULL;
                json_decref(meta);
                if (imported) {
                        snprintf(b->message, sizeof(b->message),
                                 "image '%s' was imported, not built from its recipe: remove it, "
                                 "and this build builds it first",
                                 parent);
                        return build_fail(b, EINVAL, "the parent image", b->message);
                }
                return step_copy(b);
        }
        if (images_is_claimed(b->manager, parent)) {
                snprintf(b->message, sizeof(b->message), "waiting for image '%s', which is being made",
                         parent);
                b->waiting_parent = true; /* the tick tries again */
                return build_set_phase(b, "parent");
        }
        snprintf(b->message, sizeof(b->message), "building the parent image '%s' first", parent);
        build_set_phase(b, "parent");
        r = image_build_start(b->manager, parent, &parent_ops, b, &b->parent_build, &err);
        if (r < 0)
                return build_fail(b, -r, "the parent image", err.message);
        b->refs++; /* the parent build's callbacks use b until its on_done */
}

/* ---- a root recipe: debootstrap ---- */

static void on_debootstrap_done(ImageBuild *b, int64_t status) {
        if (status != 0)
                return build_fail(b, EIO, "debootstrap", b->error_line[0] ? b->error_line : b->message);
        step_finish(b);
}

/* "--include=a,b,c" */
static char *include_option(json_t *packages) {
        size_t len = sizeof("--include="), i;
        char *s;
        json_t *v;

        json_array_foreach(packages, i, v) {
                len += strlen(json_string_value(v)) + 1;
        }
        s = malloc(len);
        if (!s)
                return NULL;
        strcpy(s, "--include=");
        json_array_foreach(packages, i, v) {
                if (i > 0)
                        strcat(s, ",");
                strcat(s, json_string_value(v));
        }
        return s;
}

static void step_debootstrap(ImageBuild *b) {
        _cleanup_free_ char *include = include_option(b->recipe.packages), *cache = NULL;
        int r;

        if (!include || asprintf(&cache, "--cache-dir=%s", IMAGE_PACKAGE_CACHE) < 0)
                return build_fail(b, ENOMEM, "debootstrap", "out of memory");
        /* pdeathsig and --kill-child: if forged dies, debootstrap goes with it. */
        char *argv[] = {"setpriv",      "--pdeathsig", "KILL",          "--",      "unshare",
                        "--fork",       "--kill-child", "--mount",      "--propagation", "private",
                        "--",           "debootstrap", "--variant=minbase", include, cache,
                        b->suite,       b->root,       b->mirror,       NULL};
        b->message[0] = 0;
        build_set_phase(b, "resolve");
        r = mkdir_p(IMAGE_PACKAGE_CACHE, 0755);
        /* debootstrap unpacks into the directory as it finds it: dpkg reads the setting
         * from its first run on. */
        if (r >= 0)
                r = dpkg_unsafe_io_enable(b->root);
        if (r >= 0)
                r = build_step_run(b, argv, on_debootstrap_done);
        if (r < 0)
                build_fail(b, -r, "cannot start debootstrap", strerror(-r));
}

static void on_sources_done(ImageBuild *b, int64_t status) {
        int r;

        r = status == 0 && b->captured ? image_apt_source_pick(b->captured, &b->mirror, &b->suite) : -ENOENT;
        if (r < 0)
                return build_fail(
                        b, -r, "sources",
                        "the host's apt sources name no Debian release mirror (apt-get indextargets)");
        log_info("image %s: debootstrap %s from %s", b->name, b->suite, b->mirror);
        step_debootstrap(b);
}

static void step_sources(ImageBuild *b) {
        char *argv[] = {"apt-get",
                        "indextargets",
                        "--no-release-info",
                        "--format",
                        "$(REPO_URI) $(RELEASE) $(TARGET_OF)",
                        NULL};
        int r;

        build_set_phase(b, "sources");
        r = build_step_run(b, argv, on_sources_done);
        if (r < 0)
                build_fail(b, -r, "cannot run apt-get", strerror(-r));
}

static void step_first(ImageBuild *b) {
        if (b->recipe.parent)
                return step_parent(b);
        step_sources(b);
}

/* ---- apt's caches: the image needs neither the .debs nor the package lists ---- */

static void dir_clean(const char *root, const char *sub, const char *suffix) {
        _cleanup_free_ char *path = NULL;
        DIR *d;

        if (asprintf(&path, "%s/%s", root, sub) < 0 || !(d = opendir(path)))
                return;
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name);
                if (de->d_type != DT_REG || strcmp(de->d_name, "lock") == 0 ||
                    (suffix &&
                     (len < strlen(suffix) || strcmp(de->d_name + len - strlen(suffix), suffix) != 0)))
                        continue;
                unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

static void clean_apt(const char *root) {
        dir_clean(root, "var/cache/apt/archives", ".deb");
        dir_clean(root, "var/cache/apt", ".bin");
        dir_clean(root, "var/lib/apt/lists", NULL);
}

int image_build_start(Manager *m, const char *name, const ImageBuildOps *ops, void *userdata,
                      ImageBuild **ret, ForgeError *err) {
        ImageBuild *b;
        const char *recipes = image_recipes_dir();
        int r;

        r = images_name_check(name, err);
        if (r < 0)
                return r;
        if (!recipes)
                return forge_error_set(err, ENOENT, "recipe_not_found",
                                       "no recipes directory beside forged (images/ or share/forge/images)");
        b = calloc(1, sizeof(*b));
        if (!b || !(b->name = strdup(name)))
                return free(b), forge_error_set(err, ENOMEM, "internal", "out of memory");
        b->manager = m;
        b->refs = 1;
        r = images_begin(m, name, &b->dir, err);
        if (r >= 0) {
                r = image_recipe_load(recipes, name, &b->recipe, err);
                if (r >= 0 && asprintf(&b->root, "%s/rootfs", b->dir) < 0)
                        r = forge_error_set(err, ENOMEM, "internal", "out of memory");
                if (r < 0)
                        images_finish(m, name, b->dir, false, NULL);
        }
        if (r < 0) {
                build_unref(b);
                return r;
        }
        b->ops = ops;
        b->userdata = userdata;
        b->started_ms = time_mono_ms();
        uv_timer_init(m->loop, &b->tick);
        b->tick.data = b;
        b->refs++; /* the timer's, dropped when it is closed */
        /* The first tick starts the first step, so on_done never runs before this returns. */
        uv_timer_start(&b->tick, on_tick, 0, BUILD_TICK_MS);
        log_info("image %s: building", name);
        *ret = b;
        return 0;
}

void image_build_detach(ImageBuild *b) {
        b->ops = NULL;
        b->userdata = NULL;
}
