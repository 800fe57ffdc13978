/* daemon/http's Server-Sent Events (sse.c) against real sockets: the response head, the
 * event framing (one chunk per event), refused events, and a client that goes away in
 * the middle of a stream. */
#include "daemon/http/harness.h"

/* ---- the server side ---- */

static void route_events(Fixture *f, HttpRequest *r) {
        static const char data[] = "{\"data\":\"a\"}";

        assert_int_equal(http_sse_begin(r), 0);
        assert_int_equal(http_sse_send(r, "stdout", data, strlen(data)), 0);
        /* No event name: the client sees a "message". */
        assert_int_equal(http_sse_send(r, NULL, "plain", 5), 0);
        assert_int_equal(http_sse_comment(r, "heartbeat"), 0);
        /* Only data's first len bytes count. */
        assert_int_equal(http_sse_send(r, "exit", "{}trailing", 2), 0);
        /* A line break would end the event early or start a forged one: refused. */
        f->rc = http_sse_send(r, "stdout", "a\nevent: exit", 13);
        f->rc_after = http_sse_send(r, "std\rout", "{}", 2);
        f->violations = http_sse_comment(r, "two\nlines");
        assert_int_equal(http_response_end(r), 0);
        assert_int_equal(http_sse_send(r, "late", "{}", 2), -EALREADY);
}

static void hold_on_abort(HttpRequest *r, void *userdata) {
        Fixture *f = userdata;

        f->aborts++;
        f->rc_after = http_sse_send(r, "stdout", "{}", 2);
        http_request_unref(r);
}

/* A stream that never ends by itself, like a follow on a running process. */
static void route_hold(Fixture *f, HttpRequest *r) {
        http_request_on_abort(http_request_ref(r), hold_on_abort, f);
        http_sse_begin(r);
        f->rc = http_sse_send(r, "stdout", "{\"data\":\"first\"}", 16);
}

static void test_handler(HttpRequest *r, void *userdata) {
        Fixture *f = userdata;
        const char *path = http_request_path(r);

        if (strcmp(path, "/events") == 0)
                route_events(f, r);
        else if (strcmp(path, "/hold") == 0)
                route_hold(f, r);
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

/* ---- the client side (helper thread, no cmocka calls) ---- */

/* Reads one chunk into s->body (appended) and returns its size, or -1. */
static long client_read_chunk(Client *c, Scenario *s) {
        char *eol;
        size_t size;

        while (!(eol = client_find(c, "\r\n")))
                if (client_fill(c) < 0)
                        return -1;
        size = strtoul(c->buf, NULL, 16);
        client_consume(c, (size_t) (eol - c->buf) + 2);
        if (client_need(c, size + 2) < 0)
                return -1;
        s->body = realloc(s->body, s->body_len + size + 1);
        memcpy(s->body + s->body_len, c->buf, size);
        s->body_len += size;
        s->body[s->body_len] = 0;
        client_consume(c, size + 2);
        return (long) size;
}

static void run_events(Scenario *s) {
        Client c;
        long n;

        client_open(&c, s->f->port);
        client_sends(&c, "GET /events HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n");
        s->rc[0] = client_read_head(&c, s->head, sizeof(s->head));
        /* Each event is exactly one chunk. */
        for (size_t i = 0; i < ELEMENTSOF(s->value) && (n = client_read_chunk(&c, s)) > 0; i++)
                s->value[i] = n;
        client_close(&c);
}

static void test_event_framing(void **state) {
        Fixture *f = *state;
        Scenario s = {.run = run_events};
        char value[64];

        scenario_run(f, &s);
        assert_int_equal(s.rc[0], 200);
        assert_string_equal(head_header(s.head, "Content-Type", value, sizeof(value)), "text/event-stream");
        assert_string_equal(head_header(s.head, "Cache-Control", value, sizeof(value)), "no-cache");
        assert_string_equal(head_header(s.head, "Transfer-Encoding", value, sizeof(value)), "chunked");
        assert_null(head_header(s.head, "Content-Length", value, sizeof(value)));
        assert_string_equal(s.body, "event: stdout\ndata: {\"data\":\"a\"}\n\n"
                                    "data: plain\n\n"
                                    ": heartbeat\n\n"
                                    "event: exit\ndata: {}\n\n");
        assert_int_equal(s.value[0], strlen("event: stdout\ndata: {\"data\":\"a\"}\n\n"));
        assert_int_equal(s.value[1], strlen("data: plain\n\n"));
        assert_int_equal(s.value[2], strlen(": heartbeat\n\n"));
        assert_int_equal(s.value[3], strlen("event: exit\ndata: {}\n\n"));
        assert_int_equal(s.value[4], 0); /* then the last chunk */
        assert_int_equal(f->rc, -EINVAL);
        assert_int_equal(f->rc_after, -EINVAL);
        assert_int_equal(f->violations, -EINVAL);
        free(s.body);
}

/* Reads the head and the first event, then leaves: with a reset, or a plain close. */
static void run_leave(Scenario *s) {
        Client c;

        client_open(&c, s->f->port);
        client_sends(&c, "GET /hold HTTP/1.1\r\n\r\n");
        s->rc[0] = client_read_head(&c, s->head, sizeof(s->head));
        s->rc[1] = (int) client_read_chunk(&c, s);
        if (s->value[0])
                client_reset(&c);
        else
                client_close(&c);
        usleep(200 * 1000);
}

static void test_client_leaves_mid_stream(void **state) {
        Fixture *f = *state;

        for (int reset = 0; reset <= 1; reset++) {
                Scenario s = {.run = run_leave, .value[0] = reset};

                f->aborts = 0;
                f->rc_after = 0;
                scenario_run(f, &s);
                loop_run_for(f, 100);
                assert_int_equal(s.rc[0], 200);
                assert_string_equal(s.body, "event: stdout\ndata: {\"data\":\"first\"}\n\n");
                assert_int_equal(f->rc, 0);
                assert_int_equal(f->aborts, 1);
                assert_int_equal(f->rc_after, -ECONNRESET);
                free(s.body);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_event_framing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_client_leaves_mid_stream, setup, teardown),
        };

        /* As in forged: a write to a reset connection must be an error, not a signal. */
        signal(SIGPIPE, SIG_IGN);
        log_setup(LOG_LEVEL_WARN, 0);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
