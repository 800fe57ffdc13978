/* Image recipes: images/<name>/recipe.json, data only. One builder (image-build.c) reads
 * them; a recipe names its parent, the Debian packages it adds, the runtimes they bring
 * and the defaults of sandboxes made from it (shell, user, workdir). A derived image is
 * built from a copy of its parent image, so only the recipe's own packages are left to
 * install. */
#pragma once

#include <jansson.h>

#include "basic/error.h"

#define IMAGE_RECIPE_DEPTH_MAX 8

typedef struct ImageRecipe {
        char *parent;     /* the parent recipe's name; NULL for a root recipe */
        json_t *packages; /* a root recipe's packages (debootstrap installs them); a derived
                           * recipe's own, less its ancestors' (apt-get installs them on a
                           * copy of the parent image) */
        json_t *meta;     /* the image.json to be: name, description, runtimes, shell, user, workdir */
} ImageRecipe;

/* Where the recipes are: beside the binary (the source tree's images/ for build/bin,
 * <prefix>/share/forge/images when installed). NULL if neither exists. */
const char *image_recipes_dir(void);

/* Loads recipe `name` from dir with its parents folded in. -ENOENT (recipe_not_found),
 * -EINVAL (invalid_recipe: unknown field, bad package name, parent loop, ...). */
int image_recipe_load(const char *dir, const char *name, ImageRecipe *ret, ForgeError *err);
void image_recipe_done(ImageRecipe *r);

/* From `apt-get indextargets` output lines "URI SUITE TYPE": the first binary ("deb")
 * source of a release suite (no "-updates" or "-security"). -ENOENT if none. */
int image_apt_source_pick(const char *indextargets, char **ret_mirror, char **ret_suite);
