/* base64_encode(): RFC 4648's test vectors and a round trip through base64_decode(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "basic/base64.h"

static void check_encode(const char *in, const char *want) {
        char out[64];
        size_t n = base64_encode(in, strlen(in), out);

        assert_int_equal(n, strlen(want));
        assert_int_equal(n, BASE64_ENCODED_LEN(strlen(in)));
        assert_string_equal(out, want);
}

static void test_encode_rfc4648_vectors(void **state) {
        check_encode("", "");
        check_encode("f", "Zg==");
        check_encode("fo", "Zm8=");
        check_encode("foo", "Zm9v");
        check_encode("foob", "Zm9vYg==");
        check_encode("fooba", "Zm9vYmE=");
        check_encode("foobar", "Zm9vYmFy");
}

static void test_encode_binary(void **state) {
        static const uint8_t bytes[] = {0x00, 0xff, 0xfe, 0x80, 0x7f};
        char out[16];

        assert_int_equal(base64_encode(bytes, sizeof(bytes), out), 8);
        assert_string_equal(out, "AP/+gH8=");
}

static void test_encode_decode_round_trip(void **state) {
        uint8_t in[300];
        char out[BASE64_ENCODED_LEN(sizeof(in)) + 1];

        for (size_t i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) (i * 131 + 7);
        for (size_t len = 0; len <= sizeof(in); len++) {
                uint8_t *back;
                size_t back_len, n = base64_encode(in, len, out);

                assert_int_equal(n, BASE64_ENCODED_LEN(len));
                assert_int_equal(strlen(out), n);
                assert_int_equal(base64_decode(out, n, &back, &back_len), 0);
                assert_int_equal(back_len, len);
                assert_memory_equal(back, in, len);
                free(back);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encode_rfc4648_vectors),
                cmocka_unit_test(test_encode_binary),
                cmocka_unit_test(test_encode_decode_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
