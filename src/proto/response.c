/* RESPONSE payloads: u32 req_id, i32 status, TLVs (stat fields and LIST entries too). */
#include "proto/decode.h"

#include <errno.h>
#include <stdlib.h>

static void response_init(ProtoResponse *resp) {
        *resp = (ProtoResponse) {
                .pid = -1, .size = -1, .mode = -1, .cpu_usec = -1, .max_rss_kb = -1, .procs = -1,
                .offset = { -1, -1 }, .end = { -1, -1 },
        };
        proto_stat_done(&resp->stat);
}

/* One LIST entry: a nested TLV block that must name its entry and give its type. */
static int entry_decode(const ProtoTlv *t, ProtoStat *st) {
        ProtoReader rd;
        ProtoTlv f;
        ProtoSeen seen = 0;
        int r;

        proto_stat_done(st);
        proto_reader_init(&rd, t->value, t->len);
        while ((r = proto_reader_next(&rd, &f)) > 0) {
                r = proto_stat_field(&f, &seen, st);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!(seen & PROTO_TAG_BIT(PROTO_TAG_NAME)) || !(seen & PROTO_TAG_BIT(PROTO_TAG_TYPE)))
                return -EBADMSG;
        return 0;
}

/* Makes room for entry n of an array of `size`-byte entries: doubles it when n is a
 * power of two, so growth follows the input and never runs ahead of it. */
static int array_grow(void **array, size_t n, size_t size) {
        if (n >= PROTO_MAX_ENTRIES)
                return -E2BIG;
        if ((n & (n - 1)) == 0) {
                size_t cap = n ? n * 2 : 1;
                void *p = realloc(*array, cap * size);
                if (!p)
                        return -ENOMEM;
                *array = p;
        }
        return 0;
}

static int entry_push(ProtoResponse *resp, const ProtoTlv *t) {
        size_t n = resp->n_entries;
        int r = array_grow((void **) &resp->entries, n, sizeof(ProtoStat));
        if (r < 0)
                return r;
        ProtoStat *st = &resp->entries[n];
        resp->n_entries++;
        st->name = st->link_target = NULL;
        return entry_decode(t, st);
}

static int proc_push(ProtoResponse *resp, const ProtoTlv *t) {
        size_t n = resp->n_procs;
        int r = array_grow((void **) &resp->proc_list, n, sizeof(ProtoProc));
        if (r < 0)
                return r;
        ProtoProc *p = &resp->proc_list[n];
        resp->n_procs++;
        p->meta = NULL;
        return proto_proc_decode(t, p);
}

static int response_field(ProtoResponse *resp, const ProtoTlv *t, ProtoSeen *seen) {
        int r;

        switch (t->tag) {
        case PROTO_TAG_ENTRY:
                return entry_push(resp, t);
        case PROTO_TAG_PROC:
                return proc_push(resp, t);
        case PROTO_TAG_STDOUT_OFFSET:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &resp->offset[0]);
        case PROTO_TAG_STDERR_OFFSET:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &resp->offset[1]);
        case PROTO_TAG_STDOUT_END:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &resp->end[0]);
        case PROTO_TAG_STDERR_END:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &resp->end[1]);
        case PROTO_TAG_MESSAGE:
                return proto_tlv_str_once(t, seen, &resp->message);
        case PROTO_TAG_PID:
                return proto_tlv_int_once(t, seen, &resp->pid);
        case PROTO_TAG_CPU_USEC:
                return proto_tlv_int_once(t, seen, &resp->cpu_usec);
        case PROTO_TAG_MAX_RSS_KB:
                return proto_tlv_int_once(t, seen, &resp->max_rss_kb);
        case PROTO_TAG_PROCS:
                return proto_tlv_int_once(t, seen, &resp->procs);
        default:
                /* SIZE and MODE mean the same at the top level and in the stat fields. */
                r = proto_stat_field(t, seen, &resp->stat);
                if (r < 0)
                        return r;
                resp->size = resp->stat.size;
                resp->mode = resp->stat.mode;
                return 0;
        }
}

int proto_response_decode(const void *payload, size_t n, ProtoResponse *ret) {
        ProtoReader rd;
        ProtoTlv t;
        ProtoSeen seen = 0;
        uint32_t status;
        int r;

        response_init(ret);
        proto_reader_init(&rd, payload, n);
        if (proto_reader_u32(&rd, &ret->req_id) < 0 || proto_reader_u32(&rd, &status) < 0)
                return -EBADMSG;
        ret->status = (int32_t) status;
        while ((r = proto_reader_next(&rd, &t)) > 0) {
                r = response_field(ret, &t, &seen);
                if (r < 0)
                        break;
        }
        if (r >= 0 && ret->status > 0)
                r = -EBADMSG; /* status is 0 or -errno */
        if (r < 0) {
                uint32_t req_id = ret->req_id;
                proto_response_done(ret);
                ret->req_id = req_id;
                return r;
        }
        return 0;
}

void proto_response_done(ProtoResponse *r) {
        free(r->message);
        proto_stat_done(&r->stat);
        for (size_t i = 0; i < r->n_entries; i++)
                proto_stat_done(&r->entries[i]);
        free(r->entries);
        for (size_t i = 0; i < r->n_procs; i++)
                proto_proc_done(&r->proc_list[i]);
        free(r->proc_list);
        r->message = NULL;
        r->entries = NULL;
        r->n_entries = 0;
        r->proc_list = NULL;
        r->n_procs = 0;
        response_init(r);
}
