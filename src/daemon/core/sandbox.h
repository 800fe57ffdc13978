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
        _SANDBOX_STATE_MAX,
} SandboxState;

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
        uint32_t uid_slot;
        AgentConn *agent; /* NULL until first use or after the connection dropped */
        ProcessTable *processes; /* background processes (core/process.c); NULL until the first */
        bool destroying;
} Sandbox;

Sandbox *sandbox_new(Manager *m, const char *id);
Sandbox *sandbox_ref(Sandbox *sb);
Sandbox *sandbox_unref(Sandbox *sb);
DEFINE_TRIVIAL_CLEANUP_FUNC(Sandbox *, sandbox_unref);

const char *sandbox_state_to_string(SandboxState s);
int sandbox_state_from_string(const char *s, SandboxState *ret);
bool sandbox_is_running(const Sandbox *sb);

/* Sets state (and reason, may be NULL) and bumps updated_ms; does not persist. */
void sandbox_set_state(Sandbox *sb, SandboxState state, const char *reason);

/* The sandbox as the API shows it (a new reference). */
json_t *sandbox_to_json(const Sandbox *sb);

/* Persisted form: everything above plus the private fields (uid slot). */
json_t *sandbox_to_record(const Sandbox *sb);
int sandbox_from_record(Sandbox *sb, json_t *record);

/* Fills *plan with pointers into sb and its manager; valid while sb lives. */
void sandbox_plan(const Sandbox *sb, SandboxPlan *plan);
