/* The tool: global options, the command table, error reporting. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/forgectl.h"

typedef struct ForgectlCommand {
        const char *name;
        int (*run)(ForgectlContext *ctx, int argc, char **argv);
        const char *summary;
} ForgectlCommand;

static const ForgectlCommand commands[] = {
        {"create", forgectl_cmd_create, "create a sandbox and print its id"},
        {"exec", forgectl_cmd_exec, "run a command in a sandbox"},
        {"run", forgectl_cmd_run, "create a sandbox, run one command in it, destroy it"},
        {"cp", forgectl_cmd_cp, "copy a file into or out of a sandbox"},
        {"ls", forgectl_cmd_ls, "list sandboxes, or a directory in one (ID:PATH)"},
        {"get", forgectl_cmd_get, "show a sandbox as JSON"},
        {"rm", forgectl_cmd_rm, "destroy sandboxes, or remove a path in one (ID:PATH)"},
        {"mkdir", forgectl_cmd_mkdir, "make a directory in a sandbox (ID:PATH)"},
        {"shell", forgectl_cmd_shell, "open an interactive shell in a sandbox"},
        {"start", forgectl_cmd_start, "start a command in the background and print its pid"},
        {"ps", forgectl_cmd_ps, "list a sandbox's background processes"},
        {"logs", forgectl_cmd_logs, "print (-f: follow) a background process's output"},
        {"kill", forgectl_cmd_kill, "kill a background process, or send it a signal"},
        {"attach", forgectl_cmd_attach, "connect the terminal to a process started with --pty"},
        {"image", forgectl_cmd_image, "build, list, remove or import images"},
        {"health", forgectl_cmd_health, "ask the server whether it is well"},
        {"vm", forgectl_cmd_vm, "prepare the microVM guest parts on this host (vm setup)"},
};

static void print_help(void) {
        printf("Usage: forgectl [--url URL] COMMAND [ARGS...]\n"
               "\n"
               "Talks to a forged server: --url, else $FORGE_URL, else " FORGE_DEFAULT_URL ".\n"
               "\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                printf("  %-8s %s\n", commands[i].name, commands[i].summary);
        printf("\n"
               "`forgectl COMMAND --help` tells more. Exit status: 0 on success, 1 when the\n"
               "server or the connection failed, 2 on bad usage; exec and run exit with the\n"
               "command's own status.\n");
}

int forgectl_usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "forgectl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'forgectl%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
        return -EINVAL;
}

int forgectl_report(const ForgeClientError *err, int r) {
        if (err && err->message[0])
                fprintf(stderr, "forgectl: %s (%s)\n", err->message, err->code[0] ? err->code : "error");
        else
                fprintf(stderr, "forgectl: %s\n", strerror(r < 0 ? -r : EIO));
        return FORGECTL_EXIT_FAILURE;
}

int forgectl_client(ForgectlContext *ctx, ForgeClient **ret) {
        ForgeClientError err = {};
        int r;

        if (!ctx->client) {
                r = forge_client_new(ctx->url, &ctx->client, &err);
                if (r < 0)
                        return forgectl_report(&err, r), r;
        }
        *ret = ctx->client;
        return 0;
}

static const ForgectlCommand *command_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

enum { OPT_URL = 1, OPT_HELP, OPT_VERSION };
static const ForgectlOption global_options[] = {
        {"url", 0, true, OPT_URL},
        {"help", 'h', false, OPT_HELP},
        {"version", 0, false, OPT_VERSION},
        {},
};

int forgectl_main(int argc, char **argv) {
        ForgectlContext ctx = {.url = getenv("FORGE_URL")};
        const ForgectlCommand *cmd;
        const char *value;
        ForgectlArgs a;
        int r;

        forgectl_args_init(&a, NULL, argc, argv);
        for (;;) {
                r = forgectl_args_next(&a, global_options, &value);
                if (r == OPT_URL)
                        ctx.url = value;
                else if (r == OPT_HELP)
                        return print_help(), FORGECTL_EXIT_OK;
                else if (r == OPT_VERSION)
                        return printf("forgectl %s\n", FORGE_VERSION), FORGECTL_EXIT_OK;
                else if (r < 0 && r != FORGECTL_ARG_OPERAND && r != FORGECTL_ARG_DASHDASH)
                        return FORGECTL_EXIT_USAGE;
                else
                        break;
        }
        if (r != FORGECTL_ARG_OPERAND) {
                forgectl_usage_error(NULL, "no command given");
                return FORGECTL_EXIT_USAGE;
        }
        cmd = command_find(value);
        if (!cmd) {
                forgectl_usage_error(NULL, "unknown command \"%s\"", value);
                return FORGECTL_EXIT_USAGE;
        }
        if (!ctx.url || !ctx.url[0])
                ctx.url = FORGE_DEFAULT_URL;

        /* The command sees argv from its own name on. */
        r = cmd->run(&ctx, argc - (a.index - 1), argv + (a.index - 1));
        forge_client_free(ctx.client);
        return r;
}
