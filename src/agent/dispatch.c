/* Frames from the host: requests to their handlers, stream frames to their channel. */
#include "agent/agent.h"
#include "agent/vm.h"
#include "basic/log.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

static int op_ping(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        return 0;
}

static int op_usage(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        struct rusage ru;

        if (getrusage(RUSAGE_CHILDREN, &ru) < 0)
                return -errno;
        int64_t cpu = (int64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
                      ru.ru_stime.tv_usec;
        int procs = tree_count_procs();
        proto_buf_put_int(fields, PROTO_TAG_CPU_USEC, cpu);
        proto_buf_put_int(fields, PROTO_TAG_MAX_RSS_KB, ru.ru_maxrss);
        proto_buf_put_int(fields, PROTO_TAG_PROCS, procs < 0 ? 0 : procs);
        return 0;
}

static int op_shutdown(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        log_info("shutdown requested");
        tree_kill_all(NULL, NULL);
        agent_respond(a, req->req_id, 0, NULL, NULL);
        agent_exit(a, 0);
}

static const AgentHandler handlers[_PROTO_OP_MAX] = {
        [PROTO_OP_SPAWN] = agent_op_spawn,
        [PROTO_OP_SIGNAL] = agent_op_signal,
        [PROTO_OP_RESIZE] = agent_op_resize,
        [PROTO_OP_FILE_READ] = agent_op_file_read,
        [PROTO_OP_FILE_WRITE] = agent_op_file_write,
        [PROTO_OP_STAT] = agent_op_stat,
        [PROTO_OP_LIST] = agent_op_list,
        [PROTO_OP_MKDIR] = agent_op_mkdir,
        [PROTO_OP_REMOVE] = agent_op_remove,
        [PROTO_OP_RENAME] = agent_op_rename,
        [PROTO_OP_USAGE] = op_usage,
        [PROTO_OP_PING] = op_ping,
        [PROTO_OP_SHUTDOWN] = op_shutdown,
        [PROTO_OP_PROCS_LIST] = agent_op_procs_list,
        [PROTO_OP_PROC_ADOPT] = agent_op_proc_adopt,
        [PROTO_OP_CLOCK_SET] = agent_op_clock_set,
};

void agent_respond(Agent *a, uint32_t req_id, int status, const ProtoBuf *fields, const char *msg) {
        ProtoBuf b = {};

        proto_response_begin(&b, req_id, status);
        if (status == 0 && fields && fields->len > 0)
                proto_buf_put_bytes(&b, fields->data, fields->len);
        if (msg && msg[0])
                proto_buf_put_str(&b, PROTO_TAG_MESSAGE, msg);
        if (proto_frame_finish(&b) == -EMSGSIZE && status == 0) {
                /* The answer does not fit one frame (a huge LIST): say so instead. */
                proto_response_begin(&b, req_id, -E2BIG);
                proto_buf_put_str(&b, PROTO_TAG_MESSAGE, "response larger than one frame");
        }
        agent_send(a, &b);
}

void agent_send_hello(Agent *a) {
        ProtoBuf b = {};

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        proto_buf_put_str(&b, PROTO_TAG_FEATURE, PROTO_FEATURE_SPAWN);
        proto_buf_put_str(&b, PROTO_TAG_FEATURE, PROTO_FEATURE_FILES);
        proto_buf_put_str(&b, PROTO_TAG_FEATURE, PROTO_FEATURE_USAGE);
        proto_buf_put_str(&b, PROTO_TAG_FEATURE, PROTO_FEATURE_PTY);
        proto_buf_put_str(&b, PROTO_TAG_FEATURE, PROTO_FEATURE_RETAIN);
        agent_send(a, &b);
}

static void on_request(Agent *a, const uint8_t *payload, uint32_t len) {
        ProtoRequest req;
        ProtoBuf fields = {};
        char msg[512] = "";

        int r = proto_request_decode(payload, len, &req);
        if (r < 0) {
                /* Without the prefix there is no req_id to answer, so 0 stands in. */
                agent_respond(a, req.req_id, r, NULL, "malformed request");
                return;
        }
        if (req.op >= _PROTO_OP_MAX || !handlers[req.op])
                r = -EOPNOTSUPP;
        else
                r = handlers[req.op](a, &req, &fields, msg, sizeof(msg));
        if (r != AGENT_RESPONDED) {
                if (r == 0 && fields.failed)
                        r = fields.failed == EMSGSIZE ? -E2BIG : -ENOMEM;
                agent_respond(a, req.req_id, r, &fields, msg);
        }
        proto_buf_free(&fields);
        proto_request_done(&req);
}

static void on_data(Agent *a, const ProtoHeader *h, const uint8_t *payload) {
        Proc *p = proc_find(a, h->channel);
        Transfer *t;

        if (h->stream != PROTO_STREAM_STDIN)
                return;
        if (p && p->stdin_fd >= 0)
                proc_stdin_data(a, p, payload, h->length);
        else if ((t = transfer_find(a, h->channel)) && t->writing)
                transfer_data(a, t, payload, h->length);
        /* Anything else is late data for a channel that ended: dropped. */
}

static void on_eof(Agent *a, const ProtoHeader *h) {
        Proc *p = proc_find(a, h->channel);
        Transfer *t;

        if (h->stream != PROTO_STREAM_STDIN)
                return;
        if (p)
                proc_stdin_eof(a, p);
        else if ((t = transfer_find(a, h->channel)) && t->writing)
                transfer_eof(a, t);
}

static int on_credit(Agent *a, const ProtoHeader *h, const uint8_t *payload) {
        Transfer *t;
        Proc *p;

        if (h->length != 4)
                return -EBADMSG;
        uint32_t n = ((uint32_t) payload[0] << 24) | ((uint32_t) payload[1] << 16) |
                     ((uint32_t) payload[2] << 8) | payload[3];
        if (h->stream != PROTO_STREAM_STDIN && (p = proc_find(a, h->channel)))
                proc_add_credit(p, h->stream, n);
        else if (h->stream == PROTO_STREAM_STDIN && (t = transfer_find(a, h->channel)) && !t->writing)
                t->credit = t->credit + n > AGENT_CREDIT_MAX ? AGENT_CREDIT_MAX : t->credit + n;
        return 0;
}

/* A second HELLO on one connection: a VM's port, which forged's boot wait hands on to
 * forged's own connection, or on which one host hung up and the next connected so fast
 * that the guest saw neither (or a restored VM, whose port the old host held when it was
 * saved). The new host is served as on a fresh connection. */
static void on_new_host(Agent *a) {
        log_info("a new host on the same connection");
        agent_release_host(a);
        agent_send_hello(a);
}

int agent_on_frame(Agent *a, const ProtoHeader *h, const uint8_t *payload) {
        ProtoHello hello;

        switch (h->type) {
        case PROTO_HELLO:
                if (proto_hello_decode(payload, h->length, &hello) < 0)
                        return -EBADMSG;
                if (hello.version != PROTO_VERSION)
                        log_warn("host speaks protocol version %u, agent %u", hello.version, PROTO_VERSION);
                /* Before any greeting: a host that waits for it finds the machine set. */
                if (a->sync_ops)
                        vm_sync(a->sync_ops, &hello);
                if (a->conn && a->conn->host_greeted)
                        on_new_host(a);
                if (a->conn)
                        a->conn->host_greeted = true;
                return 0;
        case PROTO_REQUEST:
                if (h->channel != 0)
                        return -EBADMSG;
                on_request(a, payload, h->length);
                return 0;
        case PROTO_DATA:
                on_data(a, h, payload);
                return 0;
        case PROTO_EOF:
                on_eof(a, h);
                return 0;
        case PROTO_CREDIT:
                return on_credit(a, h, payload);
        default:
                log_warn("unexpected frame type %u from host", h->type);
                return -EBADMSG;
        }
}
