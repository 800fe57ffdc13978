#include "daemon/core/process.h"

#include <signal.h>
#include <string.h>

#include "basic/log.h"
#include "basic/time-util.h"

struct ProcessTable {
        Process *head, *tail; /* oldest first */
        size_t n_finished;
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
        if (!sb->processes)
                sb->processes = calloc(1, sizeof(ProcessTable));
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

void process_table_free(ProcessTable *t) {
        if (!t)
                return;
        while (t->head)
                table_unlink(t, t->head);
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
        p->started_ms = time_now_ms();
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

static void on_exec_exit(void *userdata, const ExecStatus *st, const ForgeError *err) {
        Process *p = userdata;

        p->exec = NULL;
        p->stdin_open = false;
        if (p->on_started) {
                /* It never ran. */
                process_report_start(p, err);
                process_unref(p); /* the exec's reference */
                return;
        }
        process_set_end(p, st);
        ring_shrink(&p->rings[0]);
        ring_shrink(&p->rings[1]);
        if (p->table) {
                p->table->n_finished++;
                table_trim(p->table);
        }
        followers_pump_all(p);
        process_unref(p); /* the exec's reference */
}

static const ExecOps process_exec_ops = {
        .on_spawned = on_spawned,
        .on_output = on_output,
        .on_exit = on_exec_exit,
};

static Process *process_new(ExecSpec *spec) {
        Process *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->n_ref = 1;
        p->argv = TAKE_PTR(spec->argv);
        p->cwd = strdup(spec->cwd);
        p->pty = spec->pty_rows > 0;
        p->stdin_open = spec->stdin_open || p->pty;
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

        if (p)
                spec->argv = strv_copy(p->argv);
        if (!p || !spec->argv) {
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
