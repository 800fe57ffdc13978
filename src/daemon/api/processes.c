/* Background processes (docs/api.md "Processes"): start, list, inspect, output as JSON
 * or a Server-Sent Events follow, stdin, signals, kill, and the PTY over a WebSocket.
 * The process table, the rings and the follower bookkeeping are core/process.c's; this
 * file parses requests and renders answers and events. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "basic/base64.h"
#include "basic/log.h"
#include "basic/time-util.h"
#include "daemon/api/api.h"
#include "daemon/core/process.h"

#define MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define PTY_MAX_SIZE 10000
/* A reader's connection may hold this much unsent before forged stops feeding it (and
 * lets it fall behind the ring instead). */
#define FOLLOW_QUEUE_MAX (64 * 1024)

/* ---- rendering ---- */

static json_t *time_json(int64_t ms) {
        char buf[40];

        if (ms <= 0)
                return json_null();
        time_format_rfc3339(ms, buf, sizeof(buf));
        return json_string(buf);
}

static json_t *argv_json(char **argv) {
        json_t *a = json_array();

        for (char **s = argv; a && *s; s++)
                json_array_append_new(a, api_json_string(*s));
        return a;
}

static json_t *process_json(const Process *p) {
        bool running = p->state == PROCESS_RUNNING;

        return json_pack("{s:I, s:o, s:o, s:b, s:s, s:o, s:o, s:o, s:o, s:I, s:I}", "pid", (json_int_t) p->pid,
                         "argv", argv_json(p->argv), "cwd", api_json_string(p->cwd), "pty", p->pty, "status",
                         process_state_to_string(p->state), "exit_code",
                         running ? json_null() : json_integer(p->exit_code), "signal",
                         running ? json_null() : api_signal_json(p->signal), "started_at", time_json(p->started_ms),
                         "ended_at", time_json(p->ended_ms), "stdout_dropped",
                         (json_int_t) ring_start(&p->rings[0]), "stderr_dropped",
                         (json_int_t) ring_start(&p->rings[1]));
}

static const char *stream_name(ProtoStream stream) {
        return stream == PROTO_STREAM_STDERR ? "stderr" : "stdout";
}

int api_output_encoding(HttpRequest *req, bool *ret_base64, ForgeError *err) {
        bool invalid = false;
        const char *v = http_request_query(req, "encoding", &invalid);

        *ret_base64 = v && strcmp(v, "base64") == 0;
        if (invalid || (v && !*ret_base64 && strcmp(v, "text") != 0))
                return forge_error_set(err, EINVAL, "invalid_request", "'encoding' is 'text' or 'base64'");
        return 0;
}

int api_sse_json(HttpRequest *req, const char *event, json_t *data) {
        char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
        int r = text ? http_sse_send(req, event, text, strlen(text)) : -ENOMEM;

        free(text);
        json_decref(data);
        return r;
}

/* Trailing bytes that begin a UTF-8 character the data does not finish. */
static size_t utf8_incomplete_tail(const uint8_t *data, size_t len) {
        for (size_t back = 1; back <= MIN(len, (size_t) 3); back++) {
                uint8_t c = data[len - back];
                size_t need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;

                if ((c & 0xc0) == 0x80)
                        continue; /* a continuation byte: look further back */
                return need > back ? back : 0;
        }
        return 0;
}

static int sse_send_base64(HttpRequest *req, ProtoStream stream, const uint8_t *data, size_t len) {
        static const char head[] = "{\"data_base64\":\"";
        size_t cap = sizeof(head) + BASE64_ENCODED_LEN(len) + 3;
        char *text = malloc(cap);
        size_t n;
        int r;

        if (!text)
                return -ENOMEM;
        memcpy(text, head, sizeof(head) - 1);
        n = sizeof(head) - 1 + base64_encode(data, len, text + sizeof(head) - 1);
        memcpy(text + n, "\"}", 3);
        r = http_sse_send(req, stream_name(stream), text, n + 2);
        free(text);
        return r;
}

size_t api_sse_output(HttpRequest *req, ProtoStream stream, const uint8_t *data, size_t len, bool base64, bool more) {
        size_t take = len;

        if (!base64 && more)
                take -= utf8_incomplete_tail(data, len);
        if (take == 0)
                return 0;
        if (base64)
                sse_send_base64(req, stream, data, take);
        else
                api_sse_json(req, stream_name(stream), json_pack("{s:o}", "data", api_output_json(data, take)));
        return take;
}

/* ---- finding the process ---- */

/* The pid segment after "processes/" (the router matched the shape). */
static int path_pid(HttpRequest *req, int64_t *ret) {
        const char *s = strstr(http_request_path(req), "/processes/");
        char *end;
        long long v;

        if (!s)
                return -EINVAL;
        s += strlen("/processes/");
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || v <= 0 || (*end && *end != '/'))
                return -EINVAL;
        *ret = v;
        return 0;
}

/* The process the path names, or NULL after answering 404. */
static Process *call_process(ApiCall *call) {
        int64_t pid = 0;
        Process *p = NULL;

        if (path_pid(call->req, &pid) >= 0)
                p = process_find(call->sb, pid);
        if (!p) {
                const char *seg = strstr(http_request_path(call->req), "/processes/") + strlen("/processes/");

                api_fail(call, "process_not_found", "no process with pid '%.*s' in sandbox %s",
                         (int) MIN(strcspn(seg, "/"), (size_t) 64), seg, call->sb->id);
        }
        return p;
}

/* ---- start ---- */

static int parse_argv(ApiCall *call, ExecSpec *spec, ForgeError *err) {
        json_t *argv = json_object_get(call->body, "argv"), *v;
        const char *command;
        size_t i;
        int r;

        r = json_get_string(call->body, "command", false, &command, err);
        if (r < 0)
                return r;
        if (!command == !argv)
                return forge_error_set(err, EINVAL, "invalid_request", "exactly one of 'command' and 'argv' is required");
        if (command) {
                spec->argv = calloc(4, sizeof(char *));
                if (!spec->argv || !(spec->argv[0] = strdup("/bin/sh")) || !(spec->argv[1] = strdup("-c")) ||
                    !(spec->argv[2] = strdup(command)))
                        return forge_error_set(err, ENOMEM, "internal", "out of memory");
                return 0;
        }
        if (!json_is_array(argv) || json_array_size(argv) == 0 || json_array_size(argv) > PROTO_MAX_ARGS)
                return forge_error_set(err, EINVAL, "invalid_request", "'argv' must be an array of 1 to %d strings",
                                       PROTO_MAX_ARGS);
        spec->argv = calloc(json_array_size(argv) + 1, sizeof(char *));
        if (!spec->argv)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        json_array_foreach(argv, i, v) {
                if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
                    (i == 0 && json_string_length(v) == 0))
                        return forge_error_set(err, EINVAL, "invalid_request",
                                               "'argv' must hold strings without NUL bytes, the first not empty");
                if (!(spec->argv[i] = strdup(json_string_value(v))))
                        return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        return 0;
}

static int parse_pty(ApiCall *call, ExecSpec *spec, ForgeError *err) {
        static const char *const fields[] = {"rows", "cols", NULL};
        json_t *pty = json_object_get(call->body, "pty");
        int64_t rows = 24, cols = 80;
        int r;

        if (!pty || json_is_null(pty) || json_is_false(pty))
                return 0;
        if (json_is_true(pty))
                pty = NULL; /* the default size */
        else if (!json_is_object(pty))
                return forge_error_set(err, EINVAL, "invalid_request", "'pty' must be an object {rows, cols}");
        if (pty) {
                r = json_only_fields(pty, fields, "pty.", err);
                if (r >= 0)
                        r = json_get_int(pty, "rows", 1, PTY_MAX_SIZE, &rows, err);
                if (r >= 0)
                        r = json_get_int(pty, "cols", 1, PTY_MAX_SIZE, &cols, err);
                if (r < 0)
                        return r;
        }
        spec->pty_rows = (unsigned) rows;
        spec->pty_cols = (unsigned) cols;
        return 0;
}

static int parse_start(ApiCall *call, ExecSpec *spec, ForgeError *err) {
        static const char *const fields[] = {"command", "argv", "cwd", "env", "stdin", "pty", "timeout_ms", NULL};
        const char *cwd;
        json_t *env;
        int64_t timeout = 0;
        bool stdin_open = false;
        int r;

        r = json_only_fields(call->body, fields, "", err);
        if (r >= 0)
                r = parse_argv(call, spec, err);
        if (r >= 0)
                r = json_get_string(call->body, "cwd", false, &cwd, err);
        if (r >= 0)
                r = json_get_env(call->body, "env", &env, err);
        if (r >= 0)
                r = json_get_bool(call->body, "stdin", &stdin_open, err);
        if (r >= 0)
                r = json_get_int(call->body, "timeout_ms", 1, MAX_TIMEOUT_MS, &timeout, err);
        if (r >= 0)
                r = parse_pty(call, spec, err);
        if (r >= 0)
                r = api_resolve_path(cwd ? cwd : call->sb->cwd, call->sb->cwd, &spec->cwd, err);
        if (r < 0)
                return r;
        spec->env = exec_build_env(call->sb, env, spec->pty_rows > 0);
        if (!spec->env)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        spec->stdin_open = stdin_open;
        spec->timeout_ms = timeout;
        return 0;
}

static void on_started(void *userdata, Process *p, const ForgeError *err) {
        ApiCall *call = userdata;

        if (!p)
                return api_respond_error(call, err);
        api_respond_json(call, 201, process_json(p));
}

static void route_start(ApiCall *call) {
        ExecSpec spec = {0};
        ForgeError err = {0};

        if (parse_start(call, &spec, &err) < 0) {
                exec_spec_done(&spec);
                return api_respond_error(call, &err);
        }
        if (process_start(call->api->manager, call->sb, &spec, on_started, call, &err) < 0)
                api_respond_error(call, &err);
}

/* ---- list, inspect ---- */

static void route_list(ApiCall *call) {
        json_t *list = json_array();

        for (Process *p = process_next(call->sb, NULL); p; p = process_next(call->sb, p))
                json_array_append_new(list, process_json(p));
        api_respond_json(call, 200, json_pack("{s:o}", "processes", list));
}

static void route_get(ApiCall *call) {
        Process *p = call_process(call);

        if (p)
                api_respond_json(call, 200, process_json(p));
}

/* ---- output ---- */

static json_t *ring_json(Ring *r, bool base64) {
        size_t n = ring_size(r);
        uint8_t *buf = malloc(n + 1);
        char *text = base64 ? malloc(BASE64_ENCODED_LEN(n) + 1) : NULL;
        json_t *j = NULL;

        if (buf && (!base64 || text)) {
                ring_copy(r, ring_start(r), buf, n);
                if (base64) {
                        base64_encode(buf, n, text);
                        j = json_string(text);
                } else
                        j = api_output_json(buf, n);
        }
        free(buf);
        free(text);
        return j;
}

static void output_snapshot(ApiCall *call, Process *p, bool base64) {
        json_t *body = json_pack("{s:o, s:o, s:I, s:I, s:s}", base64 ? "stdout_base64" : "stdout",
                                 ring_json(&p->rings[0], base64), base64 ? "stderr_base64" : "stderr",
                                 ring_json(&p->rings[1], base64), "stdout_dropped",
                                 (json_int_t) ring_start(&p->rings[0]), "stderr_dropped",
                                 (json_int_t) ring_start(&p->rings[1]), "status", process_state_to_string(p->state));

        if (!body)
                return api_fail(call, "internal", "out of memory");
        api_respond_json(call, 200, body);
}

/* One SSE reader of a process. */
typedef struct Follow {
        ApiCall *call;
        ProcessFollower *follower;
        bool base64;
} Follow;

static void follow_free(Follow *fo) {
        http_response_on_drained(fo->call->req, NULL, NULL);
        api_call_free(fo->call);
        free(fo);
}

static size_t follow_on_output(void *userdata, ProtoStream stream, const uint8_t *data, size_t len, bool more) {
        Follow *fo = userdata;

        return api_sse_output(fo->call->req, stream, data, len, fo->base64, more);
}

static void follow_on_dropped(void *userdata, ProtoStream stream, uint64_t bytes) {
        Follow *fo = userdata;

        api_sse_json(fo->call->req, "dropped", json_pack("{s:s, s:I}", "stream", stream_name(stream), "bytes",
                                                          (json_int_t) bytes));
}

static void on_follow_drained(HttpRequest *req, void *userdata) {
        Follow *fo = userdata;

        process_follower_wake(fo->follower);
}

static bool follow_is_congested(void *userdata) {
        Follow *fo = userdata;

        if (http_response_pending(fo->call->req) < FOLLOW_QUEUE_MAX)
                return false;
        http_response_on_drained(fo->call->req, on_follow_drained, fo);
        return true;
}

static void follow_on_exit(void *userdata, Process *p) {
        Follow *fo = userdata;

        fo->follower = NULL;
        api_sse_json(fo->call->req, "exit", process_json(p));
        http_response_end(fo->call->req);
        follow_free(fo);
}

static const ProcessFollowerOps follow_ops = {
        .on_output = follow_on_output,
        .on_dropped = follow_on_dropped,
        .is_congested = follow_is_congested,
        .on_exit = follow_on_exit,
};

/* The reader disconnected: the process and the other readers go on. */
static void on_follow_gone(HttpRequest *req, void *userdata) {
        Follow *fo = userdata;

        process_follower_stop(TAKE_PTR(fo->follower));
        follow_free(fo);
}

static void output_follow(ApiCall *call, Process *p, bool base64) {
        Follow *fo = calloc(1, sizeof(*fo));

        if (!fo)
                return api_fail(call, "internal", "out of memory");
        *fo = (Follow){.call = call, .base64 = base64};
        fo->follower = process_follow(p, true, &follow_ops, fo);
        if (!fo->follower || http_sse_begin(call->req) < 0) {
                process_follower_stop(fo->follower);
                free(fo);
                return api_fail(call, "internal", "cannot start the event stream");
        }
        http_request_on_abort(call->req, on_follow_gone, fo);
        process_follower_wake(fo->follower);
}

static void route_output(ApiCall *call) {
        bool invalid = false, base64 = false;
        const char *follow = http_request_query(call->req, "follow", &invalid);
        ForgeError err = {0};
        Process *p;

        if (api_output_encoding(call->req, &base64, &err) < 0)
                return api_respond_error(call, &err);
        if (invalid || (follow && strcmp(follow, "0") != 0 && strcmp(follow, "1") != 0 &&
                        strcmp(follow, "false") != 0 && strcmp(follow, "true") != 0))
                return api_fail(call, "invalid_request", "'follow' is 1 or 0");
        p = call_process(call);
        if (!p)
                return;
        if (follow && (strcmp(follow, "1") == 0 || strcmp(follow, "true") == 0))
                output_follow(call, p, base64);
        else
                output_snapshot(call, p, base64);
}

/* ---- stdin ---- */

static void on_stdin_sent(void *userdata, int status) {
        ApiCall *call = userdata;

        if (status < 0)
                return api_fail(call, "stdin_closed", "the process ended before its stdin took the data");
        api_respond_json(call, 204, NULL);
}

static int parse_stdin(ApiCall *call, uint8_t **ret, size_t *ret_len, bool *ret_close, ForgeError *err) {
        static const char *const fields[] = {"data", "data_base64", "close", NULL};
        json_t *text = json_object_get(call->body, "data"), *b64 = json_object_get(call->body, "data_base64");
        bool close = false;
        int r;

        r = json_only_fields(call->body, fields, "", err);
        if (r >= 0)
                r = json_get_bool(call->body, "close", &close, err);
        if (r < 0)
                return r;
        if ((text && !json_is_string(text)) || (b64 && !json_is_string(b64)))
                return forge_error_set(err, EINVAL, "invalid_request", "'data' and 'data_base64' are strings");
        if ((text && b64) || (!text && !b64 && !close))
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "give one of 'data' and 'data_base64', or 'close': true");
        *ret_close = close;
        if (b64 && base64_decode(json_string_value(b64), json_string_length(b64), ret, ret_len) < 0)
                return forge_error_set(err, EINVAL, "invalid_request", "'data_base64' is not valid base64");
        if (text) {
                *ret_len = json_string_length(text); /* NUL bytes included: stdin is bytes */
                *ret = malloc(*ret_len + 1);
                if (!*ret)
                        return forge_error_set(err, ENOMEM, "internal", "out of memory");
                memcpy(*ret, json_string_value(text), *ret_len);
        }
        return 0;
}

static void route_stdin(ApiCall *call) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        bool close = false;
        ForgeError err = {0};
        Process *p;
        int r;

        if (parse_stdin(call, &data, &len, &close, &err) < 0)
                return api_respond_error(call, &err);
        p = call_process(call);
        if (!p)
                return;
        r = process_write_stdin(p, data, len, close, on_stdin_sent, call);
        if (r == -EPIPE)
                return api_fail(call, "stdin_closed", "process %lld has no open stdin (%s)", (long long) p->pid,
                                p->state == PROCESS_RUNNING ? "not asked for, or closed" : "it has ended");
        if (r < 0)
                return api_fail(call, "internal", "out of memory");
}

/* ---- signals and kill ---- */

/* "SIGTERM", "TERM", "sigterm", 15 or "15". */
static int parse_signal(json_t *v, int *ret, ForgeError *err) {
        const char *name = json_is_string(v) ? json_string_value(v) : NULL;
        char *end;
        long n;

        if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) < NSIG) {
                *ret = (int) json_integer_value(v);
                return 0;
        }
        if (name && name[0] >= '0' && name[0] <= '9') {
                n = strtol(name, &end, 10);
                if (*end == 0 && n >= 1 && n < NSIG) {
                        *ret = (int) n;
                        return 0;
                }
        } else if (name) {
                if (strncasecmp(name, "SIG", 3) == 0)
                        name += 3;
                for (int sig = 1; sig < NSIG; sig++)
                        if (sigabbrev_np(sig) && strcasecmp(sigabbrev_np(sig), name) == 0) {
                                *ret = sig;
                                return 0;
                        }
        }
        return forge_error_set(err, EINVAL, "invalid_request", "'signal' must be a signal name (\"SIGTERM\") or number");
}

static void route_signal(ApiCall *call) {
        static const char *const fields[] = {"signal", NULL};
        json_t *v = json_object_get(call->body, "signal");
        ForgeError err = {0};
        Process *p;
        int sig = 0;

        if (json_only_fields(call->body, fields, "", &err) < 0)
                return api_respond_error(call, &err);
        if (!v)
                return api_fail(call, "invalid_request", "'signal' is required");
        if (parse_signal(v, &sig, &err) < 0)
                return api_respond_error(call, &err);
        p = call_process(call);
        if (!p)
                return;
        if (p->state != PROCESS_RUNNING || process_signal(p, sig) < 0)
                return api_fail(call, "process_not_running", "process %lld has ended", (long long) p->pid);
        api_respond_json(call, 204, NULL);
}

/* DELETE answers once the process is gone: a follower without output that waits for the
 * exit. */
typedef struct KillWait {
        ApiCall *call;
        ProcessFollower *follower;
} KillWait;

static size_t kill_on_output(void *userdata, ProtoStream stream, const uint8_t *data, size_t len, bool more) {
        return len;
}

static void kill_on_dropped(void *userdata, ProtoStream stream, uint64_t bytes) {
}

static bool kill_is_congested(void *userdata) {
        return false;
}

static void kill_on_exit(void *userdata, Process *p) {
        KillWait *kw = userdata;

        api_respond_json(kw->call, 204, NULL);
        free(kw);
}

static const ProcessFollowerOps kill_ops = {
        .on_output = kill_on_output,
        .on_dropped = kill_on_dropped,
        .is_congested = kill_is_congested,
        .on_exit = kill_on_exit,
};

static void on_kill_gone(HttpRequest *req, void *userdata) {
        KillWait *kw = userdata;

        process_follower_stop(kw->follower);
        api_call_free(kw->call);
        free(kw);
}

static void route_kill(ApiCall *call) {
        Process *p = call_process(call);
        KillWait *kw;

        if (!p)
                return;
        if (p->state != PROCESS_RUNNING)
                return api_respond_json(call, 204, NULL);
        kw = calloc(1, sizeof(*kw));
        if (!kw)
                return api_fail(call, "internal", "out of memory");
        kw->call = call;
        kw->follower = process_follow(p, false, &kill_ops, kw);
        if (!kw->follower || process_signal(p, SIGKILL) < 0) {
                process_follower_stop(kw->follower);
                free(kw);
                return api_fail(call, "agent_unavailable", "cannot reach the sandbox's agent");
        }
        http_request_on_abort(call->req, on_kill_gone, kw);
}

/* ---- the terminal over a WebSocket ---- */

/* Lives while the socket is open or a stdin write is in flight. */
typedef struct Attach {
        unsigned n_ref;
        Process *process; /* a reference */
        HttpWebSocket *ws; /* a reference, until on_close */
        ProcessFollower *follower;
} Attach;

static void attach_unref(Attach *a) {
        if (--a->n_ref > 0)
                return;
        process_unref(a->process);
        free(a);
}

static size_t attach_on_output(void *userdata, ProtoStream stream, const uint8_t *data, size_t len, bool more) {
        Attach *a = userdata;

        http_websocket_send(a->ws, true, data, len);
        return len;
}

static void attach_on_dropped(void *userdata, ProtoStream stream, uint64_t bytes) {
        Attach *a = userdata;
        char msg[96];
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"dropped\",\"stream\":\"%s\",\"bytes\":%llu}",
                         stream_name(stream), (unsigned long long) bytes);

        http_websocket_send(a->ws, false, msg, (size_t) n);
}

static void on_attach_drained(HttpWebSocket *ws, void *userdata) {
        Attach *a = userdata;

        process_follower_wake(a->follower);
}

static bool attach_is_congested(void *userdata) {
        Attach *a = userdata;

        if (http_websocket_pending(a->ws) < FOLLOW_QUEUE_MAX)
                return false;
        http_websocket_on_drained(a->ws, on_attach_drained, a);
        return true;
}

static void attach_on_exit(void *userdata, Process *p) {
        Attach *a = userdata;
        json_t *msg = process_json(p);
        char *text;

        a->follower = NULL;
        json_object_set_new(msg, "type", json_string("exit"));
        text = json_dumps(msg, JSON_COMPACT);
        if (text)
                http_websocket_send(a->ws, false, text, strlen(text));
        free(text);
        json_decref(msg);
        http_websocket_close(a->ws, 1000, "process exited");
}

static const ProcessFollowerOps attach_follow_ops = {
        .on_output = attach_on_output,
        .on_dropped = attach_on_dropped,
        .is_congested = attach_is_congested,
        .on_exit = attach_on_exit,
};

static void on_attach_stdin_sent(void *userdata, int status) {
        Attach *a = userdata;

        if (a->ws)
                http_websocket_resume(a->ws);
        attach_unref(a);
}

static void attach_control(Attach *a, const uint8_t *data, size_t len) {
        json_t *msg = json_loadb((const char *) data, len, 0, NULL);
        const char *type = json_string_value(json_object_get(msg, "type"));
        json_int_t rows = json_integer_value(json_object_get(msg, "rows"));
        json_int_t cols = json_integer_value(json_object_get(msg, "cols"));

        if (type && strcmp(type, "resize") == 0 && rows > 0 && cols > 0 && rows <= PTY_MAX_SIZE &&
            cols <= PTY_MAX_SIZE)
                process_resize(a->process, (unsigned) rows, (unsigned) cols);
        else
                log_debug("attach: ignored a control message that is not a valid resize");
        json_decref(msg);
}

/* Terminal input waits for the agent's credit: the socket is not read meanwhile. */
static void on_attach_message(HttpWebSocket *ws, bool binary, const uint8_t *data, size_t len, void *userdata) {
        Attach *a = userdata;

        if (!binary)
                return attach_control(a, data, len);
        /* Paused first: when the agent has credit, on_attach_stdin_sent runs at once. */
        http_websocket_pause(ws);
        a->n_ref++;
        if (process_write_stdin(a->process, data, len, false, on_attach_stdin_sent, a) < 0) {
                http_websocket_resume(ws); /* the process is over: input goes nowhere */
                attach_unref(a);
        }
}

static void on_attach_close(HttpWebSocket *ws, void *userdata) {
        Attach *a = userdata;

        process_follower_stop(TAKE_PTR(a->follower));
        http_websocket_unref(TAKE_PTR(a->ws));
        attach_unref(a);
}

static const HttpWebSocketOps attach_ws_ops = {
        .on_message = on_attach_message,
        .on_close = on_attach_close,
};

static void route_attach(ApiCall *call) {
        Process *p = call_process(call);
        HttpWebSocket *ws;
        Attach *a;

        if (!p)
                return;
        if (!p->pty)
                return api_fail(call, "no_pty", "process %lld has no terminal (start it with \"pty\")",
                                (long long) p->pid);
        if (!http_request_is_websocket(call->req))
                return api_fail(call, "invalid_request", "attach is a WebSocket: send an Upgrade request");
        a = calloc(1, sizeof(*a));
        if (!a)
                return api_fail(call, "internal", "out of memory");
        *a = (Attach){.n_ref = 1, .process = process_ref(p)};
        a->follower = process_follow(p, true, &attach_follow_ops, a);
        if (!a->follower) {
                attach_unref(a);
                return api_fail(call, "internal", "out of memory");
        }
        if (http_websocket_accept(call->req, &attach_ws_ops, a, &ws) < 0) {
                /* accept answered the request itself when it refused it */
                process_follower_stop(a->follower);
                attach_unref(a);
                return api_call_free(call);
        }
        a->ws = http_websocket_ref(ws);
        api_call_free(call);
        process_follower_wake(a->follower);
}

/* ---- every route sees the table after process_sync() ---- */

typedef struct Synced {
        ApiCall *call;
        ApiHandler handler;
} Synced;

static void on_synced(void *userdata) {
        Synced *s = userdata;
        ApiCall *call = s->call;
        ApiHandler handler = s->handler;

        free(s);
        handler(call);
}

/* After a forged restart or a dropped agent connection, the agent's retained processes
 * are adopted before the route looks at the table. */
static void after_sync(ApiCall *call, ApiHandler handler) {
        Synced *s = malloc(sizeof(*s));

        if (!s)
                return api_fail(call, "internal", "out of memory");
        *s = (Synced){.call = call, .handler = handler};
        process_sync(call->api->manager, call->sb, on_synced, s);
}

void api_process_start(ApiCall *call) {
        after_sync(call, route_start);
}

void api_process_list(ApiCall *call) {
        after_sync(call, route_list);
}

void api_process_get(ApiCall *call) {
        after_sync(call, route_get);
}

void api_process_kill(ApiCall *call) {
        after_sync(call, route_kill);
}

void api_process_output(ApiCall *call) {
        after_sync(call, route_output);
}

void api_process_stdin(ApiCall *call) {
        after_sync(call, route_stdin);
}

void api_process_signal(ApiCall *call) {
        after_sync(call, route_signal);
}

void api_process_attach(ApiCall *call) {
        after_sync(call, route_attach);
}
