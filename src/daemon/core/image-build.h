/* Building an image from its recipe (core/image-recipe.h) on the loop: find the host's
 * Debian mirror and suite (`apt-get indextargets`, apt's own reading of its sources),
 * debootstrap the root recipe's packages into a fresh directory under $STATE/images (in
 * a private mount namespace, so the /proc and /dev it mounts vanish with it), install the
 * derived recipes' packages with apt-get chrooted in the new root (apt's resolver handles
 * what debootstrap's cannot, such as npm's virtual packages), clean apt's caches, write
 * image.json and move it into place.
 *
 * Downloaded packages are kept in IMAGE_PACKAGE_CACHE, shared by every build on the host
 * (debootstrap --cache-dir), so a second build downloads nothing it already has. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "basic/error.h"
#include "daemon/core/manager.h"

#define IMAGE_PACKAGE_CACHE "/var/cache/forge/debs"
#define IMAGE_LISTS_CACHE "/var/cache/forge/lists" /* apt's package lists, for derived recipes */

typedef struct ImageBuild ImageBuild;

typedef struct ImageBuildEvent {
        const char *phase;   /* "sources", "resolve", "download", "extract", "install", "finish" */
        uint64_t bytes;      /* written to the new root so far */
        const char *message; /* the builder's last line, or NULL */
} ImageBuildEvent;

typedef struct ImageBuildOps {
        /* On each phase change and about once a second. */
        void (*on_progress)(const ImageBuildEvent *ev, void *userdata);
        /* Once at the end: the new image's image.json (borrowed), or err. */
        void (*on_done)(json_t *image, const ForgeError *err, void *userdata);
} ImageBuildOps;

/* Starts building `name` from its recipe. Refuses at once (with err) an invalid name,
 * a missing or bad recipe, an existing image and one being made. */
int image_build_start(Manager *m, const char *name, const ImageBuildOps *ops, void *userdata,
                      ImageBuild **ret, ForgeError *err);
/* Nobody listens any more (the client went away): the build goes on, quietly. */
void image_build_detach(ImageBuild *b);
