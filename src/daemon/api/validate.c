/* Strict validation of JSON request bodies: unknown fields and wrong types are refused,
 * so a typo never silently drops a limit. */
#include <stdio.h>
#include <string.h>

#include "basic/utf8.h"
#include "daemon/api/api.h"

#define PATH_MAX_BYTES 4096

int json_only_fields(json_t *obj, const char *const *allowed, const char *where, ForgeError *err) {
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v) {
                bool ok = false;

                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = strcmp(*a, key) == 0;
                if (!ok)
                        return forge_error_set(err, EINVAL, "invalid_request", "unknown field '%s%s'", where, key);
        }
        return 0;
}

int json_get_string(json_t *obj, const char *key, bool required, const char **ret, ForgeError *err) {
        json_t *v = json_object_get(obj, key);

        *ret = NULL;
        if (!v || json_is_null(v)) {
                if (required)
                        return forge_error_set(err, EINVAL, "invalid_request", "'%s' is required", key);
                return 0;
        }
        if (!json_is_string(v))
                return forge_error_set(err, EINVAL, "invalid_request", "'%s' must be a string", key);
        if (strlen(json_string_value(v)) != json_string_length(v))
                return forge_error_set(err, EINVAL, "invalid_request", "'%s' must not contain NUL bytes", key);
        *ret = json_string_value(v);
        return 0;
}

int json_get_path(json_t *obj, const char *key, const char **ret, ForgeError *err) {
        json_t *v = json_object_get(obj, key);

        if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
                return forge_error_set(err, EINVAL, "invalid_path", "'%s' must not contain NUL bytes", key);
        return json_get_string(obj, key, true, ret, err);
}

int json_get_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *ret, ForgeError *err) {
        json_t *v = json_object_get(obj, key);

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "'%s' must be an integer from %lld to %lld", key, (long long) min,
                                       (long long) max);
        *ret = json_integer_value(v);
        return 0;
}

int json_get_bool(json_t *obj, const char *key, bool *ret, ForgeError *err) {
        json_t *v = json_object_get(obj, key);

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_boolean(v))
                return forge_error_set(err, EINVAL, "invalid_request", "'%s' must be true or false", key);
        *ret = json_is_true(v);
        return 0;
}

int json_get_string_map(json_t *obj, const char *key, size_t max_entries, json_t **ret, ForgeError *err) {
        json_t *v = json_object_get(obj, key), *item;
        const char *k;

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return forge_error_set(err, EINVAL, "invalid_request", "'%s' must be an object of strings", key);
        if (json_object_size(v) > max_entries)
                return forge_error_set(err, EINVAL, "invalid_request", "'%s' has more than %zu entries", key,
                                       max_entries);
        json_object_foreach(v, k, item) {
                if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item))
                        return forge_error_set(err, EINVAL, "invalid_request",
                                               "'%s.%s' must be a string without NUL bytes", key, k);
                if (k[0] == 0 || strlen(k) > 256)
                        return forge_error_set(err, EINVAL, "invalid_request",
                                               "'%s' keys must be 1 to 256 bytes", key);
        }
        *ret = v;
        return 0;
}

int json_get_env(json_t *obj, const char *key, json_t **ret, ForgeError *err) {
        const char *k;
        json_t *v;
        int r = json_get_string_map(obj, key, 1024, ret, err);

        if (r < 0 || !*ret)
                return r;
        json_object_foreach(*ret, k, v)
                if (strchr(k, '='))
                        return forge_error_set(err, EINVAL, "invalid_request",
                                               "environment variable names must not contain '='");
        return 0;
}

int api_resolve_path(const char *path, const char *cwd, char **ret, ForgeError *err) {
        size_t len;

        if (!path || !path[0])
                return forge_error_set(err, EINVAL, "invalid_path", "a non-empty 'path' is required");
        len = strlen(path);
        if (len > PATH_MAX_BYTES)
                return forge_error_set(err, EINVAL, "invalid_path", "the path is longer than %d bytes",
                                       PATH_MAX_BYTES);
        if (path[0] == '/')
                *ret = strdup(path);
        else if (asprintf(ret, "%s/%s", cwd, path) < 0)
                *ret = NULL;
        if (!*ret)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        if (strlen(*ret) > PATH_MAX_BYTES) {
                free(*ret);
                *ret = NULL;
                return forge_error_set(err, EINVAL, "invalid_path", "the path is longer than %d bytes",
                                       PATH_MAX_BYTES);
        }
        return 0;
}

json_t *api_json_string(const char *s) {
        size_t len;
        char *clean;
        json_t *j;

        if (!s)
                return json_null();
        clean = utf8_sanitize((const uint8_t *) s, strlen(s), &len);
        j = clean ? json_stringn(clean, len) : NULL;
        free(clean);
        return j;
}
