/* Health and the sandbox lifecycle: create, get, list, destroy. */
#include <string.h>

#include "libforge/internal.h"

static int no_memory(ForgeClientError *err) {
        return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
}

static int bad_id(ForgeClientError *err) {
        return forge__error_set(err, EINVAL, 0, "invalid_argument", "no sandbox id given");
}

FORGE_PUBLIC int forge_health(ForgeClient *c, char **ret_json, ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        char *text;
        int r;

        r = forge__request_json(c, "GET", "/health", NULL, &answer, err);
        if (r < 0)
                return r;
        if (!json_is_object(answer))
                return forge__error_set(err, EPROTO, 200, "bad_response",
                                        "the health answer is not an object");
        text = json_dumps(answer, JSON_COMPACT);
        if (!text)
                return no_memory(err);
        *ret_json = text;
        return 0;
}

static int limits_to_json(const ForgeLimits *l, json_t **ret) {
        json_t *j = json_object();
        int r = 0;

        if (!j)
                return -ENOMEM;
        if (l->cpus > 0)
                r |= json_object_set_new(j, "cpus", json_real(l->cpus));
        if (l->memory_mb > 0)
                r |= json_object_set_new(j, "memory_mb", json_integer(l->memory_mb));
        if (l->pids > 0)
                r |= json_object_set_new(j, "pids", json_integer(l->pids));
        if (l->timeout_ms > 0)
                r |= json_object_set_new(j, "timeout_ms", json_integer(l->timeout_ms));
        if (r < 0) {
                json_decref(j);
                return -ENOMEM;
        }
        *ret = j;
        return 0;
}

static int set_string(json_t *obj, const char *key, const char *value, ForgeClientError *err) {
        if (!value)
                return 0;
        if (json_object_set_new(obj, key, json_string(value)) < 0)
                return forge__error_set(err, EINVAL, 0, "invalid_argument", "%s is not valid UTF-8", key);
        return 0;
}

/* Sets obj[key] to an object of the "KEY=VALUE" pairs, when there are any. */
static int set_pairs(json_t *obj, const char *key, const char *const *pairs, ForgeClientError *err) {
        json_t *sub;
        int r;

        if (!pairs || !pairs[0])
                return 0;
        sub = json_object();
        if (!sub || json_object_set_new(obj, key, sub) < 0)
                return no_memory(err);
        r = forge__json_add_pairs(sub, pairs, key, err);
        return r;
}

static int create_body(const ForgeSandboxOptions *o, json_t **ret, ForgeClientError *err) {
        _cleanup_json_ json_t *body = json_object(), *limits = NULL;
        int r;

        if (!body)
                return no_memory(err);
        if (!o) {
                *ret = TAKE_PTR(body);
                return 0;
        }
        if ((r = set_string(body, "image", o->image, err)) < 0 ||
            (r = set_string(body, "runtime", o->runtime, err)) < 0 ||
            (r = set_string(body, "isolator", o->isolator, err)) < 0 ||
            (r = set_string(body, "cwd", o->cwd, err)) < 0 ||
            (r = set_string(body, "name", o->name, err)) < 0 ||
            (r = set_pairs(body, "env", o->env, err)) < 0 ||
            (r = set_pairs(body, "metadata", o->metadata, err)) < 0)
                return r;
        if (limits_to_json(&o->limits, &limits) < 0)
                return no_memory(err);
        if (json_object_size(limits) > 0 && json_object_set(body, "limits", limits) < 0)
                return no_memory(err);
        *ret = TAKE_PTR(body);
        return 0;
}

FORGE_PUBLIC int forge_sandbox_create(ForgeClient *c, const ForgeSandboxOptions *opts, ForgeSandbox *ret,
                                      ForgeClientError *err) {
        _cleanup_json_ json_t *body = NULL, *answer = NULL;
        int r;

        r = create_body(opts, &body, err);
        if (r < 0)
                return r;
        r = forge__request_json(c, "POST", "/v1/sandboxes", body, &answer, err);
        if (r < 0)
                return r;
        return forge__sandbox_from_json(answer, ret, err);
}

FORGE_PUBLIC int forge_sandbox_get(ForgeClient *c, const char *id, ForgeSandbox *ret,
                                   ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = forge__sandbox_path(id, NULL, &path);
        if (r < 0)
                return r == -EINVAL ? bad_id(err) : no_memory(err);
        r = forge__request_json(c, "GET", path, NULL, &answer, err);
        if (r < 0)
                return r;
        return forge__sandbox_from_json(answer, ret, err);
}

/* "?status=S&metadata.K=V..." with every part escaped. */
static int list_query(const char *status, const char *const *metadata, char **ret, ForgeClientError *err) {
        _cleanup_free_ char *q = strdup("");

        if (!q)
                return no_memory(err);
        if (status) {
                _cleanup_free_ char *v = forge__url_escape(status), *next = NULL;
                if (!v || asprintf(&next, "%s&status=%s", q, v) < 0)
                        return no_memory(err);
                free(q);
                q = TAKE_PTR(next);
        }
        for (const char *const *p = metadata; p && *p; p++) {
                const char *eq = strchr(*p, '=');
                _cleanup_free_ char *key = NULL, *ekey = NULL, *evalue = NULL, *next = NULL;

                if (!eq || eq == *p)
                        return forge__error_set(err, EINVAL, 0, "invalid_argument",
                                                "metadata filter \"%s\" is not KEY=VALUE", *p);
                key = strndup(*p, (size_t) (eq - *p));
                ekey = key ? forge__url_escape(key) : NULL;
                evalue = forge__url_escape(eq + 1);
                if (!ekey || !evalue || asprintf(&next, "%s&metadata.%s=%s", q, ekey, evalue) < 0)
                        return no_memory(err);
                free(q);
                q = TAKE_PTR(next);
        }
        if (q[0])
                q[0] = '?';
        *ret = TAKE_PTR(q);
        return 0;
}

FORGE_PUBLIC int forge_sandbox_list(ForgeClient *c, const char *status, const char *const *metadata,
                                    ForgeSandboxList *ret, ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *query = NULL, *path = NULL;
        ForgeSandboxList list = {};
        json_t *items;
        int r;

        r = list_query(status, metadata, &query, err);
        if (r < 0)
                return r;
        if (asprintf(&path, "/v1/sandboxes%s", query) < 0)
                return no_memory(err);
        r = forge__request_json(c, "GET", path, NULL, &answer, err);
        if (r < 0)
                return r;
        items = json_object_get(answer, "sandboxes");
        if (!json_is_array(items))
                return forge__error_set(err, EPROTO, 200, "bad_response", "the answer lacks a sandbox list");
        list.sandboxes = calloc(json_array_size(items) + 1, sizeof(ForgeSandbox));
        if (!list.sandboxes)
                return no_memory(err);
        for (size_t i = 0; i < json_array_size(items); i++) {
                r = forge__sandbox_from_json(json_array_get(items, i), &list.sandboxes[i], err);
                if (r < 0) {
                        forge_sandbox_list_clear(&list);
                        return r;
                }
                list.n_sandboxes++;
        }
        *ret = list;
        return 0;
}

FORGE_PUBLIC int forge_sandbox_destroy(ForgeClient *c, const char *id, ForgeClientError *err) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = forge__sandbox_path(id, NULL, &path);
        if (r < 0)
                return r == -EINVAL ? bad_id(err) : no_memory(err);
        return forge__request_json(c, "DELETE", path, NULL, NULL, err);
}
