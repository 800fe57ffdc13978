/* Background processes: start, inspect, signal, kill, stdin, and the buffered output. The
 * follow stream is in follow.c and the terminal in attach.c. */
#include <stdio.h>
#include <string.h>

#include "basic/base64.h"
#include "libforge/internal.h"

static int no_memory(ForgeClientError *err) {
        return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
}

static int invalid(ForgeClientError *err, const char *what) {
        return forge__error_set(err, EINVAL, 0, "invalid_argument", "%s", what);
}

/* "/v1/sandboxes/<id>/processes[/<pid>][<suffix>]" */
static int process_path(const char *id, long pid, const char *suffix, char **ret, ForgeClientError *err) {
        char tail[64];
        int r;

        if (pid < 0)
                snprintf(tail, sizeof(tail), "/processes");
        else
                snprintf(tail, sizeof(tail), "/processes/%ld%s", pid, suffix ? suffix : "");
        r = forge__sandbox_path(id, tail, ret);
        if (r == -EINVAL)
                return invalid(err, "no sandbox id given");
        return r < 0 ? no_memory(err) : 0;
}

FORGE_PUBLIC void forge_process_clear(ForgeProcess *p) {
        if (!p)
                return;
        for (char **a = p->argv; a && *a; a++)
                free(*a);
        free(p->argv);
        free(p->cwd);
        free(p->status);
        free(p->started_at);
        free(p->ended_at);
        free(p->json);
        memset(p, 0, sizeof(*p));
}

FORGE_PUBLIC void forge_process_list_clear(ForgeProcessList *list) {
        if (!list)
                return;
        for (size_t i = 0; i < list->n_processes; i++)
                forge_process_clear(&list->processes[i]);
        free(list->processes);
        memset(list, 0, sizeof(*list));
}

static uint64_t json_u64(json_t *obj, const char *key) {
        json_t *v = json_object_get(obj, key);

        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;
}

static int argv_from_json(json_t *a, char ***ret) {
        size_t n = json_is_array(a) ? json_array_size(a) : 0;
        char **argv = calloc(n + 1, sizeof(char *));

        if (!argv)
                return -ENOMEM;
        *ret = argv;
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(a, i);
                argv[i] = strdup(json_is_string(s) ? json_string_value(s) : "");
                if (!argv[i])
                        return -ENOMEM;
        }
        return 0;
}

static int signal_from_json(json_t *sig) {
        if (json_is_string(sig))
                return forge__signal_from_name(json_string_value(sig));
        if (json_is_integer(sig))
                return (int) json_integer_value(sig);
        return 0;
}

int forge__process_from_json(json_t *j, ForgeProcess *ret, ForgeClientError *err) {
        ForgeProcess p = {};
        json_t *pid = json_object_get(j, "pid"), *code = json_object_get(j, "exit_code");
        int r = 0;

        if (!json_is_integer(pid) || !json_is_string(json_object_get(j, "status")))
                return forge__error_set(err, EPROTO, 0, "bad_response",
                                        "the server's answer is not a process object");
        r = r < 0 ? r : forge__json_strdup(j, "status", &p.status);
        r = r < 0 ? r : forge__json_strdup(j, "cwd", &p.cwd);
        r = r < 0 ? r : forge__json_strdup(j, "started_at", &p.started_at);
        r = r < 0 ? r : forge__json_strdup(j, "ended_at", &p.ended_at);
        r = r < 0 ? r : argv_from_json(json_object_get(j, "argv"), &p.argv);
        if (r >= 0) {
                p.json = json_dumps(j, JSON_COMPACT);
                r = p.json ? 0 : -ENOMEM;
        }
        if (r < 0) {
                forge_process_clear(&p);
                return no_memory(err);
        }
        p.pid = (long) json_integer_value(pid);
        p.pty = json_is_true(json_object_get(j, "pty"));
        p.running = strcmp(p.status, "running") == 0;
        p.exit_code = json_is_integer(code) ? (int) json_integer_value(code) : -1;
        p.signal = signal_from_json(json_object_get(j, "signal"));
        p.stdout_dropped = json_u64(j, "stdout_dropped");
        p.stderr_dropped = json_u64(j, "stderr_dropped");
        *ret = p;
        return 0;
}

FORGE_PUBLIC int forge_process_exit_status(const ForgeProcess *p) {
        if (p->running)
                return -1;
        if (strcmp(p->status, "timed_out") == 0)
                return 124;
        if (p->signal > 0)
                return 128 + p->signal;
        return p->exit_code;
}

static int start_body(const ForgeProcessOptions *o, json_t **ret, ForgeClientError *err) {
        _cleanup_json_ json_t *body = json_object();
        json_t *v;
        int r;

        if (!body)
                return no_memory(err);
        if (!o || !o->command == !o->argv)
                return invalid(err, "a process needs exactly one of a command or an argv");
        if (o->command && json_object_set_new(body, "command", json_string(o->command)) < 0)
                return invalid(err, "the command is not valid UTF-8");
        if (o->argv) {
                v = json_array();
                if (!v || json_object_set_new(body, "argv", v) < 0)
                        return no_memory(err);
                for (const char *const *a = o->argv; *a; a++)
                        if (json_array_append_new(v, json_string(*a)) < 0)
                                return invalid(err, "an argument is not valid UTF-8");
        }
        if (o->cwd && json_object_set_new(body, "cwd", json_string(o->cwd)) < 0)
                return invalid(err, "the working directory is not valid UTF-8");
        if (o->env && o->env[0]) {
                v = json_object();
                if (!v || json_object_set_new(body, "env", v) < 0)
                        return no_memory(err);
                r = forge__json_add_pairs(v, o->env, "env", err);
                if (r < 0)
                        return r;
        }
        if ((o->stdin_open && json_object_set_new(body, "stdin", json_true()) < 0) ||
            (o->timeout_ms > 0 && json_object_set_new(body, "timeout_ms", json_integer(o->timeout_ms)) < 0))
                return no_memory(err);
        if (o->pty_rows > 0 && o->pty_cols > 0 &&
            json_object_set_new(body, "pty", json_pack("{s:I, s:I}", "rows", (json_int_t) o->pty_rows, "cols",
                                                       (json_int_t) o->pty_cols)) < 0)
                return no_memory(err);
        *ret = TAKE_PTR(body);
        return 0;
}

FORGE_PUBLIC int forge_process_start(ForgeClient *c, const char *id, const ForgeProcessOptions *opts,
                                     ForgeProcess *ret, ForgeClientError *err) {
        _cleanup_json_ json_t *body = NULL, *answer = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = process_path(id, -1, NULL, &path, err);
        if (r < 0)
                return r;
        r = start_body(opts, &body, err);
        if (r < 0)
                return r;
        r = forge__request_json(c, "POST", path, body, &answer, err);
        if (r < 0)
                return r;
        return forge__process_from_json(answer, ret, err);
}

FORGE_PUBLIC int forge_process_get(ForgeClient *c, const char *id, long pid, ForgeProcess *ret,
                                   ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = process_path(id, pid, NULL, &path, err);
        if (r < 0)
                return r;
        r = forge__request_json(c, "GET", path, NULL, &answer, err);
        if (r < 0)
                return r;
        return forge__process_from_json(answer, ret, err);
}

FORGE_PUBLIC int forge_process_list(ForgeClient *c, const char *id, ForgeProcessList *ret,
                                    ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *path = NULL;
        ForgeProcessList list = {};
        json_t *items;
        int r;

        r = process_path(id, -1, NULL, &path, err);
        if (r < 0)
                return r;
        r = forge__request_json(c, "GET", path, NULL, &answer, err);
        if (r < 0)
                return r;
        items = json_object_get(answer, "processes");
        if (!json_is_array(items))
                return forge__error_set(err, EPROTO, 200, "bad_response", "the answer lacks a process list");
        list.processes = calloc(json_array_size(items) + 1, sizeof(ForgeProcess));
        if (!list.processes)
                return no_memory(err);
        for (size_t i = 0; i < json_array_size(items); i++) {
                r = forge__process_from_json(json_array_get(items, i), &list.processes[i], err);
                if (r < 0) {
                        forge_process_list_clear(&list);
                        return r;
                }
                list.n_processes++;
        }
        *ret = list;
        return 0;
}

FORGE_PUBLIC int forge_process_signal(ForgeClient *c, const char *id, long pid, int sig,
                                      ForgeClientError *err) {
        _cleanup_json_ json_t *body = NULL;
        _cleanup_free_ char *path = NULL;
        const char *abbrev = sig > 0 && sig < NSIG ? sigabbrev_np(sig) : NULL;
        char name[32];
        int r;

        if (!abbrev)
                return invalid(err, "no such signal");
        r = process_path(id, pid, "/signal", &path, err);
        if (r < 0)
                return r;
        snprintf(name, sizeof(name), "SIG%s", abbrev);
        body = json_pack("{s:s}", "signal", name);
        if (!body)
                return no_memory(err);
        return forge__request_json(c, "POST", path, body, NULL, err);
}

FORGE_PUBLIC int forge_process_kill(ForgeClient *c, const char *id, long pid, ForgeClientError *err) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = process_path(id, pid, NULL, &path, err);
        if (r < 0)
                return r;
        return forge__request_json(c, "DELETE", path, NULL, NULL, err);
}

FORGE_PUBLIC int forge_process_write_stdin(ForgeClient *c, const char *id, long pid, const void *data,
                                           size_t size, bool close, ForgeClientError *err) {
        _cleanup_json_ json_t *body = json_object();
        _cleanup_free_ char *path = NULL, *encoded = NULL;
        int r;

        if (!body)
                return no_memory(err);
        r = process_path(id, pid, "/stdin", &path, err);
        if (r < 0)
                return r;
        if (size > 0) {
                encoded = size <= SIZE_MAX / 2 ? malloc(BASE64_ENCODED_LEN(size) + 1) : NULL;
                if (encoded)
                        base64_encode(data, size, encoded);
                if (!encoded || json_object_set_new(body, "data_base64", json_string(encoded)) < 0)
                        return no_memory(err);
        }
        if (close && json_object_set_new(body, "close", json_true()) < 0)
                return no_memory(err);
        return forge__request_json(c, "POST", path, body, NULL, err);
}

FORGE_PUBLIC int forge_process_pipe_stdin(ForgeClient *c, const char *id, long pid, int fd,
                                          ForgeClientError *err) {
        _cleanup_free_ char *buf = malloc(65536);
        int r;

        if (!buf)
                return no_memory(err);
        for (;;) {
                ssize_t n = read(fd, buf, 65536);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return forge__error_set(err, errno, 0, "local_io", "reading input: %s", strerror(errno));
                r = forge_process_write_stdin(c, id, pid, buf, (size_t) n, n == 0, err);
                if (r < 0 || n == 0)
                        return r;
        }
}

FORGE_PUBLIC void forge_process_output_clear(ForgeProcessOutput *o) {
        if (!o)
                return;
        free(o->stdout_buf.data);
        free(o->stderr_buf.data);
        free(o->status);
        memset(o, 0, sizeof(*o));
}

FORGE_PUBLIC int forge_process_output(ForgeClient *c, const char *id, long pid, ForgeProcessOutput *ret,
                                      ForgeClientError *err) {
        _cleanup_json_ json_t *answer = NULL;
        _cleanup_free_ char *path = NULL;
        ForgeProcessOutput o = {};
        int r;

        r = process_path(id, pid, "/output", &path, err);
        if (r < 0)
                return r;
        r = forge__request_json(c, "GET", path, NULL, &answer, err);
        if (r < 0)
                return r;
        if (!json_is_object(answer))
                return forge__error_set(err, EPROTO, 200, "bad_response", "the output answer is not an object");
        if (forge__buffer_from_json(json_object_get(answer, "stdout"), &o.stdout_buf) < 0 ||
            forge__buffer_from_json(json_object_get(answer, "stderr"), &o.stderr_buf) < 0 ||
            forge__json_strdup(answer, "status", &o.status) < 0) {
                forge_process_output_clear(&o);
                return no_memory(err);
        }
        o.stdout_dropped = json_u64(answer, "stdout_dropped");
        o.stderr_dropped = json_u64(answer, "stderr_dropped");
        *ret = o;
        return 0;
}
