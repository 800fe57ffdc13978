#include "daemon/core/process.h"

#include <signal.h>
#include <string.h>

#include "basic/log.h"
#include "basic/time-util.h"
#include "daemon/agentc.h"

typedef struct ProcessSync ProcessSync;

struct ProcessTable {
        Sandbox *sb; /* the owner (the table dies with it) */
        Process *head, *tail; /* oldest first */
        size_t n_finished;
        uv_timer_t *resync; /* after a detach: adopt again (or notice the agent died) soon */
        uint64_t synced; /* agentc_serial() of the connection whose retained processes are adopted */
        ProcessSync *sync; /* in flight */
};

struct ProcessFollower {
        ProcessFollower *next;
        Process *process; /* a reference */
        uint64_t offset[2];
        const ProcessFollowerOps *ops;
        void *userdata;
        bool busy;    /* inside follower_pump() */
        bool stopped; /* stop came while busy: freed when the pump unwinds */
};

static const char *const state_names[_PROCESS_STATE_MAX] = {
        [PROCESS_RUNNING] = "running",
        [PROCESS_EXITED] = "exited",
        [PROCESS_KILLED] = "killed",
        [PROCESS_TIMED_OUT] = "timed_out",
        [PROCESS_OOM_KILLED] = "oom_killed",
};

const char *process_state_to_string(ProcessState s) {
        return s < _PROCESS_STATE_MAX ? state_names[s] : NULL;
}

Process *process_ref(Process *p) {
        if (p)
                p->n_ref++;
        return p;
}

void process_unref(Process *p) {
        if (!p || --p->n_ref > 0)
                return;
        strv_free(p->argv);
        free(p->cwd);
        ring_done(&p->rings[0]);
        ring_done(&p->rings[1]);
        free(p);
}

/* ---- the table ---- */

static ProcessTable *table_get(Sandbox *sb) {
        if (!sb->processes && (sb->processes = calloc(1, sizeof(ProcessTable))))
                sb->processes->sb = sb;
        return sb->processes;
}

static void table_unlink(ProcessTable *t, Process *p) {
        Process *prev = NULL;

        for (Process *q = t->head; q; prev = q, q = q->next)
                if (q == p) {
                        if (prev)
                                prev->next = p->next;
                        else
                                t->head = p->next;
                        if (t->tail == p)
                                t->tail = prev;
                        break;
                }
        if (p->state != PROCESS_RUNNING)
                t->n_finished--;
        p->next = NULL;
        p->table = NULL;
        process_unref(p);
}

/* A finished process whose pid the kernel hands out again is forgotten, so that a pid
 * names one process. */
static void table_forget_pid(ProcessTable *t, int64_t pid) {
        for (Process *q = t->head, *next; q; q = next) {
                next = q->next;
                if (q->pid == pid && q->state != PROCESS_RUNNING)
                        table_unlink(t, q);
        }
}

static void table_add(ProcessTable *t, Process *p) {
        table_forget_pid(t, p->pid);
        p->table = t;
        p->next = NULL;
        if (t->tail)
                t->tail->next = p;
        else
                t->head = p;
        t->tail = process_ref(p);
}

/* Keeps the PROCESS_KEEP_FINISHED most recently started finished processes. */
static void table_trim(ProcessTable *t) {
        for (Process *q = t->head, *next; q && t->n_finished > PROCESS_KEEP_FINISHED; q = next) {
                next = q->next;
                if (q->state != PROCESS_RUNNING)
                        table_unlink(t, q);
        }
}

static void on_resync_closed(uv_handle_t *h) {
        free(h);
}

void process_table_free(ProcessTable *t) {
        if (!t)
                return;
        while (t->head)
                table_unlink(t, t->head);
        if (t->resync)
                uv_close((uv_handle_t *) t->resync, on_resync_closed);
        free(t);
}

Process *process_find(Sandbox *sb, int64_t pid) {
        Process *found = NULL;

        if (!sb->processes)
                return NULL;
        for (Process *q = sb->processes->head; q; q = q->next)
                if (q->pid == pid)
                        found = q;
        return found;
}

Process *process_next(Sandbox *sb, Process *prev) {
        if (prev)
                return prev->next;
        return sb->processes ? sb->processes->head : NULL;
}

/* ---- followers ---- */

static void follower_free(ProcessFollower *f) {
        Process *p = f->process;

        for (ProcessFollower **fp = &p->followers; *fp; fp = &(*fp)->next)
                if (*fp == f) {
                        *fp = f->next;
                        break;
                }
        process_unref(p);
        free(f);
}

static bool follower_caught_up(const ProcessFollower *f) {
        return f->offset[0] >= ring_end(&f->process->rings[0]) && f->offset[1] >= ring_end(&f->process->rings[1]);
}

static void follower_pump_stream(ProcessFollower *f, ProtoStream stream) {
        Process *p = f->process;
        Ring *r = process_ring(p, stream);
        uint64_t *off = &f->offset[stream == PROTO_STREAM_STDERR];
        uint8_t chunk[PROCESS_CHUNK_BYTES];

        if (*off < ring_start(r)) {
                f->ops->on_dropped(f->userdata, stream, ring_start(r) - *off);
                *off = ring_start(r);
        }
        while (!f->stopped && *off < ring_end(r) && !f->ops->is_congested(f->userdata)) {
                size_t n = ring_copy(r, *off, chunk, sizeof(chunk));
                bool more = p->state == PROCESS_RUNNING || *off + n < ring_end(r);
                size_t took = f->ops->on_output(f->userdata, stream, chunk, n, more);

                *off += MIN(took, n);
                if (took < n)
                        break;
        }
}

/* Delivers what the reader can take; at the end of a finished process, the exit. */
static void follower_pump(ProcessFollower *f) {
        Process *p = f->process;

        if (f->busy)
                return;
        f->busy = true;
        follower_pump_stream(f, PROTO_STREAM_STDOUT);
        if (!f->stopped)
                follower_pump_stream(f, PROTO_STREAM_STDERR);
        f->busy = false;
        if (f->stopped) {
                follower_free(f);
                return;
        }
        if (p->state != PROCESS_RUNNING && follower_caught_up(f)) {
                const ProcessFollowerOps *ops = f->ops;
                void *userdata = f->userdata;

                process_ref(p);
                follower_free(f);
                ops->on_exit(userdata, p);
                process_unref(p);
        }
}

static void followers_pump_all(Process *p) {
        process_ref(p);
        for (ProcessFollower *f = p->followers, *next; f; f = next) {
                next = f->next;
                follower_pump(f);
        }
        process_unref(p);
}

ProcessFollower *process_follow(Process *p, bool replay, const ProcessFollowerOps *ops, void *userdata) {
        ProcessFollower *f = calloc(1, sizeof(*f));

        if (!f)
                return NULL;
        *f = (ProcessFollower){.next = p->followers, .process = process_ref(p), .ops = ops, .userdata = userdata};
        for (int i = 0; i < 2; i++)
                f->offset[i] = replay ? ring_start(&p->rings[i]) : ring_end(&p->rings[i]);
        p->followers = f;
        return f;
}

void process_follower_wake(ProcessFollower *f) {
        if (f)
                follower_pump(f);
}

void process_follower_stop(ProcessFollower *f) {
        if (!f)
                return;
        if (f->busy)
                f->stopped = true;
        else
                follower_free(f);
}

/* ---- the command ---- */

static void process_report_start(Process *p, const ForgeError *err) {
        void (*cb)(void *, Process *, const ForgeError *) = TAKE_PTR(p->on_started);

        sandbox_unref(TAKE_PTR(p->starting_in));
        if (cb)
                cb(p->started_userdata, err ? NULL : p, err);
}

static void on_spawned(void *userdata, int64_t pid) {
        Process *p = userdata;
        ProcessTable *t = table_get(p->starting_in);
        ForgeError err = {0};

        p->pid = pid;
        if (!t) {
                /* It runs, but nobody could ever find it: better not to run at all. */
                process_signal(p, SIGKILL);
                forge_error_set(&err, ENOMEM, "internal", "out of memory");
                return process_report_start(p, &err);
        }
        table_add(t, p);
        process_report_start(p, NULL);
}

static bool on_output(void *userdata, ProtoStream stream, const uint8_t *data, size_t len) {
        Process *p = userdata;

        ring_append(process_ring(p, stream), data, len);
        followers_pump_all(p);
        return true; /* always: a process never waits for its readers */
}

static void process_set_end(Process *p, const ExecStatus *st) {
        p->ended_ms = time_now_ms();
        if (!st) {
                /* The agent went away: the sandbox is being destroyed (or its agent died),
                 * and the process with it. */
                p->state = PROCESS_KILLED;
                p->signal = SIGKILL;
                p->exit_code = 128 + SIGKILL;
                return;
        }
        p->exit_code = st->exit_code;
        p->signal = st->signal;
        if (st->timed_out)
                p->state = PROCESS_TIMED_OUT;
        else if (st->oom_killed && st->exit_code != 0)
                p->state = PROCESS_OOM_KILLED; /* a clean exit was not the OOM's victim */
        else if (st->signal > 0)
                p->state = PROCESS_KILLED;
        else
                p->state = PROCESS_EXITED;
}

/* st NULL: the process is gone with its agent, as killed. */
static void process_finish(Process *p, const ExecStatus *st) {
        process_ref(p);
        p->stdin_open = false;
        process_set_end(p, st);
        ring_shrink(&p->rings[0]);
        ring_shrink(&p->rings[1]);
        if (p->table) {
                p->table->n_finished++;
                table_trim(p->table);
        }
        followers_pump_all(p);
        process_unref(p);
}

static void on_exec_exit(void *userdata, const ExecStatus *st, const ForgeError *err) {
        Process *p = userdata;

        p->exec = NULL;
        if (p->on_started) {
                /* It never ran. */
                p->stdin_open = false;
                process_report_start(p, err);
                process_unref(p); /* the exec's reference */
                return;
        }
        process_finish(p, st);
        process_unref(p); /* the exec's reference */
}

static void table_resync_soon(ProcessTable *t);

/* Still running in the sandbox, kept by its agent: process_sync() adopts it again. */
static void on_exec_detached(void *userdata) {
        Process *p = userdata;

        p->exec = NULL;
        if (p->table)
                table_resync_soon(p->table);
        process_unref(p); /* the exec's reference */
}

/* The replay starts here: bytes before it that this ring never saw were dropped. */
static void on_exec_adopted(void *userdata, const uint64_t start[2]) {
        Process *p = userdata;

        ring_skip_to(&p->rings[0], start[0]);
        ring_skip_to(&p->rings[1], start[1]);
        followers_pump_all(p);
}

static const ExecOps process_exec_ops = {
        .on_spawned = on_spawned,
        .on_output = on_output,
        .on_exit = on_exec_exit,
        .on_detached = on_exec_detached,
        .on_adopted = on_exec_adopted,
};

static Process *process_new(ExecSpec *spec) {
        Process *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->n_ref = 1;
        p->argv = TAKE_PTR(spec->argv);
        p->cwd = strdup(spec->cwd);
        p->pty = spec->pty_rows > 0;
        p->rows = spec->pty_rows;
        p->cols = spec->pty_cols;
        p->stdin_open = spec->stdin_open || p->pty;
        p->timeout_ms = spec->timeout_ms;
        p->started_ms = time_now_ms();
        p->state = PROCESS_RUNNING;
        p->exit_code = -1;
        ring_init(&p->rings[0], PROCESS_RING_BYTES);
        ring_init(&p->rings[1], PROCESS_RING_BYTES);
        if (!p->cwd) {
                process_unref(p);
                return NULL;
        }
        return p;
}

/* What the agent keeps for forged beside a retained process (SPAWN's META): enough to
 * list it again after a restart. */
static char *process_meta(const Process *p) {
        json_t *argv = json_array();
        char *s = NULL;

        for (char **a = p->argv; argv && *a; a++)
                json_array_append_new(argv, json_string(*a));
        json_t *meta = json_pack("{s:o?, s:s, s:I, s:I, s:b, s:I, s:I}", "argv", argv, "cwd", p->cwd, "rows",
                                 (json_int_t) p->rows, "cols", (json_int_t) p->cols, "stdin", p->stdin_open,
                                 "started_at", (json_int_t) p->started_ms, "timeout_ms", (json_int_t) p->timeout_ms);
        if (meta)
                s = json_dumps(meta, JSON_COMPACT);
        if (s && strlen(s) > PROTO_MAX_META / 2) {
                /* A huge argv stays out: after a restart the process lists an empty one. */
                free(s);
                json_object_del(meta, "argv");
                s = json_dumps(meta, JSON_COMPACT);
        }
        json_decref(meta);
        return s;
}

/* exec.c needs the argv too: it gets a copy. */
static char **strv_copy(char **v) {
        size_t n = 0;
        char **copy;

        while (v[n])
                n++;
        copy = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; copy && i < n; i++)
                if (!(copy[i] = strdup(v[i]))) {
                        strv_free(copy);
                        return NULL;
                }
        return copy;
}

int process_start(Manager *m, Sandbox *sb, ExecSpec *spec,
                  void (*on_started)(void *userdata, Process *p, const ForgeError *err), void *userdata,
                  ForgeError *err) {
        Process *p = process_new(spec);
        int r;

        if (p) {
                spec->argv = strv_copy(p->argv);
                spec->retain = true;
                spec->meta = process_meta(p);
        }
        if (!p || !spec->argv || !spec->meta) {
                process_unref(p);
                exec_spec_done(spec);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        p->on_started = on_started;
        p->started_userdata = userdata;
        p->starting_in = sandbox_ref(sb);
        /* The exec's reference: dropped in on_exit. */
        r = exec_start(m, sb, spec, &process_exec_ops, process_ref(p), &p->exec, err);
        if (r < 0) {
                sandbox_unref(p->starting_in);
                process_unref(p);
                process_unref(p);
                return r;
        }
        process_unref(p); /* the table holds it from on_spawned on */
        return 0;
}

int process_write_stdin(Process *p, const void *data, size_t len, bool close, ExecStdinDone done,
                        void *userdata) {
        int r;

        if (!p->exec || !p->stdin_open)
                return -EPIPE;
        r = exec_write_stdin(p->exec, data, len, close, done, userdata);
        if (r >= 0 && close)
                p->stdin_open = false;
        return r;
}

int process_signal(Process *p, int sig) {
        return p->exec ? exec_signal(p->exec, sig) : -ESRCH;
}

int process_resize(Process *p, unsigned rows, unsigned cols) {
        if (!p->pty)
                return -ENOTTY;
        return p->exec ? exec_resize(p->exec, rows, cols) : -ESRCH;
}

/* ---- adopting what the agent retained (forged restarted, or the connection dropped) ---- */

typedef struct SyncWaiter {
        struct SyncWaiter *next;
        void (*done)(void *userdata);
        void *userdata;
} SyncWaiter;

struct ProcessSync {
        Manager *manager;
        Sandbox *sb;
        AgentConn *conn;
        int64_t *pids; /* the agent's list */
        size_t n_pids, next;
        SyncWaiter *waiters;
};

/* A process forged did not know (it restarted): rebuilt from the agent's META. Fields
 * META lacks (an agent-side mistake) default to an empty argv in "/". */
static Process *process_from_meta(const ProtoProc *e) {
        json_t *meta = e->meta ? json_loads(e->meta, 0, NULL) : NULL;
        json_t *argv = json_object_get(meta, "argv"), *v;
        const char *cwd = json_string_value(json_object_get(meta, "cwd"));
        ExecSpec spec = {
                .argv = calloc(json_array_size(argv) + 1, sizeof(char *)),
                .cwd = (char *) (cwd ? cwd : "/"),
                .pty_rows = (unsigned) json_integer_value(json_object_get(meta, "rows")),
                .pty_cols = (unsigned) json_integer_value(json_object_get(meta, "cols")),
                .stdin_open = e->stdin_open,
                .timeout_ms = json_integer_value(json_object_get(meta, "timeout_ms")),
        };
        Process *p = NULL;
        size_t i, n = 0;

        json_array_foreach(argv, i, v)
                if (spec.argv && json_is_string(v) && !(spec.argv[n++] = strdup(json_string_value(v))))
                        goto out;
        if (spec.argv)
                p = process_new(&spec);
        if (p) {
                p->pid = e->pid;
                p->stdin_open = e->stdin_open;
                p->started_ms = json_integer_value(json_object_get(meta, "started_at"));
                ring_skip_to(&p->rings[0], (uint64_t) e->start[0]);
                ring_skip_to(&p->rings[1], (uint64_t) e->start[1]);
        }
out:
        strv_free(spec.argv);
        json_decref(meta);
        return p;
}

/* An adopted command's timeout counts from its start, not from the adoption. */
static int64_t timeout_left(const Process *p) {
        if (p->timeout_ms <= 0)
                return 0;
        return MAX(p->timeout_ms - (time_now_ms() - p->started_ms), (int64_t) 1);
}

/* Attaches p (new, or detached) again from the end of its rings. 0, or -errno when it
 * could not be (it then ended as killed). */
static int process_adopt(ProcessSync *s, Process *p) {
        uint64_t from[2] = {ring_end(&p->rings[0]), ring_end(&p->rings[1])};
        ExecSpec spec = {
                .argv = strv_copy(p->argv),
                .cwd = strdup(p->cwd),
                .pty_rows = p->rows,
                .pty_cols = p->cols,
                .stdin_open = p->stdin_open && !p->pty,
                .timeout_ms = timeout_left(p),
        };
        ForgeError err = {0};
        int r = -ENOMEM;

        if (spec.argv && spec.cwd) {
                r = exec_adopt(s->manager, s->sb, &spec, p->pid, from, &process_exec_ops, process_ref(p), &p->exec,
                               &err);
                if (r < 0)
                        process_unref(p); /* the reference meant for the exec */
        } else
                exec_spec_done(&spec);
        if (r < 0) {
                log_sb_warn(s->sb->id, r, "cannot adopt process %lld", (long long) p->pid);
                p->exec = NULL;
                process_finish(p, NULL);
        }
        return r;
}

static void sync_finish(ProcessSync *s, bool synced) {
        ProcessTable *t = s->sb->processes;
        SyncWaiter *w = s->waiters;

        if (synced)
                t->synced = agentc_serial(s->conn);
        t->sync = NULL;
        free(s->pids);
        agentc_unref(s->conn);
        sandbox_unref(s->sb);
        free(s);
        while (w) {
                SyncWaiter *next = w->next;
                w->done(w->userdata);
                free(w);
                w = next;
        }
}

static void sync_adopt_next(ProcessSync *s);

static void on_sync_ping(void *userdata, const ProtoResponse *resp) {
        ProcessSync *s = userdata;

        if (resp->status == -ECONNRESET)
                sync_finish(s, false);
        else
                sync_adopt_next(s);
}

/* One at a time: ADOPT, then PING. The agent sends ADOPT's answer, then the replay, so
 * once PING is answered this process's rings hold everything the agent had, and the
 * agent's queue holds at most one replay. */
static void sync_adopt(ProcessSync *s, Process *p) {
        ProtoBuf b = {0};

        if (process_adopt(s, p) < 0)
                return sync_adopt_next(s);
        agentc_request_begin(s->conn, &b, PROTO_OP_PING);
        if (agentc_request_send(s->conn, &b, on_sync_ping, s) < 0)
                sync_finish(s, false);
}

/* The one process PROCS_LIST named, with its META: forged did not know it. */
static void on_sync_meta(void *userdata, const ProtoResponse *resp) {
        ProcessSync *s = userdata;
        ProcessTable *t = table_get(s->sb);
        Process *p = NULL;

        if (resp->status == -ECONNRESET)
                return sync_finish(s, false);
        /* Otherwise it may have been forgotten meanwhile (-ESRCH): on to the next. */
        if (resp->status < 0 || resp->n_procs != 1 || !t || !(p = process_from_meta(&resp->proc_list[0])))
                return sync_adopt_next(s);
        table_add(t, p);
        process_unref(p); /* the table's now */
        sync_adopt(s, p);
}

static void sync_adopt_next(ProcessSync *s) {
        while (s->next < s->n_pids) {
                int64_t pid = s->pids[s->next++];
                Process *p = process_find(s->sb, pid);
                ProtoBuf b = {0};

                if (p && (p->state != PROCESS_RUNNING || p->exec))
                        continue; /* known to have ended, or attached to this connection */
                if (p)
                        return sync_adopt(s, p);
                /* forged restarted: first its description (META) */
                agentc_request_begin(s->conn, &b, PROTO_OP_PROCS_LIST);
                proto_buf_put_int(&b, PROTO_TAG_PID, pid);
                if (agentc_request_send(s->conn, &b, on_sync_meta, s) < 0)
                        sync_finish(s, false);
                return;
        }
        sync_finish(s, true);
}

static bool listed(const ProcessSync *s, int64_t pid) {
        for (size_t i = 0; i < s->n_pids; i++)
                if (s->pids[i] == pid)
                        return true;
        return false;
}

/* Running processes no connection follows and the agent does not have: the sandbox was
 * restarted (or destroyed) without them. */
static void end_unfollowed(Sandbox *sb, const ProcessSync *s) {
        for (Process *q = process_next(sb, NULL); q;) {
                if (q->state == PROCESS_RUNNING && !q->exec && !q->on_started && (!s || !listed(s, q->pid))) {
                        process_finish(q, NULL);
                        q = process_next(sb, NULL); /* the table may have changed */
                        continue;
                }
                q = process_next(sb, q);
        }
}

static void on_sync_list(void *userdata, const ProtoResponse *resp) {
        ProcessSync *s = userdata;

        if (resp->status < 0 && resp->status != -EOPNOTSUPP) {
                /* Nothing is known: try again on the next call. */
                if (resp->status != -ECONNRESET)
                        log_sb_warn(s->sb->id, resp->status, "cannot list the agent's processes");
                return sync_finish(s, false);
        }
        /* An agent without the "retain" feature answers -EOPNOTSUPP: it retains nothing.
         * The list comes from inside the sandbox: forged takes at most the newest
         * PROCESS_ADOPT_MAX entries, so a lying agent cannot make it allocate without end. */
        if (resp->status == 0 && resp->n_procs > 0) {
                size_t first = resp->n_procs > PROCESS_ADOPT_MAX ? resp->n_procs - PROCESS_ADOPT_MAX : 0;

                s->pids = calloc(resp->n_procs - first, sizeof(int64_t));
                for (size_t i = first; s->pids && i < resp->n_procs; i++)
                        s->pids[s->n_pids++] = resp->proc_list[i].pid;
        }
        end_unfollowed(s->sb, s);
        sync_adopt_next(s);
}

static int sync_wait(ProcessSync *s, void (*done)(void *userdata), void *userdata) {
        SyncWaiter *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        *w = (SyncWaiter){.next = s->waiters, .done = done, .userdata = userdata};
        s->waiters = w;
        return 0;
}

void process_sync(Manager *m, Sandbox *sb, void (*done)(void *userdata), void *userdata) {
        ProcessTable *t = sandbox_is_running(sb) ? table_get(sb) : NULL;
        ForgeError err = {0};
        ProtoBuf b = {0};
        AgentConn *conn;
        ProcessSync *s;

        if (t && t->sync && sync_wait(t->sync, done, userdata) >= 0)
                return;
        if (!t || t->sync || (agentc_is_open(sb->agent) && t->synced == agentc_serial(sb->agent)) ||
            manager_agent(m, sb, &conn, &err) < 0 || t->synced == agentc_serial(conn) ||
            !(s = calloc(1, sizeof(*s))))
                return done(userdata);
        *s = (ProcessSync){.manager = m, .sb = sandbox_ref(sb), .conn = agentc_ref(conn)};
        t->sync = s;
        if (sync_wait(s, done, userdata) < 0) {
                sync_finish(s, false);
                return done(userdata);
        }
        agentc_request_begin(conn, &b, PROTO_OP_PROCS_LIST);
        if (agentc_request_send(conn, &b, on_sync_list, s) < 0)
                sync_finish(s, false);
}

void process_table_end(Sandbox *sb) {
        end_unfollowed(sb, NULL);
}

static void on_resync_done(void *userdata) {
}

/* A while after a connection dropped: a sandbox whose agent died lost its processes too;
 * otherwise they are adopted again, so their followers go on without waiting for a call.
 * A suspended sandbox waits for its next call (which resumes it). */
static void on_resync(uv_timer_t *timer) {
        ProcessTable *t = timer->data;
        Sandbox *sb = t->sb;
        SandboxPlan plan;

        if (!sandbox_is_running(sb))
                return;
        sandbox_plan(sb, &plan);
        if (sb->isolator->is_alive(&plan) <= 0)
                return process_table_end(sb);
        process_sync(sb->manager, sb, on_resync_done, NULL);
}

static void table_resync_soon(ProcessTable *t) {
        if (!t->resync) {
                t->resync = calloc(1, sizeof(uv_timer_t));
                if (!t->resync || uv_timer_init(t->sb->manager->loop, t->resync) < 0) {
                        free(TAKE_PTR(t->resync));
                        return; /* the next processes call adopts them */
                }
                t->resync->data = t;
        }
        uv_timer_start(t->resync, on_resync, PROCESS_RESYNC_MS, 0);
}
