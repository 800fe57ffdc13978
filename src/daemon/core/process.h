/* Background processes of a sandbox (the API's "processes"): a per-sandbox table of
 * commands started through exec.c, their status, the last PROCESS_RING_BYTES of stdout
 * and stderr in rings, and any number of followers reading those rings from their own
 * offsets: replay first, then live output, then the exit.
 *
 * forged always credits the agent at once, so a process never blocks on a slow reader:
 * a reader that falls behind the ring start misses bytes (on_dropped says how many).
 *
 * Processes are spawned *retained*: the sandbox's agent keeps their output and exit too,
 * so after a forged restart or a dropped agent connection, process_sync() lists them and
 * adopts them again (same pids, rings refilled from the agent's). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/core/exec.h"
#include "basic/ring.h"

#define PROCESS_RING_BYTES (1024 * 1024)
/* Finished processes kept per sandbox; older ones are forgotten. */
#define PROCESS_KEEP_FINISHED 256
/* Most retained processes adopted from one agent listing (the newest ones). */
#define PROCESS_ADOPT_MAX (PROCESS_KEEP_FINISHED + 1024)
/* After a dropped agent connection, forged tries to adopt the processes again this soon. */
#define PROCESS_RESYNC_MS 1000
/* Followers are fed at most this much per callback. */
#define PROCESS_CHUNK_BYTES (16 * 1024)

typedef enum ProcessState {
        PROCESS_RUNNING,
        PROCESS_EXITED,
        PROCESS_KILLED,
        PROCESS_TIMED_OUT,
        PROCESS_OOM_KILLED,
        _PROCESS_STATE_MAX,
} ProcessState;

typedef struct ProcessTable ProcessTable;
typedef struct ProcessFollower ProcessFollower;

typedef struct Process {
        unsigned n_ref;
        ProcessTable *table; /* NULL until it runs, and once forgotten */
        struct Process *next;
        int64_t pid;
        char **argv;
        char *cwd;
        bool pty;
        unsigned rows, cols; /* the terminal's size at the start; 0 without a PTY */
        bool stdin_open; /* stdin was asked for (or a PTY) and not closed yet */
        int64_t timeout_ms; /* 0 = none */
        ProcessState state;
        int exit_code, signal; /* once finished; as in ExecStatus */
        int64_t started_ms, ended_ms; /* wall clock; ended_ms 0 while running */
        Ring rings[2]; /* stdout, stderr */
        Exec *exec;    /* while running; NULL while its agent connection is down (process_sync() adopts it) */
        ProcessFollower *followers;
        /* until it runs: where, and who waits for the start */
        Sandbox *starting_in;
        void (*on_started)(void *userdata, struct Process *p, const ForgeError *err);
        void *started_userdata;
} Process;

const char *process_state_to_string(ProcessState s);
Process *process_ref(Process *p);
void process_unref(Process *p);
static inline Ring *process_ring(Process *p, ProtoStream stream) {
        return &p->rings[stream == PROTO_STREAM_STDERR ? 1 : 0];
}

/* Starts spec (taking its contents in every case). on_started runs once: with the process,
 * now listed in sb's table (borrowed: take a reference to keep it), or with NULL and err. */
int process_start(Manager *m, Sandbox *sb, ExecSpec *spec,
                  void (*on_started)(void *userdata, Process *p, const ForgeError *err), void *userdata,
                  ForgeError *err);

/* The process with that pid in sb (the newest if the pid was reused), or NULL. */
Process *process_find(Sandbox *sb, int64_t pid);
/* The processes of sb, oldest first: call with NULL, then with the previous one. */
Process *process_next(Sandbox *sb, Process *prev);
/* Forgets every process (sandbox_unref). */
void process_table_free(ProcessTable *t);

/* Makes sb's table match what its agent retains, then runs done (always, once; maybe
 * at once): on a connection it has not yet synced, lists the agent's retained processes,
 * adopts each one forged does not follow yet (with PID, status and output) and ends, as
 * killed, running ones the agent no longer has (the sandbox was restarted). If the agent
 * cannot be reached, done runs with the table as it is. */
void process_sync(Manager *m, Sandbox *sb, void (*done)(void *userdata), void *userdata);
/* The sandbox is being destroyed (or its agent died): processes whose connection had
 * dropped end as killed. */
void process_table_end(Sandbox *sb);

/* As exec_write_stdin; -EPIPE when the process is over or stdin is not open. */
int process_write_stdin(Process *p, const void *data, size_t len, bool close, ExecStdinDone done,
                        void *userdata);
/* -ESRCH when the process is over. SIGKILL kills the whole tree. */
int process_signal(Process *p, int sig);
/* -ENOTTY without a PTY, -ESRCH when the process is over. */
int process_resize(Process *p, unsigned rows, unsigned cols);

/* ---- following the output ---- */

typedef struct ProcessFollowerOps {
        /* Bytes of one stream. Returns how many it took: all of them, or fewer to wait for
         * the rest of a character (only when more is true: the stream may still grow). */
        size_t (*on_output)(void *userdata, ProtoStream stream, const uint8_t *data, size_t len, bool more);
        /* The reader fell behind the ring: `bytes` were dropped before it could read them. */
        void (*on_dropped)(void *userdata, ProtoStream stream, uint64_t bytes);
        /* The reader's own queue is full: no output until process_follower_wake(). */
        bool (*is_congested)(void *userdata);
        /* Last: the process ended and every byte was delivered. The follower is gone. */
        void (*on_exit)(void *userdata, Process *p);
} ProcessFollowerOps;

/* With replay, reading starts at the oldest byte the rings hold, else at their end.
 * Nothing is delivered until the first process_follower_wake(). */
ProcessFollower *process_follow(Process *p, bool replay, const ProcessFollowerOps *ops, void *userdata);
/* The reader can take more. */
void process_follower_wake(ProcessFollower *f);
/* The reader went away: no more callbacks. */
void process_follower_stop(ProcessFollower *f);
