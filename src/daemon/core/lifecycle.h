/* Suspend, resume, revive, and the timers that do them on their own (idle, TTL).
 *
 * A suspended sandbox's processes are stopped by the isolator (the cgroup freezer for
 * ns); memory, files and the agent's connection stay. Any call that needs the sandbox
 * running goes through manager_ensure_running(), which resumes it first, or boots it
 * again from its disk if its agent is gone (revive): concurrent callers share one
 * resume or revive, which runs on the thread pool while they wait. One periodic sweep
 * per manager (not a timer per sandbox) finds idle and expired sandboxes; it costs a
 * pass over the registry each tick. */
#pragma once

#include "daemon/core/manager.h"

/* How often the sweep looks; idle and TTL deadlines are met within this. */
#define LIFECYCLE_SWEEP_MS 250

/* done runs (maybe before this returns) once sb is suspended, with err NULL; when sb
 * cannot be suspended (wrong state, a transition under way) err says why. An already
 * suspended sandbox succeeds at once. reason ends up in the sandbox's `reason`. With
 * hibernate the suspended sandbox is then hibernated too (a suspended one is only
 * hibernated): its isolator saves its machine to disk and frees its memory; a resume
 * loads it. An isolator without hibernate is err not_supported; a failed hibernation
 * leaves it suspended, and err says why. */
void manager_suspend(Manager *m, Sandbox *sb, const char *reason, bool hibernate, SandboxDone done,
                     void *userdata);
/* done runs (maybe before this returns) once sb is running with an agent to talk to:
 * resumed if it was suspended (a hibernated one loaded), booted again from its disk if
 * its agent is gone (its processes are lost, its files are not). err set if it is
 * neither running nor suspended, or the resume or revive failed (a failed revive leaves
 * it failed with reason agent_lost). */
void manager_ensure_running(Manager *m, Sandbox *sb, SandboxDone done, void *userdata);

/* A revive's two halves, shared by manager_ensure_running() (on the thread pool) and
 * reconcile (blocking, before the API is served). boot_again removes what the isolator
 * left of the sandbox and boots it from its disk; revive_done, on the loop thread,
 * marks it running (or failed: agent_lost), logs and persists it. */
int sandbox_boot_again(const IsolatorOps *iso, const SandboxPlan *plan, ForgeError *err);
void sandbox_revive_done(Manager *m, Sandbox *sb, int r, const ForgeError *err, int64_t started_ms);

/* A fork or a snapshot copies sb's disk with its processes stopped: from begin to end sb
 * counts as transitioning, so calls that need it running wait for the end, no suspend
 * or resume starts, and a destroy waits (manager_destroy_deferred()). The caller
 * checked that no transition was under way. */
void manager_hold_begin(Sandbox *sb);
void manager_hold_end(Manager *m, Sandbox *sb);

/* An API call (or a follower, an attach) starts or stops using sb: while any is in
 * flight the sandbox is not idle; the end of the last one starts its idle clock. */
void sandbox_activity_begin(Sandbox *sb);
void sandbox_activity_end(Sandbox *sb);

/* The idle and TTL sweep: start once after reconcile; stop closes its timer. */
int manager_sweep_start(Manager *m);
void manager_sweep_stop(Manager *m);
