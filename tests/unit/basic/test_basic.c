/* Unit tests for the libc-only helpers: utf8, base64, rm-rf, time formatting, copying. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/base64.h"
#include "basic/copy.h"
#include "basic/random-util.h"
#include "basic/rm-rf.h"
#include "basic/time-util.h"
#include "basic/utf8.h"

static void check_utf8(const char *in, size_t len, const char *want) {
        size_t out_len;
        char *out = utf8_sanitize((const uint8_t *) in, len, &out_len);

        assert_non_null(out);
        assert_int_equal(out_len, strlen(want));
        assert_memory_equal(out, want, out_len);
        free(out);
}

static void test_utf8_valid_passes(void **state) {
        check_utf8("hello", 5, "hello");
        check_utf8("\xC3\xA9t\xC3\xA9", 5, "\xC3\xA9t\xC3\xA9");
        check_utf8("\xF0\x9F\x98\x80", 4, "\xF0\x9F\x98\x80");
}

static void test_utf8_invalid_replaced(void **state) {
        check_utf8("a\xFF" "b", 3, "a\xEF\xBF\xBD" "b");
        /* overlong '/' and a lone surrogate */
        check_utf8("\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD");
        check_utf8("\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
        /* truncated sequence at the end */
        check_utf8("x\xE2\x82", 3, "x\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void check_b64(const char *in, const char *want, size_t want_len) {
        uint8_t *out;
        size_t len;

        assert_int_equal(base64_decode(in, strlen(in), &out, &len), 0);
        assert_int_equal(len, want_len);
        assert_memory_equal(out, want, want_len);
        free(out);
}

static void test_base64(void **state) {
        uint8_t *out;
        size_t len;

        check_b64("", "", 0);
        check_b64("Zg==", "f", 1);
        check_b64("Zm8=", "fo", 2);
        check_b64("Zm9v", "foo", 3);
        check_b64("Zm9v\nYmFy", "foobar", 6);
        check_b64("AP8=", "\x00\xff", 2);
        assert_int_equal(base64_decode("Zm9v!", 5, &out, &len), -EINVAL);
        assert_int_equal(base64_decode("Z", 1, &out, &len), -EINVAL);
        assert_int_equal(base64_decode("Zg==Zg", 6, &out, &len), -EINVAL);
}

static void test_rm_rf_keeps_symlink_targets(void **state) {
        char base[] = "/tmp/forge-test-rmrf-XXXXXX";
        char path[256], outside[256];
        struct stat st;

        assert_non_null(mkdtemp(base));
        snprintf(outside, sizeof(outside), "%s/outside", base);
        assert_int_equal(mkdir(outside, 0700), 0);
        snprintf(path, sizeof(path), "%s/outside/keep", base);
        assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
        snprintf(path, sizeof(path), "%s/tree", base);
        assert_int_equal(mkdir(path, 0700), 0);
        snprintf(path, sizeof(path), "%s/tree/sub", base);
        assert_int_equal(mkdir(path, 0000), 0); /* unreadable: root removes it anyway */
        snprintf(path, sizeof(path), "%s/tree/link", base);
        assert_int_equal(symlink(outside, path), 0);

        snprintf(path, sizeof(path), "%s/tree", base);
        assert_int_equal(rm_rf(path), 0);
        assert_int_equal(lstat(path, &st), -1);
        snprintf(path, sizeof(path), "%s/outside/keep", base);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(rm_rf(base), 0);
        assert_int_equal(rm_rf(base), 0); /* already gone is fine */
}

static void test_time_format(void **state) {
        char buf[40];

        time_format_rfc3339(1795337400123LL, buf, sizeof(buf));
        assert_string_equal(buf, "2026-11-22T08:50:00.123Z");
}

/* A sparse 64 MiB file with two data segments copies to the same bytes, the same size and
 * (with holes kept) about the same allocation, not 64 MiB. */
static void test_copy_keeps_holes(void **state) {
        char src_path[] = "/tmp/forge-copy-src-XXXXXX", dst_path[] = "/tmp/forge-copy-dst-XXXXXX";
        int src = mkstemp(src_path), dst = mkstemp(dst_path);
        static char block[65536], back[65536];
        struct stat ss, ds;

        assert_true(src >= 0 && dst >= 0);
        memset(block, 'x', sizeof(block));
        assert_int_equal(pwrite(src, block, sizeof(block), 4096), (ssize_t) sizeof(block));
        assert_int_equal(pwrite(src, block, 100, 32 << 20), 100);
        assert_int_equal(ftruncate(src, 64 << 20), 0);

        assert_int_equal(copy_file_contents(src, dst), 0);
        assert_int_equal(fstat(src, &ss), 0);
        assert_int_equal(fstat(dst, &ds), 0);
        assert_int_equal(ds.st_size, ss.st_size);
        assert_true(ds.st_blocks * 512 < 4 << 20);
        assert_int_equal(pread(dst, back, sizeof(back), 4096), (ssize_t) sizeof(back));
        assert_memory_equal(back, block, sizeof(back));
        assert_int_equal(pread(dst, back, 100, 32 << 20), 100);
        assert_memory_equal(back, block, 100);
        assert_int_equal(pread(dst, back, 10, 1 << 20), 10);
        assert_memory_equal(back, "\0\0\0\0\0\0\0\0\0\0", 10);
        close(src);
        close(dst);
        unlink(src_path);
        unlink(dst_path);
}

static void test_random_label(void **state) {
        char a[11], b[11];

        assert_int_equal(random_label(a, 10), 0);
        assert_int_equal(random_label(b, 10), 0);
        assert_int_equal(strlen(a), 10);
        assert_true(a[0] >= 'a' && a[0] <= 'z');
        assert_int_equal(strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789"), 10);
        assert_string_not_equal(a, b);
        assert_int_equal(random_label(a, 0), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_utf8_valid_passes),
                cmocka_unit_test(test_utf8_invalid_replaced),
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_rm_rf_keeps_symlink_targets),
                cmocka_unit_test(test_time_format),
                cmocka_unit_test(test_copy_keeps_holes),
                cmocka_unit_test(test_random_label),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
