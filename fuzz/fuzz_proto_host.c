/* Agent frame decoding, host side: proto_response_decode(), proto_event_decode() and
 * proto_hello_decode() on raw bytes, and forged's agent client (daemon/agentc.c) fed
 * through a socketpair on a libuv loop: frame assembly, HELLO checks, replies matched
 * to requests in flight, and DATA/EOF/CREDIT/EVENT frames to open channels.
 *
 * Each connection starts with three requests in flight (ids 1-3) and three channels
 * open (ids 1-3), whose callbacks check what they are given and sometimes close their
 * channel or the whole connection, as exec.c and files.c do. Every reply must run
 * exactly once, and the connection must be freed, by the end of each input.
 *
 * Input: byte 0 picks the mode (bits 0-1: 0 raw response, 1 raw event, 2 raw hello,
 * 3 the connection) and, for the connection, the size of the pieces the agent writes;
 * the rest is the bytes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "basic/log.h"
#include "daemon/agentc.h"

#define N_REQUESTS 3
#define N_CHANNELS 3

static uv_loop_t loop;
static volatile size_t sink;

typedef struct Fixture {
        AgentConn *conn;
        unsigned replies[N_REQUESTS];
        uint32_t channels[N_CHANNELS];
        bool channel_open[N_CHANNELS];
        bool closed;
} Fixture;

static void check_stat(const ProtoStat *st, bool entry) {
        if (entry && (!st->name || st->type < PROTO_FILE_REGULAR || st->type > PROTO_FILE_OTHER))
                abort();
        if (st->name)
                sink += strlen(st->name);
        if (st->link_target)
                sink += strlen(st->link_target);
}

/* What the decoder promises about a response it accepted. */
static void check_response(const ProtoResponse *resp) {
        if (resp->status > 0 || (resp->n_entries > 0) != (resp->entries != NULL) ||
            resp->n_entries > PROTO_MAX_ENTRIES)
                abort();
        if (resp->message)
                sink += strlen(resp->message);
        check_stat(&resp->stat, false);
        for (size_t i = 0; i < resp->n_entries; i++)
                check_stat(&resp->entries[i], true);
        if ((resp->n_procs > 0) != (resp->proc_list != NULL) || resp->n_procs > PROTO_MAX_ENTRIES)
                abort();
        for (size_t i = 0; i < resp->n_procs; i++) {
                const ProtoProc *p = &resp->proc_list[i];
                if (p->pid <= 0 || p->start[0] > p->end[0] || p->start[1] > p->end[1] ||
                    (p->exited && (p->exit.exit_code < 0) == (p->exit.signal == 0)))
                        abort();
                if (p->meta)
                        sink += strlen(p->meta);
        }
}

static void check_exit(const ProtoExit *ex) {
        if ((ex->exit_code >= 0) == (ex->signal > 0) || ex->exit_code > 255 || ex->signal > 64 ||
            ex->cpu_usec < 0 || ex->max_rss_kb < 0 || ex->timed_out < 0 || ex->timed_out > 1)
                abort();
}

static void run_raw(unsigned mode, const uint8_t *data, size_t size) {
        ProtoResponse resp;
        ProtoExit ex;
        uint16_t event;
        ProtoHello hello;
        int r;

        switch (mode) {
        case 0:
                r = proto_response_decode(data, size, &resp);
                if (r == 0)
                        check_response(&resp);
                else if (resp.message || resp.entries || resp.n_entries || resp.stat.name ||
                         resp.stat.link_target)
                        abort(); /* a failed decode keeps the id and nothing else */
                proto_response_done(&resp);
                break;
        case 1:
                if (proto_event_decode(data, size, &event, &ex) == 0 && event == PROTO_EVENT_EXIT)
                        check_exit(&ex);
                break;
        case 2:
                if (proto_hello_decode(data, size, &hello) == 0 &&
                    (hello.version < 1 || hello.time_ns < -1 || hello.pids_max < -1 ||
                     strlen(hello.hostname) > PROTO_HOSTNAME_MAX))
                        abort();
                break;
        }
}

/* ---- the connection ---- */

static void on_reply(void *userdata, const ProtoResponse *resp) {
        unsigned *count = userdata;

        if (resp->status != -ECONNRESET)
                check_response(resp);
        (*count)++;
}

static int channel_index(Fixture *f, void *userdata) {
        return (int) ((uint32_t *) userdata - f->channels);
}

static Fixture fixture;

static void on_data(void *userdata, ProtoStream stream, const uint8_t *data, size_t len) {
        if (stream >= _PROTO_STREAM_MAX || len > PROTO_MAX_PAYLOAD)
                abort();
        if (len > 0)
                sink += data[0] + data[len - 1];
        /* A consumer that gives up mid-stream closes the connection (exec abandon). */
        if (len >= 2 && data[0] == 'X' && data[1] == '!')
                agentc_close(fixture.conn);
}

static void on_eof(void *userdata, ProtoStream stream) {
        if (stream >= _PROTO_STREAM_MAX)
                abort();
}

static void on_credit(void *userdata, ProtoStream stream, uint32_t bytes) {
        sink += bytes;
        /* Answering a credit with data is what file uploads do. */
        agentc_send_data(fixture.conn, *(uint32_t *) userdata, PROTO_STREAM_STDIN, "x", bytes & 1);
}

static void on_exit_event(void *userdata, const ProtoExit *ex) {
        int i = channel_index(&fixture, userdata);

        check_exit(ex);
        /* exec.c closes the channel from inside its exit callback. */
        agentc_channel_close(fixture.conn, fixture.channels[i]);
        fixture.channel_open[i] = false;
}

static void on_lost(void *userdata) {
        int i = channel_index(&fixture, userdata);

        if (!fixture.channel_open[i])
                abort(); /* a closed channel must not hear of the loss */
        fixture.channel_open[i] = false;
}

static const AgentChannelOps channel_ops = {
        .on_data = on_data,
        .on_eof = on_eof,
        .on_credit = on_credit,
        .on_exit = on_exit_event,
        .on_lost = on_lost,
};

static void on_closed(AgentConn *c, void *userdata) {
        Fixture *f = userdata;

        if (f->closed)
                abort(); /* runs once */
        f->closed = true;
}

static void fixture_open(Fixture *f, int fd) {
        static const ProtoOp ops[N_REQUESTS] = {PROTO_OP_PING, PROTO_OP_STAT, PROTO_OP_LIST};

        *f = (Fixture){0};
        if (agentc_new(&loop, fd, "fuzz", &f->conn) < 0)
                abort();
        agentc_on_closed(f->conn, on_closed, f);
        for (size_t i = 0; i < N_REQUESTS; i++) {
                ProtoBuf b = {0};

                if (agentc_request_begin(f->conn, &b, ops[i]) != i + 1)
                        abort();
                proto_buf_put_str(&b, PROTO_TAG_PATH, "/fuzz");
                if (agentc_request_send(f->conn, &b, on_reply, &f->replies[i]) < 0)
                        abort();
        }
        for (size_t i = 0; i < N_CHANNELS; i++) {
                f->channels[i] = agentc_channel_open(f->conn, &channel_ops, &f->channels[i]);
                if (f->channels[i] != i + 1)
                        abort();
                f->channel_open[i] = true;
        }
}

static void peer_drain(int fd) {
        static char buf[64 * 1024];

        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}

static void loop_settle(int peer_fd, unsigned turns) {
        for (unsigned i = 0; i < turns; i++) {
                peer_drain(peer_fd);
                uv_run(&loop, UV_RUN_NOWAIT);
        }
}

static void run_conn(const uint8_t *data, size_t size, size_t piece) {
        Fixture *f = &fixture;
        size_t off = 0;
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        fixture_open(f, sv[0]);
        while (off < size && agentc_is_open(f->conn)) {
                size_t n = piece == 0 || piece > size - off ? size - off : piece;
                ssize_t w = write(sv[1], data + off, n);

                if (w > 0)
                        off += (size_t) w;
                loop_settle(sv[1], 2);
        }
        loop_settle(sv[1], 2);
        /* The agent goes away: what is still in flight fails. */
        close(sv[1]);
        for (unsigned turn = 0; turn < 100 && agentc_is_open(f->conn); turn++)
                uv_run(&loop, UV_RUN_NOWAIT);
        agentc_close(f->conn); /* no-op if the hang-up closed it */
        agentc_unref(f->conn);
        uv_run(&loop, UV_RUN_DEFAULT); /* the handle's close callback frees the connection */
        if (!f->closed)
                abort();
        for (size_t i = 0; i < N_REQUESTS; i++)
                if (f->replies[i] != 1)
                        abort(); /* exactly once */
        for (size_t i = 0; i < N_CHANNELS; i++)
                if (f->channel_open[i])
                        abort(); /* every open channel heard of the loss */
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        signal(SIGPIPE, SIG_IGN);
        log_setup(getenv("FUZZ_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
        if (uv_loop_init(&loop) < 0)
                abort();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned mode;

        if (size < 1)
                return 0;
        mode = data[0] & 3;
        if (mode == 3)
                run_conn(data + 1, size - 1, (size_t) (data[0] >> 2) * 16);
        else
                run_raw(mode, data + 1, size - 1);
        return 0;
}
