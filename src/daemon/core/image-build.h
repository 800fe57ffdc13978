/* Building an image from its recipe (core/image-recipe.h) on the loop.
 *
 * A root recipe (base): find the host's Debian mirror and suite (`apt-get indextargets`,
 * apt's own reading of its sources) and debootstrap its packages into a fresh directory
 * under $STATE/images, in a private mount namespace so the /proc and /dev it mounts
 * vanish with it.
 *
 * A derived recipe (python, node): copy the parent image (built first if missing, waited
 * for if another request is making it), then install the recipe's own packages with
 * apt-get chrooted in the copy (apt's resolver handles what debootstrap's cannot, such
 * as npm's virtual packages). debootstrap never runs twice for one chain.
 *
 * Then: apt's caches are cleaned, image.json written, the filesystem synced once (dpkg
 * runs with force-unsafe-io meanwhile) and the directory moved into place.
 *
 * Downloaded packages are kept in IMAGE_PACKAGE_CACHE and apt's lists in
 * IMAGE_LISTS_CACHE, shared by every build on the host, so a second build downloads
 * nothing it already has. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "basic/error.h"
#include "daemon/core/manager.h"

#define IMAGE_PACKAGE_CACHE "/var/cache/forge/debs"
#define IMAGE_LISTS_CACHE "/var/cache/forge/lists" /* apt's package lists, for derived recipes */

typedef struct ImageBuild ImageBuild;

typedef struct ImageBuildEvent {
        const char *image;   /* the image this is about: the one asked for, or a parent built first */
        const char *phase;   /* "parent", "copy", "sources", "resolve", "download", "extract", "install",
                              * "finish" */
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
