/* Snapshots: a sandbox saved under $STATE/snapshots/<id>/ (the files its isolator's
 * snapshot() wrote, and snapshot.json, written last, so a snapshot without it never
 * finished). New sandboxes start from one with `from_snapshot`; a snapshot is
 * independent of its sandbox, which may be destroyed. It holds the filesystem always,
 * memory and processes where the isolator saves them (qemu: yes, ns: no;
 * docs/snapshots.md). */
#pragma once

#include "daemon/core/manager.h"

/* "snap-" and 10 letters or digits. */
#define SNAPSHOT_ID_MAX 15

typedef struct Snapshot {
        char id[SNAPSHOT_ID_MAX + 1];
        char *image;
        const IsolatorOps *isolator;
        int64_t disk_mb;
        uid_t uid_base; /* of the sandbox that wrote the disk */
        /* With memory, the machine it restores: a sandbox from it has these limits. */
        bool memory;
        int64_t memory_mb, cpus_milli;
        char *dir; /* what create's plan->from_dir gets */
} Snapshot;

void snapshot_done(Snapshot *s);
/* -ENOENT with snapshot_not_found for unknown (or malformed) ids. */
int snapshot_load(Manager *m, const char *id, Snapshot *ret, ForgeError *err);

/* done gets the snapshot as the API shows it (a new reference), or err. */
typedef void (*SnapshotDone)(json_t *snapshot, const ForgeError *err, void *userdata);
/* Saves sb (its processes stop for the copy). name may be NULL. On error
 * nothing was started and done is not called. */
int manager_snapshot(Manager *m, Sandbox *sb, const char *name, SnapshotDone done, void *userdata,
                     ForgeError *err);

/* {"snapshots": [...]}, oldest first. */
json_t *snapshots_list(Manager *m);
int snapshot_get(Manager *m, const char *id, json_t **ret, ForgeError *err);
int snapshot_delete(Manager *m, const char *id, ForgeError *err);
/* How many snapshots name `image` (a snapshot needs its image to start sandboxes from),
 * with the id of one of them in ret_first. Reads their records. */
size_t snapshots_of_image(Manager *m, const char *image, char ret_first[SNAPSHOT_ID_MAX + 1]);
/* At start: removes snapshots that never finished. */
void snapshots_reconcile(Manager *m);
