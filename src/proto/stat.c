/* Stat fields: encoded by the agent for STAT and each LIST entry, decoded by the host. */
#include "proto/decode.h"

#include <errno.h>
#include <stdlib.h>

int proto_stat_put(ProtoBuf *b, const ProtoStat *st) {
        if (st->name)
                proto_buf_put_str(b, PROTO_TAG_NAME, st->name);
        proto_buf_put_int(b, PROTO_TAG_TYPE, st->type);
        proto_buf_put_int(b, PROTO_TAG_SIZE, st->size);
        proto_buf_put_int(b, PROTO_TAG_MODE, st->mode);
        proto_buf_put_int(b, PROTO_TAG_MTIME_NS, st->mtime_ns);
        proto_buf_put_int(b, PROTO_TAG_UID_OWNER, st->uid);
        proto_buf_put_int(b, PROTO_TAG_GID_OWNER, st->gid);
        if (st->link_target)
                proto_buf_put_str(b, PROTO_TAG_LINK_TARGET, st->link_target);
        return b->failed ? -b->failed : 0;
}

int proto_stat_field(const ProtoTlv *t, ProtoSeen *seen, ProtoStat *st) {
        switch (t->tag) {
        case PROTO_TAG_NAME:
                return proto_tlv_str_once(t, seen, &st->name);
        case PROTO_TAG_LINK_TARGET:
                return proto_tlv_str_once(t, seen, &st->link_target);
        case PROTO_TAG_TYPE:
                return proto_tlv_range_once(t, seen, PROTO_FILE_REGULAR, PROTO_FILE_OTHER, &st->type);
        case PROTO_TAG_SIZE:
                return proto_tlv_int_once(t, seen, &st->size);
        case PROTO_TAG_MODE:
                return proto_tlv_int_once(t, seen, &st->mode);
        case PROTO_TAG_MTIME_NS:
                return proto_tlv_int_once(t, seen, &st->mtime_ns);
        case PROTO_TAG_UID_OWNER:
                return proto_tlv_int_once(t, seen, &st->uid);
        case PROTO_TAG_GID_OWNER:
                return proto_tlv_int_once(t, seen, &st->gid);
        default:
                return 0;
        }
}

void proto_stat_done(ProtoStat *st) {
        free(st->name);
        free(st->link_target);
        *st = (ProtoStat) { .size = -1, .mode = -1, .mtime_ns = -1, .uid = -1, .gid = -1 };
}
