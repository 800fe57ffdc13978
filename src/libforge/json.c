/* Decoding the server's JSON objects into the public structs. Lenient about fields it
 * does not know (the server may add some), strict about the ones it needs. */
#include <string.h>

#include "libforge/internal.h"

int forge__json_strdup(json_t *obj, const char *key, char **ret) {
        json_t *v = json_object_get(obj, key);

        *ret = NULL;
        if (!json_is_string(v))
                return 0;
        *ret = strndup(json_string_value(v), json_string_length(v));
        return *ret ? 0 : -ENOMEM;
}

int forge__json_add_pairs(json_t *obj, const char *const *pairs, const char *what, ForgeClientError *err) {
        for (const char *const *p = pairs; p && *p; p++) {
                const char *eq = strchr(*p, '=');
                _cleanup_free_ char *key = NULL;

                if (!eq || eq == *p)
                        return forge__error_set(err, EINVAL, 0, "invalid_argument",
                                                "%s entry \"%s\" is not KEY=VALUE", what, *p);
                key = strndup(*p, (size_t) (eq - *p));
                if (!key)
                        return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
                if (json_object_set_new(obj, key, json_string(eq + 1)) < 0)
                        return forge__error_set(err, EINVAL, 0, "invalid_argument",
                                                "%s entry \"%s\" is not valid UTF-8", what, *p);
        }
        return 0;
}

static long json_long(json_t *obj, const char *key) {
        json_t *v = json_object_get(obj, key);

        if (json_is_integer(v))
                return (long) json_integer_value(v);
        if (json_is_real(v))
                return (long) json_real_value(v);
        return 0;
}

static bool json_flag(json_t *obj, const char *key) {
        return json_is_true(json_object_get(obj, key));
}

static int bad_response(ForgeClientError *err, const char *what) {
        return forge__error_set(err, EPROTO, 0, "bad_response", "the server's answer lacks %s", what);
}

FORGE_PUBLIC void forge_sandbox_clear(ForgeSandbox *sb) {
        if (!sb)
                return;
        free(sb->id);
        free(sb->status);
        free(sb->image);
        free(sb->isolator);
        free(sb->name);
        free(sb->cwd);
        free(sb->reason);
        free(sb->created_at);
        free(sb->updated_at);
        free(sb->json);
        memset(sb, 0, sizeof(*sb));
}

FORGE_PUBLIC void forge_sandbox_list_clear(ForgeSandboxList *list) {
        if (!list)
                return;
        for (size_t i = 0; i < list->n_sandboxes; i++)
                forge_sandbox_clear(&list->sandboxes[i]);
        free(list->sandboxes);
        memset(list, 0, sizeof(*list));
}

int forge__sandbox_from_json(json_t *j, ForgeSandbox *ret, ForgeClientError *err) {
        ForgeSandbox sb = {};
        json_t *limits = json_object_get(j, "limits");
        int r = 0;

        if (!json_is_string(json_object_get(j, "id")))
                return bad_response(err, "a sandbox id");
        r = r < 0 ? r : forge__json_strdup(j, "id", &sb.id);
        r = r < 0 ? r : forge__json_strdup(j, "status", &sb.status);
        r = r < 0 ? r : forge__json_strdup(j, "image", &sb.image);
        r = r < 0 ? r : forge__json_strdup(j, "isolator", &sb.isolator);
        r = r < 0 ? r : forge__json_strdup(j, "name", &sb.name);
        r = r < 0 ? r : forge__json_strdup(j, "cwd", &sb.cwd);
        r = r < 0 ? r : forge__json_strdup(j, "reason", &sb.reason);
        r = r < 0 ? r : forge__json_strdup(j, "created_at", &sb.created_at);
        r = r < 0 ? r : forge__json_strdup(j, "updated_at", &sb.updated_at);
        if (r >= 0) {
                sb.json = json_dumps(j, JSON_COMPACT);
                r = sb.json ? 0 : -ENOMEM;
        }
        if (r < 0) {
                forge_sandbox_clear(&sb);
                return forge__error_set(err, r, 0, "local_io", "out of memory");
        }
        json_t *cpus = json_object_get(limits, "cpus");
        sb.limits.cpus = json_is_number(cpus) ? json_number_value(cpus) : 0;
        sb.limits.memory_mb = json_long(limits, "memory_mb");
        sb.limits.pids = json_long(limits, "pids");
        sb.limits.timeout_ms = json_long(limits, "timeout_ms");
        *ret = sb;
        return 0;
}

int forge__signal_from_name(const char *name) {
        if (!name || !name[0])
                return 0;
        if (strncmp(name, "SIG", 3) == 0)
                name += 3;
        for (int sig = 1; sig < NSIG; sig++) {
                const char *abbrev = sigabbrev_np(sig);
                if (abbrev && strcmp(abbrev, name) == 0)
                        return sig;
        }
        return 0;
}

int forge__buffer_from_json(json_t *v, ForgeBuffer *ret) {
        size_t n = json_is_string(v) ? json_string_length(v) : 0;

        ret->data = malloc(n + 1);
        if (!ret->data)
                return -ENOMEM;
        if (n > 0)
                memcpy(ret->data, json_string_value(v), n);
        ret->data[n] = 0;
        ret->size = n;
        return 0;
}

FORGE_PUBLIC void forge_result_clear(ForgeResult *r) {
        if (!r)
                return;
        free(r->stdout_buf.data);
        free(r->stderr_buf.data);
        memset(r, 0, sizeof(*r));
}

/* The result object carries two spellings of most fields; take whichever is there. */
static json_t *json_get_either(json_t *obj, const char *a, const char *b) {
        json_t *v = json_object_get(obj, a);
        return v ? v : json_object_get(obj, b);
}

int forge__result_from_json(json_t *j, ForgeResult *ret, ForgeClientError *err) {
        ForgeResult res = {};
        json_t *code = json_get_either(j, "exit_code", "exitCode");
        json_t *sig = json_object_get(j, "signal");
        json_t *ms = json_get_either(j, "execution_time_ms", "executionTime");

        if (!json_is_object(j) || !json_is_integer(code))
                return bad_response(err, "an exit code");
        if (forge__buffer_from_json(json_object_get(j, "stdout"), &res.stdout_buf) < 0 ||
            forge__buffer_from_json(json_object_get(j, "stderr"), &res.stderr_buf) < 0) {
                forge_result_clear(&res);
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        }
        res.exit_code = (int) json_integer_value(code);
        if (json_is_string(sig))
                res.signal = forge__signal_from_name(json_string_value(sig));
        else if (json_is_integer(sig))
                res.signal = (int) json_integer_value(sig);
        res.timed_out = json_flag(j, "timedOut") || json_flag(j, "timed_out");
        res.truncated = json_flag(j, "truncated");
        res.oom_killed = json_flag(j, "oomKilled") || json_flag(j, "oom_killed");
        res.execution_ms = json_is_number(ms) ? (long) json_number_value(ms) : 0;
        *ret = res;
        return 0;
}

FORGE_PUBLIC const char *forge_file_type_to_string(ForgeFileType t) {
        switch (t) {
        case FORGE_FILE_REGULAR:
                return "file";
        case FORGE_FILE_DIRECTORY:
                return "directory";
        case FORGE_FILE_SYMLINK:
                return "symlink";
        default:
                return "other";
        }
}

static ForgeFileType file_type_from_string(const char *s) {
        if (!s)
                return FORGE_FILE_OTHER;
        if (strcmp(s, "file") == 0)
                return FORGE_FILE_REGULAR;
        if (strcmp(s, "directory") == 0)
                return FORGE_FILE_DIRECTORY;
        if (strcmp(s, "symlink") == 0)
                return FORGE_FILE_SYMLINK;
        return FORGE_FILE_OTHER;
}

FORGE_PUBLIC void forge_file_info_clear(ForgeFileInfo *info) {
        if (!info)
                return;
        free(info->path);
        free(info->name);
        free(info->link_target);
        free(info->mtime);
        memset(info, 0, sizeof(*info));
}

int forge__file_info_from_json(json_t *j, ForgeFileInfo *ret, ForgeClientError *err) {
        ForgeFileInfo info = {};
        json_t *size = json_object_get(j, "size");
        int r = 0;

        if (!json_is_string(json_object_get(j, "name")))
                return bad_response(err, "a file name");
        r = r < 0 ? r : forge__json_strdup(j, "path", &info.path);
        r = r < 0 ? r : forge__json_strdup(j, "name", &info.name);
        r = r < 0 ? r : forge__json_strdup(j, "link_target", &info.link_target);
        r = r < 0 ? r : forge__json_strdup(j, "mtime", &info.mtime);
        if (r < 0) {
                forge_file_info_clear(&info);
                return forge__error_set(err, r, 0, "local_io", "out of memory");
        }
        info.type = file_type_from_string(json_string_value(json_object_get(j, "type")));
        info.size = json_is_integer(size) && json_integer_value(size) > 0
                            ? (uint64_t) json_integer_value(size)
                            : 0;
        info.mode = (unsigned) json_long(j, "mode");
        *ret = info;
        return 0;
}
