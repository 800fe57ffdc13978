/* `shell` and `execute`: run one command to completion and answer the result object. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "basic/time-util.h"
#include "basic/utf8.h"
#include "daemon/api/api.h"
#include "daemon/core/exec.h"
#include "daemon/core/images.h"
#include "daemon/core/metrics.h"

#define MAX_TIMEOUT_MS (24LL * 3600 * 1000)

/* A streaming client that has this much unsent keeps the command waiting (its output
 * credit is held back) until the connection drains. */
#define STREAM_QUEUE_MAX (64 * 1024)

typedef struct CommandCall {
        ApiCall *call;
        Exec *exec;
        ExecCapture out, err;
        /* Streaming (Accept: text/event-stream): events go out as output arrives. */
        bool stream, base64, started;
        uint8_t carry[2][4]; /* an incomplete UTF-8 sequence at the end of the last piece */
        size_t carry_len[2];
        size_t owed[2]; /* credit held back while the client is slow */
        int64_t started_ms; /* monotonic, for forge_exec_seconds */
} CommandCall;

json_t *api_output_json(const uint8_t *data, size_t len) {
        size_t clean_len;
        char *clean = utf8_sanitize(data ? data : (const uint8_t *) "", len, &clean_len);
        json_t *j = clean ? json_stringn(clean, clean_len) : NULL;

        free(clean);
        return j;
}

json_t *api_signal_json(int sig) {
        char name[32];
        const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;

        if (sig <= 0)
                return json_null();
        if (abbrev)
                snprintf(name, sizeof(name), "SIG%s", abbrev);
        else
                snprintf(name, sizeof(name), "%d", sig);
        return json_string(name);
}

/* Both spellings clients read: SandboX's camelCase and the snake_case of the rest. */
static json_t *result_json(const ExecResult *res) {
        return json_pack("{s:b, s:o, s:o, s:i, s:i, s:I, s:I, s:b, s:b, s:b, s:o}", "success", res->exit_code == 0,
                         "stdout", api_output_json(res->out, res->out_len), "stderr",
                         api_output_json(res->err, res->err_len), "exitCode", res->exit_code, "exit_code",
                         res->exit_code, "executionTime", (json_int_t) res->duration_ms, "execution_time_ms",
                         (json_int_t) res->duration_ms, "timedOut", res->timed_out, "truncated", res->truncated,
                         "oomKilled", res->oom_killed, "signal", api_signal_json(res->signal));
}

static void command_call_free(CommandCall *cc) {
        http_response_on_drained(cc->call->req, NULL, NULL);
        api_call_free(cc->call);
        exec_capture_done(&cc->out);
        exec_capture_done(&cc->err);
        free(cc);
}

static void on_spawned(void *userdata, int64_t pid) {
        CommandCall *cc = userdata;

        if (cc->stream && http_sse_begin(cc->call->req) >= 0)
                cc->started = true;
}

/* Sends data (after what an earlier piece left over) as events; keeps an incomplete
 * character at the end for the next piece unless this is the last. */
static void stream_output(CommandCall *cc, ProtoStream stream, const uint8_t *data, size_t len, bool more) {
        int i = stream == PROTO_STREAM_STDERR;
        size_t total = cc->carry_len[i] + len, took;
        uint8_t *joined = malloc(total ? total : 1);

        if (!joined)
                return;
        memcpy(joined, cc->carry[i], cc->carry_len[i]);
        if (len > 0)
                memcpy(joined + cc->carry_len[i], data, len);
        took = api_sse_output(cc->call->req, stream, joined, total, cc->base64, more);
        cc->carry_len[i] = MIN(total - took, sizeof(cc->carry[i]));
        memcpy(cc->carry[i], joined + took, cc->carry_len[i]);
        free(joined);
}

static void on_stream_drained(HttpRequest *req, void *userdata) {
        CommandCall *cc = userdata;

        for (int i = 0; i < 2; i++) {
                exec_credit(cc->exec, i ? PROTO_STREAM_STDERR : PROTO_STREAM_STDOUT, cc->owed[i]);
                cc->owed[i] = 0;
        }
}

static bool on_output(void *userdata, ProtoStream stream, const uint8_t *data, size_t len) {
        CommandCall *cc = userdata;
        HttpRequest *req = cc->call->req;

        exec_capture_append(stream == PROTO_STREAM_STDERR ? &cc->err : &cc->out, data, len);
        if (!cc->started)
                return true;
        stream_output(cc, stream, data, len, true);
        if (http_response_pending(req) < STREAM_QUEUE_MAX)
                return true;
        /* The client reads slowly: the command waits for it, as the blocking shell's
         * command would wait for forged. */
        cc->owed[stream == PROTO_STREAM_STDERR] += len;
        http_response_on_drained(req, on_stream_drained, cc);
        return false;
}

static void stream_finish(CommandCall *cc, const ExecResult *res, const ForgeError *err) {
        HttpRequest *req = cc->call->req;

        stream_output(cc, PROTO_STREAM_STDOUT, NULL, 0, false);
        stream_output(cc, PROTO_STREAM_STDERR, NULL, 0, false);
        if (res)
                api_sse_json(req, "exit", result_json(res));
        else
                api_sse_json(req, "error", json_pack("{s:s, s:s}", "error", err->message, "code", err->code));
        http_response_end(req);
}

static void on_exec_exit(void *userdata, const ExecStatus *st, const ForgeError *err) {
        CommandCall *cc = userdata;
        ExecResult res;

        cc->exec = NULL;
        metrics_observe_since(METRIC_EXEC_SECONDS, cc->started_ms);
        if (st)
                res = exec_result(&cc->out, &cc->err, st);
        if (cc->started)
                stream_finish(cc, st ? &res : NULL, err);
        else if (!st)
                api_respond_error(TAKE_PTR(cc->call), err);
        else
                api_respond_json(TAKE_PTR(cc->call), 200, result_json(&res));
        if (cc->call)
                command_call_free(cc);
        else {
                exec_capture_done(&cc->out);
                exec_capture_done(&cc->err);
                free(cc);
        }
}

static const ExecOps command_exec_ops = {
        .on_spawned = on_spawned,
        .on_output = on_output,
        .on_exit = on_exec_exit,
};

static void on_client_gone(HttpRequest *req, void *userdata) {
        CommandCall *cc = userdata;

        /* The caller stopped waiting: the command dies with its request. */
        exec_abandon(TAKE_PTR(cc->exec));
        command_call_free(cc);
}

/* The fields shell and execute share: cwd, env, timeout_ms, stdin. */
static int parse_common(ApiCall *call, ExecSpec *spec, ForgeError *err) {
        const char *cwd, *stdin_text;
        json_t *env;
        int64_t timeout = call->sb->limits.timeout_ms;
        int r;

        r = json_get_string(call->body, "cwd", false, &cwd, err);
        if (r >= 0)
                r = json_get_env(call->body, "env", &env, err);
        if (r >= 0)
                r = json_get_int(call->body, "timeout_ms", 1, MAX_TIMEOUT_MS, &timeout, err);
        if (r >= 0)
                r = json_get_string(call->body, "stdin", false, &stdin_text, err);
        if (r < 0)
                return r;
        r = api_resolve_path(cwd ? cwd : call->sb->cwd, call->sb->cwd, &spec->cwd, err);
        if (r < 0)
                return r;
        spec->env = exec_build_env(call->sb, env, false);
        if (!spec->env)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        if (stdin_text) {
                spec->stdin_len = strlen(stdin_text);
                spec->stdin_data = (uint8_t *) strdup(stdin_text);
                if (!spec->stdin_data)
                        return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        spec->timeout_ms = timeout;
        return 0;
}

static char **argv_new(const char *a, const char *b, const char *c) {
        char **argv = calloc(4, sizeof(char *));
        const char *src[] = {a, b, c};

        for (size_t i = 0; argv && i < 3 && src[i]; i++)
                if (!(argv[i] = strdup(src[i]))) {
                        strv_free(argv);
                        return NULL;
                }
        return argv;
}

static void command_run(ApiCall *call, ExecSpec *spec) {
        CommandCall *cc = calloc(1, sizeof(*cc));
        const char *accept = http_request_header(call->req, "Accept");
        const char *encoding = http_request_query(call->req, "encoding", NULL);
        ForgeError err = {0};

        if (!cc) {
                exec_spec_done(spec);
                return api_fail(call, "internal", "out of memory");
        }
        cc->call = call;
        cc->started_ms = time_mono_ms();
        cc->stream = accept && strstr(accept, "text/event-stream");
        cc->base64 = encoding && strcmp(encoding, "base64") == 0;
        if (exec_start(call->api->manager, call->sb, spec, &command_exec_ops, cc, &cc->exec, &err) < 0) {
                free(cc);
                return api_respond_error(call, &err);
        }
        http_request_on_abort(call->req, on_client_gone, cc);
}

void api_shell(ApiCall *call) {
        static const char *const fields[] = {"command", "cwd", "env", "timeout_ms", "stdin", NULL};
        ExecSpec spec = {0};
        ForgeError err = {0};
        const char *command;

        if (json_only_fields(call->body, fields, "", &err) < 0 ||
            json_get_string(call->body, "command", true, &command, &err) < 0 ||
            parse_common(call, &spec, &err) < 0) {
                exec_spec_done(&spec);
                return api_respond_error(call, &err);
        }
        spec.argv = argv_new("/bin/sh", "-c", command);
        if (!spec.argv) {
                exec_spec_done(&spec);
                return api_fail(call, "internal", "out of memory");
        }
        command_run(call, &spec);
}

static int code_path_new(const char *suffix, char **ret) {
        uint8_t rnd[8];
        char hex[17];

        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno;
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        return asprintf(ret, "/tmp/.forge-exec-%s%s", hex, suffix) < 0 ? -ENOMEM : 0;
}

void api_execute(ApiCall *call) {
        static const char *const fields[] = {"code", "runtime", "language", "cwd", "env", "timeout_ms", "stdin", NULL};
        const char *code, *runtime, *language, *interp, *suffix;
        ExecSpec spec = {0};
        ForgeError err = {0};
        int r;

        r = json_only_fields(call->body, fields, "", &err);
        if (r >= 0)
                r = json_get_string(call->body, "code", true, &code, &err);
        if (r >= 0)
                r = json_get_string(call->body, "runtime", false, &runtime, &err);
        if (r >= 0)
                r = json_get_string(call->body, "language", false, &language, &err);
        if (r >= 0 && !runtime && !language)
                r = forge_error_set(&err, EINVAL, "invalid_request", "'runtime' (or 'language') is required");
        if (r >= 0)
                r = images_runtime(call->api->manager, call->sb->image, runtime ? runtime : language, &interp,
                                   &suffix, &err);
        if (r >= 0)
                r = parse_common(call, &spec, &err);
        if (r >= 0 && code_path_new(suffix, &spec.code_path) < 0)
                r = forge_error_set(&err, ENOMEM, "internal", "out of memory");
        if (r >= 0) {
                spec.code_len = json_string_length(json_object_get(call->body, "code"));
                spec.code = malloc(spec.code_len + 1);
                spec.argv = argv_new(interp, spec.code_path, NULL);
                if (!spec.code || !spec.argv)
                        r = forge_error_set(&err, ENOMEM, "internal", "out of memory");
        }
        if (r < 0) {
                exec_spec_done(&spec);
                return api_respond_error(call, &err);
        }
        memcpy(spec.code, code, spec.code_len);
        command_run(call, &spec);
}
