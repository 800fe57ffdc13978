/* HTTP/1.1 server on libuv. Knows nothing of sandboxes: it parses requests, hands each
 * to one handler callback, and writes responses (whole, chunked-streamed, or SSE).
 * Only http/ includes the HTTP parser's header (parser.c), so it can be swapped.
 *
 * Lifetime: an HttpRequest lives until its response has ended and the handler has
 * dropped its references (http_request_ref/unref). If the client vanishes first, the
 * on_abort callback runs once; later writes on the request are silently dropped and
 * return -ECONNRESET. One request per connection is in flight at a time (pipelined
 * requests wait); keep-alive is supported. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

typedef struct HttpLimits {
        size_t max_header_bytes;  /* request line + headers; over it: 431 and close */
        size_t max_body_bytes;    /* buffered bodies; over it: 413 (streamed bodies are the handler's) */
        unsigned max_connections; /* over it: new connections get 503 and are closed */
        size_t max_buffered_bytes; /* all buffered bodies together; over it: 503 and close */
        uint64_t idle_timeout_ms; /* no complete request head within this: closed */
        size_t max_url_bytes;     /* request target; over it: 414 and close */
} HttpLimits;
/* A limit left 0 takes the default documented in docs/http.md. */

typedef void (*HttpHandler)(HttpRequest *req, void *userdata);

int http_server_new(uv_loop_t *loop, const HttpLimits *limits, HttpHandler handler, void *userdata,
                    HttpServer **ret);
/* host is an IPv4 or IPv6 literal. */
int http_server_listen(HttpServer *s, const char *host, int port);
/* The bound port (useful after listening on port 0). */
int http_server_port(const HttpServer *s);
/* Connections being served (those turned away with 503 are not counted). */
unsigned http_server_connection_count(const HttpServer *s);
void http_server_free(HttpServer *s);

/* ---- the request ---- */

HttpRequest *http_request_ref(HttpRequest *r);
void http_request_unref(HttpRequest *r);

const char *http_request_method(const HttpRequest *r); /* "GET", "POST", ... */
const char *http_request_path(const HttpRequest *r);   /* the path as sent, without the query */
/* The value of query parameter `name`, percent-decoded ('+' is a space); NULL if absent.
 * A value holding a NUL byte after decoding makes it invalid: returns NULL and sets
 * *ret_invalid (may be NULL) to true. */
const char *http_request_query(const HttpRequest *r, const char *name, bool *ret_invalid);
/* All query parameters in the order sent, repeats included (http_request_query() returns
 * the first). http_request_query_at() returns 0, -ERANGE past the end, or -EINVAL for a
 * value that decoded to a NUL (*ret_key is set, *ret_value is "": check the return). */
size_t http_request_query_count(const HttpRequest *r);
int http_request_query_at(const HttpRequest *r, size_t i, const char **ret_key, const char **ret_value);
/* Case-insensitive header lookup; NULL if absent. */
const char *http_request_header(const HttpRequest *r, const char *name);
/* All headers in the order sent (names as sent); -ERANGE past the end. */
size_t http_request_header_count(const HttpRequest *r);
int http_request_header_at(const HttpRequest *r, size_t i, const char **ret_name, const char **ret_value);
/* Content-Length if given, -1 if chunked or absent. */
int64_t http_request_content_length(const HttpRequest *r);
bool http_request_has_body(const HttpRequest *r);

/* Buffered body: on_done runs once with the whole body (NUL-terminated for convenience)
 * or with status 413 if it exceeds the server's max_body_bytes (the server has then
 * already answered 413). Call at most once, from the handler. Other statuses: -errno
 * when the client broke off (-ECONNRESET, -ETIMEDOUT) or the body was malformed
 * (-EBADMSG); -EALREADY/-ECONNRESET, run before returning, when the body was already
 * claimed or the request is over. on_done never runs from inside this call otherwise. */
typedef void (*HttpBodyDone)(HttpRequest *r, int status, const char *body, size_t len, void *userdata);
void http_request_read_body(HttpRequest *r, HttpBodyDone on_done, void *userdata);

/* Streamed body: on_chunk for each piece, then on_end (status 0, or -errno if the
 * client broke off). http_request_pause()/resume() stop and restart reading from the
 * socket for backpressure; pausing from inside on_chunk takes effect at once. */
typedef void (*HttpBodyChunk)(HttpRequest *r, const char *data, size_t len, void *userdata);
typedef void (*HttpBodyEnd)(HttpRequest *r, int status, void *userdata);
void http_request_stream_body(HttpRequest *r, HttpBodyChunk on_chunk, HttpBodyEnd on_end, void *userdata);
void http_request_pause(HttpRequest *r);
void http_request_resume(HttpRequest *r);

/* Called once if the connection closes before the response ended. */
typedef void (*HttpAbort)(HttpRequest *r, void *userdata);
void http_request_on_abort(HttpRequest *r, HttpAbort cb, void *userdata);
bool http_request_is_aborted(const HttpRequest *r);

/* ---- the response ---- */

/* Adds a response header before the response starts. */
void http_response_header(HttpRequest *r, const char *name, const char *value);
/* A whole response; content_type may be NULL for an empty body. Ends the response. */
int http_respond(HttpRequest *r, int status, const char *content_type, const void *body, size_t len);

/* A streamed response with Transfer-Encoding: chunked. */
int http_response_begin(HttpRequest *r, int status, const char *content_type);
int http_response_write(HttpRequest *r, const void *data, size_t len);
int http_response_end(HttpRequest *r);
/* Ends a response without completing it: what was queued is still sent, then the
 * connection closes without the final chunk, so the client sees a cut-off body rather
 * than a complete one. on_abort does not run for this. */
void http_response_abort(HttpRequest *r);
/* Bytes queued but not yet written to the socket. */
size_t http_response_pending(const HttpRequest *r);
/* Runs once when the pending bytes drop to zero (for backpressure). */
typedef void (*HttpDrained)(HttpRequest *r, void *userdata);
void http_response_on_drained(HttpRequest *r, HttpDrained cb, void *userdata);

const char *http_status_reason(int status);

/* ---- Server-Sent Events (sse.c) ---- */

/* Starts a 200 `text/event-stream` response (chunked, not cached). */
int http_sse_begin(HttpRequest *r);
/* Sends one event: "event: NAME\ndata: DATA\n\n". data must not contain a newline (send
 * JSON). Backpressure as for http_response_write (http_response_pending/on_drained).
 * -EINVAL if event or data holds a CR or LF (nothing is sent); event may be NULL (the
 * client sees a "message" event). End the stream with http_response_end(). */
int http_sse_send(HttpRequest *r, const char *event, const char *data, size_t len);
/* Sends a comment line (": TEXT\n\n"), which clients ignore: a heartbeat that keeps
 * proxies from timing out a quiet stream. -EINVAL if text holds a CR or LF. */
int http_sse_comment(HttpRequest *r, const char *text);

/* ---- WebSocket, RFC 6455, framing by wslay (ws.c) ---- */

typedef struct HttpWebSocket HttpWebSocket;

typedef struct HttpWebSocketOps {
        /* A complete message (fragments reassembled, bounded in size). */
        void (*on_message)(HttpWebSocket *ws, bool binary, const uint8_t *data, size_t len, void *userdata);
        /* Once: the peer closed, the connection dropped, or http_websocket_close() finished. */
        void (*on_close)(HttpWebSocket *ws, void *userdata);
} HttpWebSocketOps;

/* True if the request asks for a WebSocket upgrade (GET, Upgrade: websocket, version 13). */
bool http_request_is_websocket(const HttpRequest *r);
/* Answers 101 and turns the request's connection into a WebSocket. The request is then
 * finished (the handler drops its reference as usual); the socket lives until on_close.
 * Headers added with http_response_header() go into the 101 (e.g. a subprotocol).
 * On failure the request has been answered (or the client is gone): the caller must not
 * answer it again. A request that is not a valid upgrade gets 426 (with
 * Sec-WebSocket-Version: 13) when it does not ask for WebSocket 13, -EPROTONOSUPPORT, or
 * 400 for a malformed upgrade, -EINVAL; -ENOMEM answers 500; -EALREADY if the response
 * had started, -ECONNRESET if the client is gone. On success *ret is borrowed: valid
 * until on_close has returned, longer with http_websocket_ref(). The callbacks run from
 * the event loop, never from inside an http_websocket_*() call (http_server_free() aside:
 * on_close runs from there). */
int http_websocket_accept(HttpRequest *r, const HttpWebSocketOps *ops, void *userdata, HttpWebSocket **ret);
HttpWebSocket *http_websocket_ref(HttpWebSocket *ws);
void http_websocket_unref(HttpWebSocket *ws);
/* Queues one message (copied). -ECONNRESET once the socket is closing or closed (on_close
 * ran or will), -ENOBUFS if more than 16 MiB would be queued (docs/http.md). A text message
 * should be UTF-8: it is not checked. */
int http_websocket_send(HttpWebSocket *ws, bool binary, const void *data, size_t len);
/* Bytes queued but not yet written, and a one-shot callback when that drops to zero. */
size_t http_websocket_pending(const HttpWebSocket *ws);
void http_websocket_on_drained(HttpWebSocket *ws, void (*cb)(HttpWebSocket *ws, void *userdata),
                               void *userdata);
/* Stops reading from the peer (backpressure) and starts again. Pausing from inside
 * on_message takes effect at once: no further on_message until resumed. */
void http_websocket_pause(HttpWebSocket *ws);
void http_websocket_resume(HttpWebSocket *ws);
/* Sends a close frame (code 0: none; reason may be NULL, cut to 123 bytes); on_close
 * follows when the peer answers or the connection drops (or after the idle timeout). */
void http_websocket_close(HttpWebSocket *ws, uint16_t code, const char *reason);
/* Whether on_close has run (or is running). */
bool http_websocket_is_closed(const HttpWebSocket *ws);
