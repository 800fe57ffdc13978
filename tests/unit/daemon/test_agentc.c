/* daemon/agentc.c: the silence rule, and how core/files.c's FILE_WRITE keeps to it. The
 * test plays the agent on the other end of a socketpair: it answers, trickles frames,
 * grants credit, or says nothing, and checks when forged's side gives up on the
 * connection (agentc.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/agentc.h"
#include "daemon/core/files.h"

#define SILENCE_MS 150

typedef struct Upload {
        FileWriter *writer;
        int done, status;
} Upload;

typedef struct Fixture {
        uv_loop_t loop;
        Upload upload; /* its writer's on_done may run as late as the teardown */
        AgentConn *conn;
        int peer; /* the agent's end */
        bool closed;
        int replies, last_status;
        uint64_t replied_at, started_at;
        uv_timer_t trickle; /* sends a frame from the agent every trickle_ms while on */
        uint64_t trickle_ms;
} Fixture;

static uint64_t now_ms(Fixture *f) {
        uv_update_time(&f->loop);
        return uv_now(&f->loop);
}

static void on_closed(AgentConn *c, void *userdata) {
        Fixture *f = userdata;

        f->closed = true;
}

static void on_reply(void *userdata, const ProtoResponse *resp) {
        Fixture *f = userdata;

        f->replies++;
        f->last_status = resp->status;
        f->replied_at = now_ms(f);
}

static void peer_send(Fixture *f, ProtoBuf *b) {
        assert_int_equal(proto_frame_finish(b), 0);
        assert_int_equal(write(f->peer, b->data, b->len), (ssize_t) b->len);
        proto_buf_free(b);
}

/* A DATA frame on a channel nobody opened: dropped, but it is something heard. */
static void peer_send_noise(Fixture *f) {
        ProtoBuf b = {0};

        proto_frame_begin(&b, PROTO_DATA, PROTO_STREAM_STDOUT, 999);
        proto_buf_put_bytes(&b, "x", 1);
        peer_send(f, &b);
}

static void peer_answer(Fixture *f, uint32_t req_id) {
        ProtoBuf b = {0};

        proto_response_begin(&b, req_id, 0);
        peer_send(f, &b);
}

/* Reads away what forged sent (its HELLO, the requests) so its writes never block. */
static void peer_drain(Fixture *f) {
        char buf[4096];

        while (recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
}

static uint32_t send_ping(Fixture *f) {
        ProtoBuf b = {0};
        uint32_t id = agentc_request_begin(f->conn, &b, PROTO_OP_PING);

        assert_int_equal(agentc_request_send(f->conn, &b, on_reply, f), 0);
        f->started_at = now_ms(f);
        return id;
}

static void on_run_over(uv_timer_t *t) {
        uv_stop(t->loop);
}

/* Runs the loop for ms, whatever happens meanwhile. */
static void run_for(Fixture *f, uint64_t ms) {
        uv_timer_t t;

        uv_timer_init(&f->loop, &t);
        uv_timer_start(&t, on_run_over, ms, 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *) &t, NULL);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        peer_drain(f);
}

static void on_trickle(uv_timer_t *t) {
        peer_send_noise(t->data);
}

static void trickle(Fixture *f, uint64_t every_ms) {
        if (every_ms)
                uv_timer_start(&f->trickle, on_trickle, every_ms, every_ms);
        else
                uv_timer_stop(&f->trickle);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        int sv[2];

        assert_non_null(f);
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        f->peer = sv[1];
        assert_int_equal(agentc_new(&f->loop, sv[0], "unit", &f->conn), 0);
        agentc_on_closed(f->conn, on_closed, f);
        agentc_set_silence_timeout(f->conn, SILENCE_MS);
        uv_timer_init(&f->loop, &f->trickle);
        f->trickle.data = f;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        agentc_close(f->conn);
        agentc_unref(f->conn);
        uv_close((uv_handle_t *) &f->trickle, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT); /* the handles' close callbacks free the connection */
        assert_int_equal(uv_loop_close(&f->loop), 0);
        close(f->peer);
        free(f);
        return 0;
}

static void test_silent_agent_is_closed(void **state) {
        Fixture *f = *state;

        send_ping(f);
        run_for(f, SILENCE_MS * 4);
        assert_true(f->closed);
        assert_false(agentc_is_open(f->conn));
        assert_int_equal(f->replies, 1);
        assert_int_equal(f->last_status, -ECONNRESET);
        /* Not before the timeout, and not much after it. */
        assert_true(f->replied_at - f->started_at >= SILENCE_MS - 5);
        assert_true(f->replied_at - f->started_at < SILENCE_MS * 3);
}

static void test_answer_in_time_keeps_it_open(void **state) {
        Fixture *f = *state;
        uint32_t id = send_ping(f);

        run_for(f, SILENCE_MS / 3);
        peer_answer(f, id);
        run_for(f, SILENCE_MS * 3); /* nothing waits now: silence is fine */
        assert_false(f->closed);
        assert_int_equal(f->replies, 1);
        assert_int_equal(f->last_status, 0);
}

/* The clock starts when a request begins to wait, not at the last frame heard. */
static void test_quiet_before_a_request_does_not_count(void **state) {
        Fixture *f = *state;
        uint32_t id;

        run_for(f, SILENCE_MS * 3);
        id = send_ping(f);
        run_for(f, SILENCE_MS / 2);
        peer_answer(f, id);
        run_for(f, 20);
        assert_false(f->closed);
        assert_int_equal(f->last_status, 0);
}

/* Anything from the agent counts: a long wait with output flowing is healthy. */
static void test_any_frame_keeps_it_alive(void **state) {
        Fixture *f = *state;

        send_ping(f);
        trickle(f, SILENCE_MS / 3);
        run_for(f, SILENCE_MS * 5);
        assert_false(f->closed);
        assert_int_equal(f->replies, 0);
        trickle(f, 0);
        run_for(f, SILENCE_MS * 3);
        assert_true(f->closed);
        assert_int_equal(f->last_status, -ECONNRESET);
}

/* A reply that waits on the host (a FILE_WRITE before its EOF) is judged only once
 * watched again, from then on. */
static void test_unwatched_request_waits(void **state) {
        Fixture *f = *state;
        uint32_t id = send_ping(f);
        uint64_t watched_at;

        agentc_request_watch(f->conn, id, false);
        run_for(f, SILENCE_MS * 4);
        assert_false(f->closed);
        agentc_request_watch(f->conn, id, true);
        watched_at = now_ms(f);
        run_for(f, SILENCE_MS * 4);
        assert_true(f->closed);
        assert_true(f->replied_at - watched_at >= SILENCE_MS - 5);
}

/* One unwatched request does not shield another that is watched. */
static void test_watched_request_beside_an_unwatched_one(void **state) {
        Fixture *f = *state;
        uint32_t quiet = send_ping(f);

        agentc_request_watch(f->conn, quiet, false);
        send_ping(f);
        run_for(f, SILENCE_MS * 4);
        assert_true(f->closed);
        assert_int_equal(f->replies, 2);
}

/* A frozen sandbox's agent cannot answer: not watching the connection spares it. */
static void test_connection_not_watched(void **state) {
        Fixture *f = *state;
        uint64_t resumed_at;

        agentc_set_watching(f->conn, false);
        send_ping(f);
        run_for(f, SILENCE_MS * 4);
        assert_false(f->closed);
        agentc_set_watching(f->conn, true);
        resumed_at = now_ms(f);
        run_for(f, SILENCE_MS * 4);
        assert_true(f->closed);
        assert_true(f->replied_at - resumed_at >= SILENCE_MS - 5);
}

/* ---- FILE_WRITE: a reply that comes at the end of an upload ---- */

static void on_upload_writable(void *userdata) {
}

static void on_upload_done(void *userdata, int status, int64_t size, const ForgeError *err) {
        Upload *u = userdata;

        u->done++;
        u->status = status;
}

static const FileWriterOps upload_ops = {
        .on_writable = on_upload_writable,
        .on_done = on_upload_done,
};

/* The first channel of a connection is 1 (agentc_channel_open). */
#define UPLOAD_CHANNEL 1

static void peer_credit(Fixture *f, uint32_t bytes) {
        ProtoBuf b = {0};

        proto_frame_begin(&b, PROTO_CREDIT, PROTO_STREAM_STDIN, UPLOAD_CHANNEL);
        proto_buf_put_u32(&b, bytes);
        peer_send(f, &b);
}

/* A client that uploads slowly, or pauses, keeps the agent waiting for data: its silence
 * then is no sign of trouble. */
static void test_upload_waiting_for_its_client(void **state) {
        Fixture *f = *state;
        Upload *u = &f->upload;

        assert_int_equal(file_writer_start(f->conn, "/big", true, &upload_ops, u, &u->writer), 0);
        peer_credit(f, 1000);
        run_for(f, SILENCE_MS * 4);
        assert_int_equal(file_writer_write(u->writer, "0123456789", 10), 10);
        run_for(f, SILENCE_MS * 4);
        assert_false(f->closed);
        assert_int_equal(u->done, 0);
}

/* More data than credit: now forged waits for the agent, and its silence counts. */
static void test_upload_waiting_for_credit(void **state) {
        Fixture *f = *state;
        Upload *u = &f->upload;
        static char chunk[2000];

        assert_int_equal(file_writer_start(f->conn, "/big", true, &upload_ops, u, &u->writer), 0);
        peer_credit(f, 1000);
        run_for(f, 20);
        assert_int_equal(file_writer_write(u->writer, chunk, sizeof(chunk)), 1000);
        run_for(f, SILENCE_MS * 4);
        assert_true(f->closed);
        assert_int_equal(u->done, 1);
        assert_int_equal(u->status, -ECONNRESET);
}

/* After the EOF the reply (fsync, rename) is the agent's to send. */
static void test_upload_after_its_end(void **state) {
        Fixture *f = *state;
        Upload *u = &f->upload;

        assert_int_equal(file_writer_start(f->conn, "/big", true, &upload_ops, u, &u->writer), 0);
        run_for(f, SILENCE_MS * 2);
        assert_int_equal(file_writer_finish(u->writer), 0);
        run_for(f, SILENCE_MS * 4);
        assert_true(f->closed);
        assert_int_equal(u->done, 1);
        assert_int_equal(u->status, -ECONNRESET);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_silent_agent_is_closed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_answer_in_time_keeps_it_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_quiet_before_a_request_does_not_count, setup, teardown),
                cmocka_unit_test_setup_teardown(test_any_frame_keeps_it_alive, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unwatched_request_waits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watched_request_beside_an_unwatched_one, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_connection_not_watched, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upload_waiting_for_its_client, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upload_waiting_for_credit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upload_after_its_end, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
