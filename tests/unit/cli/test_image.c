/* forgectl image: argv to ForgectlImageArgs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "cli/forgectl.h"

static int parse(ForgectlImageArgs *a, int argc, char **argv) {
        return forgectl_parse_image(argc, argv, a);
}

#define PARSE(a, ...) parse(a, (int) ELEMENTSOF(((char *[]){__VA_ARGS__})), (char *[]){__VA_ARGS__})

static void test_image_commands(void **state) {
        ForgectlImageArgs a;

        assert_int_equal(PARSE(&a, "image", "build", "python"), 0);
        assert_int_equal(a.cmd, FORGECTL_IMAGE_BUILD);
        assert_string_equal(a.operands[0], "python");
        assert_null(a.operands[1]);
        forgectl_image_args_done(&a);

        assert_int_equal(PARSE(&a, "image", "ls"), 0);
        assert_int_equal(a.cmd, FORGECTL_IMAGE_LS);
        forgectl_image_args_done(&a);

        assert_int_equal(PARSE(&a, "image", "rm", "a", "b"), 0);
        assert_int_equal(a.cmd, FORGECTL_IMAGE_RM);
        assert_string_equal(a.operands[1], "b");
        forgectl_image_args_done(&a);

        assert_int_equal(PARSE(&a, "image", "import", "mine", "-"), 0);
        assert_int_equal(a.cmd, FORGECTL_IMAGE_IMPORT);
        assert_string_equal(a.operands[1], "-");
        forgectl_image_args_done(&a);

        assert_int_equal(PARSE(&a, "image", "--help"), FORGECTL_HELP);
}

static void test_image_usage_errors(void **state) {
        ForgectlImageArgs a;

        assert_int_equal(PARSE(&a, "image"), -EINVAL);
        assert_int_equal(PARSE(&a, "image", "frob"), -EINVAL);
        assert_int_equal(PARSE(&a, "image", "build"), -EINVAL);
        assert_int_equal(PARSE(&a, "image", "build", "a", "b"), -EINVAL);
        assert_int_equal(PARSE(&a, "image", "ls", "x"), -EINVAL);
        assert_int_equal(PARSE(&a, "image", "import", "onlyname"), -EINVAL);
        assert_int_equal(PARSE(&a, "image", "--bogus", "ls"), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_image_commands),
                cmocka_unit_test(test_image_usage_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
