/* The warm pool (forged --pool N): sandboxes of the default image and limits made ahead
 * of time, one after another, and handed out by manager_create() to creates that ask for
 * exactly that. A warm sandbox was never anyone's: it is not listed, not found by id,
 * never swept, and becomes a client's only once, as if created at that moment. Warm
 * sandboxes count against --max-sandboxes; those of a previous run are destroyed at
 * reconcile and made again, so the pool never holds anything older than this forged. */
#pragma once

#include "daemon/core/manager.h"

/* Takes a reference to sb. */
int pool_add(Manager *m, Sandbox *sb);
void pool_remove(Manager *m, Sandbox *sb);
/* A ready warm sandbox that fits spec (whose image resolved to image), out of the pool;
 * the caller gets the pool's reference. NULL if none fits. */
Sandbox *pool_take(Manager *m, const CreateSpec *spec, const char *image);
/* Starts the next warm sandbox if the pool is short and the sandbox limit allows. */
void pool_fill(Manager *m);
/* Once reconcile is done: the first refills. */
void pool_start(Manager *m);
/* How many are ready (the forge_pool_size gauge). */
unsigned pool_ready(const Manager *m);
/* At a clean exit: destroys the ready warm sandboxes (blocking) and drops the rest, which
 * the next reconcile removes. */
void pool_drain(Manager *m);
