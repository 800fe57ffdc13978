#include "daemon/core/images.h"

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
#include "daemon/core/image-host.h"
#include "daemon/core/snapshots.h"

typedef struct Image {
        char *name;
        char *rootfs;   /* $STATE/images/<name>/rootfs */
        json_t *meta;   /* its image.json */
        unsigned holds; /* builds copying it (images_hold) */
} Image;

typedef struct Images {
        char *dir;    /* $STATE/images */
        Image **list; /* sorted by name */
        size_t n;
        char **claimed; /* names a build or an import is making */
        size_t n_claimed;
} Images;

/* File suffixes interpreters expect (node picks the module system by suffix). */
static const struct {
        const char *runtime, *suffix;
} runtime_suffixes[] = {
        {"python", ".py"},
        {"node", ".js"},
        {"sh", ".sh"},
        {"bash", ".sh"},
};

/* Other names clients use for the same runtimes (SandboX says "shell"). */
static const struct {
        const char *alias, *runtime;
} runtime_aliases[] = {
        {"shell", "sh"},
        {"python3", "python"},
        {"javascript", "node"},
};

static const char *runtime_canonical(const char *runtime) {
        for (size_t i = 0; i < ELEMENTSOF(runtime_aliases); i++)
                if (strcmp(runtime_aliases[i].alias, runtime) == 0)
                        return runtime_aliases[i].runtime;
        return runtime;
}

static void image_free(Image *img) {
        if (!img)
                return;
        free(img->name);
        free(img->rootfs);
        json_decref(img->meta);
        free(img);
}

static Image *image_find(Manager *m, const char *name) {
        for (size_t i = 0; i < m->images->n; i++)
                if (strcmp(m->images->list[i]->name, name) == 0)
                        return m->images->list[i];
        return NULL;
}

int images_name_check(const char *name, ForgeError *err) {
        size_t len = strlen(name);

        if (len == 0 || len > IMAGE_NAME_MAX ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789._-") != len ||
            !strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]))
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "an image name is 1-%d characters of a-z, 0-9, '.', '_' and '-', "
                                       "starting with a letter or a digit",
                                       IMAGE_NAME_MAX);
        return 0;
}

/* Reads $STATE/images/<name>/image.json and adds the image, keeping the list sorted. */
static int image_load(Manager *m, const char *name, ForgeError *err) {
        Images *imgs = m->images;
        _cleanup_free_ char *json_path = NULL;
        Image *img, **list;
        json_error_t jerr;
        size_t at = 0;

        img = calloc(1, sizeof(*img));
        if (!img || !(img->name = strdup(name)) ||
            asprintf(&img->rootfs, "%s/%s/rootfs", imgs->dir, name) < 0 ||
            asprintf(&json_path, "%s/%s/image.json", imgs->dir, name) < 0) {
                image_free(img);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        img->meta = json_load_file(json_path, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(img->meta)) {
                image_free(img);
                return forge_error_set(err, EBADMSG, "internal", "%s: %s", json_path,
                                       jerr.text[0] ? jerr.text : "not an object");
        }
        list = realloc(imgs->list, (imgs->n + 1) * sizeof(*list));
        if (!list) {
                image_free(img);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        imgs->list = list;
        while (at < imgs->n && strcmp(list[at]->name, name) < 0)
                at++;
        memmove(list + at + 1, list + at, (imgs->n - at) * sizeof(*list));
        list[at] = img;
        imgs->n++;
        return 0;
}

static void image_unregister(Manager *m, Image *img) {
        Images *imgs = m->images;

        for (size_t i = 0; i < imgs->n; i++)
                if (imgs->list[i] == img) {
                        memmove(imgs->list + i, imgs->list + i + 1, (imgs->n - i - 1) * sizeof(*imgs->list));
                        imgs->n--;
                        image_free(img);
                        return;
                }
}

static bool name_is_leftover(const char *name) {
        return strncmp(name, ".new-", 5) == 0 || strncmp(name, ".old-", 5) == 0;
}

/* Every image directory with an image.json; leftovers of builds and removals go. */
static int images_scan(Manager *m, ForgeError *err) {
        _cleanup_close_ int fd = open(m->images->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        int r = 0;

        if (fd < 0)
                return forge_error_set(err, errno, "internal", "cannot open %s: %m", m->images->dir);
        d = fdopendir(fd);
        if (!d)
                return forge_error_set(err, errno, "internal", "cannot read %s: %m", m->images->dir);
        TAKE_FD(fd);
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                if (name_is_leftover(de->d_name)) {
                        log_info("removing the unfinished image directory %s/%s", m->images->dir,
                                 de->d_name);
                        rm_rf_at(dirfd(d), de->d_name);
                        continue;
                }
                if (images_name_check(de->d_name, NULL) < 0 ||
                    faccessat(dirfd(d), de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                r = image_load(m, de->d_name, err);
        }
        closedir(d);
        return r;
}

int images_init(Manager *m, ForgeError *err) {
        int r;

        m->images = calloc(1, sizeof(*m->images));
        if (!m->images || asprintf(&m->images->dir, "%s/images", m->state_dir) < 0)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        r = image_host_prepare(m->state_dir, err);
        if (r < 0)
                return r;
        r = images_scan(m, err);
        if (r < 0)
                return r;
        if (!image_find(m, "host"))
                return forge_error_set(err, ENOENT, "internal", "the host image is missing from %s",
                                       m->images->dir);
        return 0;
}

void images_free(Manager *m) {
        Images *imgs = m->images;

        if (!imgs)
                return;
        for (size_t i = 0; i < imgs->n; i++)
                image_free(imgs->list[i]);
        for (size_t i = 0; i < imgs->n_claimed; i++)
                free(imgs->claimed[i]);
        free(imgs->list);
        free(imgs->claimed);
        free(imgs->dir);
        free(imgs);
        m->images = NULL;
}

int images_check(Manager *m, const char *name, ForgeError *err) {
        if (image_find(m, name))
                return 0;
        return forge_error_set(
                err, ENOENT, "image_not_found",
                "no image named '%s' (GET /v1/images lists them; `forgectl image build` makes one)", name);
}

static json_t *image_runtimes(Manager *m, const char *image) {
        Image *img = image_find(m, image);

        return img ? json_object_get(img->meta, "runtimes") : NULL;
}

static bool image_has_runtime(Manager *m, const char *image, const char *runtime) {
        return json_is_string(json_object_get(image_runtimes(m, image), runtime));
}

int images_for_runtime(Manager *m, const char *runtime, const char **ret_image, ForgeError *err) {
        runtime = runtime_canonical(runtime);
        /* An image built for the runtime (recipe images/python) is the reproducible choice. */
        if (image_has_runtime(m, runtime, runtime)) {
                *ret_image = image_find(m, runtime)->name;
                return 0;
        }
        if (image_has_runtime(m, "host", runtime)) {
                *ret_image = "host";
                return 0;
        }
        return forge_error_set(err, ENOENT, "unsupported_runtime",
                               "no image has the '%s' runtime: build one with `forgectl image build %s` "
                               "(POST /v1/images/%s/build), or install it on the host for the host image",
                               runtime, runtime, runtime);
}

int images_runtime(Manager *m, const char *image, const char *runtime, const char **ret_interp,
                   const char **ret_suffix, ForgeError *err) {
        const char *interp;

        runtime = runtime_canonical(runtime);
        interp = json_string_value(json_object_get(image_runtimes(m, image), runtime));

        if (!interp)
                return forge_error_set(err, ENOENT, "unsupported_runtime", "image '%s' has no '%s' runtime",
                                       image, runtime);
        *ret_interp = interp;
        *ret_suffix = "";
        for (size_t i = 0; i < ELEMENTSOF(runtime_suffixes); i++)
                if (strcmp(runtime_suffixes[i].runtime, runtime) == 0)
                        *ret_suffix = runtime_suffixes[i].suffix;
        return 0;
}

const char *images_workdir(Manager *m, const char *image) {
        Image *img = image_find(m, image);
        const char *w = img ? json_string_value(json_object_get(img->meta, "workdir")) : NULL;

        return w ? w : "/root";
}

void images_plan(Manager *m, const char *image, SandboxPlan *plan) {
        Image *img = image_find(m, image);

        /* A sandbox record names an image that exists (removal waits for its sandboxes);
         * one restored from disk whose image is gone gets the host's and fails to start
         * no worse than with a missing rootfs. */
        if (!img)
                img = image_find(m, "host");
        plan->image_rootfs = img->rootfs;
        plan->ro_binds = strcmp(img->name, "host") == 0 ? image_host_ro_binds() : NULL;
}

json_t *images_list_json(Manager *m) {
        json_t *list = json_array();

        for (size_t i = 0; list && i < m->images->n; i++)
                if (json_array_append(list, m->images->list[i]->meta) < 0) {
                        json_decref(list);
                        return NULL;
                }
        return list;
}

json_t *images_get_json(Manager *m, const char *name) {
        Image *img = image_find(m, name);

        return img ? json_incref(img->meta) : NULL;
}

static Sandbox *image_user(Manager *m, const char *name, size_t *ret_count) {
        Sandbox *first = NULL;

        *ret_count = 0;
        for (size_t i = 0; i < m->n_sandboxes; i++)
                if (m->sandboxes[i]->image && strcmp(m->sandboxes[i]->image, name) == 0) {
                        if (!first)
                                first = m->sandboxes[i];
                        (*ret_count)++;
                }
        return first;
}

static ssize_t claim_index(Manager *m, const char *name) {
        for (size_t i = 0; i < m->images->n_claimed; i++)
                if (strcmp(m->images->claimed[i], name) == 0)
                        return (ssize_t) i;
        return -1;
}

static void claim_release(Manager *m, const char *name) {
        Images *imgs = m->images;
        ssize_t i = claim_index(m, name);

        if (i < 0)
                return;
        free(imgs->claimed[i]);
        memmove(imgs->claimed + i, imgs->claimed + i + 1,
                (imgs->n_claimed - (size_t) i - 1) * sizeof(char *));
        imgs->n_claimed--;
}

int images_begin(Manager *m, const char *name, char **ret_dir, ForgeError *err) {
        Images *imgs = m->images;
        _cleanup_free_ char *dir = NULL, *claim = NULL;
        char **claimed;
        int r;

        r = images_name_check(name, err);
        if (r < 0)
                return r;
        if (strcmp(name, "host") == 0)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "'host' is the built-in image; choose another name");
        if (image_find(m, name))
                return forge_error_set(err, EEXIST, "image_exists",
                                       "image '%s' exists; remove it first (DELETE /v1/images/%s)", name,
                                       name);
        if (claim_index(m, name) >= 0)
                return forge_error_set(err, EBUSY, "image_busy", "image '%s' is being built or imported",
                                       name);
        if (asprintf(&dir, "%s/.new-%s-XXXXXX", imgs->dir, name) < 0 || !(claim = strdup(name)))
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        /* 0755 like every image directory (mkdtemp makes it 0700). */
        if (!mkdtemp(dir) || chmod(dir, 0755) < 0)
                return forge_error_set(err, errno, "internal", "cannot create a directory under %s: %m",
                                       imgs->dir);
        claimed = realloc(imgs->claimed, (imgs->n_claimed + 1) * sizeof(*claimed));
        if (!claimed) {
                rmdir(dir);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        imgs->claimed = claimed;
        imgs->claimed[imgs->n_claimed++] = TAKE_PTR(claim);
        *ret_dir = TAKE_PTR(dir);
        return 0;
}

bool images_is_claimed(Manager *m, const char *name) {
        return claim_index(m, name) >= 0;
}

const char *images_hold(Manager *m, const char *name) {
        Image *img = image_find(m, name);

        if (!img)
                return NULL;
        img->holds++;
        return img->rootfs;
}

void images_release(Manager *m, const char *name) {
        Image *img = image_find(m, name);

        if (img && img->holds > 0)
                img->holds--;
}

int images_finish(Manager *m, const char *name, const char *dir, bool ok, ForgeError *err) {
        _cleanup_free_ char *dest = NULL;
        int r = 0;

        claim_release(m, name);
        if (ok) {
                if (asprintf(&dest, "%s/%s", m->images->dir, name) < 0)
                        r = forge_error_set(err, ENOMEM, "internal", "out of memory");
                else if (rename(dir, dest) < 0)
                        r = forge_error_set(err, errno, "internal", "cannot move the image into place: %m");
                else
                        /* The tree was synced (images_sync); this makes the rename last. */
                        (void) fsync_directory(m->images->dir);
                if (r >= 0) {
                        r = image_load(m, name, err);
                        if (r < 0)
                                rm_rf(dest);
                        return r;
                }
        }
        rm_rf(dir);
        return r;
}

typedef struct Removal {
        uv_work_t work;
        char *dir;
} Removal;

static void work_remove(uv_work_t *w) {
        Removal *rm = w->data;
        int r = rm_rf(rm->dir);

        if (r < 0)
                log_warn_errno(-r, "cannot remove %s (the next start retries)", rm->dir);
}

static void after_remove(uv_work_t *w, int status) {
        Removal *rm = w->data;

        free(rm->dir);
        free(rm);
}

/* An image stays while a sandbox or a snapshot names it (they start from it) and while a
 * build copies it. */
static int image_check_unused(Manager *m, Image *img, ForgeError *err) {
        char snapshot[SNAPSHOT_ID_MAX + 1];
        Sandbox *user;
        size_t users;

        user = image_user(m, img->name, &users);
        if (user)
                return forge_error_set(err, EBUSY, "image_in_use", "image '%s' is used by sandbox %s%s",
                                       img->name, user->id, users > 1 ? " and others" : "");
        users = snapshots_of_image(m, img->name, snapshot);
        if (users > 0)
                return forge_error_set(err, EBUSY, "image_in_use",
                                       "image '%s' is used by snapshot %s%s (DELETE /v1/snapshots/%s first)",
                                       img->name, snapshot, users > 1 ? " and others" : "", snapshot);
        if (img->holds > 0)
                return forge_error_set(err, EBUSY, "image_in_use",
                                       "image '%s' is being copied by the build of an image derived from it",
                                       img->name);
        return 0;
}

int images_remove(Manager *m, const char *name, ForgeError *err) {
        _cleanup_free_ char *src = NULL;
        Removal *rm;
        int r;

        r = images_name_check(name, err);
        if (r < 0)
                return r;
        if (strcmp(name, "host") == 0)
                return forge_error_set(err, EPERM, "invalid_request",
                                       "'host' is the built-in image and stays");
        if (!image_find(m, name))
                return images_check(m, name, err);
        r = image_check_unused(m, image_find(m, name), err);
        if (r < 0)
                return r;
        rm = calloc(1, sizeof(*rm));
        if (!rm || asprintf(&src, "%s/%s", m->images->dir, name) < 0 ||
            asprintf(&rm->dir, "%s/.old-%s-XXXXXX", m->images->dir, name) < 0) {
                free(rm);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        /* A unique name that no build or scan takes for an image; rename(2) replaces an
         * empty directory, so mkdtemp reserves the name first. */
        if (!mkdtemp(rm->dir) || rename(src, rm->dir) < 0) {
                r = forge_error_set(err, errno, "internal", "cannot remove image '%s': %m", name);
                rmdir(rm->dir);
                free(rm->dir);
                free(rm);
                return r;
        }
        image_unregister(m, image_find(m, name));
        isolator_image_removed_all(name);
        log_info("image %s removed", name);
        rm->work.data = rm;
        if (uv_queue_work(m->loop, &rm->work, work_remove, after_remove) < 0) {
                work_remove(&rm->work);
                after_remove(&rm->work, 0);
        }
        return 0;
}

/* ---- image.json ---- */

/* The apparent size of the files below dir_fd (symlinks count their target's length);
 * mounts are not crossed because a build root has none left when this runs. */
static int tree_size(int dir_fd, uint64_t *acc) {
        DIR *d = fdopendir(dir_fd);
        int r = 0;

        if (!d) {
                r = -errno;
                close(dir_fd);
                return r;
        }
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                struct stat st;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                /* A build may be writing the tree: what vanished meanwhile counts nothing. */
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT)
                                r = -errno;
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        *acc += (uint64_t) st.st_size;
                        continue;
                }
                int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0 && errno == ENOENT)
                        continue;
                r = sub < 0 ? -errno : tree_size(sub, acc); /* takes sub */
        }
        closedir(d);
        return r;
}

int images_tree_size(const char *path, uint64_t *ret) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        *ret = 0;
        return fd < 0 ? -errno : tree_size(fd, ret);
}

int images_sync(const char *image_dir, ForgeError *err) {
        _cleanup_close_ int fd = open(image_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0 || syncfs(fd) < 0)
                return forge_error_set(err, errno, "internal", "cannot sync %s to disk: %m", image_dir);
        return 0;
}

int images_meta_write(const char *image_dir, json_t *meta, ForgeError *err) {
        _cleanup_free_ char *rootfs = NULL, *path = NULL, *text = NULL;
        char created[40];
        uint64_t size;
        int r;

        if (asprintf(&rootfs, "%s/rootfs", image_dir) < 0 || asprintf(&path, "%s/image.json", image_dir) < 0)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        r = images_tree_size(rootfs, &size);
        if (r < 0)
                return forge_error_set(err, -r, "internal", "cannot measure %s: %s", rootfs, strerror(-r));
        time_format_rfc3339(time_now_ms(), created, sizeof(created));
        if (json_object_set_new(meta, "size", json_integer((json_int_t) size)) < 0 ||
            json_object_set_new(meta, "created", json_string(created)) < 0 ||
            !(text = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS)))
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        r = write_file_atomic(path, text, 0644);
        if (r < 0)
                return forge_error_set(err, -r, "internal", "cannot write %s: %s", path, strerror(-r));
        return 0;
}
