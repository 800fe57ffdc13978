/* REQUEST payloads: u32 req_id, u16 op, TLVs. */
#include "proto/decode.h"

#include <errno.h>
#include <stdlib.h>

#define BIT(tag) PROTO_TAG_BIT(PROTO_TAG_##tag)

/* Fields an op cannot do without; ops not listed need none (unknown ops decode too, so
 * the agent can answer them with -EOPNOTSUPP and the right req_id). */
static const ProtoSeen required_fields[_PROTO_OP_MAX] = {
        [PROTO_OP_SPAWN] = BIT(ARGV) | BIT(CHANNEL),
        [PROTO_OP_SIGNAL] = BIT(CHANNEL) | BIT(SIGNAL),
        [PROTO_OP_RESIZE] = BIT(CHANNEL) | BIT(PTY_ROWS) | BIT(PTY_COLS),
        [PROTO_OP_FILE_READ] = BIT(PATH) | BIT(CHANNEL),
        [PROTO_OP_FILE_WRITE] = BIT(PATH) | BIT(CHANNEL),
        [PROTO_OP_STAT] = BIT(PATH),
        [PROTO_OP_LIST] = BIT(PATH),
        [PROTO_OP_MKDIR] = BIT(PATH),
        [PROTO_OP_REMOVE] = BIT(PATH),
        [PROTO_OP_RENAME] = BIT(PATH) | BIT(PATH2),
        [PROTO_OP_PROC_ADOPT] = BIT(PID) | BIT(CHANNEL),
        [PROTO_OP_CLOCK_SET] = BIT(TIME_NS),
};

static int request_list_field(ProtoRequest *req, const ProtoTlv *t, ProtoSeen *seen) {
        *seen |= PROTO_TAG_BIT(t->tag);
        if (t->tag == PROTO_TAG_ARGV)
                return proto_strv_push(&req->argv, &req->n_argv, t);
        return proto_strv_push(&req->env, &req->n_env, t);
}

static int request_field(ProtoRequest *req, const ProtoTlv *t, ProtoSeen *seen) {
        int64_t channel;
        int r;

        switch (t->tag) {
        case PROTO_TAG_ARGV:
        case PROTO_TAG_ENV:
                return request_list_field(req, t, seen);
        case PROTO_TAG_CWD:
                return proto_tlv_str_once(t, seen, &req->cwd);
        case PROTO_TAG_PATH:
                return proto_tlv_str_once(t, seen, &req->path);
        case PROTO_TAG_PATH2:
                return proto_tlv_str_once(t, seen, &req->path2);
        case PROTO_TAG_CHANNEL:
                r = proto_tlv_range_once(t, seen, 0, UINT32_MAX, &channel);
                if (r >= 0)
                        req->channel = (uint32_t) channel;
                return r;
        case PROTO_TAG_UID:
                return proto_tlv_range_once(t, seen, 0, UINT32_MAX - 1, &req->uid);
        case PROTO_TAG_GID:
                return proto_tlv_range_once(t, seen, 0, UINT32_MAX - 1, &req->gid);
        case PROTO_TAG_STDIN:
                return proto_tlv_range_once(t, seen, 0, 1, &req->stdin_open);
        case PROTO_TAG_TIMEOUT_MS:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX / 2, &req->timeout_ms);
        case PROTO_TAG_PTY_ROWS:
                return proto_tlv_range_once(t, seen, 0, UINT16_MAX, &req->pty_rows);
        case PROTO_TAG_PTY_COLS:
                return proto_tlv_range_once(t, seen, 0, UINT16_MAX, &req->pty_cols);
        case PROTO_TAG_SIGNAL:
                return proto_tlv_range_once(t, seen, 1, 64, &req->signal);
        case PROTO_TAG_MODE:
                return proto_tlv_range_once(t, seen, 0, 07777, &req->mode);
        case PROTO_TAG_MAX_SIZE:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &req->max_size);
        case PROTO_TAG_PARENTS:
                return proto_tlv_range_once(t, seen, 0, 1, &req->parents);
        case PROTO_TAG_RECURSIVE:
                return proto_tlv_range_once(t, seen, 0, 1, &req->recursive);
        case PROTO_TAG_RETAIN:
                return proto_tlv_range_once(t, seen, 0, 1, &req->retain);
        case PROTO_TAG_META:
                if (t->len > PROTO_MAX_META)
                        return -EINVAL;
                return proto_tlv_str_once(t, seen, &req->meta);
        case PROTO_TAG_PID:
                return proto_tlv_range_once(t, seen, 1, INT32_MAX, &req->pid);
        case PROTO_TAG_TIME_NS:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &req->time_ns);
        case PROTO_TAG_STDOUT_OFFSET:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &req->offset[0]);
        case PROTO_TAG_STDERR_OFFSET:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &req->offset[1]);
        default:
                return 0; /* forward compatibility: a newer host may send more */
        }
}

static void request_init(ProtoRequest *req) {
        *req = (ProtoRequest) { .uid = -1, .gid = -1, .mode = -1, .max_size = -1, .pid = -1, .time_ns = -1 };
}

int proto_request_decode(const void *payload, size_t n, ProtoRequest *ret) {
        ProtoReader rd;
        ProtoTlv t;
        ProtoSeen seen = 0;
        int r;

        request_init(ret);
        proto_reader_init(&rd, payload, n);
        if (proto_reader_u32(&rd, &ret->req_id) < 0 || proto_reader_u16(&rd, &ret->op) < 0)
                return -EBADMSG;
        while ((r = proto_reader_next(&rd, &t)) > 0) {
                r = request_field(ret, &t, &seen);
                if (r < 0)
                        goto fail;
        }
        if (r < 0)
                goto fail;
        if (ret->op < _PROTO_OP_MAX && (seen & required_fields[ret->op]) != required_fields[ret->op]) {
                r = -EBADMSG;
                goto fail;
        }
        return 0;
fail:;
        /* Keep the ids so the caller can still address an error response. */
        uint32_t req_id = ret->req_id;
        uint16_t op = ret->op;
        proto_request_done(ret);
        ret->req_id = req_id;
        ret->op = op;
        return r;
}

void proto_request_done(ProtoRequest *r) {
        proto_strv_free(r->argv);
        proto_strv_free(r->env);
        free(r->cwd);
        free(r->path);
        free(r->path2);
        free(r->meta);
        request_init(r);
}
