/* EVENT and HELLO payloads. */
#include "proto/decode.h"

#include <errno.h>
#include <string.h>

int proto_exit_field(const ProtoTlv *t, ProtoSeen *seen, ProtoExit *ex) {
        switch (t->tag) {
        case PROTO_TAG_EXIT_CODE:
                return proto_tlv_range_once(t, seen, 0, 255, &ex->exit_code);
        case PROTO_TAG_SIGNAL:
                return proto_tlv_range_once(t, seen, 1, 64, &ex->signal);
        case PROTO_TAG_TIMED_OUT:
                return proto_tlv_range_once(t, seen, 0, 1, &ex->timed_out);
        case PROTO_TAG_CPU_USEC:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &ex->cpu_usec);
        case PROTO_TAG_MAX_RSS_KB:
                return proto_tlv_range_once(t, seen, 0, INT64_MAX, &ex->max_rss_kb);
        default:
                return 0;
        }
}

/* Exactly one of exit_code and signal says how the process ended. */
int proto_exit_check(ProtoSeen seen) {
        int has_code = !!(seen & PROTO_TAG_BIT(PROTO_TAG_EXIT_CODE));
        int has_signal = !!(seen & PROTO_TAG_BIT(PROTO_TAG_SIGNAL));
        ProtoSeen usage = PROTO_TAG_BIT(PROTO_TAG_CPU_USEC) | PROTO_TAG_BIT(PROTO_TAG_MAX_RSS_KB);

        if (has_code + has_signal != 1 || (seen & usage) != usage)
                return -EBADMSG;
        return 0;
}

int proto_event_decode(const void *payload, size_t n, uint16_t *ret_event, ProtoExit *ret_exit) {
        ProtoReader rd;
        ProtoTlv t;
        ProtoSeen seen = 0;
        ProtoExit ex = { .exit_code = -1 };
        uint16_t event;
        int r;

        proto_reader_init(&rd, payload, n);
        if (proto_reader_u16(&rd, &event) < 0)
                return -EBADMSG;
        *ret_event = event;
        if (event != PROTO_EVENT_EXIT)
                return 0; /* a newer agent's event: the caller skips it */
        while ((r = proto_reader_next(&rd, &t)) > 0) {
                r = proto_exit_field(&t, &seen, &ex);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = proto_exit_check(seen);
        if (r < 0)
                return r;
        *ret_exit = ex;
        return 0;
}

static int hello_hostname(const ProtoTlv *t, ProtoSeen *seen, ProtoHello *h) {
        if ((*seen & PROTO_TAG_BIT(PROTO_TAG_HOSTNAME)) || t->len == 0 || t->len > PROTO_HOSTNAME_MAX ||
            memchr(t->value, 0, t->len))
                return -EBADMSG;
        *seen |= PROTO_TAG_BIT(PROTO_TAG_HOSTNAME);
        memcpy(h->hostname, t->value, t->len);
        h->hostname[t->len] = 0;
        return 0;
}

int proto_hello_decode(const void *payload, size_t n, ProtoHello *ret) {
        ProtoHello h = {.time_ns = -1, .pids_max = -1};
        ProtoReader rd;
        ProtoTlv t;
        ProtoSeen seen = 0;
        int64_t version = -1;
        int r;

        proto_reader_init(&rd, payload, n);
        while ((r = proto_reader_next(&rd, &t)) > 0) {
                if (t.tag == PROTO_TAG_VERSION)
                        r = proto_tlv_range_once(&t, &seen, 1, UINT32_MAX, &version);
                else if (t.tag == PROTO_TAG_FEATURE && t.len > 0 && memchr(t.value, 0, t.len))
                        r = -EBADMSG;
                else if (t.tag == PROTO_TAG_TIME_NS)
                        r = proto_tlv_range_once(&t, &seen, 0, INT64_MAX, &h.time_ns);
                else if (t.tag == PROTO_TAG_PIDS_MAX)
                        r = proto_tlv_range_once(&t, &seen, 0, INT64_MAX, &h.pids_max);
                else if (t.tag == PROTO_TAG_HOSTNAME)
                        r = hello_hostname(&t, &seen, &h);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (version < 0)
                return -EBADMSG;
        h.version = (uint32_t) version;
        *ret = h;
        return 0;
}
