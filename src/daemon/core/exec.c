#include "daemon/core/exec.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "basic/log.h"
#include "basic/time-util.h"
#include "daemon/agentc.h"
#include "daemon/core/files.h"

typedef struct Capture {
        uint8_t *data;
        size_t len, cap;
} Capture;

struct Exec {
        unsigned n_ref;
        Manager *manager;
        Sandbox *sb;
        AgentConn *conn;
        ExecSpec spec;
        uint32_t channel;
        uv_timer_t *timer;
        int64_t started_ms;
        uint64_t oom_before;
        size_t stdin_sent, stdin_credit;
        bool stdin_closed;
        Capture out, err;
        bool truncated;
        bool finished; /* done ran, or the caller abandoned us */
        ExecDone done;
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
        *spec = (ExecSpec){0};
}

static int env_put(json_t *env, const char *key, const char *value) {
        return json_object_set_new(env, key, json_string(value));
}

char **exec_build_env(const Sandbox *sb, json_t *extra) {
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
        env_put(env, "TERM", "dumb");
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

static Exec *exec_ref(Exec *e) {
        e->n_ref++;
        return e;
}

static void exec_unref(Exec *e) {
        if (--e->n_ref > 0)
                return;
        exec_spec_done(&e->spec);
        free(e->out.data);
        free(e->err.data);
        agentc_unref(e->conn);
        sandbox_unref(e->sb);
        free(e);
}

static void on_timer_closed(uv_handle_t *h) {
        Exec *e = h->data;

        free(h);
        exec_unref(e);
}

static void on_remove_reply(void *userdata, const ProtoResponse *resp) {
}

static void code_file_remove(Exec *e) {
        ProtoBuf b = {0};

        if (!e->spec.code_path || !agentc_is_open(e->conn))
                return;
        agentc_request_begin(e->conn, &b, PROTO_OP_REMOVE);
        proto_buf_put_str(&b, PROTO_TAG_PATH, e->spec.code_path);
        agentc_request_send(e->conn, &b, on_remove_reply, NULL);
}

/* Ends the command once: stops the timer, releases the channel, reports. */
static void exec_finish(Exec *e, const ExecResult *res, const ForgeError *err) {
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
        if (tell) {
                e->done(e->userdata, res, err);
                exec_unref(e); /* the caller's reference */
        }
}

static uint64_t oom_count(Exec *e) {
        SandboxPlan plan;
        SandboxUsage u = {0};

        sandbox_plan(e->sb, &plan);
        if (e->sb->isolator->stats(&plan, &u) < 0)
                return 0;
        return u.oom_kills;
}

static void capture_append(Exec *e, Capture *c, const uint8_t *data, size_t len) {
        size_t take = MIN(len, (size_t) EXEC_OUTPUT_CAP - c->len);

        if (take < len)
                e->truncated = true;
        if (take == 0)
                return;
        if (c->len + take > c->cap) {
                size_t cap = MIN(MAX(c->cap * 2, c->len + take), (size_t) EXEC_OUTPUT_CAP);
                uint8_t *grown = realloc(c->data, cap);

                if (!grown) {
                        e->truncated = true;
                        return;
                }
                c->data = grown;
                c->cap = cap;
        }
        memcpy(c->data + c->len, data, take);
        c->len += take;
}

/* What was captured so far; the caller adds how the command ended. */
static ExecResult exec_result(const Exec *e) {
        return (ExecResult){
                .out = e->out.data,
                .err = e->err.data,
                .out_len = e->out.len,
                .err_len = e->err.len,
                .truncated = e->truncated,
                .duration_ms = time_mono_ms() - e->started_ms,
        };
}

static void on_data(void *userdata, ProtoStream stream, const uint8_t *data, size_t len) {
        Exec *e = userdata;

        capture_append(e, stream == PROTO_STREAM_STDERR ? &e->err : &e->out, data, len);
        /* Output past the cap is dropped, but still credited: the command must not block. */
        agentc_send_credit(e->conn, e->channel, stream, (uint32_t) len);
}

static void stdin_pump(Exec *e) {
        size_t left = e->spec.stdin_len - e->stdin_sent;
        size_t n = MIN(left, e->stdin_credit);

        if (e->stdin_closed || !e->spec.stdin_data)
                return;
        if (n > 0 && agentc_send_data(e->conn, e->channel, PROTO_STREAM_STDIN, e->spec.stdin_data + e->stdin_sent,
                                      n) == 0) {
                e->stdin_sent += n;
                e->stdin_credit -= n;
        }
        if (e->stdin_sent == e->spec.stdin_len) {
                e->stdin_closed = true;
                agentc_send_eof(e->conn, e->channel, PROTO_STREAM_STDIN);
        }
}

static void on_credit(void *userdata, ProtoStream stream, uint32_t bytes) {
        Exec *e = userdata;

        if (stream != PROTO_STREAM_STDIN)
                return;
        e->stdin_credit += bytes;
        stdin_pump(e);
}

static void on_exit_event(void *userdata, const ProtoExit *ex) {
        Exec *e = userdata;
        ExecResult res = exec_result(e);

        res.timed_out = ex->timed_out != 0;
        res.signal = (int) ex->signal;

        if (res.timed_out)
                res.exit_code = 124;
        else if (ex->signal > 0)
                res.exit_code = 128 + (int) ex->signal;
        else
                res.exit_code = (int) ex->exit_code;
        /* The kill often lands on a child (sh -c python3 ...), so the command itself may
         * just exit 137: any OOM kill in the sandbox while it ran counts. */
        res.oom_killed = !res.timed_out && oom_count(e) > e->oom_before;
        exec_ref(e);
        exec_finish(e, &res, NULL);
        exec_unref(e);
}

static void on_lost(void *userdata) {
        Exec *e = userdata;
        ForgeError err = {0};

        e->channel = 0;
        forge_error_set(&err, ECONNRESET, "agent_unavailable", "the sandbox's agent went away mid-command");
        exec_ref(e);
        exec_finish(e, NULL, &err);
        exec_unref(e); /* the channel's reference */
        exec_unref(e);
}

static const AgentChannelOps exec_channel_ops = {
        .on_data = on_data,
        .on_credit = on_credit,
        .on_exit = on_exit_event,
        .on_lost = on_lost,
};

static void send_kill(Exec *e) {
        ProtoBuf b = {0};

        if (!e->channel)
                return;
        agentc_request_begin(e->conn, &b, PROTO_OP_SIGNAL);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, e->channel);
        proto_buf_put_int(&b, PROTO_TAG_SIGNAL, SIGKILL);
        agentc_request_send(e->conn, &b, on_remove_reply, NULL);
}

/* The agent enforces the timeout; this fires only if it failed to report in time. */
static void on_backstop(uv_timer_t *t) {
        Exec *e = t->data;
        ExecResult res = exec_result(e);

        res.timed_out = true;
        res.exit_code = 124;

        log_sb_warn(e->sb->id, 0, "agent did not report a timed-out command; killing it");
        send_kill(e);
        exec_ref(e);
        exec_finish(e, &res, NULL);
        exec_unref(e);
}

static void on_spawn_reply(void *userdata, const ProtoResponse *resp) {
        Exec *e = userdata;
        ForgeError err = {0};

        if (resp->status < 0 && !e->finished) {
                forge_error_set(&err, resp->status, resp->status == -ECONNRESET ? "agent_unavailable" : "spawn_failed",
                                "cannot start '%s': %s", e->spec.argv[0],
                                resp->message ? resp->message : strerror(-resp->status));
                exec_finish(e, NULL, &err);
        } else if (!e->finished)
                stdin_pump(e);
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

static int exec_spawn(Exec *e) {
        ProtoBuf b = {0};
        int r;

        e->channel = agentc_channel_open(e->conn, &exec_channel_ops, exec_ref(e));
        if (!e->channel) {
                exec_unref(e);
                return -ENOMEM;
        }
        agentc_request_begin(e->conn, &b, PROTO_OP_SPAWN);
        for (char **a = e->spec.argv; *a; a++)
                proto_buf_put_str(&b, PROTO_TAG_ARGV, *a);
        for (char **v = e->spec.env; *v; v++)
                proto_buf_put_str(&b, PROTO_TAG_ENV, *v);
        proto_buf_put_str(&b, PROTO_TAG_CWD, e->spec.cwd);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, e->channel);
        proto_buf_put_int(&b, PROTO_TAG_STDIN, e->spec.stdin_data != NULL);
        if (e->spec.timeout_ms > 0)
                proto_buf_put_int(&b, PROTO_TAG_TIMEOUT_MS, e->spec.timeout_ms);
        e->oom_before = oom_count(e);
        e->started_ms = time_mono_ms();
        r = agentc_request_send(e->conn, &b, on_spawn_reply, exec_ref(e));
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

int exec_start(Manager *m, Sandbox *sb, ExecSpec *spec, ExecDone done, void *userdata, Exec **ret,
               ForgeError *err) {
        Exec *e = calloc(1, sizeof(*e));
        AgentConn *conn;
        int r;

        if (!e) {
                exec_spec_done(spec);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        e->n_ref = 1;
        e->manager = m;
        e->sb = sandbox_ref(sb);
        e->spec = *spec;
        *spec = (ExecSpec){0};
        e->done = done;
        e->userdata = userdata;
        r = manager_agent(m, sb, &conn, err);
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
                if (e->spec.code_path)
                        exec_unref(e); /* the reference handed to on_code_written */
                e->finished = true;
                if (e->channel) {
                        agentc_channel_close(conn, e->channel);
                        e->channel = 0;
                        exec_unref(e);
                }
                exec_unref(e);
                return forge_error_set(err, r, "agent_unavailable", "cannot start the command");
        }
        *ret = e;
        return 0;
}

void exec_abandon(Exec *e) {
        if (!e || e->finished)
                return;
        e->finished = true;
        send_kill(e);
        exec_unref(e);
}
