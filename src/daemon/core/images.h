/* The image registry: every image under $STATE/images/<name>/{rootfs/,image.json}, the
 * built-in `host` among them, and how each runs code. Images are shared read-only by the
 * sandboxes made from them (the overlay's lower layer), never copied per sandbox.
 *
 * A build or an import works in $STATE/images/.new-<name>-<random>/ and is renamed into
 * place only when complete; removal renames the image to .old-<name>-<random>/ first.
 * images_init() removes both kinds of leftovers, so an interrupted build or removal
 * leaves nothing half-made. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/error.h"
#include "daemon/core/manager.h"

#define IMAGE_NAME_MAX 63

/* Loads every image under $STATE/images (preparing `host`), removes leftovers. */
int images_init(Manager *m, ForgeError *err);
void images_free(Manager *m);

/* Names: 1-63 of [a-z0-9._-], starting with a letter or digit. 0, or -EINVAL with err
 * (invalid_request). */
int images_name_check(const char *name, ForgeError *err);
/* 0 if `name` exists; else -ENOENT with err filled (code image_not_found). */
int images_check(Manager *m, const char *name, ForgeError *err);
/* The image to use for `runtime` when the client gave none: an image named after the
 * runtime if there is one, else `host` if it has the runtime, else unsupported_runtime
 * with a sentence saying how to build one. */
int images_for_runtime(Manager *m, const char *runtime, const char **ret_image, ForgeError *err);
/* The interpreter that runs a file of `runtime` code in `image` (e.g. "python3"), and the
 * file suffix to give the code. -ENOENT with err (unsupported_runtime) if it has none. */
int images_runtime(Manager *m, const char *image, const char *runtime, const char **ret_interp,
                   const char **ret_suffix, ForgeError *err);
/* The default working directory of an image. */
const char *images_workdir(Manager *m, const char *image);
/* Fills the image parts of a plan (rootfs, read-only binds). */
void images_plan(Manager *m, const char *image, SandboxPlan *plan);

/* Every image's image.json (a new array, sorted by name), and one (a new reference). */
json_t *images_list_json(Manager *m);
json_t *images_get_json(Manager *m, const char *name);

/* Claims `name` for a build or an import: refuses `host`, an existing image
 * (image_exists) and one already being made (image_busy). On success *ret_dir is a fresh
 * empty $STATE/images/.new-<name>-<random>/ to fill with rootfs/ and image.json. */
int images_begin(Manager *m, const char *name, char **ret_dir, ForgeError *err);
/* Whether a build or an import is making `name` now. */
bool images_is_claimed(Manager *m, const char *name);
/* A build copying image `name` holds it, so it cannot be removed meanwhile: its rootfs
 * path, or NULL if there is no such image. Each hold is released once. */
const char *images_hold(Manager *m, const char *name);
void images_release(Manager *m, const char *name);
/* Ends a claim: with ok, renames dir into place (dir's files must be on disk already,
 * images_sync) and registers the image; else (or if that fails) removes dir. */
int images_finish(Manager *m, const char *name, const char *dir, bool ok, ForgeError *err);
/* Removes an image that no sandbox, snapshot or build uses (else image_in_use); the files
 * go in the thread pool. */
int images_remove(Manager *m, const char *name, ForgeError *err);

/* The apparent size in bytes of the files under path (a tree being written is fine).
 * Blocking. */
int images_tree_size(const char *path, uint64_t *ret);
/* syncfs(2) of the filesystem holding image_dir: a finished image is on disk before it
 * is renamed into place, so a crash never leaves a registered image with lost files.
 * Blocking. */
int images_sync(const char *image_dir, ForgeError *err);
/* Writes image.json into image_dir from meta (name, runtimes, shell, user, workdir),
 * adding size (bytes under rootfs/) and created (ms since the epoch). Blocking. */
int images_meta_write(const char *image_dir, json_t *meta, ForgeError *err);
