/* Shared between the files of daemon/http only: the server, connection and request
 * structures and the helpers one file calls in another. Nothing outside http/ includes
 * this. Ownership, in short (docs/http.md has the long form):
 *
 *   HttpServer  refs: the caller (until http_server_free), the listener handle (until its
 *               close callback), the idle handle, each HttpConn.
 *   HttpConn    refs: its tcp handle and its timer (each until its close callback), the
 *               current request's back-pointer (each HttpRequest holds one), a pending
 *               entry in the server's "process soon" list.
 *   HttpRequest refs: the connection while it is current (dropped when the response has
 *               ended and the body is consumed, or on abort), and whatever the handler
 *               takes with http_request_ref().
 *   HttpWebSocket refs: its connection (HttpConn.ws, until the connection dies), calls
 *               into user callbacks while they run, and http_websocket_ref() holders.
 *               It holds a reference on its connection in turn. */
#pragma once

#include "basic/macros.h"
#include "daemon/http/http.h"
#include "daemon/http/parser.h"

#define HTTP_MAX_HEADERS 100
#define HTTP_DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define HTTP_DEFAULT_MAX_BUFFERED_BYTES (256 * 1024 * 1024)
#define HTTP_DEFAULT_MAX_CONNECTIONS 256
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 30000
#define HTTP_DEFAULT_MAX_URL_BYTES (16 * 1024)
/* Socket reads land here; the parser works on it in place. */
#define HTTP_INPUT_BUFFER_BYTES (32 * 1024)
/* A body the handler never claimed is read and thrown away up to this much so the
 * connection can carry the next request; beyond it the connection is closed. */
#define HTTP_DRAIN_MAX_BYTES (256 * 1024)
/* After an error response we half-close and read until the client closes, so it sees
 * the response instead of a reset; this long at most. */
#define HTTP_LINGER_MS 2000
/* Connections being turned away with 503 at once; more are closed without a word. */
#define HTTP_MAX_REJECTING 64
/* WebSocket: a received message (all fragments) over this is refused with close 1009. */
#define HTTP_WS_MAX_MESSAGE_BYTES (1024 * 1024)
/* http_websocket_send() refuses (-ENOBUFS) what would queue more than this. */
#define HTTP_WS_MAX_PENDING_BYTES (16 * 1024 * 1024)
/* While this much is queued for the peer, its frames are not read: a client that sends
 * pings (or anything that is answered) without reading cannot grow the queue. */
#define HTTP_WS_READ_STALL_BYTES (1024 * 1024)

typedef struct HttpConn HttpConn;

typedef struct HttpField {
        const char *name;
        const char *value;
} HttpField;

typedef struct HttpQueryPair {
        const char *key;
        const char *value;
        bool invalid; /* the value decoded to something holding a NUL */
} HttpQueryPair;

typedef enum HttpBodyMode {
        HTTP_BODY_UNCLAIMED, /* the handler has not asked for the body (yet) */
        HTTP_BODY_BUFFER,
        HTTP_BODY_STREAM,
        HTTP_BODY_DISCARD, /* answered without reading it: drain or close */
} HttpBodyMode;

/* The server-wide budget for buffered bodies (limits.max_buffered_bytes), so many clients
 * each sending a large body cannot add up to unbounded memory. */
bool http_server_reserve(HttpServer *s, size_t n);
void http_server_release(HttpServer *s, size_t n);

struct HttpServer {
        unsigned n_ref;
        uv_loop_t *loop;
        HttpLimits limits;
        HttpHandler handler;
        void *userdata;

        uv_tcp_t listener;
        bool listener_open;
        uv_idle_t idle; /* runs HttpConn processing deferred out of API calls */
        bool idle_open;
        bool freed;

        size_t buffered_bytes; /* memory held by buffered request bodies, all connections */
        HttpConn *conns; /* every live connection, serving or being turned away */
        unsigned n_serving;
        unsigned n_rejecting;
        HttpConn *scheduled; /* singly linked through HttpConn.scheduled_next */
};

struct HttpConn {
        unsigned n_ref;
        HttpServer *server;
        HttpConn *prev, *next;

        uv_tcp_t tcp;
        uv_timer_t timer;
        uv_shutdown_t shutdown_req;
        unsigned handles_open;

        bool rejecting;  /* turned away with 503 */
        bool processing; /* inside http_conn_process(); do not re-enter */
        bool scheduled;
        HttpConn *scheduled_next;
        bool reading;
        bool closing; /* no more requests: flushing, lingering or closed */
        bool lingering;
        bool shutting_down; /* uv_shutdown() called */
        bool closed;        /* uv_close() called */
        bool close_after;   /* close once the current response is written */
        int timer_kind;

        HttpWire *wire;
        char *in; /* HTTP_INPUT_BUFFER_BYTES, unparsed bytes in [in_start, in_end) */
        size_t in_start, in_end;

        /* The head being parsed: one arena of NUL-terminated strings, indexed by offset
         * since the arena may move while it grows. */
        char *head;
        size_t head_len, head_cap;
        size_t head_bytes; /* as counted against max_header_bytes */
        size_t url_len;
        size_t n_fields;
        int head_part; /* which string of the head is being parsed: url, name, value */
        size_t field_off[HTTP_MAX_HEADERS], value_off[HTTP_MAX_HEADERS];
        int stop_status; /* the status to answer when a callback stopped the parse */

        HttpRequest *req; /* in flight; this reference belongs to the connection */

        size_t write_pending; /* bytes handed to uv_write and not yet completed */
        unsigned n_writes;

        HttpWebSocket *ws; /* accepted on this connection; a reference, until it dies */
        bool upgraded;     /* the upgrade request is over: input belongs to ws */
};

struct HttpRequest {
        unsigned n_ref;
        HttpConn *conn; /* a reference */

        char *head; /* the arena: method, url copy, header names and values */
        const char *method;
        char *path;
        char *query_block;
        HttpQueryPair *query;
        size_t n_query;
        HttpField headers[HTTP_MAX_HEADERS];
        size_t n_headers;
        int64_t content_length;
        bool chunked, keep_alive, http10, expect_continue, upgrade;

        bool dispatched;
        HttpBodyMode body_mode;
        bool body_complete;
        bool body_paused;
        bool body_reported; /* on_done/on_end ran */
        bool continue_sent;
        int body_error; /* 413 or -errno, reported through on_done/on_end */
        char *body;
        size_t body_len, body_cap;
        size_t discarded;
        const char *chunk_at; /* a streamed piece parsed and not yet handed to on_chunk */
        size_t chunk_len;
        HttpBodyDone on_done;
        HttpBodyChunk on_chunk;
        HttpBodyEnd on_end;
        void *body_userdata;

        HttpAbort on_abort;
        void *abort_userdata;
        bool aborted;

        bool response_started, response_ended, response_chunked;
        char *extra_headers;
        size_t extra_len, extra_cap;
        HttpDrained on_drained;
        void *drained_userdata;
        bool drained_due; /* on_drained registered with nothing pending */
};

/* server.c */
HttpServer *http_server_ref(HttpServer *s);
void http_server_unref(HttpServer *s);
void http_server_schedule(HttpServer *s, HttpConn *c);
void http_server_add_conn(HttpServer *s, HttpConn *c);
void http_server_forget_conn(HttpServer *s, HttpConn *c);

/* conn.c */
int http_conn_new(HttpServer *s, bool rejecting, HttpConn **ret);
HttpConn *http_conn_ref(HttpConn *c);
void http_conn_unref(HttpConn *c);
int http_conn_start(HttpConn *c);
void http_conn_process(HttpConn *c);
/* Asks for http_conn_process() soon, never from inside the caller's stack. */
void http_conn_schedule(HttpConn *c);
void http_conn_close_after_flush(HttpConn *c);
void http_conn_abort(HttpConn *c, int error);
bool http_conn_is_dead(const HttpConn *c);
void http_conn_update_timer(HttpConn *c, bool progress);
/* A write completed: timers, on_drained, and a pending close. */
void http_conn_on_written(HttpConn *c);

/* request.c */
int http_request_new(HttpConn *c, const HttpWireHead *head, HttpRequest **ret);
void http_request_deliver_chunk(HttpRequest *r);
void http_request_report_body_end(HttpRequest *r);
/* The connection is gone: finish the body callbacks and run on_abort as due. */
void http_request_report_abort(HttpRequest *r, int error);

/* response.c */
/* Queues bytes (copied unless the socket takes them at once). A failure is returned, and
 * the caller aborts the connection. */
int http_conn_write(HttpConn *c, const uv_buf_t *bufs, unsigned n_bufs);
/* An error the server itself produces: JSON body, Connection: close, then close. */
void http_conn_send_error(HttpConn *c, int status, const char *code, const char *message);
void http_request_fire_drained(HttpRequest *r);
/* Writes bufs as one chunk of a streamed response (sse.c). */
int http_response_writev(HttpRequest *r, const uv_buf_t *bufs, unsigned n_bufs);

/* ws.c: the connection's side of a WebSocket, all called from conn.c. */
/* Does the next due thing (deliver, read frames, finish); false when nothing is. */
bool http_ws_step(HttpWebSocket *ws);
/* Bytes arrived from the peer: it is alive. */
void http_ws_on_input(HttpWebSocket *ws);
/* The peer has been silent for the idle timeout: pings it. False: give up on it. */
bool http_ws_on_idle(HttpWebSocket *ws);
/* A write completed: on_drained and reading held back by a long queue. */
void http_ws_on_written(HttpWebSocket *ws);
/* The connection is gone: on_close, if it has not run. */
void http_ws_report_close(HttpWebSocket *ws);
