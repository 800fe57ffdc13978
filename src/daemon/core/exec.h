/* Running one command in a sandbox and collecting its result (the `shell` and `execute`
 * routes): spawn through the agent, capture output up to a cap, feed stdin, enforce the
 * timeout, notice OOM kills. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic/error.h"
#include "daemon/core/manager.h"

/* Captured bytes per stream; the rest is dropped and the result says `truncated`. */
#define EXEC_OUTPUT_CAP (1024 * 1024)
/* How long forged waits past a command's timeout for the agent's own report. */
#define EXEC_TIMEOUT_GRACE_MS 10000

typedef struct ExecSpec {
        char **argv;  /* NULL-terminated */
        char **env;   /* NULL-terminated "K=V", complete (see exec_build_env) */
        char *cwd;
        uint8_t *stdin_data; /* NULL = stdin is /dev/null */
        size_t stdin_len;
        int64_t timeout_ms; /* 0 = none */
        /* execute: code written to code_path before the spawn, removed after */
        char *code_path;
        uint8_t *code;
        size_t code_len;
} ExecSpec;

void exec_spec_done(ExecSpec *spec);

typedef struct ExecResult {
        const uint8_t *out, *err;
        size_t out_len, err_len;
        bool truncated, timed_out, oom_killed;
        int exit_code; /* 128 + signal when killed, 124 when timed out */
        int signal;    /* 0 unless killed by a signal */
        int64_t duration_ms;
} ExecResult;

/* result is NULL when the command could not run (err says why). */
typedef void (*ExecDone)(void *userdata, const ExecResult *result, const ForgeError *err);

typedef struct Exec Exec;

/* Takes the contents of *spec in every case. */
int exec_start(Manager *m, Sandbox *sb, ExecSpec *spec, ExecDone done, void *userdata, Exec **ret,
               ForgeError *err);
/* The caller is gone: kill the command; done will not run. */
void exec_abandon(Exec *e);

/* PATH, HOME, ... then the sandbox's env, then `extra` (a JSON object of strings, may be
 * NULL). Returns a NULL-terminated array or NULL on ENOMEM. */
char **exec_build_env(const Sandbox *sb, json_t *extra);
void strv_free(char **v);
