/* HTTP request parsing through the real connection code: bytes written on a socketpair
 * into a real HttpServer connection (http-feed.c), and a handler that reads everything a
 * request offers and answers in the ways the API layer does (whole, chunked, aborted,
 * now or later, with the body buffered, streamed with pauses, claimed late or never).
 *
 * Input: byte 0 chooses the handler's behaviour (bits below), byte 1 the size of the
 * pieces the client writes (0 = all at once, else n * 8 bytes), the rest is what the
 * client sends. Every request of one input is handled the same way. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "daemon/http/http.h"
#include "http-feed.h"

enum {
        BODY_MASK = 3, /* what the handler does with the body: */
        BODY_NONE = 0, /*   answers without claiming it */
        BODY_BUFFER = 1,
        BODY_STREAM = 2,
        BODY_LATE = 3,          /*   claims it (buffered) from a later loop turn */
        FLAG_DEFERRED = 1 << 2, /* answers from a later loop turn */
        FLAG_CHUNKED = 1 << 3,  /* http_response_begin/write/end */
        FLAG_ABORT = 1 << 4,    /* http_response_abort instead of the last chunk */
        FLAG_SMALL = 1 << 5,    /* the server with tiny limits and a 1 ms idle timeout */
        FLAG_PAUSE = 1 << 6,    /* pauses a streamed body at every piece, resumes later */
        FLAG_HEADERS = 1 << 7,  /* echoes request headers into the response, asks for on_drained */
};

typedef enum DeferredKind {
        DEFERRED_ANSWER,
        DEFERRED_RESUME,
        DEFERRED_CLAIM,
} DeferredKind;

typedef struct Deferred {
        HttpRequest *req; /* a reference */
        DeferredKind kind;
} Deferred;

#define DEFERRED_MAX 256

static uv_loop_t loop;
static HttpServer *server_default, *server_small;
static uv_timer_t deferred_timer;
static Deferred deferred[DEFERRED_MAX];
static size_t n_deferred;
static unsigned flags;
static volatile size_t sink; /* keeps the accessors' results alive */

static void answer(HttpRequest *r);
static void claim_body(HttpRequest *r);

static bool deferred_busy(void) {
        return n_deferred > 0;
}

static void on_deferred_timer(uv_timer_t *t) {
        Deferred batch[DEFERRED_MAX];
        size_t n = n_deferred;

        /* Work done here may defer more; that goes to the next turn. */
        memcpy(batch, deferred, n * sizeof(Deferred));
        n_deferred = 0;
        for (size_t i = 0; i < n; i++) {
                switch (batch[i].kind) {
                case DEFERRED_ANSWER:
                        answer(batch[i].req);
                        break;
                case DEFERRED_RESUME:
                        http_request_resume(batch[i].req);
                        break;
                case DEFERRED_CLAIM:
                        claim_body(batch[i].req);
                        break;
                }
                http_request_unref(batch[i].req);
        }
}

static void defer(HttpRequest *r, DeferredKind kind) {
        if (n_deferred == DEFERRED_MAX) {
                /* Never in practice (one request at a time); do it now rather than drop it. */
                if (kind == DEFERRED_ANSWER)
                        answer(r);
                else if (kind == DEFERRED_RESUME)
                        http_request_resume(r);
                else
                        claim_body(r);
                return;
        }
        deferred[n_deferred++] = (Deferred){.req = http_request_ref(r), .kind = kind};
        uv_timer_start(&deferred_timer, on_deferred_timer, 0, 0);
}

/* Everything a handler can ask of a request. */
static void touch_request(HttpRequest *r) {
        size_t acc = strlen(http_request_method(r)) + strlen(http_request_path(r));
        const char *name, *value;
        bool invalid;

        for (size_t i = 0; i < http_request_query_count(r); i++) {
                int k = http_request_query_at(r, i, &name, &value);
                acc += strlen(name) + strlen(value) + (k == -EINVAL);
                value = http_request_query(r, name, &invalid);
                acc += value ? strlen(value) : invalid;
        }
        if (http_request_query_at(r, http_request_query_count(r), &name, &value) != -ERANGE)
                abort();
        value = http_request_query(r, "path", &invalid);
        acc += value ? strlen(value) : 0;
        for (size_t i = 0; i < http_request_header_count(r); i++) {
                http_request_header_at(r, i, &name, &value);
                acc += strlen(name) + strlen(value);
                acc += strlen(http_request_header(r, name));
        }
        if (http_request_header_at(r, http_request_header_count(r), &name, &value) != -ERANGE)
                abort();
        value = http_request_header(r, "content-type");
        acc += value ? strlen(value) : 0;
        acc += (size_t) http_request_content_length(r) + http_request_has_body(r) +
               http_request_is_aborted(r);
        sink += acc;
}

static int answer_status(const HttpRequest *r) {
        static const int statuses[] = {200, 201, 204, 304, 404, 413, 500, 599};

        return statuses[strlen(http_request_path(r)) % (sizeof(statuses) / sizeof(statuses[0]))];
}

static void on_drained(HttpRequest *r, void *userdata) {
        sink += http_response_pending(r);
}

static void answer(HttpRequest *r) {
        const char *path = http_request_path(r);
        int status = answer_status(r);

        if (flags & FLAG_HEADERS) {
                const char *name, *value;
                if (http_request_header_at(r, 0, &name, &value) == 0)
                        http_response_header(r, name, value); /* invalid ones are dropped */
                http_response_header(r, "X-Method", http_request_method(r));
        }
        if (!(flags & FLAG_CHUNKED)) {
                http_respond(r, status, "text/plain", path, strlen(path));
                return;
        }
        if (http_response_begin(r, status, "text/plain") < 0)
                return;
        if (flags & FLAG_HEADERS)
                http_response_on_drained(r, on_drained, NULL);
        http_response_write(r, path, strlen(path));
        http_response_write(r, "", 0);
        http_response_write(r, http_request_method(r), strlen(http_request_method(r)));
        sink += http_response_pending(r);
        if (flags & FLAG_ABORT)
                http_response_abort(r);
        else
                http_response_end(r);
}

static void answer_now_or_later(HttpRequest *r) {
        if (flags & FLAG_DEFERRED)
                defer(r, DEFERRED_ANSWER);
        else
                answer(r);
}

static void on_body_done(HttpRequest *r, int status, const char *body, size_t len, void *userdata) {
        if (status == 0) {
                if (body[len] != 0)
                        abort(); /* promised NUL-terminated */
                sink += len + (size_t) (unsigned char) (len ? body[len - 1] : 0);
        } else if (body)
                abort();
        answer_now_or_later(r);
        http_request_unref(r);
}

static void claim_body(HttpRequest *r) {
        http_request_read_body(r, on_body_done, http_request_ref(r));
}

/* A second claim is refused from inside the call, and must not touch the first. */
static void on_second_claim(HttpRequest *r, int status, const char *body, size_t len, void *userdata) {
        if (status != -EALREADY && status != -ECONNRESET)
                abort();
        http_request_unref(r);
}

static void on_chunk(HttpRequest *r, const char *data, size_t len, void *userdata) {
        sink += len + (len ? (size_t) (unsigned char) data[len - 1] : 0);
        if (flags & FLAG_PAUSE) {
                http_request_pause(r);
                defer(r, DEFERRED_RESUME);
        }
}

static void on_end(HttpRequest *r, int status, void *userdata) {
        answer_now_or_later(r);
        http_request_unref(r);
}

static void on_abort(HttpRequest *r, void *userdata) {
        sink += http_request_is_aborted(r);
        /* Writes after an abort must be refused, not crash. */
        if (http_respond(r, 200, NULL, NULL, 0) != -ECONNRESET)
                abort();
}

static void on_request(HttpRequest *r, void *userdata) {
        touch_request(r);
        http_request_on_abort(r, on_abort, NULL);
        switch (flags & BODY_MASK) {
        case BODY_NONE:
                answer_now_or_later(r);
                break;
        case BODY_BUFFER:
                claim_body(r);
                http_request_read_body(r, on_second_claim, http_request_ref(r));
                break;
        case BODY_STREAM:
                http_request_stream_body(r, on_chunk, on_end, http_request_ref(r));
                break;
        case BODY_LATE:
                defer(r, DEFERRED_CLAIM);
                break;
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        HttpLimits small = {
                .max_header_bytes = 512,
                .max_body_bytes = 64,
                .max_connections = 4,
                .idle_timeout_ms = 1,
                .max_url_bytes = 128,
        };

        signal(SIGPIPE, SIG_IGN);
        log_setup(getenv("FUZZ_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
        if (uv_loop_init(&loop) < 0 || uv_timer_init(&loop, &deferred_timer) < 0 ||
            http_server_new(&loop, NULL, on_request, NULL, &server_default) < 0 ||
            http_server_new(&loop, &small, on_request, NULL, &server_small) < 0)
                abort();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t piece;

        if (size < 2)
                return 0;
        flags = data[0];
        piece = (size_t) data[1] * 8;
        http_feed_run(&loop, (flags & FLAG_SMALL) ? server_small : server_default, data + 2, size - 2, piece,
                      deferred_busy);
        return 0;
}
