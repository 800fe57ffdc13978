/* Single-valued and list fields, with the duplicate and range checks every decoder shares. */
#include "proto/decode.h"

#include <errno.h>
#include <stdlib.h>

static int seen_once(ProtoSeen *seen, uint16_t tag) {
        if (tag >= 64)
                return 0;
        if (*seen & PROTO_TAG_BIT(tag))
                return -EBADMSG;
        *seen |= PROTO_TAG_BIT(tag);
        return 0;
}

int proto_tlv_int_once(const ProtoTlv *t, ProtoSeen *seen, int64_t *ret) {
        int r = seen_once(seen, t->tag);
        if (r < 0)
                return r;
        return proto_tlv_int(t, ret);
}

int proto_tlv_range_once(const ProtoTlv *t, ProtoSeen *seen, int64_t min, int64_t max, int64_t *ret) {
        int64_t v;
        int r = proto_tlv_int_once(t, seen, &v);
        if (r < 0)
                return r;
        if (v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int proto_tlv_str_once(const ProtoTlv *t, ProtoSeen *seen, char **ret) {
        int r = seen_once(seen, t->tag);
        if (r < 0)
                return r;
        return proto_tlv_strdup(t, ret);
}

int proto_strv_push(char ***list, size_t *n, const ProtoTlv *t) {
        char *s;

        if (*n >= PROTO_MAX_ARGS)
                return -E2BIG;
        /* Grow in powers of two; the slot after the last entry holds the NULL. */
        if ((*n & (*n + 1)) == 0 || !*list) {
                size_t cap = (*n + 1) * 2;
                char **p = realloc(*list, cap * sizeof(char *));
                if (!p)
                        return -ENOMEM;
                *list = p;
                p[*n] = NULL; /* stays a valid list even if the copy below fails */
        }
        int r = proto_tlv_strdup(t, &s);
        if (r < 0)
                return r;
        (*list)[(*n)++] = s;
        (*list)[*n] = NULL;
        return 0;
}

void proto_strv_free(char **list) {
        if (!list)
                return;
        for (char **p = list; *p; p++)
                free(*p);
        free(list);
}
