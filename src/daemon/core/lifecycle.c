#include "daemon/core/lifecycle.h"

#include <string.h>

#include "basic/log.h"
#include "basic/time-util.h"
#include "daemon/agentc.h"
#include "daemon/core/metrics.h"
#include "daemon/core/process.h"

struct SandboxWaiter {
        SandboxDone done;
        void *userdata;
        SandboxWaiter *next;
};

typedef enum TransitionKind {
        TRANSITION_SUSPEND,
        TRANSITION_RESUME,
        TRANSITION_REVIVE, /* its agent is gone: boot it again from its disk */
} TransitionKind;

/* One suspend (and hibernate), resume or revive on the thread pool: the freezer waits for
 * every task to stop, a hibernation for the machine to be on disk, and a revive boots a
 * VM (seconds under TCG), none of which the loop can wait for. */
typedef struct Transition {
        uv_work_t work;
        Manager *manager;
        Sandbox *sb;
        SandboxPlan plan;
        TransitionKind kind;
        bool was_running; /* suspend: it was running (else it only hibernates) */
        bool hibernate;
        int64_t started_ms; /* monotonic, for the resume latency histogram and the log */
        char reason[32];
        ForgeError err; /* revive: what the isolator said */
        int r;
        int hibernate_r; /* with r >= 0: the hibernation failed, it stays suspended */
        ForgeError hibernate_err;
        SandboxDone done; /* suspend's caller; resume's and revive's are sb->waiters */
        void *userdata;
} Transition;

static void transition_start(Manager *m, Sandbox *sb, TransitionKind kind, bool hibernate,
                             const char *reason, SandboxDone done, void *userdata);

static int not_live_error(const Sandbox *sb, ForgeError *err) {
        if (sb->destroying)
                return forge_error_set(err, ENOENT, "sandbox_not_found", "sandbox %s is being destroyed", sb->id);
        return forge_error_set(err, EINVAL, "sandbox_not_running", "sandbox %s is %s%s%s", sb->id,
                               sandbox_state_to_string(sb->state), sb->reason ? ": " : "",
                               sb->reason ? sb->reason : "");
}

static void waiters_finish(Sandbox *sb, const ForgeError *err) {
        SandboxWaiter *w = sb->waiters;

        sb->waiters = NULL;
        while (w) {
                SandboxWaiter *next = w->next;
                w->done(sb, err, w->userdata);
                free(w);
                w = next;
        }
}

static unsigned waiters_count(const Sandbox *sb) {
        unsigned n = 0;

        for (const SandboxWaiter *w = sb->waiters; w; w = w->next)
                n++;
        return n;
}

/* No connection to its agent, and the agent's process (ns: the sandbox's init; qemu:
 * QEMU) is gone. An open connection means alive: if the agent has just died, forged
 * sees the connection end on a later turn of the loop. */
static bool agent_is_lost(const Sandbox *sb) {
        SandboxPlan plan;

        if (agentc_is_open(sb->agent))
                return false;
        sandbox_plan(sb, &plan);
        return sb->isolator->is_alive(&plan) <= 0;
}

/* What calls waiting for sb need once nothing runs on it: its agent back, a resume, or
 * nothing more. */
static void waiters_serve(Manager *m, Sandbox *sb) {
        ForgeError err = {0};

        if (!sb->waiters)
                return;
        if (!sandbox_is_live(sb)) {
                not_live_error(sb, &err);
                waiters_finish(sb, &err);
        } else if (agent_is_lost(sb))
                transition_start(m, sb, TRANSITION_REVIVE, false, NULL, NULL, NULL);
        else if (sb->state == SANDBOX_SUSPENDED)
                transition_start(m, sb, TRANSITION_RESUME, false, NULL, NULL, NULL);
        else
                waiters_finish(sb, NULL);
}

int sandbox_boot_again(const IsolatorOps *iso, const SandboxPlan *plan, ForgeError *err) {
        int r;

        iso->destroy(plan);
        r = iso->create(plan, err);
        if (r >= 0)
                r = iso->start(plan, err);
        if (r < 0)
                iso->destroy(plan);
        return r;
}

void sandbox_revive_done(Manager *m, Sandbox *sb, int r, const ForgeError *err, int64_t started_ms) {
        unsigned n = waiters_count(sb);

        if (r < 0) {
                log_sb_error(sb->id, r,
                             "agent was gone and the sandbox cannot boot again (%s); marked failed",
                             err->message);
                sandbox_set_state(sb, SANDBOX_FAILED, "agent_lost");
        } else {
                log_sb_info(sb->id,
                            "agent was gone; sandbox restarted with its files in %lld ms for %u call%s",
                            (long long) (time_mono_ms() - started_ms), n, n == 1 ? "" : "s");
                /* Suspended or running before, it runs now: nothing of it was left to freeze. */
                sandbox_set_state(sb, SANDBOX_RUNNING, NULL);
                sb->last_active_ms = time_now_ms();
        }
        manager_save(m, sb);
}

static void work_transition(uv_work_t *w) {
        Transition *t = w->data;
        const IsolatorOps *iso = t->sb->isolator;

        switch (t->kind) {
        case TRANSITION_SUSPEND:
                t->r = t->was_running ? iso->suspend(&t->plan) : 0;
                if (t->r >= 0 && t->hibernate)
                        t->hibernate_r = iso->hibernate(&t->plan, &t->hibernate_err);
                break;
        case TRANSITION_RESUME:
                t->r = iso->resume(&t->plan);
                break;
        case TRANSITION_REVIVE:
                t->r = sandbox_boot_again(iso, &t->plan, &t->err);
                break;
        }
}

/* The machine is a file now: the agent's connection ended with what ran it (processes
 * are adopted again after the wake-up, docs/processes.md). */
static void after_hibernate(Transition *t) {
        Sandbox *sb = t->sb;

        if (t->hibernate_r < 0) {
                sb->hibernate_failed_ms = time_now_ms();
                log_sb_error(sb->id, t->hibernate_r, "cannot hibernate: %s", t->hibernate_err.message);
                return;
        }
        sb->hibernated = true;
        if (sb->agent)
                agentc_close(sb->agent);
        metrics_count(METRIC_HIBERNATES);
        log_sb_info(sb->id, "hibernated (%s) in %lld ms", t->reason,
                    (long long) (time_mono_ms() - t->started_ms));
}

static void after_suspend(Transition *t) {
        Sandbox *sb = t->sb;
        ForgeError err = {0};

        if (t->r < 0) {
                log_sb_error(sb->id, t->r, "cannot suspend (%s)", t->reason);
                forge_error_set(&err, t->r, "isolator_failed", "cannot suspend sandbox %s", sb->id);
        } else {
                if (t->was_running) {
                        sandbox_set_state(sb, SANDBOX_SUSPENDED, t->reason);
                        metrics_count(METRIC_SUSPENDS);
                        log_sb_info(sb->id, "suspended (%s)", t->reason);
                }
                if (t->hibernate)
                        after_hibernate(t);
                manager_save(t->manager, sb);
        }
        if (t->done)
                t->done(sb, t->r < 0 ? &err : t->hibernate_r < 0 ? &t->hibernate_err : NULL, t->userdata);
        /* Calls that came in meanwhile want it running again. */
        waiters_serve(t->manager, sb);
}

static void after_resume(Transition *t) {
        Sandbox *sb = t->sb;
        ForgeError err = {0};

        if (t->r < 0) {
                log_sb_error(sb->id, t->r, "cannot resume");
                forge_error_set(&err, t->r, "isolator_failed", "cannot resume sandbox %s", sb->id);
                return waiters_finish(sb, &err);
        }
        log_sb_info(sb->id, "resumed%s in %lld ms", sb->hibernated ? " from hibernation" : "",
                    (long long) (time_mono_ms() - t->started_ms));
        sandbox_set_state(sb, SANDBOX_RUNNING, NULL);
        sb->last_active_ms = time_now_ms();
        sb->clock_stale = sb->isolator->clock_stops;
        manager_agent_clock_sync(sb);
        metrics_count(METRIC_RESUMES);
        metrics_observe_since(METRIC_RESUME_SECONDS, t->started_ms);
        /* The callers' commands start before the record's fsync, not after it. Should
         * forged die in between, the record says suspended and reconcile freezes the
         * sandbox again (the record is the truth). */
        waiters_serve(t->manager, sb);
        if (!sb->destroying)
                manager_save(t->manager, sb);
}

/* The failed revive's own error goes to the calls that waited; later ones find the
 * sandbox failed (agent_lost). */
static void after_revive(Transition *t) {
        sandbox_revive_done(t->manager, t->sb, t->r, &t->err, t->started_ms);
        waiters_finish(t->sb, t->r < 0 ? &t->err : NULL);
}

static void after_transition(uv_work_t *w, int status) {
        Transition *t = w->data;
        Manager *m = t->manager;
        Sandbox *sb = t->sb;

        m->n_jobs--;
        sb->transitioning = false;
        if (sb->destroying) {
                ForgeError err = {0};
                not_live_error(sb, &err);
                if (t->done)
                        t->done(sb, &err, t->userdata);
                waiters_finish(sb, &err);
                /* Whatever the transition did (a revive booted it), the destroy undoes. */
                manager_destroy_deferred(m, sb);
        } else if (t->kind == TRANSITION_SUSPEND)
                after_suspend(t);
        else if (t->kind == TRANSITION_RESUME)
                after_resume(t);
        else
                after_revive(t);
        sandbox_agent_watch(sb);
        sandbox_unref(t->sb);
        free(t);
}

static void transition_start(Manager *m, Sandbox *sb, TransitionKind kind, bool hibernate,
                             const char *reason, SandboxDone done, void *userdata) {
        Transition *t = calloc(1, sizeof(*t));

        if (!t) {
                ForgeError err = {0};
                forge_error_set(&err, ENOMEM, "internal", "out of memory");
                if (done)
                        done(sb, &err, userdata);
                if (kind != TRANSITION_SUSPEND)
                        waiters_finish(sb, &err);
                return;
        }
        *t = (Transition){.manager = m,
                          .sb = sandbox_ref(sb),
                          .kind = kind,
                          .was_running = sb->state == SANDBOX_RUNNING,
                          .hibernate = hibernate,
                          .started_ms = time_mono_ms(),
                          .done = done,
                          .userdata = userdata};
        snprintf(t->reason, sizeof(t->reason), "%s", reason ? reason : "");
        sandbox_plan(sb, &t->plan);
        t->work.data = t;
        sb->transitioning = true;
        sandbox_agent_watch(sb);
        m->n_jobs++;
        if (kind == TRANSITION_REVIVE) {
                /* The agent took its processes with it: their followers get the end now. */
                process_table_end(sb);
                log_sb_warn(sb->id, 0, "agent is gone (%s); booting the sandbox again from its disk",
                            sb->isolator->name);
        }
        if (uv_queue_work(m->loop, &t->work, work_transition, after_transition) < 0) {
                work_transition(&t->work);
                after_transition(&t->work, 0);
        }
}

void manager_suspend(Manager *m, Sandbox *sb, const char *reason, bool hibernate, SandboxDone done,
                     void *userdata) {
        ForgeError err = {0};

        if (!sandbox_is_live(sb))
                not_live_error(sb, &err);
        else if (hibernate && !sb->isolator->hibernate)
                forge_error_set(&err, EOPNOTSUPP, "not_supported",
                                "isolator %s cannot hibernate a sandbox (it keeps no machine to save)",
                                sb->isolator->name);
        else if (sb->transitioning || sb->waiters)
                forge_error_set(&err, EBUSY, "sandbox_not_running", "sandbox %s is being suspended or resumed",
                                sb->id);
        else if (sb->state == SANDBOX_RUNNING || (hibernate && !sb->hibernated))
                return transition_start(m, sb, TRANSITION_SUSPEND, hibernate, reason, done, userdata);
        if (done)
                done(sb, err.code[0] ? &err : NULL, userdata);
}

void manager_ensure_running(Manager *m, Sandbox *sb, SandboxDone done, void *userdata) {
        SandboxWaiter *w, **tail;
        ForgeError err = {0};

        if (!sandbox_is_live(sb)) {
                not_live_error(sb, &err);
                return done(sb, &err, userdata);
        }
        if (sb->state == SANDBOX_RUNNING && !sb->transitioning && !agent_is_lost(sb))
                return done(sb, NULL, userdata);
        w = calloc(1, sizeof(*w));
        if (!w) {
                forge_error_set(&err, ENOMEM, "internal", "out of memory");
                return done(sb, &err, userdata);
        }
        *w = (SandboxWaiter){.done = done, .userdata = userdata};
        for (tail = &sb->waiters; *tail; tail = &(*tail)->next)
                ;
        *tail = w;
        /* A transition under way serves the waiters when it ends (after_*, hold_end):
         * so two calls that find the agent gone cause one revive. */
        if (!sb->transitioning)
                waiters_serve(m, sb);
}

void manager_hold_begin(Sandbox *sb) {
        sb->transitioning = true;
        sandbox_agent_watch(sb);
}

void manager_hold_end(Manager *m, Sandbox *sb) {
        ForgeError err = {0};

        sb->transitioning = false;
        sandbox_agent_watch(sb);
        if (sb->destroying) {
                not_live_error(sb, &err);
                waiters_finish(sb, &err);
                manager_destroy_deferred(m, sb);
        } else
                waiters_serve(m, sb);
}

void sandbox_activity_begin(Sandbox *sb) {
        sb->n_active++;
        sb->last_active_ms = time_now_ms();
}

void sandbox_activity_end(Sandbox *sb) {
        if (sb->n_active > 0)
                sb->n_active--;
        sb->last_active_ms = time_now_ms();
}

/* ---- the sweep ---- */

static bool ttl_is_over(const Sandbox *sb, int64_t now) {
        return sb->ttl_s > 0 && now >= sb->created_ms + sb->ttl_s * 1000;
}

static bool idle_is_over(const Sandbox *sb, int64_t now) {
        return sb->idle_timeout_s > 0 && sb->n_active == 0 && now >= sb->last_active_ms + sb->idle_timeout_s * 1000;
}

/* Idle for hibernate_after_s, running or suspended: it goes to disk. */
static bool hibernate_is_due(const Sandbox *sb, int64_t now) {
        int64_t since = MAX(sb->last_active_ms, sb->hibernate_failed_ms);

        return sb->hibernate_after_s > 0 && !sb->hibernated && sb->n_active == 0 &&
               now >= since + sb->hibernate_after_s * 1000;
}

static void sweep_one(Manager *m, Sandbox *sb, int64_t now) {
        if (sb->destroying || sb->transitioning || sb->waiters || sb->state == SANDBOX_CREATING)
                return;
        if (ttl_is_over(sb, now) && sb->on_expire == SANDBOX_EXPIRE_DESTROY) {
                log_sb_info(sb->id, "ttl of %llds is over; destroying", (long long) sb->ttl_s);
                return manager_destroy_for(m, sb, "ttl", NULL, NULL);
        }
        /* Suspended once by its TTL, it may be resumed and then only idles out. */
        if (sb->state == SANDBOX_RUNNING && ttl_is_over(sb, now) && !sb->ttl_expired) {
                sb->ttl_expired = true;
                return manager_suspend(m, sb, "ttl", false, NULL, NULL);
        }
        if (hibernate_is_due(sb, now))
                return manager_suspend(m, sb, "idle", true, NULL, NULL);
        if (sb->state == SANDBOX_RUNNING && idle_is_over(sb, now))
                manager_suspend(m, sb, "idle", false, NULL, NULL);
}

static void on_sweep(uv_timer_t *timer) {
        Manager *m = timer->data;
        int64_t now = time_now_ms();

        /* Backwards: a destroy removes the sandbox at i from the registry. */
        for (size_t i = m->n_sandboxes; i > 0; i--)
                sweep_one(m, m->sandboxes[i - 1], now);
}

int manager_sweep_start(Manager *m) {
        uv_timer_t *timer;
        int r;

        if (m->sweep_timer)
                return 0;
        timer = calloc(1, sizeof(*timer));
        if (!timer)
                return -ENOMEM;
        r = uv_timer_init(m->loop, timer);
        if (r < 0) {
                free(timer);
                return r;
        }
        timer->data = m;
        m->sweep_timer = timer;
        return uv_timer_start(timer, on_sweep, LIFECYCLE_SWEEP_MS, LIFECYCLE_SWEEP_MS);
}

static void on_sweep_closed(uv_handle_t *h) {
        free(h);
}

void manager_sweep_stop(Manager *m) {
        if (!m->sweep_timer)
                return;
        uv_close((uv_handle_t *) m->sweep_timer, on_sweep_closed);
        m->sweep_timer = NULL;
}
