#include "daemon/core/manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/fault.h"
#include "basic/fs-util.h"
#include "basic/log.h"
#include "basic/random-util.h"
#include "basic/rm-rf.h"
#include "basic/time-util.h"
#include "daemon/agentc.h"
#include "daemon/core/process.h"
#include "daemon/core/images.h"
#include "daemon/core/lifecycle.h"
#include "daemon/core/metrics.h"
#include "daemon/core/pool.h"
#include "daemon/core/snapshots.h"
#include "daemon/core/store.h"

/* Work handed to the thread pool: isolator calls block (clone, mounts, cgroup writes). */
typedef struct Job {
        uv_work_t work;
        Manager *manager;
        Sandbox *sb;
        SandboxPlan plan;
        char *dir; /* destroy: where the sandbox dir was moved to */
        char *from_dir;  /* create: the snapshot() it starts from (plan.from_dir) */
        Sandbox *src;    /* fork: the sandbox copied, held (manager_hold_begin) meanwhile */
        SandboxPlan src_plan;
        bool src_was_running;
        ForgeError err;
        int r;
        SandboxDone done;
        void *userdata;
        int64_t started_ms; /* create: when accepted (monotonic), for forge_create_seconds */
} Job;

int manager_new(uv_loop_t *loop, const ManagerConfig *cfg, Manager **ret, ForgeError *err) {
        Manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        m->loop = loop;
        m->default_isolator = cfg->default_isolator;
        m->max_sandboxes = cfg->max_sandboxes;
        m->idle_timeout_s = cfg->idle_timeout_s;
        m->pool_size = cfg->pool_size;
        m->agent_timeout_ms = cfg->agent_timeout_ms;
        m->state_dir = strdup(cfg->state_dir);
        m->agent_path = strdup(cfg->agent_path);
        if (!m->state_dir || !m->agent_path || asprintf(&m->sandboxes_dir, "%s/sandboxes", cfg->state_dir) < 0 ||
            asprintf(&m->trash_dir, "%s/trash", cfg->state_dir) < 0 ||
            asprintf(&m->snapshots_dir, "%s/snapshots", cfg->state_dir) < 0) {
                manager_free(m);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        r = mkdir_p(m->state_dir, 0711);
        if (r >= 0)
                r = mkdir_p(m->sandboxes_dir, 0711);
        if (r >= 0)
                r = mkdir_p(m->trash_dir, 0700);
        if (r >= 0)
                r = mkdir_p(m->snapshots_dir, 0700);
        if (r < 0) {
                forge_error_set(err, r, "internal", "cannot create the state directory %s", m->state_dir);
                manager_free(m);
                return r;
        }
        r = isolator_init_all(m->default_isolator, m->state_dir, err);
        if (r >= 0)
                r = images_init(m, err);
        if (r < 0) {
                manager_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void manager_free(Manager *m) {
        if (!m)
                return;
        manager_sweep_stop(m);
        pool_drain(m);
        for (size_t i = 0; i < m->n_sandboxes; i++) {
                agentc_close(m->sandboxes[i]->agent);
                sandbox_unref(m->sandboxes[i]);
        }
        free(m->sandboxes);
        isolator_fini_all();
        images_free(m);
        free(m->state_dir);
        free(m->sandboxes_dir);
        free(m->trash_dir);
        free(m->snapshots_dir);
        free(m->agent_path);
        free(m);
}

Sandbox *manager_find(Manager *m, const char *id) {
        for (size_t i = 0; i < m->n_sandboxes; i++)
                if (strcmp(m->sandboxes[i]->id, id) == 0)
                        return m->sandboxes[i];
        return NULL;
}

static int registry_add(Manager *m, Sandbox *sb) {
        Sandbox **n = realloc(m->sandboxes, (m->n_sandboxes + 1) * sizeof(*n));

        if (!n)
                return -ENOMEM;
        m->sandboxes = n;
        m->sandboxes[m->n_sandboxes++] = sandbox_ref(sb);
        return 0;
}

static void registry_remove(Manager *m, Sandbox *sb) {
        for (size_t i = 0; i < m->n_sandboxes; i++)
                if (m->sandboxes[i] == sb) {
                        memmove(m->sandboxes + i, m->sandboxes + i + 1,
                                (m->n_sandboxes - i - 1) * sizeof(*m->sandboxes));
                        m->n_sandboxes--;
                        sandbox_unref(sb);
                        return;
                }
}

int manager_save(Manager *m, Sandbox *sb) {
        _cleanup_free_ char *path = NULL;
        json_t *rec = sandbox_to_record(sb);
        int r;

        if (!rec || asprintf(&path, "%s/sandbox.json", sb->dir) < 0) {
                json_decref(rec);
                return -ENOMEM;
        }
        r = store_write_json(path, rec);
        json_decref(rec);
        if (r < 0)
                log_sb_error(sb->id, r, "cannot persist the sandbox record");
        return r;
}

/* 10 characters, a letter first: a DNS label that never looks like a number. */
static int id_generate(Manager *m, char ret[SANDBOX_ID_MAX + 1]) {
        for (int attempt = 0; attempt < 16; attempt++) {
                _cleanup_free_ char *path = NULL;
                int r = random_label(ret, 10);

                if (r < 0)
                        return r;
                if (asprintf(&path, "%s/%s", m->sandboxes_dir, ret) < 0)
                        return -ENOMEM;
                if (!manager_find(m, ret) && access(path, F_OK) < 0)
                        return 0;
        }
        return -EEXIST;
}

static bool uid_slot_is_used(Manager *m, uint32_t slot) {
        for (size_t i = 0; i < m->n_sandboxes; i++)
                if (m->sandboxes[i]->uid_slot == slot)
                        return true;
        for (size_t i = 0; i < m->n_pool; i++)
                if (m->pool[i]->uid_slot == slot)
                        return true;
        return false;
}

static int uid_slot_allocate(Manager *m, uint32_t *ret) {
        for (uint32_t slot = 0; slot < UID_SLOTS_MAX; slot++)
                if (!uid_slot_is_used(m, slot)) {
                        *ret = slot;
                        return 0;
                }
        return -ENOSPC;
}

/* The image a spec asks for: its own, else one with its runtime, else `host`. */
static int spec_image(Manager *m, const CreateSpec *spec, const char **ret, ForgeError *err) {
        const char *image = spec->image;
        const char *interp, *suffix;
        int r;

        if (!image && spec->runtime) {
                r = images_for_runtime(m, spec->runtime, &image, err);
                if (r < 0)
                        return r;
        }
        if (!image)
                image = "host";
        r = images_check(m, image, err);
        if (r < 0)
                return r;
        if (spec->runtime) {
                r = images_runtime(m, image, spec->runtime, &interp, &suffix, err);
                if (r < 0)
                        return r;
        }
        *ret = image;
        return 0;
}

/* What the isolator the sandbox gets must be able to do; before anything is made or
 * taken from the pool. */
static int spec_check_isolator(Manager *m, const CreateSpec *spec, ForgeError *err) {
        const IsolatorOps *iso = spec->isolator ? spec->isolator : m->default_isolator;

        if (spec->hibernate_after_s > 0 && !iso->hibernate)
                return forge_error_set(
                        err, EOPNOTSUPP, "not_supported",
                        "'hibernate_after_s' needs an isolator that can hibernate (qemu), not %s",
                        iso->name);
        return 0;
}

static int spec_apply(Manager *m, Sandbox *sb, const CreateSpec *spec, const char *image, ForgeError *err) {
        free(sb->image);
        free(sb->cwd);
        free(sb->name);
        sb->image = strdup(image);
        sb->cwd = strdup(spec->cwd ? spec->cwd : images_workdir(m, image));
        sb->name = spec->name ? strdup(spec->name) : NULL;
        if (!sb->image || !sb->cwd || (spec->name && !sb->name))
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        sb->isolator = spec->isolator ? spec->isolator : m->default_isolator;
        sb->limits = spec->limits;
        if (sb->limits.disk_mb == 0)
                sb->limits.disk_mb = sandbox_default_limits.disk_mb;
        sb->idle_timeout_s = spec->idle_timeout_s >= 0 ? spec->idle_timeout_s : m->idle_timeout_s;
        sb->hibernate_after_s = spec->hibernate_after_s > 0 ? spec->hibernate_after_s : 0;
        sb->ttl_s = spec->ttl_s;
        sb->on_expire = spec->on_expire;
        json_object_clear(sb->env);
        json_object_clear(sb->metadata);
        if (spec->env)
                json_object_update(sb->env, spec->env);
        if (spec->metadata)
                json_object_update(sb->metadata, spec->metadata);
        return 0;
}

static void job_free(Job *job) {
        sandbox_unref(job->sb);
        sandbox_unref(job->src);
        free(job->dir);
        free(job->from_dir);
        free(job);
}

/* A fork's source stops for as long as it is saved, into a directory of the fork's own. */
static int fork_copy(Job *job) {
        const IsolatorOps *iso = job->src->isolator;
        int r = 0;

        if (mkdir(job->from_dir, 0700) < 0)
                return forge_error_set(&job->err, errno, "internal", "cannot make %s", job->from_dir);
        if (job->src_was_running && (r = iso->suspend(&job->src_plan)) < 0)
                return forge_error_set(&job->err, r, "isolator_failed", "cannot stop sandbox %s to copy it",
                                       job->src->id);
        r = iso->snapshot(&job->src_plan, job->from_dir, &job->err);
        if (job->src_was_running && iso->resume(&job->src_plan) < 0 && r >= 0)
                r = forge_error_set(&job->err, EIO, "isolator_failed", "cannot resume sandbox %s after copying it",
                                    job->src->id);
        return r;
}

static void work_create(uv_work_t *w) {
        Job *job = w->data;
        const IsolatorOps *iso = job->sb->isolator;

        job->r = job->src ? fork_copy(job) : 0;
        FAULT_POINT("create.before_isolator_create");
        if (job->r >= 0)
                job->r = iso->create(&job->plan, &job->err);
        FAULT_POINT("create.after_isolator_create");
        if (job->r >= 0)
                job->r = iso->start(&job->plan, &job->err);
        FAULT_POINT("create.after_start");
        if (job->r < 0)
                iso->destroy(&job->plan);
        /* What of the fork's copy was not moved into place is not needed any more. */
        if (job->src)
                rm_rf(job->from_dir);
}

/* Out of the registry or the pool, whichever holds it. */
static void sandbox_forget(Manager *m, Sandbox *sb) {
        if (sb->pooled)
                pool_remove(m, sb);
        else
                registry_remove(m, sb);
}

static void after_create(uv_work_t *w, int status) {
        Job *job = w->data;
        Manager *m = job->manager;
        Sandbox *sb = job->sb;

        m->n_jobs--;
        if (job->src)
                manager_hold_end(m, job->src);
        if (job->r < 0) {
                log_sb_error(sb->id, job->r, "create failed: %s", job->err.message);
                metrics_count(METRIC_CREATE_FAILURES);
                sandbox_forget(m, sb);
                sandbox_set_state(sb, SANDBOX_DESTROYED, "create_failed");
                rm_rf(sb->dir);
                job->done(sb, &job->err, job->userdata);
        } else {
                sandbox_set_state(sb, SANDBOX_RUNNING, NULL);
                FAULT_POINT("create.before_save_running");
                manager_save(m, sb);
                FAULT_POINT("create.after_save_running");
                log_sb_info(sb->id, "running (image %s, isolator %s%s%s%s)", sb->image, sb->isolator->name,
                            sb->pooled ? ", pooled" : "", job->src ? ", forked from " : "",
                            job->src ? job->src->id : "");
                if (!sb->pooled) {
                        metrics_count(METRIC_CREATES);
                        metrics_observe_since(METRIC_CREATE_SECONDS, job->started_ms);
                }
                job->done(sb, NULL, job->userdata);
        }
        job_free(job);
}

/* A warm sandbox becomes the client's: as if created now, with the spec's settings.
 * Nothing of it was ever handed to anyone, so there is nothing to clean. */
static int pool_hand_out(Manager *m, Sandbox *sb, const CreateSpec *spec, const char *image, SandboxDone done,
                         void *userdata, ForgeError *err) {
        int64_t started = time_mono_ms();
        int r;

        r = spec_apply(m, sb, spec, image, err);
        if (r >= 0) {
                sb->pooled = false;
                sb->created_ms = sb->updated_ms = sb->last_active_ms = time_now_ms();
                r = manager_save(m, sb);
                if (r < 0)
                        forge_error_set(err, r, "internal", "cannot record the sandbox");
        }
        if (r >= 0 && (r = registry_add(m, sb)) < 0)
                forge_error_set(err, r, "internal", "out of memory");
        if (r < 0) {
                manager_destroy_for(m, sb, "create_failed", NULL, NULL);
                sandbox_unref(sb);
                return r;
        }
        log_sb_info(sb->id, "running (image %s, isolator %s, from the pool)", sb->image, sb->isolator->name);
        metrics_count(METRIC_CREATES);
        metrics_observe_since(METRIC_CREATE_SECONDS, started);
        done(sb, NULL, userdata);
        sandbox_unref(sb);
        pool_fill(m);
        return 0;
}

/* from_snapshot: the snapshot decides the image and the disk, size included. */
static int spec_from_snapshot(Manager *m, CreateSpec *spec, Snapshot *snap, ForgeError *err) {
        int r = snapshot_load(m, spec->from_snapshot, snap, err);

        if (r < 0)
                return r;
        if (spec->image && strcmp(spec->image, snap->image) != 0)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "snapshot %s holds a sandbox of image '%s', not '%s'", snap->id,
                                       snap->image, spec->image);
        if (spec->isolator && spec->isolator != snap->isolator)
                return forge_error_set(err, EINVAL, "invalid_request", "snapshot %s was made by isolator %s",
                                       snap->id, snap->isolator->name);
        if (spec->limits.disk_mb != 0 && spec->limits.disk_mb != snap->disk_mb)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "'limits.disk_mb' must be the snapshot's disk size (%lld MiB) or absent",
                                       (long long) snap->disk_mb);
        /* Its memory comes back as it was: the machine cannot change size. */
        if (snap->memory && spec->limits.memory_mb != 0 && spec->limits.memory_mb != snap->memory_mb)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "'limits.memory_mb' must be the snapshot's (%lld MiB) or absent: its memory "
                                       "is restored",
                                       (long long) snap->memory_mb);
        if (snap->memory && spec->limits.cpus_milli != 0 && spec->limits.cpus_milli != snap->cpus_milli)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "'limits.cpus' must be the snapshot's (%g) or absent: its machine is restored",
                                       (double) snap->cpus_milli / 1000.0);
        spec->image = snap->image;
        spec->isolator = snap->isolator;
        if (spec->limits.disk_mb == 0)
                spec->limits.disk_mb = snap->disk_mb;
        if (snap->memory) {
                spec->limits.memory_mb = snap->memory_mb;
                spec->limits.cpus_milli = snap->cpus_milli;
        }
        return 0;
}

/* 0 in a spec's cpus, memory_mb or disk_mb means "not given": the default. */
static void limits_fill_defaults(SandboxLimits *l) {
        if (l->cpus_milli == 0)
                l->cpus_milli = sandbox_default_limits.cpus_milli;
        if (l->memory_mb == 0)
                l->memory_mb = sandbox_default_limits.memory_mb;
        if (l->disk_mb == 0)
                l->disk_mb = sandbox_default_limits.disk_mb;
}

static int create_start(Manager *m, const CreateSpec *spec, const char *image, const Snapshot *snap,
                        SandboxDone done, void *userdata, ForgeError *err) {
        _cleanup_(sandbox_unrefp) Sandbox *sb = NULL;
        char id[SANDBOX_ID_MAX + 1];
        Job *job;
        int r;

        if (!spec->pooled && m->n_sandboxes + m->n_pool >= m->max_sandboxes)
                return forge_error_set(err, EAGAIN, "at_capacity", "the sandbox limit (%u) is reached",
                                       m->max_sandboxes);
        r = id_generate(m, id);
        if (r < 0)
                return forge_error_set(err, r, "internal", "cannot generate a sandbox id");
        sb = sandbox_new(m, id);
        if (!sb)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        sb->pooled = spec->pooled;
        r = spec_apply(m, sb, spec, image, err);
        if (r < 0)
                return r;
        r = uid_slot_allocate(m, &sb->uid_slot);
        if (r < 0)
                return forge_error_set(err, r, "at_capacity", "no free uid range is left");
        if (mkdir(sb->dir, 0700) < 0)
                return forge_error_set(err, errno, "internal", "cannot create %s", sb->dir);
        FAULT_POINT("create.dir_made");
        r = manager_save(m, sb);
        FAULT_POINT("create.record_saved");
        if (r >= 0)
                r = sb->pooled ? pool_add(m, sb) : registry_add(m, sb);
        job = r >= 0 ? calloc(1, sizeof(*job)) : NULL;
        if (!job) {
                sandbox_forget(m, sb);
                rm_rf(sb->dir);
                return forge_error_set(err, r < 0 ? r : -ENOMEM, "internal", "cannot record the sandbox");
        }
        *job = (Job){.manager = m, .sb = sandbox_ref(sb), .done = done, .userdata = userdata};
        sandbox_plan(sb, &job->plan);
        if (spec->fork_of) {
                job->src = sandbox_ref(spec->fork_of);
                job->src_was_running = spec->fork_of->state == SANDBOX_RUNNING;
                sandbox_plan(job->src, &job->src_plan);
                if (asprintf(&job->from_dir, "%s/fork", sb->dir) < 0)
                        job->from_dir = NULL;
                job->plan.from_uid_base = job->src_plan.uid_base;
                job->plan.from_move = true;
        } else if (snap) {
                job->from_dir = strdup(snap->dir);
                job->plan.from_uid_base = snap->uid_base;
        }
        job->plan.from_dir = job->from_dir;
        if ((spec->fork_of || snap) && !job->from_dir) {
                sandbox_forget(m, sb);
                rm_rf(sb->dir);
                job_free(job);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        job->work.data = job;
        m->n_jobs++;
        log_sb_info(sb->id, "creating");
        job->started_ms = time_mono_ms();
        if (job->src)
                manager_hold_begin(job->src);
        r = uv_queue_work(m->loop, &job->work, work_create, after_create);
        if (r < 0) {
                m->n_jobs--;
                if (job->src)
                        manager_hold_end(m, job->src);
                sandbox_forget(m, sb);
                rm_rf(sb->dir);
                job_free(job);
                return forge_error_set(err, r, "internal", "cannot queue the creation");
        }
        return 0;
}

int manager_create(Manager *m, const CreateSpec *spec, SandboxDone done, void *userdata, ForgeError *err) {
        _cleanup_(snapshot_done) Snapshot snap = {0};
        CreateSpec effective = *spec;
        const char *image;
        Sandbox *warm;
        int r;

        if (spec->from_snapshot) {
                r = spec_from_snapshot(m, &effective, &snap, err);
                if (r < 0)
                        return r;
        }
        limits_fill_defaults(&effective.limits);
        r = spec_check_isolator(m, &effective, err);
        if (r >= 0)
                r = spec_image(m, &effective, &image, err);
        if (r < 0)
                return r;
        warm = spec->pooled || spec->fork_of || spec->from_snapshot ? NULL : pool_take(m, &effective, image);
        if (warm)
                return pool_hand_out(m, warm, &effective, image, done, userdata, err);
        return create_start(m, &effective, image, spec->from_snapshot ? &snap : NULL, done, userdata, err);
}

int manager_fork(Manager *m, Sandbox *src, const CreateSpec *spec, SandboxDone done, void *userdata,
                 ForgeError *err) {
        CreateSpec fork = *spec;
        json_t *metadata;
        int r;

        if (!sandbox_is_live(src))
                return forge_error_set(err, EINVAL, "sandbox_not_running", "sandbox %s is %s", src->id,
                                       sandbox_state_to_string(src->state));
        if (!src->isolator->snapshot)
                return forge_error_set(err, EOPNOTSUPP, "not_supported", "isolator %s cannot copy a sandbox",
                                       src->isolator->name);
        if (src->transitioning || src->waiters)
                return forge_error_set(err, EBUSY, "sandbox_busy",
                                       "sandbox %s is being suspended, resumed or copied", src->id);
        fork.image = src->image;
        fork.runtime = NULL;
        fork.isolator = src->isolator;
        if (fork.hibernate_after_s < 0)
                fork.hibernate_after_s = src->hibernate_after_s;
        r = spec_check_isolator(m, &fork, err);
        if (r < 0)
                return r;
        fork.limits = src->limits;
        fork.env = src->env;
        fork.cwd = src->cwd;
        fork.fork_of = src;
        /* The source's metadata, with the keys the fork's body sets replaced. */
        metadata = json_deep_copy(src->metadata);
        if (!metadata)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        if (spec->metadata && json_object_update(metadata, spec->metadata) < 0) {
                json_decref(metadata);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        fork.metadata = metadata;
        if (fork.idle_timeout_s < 0)
                fork.idle_timeout_s = src->idle_timeout_s;
        r = create_start(m, &fork, src->image, NULL, done, userdata, err);
        json_decref(metadata);
        return r;
}

static void work_destroy(uv_work_t *w) {
        Job *job = w->data;
        const IsolatorOps *iso = job->sb->isolator;

        FAULT_POINT("destroy.before_isolator_destroy");
        job->r = iso->destroy(&job->plan);
        FAULT_POINT("destroy.after_isolator_destroy");
        if (job->r >= 0)
                job->r = rm_rf(job->dir);
}

static void after_destroy(uv_work_t *w, int status) {
        Job *job = w->data;
        Manager *m = job->manager;

        m->n_jobs--;
        if (job->r < 0)
                log_sb_error(job->sb->id, job->r, "destroy left resources behind (reconcile retries)");
        else
                log_sb_info(job->sb->id, "destroyed");
        if (job->done)
                job->done(job->sb, NULL, job->userdata);
        job_free(job);
        pool_fill(m); /* room for a warm one again */
}

/* Moves the directory aside first, so that a crash mid-destroy never brings the sandbox
 * back: reconcile finishes whatever is in trash/. */
void manager_destroy(Manager *m, Sandbox *sb, SandboxDone done, void *userdata) {
        manager_destroy_for(m, sb, "destroyed_by_client", done, userdata);
}

struct SandboxDestroyLater {
        char reason[48];
        SandboxDone done;
        void *userdata;
};

/* The isolator is working on sb on a worker thread (a revive booting it, a freeze, a
 * fork's copy): its directory must stay where it is and nothing may be killed under
 * that work, so the destroy waits for its end (manager_destroy_deferred()). Meanwhile
 * sb is destroying: calls on it fail and it gets no new agent connection. */
static void destroy_defer(Sandbox *sb, const char *reason, SandboxDone done, void *userdata) {
        SandboxDestroyLater *later = sb->destroy_later ? NULL : calloc(1, sizeof(*later));

        if (!later) {
                /* Already waiting (or no memory): that destroy will do. */
                if (done)
                        done(sb, NULL, userdata);
                return;
        }
        snprintf(later->reason, sizeof(later->reason), "%s", reason);
        later->done = done;
        later->userdata = userdata;
        sb->destroy_later = later;
        log_sb_info(sb->id, "destroy (%s) waits for the work under way on the sandbox", reason);
}

void manager_destroy_deferred(Manager *m, Sandbox *sb) {
        SandboxDestroyLater *later = TAKE_PTR(sb->destroy_later);

        if (!later)
                return;
        manager_destroy_for(m, sb, later->reason, later->done, later->userdata);
        free(later);
}

void manager_destroy_for(Manager *m, Sandbox *sb, const char *reason, SandboxDone done, void *userdata) {
        Job *job;
        char *trashed = NULL;

        sb->destroying = true;
        agentc_close(sb->agent);
        process_table_end(sb);
        if (sb->transitioning)
                return destroy_defer(sb, reason, done, userdata);
        job = calloc(1, sizeof(*job));
        metrics_count(METRIC_DESTROYS);
        if (asprintf(&trashed, "%s/%s", m->trash_dir, sb->id) < 0 || rename(sb->dir, trashed) < 0) {
                log_sb_warn(sb->id, errno, "cannot move the sandbox to the trash");
                free(trashed);
                trashed = strdup(sb->dir);
        }
        sandbox_set_state(sb, SANDBOX_DESTROYED, reason);
        if (!job || !trashed) {
                free(job);
                free(trashed);
                registry_remove(m, sb);
                if (done)
                        done(sb, NULL, userdata);
                return;
        }
        *job = (Job){.manager = m, .sb = sandbox_ref(sb), .dir = trashed, .done = done, .userdata = userdata};
        free(sb->dir);
        sb->dir = strdup(trashed);
        sandbox_plan(sb, &job->plan);
        job->plan.dir = job->dir;
        job->work.data = job;
        registry_remove(m, sb);
        m->n_jobs++;
        if (uv_queue_work(m->loop, &job->work, work_destroy, after_destroy) < 0) {
                work_destroy(&job->work);
                after_destroy(&job->work, 0);
        }
}

static void on_agent_closed(AgentConn *c, void *userdata) {
        Sandbox *sb = userdata;

        if (sb->agent == c)
                sb->agent = agentc_unref(sb->agent);
}

/* Boots a sandbox whose agent is gone (host reboot, agent crash): its files are on disk.
 * Blocking: only reconcile, before the API is served, does it here. */
static int sandbox_revive(Manager *m, Sandbox *sb, ForgeError *err) {
        int64_t started = time_mono_ms();
        SandboxPlan plan;
        int r;

        sandbox_plan(sb, &plan);
        r = sandbox_boot_again(sb->isolator, &plan, err);
        sandbox_revive_done(m, sb, r, err, started);
        return r;
}

static void on_clock_set(void *userdata, const ProtoResponse *resp) {
        Sandbox *sb = userdata;

        if (resp->status < 0)
                log_sb_warn(sb->id, resp->status, "the agent did not set the wall clock after the resume");
        sandbox_unref(sb);
}

void manager_agent_clock_sync(Sandbox *sb) {
        struct timespec now;
        ProtoBuf b = {0};

        if (!sb->clock_stale || !agentc_is_open(sb->agent))
                return;
        clock_gettime(CLOCK_REALTIME, &now);
        agentc_request_begin(sb->agent, &b, PROTO_OP_CLOCK_SET);
        proto_buf_put_int(&b, PROTO_TAG_TIME_NS, (int64_t) now.tv_sec * 1000000000 + now.tv_nsec);
        if (agentc_request_send(sb->agent, &b, on_clock_set, sandbox_ref(sb)) < 0) {
                sandbox_unref(sb);
                return; /* the connection is going: the next one tries again */
        }
        sb->clock_stale = false;
}

int manager_agent(Manager *m, Sandbox *sb, AgentConn **ret, ForgeError *err) {
        SandboxPlan plan;
        int fd = -1, r;

        if (agentc_is_open(sb->agent)) {
                manager_agent_clock_sync(sb);
                *ret = sb->agent;
                return 0;
        }
        /* A worker thread is booting, freezing or copying it: a connection now could
         * race with the revive's own greeting, or find the agent frozen. */
        if (sb->transitioning || sb->destroying)
                return forge_error_set(err, EAGAIN, "agent_unavailable",
                                       "sandbox %s is being restarted, suspended or copied; try again",
                                       sb->id);
        sandbox_plan(sb, &plan);
        r = sb->isolator->connect(&plan, &fd);
        if (r < 0)
                return forge_error_set(err, r, "agent_unavailable", "cannot reach the sandbox's agent");
        agentc_unref(sb->agent);
        sb->agent = NULL;
        r = agentc_new(m->loop, fd, sb->id, &sb->agent);
        if (r < 0)
                return forge_error_set(err, r, "agent_unavailable", "cannot reach the sandbox's agent");
        agentc_on_closed(sb->agent, on_agent_closed, sb);
        agentc_set_silence_timeout(sb->agent, m->agent_timeout_ms);
        sandbox_agent_watch(sb);
        manager_agent_clock_sync(sb);
        *ret = sb->agent;
        return 0;
}

void manager_quiesce(Manager *m) {
        m->pool_started = false;
        while (m->n_jobs > 0 && uv_run(m->loop, UV_RUN_ONCE) >= 0)
                ;
}

/* ---- reconcile ---- */

static bool is_known(const char *id, void *userdata) {
        return manager_find(userdata, id) != NULL;
}

static void reconcile_trash(Manager *m) {
        _cleanup_close_ int fd = open(m->trash_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(TAKE_FD(fd)) : NULL;
        struct dirent *de;

        while (d && (de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                SandboxPlan plan = {.dir = NULL};

                if (de->d_name[0] == '.' || strlen(de->d_name) > SANDBOX_ID_MAX ||
                    asprintf(&path, "%s/%s", m->trash_dir, de->d_name) < 0)
                        continue;
                memcpy(plan.id, de->d_name, strlen(de->d_name) + 1);
                plan.dir = path;
                isolator_destroy_any(&plan);
                rm_rf(path);
                log_sb_info(de->d_name, "finished an interrupted destroy");
        }
        if (d)
                closedir(d);
}

static void reconcile_one(Manager *m, const char *id) {
        _cleanup_(sandbox_unrefp) Sandbox *sb = sandbox_new(m, id);
        _cleanup_free_ char *path = NULL;
        json_t *rec = NULL;
        SandboxPlan plan;
        ForgeError err = {0};
        int r = -ENOMEM;

        if (sb && asprintf(&path, "%s/sandbox.json", sb->dir) >= 0)
                r = store_read_json(path, &rec);
        if (r >= 0) {
                r = sandbox_from_record(sb, rec);
                json_decref(rec);
        }
        if (r < 0 || uid_slot_is_used(m, sb->uid_slot)) {
                SandboxPlan bare = {.dir = sb ? sb->dir : NULL};
                snprintf(bare.id, sizeof(bare.id), "%s", id);
                log_sb_warn(id, r, "no usable record; removing its leftovers");
                if (bare.dir) {
                        isolator_destroy_any(&bare);
                        rm_rf(bare.dir);
                }
                return;
        }
        sandbox_plan(sb, &plan);
        if (sb->pooled) {
                sb->isolator->destroy(&plan);
                rm_rf(sb->dir);
                log_sb_info(id, "destroyed a warm sandbox of the previous run");
                return;
        }
        if (sb->state == SANDBOX_CREATING) {
                sb->isolator->destroy(&plan);
                sandbox_set_state(sb, SANDBOX_FAILED, "interrupted_create");
                manager_save(m, sb);
                log_sb_warn(id, 0, "forged stopped while creating it; marked failed");
        } else if (sb->state == SANDBOX_RUNNING && sb->isolator->is_alive(&plan) <= 0) {
                sandbox_revive(m, sb, &err);
        } else if (sb->state == SANDBOX_RUNNING) {
                /* Thawed whatever a crash mid-suspend left frozen: the record is the truth. */
                sb->isolator->resume(&plan);
                log_sb_info(id, "reattached");
        } else if (sb->state == SANDBOX_SUSPENDED && sb->isolator->is_alive(&plan) > 0) {
                sb->isolator->suspend(&plan);
                log_sb_info(id, "reattached, suspended");
        } else if (sb->state == SANDBOX_SUSPENDED) {
                /* Its processes are gone (a reboot): it comes back running, with its files. */
                sandbox_revive(m, sb, &err);
        }
        registry_add(m, sb);
}

int manager_reconcile(Manager *m) {
        _cleanup_close_ int fd = open(m->sandboxes_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(TAKE_FD(fd)) : NULL;
        struct dirent *de;
        char **ids = NULL;
        size_t n = 0;

        if (!d)
                return -errno;
        reconcile_trash(m);
        snapshots_reconcile(m);
        while ((de = readdir(d))) {
                char **grown;

                if (de->d_name[0] == '.')
                        continue;
                grown = realloc(ids, (n + 1) * sizeof(*ids));
                if (!grown)
                        break;
                ids = grown;
                ids[n] = strdup(de->d_name);
                if (ids[n])
                        n++;
        }
        closedir(d);
        /* Oldest first, so the registry keeps creation order. */
        for (size_t i = 0; i < n; i++) {
                reconcile_one(m, ids[i]);
                free(ids[i]);
        }
        free(ids);
        for (size_t i = 1; i < m->n_sandboxes; i++)
                for (size_t j = i; j > 0 && m->sandboxes[j - 1]->created_ms > m->sandboxes[j]->created_ms; j--) {
                        Sandbox *t = m->sandboxes[j];
                        m->sandboxes[j] = m->sandboxes[j - 1];
                        m->sandboxes[j - 1] = t;
                }
        return isolator_reap_unknown_all(is_known, m);
}
