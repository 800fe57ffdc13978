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

/* ---- images ---- */

typedef struct ForgeImage {
        char *name;
        char *created;   /* RFC 3339; NULL for the built-in host image */
        int64_t size;    /* bytes of its root; -1 when unknown (host) */
        char *runtimes;  /* the runtimes it has, comma-separated ("python,sh,bash") */
        char *json;      /* the whole image.json, compact */
} ForgeImage;

typedef struct ForgeImageList {
        ForgeImage *images;
        size_t n_images;
} ForgeImageList;

/* One progress report of a build: a phase ("parent", "copy", "sources", "resolve",
 * "download", "extract", "install", "finish"), the bytes written to the new root so far,
 * the builder's last line (may be NULL), and the image it is about (the one asked for, or
 * its parent when the build makes that first). A negative return stops following (the
 * build goes on). */
typedef struct ForgeImageProgress {
        const char *phase;
        uint64_t bytes;
        const char *message;
        const char *image;
} ForgeImageProgress;
typedef int (*ForgeImageProgressFn)(const ForgeImageProgress *p, void *userdata);

FORGE_PUBLIC int forge_image_list(ForgeClient *c, ForgeImageList *ret, ForgeClientError *err);
FORGE_PUBLIC void forge_image_list_clear(ForgeImageList *list);
/* Builds image `name` from the server's recipe of that name and waits for the end;
 * on_progress (may be NULL) sees each report. ret may be NULL. */
FORGE_PUBLIC int forge_image_build(ForgeClient *c, const char *name, ForgeImageProgressFn on_progress,
                                   void *userdata, ForgeImage *ret, ForgeClientError *err);
/* Imports the rootfs tarball at tar_path (plain or compressed) as image `name`. */
FORGE_PUBLIC int forge_image_import(ForgeClient *c, const char *name, const char *tar_path, ForgeImage *ret,
                                    ForgeClientError *err);
/* Refused (image_in_use) while a sandbox uses it. */
FORGE_PUBLIC int forge_image_remove(ForgeClient *c, const char *name, ForgeClientError *err);
FORGE_PUBLIC void forge_image_clear(ForgeImage *img);

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

/* ---- processes (background commands, live output, terminals) ---- */

typedef struct ForgeProcessOptions {
        /* Exactly one: `command` runs under /bin/sh -c, `argv` (NULL-terminated) as given. */
        const char *command;
        const char *const *argv;
        const char *cwd;        /* NULL: the sandbox's */
        const char *const *env; /* "KEY=VALUE" list or NULL */
        bool stdin_open;        /* keep stdin open for forge_process_write_stdin() */
        unsigned pty_rows;      /* both > 0: run on a fresh pseudo-terminal of that size */
        unsigned pty_cols;
        long timeout_ms; /* 0: none */
} ForgeProcessOptions;

typedef struct ForgeProcess {
        long pid;   /* inside the sandbox */
        char **argv; /* NULL-terminated */
        char *cwd;
        bool pty;
        char *status;  /* "running", "exited", "killed", "timed_out", "oom_killed" */
        bool running;  /* status is "running" */
        int exit_code; /* -1 while running or when killed without one */
        int signal;    /* signal number that killed it, 0 if none */
        char *started_at;
        char *ended_at; /* NULL while running */
        uint64_t stdout_dropped, stderr_dropped;
        char *json; /* the whole object as the server sent it, compact JSON */
} ForgeProcess;

typedef struct ForgeProcessList {
        ForgeProcess *processes;
        size_t n_processes;
} ForgeProcessList;

FORGE_PUBLIC int forge_process_start(ForgeClient *c, const char *id, const ForgeProcessOptions *opts,
                                     ForgeProcess *ret, ForgeClientError *err);
FORGE_PUBLIC int forge_process_get(ForgeClient *c, const char *id, long pid, ForgeProcess *ret,
                                   ForgeClientError *err);
FORGE_PUBLIC int forge_process_list(ForgeClient *c, const char *id, ForgeProcessList *ret, ForgeClientError *err);
/* Sends signal `sig` (a number, sent by name) to the process. */
FORGE_PUBLIC int forge_process_signal(ForgeClient *c, const char *id, long pid, int sig, ForgeClientError *err);
/* Kills the process's whole tree. */
FORGE_PUBLIC int forge_process_kill(ForgeClient *c, const char *id, long pid, ForgeClientError *err);
/* Writes bytes (any bytes: they travel base64-encoded) to the process's stdin, then closes
 * it when `close` is set; size 0 with `close` only closes. */
FORGE_PUBLIC int forge_process_write_stdin(ForgeClient *c, const char *id, long pid, const void *data,
                                           size_t size, bool close, ForgeClientError *err);
/* Copies fd to the process's stdin until end-of-file, in one request per read(), then
 * closes stdin. Blocks; meant for a helper process or thread of the caller's. */
FORGE_PUBLIC int forge_process_pipe_stdin(ForgeClient *c, const char *id, long pid, int fd,
                                          ForgeClientError *err);
/* The exit status a shell would report: 124 on timeout, 128+N for signal N, else the
 * exit code (-1 while running). */
FORGE_PUBLIC int forge_process_exit_status(const ForgeProcess *p);
FORGE_PUBLIC void forge_process_clear(ForgeProcess *p);
FORGE_PUBLIC void forge_process_list_clear(ForgeProcessList *list);

/* What the output rings hold now (no waiting). The server sends text, so invalid UTF-8
 * arrives replaced; follow with base64 for exact bytes. */
typedef struct ForgeProcessOutput {
        ForgeBuffer stdout_buf;
        ForgeBuffer stderr_buf;
        uint64_t stdout_dropped, stderr_dropped;
        char *status;
} ForgeProcessOutput;

FORGE_PUBLIC int forge_process_output(ForgeClient *c, const char *id, long pid, ForgeProcessOutput *ret,
                                      ForgeClientError *err);
FORGE_PUBLIC void forge_process_output_clear(ForgeProcessOutput *o);

typedef enum ForgeProcessEventType {
        FORGE_EVENT_STDOUT,
        FORGE_EVENT_STDERR,
        FORGE_EVENT_DROPPED, /* a slow reader missed `dropped` bytes of `stream` */
        FORGE_EVENT_EXIT,    /* the last event: `process` is the final process object */
} ForgeProcessEventType;

typedef struct ForgeProcessEvent {
        ForgeProcessEventType type;
        const char *data; /* STDOUT/STDERR: the bytes, decoded */
        size_t size;
        const char *stream; /* DROPPED: "stdout" or "stderr" */
        uint64_t dropped;
        const ForgeProcess *process; /* EXIT */
} ForgeProcessEvent;

/* Called once per event; a negative return stops the follow and is returned by it. The
 * event and what it points to live until the callback returns. */
typedef int (*ForgeProcessEventFn)(const ForgeProcessEvent *ev, void *userdata);

typedef enum ForgeOutputEncoding {
        FORGE_ENCODING_BASE64, /* exact bytes (the default) */
        FORGE_ENCODING_TEXT,   /* UTF-8 text, invalid bytes replaced; less to transfer */
} ForgeOutputEncoding;

/* Streams the process's output: first what the rings hold, then live, until the exit
 * event (returns 0 after it) or the callback stops it. An unknown event is skipped. */
FORGE_PUBLIC int forge_process_follow(ForgeClient *c, const char *id, long pid, ForgeOutputEncoding encoding,
                                      ForgeProcessEventFn on_event, void *userdata, ForgeClientError *err);

/* ---- attach: a process's terminal over a WebSocket ----
 *
 * A non-blocking session the caller drives from its own poll loop:
 *   poll forge_attach_fd() for forge_attach_poll_events(), then call
 *   forge_attach_dispatch() with what poll returned. It calls on_output for terminal
 *   bytes and on_exit once with the final process object, and returns 1 once the
 *   connection is closed (0 while it is open, or -errno). Input and resizes are queued
 *   and written by later dispatches. */
typedef struct ForgeAttach ForgeAttach;

typedef struct ForgeAttachCallbacks {
        /* Terminal output; a negative return ends the session with that error. */
        int (*on_output)(const void *bytes, size_t size, void *userdata);
        void (*on_exit)(const ForgeProcess *p, void *userdata);
} ForgeAttachCallbacks;

FORGE_PUBLIC int forge_attach_open(ForgeClient *c, const char *id, long pid, const ForgeAttachCallbacks *cbs,
                                   void *userdata, ForgeAttach **ret, ForgeClientError *err);
FORGE_PUBLIC int forge_attach_fd(const ForgeAttach *a);
FORGE_PUBLIC short forge_attach_poll_events(const ForgeAttach *a);
FORGE_PUBLIC int forge_attach_dispatch(ForgeAttach *a, short revents, ForgeClientError *err);
/* Queues terminal input. */
FORGE_PUBLIC int forge_attach_send(ForgeAttach *a, const void *bytes, size_t size);
FORGE_PUBLIC int forge_attach_resize(ForgeAttach *a, unsigned rows, unsigned cols);
/* Bytes queued and not yet written (to stop reading input while it is large). */
FORGE_PUBLIC size_t forge_attach_pending(const ForgeAttach *a);
/* Queues a close frame; dispatch returns 1 once the server has answered it. */
FORGE_PUBLIC int forge_attach_close(ForgeAttach *a);
FORGE_PUBLIC void forge_attach_free(ForgeAttach *a);

#ifdef __cplusplus
}
#endif
