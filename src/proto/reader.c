/* ProtoReader: a bounds-checked cursor over a payload, and typed TLV access. */
#include "proto/proto.h"
#include "proto/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void proto_reader_init(ProtoReader *r, const void *p, size_t n) {
        r->p = p;
        r->left = p ? n : 0;
}

int proto_reader_u16(ProtoReader *r, uint16_t *ret) {
        if (r->left < 2)
                return -EBADMSG;
        *ret = wire_get_u16(r->p);
        r->p += 2;
        r->left -= 2;
        return 0;
}

int proto_reader_u32(ProtoReader *r, uint32_t *ret) {
        if (r->left < 4)
                return -EBADMSG;
        *ret = wire_get_u32(r->p);
        r->p += 4;
        r->left -= 4;
        return 0;
}

int proto_reader_next(ProtoReader *r, ProtoTlv *ret) {
        if (r->left == 0)
                return 0;
        if (r->left < 6)
                return -EBADMSG;
        uint32_t len = wire_get_u32(r->p + 2);
        if (len > r->left - 6)
                return -EBADMSG;
        *ret = (ProtoTlv) { .tag = wire_get_u16(r->p), .len = len, .value = r->p + 6 };
        r->p += 6 + (size_t) len;
        r->left -= 6 + (size_t) len;
        return 1;
}

int proto_tlv_int(const ProtoTlv *t, int64_t *ret) {
        if (t->len != 8)
                return -EBADMSG;
        *ret = (int64_t) wire_get_u64(t->value);
        return 0;
}

int proto_tlv_strdup(const ProtoTlv *t, char **ret) {
        if (t->len > 0 && memchr(t->value, 0, t->len))
                return -EBADMSG;
        char *s = malloc((size_t) t->len + 1);
        if (!s)
                return -ENOMEM;
        if (t->len > 0)
                memcpy(s, t->value, t->len);
        s[t->len] = 0;
        *ret = s;
        return 0;
}
