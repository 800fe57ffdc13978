/* The request: built from a parsed head, its accessors (query string decoding included)
 * and the two ways of taking its body, buffered or streamed. */
#include "daemon/http/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

HttpRequest *http_request_ref(HttpRequest *r) {
        if (r)
                r->n_ref++;
        return r;
}

static void request_free(HttpRequest *r) {
        http_server_release(r->conn->server, r->body_cap);
        free(r->head);
        free(r->query);
        free(r->query_block);
        free(r->body);
        free(r->extra_headers);
        http_conn_unref(r->conn);
        free(r);
}

void http_request_unref(HttpRequest *r) {
        if (!r || --r->n_ref > 0)
                return;
        request_free(r);
}

/* ---- building ---- */

static int hex_value(char ch) {
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

/* Decodes a query component into out (which has room for len + 1 bytes) and
 * NUL-terminates it. A malformed escape is kept as it stands. */
static size_t query_decode(const char *s, size_t len, char *out, bool *ret_nul) {
        size_t n = 0;

        *ret_nul = false;
        for (size_t i = 0; i < len; i++) {
                int hi, lo;

                if (s[i] == '+') {
                        out[n++] = ' ';
                        continue;
                }
                if (s[i] == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 &&
                    (lo = hex_value(s[i + 2])) >= 0) {
                        out[n] = (char) (hi << 4 | lo);
                        if (out[n] == 0)
                                *ret_nul = true;
                        n++;
                        i += 2;
                        continue;
                }
                out[n++] = s[i];
        }
        out[n] = 0;
        return n;
}

static int query_parse(HttpRequest *r, const char *qs) {
        size_t len = strlen(qs), n_max = 1;
        char *out;

        for (const char *p = qs; *p; p++)
                if (*p == '&')
                        n_max++;
        r->query = calloc(n_max, sizeof(HttpQueryPair));
        /* Decoding never grows; each pair adds two terminators at most. */
        r->query_block = malloc(len + 2 * n_max + 1);
        if (!r->query || !r->query_block)
                return -ENOMEM;
        out = r->query_block;

        for (const char *seg = qs; seg <= qs + len;) {
                const char *end = strchrnul(seg, '&');
                const char *eq = memchr(seg, '=', (size_t) (end - seg));
                const char *key_end = eq ? eq : end;
                HttpQueryPair *pair = &r->query[r->n_query];
                bool key_nul, value_nul;

                if (end > seg) {
                        pair->key = out;
                        out += query_decode(seg, (size_t) (key_end - seg), out, &key_nul) + 1;
                        pair->value = out;
                        if (eq)
                                out += query_decode(eq + 1, (size_t) (end - eq - 1), out, &value_nul) + 1;
                        else {
                                *out++ = 0;
                                value_nul = false;
                        }
                        pair->invalid = value_nul;
                        /* A key holding a NUL cannot be asked for by name; drop the pair. */
                        if (!key_nul)
                                r->n_query++;
                }
                seg = end + 1;
        }
        return 0;
}

/* Splits the URL in the head arena into path and query, in place. */
static int request_parse_url(HttpRequest *r, char *url) {
        char *q, *frag;

        frag = strchr(url, '#');
        if (frag)
                *frag = 0;
        r->path = url;
        q = strchr(url, '?');
        if (!q)
                return 0;
        *q = 0;
        return query_parse(r, q + 1);
}

static void request_collect_headers(HttpRequest *r, const HttpConn *c) {
        for (size_t i = 0; i < c->n_fields; i++) {
                r->headers[i].name = r->head + c->field_off[i];
                r->headers[i].value = c->value_off[i] == SIZE_MAX ? "" : r->head + c->value_off[i];
        }
        r->n_headers = c->n_fields;
}

int http_request_new(HttpConn *c, const HttpWireHead *head, HttpRequest **ret) {
        HttpRequest *r = calloc(1, sizeof(*r));
        const char *expect;
        int k;

        if (!r)
                return -ENOMEM;
        r->n_ref = 1;
        r->conn = http_conn_ref(c);
        r->head = TAKE_PTR(c->head);
        c->head_cap = 0;
        r->method = head->method;
        request_collect_headers(r, c);
        k = request_parse_url(r, r->head);
        if (k < 0) {
                http_request_unref(r);
                return k;
        }
        r->content_length = head->chunked ? -1 : head->content_length;
        r->chunked = head->chunked;
        r->upgrade = head->upgrade;
        r->http10 = head->version_major < 1 || (head->version_major == 1 && head->version_minor == 0);
        /* After an Upgrade/CONNECT the byte stream is no longer HTTP. */
        r->keep_alive = head->keep_alive && !head->upgrade;
        expect = http_request_header(r, "expect");
        r->expect_continue = !r->http10 && expect && strcasecmp(expect, "100-continue") == 0;
        *ret = r;
        return 0;
}

/* ---- accessors ---- */

const char *http_request_method(const HttpRequest *r) {
        return r->method;
}

const char *http_request_path(const HttpRequest *r) {
        return r->path;
}

const char *http_request_query(const HttpRequest *r, const char *name, bool *ret_invalid) {
        if (ret_invalid)
                *ret_invalid = false;
        for (size_t i = 0; i < r->n_query; i++) {
                if (strcmp(r->query[i].key, name) != 0)
                        continue;
                if (r->query[i].invalid) {
                        if (ret_invalid)
                                *ret_invalid = true;
                        return NULL;
                }
                return r->query[i].value;
        }
        return NULL;
}

size_t http_request_query_count(const HttpRequest *r) {
        return r->n_query;
}

int http_request_query_at(const HttpRequest *r, size_t i, const char **ret_key, const char **ret_value) {
        if (i >= r->n_query)
                return -ERANGE;
        if (ret_key)
                *ret_key = r->query[i].key;
        /* An invalid value reads as "" so a caller that skips the check compares safely. */
        if (ret_value)
                *ret_value = r->query[i].invalid ? "" : r->query[i].value;
        return r->query[i].invalid ? -EINVAL : 0;
}

const char *http_request_header(const HttpRequest *r, const char *name) {
        for (size_t i = 0; i < r->n_headers; i++)
                if (strcasecmp(r->headers[i].name, name) == 0)
                        return r->headers[i].value;
        return NULL;
}

size_t http_request_header_count(const HttpRequest *r) {
        return r->n_headers;
}

int http_request_header_at(const HttpRequest *r, size_t i, const char **ret_name, const char **ret_value) {
        if (i >= r->n_headers)
                return -ERANGE;
        if (ret_name)
                *ret_name = r->headers[i].name;
        if (ret_value)
                *ret_value = r->headers[i].value;
        return 0;
}

int64_t http_request_content_length(const HttpRequest *r) {
        return r->content_length;
}

bool http_request_has_body(const HttpRequest *r) {
        return r->chunked || r->content_length > 0;
}

bool http_request_is_aborted(const HttpRequest *r) {
        return r->aborted;
}

void http_request_on_abort(HttpRequest *r, HttpAbort cb, void *userdata) {
        r->on_abort = cb;
        r->abort_userdata = userdata;
}

/* ---- the body ---- */

/* Why the body cannot be claimed now, or 0. */
static int request_body_claim_error(const HttpRequest *r) {
        if (r->aborted || http_conn_is_dead(r->conn))
                return -ECONNRESET;
        if (r->body_mode != HTTP_BODY_UNCLAIMED || r->conn->req != r)
                return -EALREADY;
        return 0;
}

/* curl and friends wait for this before sending a large body. */
static void request_send_continue(HttpRequest *r) {
        static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t buf = uv_buf_init((char *) line, sizeof(line) - 1);
        int k;

        if (!r->expect_continue || r->continue_sent || r->response_started || r->body_complete)
                return;
        r->continue_sent = true;
        k = http_conn_write(r->conn, &buf, 1);
        if (k < 0)
                http_conn_abort(r->conn, k);
}

void http_request_read_body(HttpRequest *r, HttpBodyDone on_done, void *userdata) {
        int k = request_body_claim_error(r);

        if (k < 0) {
                on_done(r, k, NULL, 0, userdata);
                return;
        }
        r->body_mode = HTTP_BODY_BUFFER;
        r->on_done = on_done;
        r->body_userdata = userdata;
        if (r->content_length > (int64_t) r->conn->server->limits.max_body_bytes) {
                /* Known too large up front: answer now, without inviting the upload. */
                r->body_error = 413;
                http_conn_send_error(r->conn, 413, "payload_too_large", "request body too large");
        } else if (r->content_length > 0 &&
                   !http_server_reserve(r->conn->server, (size_t) r->content_length + 1)) {
                r->body_error = 503;
                http_conn_send_error(r->conn, 503, "at_capacity", "too much request data in flight; retry");
        } else if (r->content_length > 0) {
                r->body = malloc((size_t) r->content_length + 1);
                if (!r->body) {
                        http_server_release(r->conn->server, (size_t) r->content_length + 1);
                        r->body_error = -ENOMEM;
                } else
                        r->body_cap = (size_t) r->content_length + 1;
        }
        if (r->body_error == 0)
                request_send_continue(r);
        http_conn_schedule(r->conn);
}

void http_request_stream_body(HttpRequest *r, HttpBodyChunk on_chunk, HttpBodyEnd on_end, void *userdata) {
        int k = request_body_claim_error(r);

        if (k < 0) {
                on_end(r, k, userdata);
                return;
        }
        r->body_mode = HTTP_BODY_STREAM;
        r->on_chunk = on_chunk;
        r->on_end = on_end;
        r->body_userdata = userdata;
        request_send_continue(r);
        http_conn_schedule(r->conn);
}

void http_request_pause(HttpRequest *r) {
        r->body_paused = true;
}

void http_request_resume(HttpRequest *r) {
        if (!r->body_paused)
                return;
        r->body_paused = false;
        http_conn_schedule(r->conn);
}

void http_request_deliver_chunk(HttpRequest *r) {
        const char *at = TAKE_PTR(r->chunk_at);
        size_t len = r->chunk_len;

        r->chunk_len = 0;
        if (r->on_chunk && !r->body_reported) {
                http_request_ref(r);
                r->on_chunk(r, at, len, r->body_userdata);
                http_request_unref(r);
        }
}

void http_request_report_body_end(HttpRequest *r) {
        int status = r->body_error;

        if (r->body_reported)
                return;
        r->body_reported = true;
        http_request_ref(r);
        if (r->body_mode == HTTP_BODY_BUFFER) {
                if (status == 0 && r->body)
                        r->body[r->body_len] = 0;
                if (status == 0)
                        r->on_done(r, 0, r->body ? r->body : "", r->body_len, r->body_userdata);
                else
                        r->on_done(r, status, NULL, 0, r->body_userdata);
        } else if (r->body_mode == HTTP_BODY_STREAM)
                r->on_end(r, status, r->body_userdata);
        http_request_unref(r);
}

void http_request_report_abort(HttpRequest *r, int error) {
        http_request_ref(r);
        r->chunk_len = 0;
        if ((r->body_mode == HTTP_BODY_BUFFER || r->body_mode == HTTP_BODY_STREAM) && !r->body_reported) {
                if (r->body_error == 0)
                        r->body_error = error < 0 ? error : -ECONNRESET;
                http_request_report_body_end(r);
        }
        if (!r->response_ended && !r->aborted) {
                r->aborted = true;
                if (r->on_abort)
                        r->on_abort(r, r->abort_userdata);
        }
        http_request_unref(r);
}
