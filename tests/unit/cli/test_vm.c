/* forgectl vm setup's argument parsing (the builder itself runs in test_qemu.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/forgectl.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int) (sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE(ret, ...) forgectl_parse_vm(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), ret)

static void test_vm_setup_defaults(void **state) {
        ForgectlVmArgs a;

        assert_int_equal(PARSE(&a, "vm", "setup"), 0);
        assert_string_equal(a.action, "setup");
        assert_string_equal(a.state_dir, "/var/lib/forge");
        assert_null(a.agent);
}

static void test_vm_setup_options(void **state) {
        ForgectlVmArgs a;

        assert_int_equal(PARSE(&a, "vm", "setup", "--state-dir", "/srv/forge", "--agent=/opt/forge-agent"),
                         0);
        assert_string_equal(a.state_dir, "/srv/forge");
        assert_string_equal(a.agent, "/opt/forge-agent");
        assert_int_equal(PARSE(&a, "vm", "--help"), FORGECTL_HELP);
}

static void test_vm_bad_usage(void **state) {
        ForgectlVmArgs a;

        assert_int_equal(PARSE(&a, "vm"), -EINVAL);
        assert_int_equal(PARSE(&a, "vm", "boot"), -EINVAL);
        assert_int_equal(PARSE(&a, "vm", "setup", "extra"), -EINVAL);
        assert_int_equal(PARSE(&a, "vm", "setup", "--state-dir", ""), -EINVAL);
        assert_int_equal(PARSE(&a, "vm", "setup", "--state-dir"), -EINVAL);
        assert_int_equal(PARSE(&a, "vm", "setup", "--bogus"), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vm_setup_defaults),
                cmocka_unit_test(test_vm_setup_options),
                cmocka_unit_test(test_vm_bad_usage),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
