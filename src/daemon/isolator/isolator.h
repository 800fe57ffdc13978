/* The isolator ops table: how a sandbox is made. core/ includes this header only,
 * never an isolator's own header (DESIGN.md section 5).
 *
 * All ops are blocking and may run on a libuv worker thread; they must be safe to call
 * concurrently for different sandboxes. Every op is idempotent enough to be retried by
 * reconcile after forged died at any point: destroy() in particular must succeed on a
 * half-created or already-destroyed sandbox. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/error.h"

#define SANDBOX_ID_MAX 32

typedef struct SandboxLimits {
        int64_t cpus_milli; /* 1000 = one CPU; 0 = no limit */
        int64_t memory_mb;  /* 0 = no limit */
        int64_t disk_mb;    /* 0 = no limit */
        int64_t pids;       /* 0 = no limit */
        int64_t timeout_ms; /* default per-command wall clock; 0 = none */
} SandboxLimits;

/* Everything an isolator needs, decided and validated by the daemon. Plain data. */
typedef struct SandboxPlan {
        char id[SANDBOX_ID_MAX + 1];
        const char *dir;          /* $STATE/sandboxes/<id>, exists, owned by root, 0700 */
        const char *image_name;   /* "host" or an image under $STATE/images */
        const char *image_rootfs; /* $STATE/images/<name>/rootfs */
        const char *agent_path;   /* host path of the static forge-agent */
        /* Host paths bound read-only at the same place inside (the `host` image's /usr);
         * NULL-terminated, may be NULL. */
        const char *const *ro_binds;
        const char *hostname;     /* the sandbox's UTS hostname (its id) */
        uid_t uid_base;           /* root inside maps to uid_base outside */
        uint32_t uid_count;       /* size of the mapped range */
        SandboxLimits limits;
        /* create: start from what snapshot() saved in this directory instead of an empty
         * sandbox; NULL = empty. It was saved by a sandbox whose root was from_uid_base.
         * With from_move the directory is this sandbox's own (a fork's copy) and its files
         * may be moved into place; otherwise they are copied and left as they are. */
        const char *from_dir;
        uid_t from_uid_base;
        bool from_move;
} SandboxPlan;

typedef struct SandboxUsage {
        uint64_t cpu_usec;
        uint64_t memory_bytes;
        uint64_t memory_peak_bytes;
        uint64_t pids;
        uint64_t oom_kills; /* monotonically increasing count of OOM kills in the sandbox */
        int64_t disk_bytes; /* used on the sandbox's own disk; -1 when it has none */
} SandboxUsage;

typedef struct IsolatorOps {
        const char *name;
        /* Once at start: state_dir names this forged instance (host-wide resources such
         * as cgroups are kept apart per instance). */
        int (*init)(const char *state_dir, ForgeError *err);
        /* Once at a clean exit: releases what init set up, where no sandbox needs it. */
        void (*fini)(void);
        /* 0 if usable on this host, else -errno with *err saying why. */
        int (*available)(ForgeError *err);
        /* For `auto`: 0 if this isolator should be the default on this host (with state
         * in state_dir; why->message may say why), else -errno with *why set; NULL for
         * the fallback (ns). */
        int (*preferred)(const char *state_dir, ForgeError *why);
        /* Prepares host-side resources (dirs, cgroups); idempotent. */
        int (*create)(const SandboxPlan *plan, ForgeError *err);
        /* Boots the agent; returns once the agent's socket accepts connections. */
        int (*start)(const SandboxPlan *plan, ForgeError *err);
        /* A connected, non-blocking, CLOEXEC stream to the agent. */
        int (*connect)(const SandboxPlan *plan, int *ret_fd);
        /* 1 if the sandbox's agent process is alive, 0 if not. */
        int (*is_alive)(const SandboxPlan *plan);
        int (*stats)(const SandboxPlan *plan, SandboxUsage *ret);
        /* Stops every process of the sandbox where it stands (memory and files stay) and
         * returns once all are stopped; resume lets them go on. Both idempotent. */
        int (*suspend)(const SandboxPlan *plan);
        int (*resume)(const SandboxPlan *plan);
        /* Saves the sandbox into dest, an empty directory, in files that create's
         * plan->from_dir accepts: its filesystem (what its writable layer holds) always,
         * its memory and processes too where snapshots_memory says so. The caller has
         * stopped the sandbox's processes (suspend) and resumes them after. NULL where the
         * isolator cannot. */
        int (*snapshot)(const SandboxPlan *plan, const char *dest, ForgeError *err);
        /* Saves the suspended sandbox's whole machine (memory, processes) to a file in
         * its dir and ends what holds it in memory, so that it costs the host disk only;
         * resume() loads it again and the processes go on. is_alive() stays 1 and
         * suspend() a no-op meanwhile. NULL where the isolator keeps no machine. */
        int (*hibernate)(const SandboxPlan *plan, ForgeError *err);
        /* The sandbox's wall clock stands still while it is suspended (a VM's own
         * kernel keeps it): after a resume forged sets it from the host's through the
         * agent (PROTO_OP_CLOCK_SET) before anything else reaches the agent. */
        bool clock_stops;
        /* snapshot() saves the running machine (memory, processes), and a sandbox created
         * from it goes on where it stood instead of starting anew. */
        bool snapshots_memory;
        /* Kills every process and removes host-side resources except the sandbox dir. */
        int (*destroy)(const SandboxPlan *plan);
        /* Removes resources (cgroups, processes) of sandboxes for which known() is false. */
        int (*reap_unknown)(bool (*known)(const char *id, void *userdata), void *userdata);
        /* The image is gone (no sandbox uses it): drops what the isolator made of it (a
         * VM's disk of its rootfs). Cheap: runs on the loop thread. NULL for nothing. */
        void (*image_removed)(const char *image_name);
} IsolatorOps;

extern const IsolatorOps isolator_ns;
extern const IsolatorOps isolator_qemu;

/* "ns" or "qemu"; NULL if unknown. */
const IsolatorOps *isolator_by_name(const char *name);

/* `auto`: the strongest isolator this host runs well, and in why a sentence saying why
 * (for the log). */
const IsolatorOps *isolator_auto(const char *state_dir, char *why, size_t size);

/* Once at start: inits required (its failure is returned) and every other isolator this
 * host can run (a failure there only makes that one unavailable). */
int isolator_init_all(const IsolatorOps *required, const char *state_dir, ForgeError *err);
void isolator_fini_all(void);
/* Initialized by isolator_init_all, so sandboxes may use it. */
bool isolator_is_ready(const IsolatorOps *iso);
/* Names of the ready isolators, NULL-terminated (for GET /health). */
const char *const *isolator_ready_names(void);
/* For a sandbox whose isolator is unknown (no usable record): destroy() of every ready
 * isolator, each of which finds nothing of its own and succeeds. */
int isolator_destroy_any(const SandboxPlan *plan);
/* image_removed() of every ready isolator that has one. */
void isolator_image_removed_all(const char *image_name);
/* reap_unknown() of every ready isolator. */
int isolator_reap_unknown_all(bool (*known)(const char *id, void *userdata), void *userdata);
