/* The 12-byte frame header. */
#include "proto/proto.h"
#include "proto/wire.h"

#include <errno.h>

void proto_header_encode(const ProtoHeader *h, uint8_t out[PROTO_HEADER_SIZE]) {
        wire_put_u32(out, h->length);
        out[4] = h->type;
        out[5] = h->stream;
        out[6] = 0;
        out[7] = 0;
        wire_put_u32(out + 8, h->channel);
}

/* Only DATA, EOF and CREDIT name a stream; every other type must carry 0 there, so a
 * stray byte is caught rather than silently ignored. */
static int type_has_stream(uint8_t type) {
        return type == PROTO_DATA || type == PROTO_EOF || type == PROTO_CREDIT;
}

int proto_header_decode(const uint8_t in[PROTO_HEADER_SIZE], ProtoHeader *ret) {
        ProtoHeader h = {
                .length = wire_get_u32(in),
                .type = in[4],
                .stream = in[5],
                .channel = wire_get_u32(in + 8),
        };

        if (h.length > PROTO_MAX_PAYLOAD)
                return -EBADMSG;
        if (h.type == 0 || h.type >= _PROTO_FRAME_TYPE_MAX)
                return -EBADMSG;
        if (in[6] != 0 || in[7] != 0)
                return -EBADMSG;
        if (h.stream >= _PROTO_STREAM_MAX || (h.stream != 0 && !type_has_stream(h.type)))
                return -EBADMSG;
        *ret = h;
        return 0;
}
