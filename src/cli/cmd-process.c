/* Processes: start, ps, logs, kill, and the terminals: shell, attach. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/forgectl.h"

enum {
        PROC_OPT_PTY = 100,
        PROC_OPT_STDIN,
        PROC_OPT_FOLLOW,
        PROC_OPT_SIGNAL,
};

static void print_start_help(void) {
        printf("Usage: forgectl start [OPTIONS] ID [--] CMD [ARGS...]\n"
               "\n"
               "Starts CMD in sandbox ID in the background and prints its pid. CMD is taken\n"
               "as `exec` takes it. Follow it with `forgectl logs -f ID PID`.\n"
               "\n"
               "  --pty               run it on a pseudo-terminal (our window's size, else\n"
               "                      24x80); `forgectl attach ID PID` connects to it\n"
               "  --stdin             keep its stdin open (closed otherwise)\n"
               "  --cwd DIR           working directory\n"
               "  -e, --env K=V       environment variable (repeatable)\n"
               "  --timeout-ms N      kill it after N milliseconds (default: never)\n");
}

static void print_ps_help(void) {
        printf("Usage: forgectl ps ID\n"
               "\n"
               "Lists the processes started in sandbox ID through the processes API (running\n"
               "ones and the most recent finished ones).\n");
}

static void print_logs_help(void) {
        printf("Usage: forgectl logs [-f] ID PID\n"
               "\n"
               "Prints what process PID has written (its last 1 MiB of stdout and of stderr).\n"
               "With -f, --follow: then follows its output until it exits, and exits with its\n"
               "status.\n");
}

static void print_kill_help(void) {
        printf("Usage: forgectl kill [-s SIGNAL] ID PID\n"
               "\n"
               "Kills process PID and everything it started. With -s, sends only SIGNAL (a\n"
               "name such as TERM or SIGHUP, or a number) to the process itself.\n");
}

static void print_shell_help(void) {
        printf("Usage: forgectl shell [OPTIONS] ID\n"
               "\n"
               "Opens an interactive login shell (bash, else sh) in sandbox ID on a terminal of\n"
               "our window's size, and exits with the shell's status. Window size changes\n"
               "follow. SIGTERM or SIGHUP to forgectl ends the shell too.\n"
               "\n"
               "  --cwd DIR           working directory\n"
               "  -e, --env K=V       environment variable (repeatable; TERM is ours)\n");
}

static void print_attach_help(void) {
        printf("Usage: forgectl attach ID PID\n"
               "\n"
               "Connects our terminal to process PID, started with a pty (`start --pty`), until\n"
               "it exits; exits with its status. Ending forgectl leaves the process running.\n");
}

int forgectl_parse_pid(const char *cmd, const char *value, long *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end || v < 1 || v > INT32_MAX)
                return forgectl_usage_error(cmd, "\"%s\" is not a process id", value);
        *ret = v;
        return 0;
}

int forgectl_parse_signal(const char *cmd, const char *value, int *ret) {
        const char *name = strncasecmp(value, "SIG", 3) == 0 ? value + 3 : value;
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno == 0 && end != value && !*end && v > 0 && v < NSIG) {
                *ret = (int) v;
                return 0;
        }
        for (int sig = 1; sig < NSIG; sig++) {
                const char *abbrev = sigabbrev_np(sig);
                if (abbrev && strcasecmp(abbrev, name) == 0) {
                        *ret = sig;
                        return 0;
                }
        }
        return forgectl_usage_error(cmd, "\"%s\" is not a signal", value);
}

void forgectl_start_args_done(ForgectlStartArgs *a) {
        free(a->env);
        free(a->command);
        *a = (ForgectlStartArgs){};
}

void forgectl_shell_args_done(ForgectlShellArgs *a) {
        free(a->env);
        *a = (ForgectlShellArgs){};
}

int forgectl_parse_start(int argc, char **argv, ForgectlStartArgs *ret) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP},       {"cwd", 0, true, FORGECTL_OPT_CWD},
                {"env", 'e', true, FORGECTL_OPT_ENV},          {"timeout-ms", 0, true, FORGECTL_OPT_TIMEOUT},
                {"pty", 't', false, PROC_OPT_PTY},             {"stdin", 'i', false, PROC_OPT_STDIN},
                {},
        };
        const char *value;
        ForgectlArgs a;
        int k, r;

        *ret = (ForgectlStartArgs){};
        forgectl_args_init(&a, "start", argc, argv);
        while (!ret->command && (k = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                r = 0;
                if (k == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                else if (k == FORGECTL_OPT_CWD)
                        ret->options.cwd = value;
                else if (k == FORGECTL_OPT_ENV)
                        r = forgectl_strv_push_pair("start", "env", value, &ret->env);
                else if (k == FORGECTL_OPT_TIMEOUT)
                        r = forgectl_parse_long("start", "timeout-ms", value, 1, &ret->options.timeout_ms);
                else if (k == PROC_OPT_PTY)
                        ret->pty = true;
                else if (k == PROC_OPT_STDIN)
                        ret->options.stdin_open = true;
                else if (k == FORGECTL_ARG_OPERAND && !ret->id)
                        ret->id = value;
                else if (k == FORGECTL_ARG_OPERAND || k == FORGECTL_ARG_DASHDASH) {
                        int first = k == FORGECTL_ARG_DASHDASH ? a.index : a.index - 1;
                        if (!ret->id)
                                return forgectl_usage_error("start", "no sandbox id given");
                        if (first >= argc)
                                return forgectl_usage_error("start", "no command given");
                        ret->command = forgectl_shell_join(argc - first, argv + first);
                        r = ret->command ? 0 : -ENOMEM;
                } else
                        r = k;
                if (r < 0)
                        return r;
        }
        if (!ret->id)
                return forgectl_usage_error("start", "no sandbox id given");
        if (!ret->command)
                return forgectl_usage_error("start", "no command given");
        ret->options.command = ret->command;
        ret->options.env = ret->env;
        return 0;
}

int forgectl_parse_shell(int argc, char **argv, ForgectlShellArgs *ret) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP},
                {"cwd", 0, true, FORGECTL_OPT_CWD},
                {"env", 'e', true, FORGECTL_OPT_ENV},
                {},
        };
        const char *value;
        ForgectlArgs a;
        int k, r;

        *ret = (ForgectlShellArgs){};
        forgectl_args_init(&a, "shell", argc, argv);
        while ((k = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                r = 0;
                if (k == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                else if (k == FORGECTL_OPT_CWD)
                        ret->cwd = value;
                else if (k == FORGECTL_OPT_ENV)
                        r = forgectl_strv_push_pair("shell", "env", value, &ret->env);
                else if (k == FORGECTL_ARG_OPERAND && !ret->id)
                        ret->id = value;
                else if (k == FORGECTL_ARG_OPERAND || k == FORGECTL_ARG_DASHDASH)
                        r = forgectl_usage_error("shell", "unexpected argument after the sandbox id");
                else
                        r = k;
                if (r < 0)
                        return r;
        }
        if (!ret->id)
                return forgectl_usage_error("shell", "no sandbox id given");
        return 0;
}

/* "ID PID", after options from `options`; *ret_flag set by the one flag they may hold. */
static int parse_id_pid(const char *cmd, int argc, char **argv, const ForgectlOption *options, const char **ret_id,
                        long *ret_pid, const char **ret_value) {
        const char *value, *pid = NULL;
        ForgectlArgs a;
        int k;

        forgectl_args_init(&a, cmd, argc, argv);
        while ((k = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (k == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                if (k == FORGECTL_ARG_DASHDASH)
                        continue;
                if (k == FORGECTL_ARG_OPERAND && !*ret_id)
                        *ret_id = value;
                else if (k == FORGECTL_ARG_OPERAND && !pid)
                        pid = value;
                else if (k == FORGECTL_ARG_OPERAND)
                        return forgectl_usage_error(cmd, "unexpected argument \"%s\"", value);
                else if (k < 0)
                        return k;
                else
                        *ret_value = value ? value : ""; /* the command's one option */
        }
        if (!*ret_id || !pid)
                return forgectl_usage_error(cmd, "wants a sandbox id and a process id");
        return forgectl_parse_pid(cmd, pid, ret_pid);
}

int forgectl_parse_logs(int argc, char **argv, ForgectlLogsArgs *ret) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP},
                {"follow", 'f', false, PROC_OPT_FOLLOW},
                {},
        };
        const char *flag = NULL;
        int r;

        *ret = (ForgectlLogsArgs){};
        r = parse_id_pid("logs", argc, argv, options, &ret->id, &ret->pid, &flag);
        ret->follow = flag != NULL;
        return r;
}

int forgectl_parse_kill(int argc, char **argv, ForgectlKillArgs *ret) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP},
                {"signal", 's', true, PROC_OPT_SIGNAL},
                {},
        };
        const char *sig = NULL;
        int r;

        *ret = (ForgectlKillArgs){};
        r = parse_id_pid("kill", argc, argv, options, &ret->id, &ret->pid, &sig);
        if (r != 0 || !sig)
                return r;
        return forgectl_parse_signal("kill", sig, &ret->signal);
}

/* ---- running ---- */

/* Our window's size, for a process that gets a pty. */
static void local_window_size(unsigned *rows, unsigned *cols) {
        static const int fds[] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};

        forgectl_tty_size(fds, ELEMENTSOF(fds), rows, cols);
}

int forgectl_cmd_start(ForgectlContext *ctx, int argc, char **argv) {
        _cleanup_(forgectl_start_args_done) ForgectlStartArgs args = {};
        ForgeClientError err = {};
        ForgeProcess p = {};
        ForgeClient *c;
        int r;

        r = forgectl_parse_start(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_start_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (args.pty)
                local_window_size(&args.options.pty_rows, &args.options.pty_cols);
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_process_start(c, args.id, &args.options, &p, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        printf("%ld\n", p.pid);
        forge_process_clear(&p);
        return FORGECTL_EXIT_OK;
}

static void ps_print(const ForgeProcess *p) {
        char code[16] = "-";
        _cleanup_free_ char *line = NULL;
        int n = 0;

        while (p->argv && p->argv[n])
                n++;
        line = forgectl_shell_join(n, p->argv);
        if (!p->running && p->signal > 0)
                snprintf(code, sizeof(code), "SIG%s", sigabbrev_np(p->signal) ?: "?");
        else if (!p->running && p->exit_code >= 0)
                snprintf(code, sizeof(code), "%d", p->exit_code);
        printf("%-7ld %-10s %-8s %-3s %-24s %s\n", p->pid, p->status, code, p->pty ? "yes" : "no",
               p->started_at ? p->started_at : "-", line ? line : "");
}

int forgectl_cmd_ps(ForgectlContext *ctx, int argc, char **argv) {
        ForgeClientError err = {};
        ForgeProcessList list = {};
        ForgeClient *c;
        int r;

        if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
                return print_ps_help(), FORGECTL_EXIT_OK;
        if (argc != 2 || argv[1][0] == '-') {
                forgectl_usage_error("ps", "wants one sandbox id");
                return FORGECTL_EXIT_USAGE;
        }
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_process_list(c, argv[1], &list, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        printf("%-7s %-10s %-8s %-3s %-24s %s\n", "PID", "STATUS", "EXIT", "PTY", "STARTED", "COMMAND");
        for (size_t i = 0; i < list.n_processes; i++)
                ps_print(&list.processes[i]);
        forge_process_list_clear(&list);
        return FORGECTL_EXIT_OK;
}

static int logs_print(ForgeClient *c, const ForgectlLogsArgs *a) {
        ForgeClientError err = {};
        ForgeProcessOutput out = {};
        int r;

        r = forge_process_output(c, a->id, a->pid, &out, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        fwrite(out.stdout_buf.data, 1, out.stdout_buf.size, stdout);
        fflush(stdout);
        fwrite(out.stderr_buf.data, 1, out.stderr_buf.size, stderr);
        if (out.stdout_dropped || out.stderr_dropped)
                fprintf(stderr, "forgectl: older output was dropped (%" PRIu64 " bytes of stdout, %" PRIu64
                                " of stderr)\n",
                        out.stdout_dropped, out.stderr_dropped);
        forge_process_output_clear(&out);
        return FORGECTL_EXIT_OK;
}

int forgectl_cmd_logs(ForgectlContext *ctx, int argc, char **argv) {
        ForgectlLogsArgs args;
        ForgeClient *c;
        int r;

        r = forgectl_parse_logs(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_logs_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        if (!args.follow)
                return logs_print(c, &args);
        return forgectl_session_stream(c, args.id, args.pid, false, false);
}

int forgectl_cmd_kill(ForgectlContext *ctx, int argc, char **argv) {
        ForgeClientError err = {};
        ForgectlKillArgs args;
        ForgeClient *c;
        int r;

        r = forgectl_parse_kill(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_kill_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        if (args.signal > 0)
                r = forge_process_signal(c, args.id, args.pid, args.signal, &err);
        else
                r = forge_process_kill(c, args.id, args.pid, &err);
        return r < 0 ? forgectl_report(&err, r) : FORGECTL_EXIT_OK;
}

/* Starts `command` on a pty of our window's size and attaches to it; the process is
 * killed if forgectl is. */
int forgectl_terminal_run(ForgectlContext *ctx, const char *id, const char *command, const char *cwd,
                          const char *const *env, long timeout_ms, bool forward_stdin) {
        _cleanup_free_ const char **full_env = NULL;
        _cleanup_free_ char *term = NULL;
        ForgeProcessOptions o = {.command = command, .cwd = cwd, .timeout_ms = timeout_ms};
        ForgeClientError err = {};
        ForgeProcess p = {};
        ForgeClient *c;
        long pid;
        int r;

        /* Our TERM first, so an explicit -e TERM=... wins. */
        if (asprintf(&term, "TERM=%s", getenv("TERM") && getenv("TERM")[0] ? getenv("TERM") : "xterm") < 0 ||
            forgectl_strv_push(&full_env, term) < 0)
                return FORGECTL_EXIT_FAILURE;
        for (const char *const *e = env; e && *e; e++)
                if (forgectl_strv_push(&full_env, *e) < 0)
                        return FORGECTL_EXIT_FAILURE;
        o.env = full_env;
        local_window_size(&o.pty_rows, &o.pty_cols);
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_process_start(c, id, &o, &p, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        pid = p.pid;
        forge_process_clear(&p);
        return forgectl_session_attach(c, id, pid, forward_stdin, true);
}

int forgectl_cmd_shell(ForgectlContext *ctx, int argc, char **argv) {
        /* bash where the sandbox has it; `exec` keeps the pid the shell's own */
        static const char login_shell[] = "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l";
        _cleanup_(forgectl_shell_args_done) ForgectlShellArgs args = {};
        int r;

        r = forgectl_parse_shell(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_shell_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        return forgectl_terminal_run(ctx, args.id, login_shell, args.cwd, args.env, 0, true);
}

int forgectl_cmd_attach(ForgectlContext *ctx, int argc, char **argv) {
        static const ForgectlOption options[] = {{"help", 'h', false, FORGECTL_OPT_HELP}, {}};
        const char *id = NULL, *unused = NULL;
        ForgeClient *c;
        long pid;
        int r;

        r = parse_id_pid("attach", argc, argv, options, &id, &pid, &unused);
        if (r == FORGECTL_HELP)
                return print_attach_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        return forgectl_session_attach(c, id, pid, true, false);
}
