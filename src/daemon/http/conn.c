/* One client connection: reading into a fixed buffer, feeding the parser one request
 * at a time, the timers that bound how long a client may take, and closing (gracefully
 * after an error response, or at once when the client is gone). After a WebSocket
 * upgrade the same buffer, timer and write queue serve ws.c instead of the parser. */
#include "daemon/http/internal.h"

#include <stdlib.h>
#include <string.h>

#include "basic/log.h"

enum {
        TIMER_NONE,
        TIMER_HEAD,     /* a fixed deadline for a whole request head (slowloris, idle) */
        TIMER_ACTIVITY, /* restarted on progress: body bytes arriving, writes completing */
        TIMER_LINGER,
        TIMER_WS, /* a WebSocket's peer silent: ping it, then give up (restarted on progress) */
};

enum {
        HEAD_URL,
        HEAD_NAME,
        HEAD_VALUE,
};

/* Lingering reads are thrown away; one loop thread, so one scratch buffer serves all. */
static char discard_buffer[16 * 1024];

HttpConn *http_conn_ref(HttpConn *c) {
        c->n_ref++;
        return c;
}

static void conn_free(HttpConn *c) {
        http_wire_free(c->wire);
        free(c->in);
        free(c->head);
        http_server_unref(c->server);
        free(c);
}

void http_conn_unref(HttpConn *c) {
        if (!c || --c->n_ref > 0)
                return;
        conn_free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
        http_conn_unref(h->data);
}

int http_conn_new(HttpServer *s, bool rejecting, HttpConn **ret) {
        HttpConn *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->server = http_server_ref(s);
        c->rejecting = rejecting;
        r = uv_tcp_init(s->loop, &c->tcp);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        c->tcp.data = http_conn_ref(c);
        /* uv_timer_init() cannot fail. */
        (void) uv_timer_init(s->loop, &c->timer);
        c->timer.data = http_conn_ref(c);
        http_server_add_conn(s, c);
        *ret = c;
        return 0;
}

bool http_conn_is_dead(const HttpConn *c) {
        return c->closed;
}

static void conn_reset_head(HttpConn *c) {
        c->head_len = 0;
        c->head_bytes = 0;
        c->url_len = 0;
        c->n_fields = 0;
        c->head_part = HEAD_URL;
        c->stop_status = 0;
}

/* ---- closing ---- */

void http_conn_abort(HttpConn *c, int error) {
        HttpWebSocket *ws;
        HttpRequest *r;

        if (c->closed)
                return;
        http_conn_ref(c);
        c->closed = c->closing = true;
        c->reading = false;
        uv_close((uv_handle_t *) &c->tcp, on_conn_handle_closed);
        uv_close((uv_handle_t *) &c->timer, on_conn_handle_closed);
        http_server_forget_conn(c->server, c);
        r = TAKE_PTR(c->req);
        if (r) {
                http_request_report_abort(r, error);
                http_request_unref(r);
        }
        ws = TAKE_PTR(c->ws);
        if (ws) {
                http_ws_report_close(ws);
                http_websocket_unref(ws);
        }
        http_conn_unref(c);
}

static void conn_start_timer(HttpConn *c, int kind, uint64_t timeout_ms);

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
        HttpConn *c = h->data;

        if (c->lingering || !c->in) {
                *buf = uv_buf_init(discard_buffer, sizeof(discard_buffer));
                return;
        }
        if (c->in_start > 0) {
                memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
                c->in_end -= c->in_start;
                c->in_start = 0;
        }
        *buf = uv_buf_init(c->in + c->in_end, HTTP_INPUT_BUFFER_BYTES - c->in_end);
}

static void conn_set_reading(HttpConn *c, bool want) {
        int r;

        if (c->closed || want == c->reading)
                return;
        if (!want) {
                uv_read_stop((uv_stream_t *) &c->tcp);
                c->reading = false;
                return;
        }
        r = uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_read);
        if (r < 0) {
                http_conn_abort(c, r);
                return;
        }
        c->reading = true;
}

/* Reading goes on while there is room, even when nothing is parsed, so that a client
 * that hangs up is noticed while its request is being handled. A full buffer stops it:
 * that is the backpressure for pipelined requests, unclaimed and paused bodies. */
static void conn_update_reading(HttpConn *c) {
        bool room = c->in_start > 0 || c->in_end < HTTP_INPUT_BUFFER_BYTES;

        if (c->lingering)
                conn_set_reading(c, true);
        else
                conn_set_reading(c, !c->closing && room);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
        HttpConn *c = req->data;
        uint64_t linger = MIN((uint64_t) HTTP_LINGER_MS, c->server->limits.idle_timeout_ms);

        if (c->closed)
                return;
        if (status < 0) {
                http_conn_abort(c, status);
                return;
        }
        /* Read and drop what the client still sends until it closes, so our response
         * is not destroyed by a reset caused by unread data. */
        c->lingering = true;
        conn_start_timer(c, TIMER_LINGER, linger);
        conn_update_reading(c);
}

void http_conn_close_after_flush(HttpConn *c) {
        int r;

        if (c->closed || c->shutting_down)
                return;
        c->closing = true;
        if (c->n_writes > 0) {
                conn_update_reading(c);
                return; /* http_conn_on_written() comes back here */
        }
        c->shutting_down = true;
        c->shutdown_req.data = c;
        r = uv_shutdown(&c->shutdown_req, (uv_stream_t *) &c->tcp, on_shutdown);
        if (r < 0) {
                http_conn_abort(c, r);
                return;
        }
        conn_update_reading(c);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t) {
        HttpConn *c = t->data;

        if (c->timer_kind == TIMER_WS && c->ws) {
                c->timer_kind = TIMER_NONE;
                if (http_ws_on_idle(c->ws)) {
                        http_conn_update_timer(c, false);
                        return;
                }
                log_debug("http: closing a WebSocket whose peer went silent");
        }
        if (c->timer_kind == TIMER_HEAD)
                log_debug("http: closing a connection that sent no complete request in time");
        else if (c->timer_kind == TIMER_ACTIVITY)
                log_debug("http: closing a stalled connection");
        c->timer_kind = TIMER_NONE;
        http_conn_abort(c, -ETIMEDOUT);
}

static void conn_start_timer(HttpConn *c, int kind, uint64_t timeout_ms) {
        c->timer_kind = kind;
        uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
}

static bool conn_wants_input(const HttpConn *c);

static int conn_timer_kind(const HttpConn *c) {
        if (c->n_writes > 0)
                return TIMER_ACTIVITY;
        if (c->closing)
                return TIMER_NONE;
        /* Held back by a pause, a WebSocket does not read, so cannot hear pongs either. */
        if (c->upgraded)
                return c->reading ? TIMER_WS : TIMER_NONE;
        if (!c->req)
                return TIMER_HEAD;
        if (!c->req->body_complete && conn_wants_input(c))
                return TIMER_ACTIVITY;
        return TIMER_NONE; /* the handler is at work: its business how long */
}

void http_conn_update_timer(HttpConn *c, bool progress) {
        int kind;

        if (c->closed || c->lingering)
                return;
        kind = conn_timer_kind(c);
        if (kind == TIMER_NONE) {
                if (c->timer_kind != TIMER_NONE)
                        uv_timer_stop(&c->timer);
                c->timer_kind = TIMER_NONE;
                return;
        }
        if (kind == c->timer_kind && !((kind == TIMER_ACTIVITY || kind == TIMER_WS) && progress))
                return;
        conn_start_timer(c, kind, c->server->limits.idle_timeout_ms);
}

/* ---- reading and parsing ---- */

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
        HttpConn *c = stream->data;

        if (c->closed || nread == 0)
                return;
        if (nread < 0) {
                /* EOF or reset. A request without a finished response is aborted: a
                 * client that half-closes after sending is treated as gone. */
                http_conn_abort(c, nread == UV_EOF ? -ECONNRESET : (int) nread);
                return;
        }
        if (c->lingering)
                return;
        c->in_end += (size_t) nread;
        if (c->upgraded)
                http_ws_on_input(c->ws);
        http_conn_update_timer(c, true);
        http_conn_process(c);
}

static int head_append(HttpConn *c, const char *data, size_t len, bool terminate) {
        size_t need = c->head_len + len + 1;

        if (need > c->head_cap) {
                size_t cap = MAX(need, MAX(c->head_cap * 2, (size_t) 512));
                char *p = realloc(c->head, cap);
                if (!p)
                        return -ENOMEM;
                c->head = p;
                c->head_cap = cap;
        }
        memcpy(c->head + c->head_len, data, len);
        c->head_len += len;
        if (terminate)
                c->head[c->head_len++] = 0;
        return 0;
}

static int head_count(HttpConn *c, size_t len) {
        c->head_bytes += len;
        if (c->head_bytes > c->server->limits.max_header_bytes) {
                c->stop_status = 431;
                return -1;
        }
        return 0;
}

/* Ends the string being collected when the parser moves to another part of the head. */
static int head_switch(HttpConn *c, int part) {
        if (c->head_part == part)
                return 0;
        c->head_part = part;
        return head_append(c, "", 0, true);
}

static int on_wire_message_begin(void *userdata) {
        conn_reset_head(userdata);
        return 0;
}

static int on_wire_url(void *userdata, const char *at, size_t len) {
        HttpConn *c = userdata;

        c->url_len += len;
        if (c->url_len > c->server->limits.max_url_bytes) {
                c->stop_status = 414;
                return -1;
        }
        /* "METHOD " and " HTTP/1.1\r\n" count too; roughly. */
        if (head_count(c, len + (c->url_len == len ? 20 : 0)) < 0)
                return -1;
        return head_append(c, at, len, false) < 0 ? -1 : 0;
}

static int on_wire_header_field(void *userdata, const char *at, size_t len) {
        HttpConn *c = userdata;

        if (c->head_part != HEAD_NAME) {
                if (c->n_fields >= HTTP_MAX_HEADERS) {
                        c->stop_status = 431;
                        return -1;
                }
                if (head_switch(c, HEAD_NAME) < 0)
                        return -1;
                c->field_off[c->n_fields] = c->head_len;
                c->value_off[c->n_fields] = SIZE_MAX;
                c->n_fields++;
                if (head_count(c, 4) < 0) /* ": " and CRLF */
                        return -1;
        }
        if (head_count(c, len) < 0)
                return -1;
        return head_append(c, at, len, false) < 0 ? -1 : 0;
}

static int on_wire_header_value(void *userdata, const char *at, size_t len) {
        HttpConn *c = userdata;

        if (c->n_fields == 0)
                return -1;
        if (c->head_part != HEAD_VALUE) {
                if (head_switch(c, HEAD_VALUE) < 0)
                        return -1;
                c->value_off[c->n_fields - 1] = c->head_len;
        }
        if (head_count(c, len) < 0)
                return -1;
        return head_append(c, at, len, false) < 0 ? -1 : 0;
}

static int on_wire_headers_complete(void *userdata, const HttpWireHead *head) {
        HttpConn *c = userdata;
        HttpRequest *r;

        if (head_append(c, "", 0, true) < 0)
                return -1;
        if (http_request_new(c, head, &r) < 0)
                return -1;
        c->req = r;
        /* The handler runs outside the parser, from http_conn_process(). */
        return HTTP_WIRE_PAUSE;
}

static int on_wire_body(void *userdata, const char *at, size_t len) {
        HttpConn *c = userdata;
        HttpRequest *r = c->req;
        size_t max = c->server->limits.max_body_bytes;

        switch (r->body_mode) {
        case HTTP_BODY_BUFFER:
                if (len > max - r->body_len) {
                        c->stop_status = 413;
                        return -1;
                }
                if (r->body_len + len + 1 > r->body_cap) {
                        size_t cap = MIN(MAX(r->body_len + len + 1, r->body_cap * 2), max + 1);
                        char *p;

                        if (!http_server_reserve(c->server, cap - r->body_cap)) {
                                c->stop_status = 503;
                                return -1;
                        }
                        p = realloc(r->body, cap);
                        if (!p) {
                                http_server_release(c->server, cap - r->body_cap);
                                return -1;
                        }
                        r->body = p;
                        r->body_cap = cap;
                }
                memcpy(r->body + r->body_len, at, len);
                r->body_len += len;
                return 0;
        case HTTP_BODY_STREAM:
                /* Handed over from http_conn_process(), outside the parser; the bytes stay
                 * put in the input buffer until then. */
                r->chunk_at = at;
                r->chunk_len = len;
                return HTTP_WIRE_PAUSE;
        case HTTP_BODY_DISCARD:
                r->discarded += len;
                return r->discarded > HTTP_DRAIN_MAX_BYTES ? HTTP_WIRE_PAUSE : 0;
        case HTTP_BODY_UNCLAIMED:
        default:
                return -1; /* never fed in this mode */
        }
}

static int on_wire_message_complete(void *userdata) {
        HttpConn *c = userdata;

        if (c->req)
                c->req->body_complete = true;
        return HTTP_WIRE_PAUSE;
}

static const HttpWireEvents conn_wire_events = {
        .on_message_begin = on_wire_message_begin,
        .on_url = on_wire_url,
        .on_header_field = on_wire_header_field,
        .on_header_value = on_wire_header_value,
        .on_headers_complete = on_wire_headers_complete,
        .on_body = on_wire_body,
        .on_message_complete = on_wire_message_complete,
};

int http_conn_start(HttpConn *c) {
        int r;

        c->in = malloc(HTTP_INPUT_BUFFER_BYTES);
        if (!c->in)
                return -ENOMEM;
        r = http_wire_new(&conn_wire_events, c, &c->wire);
        if (r < 0)
                return r;
        conn_reset_head(c);
        (void) uv_tcp_nodelay(&c->tcp, 1);
        conn_update_reading(c);
        http_conn_update_timer(c, false);
        return 0;
}

static bool conn_wants_input(const HttpConn *c) {
        const HttpRequest *r = c->req;

        if (c->closing)
                return false;
        if (!r)
                return true;
        if (r->body_complete || r->body_error != 0 || r->chunk_len > 0)
                return false;
        switch (r->body_mode) {
        case HTTP_BODY_UNCLAIMED:
                /* Without a body only the end of the message is left to parse. */
                return !http_request_has_body(r);
        case HTTP_BODY_BUFFER:
                return true;
        case HTTP_BODY_STREAM:
                return !r->body_paused;
        case HTTP_BODY_DISCARD:
                return r->discarded <= HTTP_DRAIN_MAX_BYTES;
        }
        return false;
}

static void conn_parse_failed(HttpConn *c, HttpWireStatus status) {
        HttpRequest *r = c->req;
        int code = c->stop_status;

        if (code == 0)
                code = status == HTTP_WIRE_HEADER_OVERFLOW ? 431 : status == HTTP_WIRE_INVALID ? 400 : 500;
        if (code == 400)
                log_debug("http: malformed request: %s", http_wire_error_text(c->wire));
        if (r) {
                r->body_error = code == 413 || code == 503 ? code : -EBADMSG;
                if (r->response_ended) {
                        c->close_after = true;
                        return;
                }
                if (r->response_started) {
                        http_conn_abort(c, -EBADMSG);
                        return;
                }
        }
        switch (code) {
        case 400:
                http_conn_send_error(c, 400, "bad_request", "malformed HTTP request");
                break;
        case 413:
                http_conn_send_error(c, 413, "payload_too_large", "request body too large");
                break;
        case 414:
                http_conn_send_error(c, 414, "uri_too_long", "request URL too long");
                break;
        case 431:
                http_conn_send_error(c, 431, "header_too_large", "request header too large");
                break;
        case 503:
                http_conn_send_error(c, 503, "at_capacity", "too much request data in flight; retry");
                break;
        default:
                http_conn_abort(c, -ENOMEM);
                break;
        }
}

/* Feeds buffered input to the parser until it pauses; false when there is no point
 * feeding again. */
static bool conn_feed(HttpConn *c) {
        HttpWireStatus status;
        size_t n;

        n = http_wire_feed(c->wire, c->in + c->in_start, c->in_end - c->in_start, &status);
        c->in_start += n;
        switch (status) {
        case HTTP_WIRE_PAUSED:
                http_wire_resume(c->wire);
                return true;
        case HTTP_WIRE_OK:
                return n > 0; /* 0: after an Upgrade nothing more is parsed */
        default:
                conn_parse_failed(c, status);
                return false;
        }
}

static void conn_dispatch(HttpConn *c, HttpRequest *r) {
        HttpServer *s = c->server;

        r->dispatched = true;
        log_debug("http: %s %s", r->method, r->path);
        http_request_ref(r);
        s->handler(r, s->userdata);
        http_request_unref(r);
}

static bool request_body_is_claimed(const HttpRequest *r) {
        return r->body_mode == HTTP_BODY_BUFFER || r->body_mode == HTTP_BODY_STREAM;
}

static bool conn_body_end_due(const HttpRequest *r) {
        return request_body_is_claimed(r) && !r->body_reported && (r->body_complete || r->body_error != 0);
}

/* The current request is over when its response has ended and its body is dealt with:
 * reported to the handler, drained, or left unread on a connection that will close. */
static bool conn_request_done(const HttpConn *c, const HttpRequest *r) {
        if (!r->response_ended)
                return false;
        if (request_body_is_claimed(r))
                return r->body_reported;
        if (r->body_complete || r->body_error != 0)
                return true;
        return c->close_after || r->discarded > HTTP_DRAIN_MAX_BYTES;
}

static void conn_finish_request(HttpConn *c) {
        HttpRequest *r = TAKE_PTR(c->req);
        bool close = c->close_after || !r->keep_alive || !r->body_complete;
        bool upgrade = c->ws && !c->close_after && r->body_complete;

        http_request_unref(r);
        if (upgrade) {
                /* Accepted as a WebSocket: from here on the input is frames. */
                c->upgraded = true;
                return;
        }
        if (close) {
                http_conn_close_after_flush(c);
                return;
        }
        c->close_after = false;
        conn_reset_head(c);
}

/* Does the next due thing; false when nothing is left to do for now. */
static bool conn_step(HttpConn *c) {
        HttpRequest *r = c->req;

        if (c->closed)
                return false;
        if (c->upgraded)
                return http_ws_step(c->ws);
        if (r && !r->dispatched) {
                conn_dispatch(c, r);
                return true;
        }
        if (r && r->chunk_len > 0) {
                http_request_deliver_chunk(r);
                return true;
        }
        if (r && conn_body_end_due(r)) {
                http_request_report_body_end(r);
                return true;
        }
        if (r && r->drained_due) {
                r->drained_due = false;
                http_request_fire_drained(r);
                return true;
        }
        if (r && conn_request_done(c, r)) {
                conn_finish_request(c);
                return true;
        }
        if (!conn_wants_input(c) || c->in_start == c->in_end)
                return false;
        return conn_feed(c);
}

void http_conn_process(HttpConn *c) {
        if (c->processing || c->closed)
                return;
        c->processing = true;
        http_conn_ref(c);
        while (conn_step(c))
                ;
        c->processing = false;
        if (!c->closed) {
                conn_update_reading(c);
                http_conn_update_timer(c, false);
        }
        http_conn_unref(c);
}

void http_conn_schedule(HttpConn *c) {
        /* A running http_conn_process() looks again after every step anyway. */
        if (c->processing || c->closed)
                return;
        http_server_schedule(c->server, c);
}

void http_conn_on_written(HttpConn *c) {
        HttpRequest *r = c->req;

        if (c->closed)
                return;
        http_conn_update_timer(c, true);
        if (r && c->write_pending == 0 && r->on_drained) {
                http_request_ref(r);
                http_request_fire_drained(r);
                http_request_unref(r);
        }
        if (c->ws)
                http_ws_on_written(c->ws);
        if (c->closing && c->n_writes == 0)
                http_conn_close_after_flush(c);
}
