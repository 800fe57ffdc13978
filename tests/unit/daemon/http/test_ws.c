/* daemon/http's WebSocket side (ws.c) against real sockets: the handshake, echo of
 * messages of many sizes (fragmented too), ping/pong, both close handshakes, peers that
 * vanish, go silent or break the protocol, oversized messages, backpressure both ways.
 * The client is wslay in client mode over a blocking socket (harness.h runs it on a
 * helper thread); raw bytes are written only where a test needs a broken client. */
#include "daemon/http/harness.h"

#include <wslay/wslay.h>

#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="        /* RFC 6455, section 1.3 */
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* its Sec-WebSocket-Accept */
#define MIB (1024 * 1024)
#define PUSH_MESSAGES 128
#define PUSH_BYTES (128 * 1024)
#define PUSH_HIGH_WATER (512 * 1024)

/* ---- the server side ---- */

static void echo_on_message(HttpWebSocket *ws, bool binary, const uint8_t *data, size_t len,
                            void *userdata) {
        Fixture *f = userdata;

        f->messages++;
        http_websocket_send(ws, binary, data, len);
}

static void echo_on_close(HttpWebSocket *ws, void *userdata) {
        Fixture *f = userdata;

        f->closes++;
        f->rc_after = http_websocket_send(ws, false, "late", 4);
}

static const HttpWebSocketOps echo_ops = {
        .on_message = echo_on_message,
        .on_close = echo_on_close,
};

/* Pauses after every message and resumes from a timer: the messages must still all
 * arrive, in order, and never while paused. */
typedef struct PauseCtx {
        Fixture *f;
        HttpWebSocket *ws; /* a reference, until the timer is closed */
        uv_timer_t timer;
        bool paused;
} PauseCtx;

static void pause_on_timer(uv_timer_t *t) {
        PauseCtx *ctx = t->data;

        ctx->paused = false;
        http_websocket_resume(ctx->ws);
}

static void pause_on_message(HttpWebSocket *ws, bool binary, const uint8_t *data, size_t len,
                             void *userdata) {
        PauseCtx *ctx = userdata;

        if (ctx->paused)
                ctx->f->violations++;
        ctx->f->messages++;
        http_websocket_send(ws, binary, data, len);
        ctx->paused = true;
        http_websocket_pause(ws);
        uv_timer_start(&ctx->timer, pause_on_timer, 5, 0);
}

static void pause_on_timer_closed(uv_handle_t *h) {
        PauseCtx *ctx = h->data;

        http_websocket_unref(ctx->ws);
        free(ctx);
}

static void pause_on_close(HttpWebSocket *ws, void *userdata) {
        PauseCtx *ctx = userdata;

        ctx->f->closes++;
        uv_close((uv_handle_t *) &ctx->timer, pause_on_timer_closed);
}

static const HttpWebSocketOps pause_ops = {
        .on_message = pause_on_message,
        .on_close = pause_on_close,
};

/* Sends PUSH_MESSAGES messages, keeping at most PUSH_HIGH_WATER queued. */
typedef struct PushCtx {
        Fixture *f;
        unsigned sent;
} PushCtx;

static void push_pump(HttpWebSocket *ws, void *userdata) {
        PushCtx *ctx = userdata;
        static uint8_t block[PUSH_BYTES];

        while (ctx->sent < PUSH_MESSAGES && http_websocket_pending(ws) < PUSH_HIGH_WATER) {
                memset(block, 'a' + (int) ctx->sent % 26, sizeof(block));
                if (http_websocket_send(ws, true, block, sizeof(block)) < 0)
                        ctx->f->violations++;
                ctx->sent++;
                ctx->f->max_pending = MAX(ctx->f->max_pending, http_websocket_pending(ws));
        }
        if (ctx->sent < PUSH_MESSAGES)
                http_websocket_on_drained(ws, push_pump, ctx);
}

static void push_on_close(HttpWebSocket *ws, void *userdata) {
        PushCtx *ctx = userdata;

        ctx->f->closes++;
        free(ctx);
}

static const HttpWebSocketOps push_ops = {
        .on_close = push_on_close,
};

static void route_pause(Fixture *f, HttpRequest *r) {
        PauseCtx *ctx = calloc(1, sizeof(*ctx));
        HttpWebSocket *ws;

        ctx->f = f;
        f->rc = http_websocket_accept(r, &pause_ops, ctx, &ws);
        if (f->rc < 0) {
                free(ctx);
                return;
        }
        ctx->ws = http_websocket_ref(ws);
        uv_timer_init(&f->loop, &ctx->timer);
        ctx->timer.data = ctx;
}

static void route_push(Fixture *f, HttpRequest *r) {
        PushCtx *ctx = calloc(1, sizeof(*ctx));
        HttpWebSocket *ws;

        ctx->f = f;
        f->rc = http_websocket_accept(r, &push_ops, ctx, &ws);
        if (f->rc < 0) {
                free(ctx);
                return;
        }
        push_pump(ws, ctx);
}

static void test_handler(HttpRequest *r, void *userdata) {
        Fixture *f = userdata;
        const char *path = http_request_path(r);
        HttpWebSocket *ws;

        if (strcmp(path, "/ws/echo") == 0) {
                http_response_header(r, "X-Test", "echo");
                f->rc = http_websocket_accept(r, &echo_ops, f, &ws);
        } else if (strcmp(path, "/ws/close") == 0) {
                f->rc = http_websocket_accept(r, &echo_ops, f, &ws);
                if (f->rc == 0)
                        http_websocket_close(ws, 4000, "bye");
        } else if (strcmp(path, "/ws/pause") == 0)
                route_pause(f, r);
        else if (strcmp(path, "/ws/push") == 0)
                route_push(f, r);
        else if (strcmp(path, "/plain") == 0)
                http_respond(r, 200, "text/plain", "plain", 5);
        else
                http_respond(r, 404, "application/json", "{}", 2);
}

static int setup(void **state) {
        return fixture_setup(state,
                             (HttpLimits){
                                     .max_connections = 8,
                                     .idle_timeout_ms = 2000,
                             },
                             test_handler);
}

/* The peer goes silent after 300 ms: pinged then, dropped after 600 ms. */
static int setup_tight(void **state) {
        return fixture_setup(state,
                             (HttpLimits){
                                     .max_connections = 8,
                                     .idle_timeout_ms = 300,
                             },
                             test_handler);
}

/* ---- the client side: wslay in client mode (helper thread, no cmocka calls) ---- */

typedef struct WsMessage {
        uint8_t opcode;
        uint16_t status; /* close frames */
        uint8_t *data;
        size_t len;
} WsMessage;

typedef struct WsClient {
        Client c;
        char head[4096];
        int status;
        wslay_event_context_ptr ctx;
        WsMessage msgs[256];
        size_t n_msgs;
        size_t n_pings;
        bool eof;
        /* The message being sent in fragments. */
        const uint8_t *frag;
        size_t frag_len, frag_off, frag_piece;
} WsClient;

static ssize_t wsc_on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                           void *userdata) {
        WsClient *w = userdata;
        ssize_t n;

        if (w->c.len > 0) { /* what came with the 101 */
                size_t k = MIN(len, w->c.len);
                memcpy(buf, w->c.buf, k);
                client_consume(&w->c, k);
                return (ssize_t) k;
        }
        n = recv(w->c.fd, buf, len, MSG_DONTWAIT);
        if (n > 0)
                return n;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        w->eof = true;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
}

static ssize_t wsc_on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                           void *userdata) {
        WsClient *w = userdata;

        if (client_send(&w->c, data, len) < 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return (ssize_t) len;
}

static int wsc_on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *userdata) {
        for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t) rand();
        return 0;
}

static void wsc_on_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                           void *userdata) {
        WsClient *w = userdata;
        WsMessage *m;

        if (arg->opcode == WSLAY_PING) {
                w->n_pings++; /* answered by wslay */
                return;
        }
        if (w->n_msgs >= ELEMENTSOF(w->msgs))
                return;
        m = &w->msgs[w->n_msgs++];
        m->opcode = arg->opcode;
        m->status = arg->status_code;
        m->len = arg->msg_length;
        m->data = malloc(arg->msg_length + 1);
        if (arg->msg_length > 0)
                memcpy(m->data, arg->msg, arg->msg_length);
        m->data[arg->msg_length] = 0;
}

static const struct wslay_event_callbacks wsc_callbacks = {
        .recv_callback = wsc_on_recv,
        .send_callback = wsc_on_send,
        .genmask_callback = wsc_on_genmask,
        .on_msg_recv_callback = wsc_on_message,
};

/* Sends an upgrade request for path and reads the answer's head. */
static int wsc_handshake(WsClient *w, int port, const char *path, const char *headers) {
        char request[1024];

        memset(w, 0, sizeof(*w));
        if (client_open(&w->c, port) < 0)
                return -1;
        snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path,
                 headers ? headers
                         : "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " SAMPLE_KEY
                           "\r\nSec-WebSocket-Version: 13\r\n");
        if (client_sends(&w->c, request) < 0)
                return -1;
        w->status = client_read_head(&w->c, w->head, sizeof(w->head));
        return w->status;
}

static int wsc_open(WsClient *w, int port, const char *path) {
        if (wsc_handshake(w, port, path, NULL) != 101)
                return -1;
        if (wslay_event_context_client_init(&w->ctx, &wsc_callbacks, w) != 0)
                return -1;
        wslay_event_config_set_max_recv_msg_length(w->ctx, 64 * MIB);
        return 0;
}

static void wsc_free(WsClient *w) {
        for (size_t i = 0; i < w->n_msgs; i++)
                free(w->msgs[i].data);
        if (w->ctx)
                wslay_event_context_free(w->ctx);
        w->ctx = NULL;
        client_close(&w->c);
}

/* Runs the client until it holds count messages; -1 on EOF, a closed reader or timeout. */
static int wsc_wait(WsClient *w, size_t count, int timeout_ms) {
        double deadline = now_ms() + timeout_ms;

        while (w->n_msgs < count) {
                struct pollfd pfd = {.fd = w->c.fd, .events = POLLIN};
                int left = (int) (deadline - now_ms());

                if (w->eof || !wslay_event_want_read(w->ctx) || left <= 0)
                        return -1;
                if (w->c.len == 0 && poll(&pfd, 1, left) <= 0)
                        return -1;
                wslay_event_recv(w->ctx);
                wslay_event_send(w->ctx);
        }
        return 0;
}

/* Answers pings (wslay does) for ms without expecting anything. */
static void wsc_idle(WsClient *w, int ms) {
        double deadline = now_ms() + ms;

        while (now_ms() < deadline && !w->eof) {
                struct pollfd pfd = {.fd = w->c.fd, .events = POLLIN};
                if (poll(&pfd, 1, (int) (deadline - now_ms()) + 1) > 0)
                        wslay_event_recv(w->ctx);
                wslay_event_send(w->ctx);
        }
}

static int wsc_send(WsClient *w, uint8_t opcode, const void *data, size_t len) {
        struct wslay_event_msg msg = {.opcode = opcode, .msg = data, .msg_length = len};

        if (wslay_event_queue_msg(w->ctx, &msg) != 0)
                return -1;
        return wslay_event_send(w->ctx) == 0 ? 0 : -1;
}

static ssize_t wsc_on_fragment(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                               const union wslay_event_msg_source *source, int *eof, void *userdata) {
        WsClient *w = userdata;
        size_t n = MIN(MIN(len, w->frag_piece), w->frag_len - w->frag_off);

        memcpy(buf, w->frag + w->frag_off, n);
        w->frag_off += n;
        *eof = w->frag_off == w->frag_len;
        return (ssize_t) n;
}

/* Sends data as a message of piece-sized frames, with a ping queued among them. */
static int wsc_send_fragmented(WsClient *w, uint8_t opcode, const uint8_t *data, size_t len, size_t piece) {
        struct wslay_event_fragmented_msg msg = {.opcode = opcode, .read_callback = wsc_on_fragment};
        struct wslay_event_msg ping = {
                .opcode = WSLAY_PING, .msg = (const uint8_t *) "mid", .msg_length = 3};

        w->frag = data;
        w->frag_len = len;
        w->frag_off = 0;
        w->frag_piece = piece;
        if (wslay_event_queue_fragmented_msg(w->ctx, &msg) != 0)
                return -1;
        /* The first frame goes out, then the ping interleaves before the next one. */
        if (wslay_event_queue_msg(w->ctx, &ping) != 0)
                return -1;
        return wslay_event_send(w->ctx) == 0 ? 0 : -1;
}

/* The first received message with opcode, or NULL. */
static const WsMessage *wsc_find(const WsClient *w, uint8_t opcode) {
        for (size_t i = 0; i < w->n_msgs; i++)
                if (w->msgs[i].opcode == opcode)
                        return &w->msgs[i];
        return NULL;
}

/* Closes from the client side and waits for the server's close and EOF. Returns the
 * status the server's close carried, or -1. */
static int wsc_close(WsClient *w) {
        const WsMessage *m;

        if (wslay_event_queue_close(w->ctx, 1000, (const uint8_t *) "done", 4) != 0 ||
            wslay_event_send(w->ctx) != 0)
                return -1;
        if (wsc_wait(w, w->n_msgs + 1, 5000) < 0)
                return -1;
        m = &w->msgs[w->n_msgs - 1];
        if (m->opcode != WSLAY_CONNECTION_CLOSE)
                return -1;
        return client_sees_eof_within(&w->c, 5000) ? m->status : -1;
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed) {
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t) ('A' + (i * 7 + seed) % 58); /* ASCII: valid UTF-8 */
}

/* ---- tests ---- */

static void run_handshake(Scenario *s) {
        WsClient w;

        s->rc[0] = wsc_open(&w, s->f->port, "/ws/echo");
        snprintf(s->head, sizeof(s->head), "%s", w.head);
        s->rc[1] = s->rc[0] == 0 ? wsc_close(&w) : -1;
        wsc_free(&w);
}

static void test_handshake(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_handshake};
        char value[128];

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 0);
        assert_true(strncmp(s.head, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
        assert_string_equal(head_header(s.head, "Sec-WebSocket-Accept", value, sizeof(value)),
                            SAMPLE_ACCEPT);
        assert_string_equal(head_header(s.head, "Upgrade", value, sizeof(value)), "websocket");
        assert_string_equal(head_header(s.head, "Connection", value, sizeof(value)), "Upgrade");
        assert_string_equal(head_header(s.head, "X-Test", value, sizeof(value)), "echo");
        assert_null(head_header(s.head, "Content-Length", value, sizeof(value)));
        assert_null(head_header(s.head, "Transfer-Encoding", value, sizeof(value)));
        /* Client-initiated close: the server echoes the status, closes, on_close once. */
        assert_int_equal(s.rc[1], 1000);
        assert_int_equal(f->rc, 0);
        assert_int_equal(f->closes, 1);
        assert_int_equal(f->rc_after, -ECONNRESET);
}

static const size_t echo_sizes[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 65537, 200000, MIB};

static void run_echo(Scenario *s) {
        uint8_t *data = malloc(MIB);
        WsClient w;
        int n = 0;

        if (wsc_open(&w, s->f->port, "/ws/echo") < 0) {
                s->rc[0] = -1;
                goto out;
        }
        for (int binary = 0; binary <= 1; binary++)
                for (size_t i = 0; i < ELEMENTSOF(echo_sizes); i++) {
                        size_t len = echo_sizes[i];
                        const WsMessage *m;

                        fill_pattern(data, len, (unsigned) i);
                        if (wsc_send(&w, binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len) < 0 ||
                            wsc_wait(&w, w.n_msgs + 1, 5000) < 0) {
                                s->rc[0] = -2;
                                goto out;
                        }
                        m = &w.msgs[w.n_msgs - 1];
                        if (m->opcode != (binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME) || m->len != len ||
                            memcmp(m->data, data, len) != 0) {
                                snprintf(s->text, sizeof(s->text), "mismatch: binary=%d len=%zu got %zu",
                                         binary, len, m->len);
                                s->rc[0] = -3;
                                goto out;
                        }
                        n++;
                }
        s->value[0] = n;
        s->rc[1] = wsc_close(&w);
out:
        wsc_free(&w);
        free(data);
}

static void test_echo_sizes(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_echo};

        scenario_run(f, &s);
        if (s.text[0])
                fail_msg("%s", s.text);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.value[0], 2 * ELEMENTSOF(echo_sizes));
        assert_int_equal(s.rc[1], 1000);
        assert_int_equal(f->messages, 2 * ELEMENTSOF(echo_sizes));
        assert_int_equal(f->closes, 1);
}

static void run_fragmented(Scenario *s) {
        static const struct {
                uint8_t opcode;
                size_t len, piece;
        } cases[] = {
                {WSLAY_TEXT_FRAME, 10, 3},
                {WSLAY_TEXT_FRAME, 100000, 1000},
                {WSLAY_BINARY_FRAME, 300000, 4096},
                {WSLAY_BINARY_FRAME, MIB, 4096},
        };
        uint8_t *data = malloc(MIB);
        WsClient w;

        if (wsc_open(&w, s->f->port, "/ws/echo") < 0) {
                s->rc[0] = -1;
                goto out;
        }
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const WsMessage *echo, *pong;
                size_t before = w.n_msgs;

                fill_pattern(data, cases[i].len, (unsigned) i);
                /* The echo and the pong for the ping sent among the fragments. */
                if (wsc_send_fragmented(&w, cases[i].opcode, data, cases[i].len, cases[i].piece) < 0 ||
                    wsc_wait(&w, before + 2, 5000) < 0) {
                        s->rc[0] = -2;
                        goto out;
                }
                echo = &w.msgs[w.msgs[before].opcode == WSLAY_PONG ? before + 1 : before];
                pong = &w.msgs[w.msgs[before].opcode == WSLAY_PONG ? before : before + 1];
                if (echo->opcode != cases[i].opcode || echo->len != cases[i].len ||
                    memcmp(echo->data, data, cases[i].len) != 0 || pong->opcode != WSLAY_PONG ||
                    strcmp((char *) pong->data, "mid") != 0) {
                        snprintf(s->text, sizeof(s->text), "case %zu: opcode %d len %zu, pong opcode %d", i,
                                 echo->opcode, echo->len, pong->opcode);
                        s->rc[0] = -3;
                        goto out;
                }
                s->value[0]++;
        }
        s->rc[1] = wsc_close(&w);
out:
        wsc_free(&w);
        free(data);
}

static void test_echo_fragmented(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_fragmented};

        scenario_run(f, &s);
        if (s.text[0])
                fail_msg("%s", s.text);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.value[0], 4);
        assert_int_equal(s.rc[1], 1000);
        assert_int_equal(f->messages, 4);
        assert_int_equal(f->closes, 1);
}

static void run_ping(Scenario *s) {
        WsClient w;
        const WsMessage *m;

        if (wsc_open(&w, s->f->port, "/ws/echo") < 0 || wsc_send(&w, WSLAY_PING, "abc", 3) < 0 ||
            wsc_wait(&w, 1, 5000) < 0) {
                s->rc[0] = -1;
                wsc_free(&w);
                return;
        }
        m = wsc_find(&w, WSLAY_PONG);
        s->rc[0] = m && m->len == 3 && memcmp(m->data, "abc", 3) == 0 ? 0 : -2;
        /* An empty ping, and a message after: the connection carries on. */
        s->rc[1] = wsc_send(&w, WSLAY_PING, "", 0) == 0 && wsc_send(&w, WSLAY_TEXT_FRAME, "hi", 2) == 0 &&
                                   wsc_wait(&w, 3, 5000) == 0 && w.msgs[1].opcode == WSLAY_PONG &&
                                   w.msgs[1].len == 0 && w.msgs[2].opcode == WSLAY_TEXT_FRAME
                           ? 0
                           : -1;
        s->rc[2] = wsc_close(&w);
        wsc_free(&w);
}

static void test_ping_pong(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_ping};

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.rc[1], 0);
        assert_int_equal(s.rc[2], 1000);
        assert_int_equal(f->messages, 1);
        assert_int_equal(f->closes, 1);
}

static void run_server_close(Scenario *s) {
        WsClient w;
        const WsMessage *m;

        if (wsc_open(&w, s->f->port, "/ws/close") < 0 || wsc_wait(&w, 1, 5000) < 0) {
                s->rc[0] = -1;
                wsc_free(&w);
                return;
        }
        m = &w.msgs[0];
        s->rc[0] = m->opcode == WSLAY_CONNECTION_CLOSE ? m->status : -2;
        snprintf(s->text, sizeof(s->text), "%.*s", (int) (m->len >= 2 ? m->len - 2 : 0), m->data + 2);
        /* Our answer (wslay queues it) completes the handshake; the server then closes. */
        wslay_event_send(w.ctx);
        s->rc[1] = client_sees_eof_within(&w.c, 5000) ? 0 : -1;
        wsc_free(&w);
}

static void test_close_from_server(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_server_close};

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 4000);
        assert_string_equal(s.text, "bye");
        assert_int_equal(s.rc[1], 0);
        assert_int_equal(f->closes, 1);
}

static void run_vanish(Scenario *s) {
        WsClient w;

        s->rc[0] = wsc_open(&w, s->f->port, "/ws/echo") == 0 &&
                                   wsc_send(&w, WSLAY_TEXT_FRAME, "x", 1) == 0 && wsc_wait(&w, 1, 5000) == 0
                           ? 0
                           : -1;
        client_reset(&w.c);
        wsc_free(&w);
        usleep(200 * 1000);
}

static void test_peer_vanishes(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_vanish};

        scenario_run(f, &s);
        loop_run_for(f, 100);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(f->closes, 1);
        assert_int_equal(f->rc_after, -ECONNRESET);
}

/* A peer that stops answering: pinged after the idle timeout, dropped after twice it. */
static void run_silent(Scenario *s) {
        WsClient w;
        double start;

        s->rc[0] = wsc_open(&w, s->f->port, "/ws/echo");
        start = now_ms();
        /* Reads nothing and answers nothing: the server's ping goes unanswered. */
        s->rc[1] = client_sees_eof_within(&w.c, 5000) ? 0 : -1;
        s->value[0] = (long) (now_ms() - start);
        wsc_free(&w);
}

static void test_silent_peer_dropped(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_silent};

        scenario_run(f, &s);
        loop_run_for(f, 50);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.rc[1], 0);
        assert_true(s.value[0] >= 550 && s.value[0] < 3000);
        assert_int_equal(f->closes, 1);
}

/* A live but quiet peer survives many idle timeouts by answering pings. */
static void run_quiet(Scenario *s) {
        WsClient w;

        s->rc[0] = wsc_open(&w, s->f->port, "/ws/echo");
        if (s->rc[0] < 0) {
                wsc_free(&w);
                return;
        }
        wsc_idle(&w, 1500);
        s->value[0] = (long) w.n_pings;
        s->rc[1] = wsc_send(&w, WSLAY_TEXT_FRAME, "still here", 10) == 0 && wsc_wait(&w, 1, 2000) == 0 &&
                                   strcmp((char *) w.msgs[0].data, "still here") == 0
                           ? 0
                           : -1;
        s->rc[2] = wsc_close(&w);
        wsc_free(&w);
}

static void test_quiet_peer_kept_alive(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_quiet};

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.rc[1], 0);
        assert_int_equal(s.rc[2], 1000);
        assert_true(s.value[0] >= 2);
        assert_int_equal(f->closes, 1);
}

static void run_oversized(Scenario *s) {
        size_t len = MIB + 1;
        uint8_t *data = calloc(1, len);
        WsClient w;

        if (wsc_open(&w, s->f->port, "/ws/echo") < 0) {
                s->rc[0] = -1;
                goto out;
        }
        if (s->value[1]) /* fragmented: the bound is on the whole message */
                wsc_send_fragmented(&w, WSLAY_BINARY_FRAME, data, len, 4096);
        else
                wsc_send(&w, WSLAY_BINARY_FRAME, data, len);
        s->rc[0] = 0;
        for (size_t i = 0; i < 3 && !wsc_find(&w, WSLAY_CONNECTION_CLOSE); i++)
                wsc_wait(&w, w.n_msgs + 1, 5000);
        s->rc[1] = wsc_find(&w, WSLAY_CONNECTION_CLOSE) ? wsc_find(&w, WSLAY_CONNECTION_CLOSE)->status : -1;
        s->rc[2] = client_sees_eof_within(&w.c, 5000) ? 0 : -1;
out:
        wsc_free(&w);
        free(data);
}

static void test_oversized_message(void **state) {
        Fixture *f = *state;

        for (int fragmented = 0; fragmented <= 1; fragmented++) {
                Scenario s = {.run = run_oversized, .value[1] = fragmented};

                f->closes = 0;
                scenario_run(f, &s);
                loop_run_for(f, 50);
                assert_int_equal(s.rc[0], 0);
                assert_int_equal(s.rc[1], 1009);
                assert_int_equal(s.rc[2], 0);
                assert_int_equal(f->closes, 1);
        }
        assert_int_equal(f->messages, 0);
}

/* Raw bytes from here: a client that breaks the protocol. */
static void run_raw(Scenario *s) {
        WsClient w;
        const char *frame = s->text;

        if (wsc_handshake(&w, s->f->port, "/ws/echo", NULL) != 101 ||
            client_send(&w.c, frame, (size_t) s->value[1]) < 0 || client_need(&w.c, 4) < 0) {
                s->rc[0] = -1;
                wsc_free(&w);
                return;
        }
        s->value[0] = (long) ((unsigned long) (unsigned char) w.c.buf[0] << 24 |
                              (unsigned long) (unsigned char) w.c.buf[1] << 16 |
                              (unsigned long) (unsigned char) w.c.buf[2] << 8 | (unsigned char) w.c.buf[3]);
        client_consume(&w.c, 4);
        s->rc[1] = client_sees_eof_within(&w.c, 5000) ? 0 : -1;
        wsc_free(&w);
}

static void raw_expect_close(Fixture *f, const char *frame, size_t len, unsigned code) {
        Scenario s = {.run = run_raw, .value[1] = (long) len};

        memcpy(s.text, frame, len);
        f->closes = 0;
        scenario_run(f, &s);
        loop_run_for(f, 50);
        assert_int_equal(s.rc[0], 0);
        /* A close frame, unmasked, with 2 bytes of payload: the status. */
        assert_int_equal(s.value[0], 0x88UL << 24 | 0x02 << 16 | code);
        assert_int_equal(s.rc[1], 0);
        assert_int_equal(f->closes, 1);
}

static void test_protocol_errors(void **state) {
        Fixture *f = *state;

        /* An unmasked text frame "hi". */
        raw_expect_close(f, "\x81\x02hi", 4, 1002);
        /* A reserved opcode (masked, empty). */
        raw_expect_close(f, "\x83\x80\x01\x02\x03\x04", 6, 1002);
        /* A continuation with no message begun. */
        raw_expect_close(f, "\x80\x80\x01\x02\x03\x04", 6, 1002);
        /* A text frame that is not UTF-8 (mask 0: the payload as is). */
        raw_expect_close(f, "\x81\x82\x00\x00\x00\x00\xc3\x28", 8, 1007);
        assert_int_equal(f->messages, 0);
}

static void run_refusals(Scenario *s) {
        static const char *const requests[] = {
                /* A plain GET where a WebSocket is expected: 426, and keep-alive holds. */
                "GET /ws/echo HTTP/1.1\r\nHost: x\r\n\r\n",
                /* An unknown version. */
                "GET /ws/echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n",
                /* A key that is not 16 bytes of base64. */
                "GET /ws/echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n",
                /* Not a GET. */
                "POST /ws/echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                /* No Connection: Upgrade. */
                "GET /ws/echo HTTP/1.1\r\nUpgrade: websocket\r\n"
                "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
        };
        char line[256];

        s->head[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(requests); i++) {
                Client c;
                char head[4096], value[64], upgrade[64];
                int status;

                client_open(&c, s->f->port);
                client_sends(&c, requests[i]);
                status = client_read_head(&c, head, sizeof(head));
                snprintf(line, sizeof(line), "%d v=%s u=%s|", status,
                         head_header(head, "Sec-WebSocket-Version", value, sizeof(value)) ? value : "-",
                         head_header(head, "Upgrade", upgrade, sizeof(upgrade)) ? upgrade : "-");
                strncat(s->head, line, sizeof(s->head) - strlen(s->head) - 1);
                /* The body, then (for the first) another request on the same connection. */
                if (head_header(head, "Content-Length", value, sizeof(value))) {
                        size_t n = strtoul(value, NULL, 10);
                        client_need(&c, n);
                        client_consume(&c, n);
                }
                if (i == 0) {
                        client_sends(&c, "GET /plain HTTP/1.1\r\n\r\n");
                        s->rc[0] = client_read_head(&c, head, sizeof(head));
                }
                client_close(&c);
        }
}

static void test_bad_upgrades_refused(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_refusals};

        scenario_run(f, &s);
        assert_string_equal(s.head, "426 v=13 u=websocket|426 v=13 u=websocket|400 v=- u=-|400 v=- u=-|"
                                    "400 v=- u=-|");
        assert_int_equal(s.rc[0], 200);
        assert_int_equal(f->rc, -EINVAL); /* the last one */
        assert_int_equal(f->closes, 0);
}

/* A WebSocket open while plain requests are served on another connection. */
static void run_alongside(Scenario *s) {
        WsClient w;
        Client c;
        char head[4096];

        s->rc[0] = wsc_open(&w, s->f->port, "/ws/echo") == 0 &&
                                   wsc_send(&w, WSLAY_TEXT_FRAME, "one", 3) == 0 &&
                                   wsc_wait(&w, 1, 5000) == 0
                           ? 0
                           : -1;
        client_open(&c, s->f->port);
        client_sends(&c, "GET /plain HTTP/1.1\r\n\r\n");
        s->rc[1] = client_read_head(&c, head, sizeof(head));
        client_close(&c);
        s->rc[2] = wsc_send(&w, WSLAY_TEXT_FRAME, "two", 3) == 0 && wsc_wait(&w, 2, 5000) == 0 &&
                                   strcmp((char *) w.msgs[1].data, "two") == 0
                           ? 0
                           : -1;
        s->rc[3] = wsc_close(&w);
        wsc_free(&w);
}

static void test_plain_request_alongside(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_alongside};

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.rc[1], 200);
        assert_int_equal(s.rc[2], 0);
        assert_int_equal(s.rc[3], 1000);
        assert_int_equal(f->closes, 1);
}

/* Many messages in one burst to a reader that pauses after each: wslay parses several
 * from one read, and the ones after a pause must wait for the resume. */
static void run_pause(Scenario *s) {
        WsClient w;
        char text[32];
        int n_ok = 0;

        if (wsc_open(&w, s->f->port, "/ws/pause") < 0) {
                s->rc[0] = -1;
                wsc_free(&w);
                return;
        }
        for (int i = 0; i < 40; i++) {
                struct wslay_event_msg msg = {.opcode = WSLAY_TEXT_FRAME, .msg = (uint8_t *) text};

                msg.msg_length = (size_t) snprintf(text, sizeof(text), "message %d", i);
                wslay_event_queue_msg(w.ctx, &msg);
        }
        wslay_event_send(w.ctx);
        s->rc[0] = wsc_wait(&w, 40, 10000);
        for (size_t i = 0; i < w.n_msgs; i++) {
                snprintf(text, sizeof(text), "message %zu", i);
                n_ok += strcmp((char *) w.msgs[i].data, text) == 0;
        }
        s->value[0] = n_ok;
        s->rc[1] = wsc_close(&w);
        wsc_free(&w);
}

static void test_pause_resume(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_pause};

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.value[0], 40);
        assert_int_equal(s.rc[1], 1000);
        assert_int_equal(f->messages, 40);
        assert_int_equal(f->violations, 0);
        assert_int_equal(f->closes, 1);
}

/* The server pushes far more than its high-water mark to a client that starts reading
 * late: pending/on_drained keep the queue bounded and nothing is lost. */
static void run_push(Scenario *s) {
        WsClient w;
        int n_ok = 0;

        if (wsc_open(&w, s->f->port, "/ws/push") < 0) {
                s->rc[0] = -1;
                wsc_free(&w);
                return;
        }
        usleep(300 * 1000);
        s->rc[0] = wsc_wait(&w, PUSH_MESSAGES, 10000);
        for (size_t i = 0; i < w.n_msgs; i++)
                n_ok += w.msgs[i].len == PUSH_BYTES && w.msgs[i].data[0] == 'a' + (int) i % 26 &&
                        w.msgs[i].data[PUSH_BYTES - 1] == 'a' + (int) i % 26;
        s->value[0] = n_ok;
        s->rc[1] = wsc_close(&w);
        wsc_free(&w);
}

static void test_send_backpressure(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_push};

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(s.value[0], PUSH_MESSAGES);
        assert_int_equal(s.rc[1], 1000);
        assert_int_equal(f->violations, 0);
        /* Pending did build up (the client was not reading), but stayed bounded. */
        assert_true(f->max_pending >= PUSH_BYTES);
        assert_true(f->max_pending < PUSH_HIGH_WATER + PUSH_BYTES + 64);
        assert_int_equal(f->closes, 1);
}

/* http_server_free() with a WebSocket open: on_close runs from inside it. */
static void run_hold_open(Scenario *s) {
        WsClient w;

        s->rc[0] = wsc_open(&w, s->f->port, "/ws/echo");
        s->value[0] = TAKE_FD(w.c.fd); /* closed by the test, after the server is gone */
        wsc_free(&w);
}

static void test_server_free_closes(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_hold_open};

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 0);
        assert_int_equal(f->closes, 0);
        http_server_free(f->server);
        f->server = NULL;
        assert_int_equal(f->closes, 1);
        assert_int_equal(f->rc_after, -ECONNRESET);
        close((int) s.value[0]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
                cmocka_unit_test_setup_teardown(test_echo_sizes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_echo_fragmented, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ping_pong, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_from_server, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peer_vanishes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_silent_peer_dropped, setup_tight, teardown),
                cmocka_unit_test_setup_teardown(test_quiet_peer_kept_alive, setup_tight, teardown),
                cmocka_unit_test_setup_teardown(test_oversized_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_upgrades_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_plain_request_alongside, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_backpressure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_free_closes, setup, teardown),
        };

        /* As in forged: a write to a reset connection must be an error, not a signal. */
        signal(SIGPIPE, SIG_IGN);
        log_setup(LOG_LEVEL_WARN, 0);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
