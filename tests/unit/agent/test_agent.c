/* forge-agent end to end: start the built binary on a socket, speak the protocol. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/proto.h"

typedef struct Client {
        int fd;
        pid_t agent;
        char dir[64];
        struct sockaddr_un sa;
        uint32_t next_req;
} Client;

typedef struct Frame {
        ProtoHeader h;
        uint8_t *payload;
} Frame;

static void read_exact(int fd, void *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                assert_true(poll(&p, 1, 20000) == 1); /* a hang is a failure */
                ssize_t k = read(fd, (char *) buf + done, n - done);
                assert_true(k > 0);
                done += (size_t) k;
        }
}

static void write_exact(int fd, const void *buf, size_t n) {
        size_t done = 0;
        while (done < n) {
                ssize_t k = write(fd, (const char *) buf + done, n - done);
                assert_true(k > 0);
                done += (size_t) k;
        }
}

static void frame_recv(Client *c, Frame *f) {
        uint8_t raw[PROTO_HEADER_SIZE];
        read_exact(c->fd, raw, sizeof(raw));
        assert_int_equal(proto_header_decode(raw, &f->h), 0);
        f->payload = malloc(f->h.length + 1);
        assert_non_null(f->payload);
        read_exact(c->fd, f->payload, f->h.length);
}

static void send_buf(Client *c, ProtoBuf *b) {
        assert_int_equal(proto_frame_finish(b), 0);
        write_exact(c->fd, b->data, b->len);
        proto_buf_free(b);
}

static void send_simple(Client *c, ProtoFrameType type, uint32_t channel, uint8_t stream, const void *data, size_t n) {
        ProtoBuf b = {};
        proto_frame_begin(&b, type, stream, channel);
        proto_buf_put_bytes(&b, data, n);
        send_buf(c, &b);
}

static void send_credit(Client *c, uint32_t channel, uint8_t stream, uint32_t n) {
        uint8_t v[4] = { (uint8_t) (n >> 24), (uint8_t) (n >> 16), (uint8_t) (n >> 8), (uint8_t) n };
        send_simple(c, PROTO_CREDIT, channel, stream, v, 4);
}

static uint32_t credit_value(const Frame *f) {
        const uint8_t *p = f->payload;
        return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

/* Reads frames until the RESPONSE; other frames are handed to keep (or dropped). */
static void wait_response(Client *c, uint32_t req_id, ProtoResponse *r) {
        for (;;) {
                Frame f;
                frame_recv(c, &f);
                if (f.h.type == PROTO_RESPONSE) {
                        assert_int_equal(proto_response_decode(f.payload, f.h.length, r), 0);
                        free(f.payload);
                        assert_int_equal(r->req_id, req_id);
                        return;
                }
                free(f.payload);
        }
}

/* A one-path request (STAT, LIST, MKDIR, REMOVE, ...); returns the status. */
static int path_op(Client *c, ProtoOp op, const char *path, int flag_tag, ProtoResponse *ret) {
        ProtoBuf b = {};
        ProtoResponse r;
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, op);
        proto_buf_put_str(&b, PROTO_TAG_PATH, path);
        if (flag_tag)
                proto_buf_put_int(&b, (uint16_t) flag_tag, 1);
        send_buf(c, &b);
        wait_response(c, id, ret ? ret : &r);
        int status = (ret ? ret : &r)->status;
        if (!ret)
                proto_response_done(&r);
        return status;
}

/* Connects (again: the agent drops the previous connection) and reads the HELLO. */
static void client_connect(Client *c) {
        Frame f;
        ProtoHello hello;

        if (c->fd >= 0)
                close(c->fd);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        for (int i = 0; i < 200 && connect(c->fd, (struct sockaddr *) &c->sa, sizeof(c->sa)) < 0; i++)
                usleep(10000);
        frame_recv(c, &f);
        assert_int_equal(f.h.type, PROTO_HELLO);
        assert_int_equal(proto_hello_decode(f.payload, f.h.length, &hello), 0);
        assert_int_equal(hello.version, PROTO_VERSION);
        assert_non_null(memmem(f.payload, f.h.length, PROTO_FEATURE_RETAIN, strlen(PROTO_FEATURE_RETAIN)));
        free(f.payload);
}

static int setup(void **state) {
        const char *bin = getenv("FORGE_AGENT_BIN");
        Client *c = calloc(1, sizeof(Client));

        assert_non_null(bin);
        assert_non_null(c);
        strcpy(c->dir, "/tmp/forge-agent-test-XXXXXX");
        assert_non_null(mkdtemp(c->dir));
        c->sa.sun_family = AF_UNIX;
        snprintf(c->sa.sun_path, sizeof(c->sa.sun_path), "%s/agent.sock", c->dir);
        c->agent = fork();
        assert_true(c->agent >= 0);
        if (c->agent == 0) {
                execl(bin, bin, "--listen", c->sa.sun_path, (char *) NULL);
                _exit(127);
        }
        c->fd = -1;
        client_connect(c);
        *state = c;
        return 0;
}

static int teardown(void **state) {
        Client *c = *state;
        char cmd[128];
        int status;

        kill(c->agent, SIGTERM);
        waitpid(c->agent, &status, 0);
        close(c->fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
        if (system(cmd) != 0)
                return -1;
        free(c);
        return 0;
}

/* ---- processes ---- */

typedef struct Run {
        char out[65536], err[65536];
        size_t n_out, n_err;
        int order; /* frames seen */
        int eof_out_at, eof_err_at, exit_at;
        ProtoExit exit;
        ProtoResponse resp;
} Run;

static uint32_t spawn(Client *c, uint32_t channel, const char *script, int with_stdin, int64_t timeout_ms) {
        ProtoBuf b = {};
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_SPAWN);
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "sh");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "-c");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, script);
        proto_buf_put_str(&b, PROTO_TAG_ENV, "PATH=/usr/bin:/bin");
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        if (with_stdin)
                proto_buf_put_int(&b, PROTO_TAG_STDIN, 1);
        if (timeout_ms)
                proto_buf_put_int(&b, PROTO_TAG_TIMEOUT_MS, timeout_ms);
        send_buf(c, &b);
        return id;
}

/* Collects one command's frames on channel until EXIT, recording their order. */
static void run_collect(Client *c, uint32_t channel, Run *run) {
        uint16_t ev;

        for (;;) {
                Frame f;
                frame_recv(c, &f);
                run->order++;
                if (f.h.type == PROTO_DATA && f.h.channel == channel) {
                        char *dst = f.h.stream == PROTO_STREAM_STDOUT ? run->out : run->err;
                        size_t *n = f.h.stream == PROTO_STREAM_STDOUT ? &run->n_out : &run->n_err;
                        assert_true(*n + f.h.length < sizeof(run->out));
                        memcpy(dst + *n, f.payload, f.h.length);
                        *n += f.h.length;
                } else if (f.h.type == PROTO_EOF && f.h.channel == channel) {
                        if (f.h.stream == PROTO_STREAM_STDOUT)
                                run->eof_out_at = run->order;
                        else
                                run->eof_err_at = run->order;
                } else if (f.h.type == PROTO_EVENT && f.h.channel == channel) {
                        assert_int_equal(proto_event_decode(f.payload, f.h.length, &ev, &run->exit), 0);
                        run->exit_at = run->order;
                        free(f.payload);
                        return;
                }
                free(f.payload);
        }
}

static void test_spawn_output_order(void **state) {
        Client *c = *state;
        Run *run = calloc(1, sizeof(Run));

        uint32_t id = spawn(c, 5, "echo out; echo err >&2; exit 3", 0, 0);
        wait_response(c, id, &run->resp);
        assert_int_equal(run->resp.status, 0);
        assert_true(run->resp.pid > 0);
        run_collect(c, 5, run);
        assert_int_equal(run->n_out, 4);
        assert_memory_equal(run->out, "out\n", 4);
        assert_memory_equal(run->err, "err\n", 4);
        assert_true(run->eof_out_at > 0 && run->eof_out_at < run->exit_at);
        assert_true(run->eof_err_at > 0 && run->eof_err_at < run->exit_at);
        assert_int_equal(run->exit.exit_code, 3);
        assert_int_equal(run->exit.signal, 0);
        assert_int_equal(run->exit.timed_out, 0);
        proto_response_done(&run->resp);
        free(run);
}

static void test_stdin_cat(void **state) {
        Client *c = *state;
        Run *run = calloc(1, sizeof(Run));
        Frame f;

        uint32_t id = spawn(c, 6, "cat", 1, 0);
        wait_response(c, id, &run->resp);
        assert_int_equal(run->resp.status, 0);
        frame_recv(c, &f); /* the stdin window */
        assert_int_equal(f.h.type, PROTO_CREDIT);
        assert_int_equal(f.h.stream, PROTO_STREAM_STDIN);
        assert_int_equal(credit_value(&f), PROTO_DEFAULT_WINDOW);
        free(f.payload);
        send_simple(c, PROTO_DATA, 6, PROTO_STREAM_STDIN, "hello agent\n", 12);
        send_simple(c, PROTO_EOF, 6, PROTO_STREAM_STDIN, NULL, 0);
        run_collect(c, 6, run);
        assert_int_equal(run->n_out, 12);
        assert_memory_equal(run->out, "hello agent\n", 12);
        assert_int_equal(run->exit.exit_code, 0);
        proto_response_done(&run->resp);
        free(run);
}

static void test_timeout_kills_tree(void **state) {
        Client *c = *state;
        Run *run = calloc(1, sizeof(Run));

        /* The inner shell double-forks a setsid'd sleep and prints its pid. */
        uint32_t id = spawn(c, 7, "sh -c 'setsid sleep 300 >/dev/null 2>&1 & echo $!'; sleep 300", 0, 500);
        wait_response(c, id, &run->resp);
        assert_int_equal(run->resp.status, 0);
        run_collect(c, 7, run);
        assert_int_equal(run->exit.timed_out, 1);
        assert_int_equal(run->exit.signal, SIGKILL);
        run->out[run->n_out] = 0;
        pid_t bg = (pid_t) atoi(run->out);
        assert_true(bg > 0);
        int alive = 1;
        for (int i = 0; i < 200 && alive; i++) {
                alive = kill(bg, 0) == 0;
                if (alive)
                        usleep(10000);
        }
        assert_false(alive);
        proto_response_done(&run->resp);
        free(run);
}

static void test_exec_missing(void **state) {
        Client *c = *state;
        ProtoBuf b = {};
        ProtoResponse r;
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_SPAWN);
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "/nonexistent/forge-no-such-binary");
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 8);
        send_buf(c, &b);
        wait_response(c, id, &r);
        assert_int_equal(r.status, -ENOENT);
        assert_non_null(r.message);
        proto_response_done(&r);
        /* the channel is free again and the agent still answers */
        assert_int_equal(path_op(c, PROTO_OP_PING, "/", 0, NULL), 0);
}

/* 10 MB through a slowly opened window: the agent must never send beyond it. */
static void test_flow_control(void **state) {
        Client *c = *state;
        ProtoResponse r;
        uint64_t granted = PROTO_DEFAULT_WINDOW, received = 0;
        int exit_seen = 0, eof_seen = 0, frames = 0;
        uint16_t ev;
        ProtoExit ex;

        uint32_t id = spawn(c, 9, "head -c 10000000 /dev/zero", 0, 0);
        wait_response(c, id, &r);
        assert_int_equal(r.status, 0);
        proto_response_done(&r);
        while (!exit_seen) {
                Frame f;
                frame_recv(c, &f);
                if (f.h.type == PROTO_DATA) {
                        assert_int_equal(f.h.stream, PROTO_STREAM_STDOUT);
                        assert_true(f.h.length <= PROTO_MAX_DATA);
                        received += f.h.length;
                        assert_true(received <= granted);
                        if (granted - received < 64 * 1024) {
                                if (++frames % 8 == 0)
                                        usleep(2000); /* a slow reader */
                                send_credit(c, 9, PROTO_STREAM_STDOUT, 128 * 1024);
                                granted += 128 * 1024;
                        }
                } else if (f.h.type == PROTO_EOF && f.h.stream == PROTO_STREAM_STDOUT) {
                        eof_seen = 1;
                } else if (f.h.type == PROTO_EVENT) {
                        assert_int_equal(proto_event_decode(f.payload, f.h.length, &ev, &ex), 0);
                        exit_seen = 1;
                }
                free(f.payload);
        }
        assert_true(eof_seen);
        assert_int_equal(received, 10000000);
        assert_int_equal(ex.exit_code, 0);
}

/* ---- terminals ---- */

static uint32_t spawn_pty(Client *c, uint32_t channel, const char *script, int rows, int cols) {
        ProtoBuf b = {};
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_SPAWN);
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "sh");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "-c");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, script);
        proto_buf_put_str(&b, PROTO_TAG_ENV, "PATH=/usr/bin:/bin");
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        proto_buf_put_int(&b, PROTO_TAG_PTY_ROWS, rows);
        proto_buf_put_int(&b, PROTO_TAG_PTY_COLS, cols);
        send_buf(c, &b);
        return id;
}

/* Reads frames of channel until stdout holds needle; stderr must stay empty. */
static void read_until(Client *c, uint32_t channel, Run *run, const char *needle) {
        while (!memmem(run->out, run->n_out, needle, strlen(needle))) {
                Frame f;
                frame_recv(c, &f);
                if (f.h.type == PROTO_DATA && f.h.channel == channel) {
                        assert_int_equal(f.h.stream, PROTO_STREAM_STDOUT);
                        assert_true(run->n_out + f.h.length < sizeof(run->out));
                        memcpy(run->out + run->n_out, f.payload, f.h.length);
                        run->n_out += f.h.length;
                }
                free(f.payload);
        }
}

static int resize(Client *c, uint32_t channel, int rows, int cols) {
        ProtoBuf b = {};
        ProtoResponse r;
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_RESIZE);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        proto_buf_put_int(&b, PROTO_TAG_PTY_ROWS, rows);
        proto_buf_put_int(&b, PROTO_TAG_PTY_COLS, cols);
        send_buf(c, &b);
        wait_response(c, id, &r);
        int status = r.status;
        proto_response_done(&r);
        return status;
}

/* The command's stdio is a fresh /dev/pts/N of the given size, stderr included; the
 * stderr stream of the channel just ends. */
static void test_pty_spawn(void **state) {
        Client *c = *state;
        Run *run = calloc(1, sizeof(Run));

        uint32_t id = spawn_pty(c, 31, "tty; stty size; echo to-stderr >&2; test -t 0 && test -t 2 && exit 5", 30,
                                100);
        wait_response(c, id, &run->resp);
        assert_int_equal(run->resp.status, 0);
        run_collect(c, 31, run);
        run->out[run->n_out] = 0;
        assert_non_null(strstr(run->out, "/dev/pts/"));
        assert_non_null(strstr(run->out, "30 100\r\n"));
        assert_non_null(strstr(run->out, "to-stderr\r\n"));
        assert_int_equal(run->n_err, 0);
        assert_true(run->eof_err_at > 0 && run->eof_err_at < run->exit_at);
        assert_true(run->eof_out_at > 0 && run->eof_out_at < run->exit_at);
        assert_int_equal(run->exit.exit_code, 5);
        proto_response_done(&run->resp);
        free(run);
}

/* RESIZE changes what `stty size` reports; host bytes reach the terminal's input. */
static void test_pty_resize_and_input(void **state) {
        Client *c = *state;
        Run *run = calloc(1, sizeof(Run));

        uint32_t id = spawn_pty(c, 32, "stty size; read line; echo \"got $line\"; stty size", 24, 80);
        wait_response(c, id, &run->resp);
        assert_int_equal(run->resp.status, 0);
        read_until(c, 32, run, "24 80\r\n");
        assert_int_equal(resize(c, 32, 50, 132), 0);
        send_simple(c, PROTO_DATA, 32, PROTO_STREAM_STDIN, "hello\n", 6);
        run_collect(c, 32, run);
        run->out[run->n_out] = 0;
        assert_non_null(strstr(run->out, "got hello\r\n"));
        assert_non_null(strstr(run->out, "50 132\r\n"));
        assert_int_equal(run->exit.exit_code, 0);
        proto_response_done(&run->resp);
        free(run);
}

/* RESIZE needs a terminal; SIGNAL reaches the process group by number. */
static void test_pty_errors_and_signal(void **state) {
        Client *c = *state;
        Run *run = calloc(1, sizeof(Run));
        ProtoBuf b = {};
        ProtoResponse r;

        uint32_t id = spawn(c, 33, "echo ready; sleep 300", 0, 0);
        wait_response(c, id, &run->resp);
        assert_int_equal(run->resp.status, 0);
        read_until(c, 33, run, "ready\n");
        assert_int_equal(resize(c, 33, 10, 10), -ENOTTY);
        assert_int_equal(resize(c, 99, 10, 10), -ESRCH);
        id = ++c->next_req;
        proto_request_begin(&b, id, PROTO_OP_SIGNAL);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 33);
        proto_buf_put_int(&b, PROTO_TAG_SIGNAL, SIGTERM);
        send_buf(c, &b);
        wait_response(c, id, &r);
        assert_int_equal(r.status, 0);
        proto_response_done(&r);
        run_collect(c, 33, run);
        assert_int_equal(run->exit.signal, SIGTERM);
        proto_response_done(&run->resp);
        free(run);
}

/* ---- files ---- */

static void file_write(Client *c, uint32_t channel, const char *path, const uint8_t *data, size_t n) {
        ProtoBuf b = {};
        ProtoResponse r;
        uint64_t credit = 0;
        size_t sent = 0;
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_FILE_WRITE);
        proto_buf_put_str(&b, PROTO_TAG_PATH, path);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        proto_buf_put_int(&b, PROTO_TAG_PARENTS, 1);
        send_buf(c, &b);
        while (sent < n) {
                while (credit == 0) {
                        Frame f;
                        frame_recv(c, &f);
                        assert_int_equal(f.h.type, PROTO_CREDIT);
                        credit += credit_value(&f);
                        free(f.payload);
                }
                size_t k = n - sent;
                k = k > PROTO_MAX_DATA ? PROTO_MAX_DATA : k;
                k = k > credit ? (size_t) credit : k;
                send_simple(c, PROTO_DATA, channel, PROTO_STREAM_STDIN, data + sent, k);
                sent += k;
                credit -= k;
        }
        send_simple(c, PROTO_EOF, channel, PROTO_STREAM_STDIN, NULL, 0);
        wait_response(c, id, &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.size, (int64_t) n);
        proto_response_done(&r);
}

static int file_read(Client *c, uint32_t channel, const char *path, uint8_t **ret, size_t *ret_n) {
        ProtoBuf b = {};
        ProtoResponse r;
        uint32_t id = ++c->next_req;
        size_t got = 0;

        proto_request_begin(&b, id, PROTO_OP_FILE_READ);
        proto_buf_put_str(&b, PROTO_TAG_PATH, path);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        send_buf(c, &b);
        wait_response(c, id, &r);
        int status = r.status;
        if (status < 0) {
                proto_response_done(&r);
                return status;
        }
        uint8_t *data = malloc((size_t) r.size + 1);
        proto_response_done(&r);
        for (;;) {
                Frame f;
                frame_recv(c, &f);
                assert_int_equal(f.h.channel, channel);
                if (f.h.type == PROTO_EOF) {
                        free(f.payload);
                        break;
                }
                assert_int_equal(f.h.type, PROTO_DATA);
                memcpy(data + got, f.payload, f.h.length);
                got += f.h.length;
                send_credit(c, channel, PROTO_STREAM_STDIN, f.h.length);
                free(f.payload);
        }
        *ret = data;
        *ret_n = got;
        return 0;
}

static void test_file_round_trip(void **state) {
        Client *c = *state;
        size_t n = 3 * 1024 * 1024 + 17, got;
        uint8_t *data = malloc(n), *back;
        char path[128];

        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t) (i * 7 + (i >> 11));
        snprintf(path, sizeof(path), "%s/new/dir/file.bin", c->dir);
        file_write(c, 11, path, data, n);
        assert_int_equal(file_read(c, 12, path, &back, &got), 0);
        assert_int_equal(got, n);
        assert_memory_equal(back, data, n);
        free(back);
        free(data);
}

/* A cancelled write answers ECANCELED and leaves the old file as it was. */
static void test_file_write_cancel(void **state) {
        Client *c = *state;
        uint8_t old[] = "old content", junk[1000], *back;
        ProtoBuf b = {};
        ProtoResponse r;
        char path[128];
        size_t got;
        uint32_t id;

        memset(junk, 'x', sizeof(junk));
        snprintf(path, sizeof(path), "%s/keep.txt", c->dir);
        file_write(c, 21, path, old, sizeof(old));
        id = ++c->next_req;
        proto_request_begin(&b, id, PROTO_OP_FILE_WRITE);
        proto_buf_put_str(&b, PROTO_TAG_PATH, path);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 22);
        send_buf(c, &b);
        send_simple(c, PROTO_DATA, 22, PROTO_STREAM_STDIN, junk, sizeof(junk));
        proto_request_begin(&b, ++c->next_req, PROTO_OP_SIGNAL);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 22);
        proto_buf_put_int(&b, PROTO_TAG_SIGNAL, SIGKILL);
        send_buf(c, &b);
        wait_response(c, id, &r);
        assert_int_equal(r.status, -ECANCELED);
        proto_response_done(&r);
        wait_response(c, id + 1, &r); /* the SIGNAL's own answer */
        assert_int_equal(r.status, 0);
        proto_response_done(&r);
        assert_int_equal(file_read(c, 23, path, &back, &got), 0);
        assert_int_equal(got, sizeof(old));
        assert_memory_equal(back, old, sizeof(old));
        free(back);
}

static void test_file_ops(void **state) {
        Client *c = *state;
        char p[256], p2[512], outside[128];
        ProtoResponse r;
        ProtoBuf b = {};

        snprintf(p, sizeof(p), "%s/a/b/c", c->dir);
        assert_int_equal(path_op(c, PROTO_OP_MKDIR, p, 0, NULL), -ENOENT);
        assert_int_equal(path_op(c, PROTO_OP_MKDIR, p, PROTO_TAG_PARENTS, NULL), 0);
        assert_int_equal(path_op(c, PROTO_OP_MKDIR, p, 0, NULL), -EEXIST);
        snprintf(p, sizeof(p), "%s/a/file", c->dir);
        file_write(c, 13, p, (const uint8_t *) "abc", 3);

        /* a symlink inside the tree that points outside it */
        snprintf(outside, sizeof(outside), "%s/outside", c->dir);
        assert_int_equal(mkdir(outside, 0755), 0);
        snprintf(p2, sizeof(p2), "%s/keep", outside);
        close(open(p2, O_CREAT | O_WRONLY, 0644));
        snprintf(p, sizeof(p), "%s/a/b/link", c->dir);
        assert_int_equal(symlink(outside, p), 0);

        assert_int_equal(path_op(c, PROTO_OP_STAT, p, 0, &r), 0);
        assert_int_equal(r.stat.type, PROTO_FILE_SYMLINK);
        assert_string_equal(r.stat.link_target, outside);
        proto_response_done(&r);

        snprintf(p, sizeof(p), "%s/a", c->dir);
        assert_int_equal(path_op(c, PROTO_OP_LIST, p, 0, &r), 0);
        assert_int_equal(r.n_entries, 2);
        assert_string_equal(r.entries[0].name, "b");
        assert_int_equal(r.entries[0].type, PROTO_FILE_DIRECTORY);
        assert_string_equal(r.entries[1].name, "file");
        assert_int_equal(r.entries[1].size, 3);
        assert_int_equal(r.entries[1].mode, 0644);
        proto_response_done(&r);

        /* rename */
        snprintf(p, sizeof(p), "%s/a/file", c->dir);
        snprintf(p2, sizeof(p2), "%s/a/renamed", c->dir);
        uint32_t id = ++c->next_req;
        proto_request_begin(&b, id, PROTO_OP_RENAME);
        proto_buf_put_str(&b, PROTO_TAG_PATH, p);
        proto_buf_put_str(&b, PROTO_TAG_PATH2, p2);
        send_buf(c, &b);
        wait_response(c, id, &r);
        assert_int_equal(r.status, 0);
        proto_response_done(&r);
        assert_int_equal(path_op(c, PROTO_OP_STAT, p, 0, NULL), -ENOENT);
        assert_int_equal(path_op(c, PROTO_OP_STAT, p2, 0, NULL), 0);

        /* remove: not empty without RECURSIVE; with it, the link goes but not its target */
        snprintf(p, sizeof(p), "%s/a", c->dir);
        assert_int_equal(path_op(c, PROTO_OP_REMOVE, p, 0, NULL), -ENOTEMPTY);
        assert_int_equal(path_op(c, PROTO_OP_REMOVE, p, PROTO_TAG_RECURSIVE, NULL), 0);
        assert_int_equal(path_op(c, PROTO_OP_STAT, p, 0, NULL), -ENOENT);
        snprintf(p2, sizeof(p2), "%s/keep", outside);
        assert_int_equal(access(p2, F_OK), 0);
}

static void test_file_errors(void **state) {
        Client *c = *state;
        char fifo[256];
        uint8_t *data;
        size_t n;

        snprintf(fifo, sizeof(fifo), "%s/fifo", c->dir);
        assert_int_equal(mkfifo(fifo, 0644), 0);
        assert_int_equal(file_read(c, 14, fifo, &data, &n), -ENODEV);
        assert_int_equal(file_read(c, 14, c->dir, &data, &n), -EISDIR);
        assert_int_equal(file_read(c, 14, "relative/path", &data, &n), -EINVAL);
        assert_int_equal(path_op(c, PROTO_OP_STAT, "relative", 0, NULL), -EINVAL);
        assert_int_equal(file_read(c, 14, "/proc/self/root/etc/hostname", &data, &n), -ELOOP);
}

/* ---- retained processes ---- */

static uint32_t spawn_retained(Client *c, uint32_t channel, const char *script, const char *meta) {
        ProtoBuf b = {};
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_SPAWN);
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "sh");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "-c");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, script);
        proto_buf_put_str(&b, PROTO_TAG_ENV, "PATH=/usr/bin:/bin");
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        proto_buf_put_int(&b, PROTO_TAG_STDIN, 1);
        proto_buf_put_int(&b, PROTO_TAG_RETAIN, 1);
        proto_buf_put_str(&b, PROTO_TAG_META, meta);
        send_buf(c, &b);
        return id;
}

/* A retained process started and seen running: its pid, once its first output came. */
static int64_t retained_running(Client *c, uint32_t channel, const char *script, const char *meta) {
        uint32_t id = spawn_retained(c, channel, script, meta);
        ProtoResponse r;
        int64_t pid;
        Frame f;

        wait_response(c, id, &r);
        assert_int_equal(r.status, 0);
        pid = r.pid;
        proto_response_done(&r);
        do {
                frame_recv(c, &f);
                free(f.payload);
        } while (f.h.type != PROTO_DATA);
        return pid;
}

/* All retained processes, or with pid > 0 the one with its META; returns the status. */
static int procs_list_pid(Client *c, int64_t pid, ProtoResponse *r) {
        ProtoBuf b = {};
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_PROCS_LIST);
        if (pid > 0)
                proto_buf_put_int(&b, PROTO_TAG_PID, pid);
        send_buf(c, &b);
        wait_response(c, id, r);
        return r->status;
}

static void procs_list(Client *c, ProtoResponse *r) {
        assert_int_equal(procs_list_pid(c, 0, r), 0);
}

static int adopt(Client *c, int64_t pid, uint32_t channel, int64_t out_from, ProtoResponse *r) {
        ProtoBuf b = {};
        uint32_t id = ++c->next_req;

        proto_request_begin(&b, id, PROTO_OP_PROC_ADOPT);
        proto_buf_put_int(&b, PROTO_TAG_PID, pid);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        proto_buf_put_int(&b, PROTO_TAG_STDOUT_OFFSET, out_from);
        send_buf(c, &b);
        wait_response(c, id, r);
        return r->status;
}

/* Polls PROCS_LIST until the one retained process has finished. */
static void wait_listed_exit(Client *c, ProtoResponse *r) {
        for (int i = 0; i < 500; i++) {
                procs_list(c, r);
                assert_int_equal(r->n_procs, 1);
                if (r->proc_list[0].exited)
                        return;
                proto_response_done(r);
                usleep(10000);
        }
        fail_msg("the retained process never finished");
}

/* A retained process outlives its host connection: listed with its META, adopted on a new
 * channel with its output replayed, stdin works again, and its EXIT comes to the adopter
 * (and stays listed). A process spawned without RETAIN is not listed. */
static void test_retain_reconnect_adopt(void **state) {
        Client *c = *state;
        Run *run = calloc(1, sizeof(Run));
        ProtoResponse r;
        Frame f;

        uint32_t id = spawn(c, 3, "sleep 5", 0, 0);
        wait_response(c, id, &r);
        assert_int_equal(r.status, 0);
        proto_response_done(&r);
        int64_t pid = retained_running(c, 4, "echo before; read x; echo \"got $x\"; exit 3", "{\"n\":1}");

        client_connect(c);
        procs_list(c, &r);
        assert_int_equal(r.n_procs, 1);
        assert_int_equal(r.proc_list[0].pid, pid);
        assert_null(r.proc_list[0].meta); /* only when asked for by pid */
        assert_int_equal(r.proc_list[0].stdin_open, 1);
        assert_int_equal(r.proc_list[0].exited, 0);
        assert_int_equal(r.proc_list[0].start[0], 0);
        assert_int_equal(r.proc_list[0].end[0], 7);
        assert_int_equal(r.proc_list[0].end[1], 0);
        proto_response_done(&r);
        assert_int_equal(procs_list_pid(c, pid, &r), 0);
        assert_int_equal(r.n_procs, 1);
        assert_string_equal(r.proc_list[0].meta, "{\"n\":1}");
        assert_int_equal(r.proc_list[0].end[0], 7);
        proto_response_done(&r);
        assert_int_equal(procs_list_pid(c, 99999, &r), -ESRCH);
        proto_response_done(&r);

        /* from offset 2: "fore\n" */
        assert_int_equal(adopt(c, pid, 9, 2, &r), 0);
        assert_int_equal(r.offset[0], 2);
        assert_int_equal(r.offset[1], 0);
        assert_int_equal(r.end[0], 7);
        proto_response_done(&r);
        for (;;) {
                frame_recv(c, &f);
                if (f.h.type == PROTO_CREDIT && f.h.channel == 9 && f.h.stream == PROTO_STREAM_STDIN) {
                        free(f.payload);
                        break;
                }
                if (f.h.type == PROTO_DATA) {
                        assert_int_equal(f.h.channel, 9);
                        memcpy(run->out + run->n_out, f.payload, f.h.length);
                        run->n_out += f.h.length;
                }
                free(f.payload);
        }
        send_simple(c, PROTO_DATA, 9, PROTO_STREAM_STDIN, "hi\n", 3);
        run_collect(c, 9, run);
        assert_int_equal(run->n_out, 12);
        assert_memory_equal(run->out, "fore\ngot hi\n", 12);
        assert_true(run->eof_out_at > 0 && run->eof_out_at < run->exit_at);
        assert_int_equal(run->exit.exit_code, 3);

        wait_listed_exit(c, &r);
        assert_int_equal(r.proc_list[0].exit.exit_code, 3);
        assert_int_equal(r.proc_list[0].end[0], 14);
        proto_response_done(&r);
        free(run);
}

static void send_host_hello(Client *c) {
        ProtoBuf b = {};

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        assert_int_equal(proto_frame_finish(&b), 0);
        write_exact(c->fd, b.data, b.len);
        proto_buf_free(&b);
}

/* A second host HELLO on one connection is a new host (a VM's port, whose hangup and
 * reconnect the guest saw as nothing): the agent greets it, and what the old host had
 * is released as on a hangup, so the retained process is listed and adopted anew. */
static void test_second_hello_is_a_new_host(void **state) {
        Client *c = *state;
        ProtoResponse r;
        Frame f;

        send_host_hello(c);
        int64_t pid = retained_running(c, 4, "echo before; sleep 5", "{}");

        send_host_hello(c);
        do { /* what was queued for the old host may come first */
                frame_recv(c, &f);
                free(f.payload);
        } while (f.h.type != PROTO_HELLO);
        procs_list(c, &r);
        assert_int_equal(r.n_procs, 1);
        assert_int_equal(r.proc_list[0].pid, pid);
        proto_response_done(&r);
        assert_int_equal(adopt(c, pid, 9, 0, &r), 0);
        assert_int_equal(r.end[0], 7);
        proto_response_done(&r);
}

/* Without a host the agent drains a retained process into its ring (it never blocks):
 * what overflowed is counted, the newest AGENT_RING_BYTES-sized tail is replayed, and a
 * process that ended meanwhile gets EOF and EXIT (killed by a signal) right after. */
static void test_retain_overflow_while_detached(void **state) {
        Client *c = *state;
        const int64_t total = 3 * 1000 * 1000;
        ProtoResponse r;
        uint16_t ev;
        ProtoExit ex;
        int64_t got = 0, last_byte = -1;
        int eofs = 0;

        uint32_t id = spawn_retained(c, 4, "head -c 3000000 /dev/zero | tr -c a a; echo err >&2; kill -9 $$", "m");
        wait_response(c, id, &r);
        assert_int_equal(r.status, 0);
        int64_t pid = r.pid;
        proto_response_done(&r);

        client_connect(c);
        wait_listed_exit(c, &r);
        assert_int_equal(r.proc_list[0].exit.signal, SIGKILL);
        assert_int_equal(r.proc_list[0].exit.exit_code, -1);
        assert_int_equal(r.proc_list[0].end[0], total);
        assert_int_equal(r.proc_list[0].start[0], total - (1 << 20));
        assert_int_equal(r.proc_list[0].end[1], 4);
        proto_response_done(&r);

        assert_int_equal(adopt(c, pid, 12, 0, &r), 0);
        assert_int_equal(r.offset[0], total - (1 << 20));
        proto_response_done(&r);
        for (;;) {
                Frame f;
                frame_recv(c, &f);
                assert_int_equal(f.h.channel, 12);
                if (f.h.type == PROTO_DATA && f.h.stream == PROTO_STREAM_STDOUT) {
                        got += f.h.length;
                        last_byte = f.payload[f.h.length - 1];
                } else if (f.h.type == PROTO_EOF)
                        eofs++;
                else if (f.h.type == PROTO_EVENT) {
                        assert_int_equal(proto_event_decode(f.payload, f.h.length, &ev, &ex), 0);
                        free(f.payload);
                        break;
                }
                free(f.payload);
        }
        assert_int_equal(got, 1 << 20);
        assert_int_equal(last_byte, 'a');
        assert_int_equal(eofs, 2);
        assert_int_equal(ex.signal, SIGKILL);
}

static void test_adopt_errors(void **state) {
        Client *c = *state;
        ProtoResponse r;

        assert_int_equal(adopt(c, 99999, 5, 0, &r), -ESRCH);
        proto_response_done(&r);
        uint32_t id = spawn_retained(c, 4, "sleep 5", "m");
        wait_response(c, id, &r);
        int64_t pid = r.pid;
        proto_response_done(&r);
        assert_int_equal(adopt(c, pid, 0, 0, &r), -EINVAL);
        proto_response_done(&r);
        id = spawn(c, 6, "sleep 5", 0, 0);
        wait_response(c, id, &r);
        proto_response_done(&r);
        assert_int_equal(adopt(c, pid, 6, 0, &r), -EBUSY); /* another command's channel */
        proto_response_done(&r);
        assert_int_equal(adopt(c, pid, 4, 0, &r), 0); /* its own: allowed */
        proto_response_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_spawn_output_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stdin_cat, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_kills_tree, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_missing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_flow_control, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pty_spawn, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pty_resize_and_input, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pty_errors_and_signal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_write_cancel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_ops, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retain_reconnect_adopt, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retain_overflow_while_detached, setup, teardown),
                cmocka_unit_test_setup_teardown(test_adopt_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_second_hello_is_a_new_host, setup, teardown),
        };
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
