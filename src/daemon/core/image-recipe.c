#include "daemon/core/image-recipe.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/macros.h"
#include "daemon/core/images.h"

const char *image_recipes_dir(void) {
        static char dir[PATH_MAX];
        static const char *const candidates[] = {"../../images", "../share/forge/images"};
        char self[PATH_MAX];
        ssize_t n;

        if (dir[0])
                return dir;
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
                return NULL;
        self[n] = 0;
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                char path[PATH_MAX];

                if (snprintf(path, sizeof(path), "%s/%s", dirname(self), candidates[i]) >=
                            (int) sizeof(path) ||
                    !realpath(path, dir))
                        continue;
                if (access(dir, R_OK | X_OK) >= 0)
                        return dir;
        }
        dir[0] = 0;
        return NULL;
}

/* Debian policy 5.6.1: lower case letters, digits, '+', '-', '.'; at least two, starting
 * with a letter or digit. Nothing that debootstrap could take for an option. */
static bool package_name_is_valid(const char *name) {
        size_t len = strlen(name);

        return len >= 2 && len <= 128 && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789+-.") == len &&
               strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]);
}

static bool string_in(json_t *array, const char *s) {
        size_t i;
        json_t *v;

        json_array_foreach(array, i, v) {
                if (strcmp(json_string_value(v), s) == 0)
                        return true;
        }
        return false;
}

static int recipe_check(const char *name, json_t *j, ForgeError *err) {
        static const char *const fields[] = {"parent", "description", "packages", "runtimes",
                                             "shell",  "user",        "workdir"};
        const char *key;
        json_t *v;
        size_t i;

        if (!json_is_object(j))
                return forge_error_set(err, EINVAL, "invalid_recipe", "recipe '%s' is not a JSON object",
                                       name);
        json_object_foreach(j, key, v) {
                bool known = false;
                for (i = 0; i < ELEMENTSOF(fields); i++)
                        known = known || strcmp(key, fields[i]) == 0;
                if (!known)
                        return forge_error_set(err, EINVAL, "invalid_recipe",
                                               "recipe '%s': unknown field '%s'", name, key);
                if (strcmp(key, "packages") != 0 && strcmp(key, "runtimes") != 0 && !json_is_string(v))
                        return forge_error_set(err, EINVAL, "invalid_recipe",
                                               "recipe '%s': '%s' must be a string", name, key);
        }
        if (!json_is_array(json_object_get(j, "packages")))
                return forge_error_set(err, EINVAL, "invalid_recipe", "recipe '%s' needs a 'packages' array",
                                       name);
        json_array_foreach(json_object_get(j, "packages"), i, v) {
                if (!json_is_string(v) || !package_name_is_valid(json_string_value(v)))
                        return forge_error_set(err, EINVAL, "invalid_recipe",
                                               "recipe '%s': packages must be Debian package names", name);
        }
        json_object_foreach(json_object_get(j, "runtimes"), key, v) {
                if (!json_is_string(v))
                        return forge_error_set(err, EINVAL, "invalid_recipe",
                                               "recipe '%s': runtime '%s' must name an interpreter", name,
                                               key);
        }
        if (json_object_get(j, "runtimes") && !json_is_object(json_object_get(j, "runtimes")))
                return forge_error_set(err, EINVAL, "invalid_recipe",
                                       "recipe '%s': 'runtimes' must be an object", name);
        return 0;
}

static json_t *recipe_read(const char *dir, const char *name, ForgeError *err) {
        _cleanup_free_ char *path = NULL;
        json_error_t jerr;
        json_t *j;

        if (images_name_check(name, err) < 0)
                return NULL;
        if (asprintf(&path, "%s/%s/recipe.json", dir, name) < 0) {
                forge_error_set(err, ENOMEM, "internal", "out of memory");
                return NULL;
        }
        if (access(path, F_OK) < 0) {
                forge_error_set(err, ENOENT, "recipe_not_found", "there is no recipe '%s' in %s", name, dir);
                return NULL;
        }
        j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!j) {
                forge_error_set(err, EINVAL, "invalid_recipe", "%s: %s (line %d)", path, jerr.text,
                                jerr.line);
                return NULL;
        }
        if (recipe_check(name, j, err) < 0) {
                json_decref(j);
                return NULL;
        }
        return j;
}

/* Folds one recipe of the chain, from the root down, into r: runtimes merged, the
 * child's other fields win; `seen` collects every package of the chain so far, and the
 * last recipe's (is_top) new packages are r->packages. */
static int recipe_fold(ImageRecipe *r, json_t *seen, json_t *child, bool is_top) {
        size_t i;
        json_t *v;

        json_array_foreach(json_object_get(child, "packages"), i, v) {
                if (string_in(seen, json_string_value(v)))
                        continue;
                if (json_array_append(seen, v) < 0 || (is_top && json_array_append(r->packages, v) < 0))
                        return -ENOMEM;
        }
        if (json_object_update(json_object_get(r->meta, "runtimes"), json_object_get(child, "runtimes")) < 0)
                return -ENOMEM;
        for (const char *const *f = (const char *const[]){"description", "shell", "user", "workdir", NULL};
             *f; f++)
                if (json_object_get(child, *f) &&
                    json_object_set(r->meta, *f, json_object_get(child, *f)) < 0)
                        return -ENOMEM;
        return 0;
}

int image_recipe_load(const char *dir, const char *name, ImageRecipe *ret, ForgeError *err) {
        json_t *chain[IMAGE_RECIPE_DEPTH_MAX] = {}, *seen = NULL;
        const char *cur = name, *parent;
        size_t n = 0;
        int r = 0;

        /* Read from the recipe up to its root, then fold from the root down. */
        while (cur) {
                if (n == IMAGE_RECIPE_DEPTH_MAX) {
                        r = forge_error_set(err, ELOOP, "invalid_recipe",
                                            "recipe '%s': more than %d parents (a loop?)", name,
                                            IMAGE_RECIPE_DEPTH_MAX - 1);
                        goto out;
                }
                chain[n] = recipe_read(dir, cur, err);
                if (!chain[n]) {
                        r = -(err && err->errnum ? err->errnum : EINVAL);
                        goto out;
                }
                cur = json_string_value(json_object_get(chain[n++], "parent"));
        }
        parent = json_string_value(json_object_get(chain[0], "parent"));
        *ret = (ImageRecipe){.parent = parent ? strdup(parent) : NULL,
                             .packages = json_array(),
                             .meta = json_pack("{s:s, s:{}, s:s, s:s, s:s}", "name", name, "runtimes",
                                               "shell", "/bin/sh", "user", "root", "workdir", "/root")};
        seen = json_array();
        if (!seen || (parent && !ret->parent) || !ret->packages || !ret->meta)
                r = -ENOMEM;
        while (r >= 0 && n > 0) {
                n--;
                r = recipe_fold(ret, seen, chain[n], n == 0);
        }
        if (r < 0) {
                image_recipe_done(ret);
                forge_error_set(err, -r, "internal", "out of memory");
        }
out:
        json_decref(seen);
        for (size_t i = 0; i < IMAGE_RECIPE_DEPTH_MAX; i++)
                json_decref(chain[i]);
        return r;
}

void image_recipe_done(ImageRecipe *r) {
        free(r->parent);
        json_decref(r->packages);
        json_decref(r->meta);
        *r = (ImageRecipe){};
}

int image_apt_source_pick(const char *indextargets, char **ret_mirror, char **ret_suite) {
        const char *line = indextargets;

        while (line && *line) {
                char uri[512], suite[128], type[32];
                const char *next = strchr(line, '\n');

                if (sscanf(line, "%511s %127s %31s", uri, suite, type) == 3 && strcmp(type, "deb") == 0 &&
                    !strpbrk(suite, "-/") && strncmp(uri, "http", 4) == 0) {
                        size_t len = strlen(uri);
                        if (uri[len - 1] == '/')
                                uri[len - 1] = 0;
                        *ret_mirror = strdup(uri);
                        *ret_suite = strdup(suite);
                        if (!*ret_mirror || !*ret_suite) {
                                free(*ret_mirror);
                                free(*ret_suite);
                                return -ENOMEM;
                        }
                        return 0;
                }
                line = next ? next + 1 : NULL;
        }
        return -ENOENT;
}
