/* What test_ws.c and test_sse.c share: a server in a libuv loop on the test's thread, a
 * client scenario on a helper thread with blocking sockets that records what it saw,
 * and the assertions back on the test's thread once both are done (cmocka is not
 * thread-safe). test_http.c predates this file and keeps its own copy. */
#pragma once

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macros.h"
#include "daemon/http/http.h"

/* ---- the server side ---- */

typedef struct Fixture {
        uv_loop_t loop;
        uv_async_t done;
        HttpServer *server;
        int port;
        /* What the handlers saw; each test file uses the ones it needs. */
        int aborts, closes, messages, violations;
        int rc, rc_after;
        size_t max_pending;
} Fixture;

static void on_done(uv_async_t *a) {
        uv_stop(a->loop);
}

_unused_ static int fixture_setup(void **state, HttpLimits limits, HttpHandler handler) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(uv_async_init(&f->loop, &f->done, on_done), 0);
        assert_int_equal(http_server_new(&f->loop, &limits, handler, f, &f->server), 0);
        assert_int_equal(http_server_listen(f->server, "127.0.0.1", 0), 0);
        f->port = http_server_port(f->server);
        assert_true(f->port > 0);
        *state = f;
        return 0;
}

_unused_ static int teardown(void **state) {
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
        char *buf; /* received and not consumed */
        size_t len, cap;
} Client;

_unused_ static int client_open(Client *c, int port) {
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

_unused_ static void client_close(Client *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        free(c->buf);
        c->buf = NULL;
        c->len = c->cap = 0;
}

/* Closes with a reset, so that the server notices at once. */
_unused_ static void client_reset(Client *c) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        client_close(c);
}

_unused_ static int client_send(Client *c, const void *data, size_t len) {
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

_unused_ static int client_sends(Client *c, const char *s) {
        return client_send(c, s, strlen(s));
}

_unused_ static int client_fill(Client *c) {
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

_unused_ static void client_consume(Client *c, size_t n) {
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
}

_unused_ static int client_need(Client *c, size_t n) {
        while (c->len < n)
                if (client_fill(c) < 0)
                        return -1;
        return 0;
}

_unused_ static char *client_find(Client *c, const char *s) {
        return c->buf ? memmem(c->buf, c->len, s, strlen(s)) : NULL;
}

/* Reads a response head into head (NUL-terminated) and returns its status, or -1. */
_unused_ static int client_read_head(Client *c, char *head, size_t size) {
        char *end;
        size_t n;
        int status;

        while (!(end = client_find(c, "\r\n\r\n")))
                if (client_fill(c) < 0)
                        return -1;
        n = (size_t) (end - c->buf) + 4;
        snprintf(head, size, "%.*s", (int) n, c->buf);
        client_consume(c, n);
        if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
                return -1;
        return status;
}

/* The value of header name in a response head, or NULL. */
_unused_ static const char *head_header(const char *head, const char *name, char *out, size_t size) {
        char pattern[128];
        const char *p, *end;

        snprintf(pattern, sizeof(pattern), "\r\n%s:", name);
        p = strcasestr(head, pattern);
        if (!p)
                return NULL;
        p += strlen(pattern);
        p += strspn(p, " ");
        end = strstr(p, "\r\n");
        snprintf(out, size, "%.*s", (int) (end - p), p);
        return out;
}

/* Whether the server closes within timeout_ms, whatever it sends first. */
_unused_ static bool client_sees_eof_within(Client *c, int timeout_ms) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        char scratch[4096];

        c->len = 0;
        for (;;) {
                ssize_t n;

                if (poll(&pfd, 1, timeout_ms) <= 0)
                        return false;
                n = recv(c->fd, scratch, sizeof(scratch), 0);
                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        return true;
                if (n < 0)
                        return false;
        }
}

_unused_ static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

/* ---- running a scenario ---- */

typedef struct Scenario {
        Fixture *f;
        void (*run)(struct Scenario *s);
        int rc[8];
        long value[8];
        char head[4096];
        char text[256];
        char *body;
        size_t body_len;
} Scenario;

static void *scenario_thread(void *userdata) {
        Scenario *s = userdata;

        s->run(s);
        uv_async_send(&s->f->done);
        return NULL;
}

_unused_ static void scenario_run(Fixture *f, Scenario *s) {
        pthread_t thread;

        s->f = f;
        assert_int_equal(pthread_create(&thread, NULL, scenario_thread, s), 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(pthread_join(thread, NULL), 0);
}

static void on_stop_timer(uv_timer_t *t) {
        uv_stop(t->loop);
}

/* Lets the loop run a little longer (for what the server does after the client left). */
_unused_ static void loop_run_for(Fixture *f, uint64_t ms) {
        uv_timer_t t;

        uv_timer_init(&f->loop, &t);
        uv_timer_start(&t, on_stop_timer, ms, 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *) &t, NULL);
        uv_run(&f->loop, UV_RUN_NOWAIT);
}
