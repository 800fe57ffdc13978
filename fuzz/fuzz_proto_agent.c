/* Agent frame decoding, agent side: proto_header_decode() and proto_request_decode() on
 * raw bytes (with a re-encode round trip), and the agent's own frame assembly: bytes
 * written on a socketpair and read by agent/conn.c's conn_on_readable(), which cuts
 * frames and hands each to agent_on_frame().
 *
 * agent_on_frame() here stands in for dispatch.c's: the same decoding and checks
 * (HELLO, REQUEST only on channel 0, CREDIT of exactly 4 bytes), then a RESPONSE
 * queued through conn.c, but no handler runs (the real ones spawn processes, write
 * files and exit the process on SHUTDOWN).
 *
 * Input: byte 0 picks the mode (even: raw decoders; odd: the connection) and, for the
 * connection, the size of the pieces the host writes; the rest is the bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "basic/log.h"

static volatile size_t sink;

int64_t agent_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check_string(const char *s) {
        if (!s)
                abort();
        sink += strlen(s);
}

static void check_strv(char **v, size_t n) {
        if ((v == NULL) != (n == 0) || n > PROTO_MAX_ARGS)
                abort();
        for (size_t i = 0; i < n; i++)
                check_string(v[i]);
        if (v && v[n])
                abort();
}

/* What the decoder promises about a request it accepted. */
static void check_request(const ProtoRequest *req) {
        check_strv(req->argv, req->n_argv);
        check_strv(req->env, req->n_env);
        if (req->cwd)
                check_string(req->cwd);
        if (req->path)
                check_string(req->path);
        if (req->path2)
                check_string(req->path2);
        if (req->meta && strlen(req->meta) > PROTO_MAX_META)
                abort();
        switch (req->op) {
        case PROTO_OP_SPAWN:
                if (!req->argv)
                        abort();
                break;
        case PROTO_OP_SIGNAL:
                if (req->signal < 1 || req->signal > 64)
                        abort();
                break;
        case PROTO_OP_FILE_READ:
        case PROTO_OP_FILE_WRITE:
        case PROTO_OP_STAT:
        case PROTO_OP_LIST:
        case PROTO_OP_MKDIR:
        case PROTO_OP_REMOVE:
                if (!req->path)
                        abort();
                break;
        case PROTO_OP_RENAME:
                if (!req->path || !req->path2)
                        abort();
                break;
        case PROTO_OP_PROC_ADOPT:
                if (req->pid < 1 || req->pid > INT32_MAX)
                        abort();
                break;
        }
        if (req->retain < 0 || req->retain > 1 || req->offset[0] < 0 || req->offset[1] < 0)
                abort();
        if (req->mode > 07777 || req->mode < -1 || req->stdin_open < 0 || req->stdin_open > 1 ||
            req->timeout_ms < 0 || req->pty_rows < 0 || req->pty_rows > UINT16_MAX || req->uid < -1 ||
            req->gid < -1 || req->uid > (int64_t) UINT32_MAX - 1 || req->gid > (int64_t) UINT32_MAX - 1)
                abort();
}

/* A failed decode keeps the ids and nothing else. */
static void check_request_failed(const ProtoRequest *req) {
        if (req->argv || req->env || req->cwd || req->path || req->path2 || req->meta || req->n_argv || req->n_env)
                abort();
}

static void put_int_if(ProtoBuf *b, uint16_t tag, int64_t v, int64_t absent) {
        if (v != absent)
                proto_buf_put_int(b, tag, v);
}

/* Encodes what was decoded and decodes it again: the same request must come back. */
static void check_round_trip(const ProtoRequest *req) {
        ProtoBuf b = {0};
        ProtoRequest again;
        int r;

        proto_buf_put_u32(&b, req->req_id);
        proto_buf_put_u16(&b, req->op);
        for (size_t i = 0; i < req->n_argv; i++)
                proto_buf_put_str(&b, PROTO_TAG_ARGV, req->argv[i]);
        for (size_t i = 0; i < req->n_env; i++)
                proto_buf_put_str(&b, PROTO_TAG_ENV, req->env[i]);
        if (req->cwd)
                proto_buf_put_str(&b, PROTO_TAG_CWD, req->cwd);
        if (req->path)
                proto_buf_put_str(&b, PROTO_TAG_PATH, req->path);
        if (req->path2)
                proto_buf_put_str(&b, PROTO_TAG_PATH2, req->path2);
        /* CHANNEL and SIGNAL may be required; an absent one decodes as 0, never valid. */
        put_int_if(&b, PROTO_TAG_CHANNEL, req->channel, 0);
        put_int_if(&b, PROTO_TAG_SIGNAL, req->signal, 0);
        put_int_if(&b, PROTO_TAG_UID, req->uid, -1);
        put_int_if(&b, PROTO_TAG_GID, req->gid, -1);
        put_int_if(&b, PROTO_TAG_STDIN, req->stdin_open, 0);
        put_int_if(&b, PROTO_TAG_TIMEOUT_MS, req->timeout_ms, 0);
        put_int_if(&b, PROTO_TAG_MODE, req->mode, -1);
        put_int_if(&b, PROTO_TAG_MAX_SIZE, req->max_size, -1);
        put_int_if(&b, PROTO_TAG_PARENTS, req->parents, 0);
        put_int_if(&b, PROTO_TAG_RECURSIVE, req->recursive, 0);
        put_int_if(&b, PROTO_TAG_RETAIN, req->retain, 0);
        put_int_if(&b, PROTO_TAG_PID, req->pid, -1);
        put_int_if(&b, PROTO_TAG_STDOUT_OFFSET, req->offset[0], 0);
        put_int_if(&b, PROTO_TAG_STDERR_OFFSET, req->offset[1], 0);
        if (req->meta)
                proto_buf_put_str(&b, PROTO_TAG_META, req->meta);
        /* RESIZE needs both even when 0. */
        if (req->op == PROTO_OP_RESIZE || req->pty_rows || req->pty_cols) {
                proto_buf_put_int(&b, PROTO_TAG_PTY_ROWS, req->pty_rows);
                proto_buf_put_int(&b, PROTO_TAG_PTY_COLS, req->pty_cols);
        }
        if (b.failed) {
                proto_buf_free(&b);
                return;
        }
        r = proto_request_decode(b.data, b.len, &again);
        /* An absent CHANNEL decodes as 0, which cannot be told from a CHANNEL of 0; the
         * second decode then misses the field the first one found. */
        if (r == -EBADMSG && req->channel == 0)
                goto out;
        if (r < 0 || again.req_id != req->req_id || again.op != req->op || again.n_argv != req->n_argv ||
            again.n_env != req->n_env || again.uid != req->uid || again.gid != req->gid ||
            again.mode != req->mode || again.max_size != req->max_size ||
            again.timeout_ms != req->timeout_ms || again.signal != req->signal ||
            again.channel != req->channel || again.retain != req->retain || again.pid != req->pid ||
            again.offset[0] != req->offset[0] || again.offset[1] != req->offset[1] ||
            (req->meta && strcmp(again.meta, req->meta) != 0) || (req->path && strcmp(again.path, req->path) != 0) ||
            (req->cwd && strcmp(again.cwd, req->cwd) != 0))
                abort();
        for (size_t i = 0; i < req->n_argv; i++)
                if (strcmp(again.argv[i], req->argv[i]) != 0)
                        abort();
out:
        proto_request_done(&again);
        proto_buf_free(&b);
}

static int decode_request(const uint8_t *payload, size_t len, bool round_trip) {
        ProtoRequest req;
        int r = proto_request_decode(payload, len, &req);

        if (r < 0) {
                if (r != -EBADMSG && r != -EINVAL && r != -E2BIG && r != -ENOMEM)
                        abort();
                check_request_failed(&req);
        } else {
                check_request(&req);
                /* What the agent checks before touching a path (files.c, transfer.c). */
                if (req.path)
                        sink += agent_path_check(req.path) == 0;
                if (req.path2)
                        sink += agent_path_check(req.path2) == 0;
                if (round_trip)
                        check_round_trip(&req);
        }
        proto_request_done(&req);
        check_request_failed(&req);
        return r;
}

/* dispatch.c's agent_on_frame, minus the handlers. */
int agent_on_frame(Agent *a, const ProtoHeader *h, const uint8_t *payload) {
        ProtoHello hello;
        ProtoBuf b = {0};
        int r;

        switch (h->type) {
        case PROTO_HELLO:
                return proto_hello_decode(payload, h->length, &hello) < 0 ? -EBADMSG : 0;
        case PROTO_REQUEST:
                if (h->channel != 0)
                        return -EBADMSG;
                r = decode_request(payload, h->length, false);
                /* The answer goes through conn.c's queue; its req_id does not matter here. */
                proto_response_begin(&b, 0, r < 0 ? r : 0);
                agent_send(a, &b);
                return 0;
        case PROTO_DATA:
        case PROTO_EOF:
                sink += h->length + h->stream + h->channel;
                return 0;
        case PROTO_CREDIT:
                return h->length != 4 ? -EBADMSG : 0;
        default:
                return -EBADMSG;
        }
}

static void run_raw(const uint8_t *data, size_t size) {
        ProtoHeader h;

        if (size >= PROTO_HEADER_SIZE && proto_header_decode(data, &h) == 0) {
                uint8_t again[PROTO_HEADER_SIZE];

                if (h.length > PROTO_MAX_PAYLOAD || h.type == 0 || h.type >= _PROTO_FRAME_TYPE_MAX ||
                    h.stream >= _PROTO_STREAM_MAX)
                        abort();
                proto_header_encode(&h, again);
                if (memcmp(again, data, PROTO_HEADER_SIZE) != 0)
                        abort();
        }
        decode_request(data, size, true);
}

static void peer_drain(int fd) {
        static char buf[64 * 1024];

        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}

static void run_conn(const uint8_t *data, size_t size, size_t piece) {
        Agent agent = {.listen_fd = -1, .sig_fd = -1, .cgroup_procs_fd = -1};
        int sv[2], r = 0;
        size_t off = 0;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        agent.conn = conn_new(sv[0]);
        if (!agent.conn)
                abort();
        while (r >= 0 && !agent.conn->broken) {
                if (off < size) {
                        size_t n = piece == 0 || piece > size - off ? size - off : piece;
                        ssize_t w = write(sv[1], data + off, n);
                        if (w > 0)
                                off += (size_t) w;
                }
                r = conn_on_readable(&agent, agent.conn);
                if (r >= 0)
                        r = conn_flush(agent.conn);
                peer_drain(sv[1]);
                if (off == size && agent.conn->rlen == 0)
                        break;
                /* A partial frame and nothing left to write: the agent waits for more. */
                if (off == size && r >= 0) {
                        r = conn_on_readable(&agent, agent.conn);
                        break;
                }
        }
        if (agent.conn->rlen > PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD)
                abort();
        close(sv[1]);
        conn_free(agent.conn);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_setup(LOG_LEVEL_ERROR, 0);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 1)
                run_conn(data + 1, size - 1, (size_t) (data[0] >> 1) * 16);
        else
                run_raw(data + 1, size - 1);
        return 0;
}
