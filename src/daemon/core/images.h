/* Images a sandbox can start from, and how each runs code. Today: the built-in `host`
 * image (a read-only view of the host's /usr with a curated /etc). */
#pragma once

#include "basic/error.h"
#include "daemon/core/manager.h"

/* Prepares the built-in images under $STATE/images. */
int images_init(Manager *m, ForgeError *err);
/* 0 if `name` exists; else -ENOENT with err filled (code image_not_found). */
int images_check(Manager *m, const char *name, ForgeError *err);
/* The image to use for `runtime` when the client gave none. */
int images_for_runtime(Manager *m, const char *runtime, const char **ret_image, ForgeError *err);
/* The interpreter that runs a file of `runtime` code in `image` (e.g. "python3"), and the
 * file suffix to give the code. -ENOENT with err (unsupported_runtime) if it has none. */
int images_runtime(Manager *m, const char *image, const char *runtime, const char **ret_interp,
                   const char **ret_suffix, ForgeError *err);
/* The default working directory of an image. */
const char *images_workdir(Manager *m, const char *image);
/* Fills the image parts of a plan (rootfs, read-only binds). */
void images_plan(Manager *m, const char *image, SandboxPlan *plan);
