/* WebSocket connections (RFC 6455): the upgrade handshake, then wslay's event API
 * driving frames over the connection's own input buffer and write queue. conn.c keeps
 * running the connection (reading, timers, closing); once the upgrade request is over it
 * hands every step to http_ws_step() instead of the HTTP parser.
 *
 * wslay is fed from HttpConn.in by its recv callback and writes through its send
 * callback into http_conn_write(), which takes everything (copying what the socket
 * refuses), so wslay's own queue is empty after every wslay_event_send(). */
#include "daemon/http/internal.h"

#include <nettle/sha1.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "basic/base64.h"
#include "basic/log.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_BYTES 16
#define WS_ACCEPT_LEN BASE64_ENCODED_LEN(SHA1_DIGEST_SIZE)
/* Server frame headers are at most 10 bytes (no mask); room for a client's 14. */
#define WS_HEADER_MAX 14
#define WS_CLOSE_REASON_MAX 123

/* A message parsed after the reader paused: wslay hands over whatever complete frames
 * its 4 KiB read buffer holds, so these are kept until resumed. */
typedef struct WsHeldMessage {
        struct WsHeldMessage *next;
        bool binary;
        size_t len;
        uint8_t data[];
} WsHeldMessage;

struct HttpWebSocket {
        unsigned n_ref;
        HttpConn *conn; /* a reference */
        wslay_event_context_ptr ctx;
        HttpWebSocketOps ops;
        void *userdata;

        bool paused;
        bool in_recv;          /* inside wslay_event_recv(): sends are flushed after it */
        bool ping_outstanding; /* pinged after a silence; nothing heard since */
        bool close_reported;   /* on_close ran or is running */
        int failed;            /* a write failed (-errno): drop the connection soon */
        WsHeldMessage *held, *held_last;

        uint8_t header[WS_HEADER_MAX]; /* a frame header waiting for its payload */
        size_t header_len;

        void (*on_drained)(HttpWebSocket *ws, void *userdata);
        void *drained_userdata;
        bool drained_due; /* on_drained registered with nothing pending */

        /* wslay sends control frames ahead of queued messages, so a close asked for while
         * messages are still queued waits for them (the last message must arrive). */
        bool close_deferred;
        uint16_t close_code;
        char close_reason[124];
};

HttpWebSocket *http_websocket_ref(HttpWebSocket *ws) {
        if (ws)
                ws->n_ref++;
        return ws;
}

static void ws_free(HttpWebSocket *ws) {
        while (ws->held) {
                WsHeldMessage *m = ws->held;
                ws->held = m->next;
                free(m);
        }
        if (ws->ctx)
                wslay_event_context_free(ws->ctx);
        http_conn_unref(ws->conn);
        free(ws);
}

void http_websocket_unref(HttpWebSocket *ws) {
        if (!ws || --ws->n_ref > 0)
                return;
        ws_free(ws);
}

/* ---- the handshake ---- */

/* Whether a comma-separated header value lists token (case-insensitive). */
static bool header_has_token(const char *value, const char *token) {
        size_t len = strlen(token);

        if (!value)
                return false;
        for (const char *p = value; *p;) {
                size_t n;

                p += strspn(p, " \t,");
                n = strcspn(p, ",");
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                if (n == len && strncasecmp(p, token, len) == 0)
                        return true;
                p += strcspn(p, ",");
        }
        return false;
}

/* The key without surrounding blanks, in out (size WS_KEY_TEXT_MAX); false if too long. */
#define WS_KEY_TEXT_MAX 64
static bool ws_key_trim(const char *key, char *out) {
        size_t n;

        key += strspn(key, " \t");
        n = strlen(key);
        while (n > 0 && (key[n - 1] == ' ' || key[n - 1] == '\t'))
                n--;
        if (n >= WS_KEY_TEXT_MAX)
                return false;
        memcpy(out, key, n);
        out[n] = 0;
        return true;
}

static bool ws_key_is_valid(const char *key) {
        char text[WS_KEY_TEXT_MAX];
        _cleanup_free_ uint8_t *raw = NULL;
        size_t len;

        if (!key || !ws_key_trim(key, text))
                return false;
        return base64_decode(text, strlen(text), &raw, &len) == 0 && len == WS_KEY_BYTES;
}

/* 0 if r is a valid WebSocket 13 upgrade, else the status to refuse it with. */
static int ws_request_refusal(const HttpRequest *r) {
        const char *version = http_request_header(r, "Sec-WebSocket-Version");

        if (!header_has_token(http_request_header(r, "Upgrade"), "websocket"))
                return 426;
        if (!header_has_token(version, "13"))
                return 426;
        if (strcmp(r->method, "GET") != 0 || r->http10 || !r->upgrade || http_request_has_body(r))
                return 400;
        if (!header_has_token(http_request_header(r, "Connection"), "upgrade"))
                return 400;
        if (!ws_key_is_valid(http_request_header(r, "Sec-WebSocket-Key")))
                return 400;
        return 0;
}

bool http_request_is_websocket(const HttpRequest *r) {
        return ws_request_refusal(r) == 0;
}

/* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)). out holds WS_ACCEPT_LEN + 1. */
static void ws_accept_value(const char *key, char *out) {
        char text[WS_KEY_TEXT_MAX];
        uint8_t digest[SHA1_DIGEST_SIZE];
        struct sha1_ctx sha;

        (void) ws_key_trim(key, text); /* checked by ws_request_refusal() */
        sha1_init(&sha);
        sha1_update(&sha, strlen(text), (const uint8_t *) text);
        sha1_update(&sha, strlen(WS_GUID), (const uint8_t *) WS_GUID);
        sha1_digest(&sha, sizeof(digest), digest);
        base64_encode(digest, sizeof(digest), out);
}

static int ws_refuse(HttpRequest *r, int status) {
        static const char bad[] =
                "{\"error\":\"malformed WebSocket upgrade request\",\"code\":\"bad_request\"}";
        static const char upgrade[] = "{\"error\":\"this resource needs a WebSocket (version 13) upgrade\","
                                      "\"code\":\"upgrade_required\"}";

        if (status == 400) {
                http_respond(r, 400, "application/json", bad, sizeof(bad) - 1);
                return -EINVAL;
        }
        http_response_header(r, "Upgrade", "websocket");
        http_response_header(r, "Sec-WebSocket-Version", "13");
        http_respond(r, 426, "application/json", upgrade, sizeof(upgrade) - 1);
        return -EPROTONOSUPPORT;
}

static int ws_write_switching(HttpRequest *r) {
        char accept[WS_ACCEPT_LEN + 1];
        _cleanup_free_ char *head = NULL;
        uv_buf_t buf;
        int n, k;

        ws_accept_value(http_request_header(r, "Sec-WebSocket-Key"), accept);
        n = asprintf(&head,
                     "HTTP/1.1 101 Switching Protocols\r\n%sUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     r->extra_headers ? r->extra_headers : "", accept);
        if (n < 0) {
                head = NULL;
                return -ENOMEM;
        }
        /* Over for the handler now: no on_abort, and http_respond() & co. say -EALREADY. */
        r->response_started = r->response_ended = true;
        buf = uv_buf_init(head, (unsigned) n);
        k = http_conn_write(r->conn, &buf, 1);
        if (k < 0) {
                http_conn_abort(r->conn, k);
                return -ECONNRESET;
        }
        return 0;
}

/* ---- wslay's side ---- */

static ssize_t ws_on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                                void *userdata) {
        HttpWebSocket *ws = userdata;
        HttpConn *c = ws->conn;
        size_t n = MIN(len, c->in_end - c->in_start);

        /* A pause (or held messages, which a resume delivers first) stops the feed. */
        if (n == 0 || ws->paused || ws->held) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        memcpy(buf, c->in + c->in_start, n);
        c->in_start += n;
        return (ssize_t) n;
}

static int ws_write(HttpWebSocket *ws, const uint8_t *data, size_t len) {
        uv_buf_t bufs[2] = {
                uv_buf_init((char *) ws->header, (unsigned) ws->header_len),
                uv_buf_init((char *) data, (unsigned) len),
        };
        int k = http_conn_write(ws->conn, bufs, 2);

        ws->header_len = 0;
        return k;
}

static ssize_t ws_on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                                void *userdata) {
        HttpWebSocket *ws = userdata;
        int k;

        /* A frame header comes alone, its payload next: send them together. */
        if ((flags & WSLAY_MSG_MORE) && len <= sizeof(ws->header) - ws->header_len) {
                memcpy(ws->header + ws->header_len, data, len);
                ws->header_len += len;
                return (ssize_t) len;
        }
        k = ws_write(ws, data, len);
        if (k < 0) {
                ws->failed = k;
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return (ssize_t) len;
}

static int ws_hold(HttpWebSocket *ws, bool binary, const uint8_t *data, size_t len) {
        WsHeldMessage *m = malloc(sizeof(*m) + len);

        if (!m)
                return -ENOMEM;
        m->next = NULL;
        m->binary = binary;
        m->len = len;
        memcpy(m->data, data, len);
        if (ws->held_last)
                ws->held_last->next = m;
        else
                ws->held = m;
        ws->held_last = m;
        return 0;
}

static void ws_on_wslay_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                                void *userdata) {
        HttpWebSocket *ws = userdata;
        bool binary = arg->opcode == WSLAY_BINARY_FRAME;
        /* wslay passes NULL for an empty message; the handler gets a valid pointer. */
        const uint8_t *data = arg->msg ? arg->msg : (const uint8_t *) "";

        /* Pings are answered and closes echoed by wslay itself. */
        if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
                return;
        if (ws->paused || ws->held) {
                if (ws_hold(ws, binary, data, arg->msg_length) < 0)
                        ws->failed = -ENOMEM;
                return;
        }
        if (ws->ops.on_message)
                ws->ops.on_message(ws, binary, data, arg->msg_length, ws->userdata);
}

static const struct wslay_event_callbacks ws_wslay_callbacks = {
        .recv_callback = ws_on_wslay_recv,
        .send_callback = ws_on_wslay_send,
        .on_msg_recv_callback = ws_on_wslay_message,
};

/* Hands what wslay has queued to the connection. */
static void ws_flush(HttpWebSocket *ws) {
        int k;

        if (ws->in_recv || ws->failed || http_conn_is_dead(ws->conn))
                return;
        k = wslay_event_send(ws->ctx);
        if (k == 0 && ws->header_len > 0)
                k = ws_write(ws, NULL, 0);
        if (k < 0 && !ws->failed)
                ws->failed = k == WSLAY_ERR_NOMEM ? -ENOMEM : -EIO;
        if (ws->failed)
                http_conn_schedule(ws->conn);
}

/* ---- the handler's side ---- */

static int ws_new(HttpConn *c, const HttpWebSocketOps *ops, void *userdata, HttpWebSocket **ret) {
        HttpWebSocket *ws = calloc(1, sizeof(*ws));

        if (!ws)
                return -ENOMEM;
        ws->n_ref = 1;
        ws->conn = http_conn_ref(c);
        ws->ops = *ops;
        ws->userdata = userdata;
        if (wslay_event_context_server_init(&ws->ctx, &ws_wslay_callbacks, ws) != 0) {
                ws->ctx = NULL;
                ws_free(ws);
                return -ENOMEM;
        }
        wslay_event_config_set_max_recv_msg_length(ws->ctx, HTTP_WS_MAX_MESSAGE_BYTES);
        *ret = ws;
        return 0;
}

int http_websocket_accept(HttpRequest *r, const HttpWebSocketOps *ops, void *userdata, HttpWebSocket **ret) {
        HttpConn *c = r->conn;
        HttpWebSocket *ws;
        int status, k;

        if (r->aborted || http_conn_is_dead(c))
                return -ECONNRESET;
        if (r->response_started || c->req != r || c->ws)
                return -EALREADY;
        status = ws_request_refusal(r);
        if (status != 0)
                return ws_refuse(r, status);
        k = ws_new(c, ops, userdata, &ws);
        if (k == 0) {
                k = ws_write_switching(r);
                if (k < 0)
                        http_websocket_unref(ws);
        }
        if (k == -ENOMEM) /* the request is answered whatever happens */
                http_conn_send_error(c, 500, "internal", "out of memory");
        if (k < 0)
                return k;
        c->ws = ws; /* the connection's reference */
        log_debug("http: WebSocket on %s", r->path);
        /* The rest of the request (its head's last byte) is parsed, then frames are. */
        http_conn_schedule(c);
        *ret = ws;
        return 0;
}

static bool ws_is_open(const HttpWebSocket *ws) {
        return !ws->close_reported && !http_conn_is_dead(ws->conn);
}

size_t http_websocket_pending(const HttpWebSocket *ws) {
        if (!ws_is_open(ws))
                return 0;
        return ws->conn->write_pending + ws->header_len + wslay_event_get_queued_msg_length(ws->ctx);
}

int http_websocket_send(HttpWebSocket *ws, bool binary, const void *data, size_t len) {
        struct wslay_event_msg msg = {
                .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
                .msg = data,
                .msg_length = len,
        };
        int k;

        if (!ws_is_open(ws) || ws->failed)
                return -ECONNRESET;
        if (len >
            HTTP_WS_MAX_PENDING_BYTES - MIN(http_websocket_pending(ws), (size_t) HTTP_WS_MAX_PENDING_BYTES))
                return -ENOBUFS;
        k = wslay_event_queue_msg(ws->ctx, &msg);
        if (k == WSLAY_ERR_NO_MORE_MSG)
                return -ECONNRESET; /* a close was sent or is on its way */
        if (k != 0)
                return -ENOMEM;
        ws_flush(ws);
        return ws->failed ? -ECONNRESET : 0;
}

void http_websocket_on_drained(HttpWebSocket *ws, void (*cb)(HttpWebSocket *ws, void *userdata),
                               void *userdata) {
        ws->on_drained = cb;
        ws->drained_userdata = userdata;
        if (cb && ws_is_open(ws) && http_websocket_pending(ws) == 0) {
                ws->drained_due = true; /* run it soon, not from inside this call */
                http_conn_schedule(ws->conn);
        }
}

void http_websocket_pause(HttpWebSocket *ws) {
        ws->paused = true;
}

void http_websocket_resume(HttpWebSocket *ws) {
        if (!ws->paused)
                return;
        ws->paused = false;
        if (ws_is_open(ws))
                http_conn_schedule(ws->conn);
}

/* Cuts reason to what a close frame holds, on a UTF-8 character boundary. */
static size_t ws_close_reason_len(const char *reason) {
        size_t n = reason ? strlen(reason) : 0;

        if (n <= WS_CLOSE_REASON_MAX)
                return n;
        n = WS_CLOSE_REASON_MAX;
        while (n > 0 && ((unsigned char) reason[n] & 0xC0) == 0x80)
                n--;
        return n;
}

static void ws_queue_deferred_close(HttpWebSocket *ws);

void http_websocket_close(HttpWebSocket *ws, uint16_t code, const char *reason) {
        if (!ws_is_open(ws) || ws->close_deferred)
                return;
        if (wslay_event_get_queued_msg_count(ws->ctx) > 0) {
                ws->close_deferred = true;
                ws->close_code = code;
                snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", reason ? reason : "");
                ws_flush(ws);
                ws_queue_deferred_close(ws);
                return;
        }
        /* Refused when a close is already queued or sent: one is enough. */
        if (wslay_event_queue_close(ws->ctx, code, (const uint8_t *) reason, ws_close_reason_len(reason)) !=
            0)
                return;
        ws_flush(ws);
        /* The peer's answer is awaited in http_ws_step(); the idle timer bounds the wait. */
        http_conn_schedule(ws->conn);
}

/* Queues a close that waited for the messages before it, once they have left wslay. */
static void ws_queue_deferred_close(HttpWebSocket *ws) {
        if (!ws->close_deferred || !ws_is_open(ws) || wslay_event_get_queued_msg_count(ws->ctx) > 0)
                return;
        ws->close_deferred = false;
        http_websocket_close(ws, ws->close_code, ws->close_reason);
}

bool http_websocket_is_closed(const HttpWebSocket *ws) {
        return !ws_is_open(ws);
}

/* ---- the connection's side ---- */

void http_ws_report_close(HttpWebSocket *ws) {
        if (ws->close_reported)
                return;
        ws->close_reported = true;
        ws->on_drained = NULL;
        if (ws->ops.on_close) {
                http_websocket_ref(ws);
                ws->ops.on_close(ws, ws->userdata);
                http_websocket_unref(ws);
        }
}

static void ws_fire_drained(HttpWebSocket *ws) {
        void (*cb)(HttpWebSocket *, void *) = TAKE_PTR(ws->on_drained);

        ws->drained_due = false;
        if (!cb || !ws_is_open(ws))
                return;
        http_websocket_ref(ws);
        cb(ws, ws->drained_userdata);
        http_websocket_unref(ws);
}

static void ws_deliver_held(HttpWebSocket *ws) {
        WsHeldMessage *m = ws->held;

        ws->held = m->next;
        if (!ws->held)
                ws->held_last = NULL;
        if (ws->ops.on_message && ws_is_open(ws)) {
                http_websocket_ref(ws);
                ws->ops.on_message(ws, m->binary, m->data, m->len, ws->userdata);
                http_websocket_unref(ws);
        }
        free(m);
}

static bool ws_read_is_due(const HttpWebSocket *ws) {
        const HttpConn *c = ws->conn;

        return !ws->paused && !ws->held && c->in_start < c->in_end &&
               c->write_pending < HTTP_WS_READ_STALL_BYTES;
}

/* Runs wslay over the buffered input; true if it consumed any. */
static bool ws_receive(HttpWebSocket *ws) {
        HttpConn *c = ws->conn;
        size_t before = c->in_start;
        int k;

        if (!wslay_event_get_read_enabled(ws->ctx)) {
                /* After a close (or a protocol error) the peer's bytes mean nothing. */
                c->in_start = c->in_end;
                return before != c->in_end;
        }
        http_websocket_ref(ws);
        ws->in_recv = true;
        k = wslay_event_recv(ws->ctx);
        ws->in_recv = false;
        if (k < 0 && !ws->failed)
                ws->failed = k == WSLAY_ERR_NOMEM ? -ENOMEM : -EPROTO;
        ws_flush(ws);
        http_websocket_unref(ws);
        return c->in_start != before;
}

/* Both closes are through (or ours went out after a protocol error): done. */
static bool ws_is_finished(const HttpWebSocket *ws) {
        return !wslay_event_get_read_enabled(ws->ctx) && wslay_event_get_close_sent(ws->ctx);
}

bool http_ws_step(HttpWebSocket *ws) {
        HttpConn *c = ws->conn;

        if (ws->close_reported || http_conn_is_dead(c))
                return false;
        if (ws->failed) {
                log_full(LOG_LEVEL_DEBUG, NULL, ws->failed, "http: dropping a WebSocket");
                http_conn_abort(c, ws->failed);
                return false;
        }
        if (ws->drained_due) {
                ws_fire_drained(ws);
                return true;
        }
        if (ws->held && !ws->paused) {
                ws_deliver_held(ws);
                return true;
        }
        if (ws_is_finished(ws)) {
                http_ws_report_close(ws);
                http_conn_close_after_flush(c);
                return false;
        }
        if (ws_read_is_due(ws))
                return ws_receive(ws);
        return false;
}

void http_ws_on_input(HttpWebSocket *ws) {
        ws->ping_outstanding = false;
}

bool http_ws_on_idle(HttpWebSocket *ws) {
        static const struct wslay_event_msg ping = {.opcode = WSLAY_PING};

        if (!ws_is_open(ws) || ws->ping_outstanding || wslay_event_get_close_sent(ws->ctx))
                return false;
        if (wslay_event_queue_msg(ws->ctx, &ping) != 0)
                return false;
        ws->ping_outstanding = true;
        ws_flush(ws);
        return !ws->failed;
}

void http_ws_on_written(HttpWebSocket *ws) {
        HttpConn *c = ws->conn;

        if (!ws_is_open(ws))
                return;
        http_websocket_ref(ws);
        ws_queue_deferred_close(ws);
        if (http_websocket_pending(ws) == 0 && ws->on_drained)
                ws_fire_drained(ws);
        /* Reading held back by a long queue can go on. */
        if (ws_is_open(ws) && c->upgraded && !ws->paused && c->write_pending < HTTP_WS_READ_STALL_BYTES &&
            c->in_start < c->in_end)
                http_conn_schedule(c);
        http_websocket_unref(ws);
}
