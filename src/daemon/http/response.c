/* Responses: the write queue and its backpressure, whole and chunked responses, and
 * the JSON errors the server produces by itself. */
#include "daemon/http/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"

typedef struct HttpWrite {
        uv_write_t req;
        HttpConn *conn;
        size_t len;
        char data[];
} HttpWrite;

static void on_write_done(uv_write_t *req, int status) {
        HttpWrite *w = (HttpWrite *) req;
        HttpConn *c = w->conn;

        c->n_writes--;
        c->write_pending -= w->len;
        free(w);
        if (status < 0) {
                http_conn_abort(c, status);
                return;
        }
        http_conn_on_written(c);
}

/* Queued data is cut into writes of at most this much, so that write progress (which
 * the activity timer watches) is visible for large responses too. */
#define HTTP_WRITE_PIECE_BYTES (64 * 1024)

/* Queues bytes [skip, skip + len) of bufs as one write. */
static int conn_queue_piece(HttpConn *c, const uv_buf_t *bufs, unsigned n_bufs, size_t skip, size_t len) {
        HttpWrite *w = malloc(sizeof(HttpWrite) + len);
        size_t off = 0;
        uv_buf_t buf;
        int r;

        if (!w)
                return -ENOMEM;
        for (unsigned i = 0; i < n_bufs && off < len; i++) {
                size_t n;

                if (skip >= bufs[i].len) {
                        skip -= bufs[i].len;
                        continue;
                }
                n = MIN(bufs[i].len - skip, len - off);
                memcpy(w->data + off, bufs[i].base + skip, n);
                off += n;
                skip = 0;
        }
        w->conn = c;
        w->len = len;
        buf = uv_buf_init(w->data, (unsigned) len);
        r = uv_write(&w->req, (uv_stream_t *) &c->tcp, &buf, 1, on_write_done);
        if (r < 0) {
                free(w);
                return r;
        }
        c->n_writes++;
        c->write_pending += len;
        return 0;
}

int http_conn_write(HttpConn *c, const uv_buf_t *bufs, unsigned n_bufs) {
        size_t total = 0, done = 0;
        int r;

        if (c->closed)
                return -ECONNRESET;
        for (unsigned i = 0; i < n_bufs; i++)
                total += bufs[i].len;
        if (total == 0)
                return 0;
        /* With nothing queued, try the socket first; only what it refuses is copied. */
        if (c->n_writes == 0) {
                r = uv_try_write((uv_stream_t *) &c->tcp, bufs, n_bufs);
                if (r >= 0)
                        done = (size_t) r;
                else if (r != UV_EAGAIN)
                        return r;
        }
        while (done < total) {
                size_t len = MIN(total - done, (size_t) HTTP_WRITE_PIECE_BYTES);
                r = conn_queue_piece(c, bufs, n_bufs, done, len);
                if (r < 0)
                        return r;
                done += len;
        }
        http_conn_update_timer(c, false);
        return 0;
}

void http_conn_send_error(HttpConn *c, int status, const char *code, const char *message) {
        HttpRequest *r = c->req;
        char text[512];
        uv_buf_t buf;
        int n, k;

        if (c->closed || c->closing)
                return;
        if (r) {
                if (r->response_started) {
                        http_conn_abort(c, -EBADMSG);
                        return;
                }
                r->response_started = r->response_ended = true;
        }
        /* code and message are our own constants: nothing to escape. */
        n = snprintf(text, sizeof(text),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n{\"error\":\"%s\",\"code\":\"%s\"}",
                     status, http_status_reason(status), strlen(message) + strlen(code) + 22, message, code);
        if (n < 0 || (size_t) n >= sizeof(text)) {
                http_conn_abort(c, -ENOBUFS);
                return;
        }
        c->close_after = true;
        buf = uv_buf_init(text, (unsigned) n);
        k = http_conn_write(c, &buf, 1);
        if (k < 0) {
                http_conn_abort(c, k);
                return;
        }
        http_conn_close_after_flush(c);
}

/* ---- the handler's side ---- */

static bool header_token_is_valid(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s))
                        return false;
        return true;
}

static bool header_value_is_valid(const char *s) {
        return strpbrk(s, "\r\n") == NULL;
}

void http_response_header(HttpRequest *r, const char *name, const char *value) {
        size_t need;
        char *p;

        if (r->response_started)
                return;
        if (!header_token_is_valid(name) || !header_value_is_valid(value)) {
                log_warn("http: dropping response header with invalid characters: %s", name);
                return;
        }
        need = r->extra_len + strlen(name) + strlen(value) + 5;
        if (need > r->extra_cap) {
                size_t cap = MAX(need, r->extra_cap * 2);
                p = realloc(r->extra_headers, cap);
                if (!p)
                        return;
                r->extra_headers = p;
                r->extra_cap = cap;
        }
        r->extra_len += (size_t) sprintf(r->extra_headers + r->extra_len, "%s: %s\r\n", name, value);
}

static int response_check_start(const HttpRequest *r, int status, const char *content_type) {
        if (r->aborted || http_conn_is_dead(r->conn))
                return -ECONNRESET;
        if (r->response_started || r->conn->req != r)
                return -EALREADY;
        if (status < 200 || status > 999)
                return -EINVAL;
        if (content_type && !header_value_is_valid(content_type))
                return -EINVAL;
        return 0;
}

/* Whether the connection survives this response, decided before its head is written
 * so that the head can say so. A body the handler never claimed is drained when that
 * is cheap and known to end; otherwise the connection closes. */
static void response_decide_connection(HttpRequest *r) {
        HttpConn *c = r->conn;

        if (!r->keep_alive || c->server->freed)
                c->close_after = true;
        if (r->body_mode != HTTP_BODY_UNCLAIMED || !http_request_has_body(r) || r->body_complete)
                return;
        r->body_mode = HTTP_BODY_DISCARD;
        /* The client may or may not send the body it asked permission for. */
        if (r->expect_continue && !r->continue_sent)
                c->close_after = true;
        else if (r->content_length > HTTP_DRAIN_MAX_BYTES)
                c->close_after = true;
}

static const char *response_connection_header(const HttpRequest *r) {
        if (r->conn->close_after)
                return "Connection: close\r\n";
        if (r->http10)
                return "Connection: keep-alive\r\n";
        return "";
}

static int response_format_head(HttpRequest *r, int status, const char *content_type, const char *framing,
                                char **ret) {
        int n = asprintf(ret, "HTTP/1.1 %d %s\r\n%s%s%s%s%s%s\r\n", status, http_status_reason(status),
                         r->extra_headers ? r->extra_headers : "", content_type ? "Content-Type: " : "",
                         content_type ? content_type : "", content_type ? "\r\n" : "", framing,
                         response_connection_header(r));
        if (n < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return n;
}

/* Writes, and on failure gives up the connection: the request is aborted. */
static int response_write(HttpRequest *r, const uv_buf_t *bufs, unsigned n_bufs) {
        int k = http_conn_write(r->conn, bufs, n_bufs);

        if (k < 0) {
                http_conn_abort(r->conn, k);
                return -ECONNRESET;
        }
        return 0;
}

int http_respond(HttpRequest *r, int status, const char *content_type, const void *body, size_t len) {
        bool bodiless = status == 204 || status == 304;
        char framing[64] = "";
        _cleanup_free_ char *head = NULL;
        uv_buf_t bufs[2];
        int n, k;

        k = response_check_start(r, status, content_type);
        if (k < 0)
                return k;
        response_decide_connection(r);
        if (!bodiless)
                snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", len);
        n = response_format_head(r, status, content_type, framing, &head);
        if (n < 0)
                return n;
        r->response_started = r->response_ended = true;
        bufs[0] = uv_buf_init(head, (unsigned) n);
        bufs[1] = uv_buf_init((char *) body, bodiless ? 0 : (unsigned) len);
        k = response_write(r, bufs, 2);
        http_conn_schedule(r->conn);
        return k;
}

int http_response_begin(HttpRequest *r, int status, const char *content_type) {
        _cleanup_free_ char *head = NULL;
        uv_buf_t buf;
        int n, k;

        k = response_check_start(r, status, content_type);
        if (k < 0)
                return k;
        response_decide_connection(r);
        /* HTTP/1.0 has no chunked encoding: the end of the body is the end of the
         * connection. */
        r->response_chunked = !r->http10;
        if (!r->response_chunked)
                r->conn->close_after = true;
        n = response_format_head(r, status, content_type,
                                 r->response_chunked ? "Transfer-Encoding: chunked\r\n" : "", &head);
        if (n < 0)
                return n;
        r->response_started = true;
        buf = uv_buf_init(head, (unsigned) n);
        return response_write(r, &buf, 1);
}

static int response_check_streaming(const HttpRequest *r) {
        if (r->aborted || http_conn_is_dead(r->conn))
                return -ECONNRESET;
        if (!r->response_started || r->response_ended)
                return -EALREADY;
        return 0;
}

/* At most this many pieces make one chunk (with its size line and CRLF). */
#define HTTP_CHUNK_MAX_PIECES 8

int http_response_writev(HttpRequest *r, const uv_buf_t *bufs, unsigned n_bufs) {
        uv_buf_t out[HTTP_CHUNK_MAX_PIECES + 2];
        char size_line[32];
        size_t len = 0;
        int k;

        k = response_check_streaming(r);
        if (k < 0)
                return k;
        if (n_bufs > HTTP_CHUNK_MAX_PIECES)
                return -EINVAL;
        for (unsigned i = 0; i < n_bufs; i++)
                len += bufs[i].len;
        if (len == 0)
                return 0; /* an empty chunk would end the body */
        if (!r->response_chunked)
                return response_write(r, bufs, n_bufs);
        out[0] = uv_buf_init(size_line, (unsigned) snprintf(size_line, sizeof(size_line), "%zx\r\n", len));
        memcpy(out + 1, bufs, n_bufs * sizeof(uv_buf_t));
        out[n_bufs + 1] = uv_buf_init((char *) "\r\n", 2);
        return response_write(r, out, n_bufs + 2);
}

int http_response_write(HttpRequest *r, const void *data, size_t len) {
        uv_buf_t buf = uv_buf_init((char *) data, (unsigned) len);

        return http_response_writev(r, &buf, 1);
}

int http_response_end(HttpRequest *r) {
        uv_buf_t buf = uv_buf_init((char *) "0\r\n\r\n", 5);
        int k;

        k = response_check_streaming(r);
        if (k < 0)
                return k;
        r->response_ended = true;
        if (r->response_chunked)
                k = response_write(r, &buf, 1);
        http_conn_schedule(r->conn);
        return k;
}

void http_response_abort(HttpRequest *r) {
        HttpConn *c = r->conn;

        if (r->aborted || r->response_ended || http_conn_is_dead(c) || c->req != r)
                return;
        /* Ended as far as the handler is concerned (no on_abort for its own decision);
         * without the last chunk, or with the connection closing before a promised
         * length, no client mistakes what it got for the whole body. */
        r->response_started = r->response_ended = true;
        c->close_after = true;
        http_conn_schedule(c);
}

size_t http_response_pending(const HttpRequest *r) {
        const HttpConn *c = r->conn;

        if (c->req != r || c->closed)
                return 0;
        return c->write_pending;
}

void http_response_on_drained(HttpRequest *r, HttpDrained cb, void *userdata) {
        r->on_drained = cb;
        r->drained_userdata = userdata;
        if (cb && http_response_pending(r) == 0 && !r->aborted) {
                /* Nothing to wait for: run it soon, not from inside this call. */
                r->drained_due = true;
                http_conn_schedule(r->conn);
        }
}

void http_request_fire_drained(HttpRequest *r) {
        HttpDrained cb = TAKE_PTR(r->on_drained);

        if (cb)
                cb(r, r->drained_userdata);
}
