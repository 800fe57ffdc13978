#include "daemon/core/lifecycle.h"

#include <string.h>

#include "basic/log.h"
#include "basic/time-util.h"
#include "daemon/agentc.h"
#include "daemon/core/metrics.h"

struct SandboxWaiter {
        SandboxDone done;
        void *userdata;
        SandboxWaiter *next;
};

/* One suspend (and hibernate) or resume on the thread pool: the freezer waits for every
 * task to stop, a hibernation for the machine to be on disk. */
typedef struct Transition {
        uv_work_t work;
        Manager *manager;
        Sandbox *sb;
        SandboxPlan plan;
        bool suspend;
        bool was_running; /* suspend: it was running (else it only hibernates) */
        bool hibernate;
        int64_t started_ms; /* monotonic, for the latency histograms */
        char reason[32];
        int r;
        int hibernate_r; /* with r >= 0: the hibernation failed, it stays suspended */
        ForgeError hibernate_err;
        SandboxDone done; /* suspend's caller; resume's are sb->waiters */
        void *userdata;
} Transition;

static void transition_start(Manager *m, Sandbox *sb, bool suspend, bool hibernate, const char *reason,
                             SandboxDone done, void *userdata);

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

static void work_transition(uv_work_t *w) {
        Transition *t = w->data;
        const IsolatorOps *iso = t->sb->isolator;

        if (!t->suspend) {
                t->r = iso->resume(&t->plan);
                return;
        }
        t->r = t->was_running ? iso->suspend(&t->plan) : 0;
        if (t->r >= 0 && t->hibernate)
                t->hibernate_r = iso->hibernate(&t->plan, &t->hibernate_err);
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
        if (sb->waiters && !sb->destroying)
                transition_start(t->manager, sb, false, false, NULL, NULL, NULL);
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
        metrics_count(METRIC_RESUMES);
        metrics_observe_since(METRIC_RESUME_SECONDS, t->started_ms);
        /* The callers' commands start before the record's fsync, not after it. Should
         * forged die in between, the record says suspended and reconcile freezes the
         * sandbox again (the record is the truth). */
        waiters_finish(sb, NULL);
        if (!sb->destroying)
                manager_save(t->manager, sb);
}

static void after_transition(uv_work_t *w, int status) {
        Transition *t = w->data;
        Sandbox *sb = t->sb;

        sb->transitioning = false;
        if (sb->destroying) {
                ForgeError err = {0};
                not_live_error(sb, &err);
                if (t->done)
                        t->done(sb, &err, t->userdata);
                waiters_finish(sb, &err);
        } else if (t->suspend)
                after_suspend(t);
        else
                after_resume(t);
        sandbox_unref(t->sb);
        free(t);
}

static void transition_start(Manager *m, Sandbox *sb, bool suspend, bool hibernate, const char *reason,
                             SandboxDone done, void *userdata) {
        Transition *t = calloc(1, sizeof(*t));

        if (!t) {
                ForgeError err = {0};
                forge_error_set(&err, ENOMEM, "internal", "out of memory");
                if (done)
                        done(sb, &err, userdata);
                if (!suspend)
                        waiters_finish(sb, &err);
                return;
        }
        *t = (Transition){.manager = m,
                          .sb = sandbox_ref(sb),
                          .suspend = suspend,
                          .was_running = sb->state == SANDBOX_RUNNING,
                          .hibernate = hibernate,
                          .started_ms = time_mono_ms(),
                          .done = done,
                          .userdata = userdata};
        snprintf(t->reason, sizeof(t->reason), "%s", reason ? reason : "");
        sandbox_plan(sb, &t->plan);
        t->work.data = t;
        sb->transitioning = true;
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
                forge_error_set(&err, EBUSY, "sandbox_not_running",
                                "sandbox %s is being suspended or resumed", sb->id);
        else if (sb->state == SANDBOX_RUNNING || (hibernate && !sb->hibernated))
                return transition_start(m, sb, true, hibernate, reason, done, userdata);
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
        if (sb->state == SANDBOX_RUNNING && !sb->transitioning)
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
        /* A suspend under way starts the resume when it ends (after_suspend). */
        if (!sb->transitioning)
                transition_start(m, sb, false, false, NULL, NULL, NULL);
}

void manager_hold_begin(Sandbox *sb) {
        sb->transitioning = true;
}

void manager_hold_end(Manager *m, Sandbox *sb) {
        ForgeError err = {0};

        sb->transitioning = false;
        if (sb->destroying) {
                not_live_error(sb, &err);
                waiters_finish(sb, &err);
        } else if (sb->waiters && sb->state == SANDBOX_RUNNING)
                waiters_finish(sb, NULL);
        else if (sb->waiters)
                transition_start(m, sb, false, false, NULL, NULL, NULL);
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
        return sb->idle_timeout_s > 0 && sb->n_active == 0 &&
               now >= sb->last_active_ms + sb->idle_timeout_s * 1000;
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
