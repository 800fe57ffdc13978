/* Running one command in a sandbox through its agent: spawn (pipes or a PTY), stream its
 * output to the caller, feed stdin under the agent's credit, signals and resizes, the
 * timeout backstop, and how it ended (exit code, signal, timeout, OOM kill).
 *
 * Two callers build on it: the `shell`/`execute` routes, which capture the output into
 * an ExecResult (the capture helpers below), and background processes (process.c),
 * which keep it in rings for any number of readers. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic/error.h"
#include "daemon/core/manager.h"
#include "proto/proto.h"

/* Captured bytes per stream; the rest is dropped and the result says `truncated`. */
#define EXEC_OUTPUT_CAP (1024 * 1024)
/* How long forged waits past a command's timeout for the agent's own report. */
#define EXEC_TIMEOUT_GRACE_MS 10000

typedef struct ExecSpec {
        char **argv;  /* NULL-terminated */
        char **env;   /* NULL-terminated "K=V", complete (see exec_build_env) */
        char *cwd;
        uint8_t *stdin_data; /* written first, then stdin is closed; NULL = none */
        size_t stdin_len;
        bool stdin_open;     /* keep stdin open for exec_write_stdin() */
        unsigned pty_rows, pty_cols; /* both 0 = pipes; else a terminal (stdin open too) */
        int64_t timeout_ms;  /* 0 = none */
        /* processes: the agent keeps the command's output and exit across connections and
         * forged restarts (docs/agent-protocol.md), with meta, forged's own description */
        bool retain;
        char *meta;
        /* execute: code written to code_path before the spawn, removed after */
        char *code_path;
        uint8_t *code;
        size_t code_len;
} ExecSpec;

void exec_spec_done(ExecSpec *spec);

/* How a command ended. */
typedef struct ExecStatus {
        bool timed_out, oom_killed;
        int exit_code; /* 128 + signal when killed, 124 when timed out */
        int signal;    /* 0 unless killed by a signal */
        int64_t duration_ms;
} ExecStatus;

typedef struct ExecOps {
        /* The command runs (optional): its pid inside the sandbox. */
        void (*on_spawned)(void *userdata, int64_t pid);
        /* Output bytes. Return true to give the agent its credit back now, false to do it
         * later with exec_credit() (the command blocks meanwhile). */
        bool (*on_output)(void *userdata, ProtoStream stream, const uint8_t *data, size_t len);
        /* Once, last: status is NULL when the command could not run or the agent went
         * away (err says why). The Exec is gone when this returns. */
        void (*on_exit)(void *userdata, const ExecStatus *status, const ForgeError *err);
        /* Instead of on_exit, for a retained command whose agent connection dropped while
         * the sandbox lives: it still runs, and exec_adopt() finds it again. The Exec is
         * gone when this returns. */
        void (*on_detached)(void *userdata);
        /* exec_adopt(): the agent replays the output from these offsets (stdout, stderr),
         * before any on_output. */
        void (*on_adopted)(void *userdata, const uint64_t start[2]);
} ExecOps;

typedef struct Exec Exec;

/* Takes the contents of *spec in every case. */
int exec_start(Manager *m, Sandbox *sb, ExecSpec *spec, const ExecOps *ops, void *userdata, Exec **ret,
               ForgeError *err);
/* A retained command the agent kept, attached again on a fresh channel as a new Exec:
 * the agent replays its output from `from` (stdout, stderr), then sends it live, then the
 * exit. spec describes it (argv, pty size, stdin_open, timeout_ms as what is left of it).
 * on_adopted runs first; on_spawned does not. Takes the contents of *spec. */
int exec_adopt(Manager *m, Sandbox *sb, ExecSpec *spec, int64_t pid, const uint64_t from[2], const ExecOps *ops,
               void *userdata, Exec **ret, ForgeError *err);
/* The caller is gone: kill the command's tree; no callback runs any more. */
void exec_abandon(Exec *e);

/* Queues bytes for stdin (copied), sent as the agent grants credit; with close, stdin is
 * closed after them. done (optional) runs once: 0 when the bytes went to the agent,
 * -EPIPE if the command ended first. Returns -EPIPE at once when stdin is not open or a
 * close was already queued, -ENOMEM. */
typedef void (*ExecStdinDone)(void *userdata, int status);
int exec_write_stdin(Exec *e, const void *data, size_t len, bool close, ExecStdinDone done, void *userdata);
/* A signal to the command's process group; SIGKILL kills the whole tree. */
int exec_signal(Exec *e, int sig);
int exec_resize(Exec *e, unsigned rows, unsigned cols);
/* Gives back credit withheld by on_output. */
void exec_credit(Exec *e, ProtoStream stream, size_t len);

/* PATH, HOME, ... (TERM=xterm-256color for a terminal, else dumb), then the sandbox's env,
 * then `extra` (a JSON object of strings, may be NULL). Returns a NULL-terminated array or
 * NULL on ENOMEM. */
char **exec_build_env(const Sandbox *sb, json_t *extra, bool tty);
void strv_free(char **v);

/* ---- capturing output for a result object ---- */

typedef struct ExecCapture {
        uint8_t *data;
        size_t len, cap;
        bool truncated; /* bytes past EXEC_OUTPUT_CAP (or memory) were dropped */
} ExecCapture;

void exec_capture_append(ExecCapture *c, const uint8_t *data, size_t len);
void exec_capture_done(ExecCapture *c);

typedef struct ExecResult {
        const uint8_t *out, *err;
        size_t out_len, err_len;
        bool truncated, timed_out, oom_killed;
        int exit_code;
        int signal;
        int64_t duration_ms;
} ExecResult;

ExecResult exec_result(const ExecCapture *out, const ExecCapture *err, const ExecStatus *status);
