/* daemon/http against raw sockets: the server runs in a libuv loop on this thread, a
 * client scenario runs on a helper thread with blocking sockets and records what it
 * saw; the assertions run here once both are done (cmocka is not thread-safe). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "basic/log.h"
#include "daemon/http/http.h"

/* ---- the server side ---- */

typedef struct Fixture {
        uv_loop_t loop;
        uv_async_t done;
        HttpServer *server;
        int port;
        int aborts;
        int write_after_abort;
        int body_end_status;
        size_t slow_written;
} Fixture;

static void on_echo_body(HttpRequest *r, int status, const char *body, size_t len, void *userdata) {
        const char *q = http_request_query(r, "q", NULL);
        char *text;
        int n;

        if (status != 0) {
                http_request_unref(r);
                return;
        }
        n = asprintf(&text, "method=%s path=%s q=%s len=%zu body=%s", http_request_method(r),
                     http_request_path(r), q ? q : "(none)", len, body);
        assert_true(n > 0);
        http_respond(r, 200, "text/plain", text, (size_t) n);
        free(text);
        http_request_unref(r);
}

static void route_query(HttpRequest *r) {
        char text[1024] = "", item[256];
        bool invalid_nul = false, invalid_a = true;
        const char *a = http_request_query(r, "a", &invalid_a);
        const char *nul = http_request_query(r, "nul", &invalid_nul);

        snprintf(text, sizeof(text), "a=[%s] a_invalid=%d nul=%s nul_invalid=%d count=%zu", a ? a : "(null)",
                 invalid_a, nul ? nul : "(null)", invalid_nul, http_request_query_count(r));
        for (size_t i = 0; i < http_request_query_count(r); i++) {
                const char *k, *v;
                int rc = http_request_query_at(r, i, &k, &v);
                snprintf(item, sizeof(item), " %s=%s(%d)", k, v ? v : "NULL", rc);
                strncat(text, item, sizeof(text) - strlen(text) - 1);
        }
        http_respond(r, 200, "text/plain", text, strlen(text));
}

static void route_chunks(HttpRequest *r) {
        char piece[64];

        http_response_header(r, "X-Test", "chunks");
        assert_int_equal(http_response_begin(r, 200, "text/plain"), 0);
        for (int i = 0; i < 10; i++) {
                int n = snprintf(piece, sizeof(piece), "piece-%d;", i);
                assert_int_equal(http_response_write(r, piece, (size_t) n), 0);
        }
        assert_int_equal(http_response_end(r), 0);
}

/* A large streamed response that honours backpressure; the client hangs up midway. */
typedef struct SlowCtx {
        Fixture *f;
        HttpRequest *req;
        bool aborted;
} SlowCtx;

static void slow_pump(HttpRequest *r, void *userdata);

static void slow_on_abort(HttpRequest *r, void *userdata) {
        SlowCtx *ctx = userdata;
        static const char more[] = "more";

        ctx->f->aborts++;
        ctx->aborted = true;
        ctx->f->write_after_abort = http_response_write(r, more, sizeof(more));
        http_request_unref(ctx->req);
        free(ctx);
}

static void slow_pump(HttpRequest *r, void *userdata) {
        SlowCtx *ctx = userdata;
        static char block[64 * 1024];

        memset(block, 'x', sizeof(block));
        while (http_response_pending(r) < 256 * 1024) {
                if (ctx->f->slow_written >= (size_t) 512 * 1024 * 1024) {
                        http_response_end(r); /* never expected: the client leaves first */
                        return;
                }
                if (http_response_write(r, block, sizeof(block)) < 0)
                        return;
                ctx->f->slow_written += sizeof(block);
        }
        http_response_on_drained(r, slow_pump, ctx);
}

static void route_slow(Fixture *f, HttpRequest *r) {
        SlowCtx *ctx = calloc(1, sizeof(*ctx));

        assert_non_null(ctx);
        ctx->f = f;
        ctx->req = http_request_ref(r);
        http_request_on_abort(r, slow_on_abort, ctx);
        http_response_begin(r, 200, "application/octet-stream");
        slow_pump(r, ctx);
}

/* A streamed upload, paused after every piece and resumed from a timer. */
typedef struct UploadCtx {
        Fixture *f;
        HttpRequest *req;
        uv_timer_t timer;
        uint64_t bytes;
        uint32_t sum;
} UploadCtx;

static void upload_on_timer_closed(uv_handle_t *h) {
        UploadCtx *ctx = h->data;
        http_request_unref(ctx->req);
        free(ctx);
}

static void upload_on_timer(uv_timer_t *t) {
        UploadCtx *ctx = t->data;
        http_request_resume(ctx->req);
}

static void upload_on_chunk(HttpRequest *r, const char *data, size_t len, void *userdata) {
        UploadCtx *ctx = userdata;

        for (size_t i = 0; i < len; i++)
                ctx->sum = ctx->sum * 31 + (unsigned char) data[i];
        ctx->bytes += len;
        http_request_pause(r);
        uv_timer_start(&ctx->timer, upload_on_timer, 0, 0);
}

static void upload_on_end(HttpRequest *r, int status, void *userdata) {
        UploadCtx *ctx = userdata;
        char text[128];
        int n;

        ctx->f->body_end_status = status;
        if (status == 0) {
                n = snprintf(text, sizeof(text), "bytes=%llu sum=%08x", (unsigned long long) ctx->bytes,
                             ctx->sum);
                http_respond(r, 200, "text/plain", text, (size_t) n);
        }
        uv_close((uv_handle_t *) &ctx->timer, upload_on_timer_closed);
}

static void route_upload(Fixture *f, HttpRequest *r) {
        UploadCtx *ctx = calloc(1, sizeof(*ctx));

        assert_non_null(ctx);
        ctx->f = f;
        ctx->req = http_request_ref(r);
        uv_timer_init(&f->loop, &ctx->timer);
        ctx->timer.data = ctx;
        http_request_stream_body(r, upload_on_chunk, upload_on_end, ctx);
}

static void hold_on_abort(HttpRequest *r, void *userdata) {
        Fixture *f = userdata;

        f->aborts++;
        f->write_after_abort = http_respond(r, 200, NULL, NULL, 0);
        http_request_unref(r);
}

static void cut_on_drained(HttpRequest *r, void *userdata) {
        http_response_write(r, "partial", 7);
        http_response_abort(r);
        assert_int_equal(http_response_write(r, "more", 4), -EALREADY);
        http_request_unref(r);
}

static void test_handler(HttpRequest *r, void *userdata) {
        Fixture *f = userdata;
        const char *path = http_request_path(r);

        if (strcmp(path, "/echo") == 0) {
                http_request_read_body(http_request_ref(r), on_echo_body, f);
        } else if (strcmp(path, "/query") == 0)
                route_query(r);
        else if (strcmp(path, "/chunks") == 0)
                route_chunks(r);
        else if (strcmp(path, "/slow") == 0)
                route_slow(f, r);
        else if (strcmp(path, "/upload") == 0)
                route_upload(f, r);
        else if (strcmp(path, "/hold") == 0) {
                /* Never answered: only the server going away ends it. */
                http_request_ref(r);
                http_request_on_abort(r, hold_on_abort, f);
        } else if (strcmp(path, "/cut") == 0) {
                http_response_begin(r, 200, "text/plain");
                /* Nothing is pending: on_drained runs soon, not from inside this call. */
                http_response_on_drained(http_request_ref(r), cut_on_drained, f);
        } else if (strcmp(path, "/big") == 0) {
                size_t n = 8 * 1024 * 1024;
                char *big = malloc(n);
                for (size_t i = 0; i < n; i++)
                        big[i] = (char) ('a' + i % 26);
                http_respond(r, 200, "application/octet-stream", big, n);
                free(big);
        } else if (strcmp(path, "/nobody") == 0)
                http_respond(r, 200, "text/plain", "ok", 2);
        else
                http_respond(r, 404, "application/json", "{}", 2);
}

static void on_done(uv_async_t *a) {
        uv_stop(a->loop);
}

static int fixture_setup(void **state, HttpLimits limits) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(uv_async_init(&f->loop, &f->done, on_done), 0);
        assert_int_equal(http_server_new(&f->loop, &limits, test_handler, f, &f->server), 0);
        assert_int_equal(http_server_listen(f->server, "127.0.0.1", 0), 0);
        f->port = http_server_port(f->server);
        assert_true(f->port > 0);
        *state = f;
        return 0;
}

static int setup(void **state) {
        return fixture_setup(state, (HttpLimits){
                                            .max_header_bytes = 8192,
                                            .max_body_bytes = 4096,
                                            .max_connections = 8,
                                            .idle_timeout_ms = 2000,
                                            .max_url_bytes = 2048,
                                    });
}

static int setup_tight(void **state) {
        return fixture_setup(state, (HttpLimits){
                                            .max_header_bytes = 8192,
                                            .max_body_bytes = 4096,
                                            .max_connections = 2,
                                            .idle_timeout_ms = 500,
                                    });
}

static int teardown(void **state) {
        Fixture *f = *state;

        http_server_free(f->server);
        uv_close((uv_handle_t *) &f->done, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        free(f);
        return 0;
}

/* ---- the client side (helper thread, no cmocka calls) ---- */

typedef struct Client {
        int fd;
        char *buf;
        size_t len, cap;
} Client;

typedef struct Reply {
        int status;
        char head[4096];
        char *body;
        size_t body_len;
} Reply;

static int client_open(Client *c, int port) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
        struct timeval tv = {.tv_sec = 10};

        memset(c, 0, sizeof(*c));
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return -1;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        return connect(c->fd, (struct sockaddr *) &addr, sizeof(addr));
}

static void client_close(Client *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        free(c->buf);
        c->buf = NULL;
}

static int client_send(Client *c, const void *data, size_t len) {
        const char *p = data;

        while (len > 0) {
                ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
                if (n <= 0)
                        return -1;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int client_sends(Client *c, const char *s) {
        return client_send(c, s, strlen(s));
}

static int client_fill(Client *c) {
        ssize_t n;

        if (c->cap - c->len < 65536) {
                c->cap = c->cap * 2 + 65536;
                c->buf = realloc(c->buf, c->cap + 1);
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n <= 0)
                return -1;
        c->len += (size_t) n;
        return 0;
}

static void client_consume(Client *c, size_t n) {
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
}

static int client_need(Client *c, size_t n) {
        while (c->len < n)
                if (client_fill(c) < 0)
                        return -1;
        return 0;
}

static char *client_find(Client *c, const char *s) {
        return c->buf ? memmem(c->buf, c->len, s, strlen(s)) : NULL;
}

static const char *reply_header(const Reply *r, const char *name, char *out, size_t size) {
        char pattern[128];
        const char *p, *end;

        snprintf(pattern, sizeof(pattern), "\r\n%s:", name);
        p = strcasestr(r->head, pattern);
        if (!p)
                return NULL;
        p += strlen(pattern);
        p += strspn(p, " ");
        end = strstr(p, "\r\n");
        snprintf(out, size, "%.*s", (int) (end - p), p);
        return out;
}

static int reply_append(Reply *r, const char *data, size_t len) {
        r->body = realloc(r->body, r->body_len + len + 1);
        memcpy(r->body + r->body_len, data, len);
        r->body_len += len;
        r->body[r->body_len] = 0;
        return 0;
}

static int client_read_chunked(Client *c, Reply *r) {
        for (;;) {
                char *eol;
                size_t size;

                while (!(eol = client_find(c, "\r\n")))
                        if (client_fill(c) < 0)
                                return -1;
                size = strtoul(c->buf, NULL, 16);
                client_consume(c, (size_t) (eol - c->buf) + 2);
                if (client_need(c, size + 2) < 0)
                        return -1;
                reply_append(r, c->buf, size);
                client_consume(c, size + 2);
                if (size == 0)
                        return 0;
        }
}

/* Reads one response; the body is reassembled from Content-Length, chunks or EOF. */
static int client_read_reply(Client *c, Reply *r) {
        char value[64];
        char *end;
        size_t head_len;

        memset(r, 0, sizeof(*r));
        reply_append(r, "", 0);
        while (!(end = client_find(c, "\r\n\r\n")))
                if (client_fill(c) < 0)
                        return -1;
        head_len = (size_t) (end - c->buf) + 4;
        snprintf(r->head, sizeof(r->head), "%.*s", (int) head_len, c->buf);
        client_consume(c, head_len);
        if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
                return -1;
        if (r->status < 200 || r->status == 204 || r->status == 304)
                return 0;
        if (reply_header(r, "Content-Length", value, sizeof(value))) {
                size_t n = strtoul(value, NULL, 10);
                if (client_need(c, n) < 0)
                        return -1;
                reply_append(r, c->buf, n);
                client_consume(c, n);
                return 0;
        }
        if (reply_header(r, "Transfer-Encoding", value, sizeof(value)))
                return client_read_chunked(c, r);
        while (client_fill(c) == 0)
                ;
        reply_append(r, c->buf ? c->buf : "", c->len);
        c->len = 0;
        return 0;
}

static void reply_free(Reply *r) {
        free(r->body);
        r->body = NULL;
}

/* Whether the server has closed: EOF with nothing more to read. */
static bool client_sees_eof(Client *c) {
        char byte;
        return c->len == 0 && recv(c->fd, &byte, 1, 0) == 0;
}

/* ---- running a scenario ---- */

typedef struct Scenario {
        Fixture *f;
        void (*run)(struct Scenario *s);
        Reply replies[4];
        int rc[4];
        bool eof;
        char note[256];
        long value;
} Scenario;

static void *scenario_thread(void *userdata) {
        Scenario *s = userdata;

        s->run(s);
        uv_async_send(&s->f->done);
        return NULL;
}

static void scenario_run(Fixture *f, Scenario *s) {
        pthread_t thread;

        s->f = f;
        assert_int_equal(pthread_create(&thread, NULL, scenario_thread, s), 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(pthread_join(thread, NULL), 0);
}

static void scenario_free(Scenario *s) {
        for (size_t i = 0; i < 4; i++)
                reply_free(&s->replies[i]);
}

/* Sends one raw request on a new connection, reads one reply and whether EOF follows. */
static const char *one_shot_request;
static void run_one_shot(Scenario *s) {
        Client c;

        if (client_open(&c, s->f->port) < 0 || client_sends(&c, one_shot_request) < 0) {
                s->rc[0] = -1;
                client_close(&c);
                return;
        }
        s->rc[0] = client_read_reply(&c, &s->replies[0]);
        s->eof = client_sees_eof(&c);
        client_close(&c);
}

static void one_shot(Fixture *f, Scenario *s, const char *request) {
        one_shot_request = request;
        s->run = run_one_shot;
        scenario_run(f, s);
}

/* ---- tests ---- */

static void test_simple_get(void **state) {
        Scenario s = {};
        char value[64];

        one_shot(*state, &s, "GET /echo?q=hi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.replies[0].status, 200);
        assert_string_equal(s.replies[0].body, "method=GET path=/echo q=hi len=0 body=");
        assert_non_null(reply_header(&s.replies[0], "Connection", value, sizeof(value)));
        assert_string_equal(value, "close");
        assert_true(s.eof);
        scenario_free(&s);
}

static void test_post_content_length(void **state) {
        Scenario s = {};

        one_shot(*state, &s,
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello "
                 "world");
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.replies[0].status, 200);
        assert_string_equal(s.replies[0].body, "method=POST path=/echo q=(none) len=11 body=hello world");
        scenario_free(&s);
}

static void test_chunked_request_body(void **state) {
        Scenario s = {};

        one_shot(*state, &s,
                 "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                 "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n");
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.replies[0].status, 200);
        assert_string_equal(s.replies[0].body, "method=POST path=/echo q=(none) len=11 body=hello world");
        scenario_free(&s);
}

static void run_keep_alive(Scenario *s) {
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "GET /echo?q=1 HTTP/1.1\r\n\r\n");
        s->rc[0] = client_read_reply(&c, &s->replies[0]);
        /* An unread body is drained and the connection carries on. */
        client_sends(&c, "POST /nobody HTTP/1.1\r\nContent-Length: 5\r\n\r\n12345");
        s->rc[1] = client_read_reply(&c, &s->replies[1]);
        client_sends(&c, "GET /echo?q=2 HTTP/1.1\r\n\r\n");
        s->rc[2] = client_read_reply(&c, &s->replies[2]);
        client_close(&c);
}

static void test_keep_alive(void **state) {
        Scenario s = {.run = run_keep_alive};
        char value[64];

        scenario_run(*state, &s);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(s.rc[i], 0);
                assert_int_equal(s.replies[i].status, 200);
                assert_null(reply_header(&s.replies[i], "Connection", value, sizeof(value)));
        }
        assert_string_equal(s.replies[0].body, "method=GET path=/echo q=1 len=0 body=");
        assert_string_equal(s.replies[1].body, "ok");
        assert_string_equal(s.replies[2].body, "method=GET path=/echo q=2 len=0 body=");
        scenario_free(&s);
}

static void run_pipelined(Scenario *s) {
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "POST /echo?q=a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                         "GET /chunks HTTP/1.1\r\n\r\n"
                         "POST /echo?q=c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
                         "GET /echo?q=d HTTP/1.1\r\nConnection: close\r\n\r\n");
        for (int i = 0; i < 4; i++)
                s->rc[i] = client_read_reply(&c, &s->replies[i]);
        s->eof = client_sees_eof(&c);
        client_close(&c);
}

static void test_pipelined(void **state) {
        Scenario s = {.run = run_pipelined};
        char value[64];

        scenario_run(*state, &s);
        for (int i = 0; i < 4; i++) {
                assert_int_equal(s.rc[i], 0);
                assert_int_equal(s.replies[i].status, 200);
        }
        assert_string_equal(s.replies[0].body, "method=POST path=/echo q=a len=3 body=abc");
        assert_string_equal(
                s.replies[1].body,
                "piece-0;piece-1;piece-2;piece-3;piece-4;piece-5;piece-6;piece-7;piece-8;piece-9;");
        assert_non_null(reply_header(&s.replies[1], "Transfer-Encoding", value, sizeof(value)));
        assert_string_equal(value, "chunked");
        assert_non_null(reply_header(&s.replies[1], "X-Test", value, sizeof(value)));
        assert_string_equal(s.replies[2].body, "method=POST path=/echo q=c len=2 body=xy");
        assert_string_equal(s.replies[3].body, "method=GET path=/echo q=d len=0 body=");
        assert_true(s.eof);
        scenario_free(&s);
}

static void test_http10(void **state) {
        Scenario s = {};
        char value[64];

        one_shot(*state, &s, "GET /chunks HTTP/1.0\r\n\r\n");
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.replies[0].status, 200);
        /* No chunked encoding for 1.0: the body ends with the connection. */
        assert_null(reply_header(&s.replies[0], "Transfer-Encoding", value, sizeof(value)));
        assert_string_equal(
                s.replies[0].body,
                "piece-0;piece-1;piece-2;piece-3;piece-4;piece-5;piece-6;piece-7;piece-8;piece-9;");
        scenario_free(&s);
}

static void run_expect_continue(Scenario *s) {
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
        s->rc[0] = client_read_reply(&c, &s->replies[0]); /* the 100 */
        client_sends(&c, "body");
        s->rc[1] = client_read_reply(&c, &s->replies[1]);
        client_close(&c);

        /* Answered without reading: no 100, and the connection closes. */
        client_open(&c, s->f->port);
        client_sends(&c, "PUT /nobody HTTP/1.1\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n");
        s->rc[2] = client_read_reply(&c, &s->replies[2]);
        s->eof = client_sees_eof(&c);
        client_close(&c);
}

static void test_expect_continue(void **state) {
        Scenario s = {.run = run_expect_continue};
        char value[64];

        scenario_run(*state, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.replies[0].status, 100);
        assert_int_equal(s.rc[1], 0);
        assert_int_equal(s.replies[1].status, 200);
        assert_string_equal(s.replies[1].body, "method=POST path=/echo q=(none) len=4 body=body");
        assert_int_equal(s.rc[2], 0);
        assert_int_equal(s.replies[2].status, 200);
        assert_non_null(reply_header(&s.replies[2], "Connection", value, sizeof(value)));
        assert_string_equal(value, "close");
        assert_true(s.eof);
        scenario_free(&s);
}

static void assert_json_error(const Scenario *s, int status, const char *body) {
        char value[64];

        assert_int_equal(s->rc[0], 0);
        assert_int_equal(s->replies[0].status, status);
        assert_string_equal(s->replies[0].body, body);
        assert_non_null(reply_header(&s->replies[0], "Content-Type", value, sizeof(value)));
        assert_string_equal(value, "application/json");
        assert_non_null(reply_header(&s->replies[0], "Connection", value, sizeof(value)));
        assert_string_equal(value, "close");
        assert_true(s->eof);
}

static void test_body_too_large(void **state) {
        static const char expected[] =
                "{\"error\":\"request body too large\",\"code\":\"payload_too_large\"}";
        Scenario s = {};

        one_shot(*state, &s, "POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
        assert_json_error(&s, 413, expected);
        scenario_free(&s);
}

static void run_chunked_too_large(Scenario *s) {
        Client c;
        char chunk[1100];

        memset(chunk, 'z', sizeof(chunk));
        client_open(&c, s->f->port);
        client_sends(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 5; i++) {
                char size[16];
                snprintf(size, sizeof(size), "%zx\r\n", sizeof(chunk));
                if (client_sends(&c, size) < 0 || client_send(&c, chunk, sizeof(chunk)) < 0 ||
                    client_sends(&c, "\r\n") < 0)
                        break;
        }
        s->rc[0] = client_read_reply(&c, &s->replies[0]);
        s->eof = client_sees_eof(&c);
        client_close(&c);
}

static void test_chunked_body_too_large(void **state) {
        static const char expected[] =
                "{\"error\":\"request body too large\",\"code\":\"payload_too_large\"}";
        Scenario s = {.run = run_chunked_too_large};

        scenario_run(*state, &s);
        assert_json_error(&s, 413, expected);
        scenario_free(&s);
}

static void test_header_too_large(void **state) {
        static const char expected[] =
                "{\"error\":\"request header too large\",\"code\":\"header_too_large\"}";
        size_t big = 20000;
        char *request = malloc(big + 128);
        Scenario s = {};

        strcpy(request, "GET /echo HTTP/1.1\r\nX-Big: ");
        memset(request + strlen(request), 'a', big);
        strcpy(request + strlen("GET /echo HTTP/1.1\r\nX-Big: ") + big, "\r\n\r\n");
        one_shot(*state, &s, request);
        assert_json_error(&s, 431, expected);
        scenario_free(&s);
        free(request);
}

static void test_too_many_headers(void **state) {
        static const char expected[] =
                "{\"error\":\"request header too large\",\"code\":\"header_too_large\"}";
        char request[4096] = "GET /echo HTTP/1.1\r\n";
        Scenario s = {};

        for (int i = 0; i < 120; i++)
                snprintf(request + strlen(request), sizeof(request) - strlen(request), "H%d: v\r\n", i);
        strcat(request, "\r\n");
        one_shot(*state, &s, request);
        assert_json_error(&s, 431, expected);
        scenario_free(&s);
}

static void test_uri_too_long(void **state) {
        static const char expected[] = "{\"error\":\"request URL too long\",\"code\":\"uri_too_long\"}";
        char request[4096] = "GET /";
        Scenario s = {};

        memset(request + 5, 'u', 3000);
        strcpy(request + 3005, " HTTP/1.1\r\n\r\n");
        one_shot(*state, &s, request);
        assert_json_error(&s, 414, expected);
        scenario_free(&s);
}

static void test_malformed_request_line(void **state) {
        static const char expected[] = "{\"error\":\"malformed HTTP request\",\"code\":\"bad_request\"}";
        Scenario s = {};

        one_shot(*state, &s, "GARBAGE\r\n\r\n");
        assert_json_error(&s, 400, expected);
        scenario_free(&s);

        /* Content-Length together with chunked is a smuggling attempt. */
        memset(&s, 0, sizeof(s));
        one_shot(*state, &s,
                 "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        assert_json_error(&s, 400, expected);
        scenario_free(&s);
}

static void test_query_decoding(void **state) {
        Scenario s = {};

        one_shot(*state, &s,
                 "GET /query?a=hello+w%6Frld%21&a=second&nul=x%00y&metadata.k%3D1=v%20v&flag&bad=%zz "
                 "HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.replies[0].status, 200);
        assert_string_equal(s.replies[0].body,
                            "a=[hello world!] a_invalid=0 nul=(null) nul_invalid=1 count=6"
                            " a=hello world!(0) a=second(0) nul=(-22)"
                            " metadata.k=1=v v(0) flag=(0) bad=%zz(0)");
        scenario_free(&s);
}

static void test_chunked_response(void **state) {
        Scenario s = {};

        one_shot(*state, &s, "GET /chunks HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_int_equal(s.rc[0], 0);
        assert_string_equal(
                s.replies[0].body,
                "piece-0;piece-1;piece-2;piece-3;piece-4;piece-5;piece-6;piece-7;piece-8;piece-9;");
        scenario_free(&s);
}

static void run_disconnect(Scenario *s) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "GET /slow HTTP/1.1\r\n\r\n");
        client_need(&c, 100000);
        s->value = (long) c.len;
        /* A reset, so the server notices at once. */
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        client_close(&c);
        usleep(300 * 1000);
}

static void test_disconnect_aborts_once(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_disconnect};

        scenario_run(f, &s);
        assert_true(s.value >= 100000);
        assert_int_equal(f->aborts, 1);
        assert_int_equal(f->write_after_abort, -ECONNRESET);
        scenario_free(&s);
}

static void run_max_connections(Scenario *s) {
        Client a, b, c;

        client_open(&a, s->f->port);
        client_open(&b, s->f->port);
        usleep(100 * 1000);
        client_open(&c, s->f->port);
        s->rc[0] = client_read_reply(&c, &s->replies[0]);
        s->eof = client_sees_eof(&c);
        client_close(&c);
        /* The two that got in are served. */
        client_sends(&a, "GET /echo?q=a HTTP/1.1\r\n\r\n");
        s->rc[1] = client_read_reply(&a, &s->replies[1]);
        client_close(&a);
        client_close(&b);
}

static void test_max_connections(void **state) {
        static const char expected[] = "{\"error\":\"too many connections\",\"code\":\"at_capacity\"}";
        Scenario s = {.run = run_max_connections};

        scenario_run(*state, &s);
        assert_json_error(&s, 503, expected);
        assert_int_equal(s.rc[1], 0);
        assert_int_equal(s.replies[1].status, 200);
        scenario_free(&s);
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1000 + (double) ts.tv_nsec / 1e6;
}

static void run_slowloris(Scenario *s) {
        static const char head[] = "GET /echo HTTP/1.1\r\nX-Slow: "
                                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        double start = now_ms();
        Client c;

        client_open(&c, s->f->port);
        s->value = -1;
        for (size_t i = 0; i < sizeof(head) - 1 && now_ms() - start < 5000; i++) {
                char byte;
                if (send(c.fd, &head[i], 1, MSG_NOSIGNAL) < 0 || recv(c.fd, &byte, 1, MSG_DONTWAIT) == 0) {
                        s->value = (long) (now_ms() - start);
                        break;
                }
                usleep(100 * 1000);
        }
        client_close(&c);
}

static void test_slowloris(void **state) {
        Scenario s = {.run = run_slowloris};

        scenario_run(*state, &s);
        /* idle_timeout_ms is 500 in this fixture; the trickle does not extend it. */
        assert_true(s.value >= 400);
        assert_true(s.value < 2000);
        scenario_free(&s);
}

static void run_idle_keep_alive(Scenario *s) {
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "GET /nobody HTTP/1.1\r\n\r\n");
        s->rc[0] = client_read_reply(&c, &s->replies[0]);
        s->value = (long) now_ms();
        s->eof = client_sees_eof(&c);
        s->value = (long) now_ms() - s->value;
        client_close(&c);
}

static void test_idle_keep_alive_closed(void **state) {
        Scenario s = {.run = run_idle_keep_alive};

        scenario_run(*state, &s);
        assert_int_equal(s.replies[0].status, 200);
        assert_true(s.eof);
        assert_true(s.value >= 400 && s.value < 2000);
        scenario_free(&s);
}

#define UPLOAD_BYTES (20 * 1024 * 1024)

static uint32_t pattern_sum(size_t n) {
        uint32_t sum = 0;
        for (size_t i = 0; i < n; i++)
                sum = sum * 31 + (unsigned char) (i * 7 + i / 1000);
        return sum;
}

static void run_upload(Scenario *s) {
        char *data = malloc(UPLOAD_BYTES);
        char head[256];
        Client c;

        for (size_t i = 0; i < UPLOAD_BYTES; i++)
                data[i] = (char) (i * 7 + i / 1000);
        client_open(&c, s->f->port);
        snprintf(head, sizeof(head), "PUT /upload HTTP/1.1\r\nContent-Length: %d\r\n\r\n", UPLOAD_BYTES);
        client_sends(&c, head);
        s->rc[1] = client_send(&c, data, UPLOAD_BYTES);
        s->rc[0] = client_read_reply(&c, &s->replies[0]);

        /* Chunked, in odd-sized pieces, on the same connection. */
        client_sends(&c, "PUT /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (size_t off = 0; off < UPLOAD_BYTES / 4;) {
                size_t n = MIN((size_t) 70001, (size_t) UPLOAD_BYTES / 4 - off);
                char size[16];
                snprintf(size, sizeof(size), "%zx\r\n", n);
                client_sends(&c, size);
                client_send(&c, data + off, n);
                client_sends(&c, "\r\n");
                off += n;
        }
        client_sends(&c, "0\r\n\r\n");
        s->rc[2] = client_read_reply(&c, &s->replies[1]);
        client_close(&c);
        free(data);
}

static void test_streamed_upload(void **state) {
        Scenario s = {.run = run_upload};
        char expected[128];

        scenario_run(*state, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.rc[1], 0);
        assert_int_equal(s.replies[0].status, 200);
        snprintf(expected, sizeof(expected), "bytes=%d sum=%08x", UPLOAD_BYTES, pattern_sum(UPLOAD_BYTES));
        assert_string_equal(s.replies[0].body, expected);
        assert_int_equal(s.rc[2], 0);
        snprintf(expected, sizeof(expected), "bytes=%d sum=%08x", UPLOAD_BYTES / 4,
                 pattern_sum(UPLOAD_BYTES / 4));
        assert_string_equal(s.replies[1].body, expected);
        scenario_free(&s);
}

static void run_upload_abort(Scenario *s) {
        char data[65536] = {};
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "PUT /upload HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n");
        client_send(&c, data, sizeof(data));
        client_close(&c);
        usleep(300 * 1000);
}

static void test_streamed_upload_broken_off(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_upload_abort};

        scenario_run(f, &s);
        assert_int_equal(f->body_end_status, -ECONNRESET);
        scenario_free(&s);
}

static void run_big(Scenario *s) {
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "GET /big HTTP/1.1\r\n\r\n");
        usleep(200 * 1000); /* let the queue build up */
        s->rc[0] = client_read_reply(&c, &s->replies[0]);
        client_sends(&c, "GET /nobody HTTP/1.1\r\n\r\n");
        s->rc[1] = client_read_reply(&c, &s->replies[1]);
        client_close(&c);
}

static void test_big_whole_response(void **state) {
        Scenario s = {.run = run_big};
        bool intact = true;

        scenario_run(*state, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.replies[0].body_len, 8 * 1024 * 1024);
        for (size_t i = 0; i < s.replies[0].body_len; i++)
                if (s.replies[0].body[i] != (char) ('a' + i % 26))
                        intact = false;
        assert_true(intact);
        assert_int_equal(s.rc[1], 0);
        assert_string_equal(s.replies[1].body, "ok");
        scenario_free(&s);
}

static void run_hold(Scenario *s) {
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "GET /hold HTTP/1.1\r\n\r\n");
        usleep(200 * 1000);
        /* Left open: the server is freed under it. */
        s->value = c.fd;
}

static void test_server_free_aborts_in_flight(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_hold};

        scenario_run(f, &s);
        assert_int_equal(f->aborts, 0);
        http_server_free(f->server);
        f->server = NULL;
        assert_int_equal(f->aborts, 1);
        assert_int_equal(f->write_after_abort, -ECONNRESET);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        close((int) s.value);
        scenario_free(&s);
}

static void test_response_abort(void **state) {
        Fixture *f = *state;
        Scenario s = {};

        one_shot(f, &s, "GET /cut HTTP/1.1\r\n\r\n");
        /* The body never completes: the client must not take it for a whole one. */
        assert_int_equal(s.rc[0], -1);
        assert_int_equal(s.replies[0].status, 200);
        assert_string_equal(s.replies[0].body, "partial");
        assert_int_equal(f->aborts, 0);
        scenario_free(&s);
}

int main(void) {
        /* As in forged: a write to a reset connection must be an error, not a signal. */
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_simple_get, setup, teardown),
                cmocka_unit_test_setup_teardown(test_post_content_length, setup, teardown),
                cmocka_unit_test_setup_teardown(test_chunked_request_body, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
                cmocka_unit_test_setup_teardown(test_http10, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
                cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
                cmocka_unit_test_setup_teardown(test_chunked_body_too_large, setup, teardown),
                cmocka_unit_test_setup_teardown(test_header_too_large, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_many_headers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_uri_too_long, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed_request_line, setup, teardown),
                cmocka_unit_test_setup_teardown(test_query_decoding, setup, teardown),
                cmocka_unit_test_setup_teardown(test_chunked_response, setup, teardown),
                cmocka_unit_test_setup_teardown(test_disconnect_aborts_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_max_connections, setup_tight, teardown),
                cmocka_unit_test_setup_teardown(test_slowloris, setup_tight, teardown),
                cmocka_unit_test_setup_teardown(test_idle_keep_alive_closed, setup_tight, teardown),
                cmocka_unit_test_setup_teardown(test_streamed_upload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_streamed_upload_broken_off, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_free_aborts_in_flight, setup, teardown),
                cmocka_unit_test_setup_teardown(test_response_abort, setup, teardown),
                cmocka_unit_test_setup_teardown(test_big_whole_response, setup, teardown),
        };

        log_setup(LOG_LEVEL_WARN, 0);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
