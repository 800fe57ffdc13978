/* Running commands: the shell and execute routes, which wait and return a result. */
#include <string.h>

#include "libforge/internal.h"

static int invalid(ForgeClientError *err, const char *what) {
        return forge__error_set(err, EINVAL, 0, "invalid_argument", "%s", what);
}

/* Adds cwd, env, timeout_ms and stdin to a shell or execute body. */
static int run_options_to_json(const ForgeRunOptions *o, json_t *body, ForgeClientError *err) {
        json_t *env;
        int r;

        if (!o)
                return 0;
        if (o->cwd && json_object_set_new(body, "cwd", json_string(o->cwd)) < 0)
                return invalid(err, "the working directory is not valid UTF-8");
        if (o->env && o->env[0]) {
                env = json_object();
                if (!env || json_object_set_new(body, "env", env) < 0)
                        return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
                r = forge__json_add_pairs(env, o->env, "env", err);
                if (r < 0)
                        return r;
        }
        if (o->timeout_ms > 0 && json_object_set_new(body, "timeout_ms", json_integer(o->timeout_ms)) < 0)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        if (o->stdin_data &&
            json_object_set_new(body, "stdin", json_stringn(o->stdin_data, o->stdin_size)) < 0)
                return invalid(err, "stdin is not UTF-8 text (use the files API for binary input)");
        return 0;
}

static int run_route(ForgeClient *c, const char *id, const char *route, json_t *body,
                     const ForgeRunOptions *opts, ForgeResult *ret, ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = forge__sandbox_path(id, route, &path);
        if (r == -EINVAL)
                return invalid(err, "no sandbox id given");
        if (r < 0)
                return forge__error_set(err, r, 0, "local_io", "out of memory");
        r = run_options_to_json(opts, body, err);
        if (r < 0)
                return r;
        r = forge__request_json(c, "POST", path, body, &answer, err);
        if (r < 0)
                return r;
        return forge__result_from_json(answer, ret, err);
}

FORGE_PUBLIC int forge_sandbox_shell(ForgeClient *c, const char *id, const char *command,
                                     const ForgeRunOptions *opts, ForgeResult *ret, ForgeClientError *err) {
        _cleanup_json_ json_t *body = json_object();

        if (!body)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        if (!command)
                return invalid(err, "no command given");
        if (json_object_set_new(body, "command", json_string(command)) < 0)
                return invalid(err, "the command is not valid UTF-8");
        return run_route(c, id, "/shell", body, opts, ret, err);
}

FORGE_PUBLIC int forge_sandbox_execute(ForgeClient *c, const char *id, const char *code, const char *runtime,
                                       const ForgeRunOptions *opts, ForgeResult *ret,
                                       ForgeClientError *err) {
        _cleanup_json_ json_t *body = json_object();

        if (!body)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        if (!code || !runtime)
                return invalid(err, "execute needs code and a runtime");
        if (json_object_set_new(body, "code", json_string(code)) < 0 ||
            json_object_set_new(body, "runtime", json_string(runtime)) < 0)
                return invalid(err, "the code or runtime is not valid UTF-8");
        return run_route(c, id, "/execute", body, opts, ret, err);
}
