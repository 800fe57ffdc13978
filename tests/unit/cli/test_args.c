/* forgectl's argument parsing and shell quoting, without a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/forgectl.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int) (sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE(fn, ret, ...) fn(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), ret)

static void test_shell_quote(void **state) {
        char *q;

        q = forgectl_shell_quote("plain");
        assert_string_equal(q, "'plain'");
        free(q);
        q = forgectl_shell_quote("it's");
        assert_string_equal(q, "'it'\\''s'");
        free(q);
        q = forgectl_shell_quote("");
        assert_string_equal(q, "''");
        free(q);
        q = forgectl_shell_quote("$HOME `x` \"y\" \\n");
        assert_string_equal(q, "'$HOME `x` \"y\" \\n'");
        free(q);
}

static void test_shell_join(void **state) {
        char *line;

        /* one word stays a shell line */
        line = forgectl_shell_join(1, ARGV("ls | wc -l"));
        assert_string_equal(line, "ls | wc -l");
        free(line);
        line = forgectl_shell_join(3, ARGV("printf", "%s\n", "a b"));
        assert_string_equal(line, "'printf' '%s\n' 'a b'");
        free(line);
        line = forgectl_shell_join(2, ARGV("echo", "don't"));
        assert_string_equal(line, "'echo' 'don'\\''t'");
        free(line);
        line = forgectl_shell_join(2, ARGV("true", ""));
        assert_string_equal(line, "'true' ''");
        free(line);
        assert_null(forgectl_shell_join(0, ARGV("x")));
}

static void test_split_remote(void **state) {
        char *id = NULL, *path = NULL;

        assert_int_equal(forgectl_split_remote("abc:/tmp/x", &id, &path), 1);
        assert_string_equal(id, "abc");
        assert_string_equal(path, "/tmp/x");
        free(id);
        free(path);
        assert_int_equal(forgectl_split_remote("abc:", &id, &path), 1);
        assert_string_equal(path, "");
        free(id);
        free(path);
        assert_int_equal(forgectl_split_remote("./a:b", &id, &path), 0);
        assert_int_equal(forgectl_split_remote("/x/a:b", &id, &path), 0);
        assert_int_equal(forgectl_split_remote(":x", &id, &path), 0);
        assert_int_equal(forgectl_split_remote("local.txt", &id, &path), 0);
        assert_int_equal(forgectl_split_remote("-", &id, &path), 0);
}

static void test_exit_status(void **state) {
        ForgeResult r = {.exit_code = 3};

        assert_int_equal(forgectl_exit_status(&r), 3);
        r = (ForgeResult){.exit_code = 137, .signal = 9};
        assert_int_equal(forgectl_exit_status(&r), 137);
        r = (ForgeResult){.exit_code = 0, .signal = 15};
        assert_int_equal(forgectl_exit_status(&r), 143);
        r = (ForgeResult){.exit_code = 124, .timed_out = true, .signal = 9};
        assert_int_equal(forgectl_exit_status(&r), 124);
        r = (ForgeResult){.exit_code = 300};
        assert_int_equal(forgectl_exit_status(&r), 1);
}

static void test_args_iterator(void **state) {
        static const ForgectlOption opts[] = {
                {"alpha", 'a', false, 1},
                {"beta", 'b', true, 2},
                {},
        };
        char **argv = ARGV("cmd", "-a", "--beta", "x", "--beta=y", "-bz", "op", "-", "--", "--alpha");
        const char *v;
        ForgectlArgs a;

        forgectl_args_init(&a, "cmd", 10, argv);
        assert_int_equal(forgectl_args_next(&a, opts, &v), 1);
        assert_int_equal(forgectl_args_next(&a, opts, &v), 2);
        assert_string_equal(v, "x");
        assert_int_equal(forgectl_args_next(&a, opts, &v), 2);
        assert_string_equal(v, "y");
        assert_int_equal(forgectl_args_next(&a, opts, &v), 2);
        assert_string_equal(v, "z");
        assert_int_equal(forgectl_args_next(&a, opts, &v), FORGECTL_ARG_OPERAND);
        assert_string_equal(v, "op");
        assert_int_equal(forgectl_args_next(&a, opts, &v), FORGECTL_ARG_OPERAND);
        assert_string_equal(v, "-");
        assert_int_equal(forgectl_args_next(&a, opts, &v), FORGECTL_ARG_DASHDASH);
        assert_int_equal(a.index, 9);

        forgectl_args_init(&a, "cmd", 2, ARGV("cmd", "--gamma"));
        assert_int_equal(forgectl_args_next(&a, opts, &v), -EINVAL);
        forgectl_args_init(&a, "cmd", 2, ARGV("cmd", "--beta"));
        assert_int_equal(forgectl_args_next(&a, opts, &v), -EINVAL);
        forgectl_args_init(&a, "cmd", 2, ARGV("cmd", "--alpha=1"));
        assert_int_equal(forgectl_args_next(&a, opts, &v), -EINVAL);
        forgectl_args_init(&a, "cmd", 2, ARGV("cmd", "-ab"));
        assert_int_equal(forgectl_args_next(&a, opts, &v), -EINVAL);
        forgectl_args_init(&a, "cmd", 1, ARGV("cmd"));
        assert_int_equal(forgectl_args_next(&a, opts, &v), FORGECTL_ARG_END);
}

static void test_parse_numbers(void **state) {
        long l;
        double d;

        assert_int_equal(forgectl_parse_long("t", "pids", "64", 1, &l), 0);
        assert_int_equal(l, 64);
        assert_int_equal(forgectl_parse_long("t", "pids", "0", 1, &l), -EINVAL);
        assert_int_equal(forgectl_parse_long("t", "pids", "12x", 1, &l), -EINVAL);
        assert_int_equal(forgectl_parse_long("t", "pids", "", 1, &l), -EINVAL);
        assert_int_equal(forgectl_parse_long("t", "pids", "99999999999999999999999", 1, &l), -EINVAL);
        assert_int_equal(forgectl_parse_cpus("t", "0.5", &d), 0);
        assert_true(d == 0.5);
        assert_int_equal(forgectl_parse_cpus("t", "0", &d), -EINVAL);
        assert_int_equal(forgectl_parse_cpus("t", "-1", &d), -EINVAL);
        assert_int_equal(forgectl_parse_cpus("t", "nan", &d), -EINVAL);
        assert_int_equal(forgectl_parse_cpus("t", "inf", &d), -EINVAL);
}

static void test_parse_create(void **state) {
        ForgectlCreateArgs a;

        assert_int_equal(PARSE(forgectl_parse_create, &a, "create", "--image", "host", "--runtime", "python",
                               "--cpus", "0.5", "--memory", "256", "--pids", "64", "--timeout-ms", "5000",
                               "--env", "A=1", "-e", "B=x=y", "--name", "n1", "--metadata", "k=v", "--cwd",
                               "/tmp"),
                         0);
        assert_string_equal(a.options.image, "host");
        assert_string_equal(a.options.runtime, "python");
        assert_true(a.options.limits.cpus == 0.5);
        assert_int_equal(a.options.limits.memory_mb, 256);
        assert_int_equal(a.options.limits.pids, 64);
        assert_int_equal(a.options.limits.timeout_ms, 5000);
        assert_string_equal(a.options.env[0], "A=1");
        assert_string_equal(a.options.env[1], "B=x=y");
        assert_null(a.options.env[2]);
        assert_string_equal(a.options.metadata[0], "k=v");
        assert_string_equal(a.options.name, "n1");
        assert_string_equal(a.options.cwd, "/tmp");
        forgectl_create_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_create, &a, "create"), 0);
        assert_null(a.options.env);
        assert_null(a.options.image);
        forgectl_create_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_create, &a, "create", "--help"), FORGECTL_HELP);
        forgectl_create_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_create, &a, "create", "--env", "noequals"), -EINVAL);
        forgectl_create_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_create, &a, "create", "--env", "=v"), -EINVAL);
        forgectl_create_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_create, &a, "create", "extra"), -EINVAL);
        forgectl_create_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_create, &a, "create", "--memory"), -EINVAL);
        forgectl_create_args_done(&a);
}

static void test_parse_exec(void **state) {
        ForgectlExecArgs a;

        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "sb1", "--cwd", "/tmp", "-e", "K=V",
                               "--timeout-ms", "100", "-i", "--", "printf", "%s", "a b"),
                         0);
        assert_string_equal(a.id, "sb1");
        assert_string_equal(a.options.cwd, "/tmp");
        assert_string_equal(a.options.env[0], "K=V");
        assert_int_equal(a.options.timeout_ms, 100);
        assert_true(a.read_stdin);
        assert_string_equal(a.command, "'printf' '%s' 'a b'");
        forgectl_exec_args_done(&a);

        /* options before the id, a single shell line */
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "--cwd", "/", "sb1", "--", "ls | wc -l"), 0);
        assert_string_equal(a.id, "sb1");
        assert_string_equal(a.command, "ls | wc -l");
        assert_false(a.read_stdin);
        forgectl_exec_args_done(&a);

        /* without "--": the command starts at the first word after the id, and its own
         * options are not ours */
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "sb1", "ls", "-la", "--cwd"), 0);
        assert_string_equal(a.command, "'ls' '-la' '--cwd'");
        assert_null(a.options.cwd);
        forgectl_exec_args_done(&a);

        /* after "--", "-i" belongs to the command */
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "sb1", "--", "grep", "-i", "x"), 0);
        assert_false(a.read_stdin);
        assert_string_equal(a.command, "'grep' '-i' 'x'");
        forgectl_exec_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "sb1"), -EINVAL);
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "sb1", "--"), -EINVAL);
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "--", "ls"), -EINVAL);
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "sb1", "--timeout-ms", "0", "--", "ls"),
                         -EINVAL);
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "--bogus", "sb1", "--", "ls"), -EINVAL);
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "-h"), FORGECTL_HELP);
        forgectl_exec_args_done(&a);
}

static void test_parse_run(void **state) {
        ForgectlRunArgs a;

        assert_int_equal(PARSE(forgectl_parse_run, &a, "run", "--runtime", "python", "--memory", "128", "-i",
                               "--", "python3", "-c", "print(1)"),
                         0);
        assert_string_equal(a.create.options.runtime, "python");
        assert_int_equal(a.create.options.limits.memory_mb, 128);
        assert_true(a.exec.read_stdin);
        assert_string_equal(a.exec.command, "'python3' '-c' 'print(1)'");
        forgectl_run_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_run, &a, "run", "echo", "hi"), 0);
        assert_string_equal(a.exec.command, "'echo' 'hi'");
        forgectl_run_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_run, &a, "run", "--image", "host"), -EINVAL);
        forgectl_run_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_run, &a, "run", "--cpus", "abc", "--", "true"), -EINVAL);
        forgectl_run_args_done(&a);
}

static void test_parse_cp(void **state) {
        ForgectlCpArgs a;

        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "local.bin", "sb1:/tmp/x"), 0);
        assert_null(a.src_id);
        assert_string_equal(a.src_path, "local.bin");
        assert_string_equal(a.dst_id, "sb1");
        assert_string_equal(a.dst_path, "/tmp/x");
        forgectl_cp_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "sb1:/etc/hosts", "-"), 0);
        assert_string_equal(a.src_id, "sb1");
        assert_string_equal(a.src_path, "/etc/hosts");
        assert_null(a.dst_id);
        assert_string_equal(a.dst_path, "-");
        forgectl_cp_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "--", "-odd-name", "sb1:x"), 0);
        assert_string_equal(a.src_path, "-odd-name");
        forgectl_cp_args_done(&a);

        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "a", "b"), -EINVAL);
        forgectl_cp_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "s1:a", "s2:b"), -EINVAL);
        forgectl_cp_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "s1:a"), -EINVAL);
        forgectl_cp_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "s1:a", "b", "c"), -EINVAL);
        forgectl_cp_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_cp, &a, "cp", "s1:", "b"), -EINVAL);
        forgectl_cp_args_done(&a);
}

static void test_main_usage(void **state) {
        assert_int_equal(forgectl_main(1, ARGV("forgectl")), FORGECTL_EXIT_USAGE);
        assert_int_equal(forgectl_main(2, ARGV("forgectl", "frobnicate")), FORGECTL_EXIT_USAGE);
        assert_int_equal(forgectl_main(2, ARGV("forgectl", "--bogus")), FORGECTL_EXIT_USAGE);
        assert_int_equal(forgectl_main(2, ARGV("forgectl", "--url")), FORGECTL_EXIT_USAGE);
        assert_int_equal(forgectl_main(2, ARGV("forgectl", "rm")), FORGECTL_EXIT_USAGE);
        assert_int_equal(forgectl_main(3, ARGV("forgectl", "get", "--help")), FORGECTL_EXIT_OK);
        assert_int_equal(forgectl_main(4, ARGV("forgectl", "get", "a", "b")), FORGECTL_EXIT_USAGE);
        assert_int_equal(forgectl_main(3, ARGV("forgectl", "ls", "notremote")), FORGECTL_EXIT_USAGE);
        assert_int_equal(forgectl_main(3, ARGV("forgectl", "mkdir", "notremote")), FORGECTL_EXIT_USAGE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shell_quote),   cmocka_unit_test(test_shell_join),
                cmocka_unit_test(test_split_remote),  cmocka_unit_test(test_exit_status),
                cmocka_unit_test(test_args_iterator), cmocka_unit_test(test_parse_numbers),
                cmocka_unit_test(test_parse_create),  cmocka_unit_test(test_parse_exec),
                cmocka_unit_test(test_parse_run),     cmocka_unit_test(test_parse_cp),
                cmocka_unit_test(test_main_usage),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
