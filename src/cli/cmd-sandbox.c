/* Sandbox lifecycle commands: create, ls, get, rm, health. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/forgectl.h"

static void print_create_help(void) {
        printf("Usage: forgectl create [OPTIONS]\n"
               "\n"
               "Creates a sandbox and prints its id.\n"
               "\n"
               "  --image NAME        image (default: host)\n"
               "  --runtime R         python, node, sh or bash: pick an image that has it\n"
               "  --isolator I        auto (default) or ns\n"
               "  --cpus N            CPU share, e.g. 0.5\n"
               "  --memory MB         memory limit in MiB (at least 16)\n"
               "  --pids N            process limit (at least 8)\n"
               "  --timeout-ms N      default per-command timeout\n"
               "  -e, --env K=V       environment for every command (repeatable)\n"
               "  --metadata K=V      free label, filterable in ls (repeatable)\n"
               "  --name NAME         free name\n"
               "  --cwd DIR           working directory of every command\n");
}

void forgectl_create_args_done(ForgectlCreateArgs *a) {
        free(a->env);
        free(a->metadata);
        *a = (ForgectlCreateArgs){};
}

int forgectl_create_option(ForgectlCreateArgs *a, const char *cmd, int id, const char *value) {
        ForgeSandboxOptions *o = &a->options;

        switch (id) {
        case FORGECTL_OPT_IMAGE:
                o->image = value;
                return 0;
        case FORGECTL_OPT_RUNTIME:
                o->runtime = value;
                return 0;
        case FORGECTL_OPT_ISOLATOR:
                o->isolator = value;
                return 0;
        case FORGECTL_OPT_NAME:
                o->name = value;
                return 0;
        case FORGECTL_OPT_CWD:
                o->cwd = value;
                return 0;
        case FORGECTL_OPT_CPUS:
                return forgectl_parse_cpus(cmd, value, &o->limits.cpus);
        case FORGECTL_OPT_MEMORY:
                return forgectl_parse_long(cmd, "memory", value, 1, &o->limits.memory_mb);
        case FORGECTL_OPT_PIDS:
                return forgectl_parse_long(cmd, "pids", value, 1, &o->limits.pids);
        case FORGECTL_OPT_TIMEOUT:
                return forgectl_parse_long(cmd, "timeout-ms", value, 1, &o->limits.timeout_ms);
        case FORGECTL_OPT_ENV:
                return forgectl_strv_push_pair(cmd, "env", value, &a->env);
        case FORGECTL_OPT_METADATA:
                return forgectl_strv_push_pair(cmd, "metadata", value, &a->metadata);
        default:
                return -EINVAL;
        }
}

int forgectl_parse_create(int argc, char **argv, ForgectlCreateArgs *ret) {
        static const ForgectlOption options[] = {FORGECTL_CREATE_OPTIONS, {}};
        const char *value;
        ForgectlArgs a;
        int r;

        *ret = (ForgectlCreateArgs){};
        forgectl_args_init(&a, "create", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                if (r == FORGECTL_ARG_OPERAND || r == FORGECTL_ARG_DASHDASH)
                        return forgectl_usage_error("create", "unexpected argument \"%s\"",
                                                    value ? value : "--");
                if (r < 0)
                        return r;
                r = forgectl_create_option(ret, "create", r, value);
                if (r < 0)
                        return r;
        }
        ret->options.env = ret->env;
        ret->options.metadata = ret->metadata;
        return 0;
}

int forgectl_cmd_create(ForgectlContext *ctx, int argc, char **argv) {
        _cleanup_(forgectl_create_args_done) ForgectlCreateArgs args = {};
        ForgeSandbox sb = {};
        ForgeClientError err = {};
        ForgeClient *c;
        int r;

        r = forgectl_parse_create(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_create_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_sandbox_create(c, &args.options, &sb, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        printf("%s\n", sb.id);
        if (sb.status && strcmp(sb.status, "failed") == 0)
                fprintf(stderr, "forgectl: sandbox %s failed: %s\n", sb.id,
                        sb.reason ? sb.reason : "no reason given");
        forge_sandbox_clear(&sb);
        return FORGECTL_EXIT_OK;
}

/* ---- get and health: JSON out ---- */

static int print_json_pretty(const char *compact) {
        json_t *j = json_loads(compact, JSON_ALLOW_NUL, NULL);
        char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;

        json_decref(j);
        if (!text)
                return -ENOMEM;
        printf("%s\n", text);
        free(text);
        return 0;
}

/* For commands that take no options but --help and exactly `want` operands. */
static int parse_operands(const char *cmd, int argc, char **argv, int want, const char **ret) {
        static const ForgectlOption options[] = {{"help", 'h', false, FORGECTL_OPT_HELP}, {}};
        const char *value;
        ForgectlArgs a;
        int r, n = 0;

        forgectl_args_init(&a, cmd, argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                if (r == FORGECTL_ARG_DASHDASH)
                        continue;
                if (r < 0 && r != FORGECTL_ARG_OPERAND)
                        return r;
                if (n >= want)
                        return forgectl_usage_error(cmd, "unexpected argument \"%s\"", value);
                ret[n++] = value;
        }
        if (n < want)
                return forgectl_usage_error(cmd, "missing argument");
        return 0;
}

int forgectl_cmd_get(ForgectlContext *ctx, int argc, char **argv) {
        const char *id;
        ForgeSandbox sb = {};
        ForgeClientError err = {};
        ForgeClient *c;
        int r;

        r = parse_operands("get", argc, argv, 1, &id);
        if (r == FORGECTL_HELP)
                return printf("Usage: forgectl get ID\n\nPrints the sandbox as JSON.\n"), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_sandbox_get(c, id, &sb, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        r = print_json_pretty(sb.json);
        forge_sandbox_clear(&sb);
        return r < 0 ? forgectl_report(NULL, r) : FORGECTL_EXIT_OK;
}

int forgectl_cmd_health(ForgectlContext *ctx, int argc, char **argv) {
        _cleanup_free_ char *json = NULL;
        ForgeClientError err = {};
        ForgeClient *c;
        int r;

        r = parse_operands("health", argc, argv, 0, NULL);
        if (r == FORGECTL_HELP)
                return printf("Usage: forgectl health\n\nPrints the server's health object.\n"),
                       FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_health(c, &json, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        r = print_json_pretty(json);
        return r < 0 ? forgectl_report(NULL, r) : FORGECTL_EXIT_OK;
}

/* ---- ls ---- */

static void print_ls_help(void) {
        printf("Usage: forgectl ls [-q] [--status S] [--metadata K=V]...\n"
               "       forgectl ls ID:PATH\n"
               "\n"
               "Lists sandboxes (oldest first), or the directory PATH inside sandbox ID.\n"
               "\n"
               "  -q, --quiet         print only the ids\n"
               "  --status S          only sandboxes in this state (creating, running, failed)\n"
               "  --metadata K=V      only sandboxes with this metadata (repeatable)\n");
}

static const char *or_dash(const char *s) {
        return s && s[0] ? s : "-";
}

static void print_sandbox_table(const ForgeSandboxList *list) {
        int w_id = 2, w_status = 6, w_image = 5, w_created = 7;

        for (size_t i = 0; i < list->n_sandboxes; i++) {
                const ForgeSandbox *sb = &list->sandboxes[i];
                w_id = MAX(w_id, (int) strlen(sb->id));
                w_status = MAX(w_status, (int) strlen(or_dash(sb->status)));
                w_image = MAX(w_image, (int) strlen(or_dash(sb->image)));
                w_created = MAX(w_created, (int) strlen(or_dash(sb->created_at)));
        }
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", w_id, "ID", w_status, "STATUS", w_image, "IMAGE", w_created,
               "CREATED", "NAME");
        for (size_t i = 0; i < list->n_sandboxes; i++) {
                const ForgeSandbox *sb = &list->sandboxes[i];
                printf("%-*s  %-*s  %-*s  %-*s  %s\n", w_id, sb->id, w_status, or_dash(sb->status), w_image,
                       or_dash(sb->image), w_created, or_dash(sb->created_at), or_dash(sb->name));
        }
}

enum { LS_OPT_QUIET = 100, LS_OPT_STATUS };

int forgectl_cmd_ls(ForgectlContext *ctx, int argc, char **argv) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP},
                {"quiet", 'q', false, LS_OPT_QUIET},
                {"status", 0, true, LS_OPT_STATUS},
                {"metadata", 0, true, FORGECTL_OPT_METADATA},
                {},
        };
        _cleanup_free_ const char **metadata = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL;
        const char *value, *status = NULL, *target = NULL;
        ForgeSandboxList list = {};
        ForgeClientError err = {};
        bool quiet = false;
        ForgectlArgs a;
        ForgeClient *c;
        int r;

        forgectl_args_init(&a, "ls", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return print_ls_help(), FORGECTL_EXIT_OK;
                else if (r == LS_OPT_QUIET)
                        quiet = true;
                else if (r == LS_OPT_STATUS)
                        status = value;
                else if (r == FORGECTL_OPT_METADATA) {
                        if (forgectl_strv_push_pair("ls", "metadata", value, &metadata) < 0)
                                return FORGECTL_EXIT_USAGE;
                } else if (r == FORGECTL_ARG_OPERAND && !target)
                        target = value;
                else if (r == FORGECTL_ARG_OPERAND)
                        return forgectl_usage_error("ls", "unexpected argument \"%s\"", value),
                               FORGECTL_EXIT_USAGE;
                else if (r < 0 && r != FORGECTL_ARG_DASHDASH)
                        return FORGECTL_EXIT_USAGE;
        }
        if (target) {
                r = forgectl_split_remote(target, &id, &path);
                if (r == 0)
                        return forgectl_usage_error("ls", "\"%s\" is not ID:PATH", target),
                               FORGECTL_EXIT_USAGE;
                if (r < 0)
                        return forgectl_report(NULL, r);
                return forgectl_files_ls(ctx, id, path[0] ? path : ".");
        }

        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_sandbox_list(c, status, metadata, &list, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        if (quiet)
                for (size_t i = 0; i < list.n_sandboxes; i++)
                        printf("%s\n", list.sandboxes[i].id);
        else
                print_sandbox_table(&list);
        forge_sandbox_list_clear(&list);
        return FORGECTL_EXIT_OK;
}

/* ---- rm ---- */

static void print_rm_help(void) {
        printf("Usage: forgectl rm [-f] ID...\n"
               "       forgectl rm [-r] ID:PATH...\n"
               "\n"
               "Destroys each sandbox ID, or removes PATH inside sandbox ID.\n"
               "\n"
               "  -f, --force         an unknown sandbox or path is not an error\n"
               "  -r, --recursive     remove directories with their contents\n");
}

enum { RM_OPT_FORCE = 100, RM_OPT_RECURSIVE };

/* Destroys or removes one target; returns 0 or the exit status of its failure. */
static int rm_one(ForgeClient *c, const char *target, bool force, bool recursive) {
        _cleanup_free_ char *id = NULL, *path = NULL;
        ForgeClientError err = {};
        int r;

        r = forgectl_split_remote(target, &id, &path);
        if (r < 0)
                return forgectl_report(NULL, r);
        if (r > 0)
                r = forge_file_remove(c, id, path, recursive, &err);
        else
                r = forge_sandbox_destroy(c, target, &err);
        if (r == -ENOENT && force)
                return 0;
        return r < 0 ? forgectl_report(&err, r) : 0;
}

int forgectl_cmd_rm(ForgectlContext *ctx, int argc, char **argv) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP},
                {"force", 'f', false, RM_OPT_FORCE},
                {"recursive", 'r', false, RM_OPT_RECURSIVE},
                {},
        };
        _cleanup_free_ const char **targets = NULL;
        bool force = false, recursive = false;
        const char *value;
        ForgectlArgs a;
        ForgeClient *c;
        int r, status = FORGECTL_EXIT_OK;

        forgectl_args_init(&a, "rm", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return print_rm_help(), FORGECTL_EXIT_OK;
                else if (r == RM_OPT_FORCE)
                        force = true;
                else if (r == RM_OPT_RECURSIVE)
                        recursive = true;
                else if (r == FORGECTL_ARG_OPERAND) {
                        if (forgectl_strv_push(&targets, value) < 0)
                                return forgectl_report(NULL, -ENOMEM);
                } else if (r < 0 && r != FORGECTL_ARG_DASHDASH)
                        return FORGECTL_EXIT_USAGE;
        }
        if (!targets)
                return forgectl_usage_error("rm", "no sandbox given"), FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        for (const char **t = targets; *t; t++)
                if (rm_one(c, *t, force, recursive) != 0)
                        status = FORGECTL_EXIT_FAILURE;
        return status;
}
