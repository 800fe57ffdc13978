/* Suspend, resume, and the timers that do them on their own (idle, TTL).
 *
 * A suspended sandbox's processes are stopped by the isolator (the cgroup freezer for
 * ns); memory, files and the agent's connection stay. Any call that needs the sandbox
 * running goes through manager_ensure_running(), which resumes it first: concurrent
 * callers share one resume. One periodic sweep per manager (not a timer per sandbox)
 * finds idle and expired sandboxes; it costs a pass over the registry each tick. */
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
/* done runs (maybe before this returns) once sb is running, resuming it if suspended;
 * err set if it is neither running nor suspended or the resume failed. */
void manager_ensure_running(Manager *m, Sandbox *sb, SandboxDone done, void *userdata);

/* A fork or a snapshot copies sb's disk with its processes stopped: from begin to end sb
 * counts as transitioning, so calls that need it running wait for the end and no suspend
 * or resume starts. The caller checked that no transition was under way. */
void manager_hold_begin(Sandbox *sb);
void manager_hold_end(Manager *m, Sandbox *sb);

/* An API call (or a follower, an attach) starts or stops using sb: while any is in
 * flight the sandbox is not idle; the end of the last one starts its idle clock. */
void sandbox_activity_begin(Sandbox *sb);
void sandbox_activity_end(Sandbox *sb);

/* The idle and TTL sweep: start once after reconcile; stop closes its timer. */
int manager_sweep_start(Manager *m);
void manager_sweep_stop(Manager *m);
