#include "daemon/core/pool.h"

#include <string.h>

#include "basic/log.h"
#include "basic/rm-rf.h"

int pool_add(Manager *m, Sandbox *sb) {
        Sandbox **n = realloc(m->pool, (m->n_pool + 1) * sizeof(*n));

        if (!n)
                return -ENOMEM;
        m->pool = n;
        m->pool[m->n_pool++] = sandbox_ref(sb);
        return 0;
}

static Sandbox *pool_steal(Manager *m, size_t i) {
        Sandbox *sb = m->pool[i];

        memmove(m->pool + i, m->pool + i + 1, (m->n_pool - i - 1) * sizeof(*m->pool));
        m->n_pool--;
        return sb;
}

void pool_remove(Manager *m, Sandbox *sb) {
        for (size_t i = 0; i < m->n_pool; i++)
                if (m->pool[i] == sb) {
                        sandbox_unref(pool_steal(m, i));
                        return;
                }
}

/* timeout_ms is a per-command default, not part of the sandbox itself: any fits. */
static bool limits_fit(const SandboxLimits *want, const SandboxLimits *have) {
        int64_t disk = want->disk_mb ? want->disk_mb : sandbox_default_limits.disk_mb;

        return want->cpus_milli == have->cpus_milli && want->memory_mb == have->memory_mb &&
               disk == have->disk_mb && want->pids == have->pids;
}

Sandbox *pool_take(Manager *m, const CreateSpec *spec, const char *image) {
        const IsolatorOps *iso = spec->isolator ? spec->isolator : m->default_isolator;

        for (size_t i = 0; i < m->n_pool; i++) {
                Sandbox *sb = m->pool[i];

                if (sb->state == SANDBOX_RUNNING && sb->isolator == iso && strcmp(sb->image, image) == 0 &&
                    limits_fit(&spec->limits, &sb->limits))
                        return pool_steal(m, i);
        }
        return NULL;
}

static void on_filled(Sandbox *sb, const ForgeError *err, void *userdata) {
        Manager *m = userdata;

        m->pool_filling = false;
        /* A failure is not retried at once (it would likely fail again): the next
         * create that takes from the pool, or the next start, tries again. */
        if (err) {
                log_error("cannot make a warm sandbox for the pool: %s", err->message);
                return;
        }
        pool_fill(m);
}

void pool_fill(Manager *m) {
        CreateSpec spec = {.limits = sandbox_default_limits, .idle_timeout_s = 0, .pooled = true};
        ForgeError err = {0};

        if (!m->pool_started || m->pool_filling || m->n_pool >= m->pool_size ||
            m->n_sandboxes + m->n_pool >= m->max_sandboxes)
                return;
        m->pool_filling = true;
        if (manager_create(m, &spec, on_filled, m, &err) < 0) {
                m->pool_filling = false;
                log_error("cannot make a warm sandbox for the pool: %s", err.message);
        }
}

void pool_start(Manager *m) {
        m->pool_started = true;
        if (m->pool_size > 0)
                log_info("keeping %u warm sandboxes in the pool", m->pool_size);
        pool_fill(m);
}

unsigned pool_ready(const Manager *m) {
        unsigned n = 0;

        for (size_t i = 0; i < m->n_pool; i++)
                n += m->pool[i]->state == SANDBOX_RUNNING;
        return n;
}

void pool_drain(Manager *m) {
        while (m->n_pool > 0) {
                Sandbox *sb = pool_steal(m, m->n_pool - 1);
                SandboxPlan plan;

                if (sb->state == SANDBOX_RUNNING) {
                        sandbox_plan(sb, &plan);
                        sb->isolator->destroy(&plan);
                        rm_rf(sb->dir);
                        log_sb_info(sb->id, "warm sandbox destroyed at exit");
                }
                sandbox_unref(sb);
        }
        free(m->pool);
        m->pool = NULL;
}
