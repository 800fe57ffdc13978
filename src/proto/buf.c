/* ProtoBuf: the growable buffer frames and nested TLV blocks are built in. */
#include "proto/proto.h"
#include "proto/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Nothing built here may exceed one frame, so growth stops there: a runaway caller gets
 * a sticky error instead of unbounded memory. */
#define BUF_LIMIT ((size_t) PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD)

void proto_buf_free(ProtoBuf *b) {
        free(b->data);
        *b = (ProtoBuf) {};
}

/* Returns a pointer to n fresh bytes at the end, or NULL (and marks the buffer failed). */
static uint8_t *buf_extend(ProtoBuf *b, size_t n) {
        if (b->failed)
                return NULL;
        if (n > BUF_LIMIT - b->len) {
                b->failed = EMSGSIZE;
                return NULL;
        }
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n)
                        cap *= 2;
                if (cap > BUF_LIMIT)
                        cap = BUF_LIMIT;
                uint8_t *p = realloc(b->data, cap);
                if (!p) {
                        b->failed = ENOMEM;
                        return NULL;
                }
                b->data = p;
                b->cap = cap;
        }
        b->len += n;
        return b->data + b->len - n;
}

void proto_buf_put_u16(ProtoBuf *b, uint16_t v) {
        uint8_t *p = buf_extend(b, 2);
        if (p)
                wire_put_u16(p, v);
}

void proto_buf_put_u32(ProtoBuf *b, uint32_t v) {
        uint8_t *p = buf_extend(b, 4);
        if (p)
                wire_put_u32(p, v);
}

void proto_buf_put_bytes(ProtoBuf *b, const void *src, size_t n) {
        uint8_t *p = buf_extend(b, n);
        if (p && n > 0)
                memcpy(p, src, n);
}

void proto_buf_put_tlv(ProtoBuf *b, uint16_t tag, const void *value, size_t n) {
        if (n > UINT32_MAX) {
                if (!b->failed)
                        b->failed = EMSGSIZE;
                return;
        }
        uint8_t *p = buf_extend(b, 6 + n);
        if (!p)
                return;
        wire_put_u16(p, tag);
        wire_put_u32(p + 2, (uint32_t) n);
        if (n > 0)
                memcpy(p + 6, value, n);
}

void proto_buf_put_str(ProtoBuf *b, uint16_t tag, const char *s) {
        proto_buf_put_tlv(b, tag, s, strlen(s));
}

void proto_buf_put_int(ProtoBuf *b, uint16_t tag, int64_t v) {
        uint8_t value[8];
        wire_put_u64(value, (uint64_t) v);
        proto_buf_put_tlv(b, tag, value, sizeof(value));
}

/* The header is written now with length 0 and patched by proto_frame_finish(). */
void proto_frame_begin(ProtoBuf *b, ProtoFrameType type, uint8_t stream, uint32_t channel) {
        ProtoHeader h = { .type = (uint8_t) type, .stream = stream, .channel = channel };

        b->len = 0;
        b->failed = 0;
        uint8_t *p = buf_extend(b, PROTO_HEADER_SIZE);
        if (p)
                proto_header_encode(&h, p);
}

int proto_frame_finish(ProtoBuf *b) {
        if (b->failed)
                return -b->failed;
        if (b->len < PROTO_HEADER_SIZE)
                return -EINVAL;
        if (b->len - PROTO_HEADER_SIZE > PROTO_MAX_PAYLOAD)
                return -EMSGSIZE;
        wire_put_u32(b->data, (uint32_t) (b->len - PROTO_HEADER_SIZE));
        return 0;
}

void proto_request_begin(ProtoBuf *b, uint32_t req_id, ProtoOp op) {
        proto_frame_begin(b, PROTO_REQUEST, 0, 0);
        proto_buf_put_u32(b, req_id);
        proto_buf_put_u16(b, (uint16_t) op);
}

void proto_response_begin(ProtoBuf *b, uint32_t req_id, int32_t status) {
        proto_frame_begin(b, PROTO_RESPONSE, 0, 0);
        proto_buf_put_u32(b, req_id);
        proto_buf_put_u32(b, (uint32_t) status);
}

void proto_event_begin(ProtoBuf *b, uint32_t channel, ProtoEvent event) {
        proto_frame_begin(b, PROTO_EVENT, 0, channel);
        proto_buf_put_u16(b, (uint16_t) event);
}
