/* The listening socket, accepting (and turning away) connections, and the server's
 * lifetime. Connections themselves live in conn.c. */
#include "daemon/http/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"

HttpServer *http_server_ref(HttpServer *s) {
        s->n_ref++;
        return s;
}

void http_server_unref(HttpServer *s) {
        if (!s || --s->n_ref > 0)
                return;
        free(s);
}

static void on_server_handle_closed(uv_handle_t *h) {
        http_server_unref(h->data);
}

static void limits_apply_defaults(HttpLimits *l) {
        if (l->max_header_bytes == 0)
                l->max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
        if (l->max_body_bytes == 0)
                l->max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
        if (l->max_buffered_bytes == 0)
                l->max_buffered_bytes = HTTP_DEFAULT_MAX_BUFFERED_BYTES;
        if (l->max_connections == 0)
                l->max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
        if (l->idle_timeout_ms == 0)
                l->idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
        if (l->max_url_bytes == 0)
                l->max_url_bytes = HTTP_DEFAULT_MAX_URL_BYTES;
}

/* Runs deferred connection work: what API calls made outside a connection's own
 * processing asked for (a response ended, a stream resumed, a body claimed late). */
static void on_idle(uv_idle_t *idle) {
        HttpServer *s = idle->data;

        while (s->scheduled) {
                HttpConn *c = s->scheduled;
                s->scheduled = c->scheduled_next;
                c->scheduled_next = NULL;
                c->scheduled = false;
                http_conn_process(c);
                http_conn_unref(c);
        }
        uv_idle_stop(idle);
}

void http_server_schedule(HttpServer *s, HttpConn *c) {
        if (c->scheduled || !s->idle_open)
                return;
        c->scheduled = true;
        c->scheduled_next = s->scheduled;
        s->scheduled = http_conn_ref(c);
        uv_idle_start(&s->idle, on_idle);
}

int http_server_new(uv_loop_t *loop, const HttpLimits *limits, HttpHandler handler, void *userdata,
                    HttpServer **ret) {
        HttpServer *s;
        int r;

        if (!loop || !handler || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->loop = loop;
        if (limits)
                s->limits = *limits;
        limits_apply_defaults(&s->limits);
        s->handler = handler;
        s->userdata = userdata;

        r = uv_idle_init(loop, &s->idle);
        if (r < 0) {
                free(s);
                return r;
        }
        s->idle.data = http_server_ref(s);
        s->idle_open = true;
        *ret = s;
        return 0;
}

static void conn_reject_or_drop(HttpServer *s, HttpConn *c) {
        if (s->n_rejecting > HTTP_MAX_REJECTING) {
                http_conn_abort(c, -ECONNREFUSED);
                return;
        }
        http_conn_send_error(c, 503, "at_capacity", "too many connections");
}

static void on_connection(uv_stream_t *listener, int status) {
        HttpServer *s = listener->data;
        bool reject = s->n_serving >= s->limits.max_connections;
        HttpConn *c;
        int r;

        if (status < 0) {
                log_warn_errno(status, "http: accept failed");
                return;
        }
        r = http_conn_new(s, reject, &c);
        if (r < 0) {
                log_warn_errno(r, "http: cannot set up a connection");
                return;
        }
        r = uv_accept(listener, (uv_stream_t *) &c->tcp);
        if (r >= 0 && !reject)
                r = http_conn_start(c);
        if (r < 0) {
                log_warn_errno(r, "http: accept failed");
                http_conn_abort(c, r);
        } else if (reject)
                conn_reject_or_drop(s, c);
        http_conn_unref(c);
}

static int address_parse(const char *host, int port, struct sockaddr_storage *ret) {
        if (port < 0 || port > 65535)
                return -EINVAL;
        if (uv_ip4_addr(host, port, (struct sockaddr_in *) ret) == 0)
                return 0;
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *) ret) == 0)
                return 0;
        return -EINVAL;
}

int http_server_listen(HttpServer *s, const char *host, int port) {
        struct sockaddr_storage addr = {};
        int r;

        if (s->listener_open)
                return -EBUSY;
        r = address_parse(host, port, &addr);
        if (r < 0)
                return r;
        r = uv_tcp_init(s->loop, &s->listener);
        if (r < 0)
                return r;
        s->listener.data = http_server_ref(s);
        s->listener_open = true;
        r = uv_tcp_bind(&s->listener, (const struct sockaddr *) &addr, 0);
        if (r < 0)
                return r;
        return uv_listen((uv_stream_t *) &s->listener, 128, on_connection);
}

int http_server_port(const HttpServer *s) {
        struct sockaddr_storage addr = {};
        int len = sizeof(addr);

        if (!s->listener_open || uv_tcp_getsockname(&s->listener, (struct sockaddr *) &addr, &len) < 0)
                return -EBADF;
        if (addr.ss_family == AF_INET)
                return ntohs(((struct sockaddr_in *) &addr)->sin_port);
        if (addr.ss_family == AF_INET6)
                return ntohs(((struct sockaddr_in6 *) &addr)->sin6_port);
        return -EAFNOSUPPORT;
}

unsigned http_server_connection_count(const HttpServer *s) {
        return s->n_serving;
}

void http_server_add_conn(HttpServer *s, HttpConn *c) {
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        if (c->rejecting)
                s->n_rejecting++;
        else
                s->n_serving++;
}

void http_server_forget_conn(HttpServer *s, HttpConn *c) {
        if (c->prev)
                c->prev->next = c->next;
        else if (s->conns == c)
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        if (c->rejecting)
                s->n_rejecting--;
        else
                s->n_serving--;
}

/* Stops listening and closes every connection; requests in flight are aborted (their
 * on_abort runs from here). Memory goes once the loop has run the close callbacks and
 * the handlers have dropped their request references. */
void http_server_free(HttpServer *s) {
        if (!s)
                return;
        s->freed = true;
        if (s->listener_open)
                uv_close((uv_handle_t *) &s->listener, on_server_handle_closed);
        while (s->conns)
                http_conn_abort(s->conns, -ECANCELED);
        while (s->scheduled) {
                HttpConn *c = s->scheduled;
                s->scheduled = c->scheduled_next;
                c->scheduled = false;
                http_conn_unref(c);
        }
        if (s->idle_open) {
                s->idle_open = false;
                uv_close((uv_handle_t *) &s->idle, on_server_handle_closed);
        }
        http_server_unref(s);
}

bool http_server_reserve(HttpServer *s, size_t n) {
        if (n > s->limits.max_buffered_bytes - s->buffered_bytes)
                return false;
        s->buffered_bytes += n;
        return true;
}

void http_server_release(HttpServer *s, size_t n) {
        s->buffered_bytes -= MIN(n, s->buffered_bytes);
}
