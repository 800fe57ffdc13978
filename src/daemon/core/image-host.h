/* The built-in `host` image: a small skeleton root whose /usr is the host's, bound
 * read-only by the isolator, and whose /etc is a curated copy of the host's. */
#pragma once

#include "basic/error.h"

/* Builds $STATE/images/host/{rootfs,image.json} if missing; atomic and idempotent. */
int image_host_prepare(const char *state_dir, ForgeError *err);

/* Host paths the isolator binds read-only at the same place: {"/usr", NULL}. */
const char *const *image_host_ro_binds(void);
