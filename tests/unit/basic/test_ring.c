/* The output ring (basic/ring.c) of forged's processes and the agent's retained ones:
 * wrap-around, drop counting, reader offsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/ring.h"

/* Byte i of the test stream, so any slice can be checked by its offsets. */
static uint8_t byte_at(uint64_t i) {
        return (uint8_t) (i * 31 + (i >> 8));
}

static void append_stream(Ring *r, uint64_t *written, size_t n) {
        uint8_t *buf = malloc(n + 1);

        assert_non_null(buf);
        for (size_t i = 0; i < n; i++)
                buf[i] = byte_at(*written + i);
        ring_append(r, buf, n);
        *written += n;
        free(buf);
}

static void check_holds(const Ring *r, uint64_t from, uint64_t to) {
        size_t n = (size_t) (to - from);
        uint8_t *buf = malloc(n + 1);

        assert_non_null(buf);
        assert_int_equal(ring_copy(r, from, buf, n), n);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(buf[i], byte_at(from + i));
        free(buf);
}

static void test_small_appends_keep_everything(void **state) {
        Ring r;
        char out[16];

        ring_init(&r, 64);
        ring_append(&r, "hello ", 6);
        ring_append(&r, "world", 5);
        assert_int_equal(ring_start(&r), 0);
        assert_int_equal(ring_end(&r), 11);
        assert_int_equal(ring_copy(&r, 0, out, sizeof(out)), 11);
        assert_memory_equal(out, "hello world", 11);
        assert_int_equal(ring_copy(&r, 6, out, 3), 3);
        assert_memory_equal(out, "wor", 3);
        assert_int_equal(ring_copy(&r, 11, out, 3), 0); /* at the end: nothing yet */
        ring_done(&r);
}

/* Many odd-sized appends through a small ring: it always holds exactly the newest max
 * bytes, in order, across the wrap, and counts every dropped byte. */
static void test_wrap_around_and_drop_count(void **state) {
        Ring r;
        uint64_t written = 0;
        static const size_t sizes[] = {1, 7, 100, 999, 1000, 1, 4095, 4096, 4097, 333};

        ring_init(&r, 10000);
        for (int round = 0; round < 50; round++)
                for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                        append_stream(&r, &written, sizes[i]);
                        assert_int_equal(ring_end(&r), written);
                        assert_int_equal(ring_size(&r), written < 10000 ? written : 10000);
                        assert_int_equal(ring_start(&r), written - ring_size(&r)); /* = dropped */
                        check_holds(&r, ring_start(&r), ring_end(&r));
                }
        assert_true(r.cap <= 10000);
        ring_done(&r);
}

/* One append larger than the ring keeps its last max bytes. */
static void test_append_larger_than_ring(void **state) {
        Ring r;
        uint64_t written = 0;

        ring_init(&r, 4096);
        append_stream(&r, &written, 100);
        append_stream(&r, &written, 10000);
        assert_int_equal(ring_end(&r), 10100);
        assert_int_equal(ring_start(&r), 10100 - 4096);
        check_holds(&r, ring_start(&r), ring_end(&r));
        ring_done(&r);
}

/* A reader's absolute offset stays meaningful: it reads on where it stopped, and one
 * that fell behind the ring start gets nothing and knows how much it missed. */
static void test_reader_offsets(void **state) {
        Ring r;
        uint64_t written = 0, reader = 0;
        uint8_t buf[512];

        ring_init(&r, 1024);
        append_stream(&r, &written, 600);
        assert_int_equal(ring_copy(&r, reader, buf, 500), 500);
        reader += 500;
        append_stream(&r, &written, 300);
        assert_int_equal(ring_copy(&r, reader, buf, sizeof(buf)), 400); /* 100 old + 300 new */
        assert_int_equal(buf[0], byte_at(500));
        reader += 400;
        assert_int_equal(reader, ring_end(&r));

        /* a slow reader at offset 100 falls behind: 2000 more bytes wrap the ring */
        append_stream(&r, &written, 2000);
        assert_true(ring_start(&r) > 100);
        assert_int_equal(ring_copy(&r, 100, buf, sizeof(buf)), 0);
        assert_int_equal(ring_start(&r) - 100, 2900 - 1024 - 100); /* what it missed */
        assert_int_equal(ring_copy(&r, ring_start(&r), buf, sizeof(buf)), sizeof(buf));
        assert_int_equal(buf[0], byte_at(ring_start(&r)));
        ring_done(&r);
}

/* Shrinking a finished stream keeps its bytes and offsets. */
static void test_shrink(void **state) {
        Ring r;
        uint64_t written = 0;

        ring_init(&r, 1 << 20);
        append_stream(&r, &written, 5000);
        assert_true(r.cap >= 5000);
        ring_shrink(&r);
        assert_int_equal(r.cap, 5000);
        check_holds(&r, 0, 5000);
        append_stream(&r, &written, 10);
        check_holds(&r, 0, 5010);
        ring_done(&r);

        ring_init(&r, 100);
        ring_shrink(&r); /* empty */
        assert_null(r.buf);
        append_stream(&r, &written, 150);
        assert_int_equal(ring_size(&r), 100);
        ring_done(&r);
}

/* Skipping ahead (an adopted stream whose first bytes are gone) counts the gap as dropped;
 * a skip backwards or to the end changes nothing. */
static void test_skip_to(void **state) {
        Ring r;
        uint64_t written = 0;

        ring_init(&r, 64);
        append_stream(&r, &written, 10);
        ring_skip_to(&r, 5);
        ring_skip_to(&r, 10);
        assert_int_equal(ring_start(&r), 0);
        assert_int_equal(ring_end(&r), 10);
        ring_skip_to(&r, 1000);
        assert_int_equal(ring_start(&r), 1000);
        assert_int_equal(ring_end(&r), 1000);
        assert_int_equal(ring_size(&r), 0);
        written = 1000;
        append_stream(&r, &written, 100); /* wraps the 64-byte ring from its new start */
        assert_int_equal(ring_start(&r), 1036);
        check_holds(&r, 1036, 1100);
        ring_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_small_appends_keep_everything),
                cmocka_unit_test(test_wrap_around_and_drop_count),
                cmocka_unit_test(test_append_larger_than_ring),
                cmocka_unit_test(test_reader_offsets),
                cmocka_unit_test(test_shrink),
                cmocka_unit_test(test_skip_to),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
