#include "daemon/core/exec.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "basic/log.h"
#include "basic/time-util.h"
#include "daemon/agentc.h"
#include "daemon/core/files.h"

/* Bytes queued for stdin, in order; done runs once they are with the agent. */
typedef struct StdinChunk {
        struct StdinChunk *next;
        uint8_t *data;
        size_t len, off;
        bool close;
        ExecStdinDone done;
        void *userdata;
} StdinChunk;

struct Exec {
        unsigned n_ref;
        Manager *manager;
        Sandbox *sb;
        AgentConn *conn;
        ExecSpec spec;
        uint32_t channel;
        int64_t pid;         /* in the sandbox: once spawned, or from the start when adopting */
        uint64_t from[2];    /* exec_adopt(): replay offsets asked for */
        uv_timer_t *timer;
        int64_t started_ms;
        uint64_t oom_before;
        bool spawned;       /* the agent answered the SPAWN: stdin may flow */
        StdinChunk *stdin_head, *stdin_tail;
        size_t stdin_credit;
        bool stdin_wanted;  /* the agent opened a stdin for the command */
        bool stdin_closing; /* a close is queued or sent: no more writes */
        bool finished;      /* on_exit ran, or the caller abandoned us */
        const ExecOps *ops;
        void *userdata;
};

void strv_free(char **v) {
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

void exec_spec_done(ExecSpec *spec) {
        strv_free(spec->argv);
        strv_free(spec->env);
        free(spec->cwd);
        free(spec->stdin_data);
        free(spec->code_path);
        free(spec->code);
        free(spec->meta);
        *spec = (ExecSpec){0};
}

static int env_put(json_t *env, const char *key, const char *value) {
        return json_object_set_new(env, key, json_string(value));
}

char **exec_build_env(const Sandbox *sb, json_t *extra, bool tty) {
        json_t *env = json_object(), *v;
        const char *key;
        char **ret = NULL;
        size_t i = 0;

        if (!env)
                return NULL;
        env_put(env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        env_put(env, "HOME", "/root");
        env_put(env, "USER", "root");
        env_put(env, "LOGNAME", "root");
        env_put(env, "SHELL", "/bin/sh");
        env_put(env, "LANG", "C.UTF-8");
        env_put(env, "TERM", tty ? "xterm-256color" : "dumb");
        env_put(env, "HOSTNAME", sb->id);
        json_object_update(env, sb->env);
        if (extra)
                json_object_update(env, extra);
        ret = calloc(json_object_size(env) + 1, sizeof(char *));
        json_object_foreach(env, key, v) {
                if (!ret || asprintf(&ret[i], "%s=%s", key, json_string_value(v)) < 0) {
                        strv_free(ret);
                        ret = NULL;
                        break;
                }
                i++;
        }
        json_decref(env);
        return ret;
}

/* ---- capture ---- */

void exec_capture_append(ExecCapture *c, const uint8_t *data, size_t len) {
        size_t take = MIN(len, (size_t) EXEC_OUTPUT_CAP - c->len);

        if (take < len)
                c->truncated = true;
        if (take == 0)
                return;
        if (c->len + take > c->cap) {
                size_t cap = MIN(MAX(c->cap * 2, c->len + take), (size_t) EXEC_OUTPUT_CAP);
                uint8_t *grown = realloc(c->data, cap);

                if (!grown) {
                        c->truncated = true;
                        return;
                }
                c->data = grown;
                c->cap = cap;
        }
        memcpy(c->data + c->len, data, take);
        c->len += take;
}

void exec_capture_done(ExecCapture *c) {
        free(c->data);
        *c = (ExecCapture){0};
}

ExecResult exec_result(const ExecCapture *out, const ExecCapture *err, const ExecStatus *status) {
        return (ExecResult){
                .out = out->data,
                .err = err->data,
                .out_len = out->len,
                .err_len = err->len,
                .truncated = out->truncated || err->truncated,
                .timed_out = status->timed_out,
                .oom_killed = status->oom_killed,
                .exit_code = status->exit_code,
                .signal = status->signal,
                .duration_ms = status->duration_ms,
        };
}

/* ---- lifetime ---- */

static Exec *exec_ref(Exec *e) {
        e->n_ref++;
        return e;
}

/* Queued stdin that will never be sent: tell its writers. */
static void stdin_fail_all(Exec *e) {
        while (e->stdin_head) {
                StdinChunk *c = e->stdin_head;

                e->stdin_head = c->next;
                if (c->done)
                        c->done(c->userdata, -EPIPE);
                free(c->data);
                free(c);
        }
        e->stdin_tail = NULL;
        e->stdin_closing = true;
}

static void exec_unref(Exec *e) {
        if (--e->n_ref > 0)
                return;
        stdin_fail_all(e);
        exec_spec_done(&e->spec);
        agentc_unref(e->conn);
        sandbox_unref(e->sb);
        free(e);
}

static void on_timer_closed(uv_handle_t *h) {
        Exec *e = h->data;

        free(h);
        exec_unref(e);
}

static void on_ignored_reply(void *userdata, const ProtoResponse *resp) {
}

static void code_file_remove(Exec *e) {
        ProtoBuf b = {0};

        if (!e->spec.code_path || !agentc_is_open(e->conn))
                return;
        agentc_request_begin(e->conn, &b, PROTO_OP_REMOVE);
        proto_buf_put_str(&b, PROTO_TAG_PATH, e->spec.code_path);
        agentc_request_send(e->conn, &b, on_ignored_reply, NULL);
}

/* Ends the command once: stops the timer, releases the channel, reports (on_detached
 * when detached, else on_exit). */
static void exec_end(Exec *e, bool detached, const ExecStatus *status, const ForgeError *err) {
        bool tell = !e->finished;

        e->finished = true;
        if (e->timer) {
                uv_timer_stop(e->timer);
                uv_close((uv_handle_t *) TAKE_PTR(e->timer), on_timer_closed);
        }
        if (e->channel) {
                agentc_channel_close(e->conn, e->channel);
                e->channel = 0;
                exec_unref(e);
        }
        code_file_remove(e);
        stdin_fail_all(e);
        if (tell) {
                if (detached)
                        e->ops->on_detached(e->userdata);
                else
                        e->ops->on_exit(e->userdata, status, err);
                exec_unref(e); /* the caller's reference */
        }
}

static void exec_finish(Exec *e, const ExecStatus *status, const ForgeError *err) {
        exec_end(e, false, status, err);
}

static uint64_t oom_count(Exec *e) {
        SandboxPlan plan;
        SandboxUsage u = {0};

        sandbox_plan(e->sb, &plan);
        if (e->sb->isolator->stats(&plan, &u) < 0)
                return 0;
        return u.oom_kills;
}

/* ---- the channel ---- */

static void on_data(void *userdata, ProtoStream stream, const uint8_t *data, size_t len) {
        Exec *e = userdata;
        bool credit = true;

        if (!e->finished) {
                exec_ref(e);
                credit = e->ops->on_output(e->userdata, stream, data, len);
                exec_unref(e);
        }
        /* Unless the caller holds it back, output is credited at once: whatever the
         * caller keeps, the command never blocks on forged. */
        if (credit && e->channel)
                agentc_send_credit(e->conn, e->channel, stream, (uint32_t) len);
}

static void stdin_pump(Exec *e) {
        while (e->stdin_head && e->spawned && e->channel) {
                StdinChunk *c = e->stdin_head;
                size_t n = MIN(c->len - c->off, e->stdin_credit);

                if (n > 0 && agentc_send_data(e->conn, e->channel, PROTO_STREAM_STDIN, c->data + c->off, n) == 0) {
                        c->off += n;
                        e->stdin_credit -= n;
                }
                if (c->off < c->len)
                        return;
                if (c->close)
                        agentc_send_eof(e->conn, e->channel, PROTO_STREAM_STDIN);
                e->stdin_head = c->next;
                if (!e->stdin_head)
                        e->stdin_tail = NULL;
                if (c->done)
                        c->done(c->userdata, 0);
                free(c->data);
                free(c);
        }
}

static void on_credit(void *userdata, ProtoStream stream, uint32_t bytes) {
        Exec *e = userdata;

        if (stream != PROTO_STREAM_STDIN)
                return;
        e->stdin_credit += bytes;
        exec_ref(e);
        stdin_pump(e);
        exec_unref(e);
}

static ExecStatus status_from_exit(Exec *e, const ProtoExit *ex) {
        ExecStatus st = {
                .timed_out = ex->timed_out != 0,
                .signal = (int) ex->signal,
                .duration_ms = time_mono_ms() - e->started_ms,
        };

        if (st.timed_out)
                st.exit_code = 124;
        else if (ex->signal > 0)
                st.exit_code = 128 + (int) ex->signal;
        else
                st.exit_code = (int) ex->exit_code;
        /* The kill often lands on a child (sh -c python3 ...), so the command itself may
         * just exit 137: any OOM kill in the sandbox while it ran counts. */
        st.oom_killed = !st.timed_out && oom_count(e) > e->oom_before;
        return st;
}

static void on_exit_event(void *userdata, const ProtoExit *ex) {
        Exec *e = userdata;
        ExecStatus st = status_from_exit(e, ex);

        exec_ref(e);
        exec_finish(e, &st, NULL);
        exec_unref(e);
}

static void on_lost(void *userdata) {
        Exec *e = userdata;
        ForgeError err = {0};

        /* The channel's reference, now ours, keeps e alive through exec_end. */
        e->channel = 0;
        if (e->spec.retain && e->pid > 0 && !e->sb->destroying && e->ops->on_detached) {
                /* The agent keeps it running and keeps its output: not an end. */
                exec_end(e, true, NULL, NULL);
                exec_unref(e);
                return;
        }
        forge_error_set(&err, ECONNRESET, "agent_unavailable", "the sandbox's agent went away mid-command");
        exec_finish(e, NULL, &err);
        exec_unref(e);
}

static const AgentChannelOps exec_channel_ops = {
        .on_data = on_data,
        .on_credit = on_credit,
        .on_exit = on_exit_event,
        .on_lost = on_lost,
};

/* ---- control ---- */

int exec_signal(Exec *e, int sig) {
        ProtoBuf b = {0};

        if (!e || !e->channel)
                return -ESRCH;
        agentc_request_begin(e->conn, &b, PROTO_OP_SIGNAL);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, e->channel);
        proto_buf_put_int(&b, PROTO_TAG_SIGNAL, sig);
        return agentc_request_send(e->conn, &b, on_ignored_reply, NULL);
}

int exec_resize(Exec *e, unsigned rows, unsigned cols) {
        ProtoBuf b = {0};

        if (!e || !e->channel)
                return -ESRCH;
        if (!e->spec.pty_rows)
                return -ENOTTY;
        agentc_request_begin(e->conn, &b, PROTO_OP_RESIZE);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, e->channel);
        proto_buf_put_int(&b, PROTO_TAG_PTY_ROWS, rows);
        proto_buf_put_int(&b, PROTO_TAG_PTY_COLS, cols);
        return agentc_request_send(e->conn, &b, on_ignored_reply, NULL);
}

void exec_credit(Exec *e, ProtoStream stream, size_t len) {
        if (e && e->channel && len > 0)
                agentc_send_credit(e->conn, e->channel, stream, (uint32_t) MIN(len, (size_t) UINT32_MAX));
}

int exec_write_stdin(Exec *e, const void *data, size_t len, bool close, ExecStdinDone done, void *userdata) {
        StdinChunk *c;

        if (!e || e->finished || !e->stdin_wanted || e->stdin_closing)
                return -EPIPE;
        c = calloc(1, sizeof(*c));
        if (!c || (len > 0 && !(c->data = malloc(len)))) {
                free(c);
                return -ENOMEM;
        }
        if (len > 0)
                memcpy(c->data, data, len);
        *c = (StdinChunk){.data = c->data, .len = len, .close = close, .done = done, .userdata = userdata};
        if (e->stdin_tail)
                e->stdin_tail->next = c;
        else
                e->stdin_head = c;
        e->stdin_tail = c;
        e->stdin_closing = close;
        exec_ref(e);
        stdin_pump(e);
        exec_unref(e);
        return 0;
}

/* The agent enforces the timeout; this fires only if it failed to report in time. */
static void on_backstop(uv_timer_t *t) {
        Exec *e = t->data;
        ExecStatus st = {.timed_out = true, .exit_code = 124, .duration_ms = time_mono_ms() - e->started_ms};

        log_sb_warn(e->sb->id, 0, "agent did not report a timed-out command; killing it");
        exec_signal(e, SIGKILL);
        exec_ref(e);
        exec_finish(e, &st, NULL);
        exec_unref(e);
}

/* ---- starting ---- */

static void on_spawn_reply(void *userdata, const ProtoResponse *resp) {
        Exec *e = userdata;
        ForgeError err = {0};

        if (resp->status < 0 && !e->finished) {
                forge_error_set(&err, resp->status, resp->status == -ECONNRESET ? "agent_unavailable" : "spawn_failed",
                                "cannot start '%s': %s", e->spec.argv[0],
                                resp->message ? resp->message : strerror(-resp->status));
                exec_finish(e, NULL, &err);
        } else if (!e->finished) {
                e->spawned = true;
                e->pid = resp->pid;
                if (e->ops->on_spawned)
                        e->ops->on_spawned(e->userdata, resp->pid);
                if (!e->finished)
                        stdin_pump(e);
        }
        exec_unref(e);
}

static int timer_start(Exec *e) {
        int64_t ms = e->spec.timeout_ms;
        int r;

        if (ms <= 0)
                return 0;
        e->timer = calloc(1, sizeof(*e->timer));
        if (!e->timer)
                return -ENOMEM;
        r = uv_timer_init(e->manager->loop, e->timer);
        if (r < 0) {
                free(TAKE_PTR(e->timer));
                return r;
        }
        e->timer->data = exec_ref(e);
        return uv_timer_start(e->timer, on_backstop, (uint64_t) ms + EXEC_TIMEOUT_GRACE_MS, 0);
}

static void spawn_request_build(Exec *e, ProtoBuf *b) {
        agentc_request_begin(e->conn, b, PROTO_OP_SPAWN);
        for (char **a = e->spec.argv; *a; a++)
                proto_buf_put_str(b, PROTO_TAG_ARGV, *a);
        for (char **v = e->spec.env; *v; v++)
                proto_buf_put_str(b, PROTO_TAG_ENV, *v);
        proto_buf_put_str(b, PROTO_TAG_CWD, e->spec.cwd);
        proto_buf_put_int(b, PROTO_TAG_CHANNEL, e->channel);
        proto_buf_put_int(b, PROTO_TAG_STDIN, e->stdin_wanted);
        if (e->spec.pty_rows) {
                proto_buf_put_int(b, PROTO_TAG_PTY_ROWS, e->spec.pty_rows);
                proto_buf_put_int(b, PROTO_TAG_PTY_COLS, e->spec.pty_cols);
        }
        if (e->spec.timeout_ms > 0)
                proto_buf_put_int(b, PROTO_TAG_TIMEOUT_MS, e->spec.timeout_ms);
        if (e->spec.retain) {
                proto_buf_put_int(b, PROTO_TAG_RETAIN, 1);
                if (e->spec.meta)
                        proto_buf_put_str(b, PROTO_TAG_META, e->spec.meta);
        }
}

static void on_adopt_reply(void *userdata, const ProtoResponse *resp) {
        Exec *e = userdata;
        ForgeError err = {0};

        if (resp->status < 0 && !e->finished) {
                forge_error_set(&err, resp->status, "agent_unavailable", "cannot adopt pid %lld: %s",
                                (long long) e->pid, resp->message ? resp->message : strerror(-resp->status));
                exec_finish(e, NULL, &err);
        } else if (!e->finished) {
                uint64_t start[2] = {(uint64_t) MAX(resp->offset[0], 0), (uint64_t) MAX(resp->offset[1], 0)};

                e->spawned = true;
                e->ops->on_adopted(e->userdata, start);
                if (!e->finished)
                        stdin_pump(e);
        }
        exec_unref(e);
}

static void adopt_request_build(Exec *e, ProtoBuf *b) {
        agentc_request_begin(e->conn, b, PROTO_OP_PROC_ADOPT);
        proto_buf_put_int(b, PROTO_TAG_PID, e->pid);
        proto_buf_put_int(b, PROTO_TAG_CHANNEL, e->channel);
        proto_buf_put_int(b, PROTO_TAG_STDOUT_OFFSET, (int64_t) e->from[0]);
        proto_buf_put_int(b, PROTO_TAG_STDERR_OFFSET, (int64_t) e->from[1]);
}

/* SPAWN, or PROC_ADOPT when the Exec already has a pid. */
static int exec_spawn(Exec *e) {
        ProtoBuf b = {0};
        bool adopt = e->pid > 0;
        int r;

        e->channel = agentc_channel_open(e->conn, &exec_channel_ops, exec_ref(e));
        if (!e->channel) {
                exec_unref(e);
                return -ENOMEM;
        }
        if (adopt)
                adopt_request_build(e, &b);
        else
                spawn_request_build(e, &b);
        e->oom_before = oom_count(e);
        e->started_ms = time_mono_ms();
        r = agentc_request_send(e->conn, &b, adopt ? on_adopt_reply : on_spawn_reply, exec_ref(e));
        if (r < 0) {
                exec_unref(e);
                return r;
        }
        return timer_start(e);
}

static void on_code_written(void *userdata, int status, int64_t size, const ForgeError *ferr) {
        Exec *e = userdata;
        ForgeError err = {0};
        int r;

        if (!e->finished) {
                r = status < 0 ? status : exec_spawn(e);
                if (r < 0) {
                        if (ferr)
                                err = *ferr;
                        else
                                forge_error_set(&err, r, "internal", "cannot start the command");
                        exec_finish(e, NULL, &err);
                }
        }
        exec_unref(e);
}

/* The initial stdin of spec becomes the first queued chunk, closing stdin after it. */
static int stdin_setup(Exec *e) {
        StdinChunk *c;

        e->stdin_wanted = e->spec.stdin_data || e->spec.stdin_open || e->spec.pty_rows;
        if (!e->spec.stdin_data)
                return 0;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (StdinChunk){.data = TAKE_PTR(e->spec.stdin_data), .len = e->spec.stdin_len, .close = true};
        e->stdin_head = e->stdin_tail = c;
        e->stdin_closing = true;
        return 0;
}

static int exec_begin(Manager *m, Sandbox *sb, ExecSpec *spec, int64_t pid, const uint64_t from[2],
                      const ExecOps *ops, void *userdata, Exec **ret, ForgeError *err) {
        Exec *e = calloc(1, sizeof(*e));
        AgentConn *conn;
        int r;

        if (!e) {
                exec_spec_done(spec);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        e->n_ref = 1;
        e->pid = pid;
        if (from)
                memcpy(e->from, from, sizeof(e->from));
        e->manager = m;
        e->sb = sandbox_ref(sb);
        e->spec = *spec;
        *spec = (ExecSpec){0};
        e->ops = ops;
        e->userdata = userdata;
        r = stdin_setup(e);
        if (r >= 0)
                r = manager_agent(m, sb, &conn, err);
        else
                forge_error_set(err, r, "internal", "out of memory");
        if (r < 0) {
                exec_unref(e);
                return r;
        }
        e->conn = agentc_ref(conn);
        if (e->spec.code_path)
                r = file_write_buffer(conn, e->spec.code_path, e->spec.code, e->spec.code_len, on_code_written,
                                      exec_ref(e));
        else
                r = exec_spawn(e);
        if (r < 0) {
                /* Ours, plus the ones handed to on_code_written and to the channel. */
                unsigned drop = 1 + (e->spec.code_path != NULL);

                e->finished = true;
                if (e->channel) {
                        agentc_channel_close(conn, e->channel);
                        e->channel = 0;
                        drop++;
                }
                e->n_ref -= drop - 1;
                exec_unref(e);
                return forge_error_set(err, r, "agent_unavailable", "cannot start the command");
        }
        *ret = e;
        return 0;
}

int exec_start(Manager *m, Sandbox *sb, ExecSpec *spec, const ExecOps *ops, void *userdata, Exec **ret,
               ForgeError *err) {
        return exec_begin(m, sb, spec, 0, NULL, ops, userdata, ret, err);
}

int exec_adopt(Manager *m, Sandbox *sb, ExecSpec *spec, int64_t pid, const uint64_t from[2], const ExecOps *ops,
               void *userdata, Exec **ret, ForgeError *err) {
        spec->retain = true;
        return exec_begin(m, sb, spec, pid, from, ops, userdata, ret, err);
}

void exec_abandon(Exec *e) {
        if (!e || e->finished)
                return;
        e->finished = true;
        exec_signal(e, SIGKILL);
        stdin_fail_all(e);
        exec_unref(e);
}
