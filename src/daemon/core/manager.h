/* The sandbox registry and lifecycle: create, find, destroy, reconcile after a restart.
 * Runs on the libuv loop thread; blocking isolator work goes to the thread pool. */
#pragma once

#include <jansson.h>
#include <uv.h>

#include "basic/error.h"
#include "daemon/core/sandbox.h"

/* Each sandbox's root maps to its own range of host uids: slot N owns
 * [UID_RANGE_BASE + N * UID_RANGE_SIZE, + UID_RANGE_SIZE). Far above the ranges that
 * /etc/subuid hands to users. */
#define UID_RANGE_BASE 0x40000000u
#define UID_RANGE_SIZE 65536u
#define UID_SLOTS_MAX 49152u

typedef struct ManagerConfig {
        const char *state_dir;
        const char *agent_path;
        const IsolatorOps *default_isolator;
        unsigned max_sandboxes;
        int64_t idle_timeout_s;    /* default for sandboxes that do not say; 0 = never */
        unsigned pool_size;        /* warm sandboxes to keep ready (core/pool.c); 0 = none */
        uint64_t agent_timeout_ms; /* the agents' silence timeout (agentc.h); 0 = the default */
} ManagerConfig;

struct Manager {
        uv_loop_t *loop;
        char *state_dir;
        char *sandboxes_dir; /* $STATE/sandboxes */
        char *trash_dir;     /* $STATE/trash: sandboxes being destroyed */
        char *snapshots_dir; /* $STATE/snapshots (core/snapshots.c) */
        char *agent_path;
        struct Images *images; /* the image registry (core/images.h) */
        const IsolatorOps *default_isolator;
        unsigned max_sandboxes;
        Sandbox **sandboxes; /* live ones, in creation order */
        size_t n_sandboxes;
        unsigned n_jobs; /* thread-pool jobs in flight: creates, destroys, snapshots, transitions */
        uint64_t agent_timeout_ms; /* ManagerConfig's */
        int64_t idle_timeout_s;    /* default of new sandboxes */
        uv_timer_t *sweep_timer;   /* idle and TTL (core/lifecycle.c); NULL until started */
        Sandbox **pool;            /* warm sandboxes, ready or being made (core/pool.c) */
        size_t n_pool;
        unsigned pool_size;  /* how many to keep */
        bool pool_started;   /* refills run once reconcile is done */
        bool pool_filling;   /* one refill at a time */
};

/* What a client asked for, already validated in shape by the API layer. */
typedef struct CreateSpec {
        const char *image;   /* NULL = default (or from runtime) */
        const char *runtime; /* NULL = none */
        const IsolatorOps *isolator; /* NULL = default */
        SandboxLimits limits;
        json_t *env;               /* borrowed; object of strings or NULL */
        json_t *metadata;          /* borrowed; object of strings or NULL */
        const char *cwd;           /* NULL = image workdir */
        const char *name;          /* may be NULL */
        int64_t idle_timeout_s;    /* -1 = the manager's default; 0 = never */
        int64_t hibernate_after_s; /* -1 = not given (0, or a fork's source's); 0 = never */
        int64_t ttl_s;             /* 0 = none */
        SandboxExpire on_expire;
        const char *from_snapshot; /* NULL = an empty filesystem */
        /* Set by the core, not by clients: */
        Sandbox *fork_of; /* copy this sandbox's filesystem (manager_fork) */
        bool pooled;      /* a warm sandbox for the pool */
} CreateSpec;

int manager_new(uv_loop_t *loop, const ManagerConfig *cfg, Manager **ret, ForgeError *err);
void manager_free(Manager *m);

/* Loads every record, brings live sandboxes back, restarts dead ones, removes leftovers.
 * Blocking; runs once at start before the API is served. */
int manager_reconcile(Manager *m);

/* NULL if there is no such (live) sandbox. No reference is taken. */
Sandbox *manager_find(Manager *m, const char *id);

/* Completion of an asynchronous create or destroy: err NULL on success. */
typedef void (*SandboxDone)(Sandbox *sb, const ForgeError *err, void *userdata);

/* On success the sandbox is persisted as `creating` before this returns, and done runs
 * when it is `running` (or failed; then it has been removed again). */
int manager_create(Manager *m, const CreateSpec *spec, SandboxDone done, void *userdata, ForgeError *err);
/* A new sandbox with a copy of src's filesystem (its processes are not carried over) and
 * src's settings, where spec (name, metadata, idle_timeout_s, hibernate_after_s, ttl_s,
 * on_expire) does not
 * say otherwise. src's processes stop for the copy and go on after it. */
int manager_fork(Manager *m, Sandbox *src, const CreateSpec *spec, SandboxDone done, void *userdata,
                 ForgeError *err);
/* Moves the sandbox out of the registry at once; done runs when its resources are gone.
 * While sb is transitioning (a revive booting it, a suspend, a fork copying it) the
 * sandbox only becomes `destroying` at once (calls on it fail); the rest waits for the
 * transition's end, which calls manager_destroy_deferred(). */
void manager_destroy(Manager *m, Sandbox *sb, SandboxDone done, void *userdata);
/* The same, with the reason logged and kept ("ttl"; manager_destroy says "destroyed_by_client"). */
void manager_destroy_for(Manager *m, Sandbox *sb, const char *reason, SandboxDone done, void *userdata);
/* A transition on sb ended: runs the destroy that waited for it, if any. */
void manager_destroy_deferred(Manager *m, Sandbox *sb);

/* At a clean exit, once the loop stopped: no more pool refills; runs the loop until the
 * thread-pool jobs in flight have finished, so none outlives the manager. */
void manager_quiesce(Manager *m);

/* Persists sb's record atomically. */
int manager_save(Manager *m, Sandbox *sb);

/* After a resume of a sandbox whose clock stood still (IsolatorOps.clock_stops): has its
 * agent set the wall clock from the host's, now if it is connected, else first thing on
 * the next connection (manager_agent). */
void manager_agent_clock_sync(Sandbox *sb);
/* A connected agent for sb, connecting if needed. Never boots the sandbox: callers go
 * through manager_ensure_running() first, which revives a sandbox whose agent is gone.
 * Fails (agent_unavailable) while sb is transitioning and has no connection. */
int manager_agent(Manager *m, Sandbox *sb, AgentConn **ret, ForgeError *err);
