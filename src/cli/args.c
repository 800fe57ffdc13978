/* Argument parsing helpers and shell quoting. A small option iterator of our own instead
 * of getopt: it keeps no global state (each unit test starts clean) and lets a command
 * stop at its first command word, as `exec ID CMD -x` needs. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/forgectl.h"

void forgectl_args_init(ForgectlArgs *a, const char *cmd, int argc, char **argv) {
        *a = (ForgectlArgs){.cmd = cmd, .argc = argc, .argv = argv, .index = 1};
}

static const ForgectlOption *option_find_long(const ForgectlOption *opts, const char *name, size_t len) {
        for (const ForgectlOption *o = opts; o && o->id; o++)
                if (strlen(o->long_name) == len && strncmp(o->long_name, name, len) == 0)
                        return o;
        return NULL;
}

static const ForgectlOption *option_find_short(const ForgectlOption *opts, char name) {
        for (const ForgectlOption *o = opts; o && o->id; o++)
                if (o->short_name && o->short_name == name)
                        return o;
        return NULL;
}

/* "--name", "--name=value" */
static int args_next_long(ForgectlArgs *a, const ForgectlOption *opts, const char *arg,
                          const char **ret_value) {
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t) (eq - name) : strlen(name);
        const ForgectlOption *o = option_find_long(opts, name, len);

        if (!o)
                return forgectl_usage_error(a->cmd, "unknown option --%.*s", (int) len, name);
        if (!o->takes_value) {
                if (eq)
                        return forgectl_usage_error(a->cmd, "option --%s takes no value", o->long_name);
                return o->id;
        }
        if (eq)
                *ret_value = eq + 1;
        else if (a->index < a->argc)
                *ret_value = a->argv[a->index++];
        else
                return forgectl_usage_error(a->cmd, "option --%s needs a value", o->long_name);
        return o->id;
}

/* "-it": every letter a known flag without a value. */
static bool is_flag_bundle(const ForgectlOption *opts, const char *letters) {
        for (const char *p = letters; *p; p++) {
                const ForgectlOption *o = option_find_short(opts, *p);
                if (!o || o->takes_value)
                        return false;
        }
        return true;
}

/* "-x", "-x value", "-xvalue", and flags bundled as "-xy" */
static int args_next_short(ForgectlArgs *a, const ForgectlOption *opts, const char *arg,
                           const char **ret_value) {
        const ForgectlOption *o = option_find_short(opts, arg[1]);

        if (!o)
                return forgectl_usage_error(a->cmd, "unknown option %s", arg);
        if (!o->takes_value) {
                if (arg[2] && !is_flag_bundle(opts, arg + 1))
                        return forgectl_usage_error(a->cmd, "unknown option %s (give flags one by one)",
                                                    arg);
                a->bundle = arg[2] ? arg + 2 : NULL;
                return o->id;
        }
        if (arg[2])
                *ret_value = arg + 2;
        else if (a->index < a->argc)
                *ret_value = a->argv[a->index++];
        else
                return forgectl_usage_error(a->cmd, "option -%c needs a value", o->short_name);
        return o->id;
}

int forgectl_args_next(ForgectlArgs *a, const ForgectlOption *opts, const char **ret_value) {
        const char *arg;

        *ret_value = NULL;
        if (a->bundle) { /* the next letter of "-xy" (checked when the bundle was met) */
                const ForgectlOption *o = option_find_short(opts, *a->bundle++);
                if (!*a->bundle)
                        a->bundle = NULL;
                return o->id;
        }
        if (a->index >= a->argc)
                return FORGECTL_ARG_END;
        arg = a->argv[a->index++];
        if (strcmp(arg, "--") == 0)
                return FORGECTL_ARG_DASHDASH;
        if (arg[0] != '-' || arg[1] == 0) { /* "-" alone means stdin/stdout: an operand */
                *ret_value = arg;
                return FORGECTL_ARG_OPERAND;
        }
        if (arg[1] == '-')
                return args_next_long(a, opts, arg, ret_value);
        return args_next_short(a, opts, arg, ret_value);
}

int forgectl_parse_long(const char *cmd, const char *opt, const char *value, long min, long *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end || v < min)
                return forgectl_usage_error(cmd, "--%s wants a whole number of at least %ld, not \"%s\"",
                                            opt, min, value);
        *ret = v;
        return 0;
}

int forgectl_parse_cpus(const char *cmd, const char *value, double *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(value, &end);
        if (errno != 0 || end == value || *end || !isfinite(v) || v <= 0)
                return forgectl_usage_error(cmd, "--cpus wants a number above 0 (e.g. 0.5), not \"%s\"",
                                            value);
        *ret = v;
        return 0;
}

int forgectl_strv_push(const char ***list, const char *s) {
        size_t n = 0;
        const char **l;

        while (*list && (*list)[n])
                n++;
        l = realloc(*list, (n + 2) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        l[n] = s;
        l[n + 1] = NULL;
        *list = l;
        return 0;
}

int forgectl_strv_push_pair(const char *cmd, const char *opt, const char *value, const char ***list) {
        const char *eq = strchr(value, '=');

        if (!eq || eq == value)
                return forgectl_usage_error(cmd, "--%s wants KEY=VALUE, not \"%s\"", opt, value);
        return forgectl_strv_push(list, value);
}

char *forgectl_shell_quote(const char *s) {
        size_t n = 2, i = 0;
        char *out;

        for (const char *p = s; *p; p++)
                n += *p == '\'' ? 4 : 1;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        out[i++] = '\'';
        for (const char *p = s; *p; p++) {
                if (*p != '\'') {
                        out[i++] = *p;
                        continue;
                }
                /* close the quote, an escaped quote, reopen */
                memcpy(out + i, "'\\''", 4);
                i += 4;
        }
        out[i++] = '\'';
        out[i] = 0;
        return out;
}

char *forgectl_shell_join(int argc, char *const *argv) {
        size_t len = 0, used = 0;
        char *line;

        if (argc <= 0)
                return NULL;
        if (argc == 1)
                return strdup(argv[0]);
        for (int i = 0; i < argc; i++)
                for (const char *p = argv[i]; *p; p++)
                        len += *p == '\'' ? 4 : 1;
        len += (size_t) argc * 3; /* two quotes and a space (or the NUL) each */
        line = malloc(len);
        if (!line)
                return NULL;
        for (int i = 0; i < argc; i++) {
                _cleanup_free_ char *q = forgectl_shell_quote(argv[i]);
                size_t qlen;
                if (!q) {
                        free(line);
                        return NULL;
                }
                qlen = strlen(q);
                memcpy(line + used, q, qlen);
                used += qlen;
                line[used++] = i + 1 < argc ? ' ' : 0;
        }
        return line;
}

int forgectl_split_remote(const char *s, char **ret_id, char **ret_path) {
        const char *colon = strchr(s, ':'), *slash = strchr(s, '/');

        if (!colon || colon == s || (slash && slash < colon))
                return 0;
        *ret_id = strndup(s, (size_t) (colon - s));
        *ret_path = strdup(colon + 1);
        if (!*ret_id || !*ret_path) {
                free(*ret_id);
                free(*ret_path);
                *ret_id = *ret_path = NULL;
                return -ENOMEM;
        }
        return 1;
}

int forgectl_exit_status(const ForgeResult *r) {
        if (r->timed_out)
                return FORGECTL_EXIT_TIMEOUT;
        if (r->signal > 0)
                return 128 + r->signal;
        if (r->exit_code < 0 || r->exit_code > 255)
                return FORGECTL_EXIT_FAILURE;
        return r->exit_code;
}
