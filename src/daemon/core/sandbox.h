/* A sandbox as the daemon knows it: its spec, state and timestamps, persisted as
 * $STATE/sandboxes/<id>/sandbox.json. Refcounted: callbacks that outlive a request hold
 * a reference. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/isolator/isolator.h"

typedef struct Manager Manager;
typedef struct AgentConn AgentConn;
typedef struct ProcessTable ProcessTable;

typedef enum SandboxState {
        SANDBOX_CREATING,
        SANDBOX_RUNNING,
        SANDBOX_FAILED,
        SANDBOX_DESTROYED,
        SANDBOX_SUSPENDED,
        _SANDBOX_STATE_MAX,
} SandboxState;

/* What a sandbox's TTL does when it runs out. */
typedef enum SandboxExpire {
        SANDBOX_EXPIRE_DESTROY,
        SANDBOX_EXPIRE_SUSPEND,
        _SANDBOX_EXPIRE_MAX,
} SandboxExpire;

typedef struct SandboxWaiter SandboxWaiter;
typedef struct SandboxDestroyLater SandboxDestroyLater;

typedef struct Sandbox {
        unsigned n_ref;
        Manager *manager;
        char id[SANDBOX_ID_MAX + 1];
        char *dir; /* $STATE/sandboxes/<id> */
        SandboxState state;
        char *reason; /* why it failed or ended; NULL otherwise */
        char *name;   /* may be NULL */
        char *image;
        const IsolatorOps *isolator;
        SandboxLimits limits;
        json_t *env;      /* object of strings */
        json_t *metadata; /* object of strings */
        char *cwd;
        int64_t created_ms, updated_ms; /* wall clock, ms since the epoch */
        int64_t last_active_ms;         /* last API call that touched it (or its end) */
        int64_t idle_timeout_s;         /* suspend after this long idle; 0 = never */
        int64_t hibernate_after_s;      /* hibernate after this long idle; 0 = never */
        bool hibernated;                /* suspended, its machine saved to disk (isolator hibernate) */
        int64_t hibernate_failed_ms;    /* the sweep's last failed try (not persisted) */
        int64_t ttl_s;                  /* hard lifetime from created_ms; 0 = none */
        SandboxExpire on_expire;
        bool ttl_expired; /* the TTL suspended it once already; it does not again */
        unsigned n_active; /* API calls in flight on it, followers and attaches included */
        /* A suspend, resume or revive runs on the thread pool, or a fork or snapshot
         * holds it (core/lifecycle.c): no new agent connection, and a destroy waits. */
        bool transitioning;
        SandboxWaiter *waiters; /* calls waiting for it to be running again */
        uint32_t uid_slot;
        AgentConn *agent; /* NULL until first use or after the connection dropped */
        bool clock_stale; /* resumed, its wall clock not yet set again (IsolatorOps.clock_stops) */
        ProcessTable *processes; /* background processes (core/process.c); NULL until the first */
        bool destroying;
        SandboxDestroyLater *destroy_later; /* a destroy waiting for the transition's end */
        bool pooled;                        /* a warm sandbox in the manager's pool, not handed out yet */
} Sandbox;

/* The limits of a sandbox whose create does not say (docs/api.md). */
extern const SandboxLimits sandbox_default_limits;

Sandbox *sandbox_new(Manager *m, const char *id);
Sandbox *sandbox_ref(Sandbox *sb);
Sandbox *sandbox_unref(Sandbox *sb);
DEFINE_TRIVIAL_CLEANUP_FUNC(Sandbox *, sandbox_unref);

const char *sandbox_state_to_string(SandboxState s);
int sandbox_state_from_string(const char *s, SandboxState *ret);
bool sandbox_is_running(const Sandbox *sb);
/* Running or suspended: a call on it can go on (after a resume). */
bool sandbox_is_live(const Sandbox *sb);
const char *sandbox_expire_to_string(SandboxExpire e);
int sandbox_expire_from_string(const char *s, SandboxExpire *ret);

/* Sets state (and reason, may be NULL) and bumps updated_ms; does not persist. Only a
 * suspended sandbox stays hibernated. */
void sandbox_set_state(Sandbox *sb, SandboxState state, const char *reason);

/* The sandbox as the API shows it (a new reference); usage may be NULL. */
json_t *sandbox_to_json(const Sandbox *sb);
json_t *sandbox_to_json_with_usage(const Sandbox *sb, const SandboxUsage *usage);

/* Persisted form: everything above plus the private fields (uid slot). */
json_t *sandbox_to_record(const Sandbox *sb);
int sandbox_from_record(Sandbox *sb, json_t *record);

/* Applies the agent's silence rule (agentc.h) only while sb runs: the agent of a frozen
 * sandbox, or of one a worker thread is working on, cannot answer. */
void sandbox_agent_watch(Sandbox *sb);

/* Fills *plan with pointers into sb and its manager; valid while sb lives. */
void sandbox_plan(const Sandbox *sb, SandboxPlan *plan);
