/* Codec round trips and hostile inputs for src/proto. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

/* The payload of a finished frame. */
static const uint8_t *payload_of(const ProtoBuf *b, size_t *ret_n) {
        *ret_n = b->len - PROTO_HEADER_SIZE;
        return b->data + PROTO_HEADER_SIZE;
}

static void test_header_round_trip(void **state) {
        ProtoHeader h = { .length = 77, .type = PROTO_CREDIT, .stream = PROTO_STREAM_STDERR, .channel = 0xdeadbeef }, d;
        uint8_t raw[PROTO_HEADER_SIZE];

        proto_header_encode(&h, raw);
        assert_int_equal(proto_header_decode(raw, &d), 0);
        assert_int_equal(d.length, 77);
        assert_int_equal(d.type, PROTO_CREDIT);
        assert_int_equal(d.stream, PROTO_STREAM_STDERR);
        assert_int_equal(d.channel, 0xdeadbeef);
}

static void test_header_malformed(void **state) {
        ProtoHeader h = { .length = 4, .type = PROTO_DATA, .stream = 1, .channel = 3 }, d;
        uint8_t raw[PROTO_HEADER_SIZE], bad[PROTO_HEADER_SIZE];

        proto_header_encode(&h, raw);
        memcpy(bad, raw, sizeof(bad));
        bad[4] = 0; /* type 0 */
        assert_int_equal(proto_header_decode(bad, &d), -EBADMSG);
        bad[4] = _PROTO_FRAME_TYPE_MAX;
        assert_int_equal(proto_header_decode(bad, &d), -EBADMSG);
        memcpy(bad, raw, sizeof(bad));
        bad[7] = 1; /* reserved */
        assert_int_equal(proto_header_decode(bad, &d), -EBADMSG);
        memcpy(bad, raw, sizeof(bad));
        bad[5] = _PROTO_STREAM_MAX;
        assert_int_equal(proto_header_decode(bad, &d), -EBADMSG);
        memcpy(bad, raw, sizeof(bad));
        bad[4] = PROTO_REQUEST; /* a stream on a control frame */
        assert_int_equal(proto_header_decode(bad, &d), -EBADMSG);
        h.length = PROTO_MAX_PAYLOAD + 1;
        proto_header_encode(&h, bad);
        assert_int_equal(proto_header_decode(bad, &d), -EBADMSG);
}

static void build_spawn(ProtoBuf *b) {
        proto_request_begin(b, 42, PROTO_OP_SPAWN);
        proto_buf_put_str(b, PROTO_TAG_ARGV, "sh");
        proto_buf_put_str(b, PROTO_TAG_ARGV, "-c");
        proto_buf_put_str(b, PROTO_TAG_ARGV, "echo hi");
        proto_buf_put_str(b, PROTO_TAG_ENV, "PATH=/bin");
        proto_buf_put_str(b, PROTO_TAG_CWD, "/tmp");
        proto_buf_put_int(b, PROTO_TAG_CHANNEL, 9);
        proto_buf_put_int(b, PROTO_TAG_UID, 1000);
        proto_buf_put_int(b, PROTO_TAG_STDIN, 1);
        proto_buf_put_int(b, PROTO_TAG_TIMEOUT_MS, 5000);
        proto_buf_put_int(b, 999, 1); /* unknown tag: ignored */
}

static void test_request_spawn(void **state) {
        ProtoBuf b = {};
        ProtoRequest r;
        size_t n;

        build_spawn(&b);
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), 0);
        assert_int_equal(r.req_id, 42);
        assert_int_equal(r.op, PROTO_OP_SPAWN);
        assert_int_equal(r.n_argv, 3);
        assert_string_equal(r.argv[0], "sh");
        assert_string_equal(r.argv[2], "echo hi");
        assert_null(r.argv[3]);
        assert_int_equal(r.n_env, 1);
        assert_string_equal(r.env[0], "PATH=/bin");
        assert_string_equal(r.cwd, "/tmp");
        assert_int_equal(r.channel, 9);
        assert_int_equal(r.uid, 1000);
        assert_int_equal(r.gid, -1);
        assert_int_equal(r.stdin_open, 1);
        assert_int_equal(r.timeout_ms, 5000);
        assert_int_equal(r.mode, -1);
        proto_request_done(&r);
        proto_buf_free(&b);
}

static void test_request_files(void **state) {
        ProtoBuf b = {};
        ProtoRequest r;
        size_t n;

        proto_request_begin(&b, 1, PROTO_OP_RENAME);
        proto_buf_put_str(&b, PROTO_TAG_PATH, "/a");
        proto_buf_put_str(&b, PROTO_TAG_PATH2, "/b");
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), 0);
        assert_string_equal(r.path, "/a");
        assert_string_equal(r.path2, "/b");
        proto_request_done(&r);

        proto_request_begin(&b, 2, PROTO_OP_MKDIR);
        proto_buf_put_str(&b, PROTO_TAG_PATH, "/x/y");
        proto_buf_put_int(&b, PROTO_TAG_MODE, 0700);
        proto_buf_put_int(&b, PROTO_TAG_PARENTS, 1);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), 0);
        assert_int_equal(r.mode, 0700);
        assert_int_equal(r.parents, 1);
        proto_request_done(&r);

        /* An op this version does not know still decodes, for an -EOPNOTSUPP answer. */
        proto_request_begin(&b, 3, (ProtoOp) 200);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), 0);
        assert_int_equal(r.op, 200);
        proto_request_done(&r);
        proto_buf_free(&b);
}

/* Decodes a payload that must fail, checking req_id survives for the error answer. */
static int decode_fails(const ProtoBuf *b) {
        ProtoRequest r;
        size_t n;
        const uint8_t *p = payload_of(b, &n);
        int ret = proto_request_decode(p, n, &r);
        assert_true(ret < 0);
        assert_null(r.argv);
        assert_null(r.path);
        proto_request_done(&r);
        return ret;
}

static void test_request_malformed(void **state) {
        ProtoBuf b = {};
        uint8_t nul[] = { 'a', 0, 'b' };

        /* missing required field */
        proto_request_begin(&b, 5, PROTO_OP_STAT);
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(decode_fails(&b), -EBADMSG);
        /* NUL inside a string */
        proto_request_begin(&b, 5, PROTO_OP_STAT);
        proto_buf_put_tlv(&b, PROTO_TAG_PATH, nul, sizeof(nul));
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(decode_fails(&b), -EBADMSG);
        /* duplicate single-valued tag */
        proto_request_begin(&b, 5, PROTO_OP_STAT);
        proto_buf_put_str(&b, PROTO_TAG_PATH, "/a");
        proto_buf_put_str(&b, PROTO_TAG_PATH, "/b");
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(decode_fails(&b), -EBADMSG);
        /* integer of the wrong size */
        proto_request_begin(&b, 5, PROTO_OP_SPAWN);
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "x");
        proto_buf_put_tlv(&b, PROTO_TAG_CHANNEL, "abcd", 4);
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(decode_fails(&b), -EBADMSG);
        /* value out of range */
        proto_request_begin(&b, 5, PROTO_OP_SIGNAL);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 1);
        proto_buf_put_int(&b, PROTO_TAG_SIGNAL, 1000);
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(decode_fails(&b), -EINVAL);
        /* truncated TLV: claims more bytes than there are */
        proto_request_begin(&b, 5, PROTO_OP_STAT);
        proto_buf_put_str(&b, PROTO_TAG_PATH, "/abc");
        assert_int_equal(proto_frame_finish(&b), 0);
        b.data[PROTO_HEADER_SIZE + 6 + 5] = 0xff; /* the TLV length's low byte */
        assert_int_equal(decode_fails(&b), -EBADMSG);
        /* truncated TLV header */
        proto_request_begin(&b, 5, PROTO_OP_PING);
        proto_buf_put_u16(&b, PROTO_TAG_PATH);
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(decode_fails(&b), -EBADMSG);
        /* too many argv */
        proto_request_begin(&b, 5, PROTO_OP_SPAWN);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 1);
        for (int i = 0; i <= PROTO_MAX_ARGS; i++)
                proto_buf_put_str(&b, PROTO_TAG_ARGV, "a");
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(decode_fails(&b), -E2BIG);
        proto_buf_free(&b);
}

static void test_request_truncated_prefix(void **state) {
        ProtoRequest r;
        uint8_t p[5] = { 0, 0, 0, 1, 0 };

        for (size_t n = 0; n < sizeof(p); n++) {
                assert_int_equal(proto_request_decode(p, n, &r), -EBADMSG);
                proto_request_done(&r);
        }
}

static void test_response_stat_and_list(void **state) {
        ProtoBuf b = {}, e = {};
        ProtoResponse r;
        size_t n;
        ProtoStat st = { .type = PROTO_FILE_SYMLINK, .size = 3, .mode = 0777, .mtime_ns = 123, .uid = 0, .gid = 5,
                         .link_target = "/etc" };

        proto_response_begin(&b, 9, 0);
        assert_int_equal(proto_stat_put(&b, &st), 0);
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), 0);
        assert_int_equal(r.req_id, 9);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.stat.type, PROTO_FILE_SYMLINK);
        assert_int_equal(r.stat.mode, 0777);
        assert_int_equal(r.stat.mtime_ns, 123);
        assert_int_equal(r.stat.gid, 5);
        assert_string_equal(r.stat.link_target, "/etc");
        assert_int_equal(r.size, 3);
        proto_response_done(&r);

        proto_response_begin(&b, 10, 0);
        for (int i = 0; i < 3; i++) {
                char name[8] = { 'f', (char) ('0' + i), 0 };
                ProtoStat es = { .name = name, .type = PROTO_FILE_REGULAR, .size = i };
                e.len = 0;
                assert_int_equal(proto_stat_put(&e, &es), 0);
                proto_buf_put_tlv(&b, PROTO_TAG_ENTRY, e.data, e.len);
        }
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), 0);
        assert_int_equal(r.n_entries, 3);
        assert_string_equal(r.entries[2].name, "f2");
        assert_int_equal(r.entries[2].size, 2);
        proto_response_done(&r);

        /* an entry without a name */
        proto_response_begin(&b, 11, 0);
        e.len = 0;
        proto_buf_put_int(&e, PROTO_TAG_TYPE, PROTO_FILE_REGULAR);
        proto_buf_put_tlv(&b, PROTO_TAG_ENTRY, e.data, e.len);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), -EBADMSG);
        proto_response_done(&r);
        proto_buf_free(&e);
        proto_buf_free(&b);
}

static void test_response_error_and_usage(void **state) {
        ProtoBuf b = {};
        ProtoResponse r;
        size_t n;

        proto_response_begin(&b, 3, -ENOENT);
        proto_buf_put_str(&b, PROTO_TAG_MESSAGE, "no such file");
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), 0);
        assert_int_equal(r.status, -ENOENT);
        assert_string_equal(r.message, "no such file");
        proto_response_done(&r);

        proto_response_begin(&b, 4, 0);
        proto_buf_put_int(&b, PROTO_TAG_CPU_USEC, 1000);
        proto_buf_put_int(&b, PROTO_TAG_MAX_RSS_KB, 2000);
        proto_buf_put_int(&b, PROTO_TAG_PROCS, 3);
        proto_buf_put_int(&b, PROTO_TAG_PID, 77);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), 0);
        assert_int_equal(r.cpu_usec, 1000);
        assert_int_equal(r.max_rss_kb, 2000);
        assert_int_equal(r.procs, 3);
        assert_int_equal(r.pid, 77);
        proto_response_done(&r);

        proto_response_begin(&b, 4, 5); /* positive status */
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), -EBADMSG);
        proto_response_done(&r);
        proto_buf_free(&b);
}

static void test_event_exit(void **state) {
        ProtoBuf b = {};
        ProtoExit ex;
        uint16_t ev;
        size_t n;

        proto_event_begin(&b, 7, PROTO_EVENT_EXIT);
        proto_buf_put_int(&b, PROTO_TAG_SIGNAL, 9);
        proto_buf_put_int(&b, PROTO_TAG_TIMED_OUT, 1);
        proto_buf_put_int(&b, PROTO_TAG_CPU_USEC, 10);
        proto_buf_put_int(&b, PROTO_TAG_MAX_RSS_KB, 20);
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(b.data[11], 7); /* channel */
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_event_decode(p, n, &ev, &ex), 0);
        assert_int_equal(ev, PROTO_EVENT_EXIT);
        assert_int_equal(ex.exit_code, -1);
        assert_int_equal(ex.signal, 9);
        assert_int_equal(ex.timed_out, 1);
        assert_int_equal(ex.max_rss_kb, 20);

        /* both a code and a signal */
        proto_buf_put_int(&b, PROTO_TAG_EXIT_CODE, 1);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_event_decode(p, n, &ev, &ex), -EBADMSG);
        /* missing usage */
        proto_event_begin(&b, 7, PROTO_EVENT_EXIT);
        proto_buf_put_int(&b, PROTO_TAG_EXIT_CODE, 0);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_event_decode(p, n, &ev, &ex), -EBADMSG);
        proto_buf_free(&b);
}

static void test_hello(void **state) {
        ProtoBuf b = {};
        ProtoHello h;
        size_t n;

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        proto_buf_put_str(&b, PROTO_TAG_FEATURE, "spawn");
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_hello_decode(p, n, &h), 0);
        assert_int_equal(h.version, PROTO_VERSION);
        /* an older host's HELLO: the machine fields are absent */
        assert_int_equal(h.time_ns, -1);
        assert_int_equal(h.pids_max, -1);
        assert_string_equal(h.hostname, "");
        assert_int_equal(proto_hello_decode(p, 0, &h), -EBADMSG);
        assert_int_equal(proto_hello_decode(p, n - 1, &h), -EBADMSG);
        proto_buf_free(&b);
}

/* Builds a HELLO with VERSION plus one more field and decodes it. */
static int hello_with(uint16_t tag, const void *value, size_t len, ProtoHello *ret) {
        ProtoBuf b = {};
        size_t n;

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        proto_buf_put_tlv(&b, tag, value, len);
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        int r = proto_hello_decode(p, n, ret);
        proto_buf_free(&b);
        return r;
}

static void be64(int64_t v, uint8_t out[8]) {
        for (int i = 0; i < 8; i++)
                out[i] = (uint8_t) ((uint64_t) v >> (56 - 8 * i));
}

/* The host's HELLO to a VM's agent: wall clock, hostname, pids limit; bad ones refused. */
static void test_hello_host_fields(void **state) {
        ProtoBuf b = {};
        ProtoHello h;
        uint8_t v[8];
        char name[PROTO_HOSTNAME_MAX + 2];
        size_t n;

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        proto_buf_put_int(&b, PROTO_TAG_TIME_NS, 1700000000123456789LL);
        proto_buf_put_str(&b, PROTO_TAG_HOSTNAME, "sb-1234");
        proto_buf_put_int(&b, PROTO_TAG_PIDS_MAX, 64);
        proto_buf_put_int(&b, 999, 7); /* a newer host's field: skipped */
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_hello_decode(p, n, &h), 0);
        assert_int_equal(h.time_ns, 1700000000123456789LL);
        assert_string_equal(h.hostname, "sb-1234");
        assert_int_equal(h.pids_max, 64);
        proto_buf_free(&b);

        be64(0, v);
        assert_int_equal(hello_with(PROTO_TAG_PIDS_MAX, v, 8, &h), 0); /* 0: no limit */
        assert_int_equal(h.pids_max, 0);
        be64(-5, v);
        assert_int_equal(hello_with(PROTO_TAG_PIDS_MAX, v, 8, &h), -EINVAL);
        assert_int_equal(hello_with(PROTO_TAG_TIME_NS, v, 8, &h), -EINVAL);
        assert_int_equal(hello_with(PROTO_TAG_TIME_NS, v, 4, &h), -EBADMSG);
        memset(name, 'a', sizeof(name));
        assert_int_equal(hello_with(PROTO_TAG_HOSTNAME, name, PROTO_HOSTNAME_MAX, &h), 0);
        assert_int_equal(strlen(h.hostname), PROTO_HOSTNAME_MAX);
        assert_int_equal(hello_with(PROTO_TAG_HOSTNAME, name, PROTO_HOSTNAME_MAX + 1, &h), -EBADMSG);
        assert_int_equal(hello_with(PROTO_TAG_HOSTNAME, name, 0, &h), -EBADMSG);
        assert_int_equal(hello_with(PROTO_TAG_HOSTNAME, "a\0b", 3, &h), -EBADMSG);

        /* each at most once */
        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        proto_buf_put_str(&b, PROTO_TAG_HOSTNAME, "a");
        proto_buf_put_str(&b, PROTO_TAG_HOSTNAME, "b");
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_hello_decode(p, n, &h), -EBADMSG);
        proto_buf_free(&b);
}

static void test_buf_limits(void **state) {
        ProtoBuf b = {};
        uint8_t *big = calloc(1, PROTO_MAX_PAYLOAD);

        assert_non_null(big);
        proto_frame_begin(&b, PROTO_DATA, 1, 1);
        proto_buf_put_bytes(&b, big, PROTO_MAX_PAYLOAD);
        assert_int_equal(proto_frame_finish(&b), 0);
        proto_buf_put_bytes(&b, big, 1);
        assert_int_equal(proto_frame_finish(&b), -EMSGSIZE);
        proto_frame_begin(&b, PROTO_DATA, 1, 1); /* begin clears the sticky error */
        assert_int_equal(proto_frame_finish(&b), 0);
        free(big);
        proto_buf_free(&b);
}

/* Every prefix and a bit-flipped copy of a valid payload: no crash, no leak (ASan). */
/* SPAWN's RETAIN and META, and PROC_ADOPT's pid, channel and offsets. */
static void test_request_retain_and_adopt(void **state) {
        ProtoBuf b = {};
        ProtoRequest r;
        size_t n;

        build_spawn(&b);
        proto_buf_put_int(&b, PROTO_TAG_RETAIN, 1);
        proto_buf_put_str(&b, PROTO_TAG_META, "{\"cwd\":\"/\"}");
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), 0);
        assert_int_equal(r.retain, 1);
        assert_string_equal(r.meta, "{\"cwd\":\"/\"}");
        assert_int_equal(r.pid, -1);
        proto_request_done(&r);

        proto_request_begin(&b, 7, PROTO_OP_PROC_ADOPT);
        proto_buf_put_int(&b, PROTO_TAG_PID, 321);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 4);
        proto_buf_put_int(&b, PROTO_TAG_STDERR_OFFSET, 1 << 20);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), 0);
        assert_int_equal(r.op, PROTO_OP_PROC_ADOPT);
        assert_int_equal(r.pid, 321);
        assert_int_equal(r.channel, 4);
        assert_int_equal(r.offset[0], 0);
        assert_int_equal(r.offset[1], 1 << 20);
        proto_request_done(&r);

        /* ADOPT needs a pid; a pid of 0, a negative offset, RETAIN 2 and an oversized
         * META are out of range */
        proto_request_begin(&b, 8, PROTO_OP_PROC_ADOPT);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 4);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), -EBADMSG);
        assert_int_equal(r.req_id, 8);
        const struct { uint16_t tag; int64_t v; } bad[] = {
                { PROTO_TAG_PID, 0 }, { PROTO_TAG_STDOUT_OFFSET, -1 }, { PROTO_TAG_RETAIN, 2 },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                proto_request_begin(&b, 9, PROTO_OP_PROC_ADOPT);
                proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 4);
                if (bad[i].tag != PROTO_TAG_PID)
                        proto_buf_put_int(&b, PROTO_TAG_PID, 5);
                proto_buf_put_int(&b, bad[i].tag, bad[i].v);
                assert_int_equal(proto_frame_finish(&b), 0);
                p = payload_of(&b, &n);
                assert_int_equal(proto_request_decode(p, n, &r), -EINVAL);
        }
        /* CLOCK_SET carries the host's time, which must be there and not negative */
        proto_request_begin(&b, 10, PROTO_OP_CLOCK_SET);
        proto_buf_put_int(&b, PROTO_TAG_TIME_NS, 1800000000123456789LL);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), 0);
        assert_int_equal(r.time_ns, 1800000000123456789LL);
        proto_request_done(&r);
        proto_request_begin(&b, 11, PROTO_OP_CLOCK_SET);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), -EBADMSG);
        proto_request_begin(&b, 12, PROTO_OP_CLOCK_SET);
        proto_buf_put_int(&b, PROTO_TAG_TIME_NS, -1);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), -EINVAL);

        char *big = malloc(PROTO_MAX_META + 2);
        assert_non_null(big);
        memset(big, 'x', PROTO_MAX_META + 1);
        big[PROTO_MAX_META + 1] = 0;
        build_spawn(&b);
        proto_buf_put_str(&b, PROTO_TAG_META, big);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_request_decode(p, n, &r), -EINVAL);
        free(big);
        proto_buf_free(&b);
}

/* PROCS_LIST entries round-trip through proto_proc_put; ADOPT's offsets decode. */
static void test_response_procs(void **state) {
        ProtoBuf b = {};
        ProtoResponse r;
        size_t n;
        ProtoProc running = { .pid = 10, .meta = "{}", .stdin_open = 1, .start = { 0, 5 }, .end = { 100, 5 } };
        ProtoProc killed = { .pid = 11, .start = { 7, 0 }, .end = { 9, 0 }, .exited = 1,
                             .exit = { .exit_code = -1, .signal = 9, .cpu_usec = 3, .max_rss_kb = 4 } };
        ProtoProc exited = { .pid = 12, .start = { 0, 0 }, .end = { 0, 0 }, .exited = 1,
                             .exit = { .exit_code = 3, .timed_out = 0 } };

        proto_response_begin(&b, 1, 0);
        proto_proc_put(&b, &running);
        proto_proc_put(&b, &killed);
        proto_proc_put(&b, &exited);
        assert_int_equal(proto_frame_finish(&b), 0);
        const uint8_t *p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), 0);
        assert_int_equal(r.n_procs, 3);
        assert_int_equal(r.proc_list[0].pid, 10);
        assert_string_equal(r.proc_list[0].meta, "{}");
        assert_int_equal(r.proc_list[0].stdin_open, 1);
        assert_int_equal(r.proc_list[0].end[0], 100);
        assert_int_equal(r.proc_list[0].start[1], 5);
        assert_int_equal(r.proc_list[0].exited, 0);
        assert_null(r.proc_list[1].meta);
        assert_int_equal(r.proc_list[1].exited, 1);
        assert_int_equal(r.proc_list[1].exit.signal, 9);
        assert_int_equal(r.proc_list[1].exit.exit_code, -1);
        assert_int_equal(r.proc_list[1].start[0], 7);
        assert_int_equal(r.proc_list[2].exit.exit_code, 3);
        assert_int_equal(r.proc_list[2].exit.signal, 0);
        proto_response_done(&r);
        assert_int_equal(r.n_procs, 0);

        proto_response_begin(&b, 2, 0);
        proto_buf_put_int(&b, PROTO_TAG_STDOUT_OFFSET, 10);
        proto_buf_put_int(&b, PROTO_TAG_STDERR_OFFSET, 20);
        proto_buf_put_int(&b, PROTO_TAG_STDOUT_END, 30);
        proto_buf_put_int(&b, PROTO_TAG_STDERR_END, 40);
        assert_int_equal(proto_frame_finish(&b), 0);
        p = payload_of(&b, &n);
        assert_int_equal(proto_response_decode(p, n, &r), 0);
        assert_int_equal(r.offset[0], 10);
        assert_int_equal(r.offset[1], 20);
        assert_int_equal(r.end[0], 30);
        assert_int_equal(r.end[1], 40);
        proto_response_done(&r);

        /* an entry missing an offset, one whose start passes its end, one with usage but
         * no exit code, one with both an exit code and a signal */
        ProtoBuf e = {};
        for (int i = 0; i < 4; i++) {
                e.len = 0;
                proto_buf_put_int(&e, PROTO_TAG_PID, 5);
                proto_buf_put_int(&e, PROTO_TAG_STDOUT_OFFSET, i == 1 ? 9 : 0);
                proto_buf_put_int(&e, PROTO_TAG_STDOUT_END, 1);
                proto_buf_put_int(&e, PROTO_TAG_STDERR_OFFSET, 0);
                if (i != 0)
                        proto_buf_put_int(&e, PROTO_TAG_STDERR_END, 0);
                if (i >= 2) {
                        proto_buf_put_int(&e, PROTO_TAG_TIMED_OUT, 0);
                        proto_buf_put_int(&e, PROTO_TAG_CPU_USEC, 0);
                        proto_buf_put_int(&e, PROTO_TAG_MAX_RSS_KB, 0);
                }
                if (i == 3) {
                        proto_buf_put_int(&e, PROTO_TAG_EXIT_CODE, 0);
                        proto_buf_put_int(&e, PROTO_TAG_SIGNAL, 9);
                }
                proto_response_begin(&b, 3, 0);
                proto_buf_put_tlv(&b, PROTO_TAG_PROC, e.data, e.len);
                assert_int_equal(proto_frame_finish(&b), 0);
                p = payload_of(&b, &n);
                assert_int_equal(proto_response_decode(p, n, &r), -EBADMSG);
                assert_int_equal(r.req_id, 3);
                assert_int_equal(r.n_procs, 0);
        }
        proto_buf_free(&e);
        proto_buf_free(&b);
}

/* Every prefix and a bit-flipped copy of a valid payload (a SPAWN, then a PROCS_LIST
 * answer): no crash, no leak (ASan). */
static void fuzz_prefixes(ProtoBuf *b) {
        ProtoRequest r;
        ProtoResponse resp;
        ProtoExit ex;
        uint16_t ev;
        ProtoHello hello;
        size_t n;

        assert_int_equal(proto_frame_finish(b), 0);
        const uint8_t *p = payload_of(b, &n);
        uint8_t *copy = malloc(n);
        assert_non_null(copy);
        for (size_t len = 0; len <= n; len++)
                for (size_t flip = 0; flip < len; flip += 3) {
                        memcpy(copy, p, len);
                        copy[flip] ^= (uint8_t) (0x5a + len);
                        if (proto_request_decode(copy, len, &r) == 0)
                                proto_request_done(&r);
                        if (proto_response_decode(copy, len, &resp) == 0)
                                proto_response_done(&resp);
                        (void) proto_event_decode(copy, len, &ev, &ex);
                        (void) proto_hello_decode(copy, len, &hello);
                }
        free(copy);
        proto_buf_free(b);
}

static void test_fuzz_prefixes(void **state) {
        ProtoBuf b = {};
        ProtoProc pr = { .pid = 10, .meta = "{}", .start = { 1, 2 }, .end = { 3, 4 }, .exited = 1,
                         .exit = { .exit_code = 3 } };

        build_spawn(&b);
        fuzz_prefixes(&b);
        proto_response_begin(&b, 1, 0);
        proto_proc_put(&b, &pr);
        proto_proc_put(&b, &pr);
        fuzz_prefixes(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_round_trip),
                cmocka_unit_test(test_header_malformed),
                cmocka_unit_test(test_request_spawn),
                cmocka_unit_test(test_request_files),
                cmocka_unit_test(test_request_malformed),
                cmocka_unit_test(test_request_truncated_prefix),
                cmocka_unit_test(test_response_stat_and_list),
                cmocka_unit_test(test_response_error_and_usage),
                cmocka_unit_test(test_event_exit),
                cmocka_unit_test(test_hello),
                cmocka_unit_test(test_hello_host_fields),
                cmocka_unit_test(test_buf_limits),
                cmocka_unit_test(test_request_retain_and_adopt),
                cmocka_unit_test(test_response_procs),
                cmocka_unit_test(test_fuzz_prefixes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
