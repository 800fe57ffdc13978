/* Running commands: exec (in an existing sandbox) and run (in a throwaway one). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "basic/fd-util.h"
#include "cli/forgectl.h"

enum { EXEC_OPT_STDIN = 100, EXEC_OPT_TTY };

static void print_exec_help(void) {
        printf("Usage: forgectl exec [OPTIONS] ID [--] CMD [ARGS...]\n"
               "\n"
               "Runs CMD in sandbox ID with /bin/sh and exits with its status (124 when it\n"
               "timed out, 128+N when signal N killed it). Several words are quoted for the\n"
               "shell one by one; a single word is passed as a shell line, so\n"
               "`forgectl exec ID -- 'ls | wc -l'` runs a pipeline.\n"
               "\n"
               "  --cwd DIR           working directory\n"
               "  -e, --env K=V       environment variable (repeatable)\n"
               "  --timeout-ms N      kill the command after N milliseconds\n"
               "  -i, --stdin         stream our standard input to the command, and its\n"
               "                      output back as it comes\n"
               "  -t, --tty           run it on a terminal of our window's size, attached to\n"
               "                      ours (raw mode; with -i our keys go to it)\n"
               "\n"
               "With -i or -t the command runs as a background process that forgectl follows,\n"
               "with no timeout unless --timeout-ms says; an interrupted forgectl kills it.\n");
}

static void print_run_help(void) {
        printf("Usage: forgectl run [OPTIONS] [--] CMD [ARGS...]\n"
               "\n"
               "Creates a sandbox, runs CMD in it as `exec` does, and destroys the sandbox,\n"
               "also when the command fails or forgectl is interrupted. Exits with the\n"
               "command's status.\n"
               "\n"
               "Options are those of `create` (--image, --runtime, --cpus, --memory, --pids,\n"
               "--timeout-ms, --env, --metadata, --name, --cwd), and\n"
               "  -i, --stdin         send our standard input to the command (UTF-8 text)\n");
}

void forgectl_exec_args_done(ForgectlExecArgs *a) {
        free(a->env);
        free(a->command);
        free((char *) a->options.stdin_data);
        *a = (ForgectlExecArgs){};
}

void forgectl_run_args_done(ForgectlRunArgs *a) {
        forgectl_create_args_done(&a->create);
        forgectl_exec_args_done(&a->exec);
}

/* The command starts at argv[first]. */
static int take_command(const char *cmd, int argc, char **argv, int first, char **ret) {
        if (first >= argc)
                return forgectl_usage_error(cmd, "no command given");
        *ret = forgectl_shell_join(argc - first, argv + first);
        return *ret ? 0 : -ENOMEM;
}

int forgectl_parse_exec(int argc, char **argv, ForgectlExecArgs *ret) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP}, {"cwd", 0, true, FORGECTL_OPT_CWD},
                {"env", 'e', true, FORGECTL_OPT_ENV},    {"timeout-ms", 0, true, FORGECTL_OPT_TIMEOUT},
                {"stdin", 'i', false, EXEC_OPT_STDIN},   {"tty", 't', false, EXEC_OPT_TTY},
                {},
        };
        const char *value;
        ForgectlArgs a;
        int k, r;

        *ret = (ForgectlExecArgs){};
        forgectl_args_init(&a, "exec", argc, argv);
        while (!ret->command && (k = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                r = 0;
                if (k == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                else if (k == FORGECTL_OPT_CWD)
                        ret->options.cwd = value;
                else if (k == FORGECTL_OPT_ENV)
                        r = forgectl_strv_push_pair("exec", "env", value, &ret->env);
                else if (k == FORGECTL_OPT_TIMEOUT)
                        r = forgectl_parse_long("exec", "timeout-ms", value, 1, &ret->options.timeout_ms);
                else if (k == EXEC_OPT_STDIN)
                        ret->read_stdin = true;
                else if (k == EXEC_OPT_TTY)
                        ret->tty = true;
                else if (k == FORGECTL_ARG_OPERAND && !ret->id)
                        ret->id = value;
                else if (k == FORGECTL_ARG_OPERAND || k == FORGECTL_ARG_DASHDASH) {
                        /* the command: after "--", or from the first word after the id */
                        if (!ret->id)
                                return forgectl_usage_error("exec", "no sandbox id given");
                        r = take_command("exec", argc, argv,
                                         k == FORGECTL_ARG_DASHDASH ? a.index : a.index - 1, &ret->command);
                } else
                        r = k; /* bad usage, reported */
                if (r < 0)
                        return r;
        }
        if (!ret->id)
                return forgectl_usage_error("exec", "no sandbox id given");
        if (!ret->command)
                return forgectl_usage_error("exec", "no command given");
        ret->options.env = ret->env;
        return 0;
}

int forgectl_parse_run(int argc, char **argv, ForgectlRunArgs *ret) {
        static const ForgectlOption options[] = {
                FORGECTL_CREATE_OPTIONS,
                {"stdin", 'i', false, EXEC_OPT_STDIN},
                {},
        };
        const char *value;
        ForgectlArgs a;
        int r;

        *ret = (ForgectlRunArgs){};
        forgectl_args_init(&a, "run", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                if (r == EXEC_OPT_STDIN) {
                        ret->exec.read_stdin = true;
                        continue;
                }
                if (r == FORGECTL_ARG_OPERAND || r == FORGECTL_ARG_DASHDASH) {
                        int first = r == FORGECTL_ARG_DASHDASH ? a.index : a.index - 1;
                        r = take_command("run", argc, argv, first, &ret->exec.command);
                        if (r < 0)
                                return r;
                        break;
                }
                if (r < 0)
                        return r;
                r = forgectl_create_option(&ret->create, "run", r, value);
                if (r < 0)
                        return r;
        }
        if (!ret->exec.command)
                return forgectl_usage_error("run", "no command given");
        ret->create.options.env = ret->create.env;
        ret->create.options.metadata = ret->create.metadata;
        return 0;
}

/* ---- running ---- */

static int read_all(int fd, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        for (;;) {
                ssize_t n;
                if (allocated - size < 65536) {
                        char *p = realloc(buf, allocated + 65536 + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated += 65536;
                }
                n = read(fd, buf + size, allocated - size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

static int stdin_attach(ForgectlExecArgs *a) {
        char *data = NULL;
        size_t size = 0;
        int r;

        if (!a->read_stdin)
                return 0;
        r = read_all(STDIN_FILENO, &data, &size);
        if (r < 0) {
                fprintf(stderr, "forgectl: reading standard input: %s\n", strerror(-r));
                return r;
        }
        a->options.stdin_data = data;
        a->options.stdin_size = size;
        return 0;
}

/* Passes the command's output on and returns the exit status it maps to. */
static int result_deliver(const ForgeResult *res) {
        fd_write_full(STDOUT_FILENO, res->stdout_buf.data, res->stdout_buf.size);
        fd_write_full(STDERR_FILENO, res->stderr_buf.data, res->stderr_buf.size);
        if (res->truncated)
                fprintf(stderr,
                        "forgectl: the output was longer than the server keeps; the rest was dropped\n");
        if (res->oom_killed)
                fprintf(stderr, "forgectl: the command ran out of memory and was killed\n");
        else if (res->timed_out)
                fprintf(stderr, "forgectl: the command timed out and was killed\n");
        return forgectl_exit_status(res);
}

static int shell_run(ForgeClient *c, const char *id, ForgectlExecArgs *a) {
        ForgeResult res = {};
        ForgeClientError err = {};
        int r;

        r = forge_sandbox_shell(c, id, a->command, &a->options, &res, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        r = result_deliver(&res);
        forge_result_clear(&res);
        return r;
}

/* exec -i: a background process with stdin open, its output followed as it comes. */
static int stream_run(ForgeClient *c, ForgectlExecArgs *a) {
        ForgeProcessOptions o = {
                .command = a->command,
                .cwd = a->options.cwd,
                .env = a->env,
                .stdin_open = true,
                .timeout_ms = a->options.timeout_ms,
        };
        ForgeClientError err = {};
        ForgeProcess p = {};
        long pid;
        int r;

        r = forge_process_start(c, a->id, &o, &p, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        pid = p.pid;
        forge_process_clear(&p);
        return forgectl_session_stream(c, a->id, pid, true, true);
}

int forgectl_cmd_exec(ForgectlContext *ctx, int argc, char **argv) {
        _cleanup_(forgectl_exec_args_done) ForgectlExecArgs args = {};
        ForgeClient *c;
        int r;

        r = forgectl_parse_exec(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_exec_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (args.tty)
                return forgectl_terminal_run(ctx, args.id, args.command, args.options.cwd, args.env,
                                             args.options.timeout_ms, args.read_stdin);
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        if (args.read_stdin)
                return stream_run(c, &args);
        return shell_run(c, args.id, &args);
}

/* run: a SIGINT or SIGTERM aborts the command's request, and the sandbox is destroyed
 * before we exit with 128+signal. */
static volatile sig_atomic_t run_interrupted;

static void on_interrupt(int sig) {
        run_interrupted = sig;
}

static void interrupt_handlers_install(void) {
        struct sigaction sa = {.sa_handler = on_interrupt}; /* no SA_RESTART */

        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
}

int forgectl_cmd_run(ForgectlContext *ctx, int argc, char **argv) {
        _cleanup_(forgectl_run_args_done) ForgectlRunArgs args = {};
        ForgeClientError err = {};
        ForgeSandbox sb = {};
        ForgeClient *c;
        int r, status;

        r = forgectl_parse_run(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_run_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (stdin_attach(&args.exec) < 0 || forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;

        /* Handlers first, and no interrupt flag yet: an interrupted create could leave a
         * sandbox whose id we never learn. */
        interrupt_handlers_install();
        r = forge_sandbox_create(c, &args.create.options, &sb, &err);
        if (r < 0)
                return forgectl_report(&err, r);

        forge_client_set_interrupt_flag(c, &run_interrupted);
        status = run_interrupted ? 0 : shell_run(c, sb.id, &args.exec);
        forge_client_set_interrupt_flag(c, NULL);

        err = (ForgeClientError){};
        r = forge_sandbox_destroy(c, sb.id, &err);
        if (r < 0) {
                forgectl_report(&err, r);
                fprintf(stderr, "forgectl: sandbox %s was left behind; remove it with `forgectl rm %s`\n",
                        sb.id, sb.id);
                if (status == 0)
                        status = FORGECTL_EXIT_FAILURE;
        }
        forge_sandbox_clear(&sb);
        if (run_interrupted)
                return 128 + run_interrupted;
        return status;
}
