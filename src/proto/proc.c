/* PROCS_LIST entries: a retained process, encoded by the agent and decoded by the host. */
#include "proto/decode.h"

#include <errno.h>
#include <stdlib.h>

static const uint16_t start_tags[2] = { PROTO_TAG_STDOUT_OFFSET, PROTO_TAG_STDERR_OFFSET };
static const uint16_t end_tags[2] = { PROTO_TAG_STDOUT_END, PROTO_TAG_STDERR_END };

void proto_proc_put(ProtoBuf *b, const ProtoProc *p) {
        ProtoBuf e = {};

        proto_buf_put_int(&e, PROTO_TAG_PID, p->pid);
        if (p->meta)
                proto_buf_put_str(&e, PROTO_TAG_META, p->meta);
        proto_buf_put_int(&e, PROTO_TAG_STDIN, p->stdin_open);
        for (int i = 0; i < 2; i++) {
                proto_buf_put_int(&e, start_tags[i], p->start[i]);
                proto_buf_put_int(&e, end_tags[i], p->end[i]);
        }
        if (p->exited) {
                if (p->exit.signal > 0)
                        proto_buf_put_int(&e, PROTO_TAG_SIGNAL, p->exit.signal);
                else
                        proto_buf_put_int(&e, PROTO_TAG_EXIT_CODE, p->exit.exit_code);
                proto_buf_put_int(&e, PROTO_TAG_TIMED_OUT, p->exit.timed_out);
                proto_buf_put_int(&e, PROTO_TAG_CPU_USEC, p->exit.cpu_usec);
                proto_buf_put_int(&e, PROTO_TAG_MAX_RSS_KB, p->exit.max_rss_kb);
        }
        if (e.failed)
                b->failed = e.failed;
        else
                proto_buf_put_tlv(b, PROTO_TAG_PROC, e.data, e.len);
        proto_buf_free(&e);
}

static int proc_field(const ProtoTlv *t, ProtoSeen *seen, ProtoProc *p) {
        switch (t->tag) {
        case PROTO_TAG_PID:
                return proto_tlv_range_once(t, seen, 1, INT32_MAX, &p->pid);
        case PROTO_TAG_META:
                if (t->len > PROTO_MAX_META)
                        return -EBADMSG;
                return proto_tlv_str_once(t, seen, &p->meta);
        case PROTO_TAG_STDIN:
                return proto_tlv_range_once(t, seen, 0, 1, &p->stdin_open);
        case PROTO_TAG_STDOUT_OFFSET:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &p->start[0]);
        case PROTO_TAG_STDERR_OFFSET:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &p->start[1]);
        case PROTO_TAG_STDOUT_END:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &p->end[0]);
        case PROTO_TAG_STDERR_END:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &p->end[1]);
        default:
                return proto_exit_field(t, seen, &p->exit);
        }
}

/* The pid and the four offsets are required, start never past end; exit fields are all
 * present (exited) or all absent. */
static int proc_check(ProtoSeen seen, const ProtoProc *p) {
        ProtoSeen need = PROTO_TAG_BIT(PROTO_TAG_PID);
        ProtoSeen how = PROTO_TAG_BIT(PROTO_TAG_EXIT_CODE) | PROTO_TAG_BIT(PROTO_TAG_SIGNAL);

        for (int i = 0; i < 2; i++)
                need |= PROTO_TAG_BIT(start_tags[i]) | PROTO_TAG_BIT(end_tags[i]);
        if ((seen & need) != need || p->start[0] > p->end[0] || p->start[1] > p->end[1])
                return -EBADMSG;
        if (!(seen & how)) {
                ProtoSeen usage = PROTO_TAG_BIT(PROTO_TAG_TIMED_OUT) | PROTO_TAG_BIT(PROTO_TAG_CPU_USEC) |
                                  PROTO_TAG_BIT(PROTO_TAG_MAX_RSS_KB);
                return seen & usage ? -EBADMSG : 0;
        }
        return proto_exit_check(seen);
}

void proto_proc_done(ProtoProc *p) {
        free(p->meta);
        *p = (ProtoProc) { .pid = -1, .exit = { .exit_code = -1 } };
}

int proto_proc_decode(const ProtoTlv *t, ProtoProc *p) {
        ProtoReader rd;
        ProtoTlv f;
        ProtoSeen seen = 0;
        int r;

        proto_proc_done(p);
        proto_reader_init(&rd, t->value, t->len);
        while ((r = proto_reader_next(&rd, &f)) > 0) {
                r = proc_field(&f, &seen, p);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = proc_check(seen, p);
        if (r < 0)
                return r;
        p->exited = !!(seen & (PROTO_TAG_BIT(PROTO_TAG_EXIT_CODE) | PROTO_TAG_BIT(PROTO_TAG_SIGNAL)));
        return 0;
}
