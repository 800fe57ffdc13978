/* libforge's process calls against local fakes: a tiny HTTP server in a child process
 * that answers one connection with canned bytes (written in small pieces, so the SSE
 * parser meets cut lines), and a WebSocket server made with wslay for attach. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nettle/sha1.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <wslay/wslay.h>

#include <cmocka.h>

#include "basic/base64.h"
#include "libforge/internal.h"

typedef void (*FakeServe)(int fd, const char *request, void *arg);

typedef struct Fake {
        pid_t pid;
        char url[64];
} Fake;

/* Reads a request head into buf (NUL-terminated). */
static void read_request(int fd, char *buf, size_t size) {
        size_t n = 0;

        while (n < size - 1) {
                ssize_t k = read(fd, buf + n, size - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t) k;
                buf[n] = 0;
                if (strstr(buf, "\r\n\r\n"))
                        break;
        }
        buf[n] = 0;
}

static void write_in_pieces(int fd, const char *s, size_t len, size_t piece) {
        for (size_t at = 0; at < len; at += piece) {
                size_t n = MIN(piece, len - at);
                if (write(fd, s + at, n) != (ssize_t) n)
                        _exit(3);
                usleep(200);
        }
}

static void fake_start(Fake *f, FakeServe serve, void *arg) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *) &sa, &len), 0);
        snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
        f->pid = fork();
        assert_true(f->pid >= 0);
        if (f->pid == 0) {
                char request[8192];
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0)
                        _exit(2);
                read_request(fd, request, sizeof(request));
                serve(fd, request, arg);
                close(fd);
                _exit(0);
        }
        close(lfd);
}

static int fake_wait(Fake *f) {
        int status = 0;

        waitpid(f->pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- follow ---- */

static const char sse_body[] =
        ": hello\n\n"
        "event: stdout\ndata: {\"data_base64\": \"aGVsbG8AAQL/\"}\n\n"
        "event: stdout\ndata: {\"data_base64\":\"d29ybGQ=\"}\n\n" /* compact: read without jansson */
        "event: stdout\ndata: {\"data_base64\":\"IQ==\"}\n\n"
        "event: stderr\r\ndata: {\"data\": \"warn\\n\"}\r\n\r\n"
        "event: progress\ndata: {\"unknown\": true}\n\n"
        "event: dropped\ndata: {\"stream\": \"stdout\", \"bytes\": 4096}\n\n"
        "event: exit\ndata: {\"pid\": 12, \"argv\": [\"/bin/sh\", \"-c\", \"x\"], \"status\": \"exited\",\n"
        "data:  \"exit_code\": 3, \"signal\": null, \"pty\": false}\n\n";

static void serve_sse(int fd, const char *request, void *arg) {
        const char *body = arg;
        char head[256];
        int n;

        if (!strstr(request, "GET /v1/sandboxes/sb1/processes/12/output?follow=1&encoding=base64 HTTP/1.1") ||
            !strstr(request, "Accept: text/event-stream"))
                _exit(4);
        /* close-delimited, as a server may; chunked is libcurl's business either way */
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
        write_in_pieces(fd, head, (size_t) n, 64);
        write_in_pieces(fd, body, strlen(body), 7);
}

typedef struct Seen {
        char out[64];
        size_t out_size;
        char err[64];
        size_t err_size;
        uint64_t dropped;
        int exit_status;
        long exit_pid;
        int events;
} Seen;

static int on_event(const ForgeProcessEvent *ev, void *userdata) {
        Seen *s = userdata;

        s->events++;
        switch (ev->type) {
        case FORGE_EVENT_STDOUT:
                memcpy(s->out + s->out_size, ev->data, ev->size);
                s->out_size += ev->size;
                break;
        case FORGE_EVENT_STDERR:
                memcpy(s->err + s->err_size, ev->data, ev->size);
                s->err_size += ev->size;
                break;
        case FORGE_EVENT_DROPPED:
                assert_string_equal(ev->stream, "stdout");
                s->dropped += ev->dropped;
                break;
        case FORGE_EVENT_EXIT:
                s->exit_status = forge_process_exit_status(ev->process);
                s->exit_pid = ev->process->pid;
                assert_string_equal(ev->process->argv[2], "x");
                break;
        }
        return 0;
}

static void test_follow_decodes_events(void **state) {
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        Seen seen = {};
        Fake f;

        fake_start(&f, serve_sse, (void *) sse_body);
        assert_int_equal(forge_client_new(f.url, &c, &err), 0);
        assert_int_equal(forge_process_follow(c, "sb1", 12, FORGE_ENCODING_BASE64, on_event, &seen, &err), 0);
        assert_int_equal(fake_wait(&f), 0);
        assert_int_equal(seen.out_size, 15);
        assert_memory_equal(seen.out, "hello\0\1\2\377world!", 15);
        assert_int_equal(seen.err_size, 5);
        assert_memory_equal(seen.err, "warn\n", 5);
        assert_int_equal(seen.dropped, 4096);
        assert_int_equal(seen.exit_pid, 12);
        assert_int_equal(seen.exit_status, 3);
        assert_int_equal(seen.events, 6); /* the unknown event was skipped */
        forge_client_free(c);
}

static void test_follow_cut_short(void **state) {
        static const char body[] = "event: stdout\ndata: {\"data_base64\": \"eA==\"}\n\n";
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        Seen seen = {};
        Fake f;

        fake_start(&f, serve_sse, (void *) body);
        assert_int_equal(forge_client_new(f.url, &c, &err), 0);
        assert_int_equal(forge_process_follow(c, "sb1", 12, FORGE_ENCODING_BASE64, on_event, &seen, &err), -EPIPE);
        assert_string_equal(err.code, "bad_response");
        assert_int_equal(seen.out_size, 1);
        fake_wait(&f);
        forge_client_free(c);
}

static void test_follow_bad_event(void **state) {
        static const char body[] = "event: stdout\ndata: {\"data_base64\": \"!!!\"}\n\n";
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        Seen seen = {};
        Fake f;

        fake_start(&f, serve_sse, (void *) body);
        assert_int_equal(forge_client_new(f.url, &c, &err), 0);
        assert_int_equal(forge_process_follow(c, "sb1", 12, FORGE_ENCODING_BASE64, on_event, &seen, &err),
                         -EPROTO);
        assert_string_equal(err.code, "bad_response");
        assert_int_equal(seen.events, 0);
        fake_wait(&f);
        forge_client_free(c);
}

static void serve_error(int fd, const char *request, void *arg) {
        const char *body = arg;
        char head[256];
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                         strlen(body));

        write_in_pieces(fd, head, (size_t) n, 1000);
        write_in_pieces(fd, body, strlen(body), 1000);
}

static void test_follow_error_answer(void **state) {
        static const char body[] = "{\"error\": \"no process 99 in sandbox sb1\", \"code\": \"process_not_found\"}";
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        Seen seen = {};
        Fake f;

        fake_start(&f, serve_error, (void *) body);
        assert_int_equal(forge_client_new(f.url, &c, &err), 0);
        assert_int_equal(forge_process_follow(c, "sb1", 99, FORGE_ENCODING_TEXT, on_event, &seen, &err), -ENOENT);
        assert_string_equal(err.code, "process_not_found");
        assert_int_equal(seen.events, 0);
        fake_wait(&f);
        forge_client_free(c);
}

/* ---- the process object ---- */

static void test_process_from_json(void **state) {
        static const char *cases[][2] = {
                {"{\"pid\": 5, \"status\": \"running\", \"exit_code\": null, \"signal\": null}", "-1"},
                {"{\"pid\": 5, \"status\": \"exited\", \"exit_code\": 7, \"signal\": null}", "7"},
                {"{\"pid\": 5, \"status\": \"killed\", \"exit_code\": null, \"signal\": \"SIGKILL\"}", "137"},
                {"{\"pid\": 5, \"status\": \"killed\", \"exit_code\": 143, \"signal\": 15}", "143"},
                {"{\"pid\": 5, \"status\": \"timed_out\", \"exit_code\": 124, \"signal\": \"SIGKILL\"}", "124"},
        };
        ForgeClientError err = {};
        ForgeProcess p = {};

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *j = json_loads(cases[i][0], 0, NULL);
                assert_non_null(j);
                assert_int_equal(forge__process_from_json(j, &p, &err), 0);
                assert_int_equal(p.pid, 5);
                assert_int_equal(forge_process_exit_status(&p), atoi(cases[i][1]));
                assert_non_null(p.argv);
                assert_null(p.argv[0]);
                forge_process_clear(&p);
                json_decref(j);
        }
        json_t *j = json_loads("{\"status\": \"running\"}", 0, NULL);
        assert_int_equal(forge__process_from_json(j, &p, &err), -EPROTO);
        json_decref(j);
}

/* ---- attach ---- */

typedef struct WsFake {
        int fd;
        bool resized, exit_sent;
        char echo[64];
        size_t echo_size;
} WsFake;

static ssize_t fake_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud) {
        WsFake *w = ud;
        ssize_t n = recv(w->fd, buf, len, MSG_DONTWAIT);

        if (n > 0)
                return n;
        wslay_event_set_error(ctx, n < 0 && errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
}

static ssize_t fake_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud) {
        WsFake *w = ud;
        ssize_t n = send(w->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n >= 0)
                return n;
        wslay_event_set_error(ctx, errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
}

static void queue(wslay_event_context_ptr ctx, uint8_t opcode, const char *s, size_t len) {
        struct wslay_event_msg m = {.opcode = opcode, .msg = (const uint8_t *) s, .msg_length = len};
        if (wslay_event_queue_msg(ctx, &m) != 0)
                _exit(8);
}

/* Echoes binary input back; after a resize of 30x100 and the input "ls\r", sends the
 * exit message and closes. */
static void fake_ws_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud) {
        WsFake *w = ud;

        if (arg->opcode == WSLAY_TEXT_FRAME && arg->msg_length < 64 &&
            strstr((const char *) arg->msg, "\"type\":\"resize\"") && strstr((const char *) arg->msg, "\"rows\":30"))
                w->resized = true;
        if (arg->opcode == WSLAY_BINARY_FRAME) {
                memcpy(w->echo + w->echo_size, arg->msg, MIN(arg->msg_length, sizeof(w->echo) - w->echo_size));
                w->echo_size += arg->msg_length;
                queue(ctx, WSLAY_BINARY_FRAME, (const char *) arg->msg, arg->msg_length);
        }
        if (w->resized && !w->exit_sent && w->echo_size == 3 && memcmp(w->echo, "ls\r", 3) == 0) {
                static const char exit_msg[] = "{\"type\": \"exit\", \"pid\": 7, \"status\": \"exited\", "
                                               "\"exit_code\": 3, \"signal\": null, \"pty\": true}";
                queue(ctx, WSLAY_TEXT_FRAME, exit_msg, strlen(exit_msg));
                w->exit_sent = true;
        }
}

static void serve_websocket(int fd, const char *request, void *arg) {
        static const struct wslay_event_callbacks cbs = {
                .recv_callback = fake_ws_recv, .send_callback = fake_ws_send, .on_msg_recv_callback = fake_ws_message};
        const char *key = strstr(request, "Sec-WebSocket-Key: ");
        uint8_t digest[SHA1_DIGEST_SIZE];
        struct sha1_ctx sha;
        char buf[128], accept_key[64], head[512];
        wslay_event_context_ptr ctx;
        WsFake w = {.fd = fd};
        int n;

        if (!key || !strstr(request, "GET /v1/sandboxes/sb1/processes/7/attach HTTP/1.1") ||
            !strstr(request, "Upgrade: websocket") || !strstr(request, "Sec-WebSocket-Version: 13"))
                _exit(4);
        snprintf(buf, sizeof(buf), "%.24s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key + 19);
        sha1_init(&sha);
        sha1_update(&sha, strlen(buf), (const uint8_t *) buf);
        sha1_digest(&sha, sizeof(digest), digest);
        base64_encode(digest, sizeof(digest), accept_key);
        if (arg) /* a server that gets the key wrong */
                accept_key[0] ^= 1;
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept_key);
        if (wslay_event_context_server_init(&ctx, &cbs, &w) != 0)
                _exit(5);
        /* the first frame goes out in the same segment as the head: the client must not lose it */
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &(int){1}, sizeof(int));
        write_in_pieces(fd, head, (size_t) n, 4096);
        queue(ctx, WSLAY_BINARY_FRAME, "$ ", 2);
        if (wslay_event_send(ctx) != 0)
                _exit(9);
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &(int){0}, sizeof(int));
        while (wslay_event_want_read(ctx) || wslay_event_want_write(ctx)) {
                /* wslay sends control frames first: close only once the messages are out */
                if (w.exit_sent && wslay_event_get_queued_msg_count(ctx) == 0 && !wslay_event_get_close_sent(ctx))
                        wslay_event_queue_close(ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
                struct pollfd p = {.fd = fd, .events = (short) ((wslay_event_want_read(ctx) ? POLLIN : 0) |
                                                                (wslay_event_want_write(ctx) ? POLLOUT : 0))};
                if (poll(&p, 1, 5000) <= 0)
                        _exit(6);
                if (((p.revents & (POLLIN | POLLHUP)) && wslay_event_recv(ctx) != 0) ||
                    ((p.revents & POLLOUT) && wslay_event_send(ctx) != 0))
                        break;
        }
        wslay_event_context_free(ctx);
        _exit(w.resized ? 0 : 7);
}

typedef struct Term {
        char out[64];
        size_t out_size;
        int exit_status;
        bool exited;
} Term;

static int on_term_output(const void *bytes, size_t size, void *userdata) {
        Term *t = userdata;

        memcpy(t->out + t->out_size, bytes, MIN(size, sizeof(t->out) - t->out_size));
        t->out_size += size;
        return 0;
}

static void on_term_exit(const ForgeProcess *p, void *userdata) {
        Term *t = userdata;

        t->exited = true;
        t->exit_status = forge_process_exit_status(p);
}

static const ForgeAttachCallbacks term_cbs = {.on_output = on_term_output, .on_exit = on_term_exit};

static void test_attach_session(void **state) {
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        ForgeAttach *a = NULL;
        Term t = {};
        Fake f;
        int r = 0;

        fake_start(&f, serve_websocket, NULL);
        assert_int_equal(forge_client_new(f.url, &c, &err), 0);
        assert_int_equal(forge_attach_open(c, "sb1", 7, &term_cbs, &t, &a, &err), 0);
        assert_int_equal(forge_attach_resize(a, 30, 100), 0);
        assert_int_equal(forge_attach_send(a, "ls\r", 3), 0);
        while (r == 0) {
                struct pollfd p = {.fd = forge_attach_fd(a), .events = forge_attach_poll_events(a)};
                assert_true(poll(&p, 1, 5000) >= 0);
                r = forge_attach_dispatch(a, p.revents, &err);
        }
        assert_int_equal(r, 1);
        assert_true(t.exited);
        assert_int_equal(t.exit_status, 3);
        assert_int_equal(t.out_size, 5);
        assert_memory_equal(t.out, "$ ls\r", 5);
        forge_attach_free(a);
        assert_int_equal(fake_wait(&f), 0);
        forge_client_free(c);
}

static void test_attach_refused(void **state) {
        static const char body[] = "{\"error\": \"process 7 has no terminal\", \"code\": \"no_pty\"}";
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        ForgeAttach *a = NULL;
        Fake f;

        fake_start(&f, serve_error, (void *) body);
        assert_int_equal(forge_client_new(f.url, &c, &err), 0);
        assert_int_equal(forge_attach_open(c, "sb1", 7, &term_cbs, NULL, &a, &err), -ENOTTY);
        assert_int_equal(err.status, 409);
        assert_string_equal(err.code, "no_pty");
        assert_string_equal(err.message, "process 7 has no terminal");
        assert_null(a);
        fake_wait(&f);
        forge_client_free(c);
}

static void test_attach_bad_handshake(void **state) {
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        ForgeAttach *a = NULL;
        Fake f;

        fake_start(&f, serve_websocket, (void *) "wrong key");
        assert_int_equal(forge_client_new(f.url, &c, &err), 0);
        assert_int_equal(forge_attach_open(c, "sb1", 7, &term_cbs, NULL, &a, &err), -EPROTO);
        assert_string_equal(err.code, "bad_response");
        kill(f.pid, SIGKILL);
        fake_wait(&f);
        forge_client_free(c);
}

static void test_attach_no_server(void **state) {
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        ForgeAttach *a = NULL;

        assert_int_equal(forge_client_new("http://127.0.0.1:9", &c, &err), 0);
        assert_true(forge_attach_open(c, "sb1", 7, &term_cbs, NULL, &a, &err) < 0);
        assert_string_equal(err.code, "connection_failed");
        forge_client_free(c);
        assert_int_equal(forge_client_new("https://127.0.0.1:9", &c, &err), 0);
        assert_int_equal(forge_attach_open(c, "sb1", 7, &term_cbs, NULL, &a, &err), -EPROTONOSUPPORT);
        forge_client_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_follow_decodes_events), cmocka_unit_test(test_follow_cut_short),
                cmocka_unit_test(test_follow_bad_event),      cmocka_unit_test(test_follow_error_answer),
                cmocka_unit_test(test_process_from_json),
                cmocka_unit_test(test_attach_session),        cmocka_unit_test(test_attach_refused),
                cmocka_unit_test(test_attach_bad_handshake),  cmocka_unit_test(test_attach_no_server),
        };
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
