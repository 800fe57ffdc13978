/* libforge: the C client of forged's HTTP API (docs/api.md).
 *
 * Conventions:
 * - Every call returns 0 or a negative errno. When it fails and `err` is not NULL, *err
 *   says why: the HTTP status (0 when no answer came), the server's snake_case `code`
 *   (or one of libforge's own: connection_failed, timeout, interrupted, local_io,
 *   invalid_argument, bad_response, http_error) and a human sentence.
 * - Out-structs (ForgeSandbox, ForgeResult, ...) are filled only on success and are
 *   released with their *_clear() function; a cleared or zeroed struct may be cleared
 *   again.
 * - A ForgeClient keeps one connection alive between calls. It is not thread-safe: use
 *   one client per thread.
 * - Lists of "KEY=VALUE" strings (env, metadata) are NULL-terminated arrays.
 *
 * Only what this header declares is exported from the library. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FORGE_PUBLIC __attribute__((visibility("default")))

#define FORGE_VERSION "0.1.0"
#define FORGE_DEFAULT_URL "http://127.0.0.1:3456"

typedef struct ForgeClient ForgeClient;

typedef struct ForgeClientError {
        int status;        /* HTTP status of the answer, 0 if none came */
        char code[48];     /* "sandbox_not_found", "connection_failed", ... */
        char message[256]; /* one human sentence, no trailing newline */
} ForgeClientError;

/* ---- the client ---- */

/* base_url like "http://127.0.0.1:3456" (trailing slashes are ignored). */
FORGE_PUBLIC int forge_client_new(const char *base_url, ForgeClient **ret, ForgeClientError *err);
FORGE_PUBLIC void forge_client_free(ForgeClient *c);
FORGE_PUBLIC const char *forge_client_url(const ForgeClient *c);
/* connect_ms: limit for establishing the connection (default 10000).
 * request_ms: limit for a whole call, 0 for none (the default: a shell command may run
 * for as long as its own timeout says). */
FORGE_PUBLIC void forge_client_set_timeouts(ForgeClient *c, long connect_ms, long request_ms);
/* While *flag is non-zero, calls in flight abort and return -ECANCELED (code
 * "interrupted"). Meant for a flag set by a SIGINT handler. NULL turns it off. */
FORGE_PUBLIC void forge_client_set_interrupt_flag(ForgeClient *c, const volatile sig_atomic_t *flag);

/* ---- health ---- */

/* *ret_json: the server's health object as compact JSON text; free() it. */
FORGE_PUBLIC int forge_health(ForgeClient *c, char **ret_json, ForgeClientError *err);

/* ---- sandboxes ---- */

typedef struct ForgeLimits {
        double cpus;     /* 0: server default */
        long memory_mb;  /* 0: server default */
        long pids;       /* 0: server default */
        long timeout_ms; /* default per-command timeout; 0: server default */
} ForgeLimits;

typedef struct ForgeSandboxOptions {
        const char *image;    /* NULL: server default ("host") */
        const char *runtime;  /* "python", "node", "sh", "bash"; NULL: none asked for */
        const char *isolator; /* NULL: "auto" */
        const char *cwd;
        const char *name;
        ForgeLimits limits;
        const char *const *env;      /* "KEY=VALUE" list or NULL */
        const char *const *metadata; /* "KEY=VALUE" list or NULL */
} ForgeSandboxOptions;

typedef struct ForgeSandbox {
        char *id;
        char *status; /* "creating", "running", "failed" */
        char *image;
        char *isolator;
        char *name; /* NULL when the sandbox has none */
        char *cwd;
        char *reason; /* why it failed; NULL otherwise */
        char *created_at;
        char *updated_at;
        ForgeLimits limits;
        char *json; /* the whole object as the server sent it, compact JSON */
} ForgeSandbox;

typedef struct ForgeSandboxList {
        ForgeSandbox *sandboxes;
        size_t n_sandboxes;
} ForgeSandboxList;

/* opts may be NULL for all defaults. */
FORGE_PUBLIC int forge_sandbox_create(ForgeClient *c, const ForgeSandboxOptions *opts, ForgeSandbox *ret,
                                      ForgeClientError *err);
FORGE_PUBLIC int forge_sandbox_get(ForgeClient *c, const char *id, ForgeSandbox *ret, ForgeClientError *err);
/* status: filter or NULL; metadata: "KEY=VALUE" filters (all must match) or NULL. */
FORGE_PUBLIC int forge_sandbox_list(ForgeClient *c, const char *status, const char *const *metadata,
                                    ForgeSandboxList *ret, ForgeClientError *err);
FORGE_PUBLIC int forge_sandbox_destroy(ForgeClient *c, const char *id, ForgeClientError *err);
FORGE_PUBLIC void forge_sandbox_clear(ForgeSandbox *sb);
FORGE_PUBLIC void forge_sandbox_list_clear(ForgeSandboxList *list);

/* ---- commands ---- */

typedef struct ForgeRunOptions {
        const char *cwd;        /* NULL: the sandbox's */
        const char *const *env; /* "KEY=VALUE" list or NULL */
        long timeout_ms;        /* 0: the sandbox's default */
        const char *stdin_data; /* NULL: no stdin; must be UTF-8 text (the API carries JSON) */
        size_t stdin_size;
} ForgeRunOptions;

typedef struct ForgeBuffer {
        char *data; /* NUL-terminated for convenience; may hold NUL bytes before `size` */
        size_t size;
} ForgeBuffer;

typedef struct ForgeResult {
        ForgeBuffer stdout_buf;
        ForgeBuffer stderr_buf;
        int exit_code; /* 124 on timeout, 128+N when killed by signal N */
        int signal;    /* signal number that killed it, 0 if none */
        bool timed_out;
        bool truncated; /* output past the server's capture limit was dropped */
        bool oom_killed;
        long execution_ms;
} ForgeResult;

/* Runs `/bin/sh -c command` in the sandbox and waits for it. opts may be NULL. */
FORGE_PUBLIC int forge_sandbox_shell(ForgeClient *c, const char *id, const char *command,
                                     const ForgeRunOptions *opts, ForgeResult *ret, ForgeClientError *err);
/* Runs `code` with an interpreter: runtime "python", "node", "sh", "bash". */
FORGE_PUBLIC int forge_sandbox_execute(ForgeClient *c, const char *id, const char *code, const char *runtime,
                                       const ForgeRunOptions *opts, ForgeResult *ret, ForgeClientError *err);
FORGE_PUBLIC void forge_result_clear(ForgeResult *r);

/* ---- files ---- */

/* Upload: the bytes are streamed from `in` (from its current position to its end), never
 * held whole in memory. The file in the sandbox is replaced atomically; parents are
 * created. */
FORGE_PUBLIC int forge_file_put(ForgeClient *c, const char *id, const char *path, FILE *in,
                                ForgeClientError *err);
FORGE_PUBLIC int forge_file_put_fd(ForgeClient *c, const char *id, const char *path, int fd,
                                   ForgeClientError *err);
/* Download: the bytes are streamed to `out` as they arrive. On failure part of the file
 * may already have been written. */
FORGE_PUBLIC int forge_file_get(ForgeClient *c, const char *id, const char *path, FILE *out,
                                ForgeClientError *err);
FORGE_PUBLIC int forge_file_get_fd(ForgeClient *c, const char *id, const char *path, int fd,
                                   ForgeClientError *err);

typedef enum ForgeFileType {
        FORGE_FILE_OTHER,
        FORGE_FILE_REGULAR,
        FORGE_FILE_DIRECTORY,
        FORGE_FILE_SYMLINK,
} ForgeFileType;

typedef struct ForgeFileInfo {
        char *path; /* set by stat; NULL in a listing */
        char *name;
        char *link_target; /* stat of a symlink only; NULL otherwise */
        ForgeFileType type;
        uint64_t size;
        unsigned mode; /* permission bits */
        char *mtime;   /* RFC 3339 with milliseconds */
} ForgeFileInfo;

typedef struct ForgeDirList {
        char *path;
        ForgeFileInfo *entries; /* sorted by name */
        size_t n_entries;
} ForgeDirList;

FORGE_PUBLIC int forge_file_list(ForgeClient *c, const char *id, const char *path, ForgeDirList *ret,
                                 ForgeClientError *err);
FORGE_PUBLIC int forge_file_stat(ForgeClient *c, const char *id, const char *path, ForgeFileInfo *ret,
                                 ForgeClientError *err);
FORGE_PUBLIC int forge_file_mkdir(ForgeClient *c, const char *id, const char *path, bool parents,
                                  ForgeClientError *err);
FORGE_PUBLIC int forge_file_remove(ForgeClient *c, const char *id, const char *path, bool recursive,
                                   ForgeClientError *err);
FORGE_PUBLIC void forge_file_info_clear(ForgeFileInfo *info);
FORGE_PUBLIC void forge_dir_list_clear(ForgeDirList *list);
/* "file", "directory", "symlink", "other". */
FORGE_PUBLIC const char *forge_file_type_to_string(ForgeFileType t);

#ifdef __cplusplus
}
#endif
