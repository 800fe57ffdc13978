/* forgectl internals shared between its files (prefix `forgectl_`). Each command is
 * split in two: a parser from argv to a plain struct (no network, unit-tested) and a
 * runner that maps that struct onto libforge calls. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

#include "basic/macros.h"
#include "forge/forge.h"

enum {
        FORGECTL_EXIT_OK = 0,
        FORGECTL_EXIT_FAILURE = 1, /* the server or the connection said no */
        FORGECTL_EXIT_USAGE = 2,
        FORGECTL_EXIT_TIMEOUT = 124, /* as timeout(1) */
};

/* What a parser returns besides 0 and -EINVAL (bad usage, already reported). */
#define FORGECTL_HELP 1

/* ---- forgectl.c: the tool ---- */

typedef struct ForgectlContext {
        const char *url;
        ForgeClient *client; /* made on first use, so --help needs no server */
} ForgectlContext;

int forgectl_main(int argc, char **argv);
/* The client for ctx->url; reports a failure itself. */
int forgectl_client(ForgectlContext *ctx, ForgeClient **ret);
/* Prints "forgectl: <message> (<code>)" and returns FORGECTL_EXIT_FAILURE. */
int forgectl_report(const ForgeClientError *err, int r);
/* Prints "forgectl <cmd>: <message>" and a hint to --help; returns -EINVAL. */
int forgectl_usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);

/* ---- args.c: parsing helpers ---- */

typedef struct ForgectlOption {
        const char *long_name; /* without the dashes */
        char short_name;       /* 0 for none */
        bool takes_value;
        int id; /* > 0 */
} ForgectlOption;

typedef struct ForgectlArgs {
        const char *cmd; /* for messages */
        int argc;
        char **argv;
        int index;          /* next argv element to look at */
        const char *bundle; /* the rest of "-xy" after the flag returned last */
} ForgectlArgs;

/* Kept apart from option ids (> 0) and -errno values. */
enum {
        FORGECTL_ARG_END = 0,         /* nothing left */
        FORGECTL_ARG_OPERAND = -1000, /* *ret_value is a non-option argument */
        FORGECTL_ARG_DASHDASH = -1001 /* "--": the rest (from a->index) is not ours */
};

/* argv[0] is the command name and is skipped. */
void forgectl_args_init(ForgectlArgs *a, const char *cmd, int argc, char **argv);
/* The next option's id (with *ret_value set when it takes one: "--opt V", "--opt=V",
 * "-o V"), or one of FORGECTL_ARG_*, or -EINVAL after reporting an unknown option or a
 * missing value. "-h"/"--help" must be in the table if the command wants them. */
int forgectl_args_next(ForgectlArgs *a, const ForgectlOption *opts, const char **ret_value);

int forgectl_parse_long(const char *cmd, const char *opt, const char *value, long min, long *ret);
int forgectl_parse_cpus(const char *cmd, const char *value, double *ret);
/* Checks "KEY=VALUE" (non-empty key) and appends it to a NULL-terminated list. */
int forgectl_strv_push_pair(const char *cmd, const char *opt, const char *value, const char ***list);
/* Appends to a NULL-terminated list of borrowed strings. */
int forgectl_strv_push(const char ***list, const char *s);

/* Quotes s for /bin/sh: 'it'\''s'. */
char *forgectl_shell_quote(const char *s);
/* One argument: as-is (so `-- 'ls | wc -l'` is a shell line); more: each quoted, joined
 * by spaces. */
char *forgectl_shell_join(int argc, char *const *argv);

/* "ID:PATH" → id and path (both allocated). Returns 1 when s names a sandbox path, 0 when
 * it is a local path (no ':' before the first '/'), -ENOMEM. */
int forgectl_split_remote(const char *s, char **ret_id, char **ret_path);

/* The exit status a finished command maps to: 124 on timeout, 128+N for signal N. */
int forgectl_exit_status(const ForgeResult *r);

/* ---- the commands (cmd-*.c) ---- */

typedef struct ForgectlCreateArgs {
        ForgeSandboxOptions options;
        const char **env;      /* owned array of borrowed strings */
        const char **metadata; /* same */
} ForgectlCreateArgs;

typedef struct ForgectlExecArgs {
        const char *id;
        ForgeRunOptions options;
        const char **env;
        bool read_stdin;
        bool tty;      /* -t: run on a pseudo-terminal, attached to ours */
        char *command; /* the shell line, allocated */
} ForgectlExecArgs;

typedef struct ForgectlRunArgs {
        ForgectlCreateArgs create;
        ForgectlExecArgs exec; /* id unused */
} ForgectlRunArgs;

typedef struct ForgectlCpArgs {
        char *src_id, *src_path; /* src_id NULL: local */
        char *dst_id, *dst_path; /* dst_id NULL: local */
} ForgectlCpArgs;

/* The options `create` and `run` share: ids below 100, so commands can add their own. */
enum {
        FORGECTL_OPT_HELP = 1,
        FORGECTL_OPT_IMAGE,
        FORGECTL_OPT_RUNTIME,
        FORGECTL_OPT_ISOLATOR,
        FORGECTL_OPT_CPUS,
        FORGECTL_OPT_MEMORY,
        FORGECTL_OPT_PIDS,
        FORGECTL_OPT_TIMEOUT,
        FORGECTL_OPT_ENV,
        FORGECTL_OPT_METADATA,
        FORGECTL_OPT_NAME,
        FORGECTL_OPT_CWD,
};
// clang-format off
#define FORGECTL_CREATE_OPTIONS                                        \
        {"help", 'h', false, FORGECTL_OPT_HELP},                       \
        {"image", 0, true, FORGECTL_OPT_IMAGE},                        \
        {"runtime", 0, true, FORGECTL_OPT_RUNTIME},                    \
        {"isolator", 0, true, FORGECTL_OPT_ISOLATOR},                  \
        {"cpus", 0, true, FORGECTL_OPT_CPUS},                          \
        {"memory", 0, true, FORGECTL_OPT_MEMORY},                      \
        {"pids", 0, true, FORGECTL_OPT_PIDS},                          \
        {"timeout-ms", 0, true, FORGECTL_OPT_TIMEOUT},                 \
        {"env", 'e', true, FORGECTL_OPT_ENV},                          \
        {"metadata", 0, true, FORGECTL_OPT_METADATA},                  \
        {"name", 0, true, FORGECTL_OPT_NAME},                          \
        {"cwd", 0, true, FORGECTL_OPT_CWD}
// clang-format on
/* Applies one of FORGECTL_CREATE_OPTIONS (not help) to a. */
int forgectl_create_option(ForgectlCreateArgs *a, const char *cmd, int id, const char *value);
void forgectl_create_args_done(ForgectlCreateArgs *a);
void forgectl_exec_args_done(ForgectlExecArgs *a);
void forgectl_run_args_done(ForgectlRunArgs *a);
void forgectl_cp_args_done(ForgectlCpArgs *a);

int forgectl_parse_create(int argc, char **argv, ForgectlCreateArgs *ret);
int forgectl_parse_exec(int argc, char **argv, ForgectlExecArgs *ret);
int forgectl_parse_run(int argc, char **argv, ForgectlRunArgs *ret);
int forgectl_parse_cp(int argc, char **argv, ForgectlCpArgs *ret);

/* start, shell, logs, kill */
typedef struct ForgectlStartArgs {
        const char *id;
        ForgeProcessOptions options;
        const char **env;
        bool pty;
        char *command; /* the shell line, allocated */
} ForgectlStartArgs;

typedef struct ForgectlShellArgs {
        const char *id;
        const char *cwd;
        const char **env;
} ForgectlShellArgs;

typedef struct ForgectlLogsArgs {
        const char *id;
        long pid;
        bool follow;
} ForgectlLogsArgs;

typedef struct ForgectlKillArgs {
        const char *id;
        long pid;
        int signal; /* 0: kill the whole tree (DELETE) */
} ForgectlKillArgs;

void forgectl_start_args_done(ForgectlStartArgs *a);
void forgectl_shell_args_done(ForgectlShellArgs *a);
int forgectl_parse_start(int argc, char **argv, ForgectlStartArgs *ret);
int forgectl_parse_shell(int argc, char **argv, ForgectlShellArgs *ret);
int forgectl_parse_logs(int argc, char **argv, ForgectlLogsArgs *ret);
int forgectl_parse_kill(int argc, char **argv, ForgectlKillArgs *ret);
/* "TERM", "SIGTERM", "15" → 15; -EINVAL (reported) otherwise. */
int forgectl_parse_signal(const char *cmd, const char *value, int *ret);
int forgectl_parse_pid(const char *cmd, const char *value, long *ret);

/* vm setup (cmd-vm.c): local, no server */
typedef struct ForgectlVmArgs {
        const char *action; /* "setup" */
        const char *state_dir;
        const char *agent; /* NULL: the forge-agent beside forgectl */
} ForgectlVmArgs;

int forgectl_parse_vm(int argc, char **argv, ForgectlVmArgs *ret);

/* ---- tty.c: the local terminal ---- */

/* What cfmakeraw does, spelled out: no line editing, echo, signals from keys, flow
 * control or output processing (the remote pty does that); 8-bit, read returns at the
 * first byte. */
void forgectl_termios_make_raw(struct termios *t);
/* Puts the terminal on fd in raw mode and remembers how it was; forgectl_tty_restore()
 * (async-signal-safe, idempotent, also run at exit) puts it back. */
int forgectl_tty_raw_enter(int fd);
void forgectl_tty_restore(void);
/* The window size of the first of fds that is a terminal; 24x80 if none is. */
void forgectl_tty_size(const int *fds, size_t n, unsigned *ret_rows, unsigned *ret_cols);

/* ---- session.c: a remote process wired to our stdin/stdout ---- */

/* Attaches to process `pid` (started with a pty) and runs the terminal session until it
 * exits: raw mode when stdin is a terminal and forwarded, SIGWINCH becomes a resize,
 * SIGINT/SIGTERM/SIGHUP end the session (and, with kill_on_signal, the process). Returns
 * the exit status to exit with. */
int forgectl_session_attach(ForgeClient *c, const char *id, long pid, bool forward_stdin, bool kill_on_signal);
/* For a process without a pty: follows its output to our stdout/stderr while a child
 * process copies our stdin to its stdin (when forward_stdin). Returns the exit status. */
int forgectl_session_stream(ForgeClient *c, const char *id, long pid, bool forward_stdin, bool kill_on_signal);
/* Starts `command` on a pty of our window's size (TERM ours) and attaches to it; the
 * process is killed if forgectl is. Returns the exit status. */
int forgectl_terminal_run(ForgectlContext *ctx, const char *id, const char *command, const char *cwd,
                          const char *const *env, long timeout_ms, bool forward_stdin);
/* The exit status a finished process maps to (as forgectl_exit_status). */
int forgectl_process_exit_status(const ForgeProcess *p);

/* image build|ls|rm|import */
typedef enum ForgectlImageCommand {
        FORGECTL_IMAGE_BUILD,
        FORGECTL_IMAGE_LS,
        FORGECTL_IMAGE_RM,
        FORGECTL_IMAGE_IMPORT,
} ForgectlImageCommand;

typedef struct ForgectlImageArgs {
        ForgectlImageCommand cmd;
        const char **operands; /* after the subcommand; owned array of borrowed strings */
} ForgectlImageArgs;

int forgectl_parse_image(int argc, char **argv, ForgectlImageArgs *ret);
void forgectl_image_args_done(ForgectlImageArgs *a);

/* Each runs a command from its argv (argv[0] = the command name) and returns the exit
 * status. */
int forgectl_cmd_create(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_get(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_ls(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_rm(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_health(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_vm(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_exec(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_run(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_cp(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_mkdir(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_start(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_ps(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_logs(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_kill(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_shell(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_attach(ForgectlContext *ctx, int argc, char **argv);
int forgectl_cmd_image(ForgectlContext *ctx, int argc, char **argv);
/* ls ID:PATH, reached through ls. */
int forgectl_files_ls(ForgectlContext *ctx, const char *id, const char *path);
