/* forgectl's terminal handling on a real pseudo-terminal pair, and the parsing of the
 * process commands (start, shell, logs, kill, exec -it). */
#include <fcntl.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include <cmocka.h>

#include "cli/forgectl.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int) (sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE(fn, ret, ...) fn(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), ret)

static void test_make_raw(void **state) {
        struct termios t = {};

        t.c_iflag = ICRNL | IXON | BRKINT | ISTRIP | IUTF8;
        t.c_oflag = OPOST | ONLCR;
        t.c_lflag = ECHO | ICANON | ISIG | IEXTEN | ECHOE;
        t.c_cflag = CS7 | PARENB | CREAD;
        forgectl_termios_make_raw(&t);
        assert_false(t.c_iflag & (ICRNL | IXON | BRKINT | ISTRIP));
        assert_true(t.c_iflag & IUTF8); /* untouched */
        assert_false(t.c_oflag & OPOST);
        assert_false(t.c_lflag & (ECHO | ICANON | ISIG | IEXTEN));
        assert_int_equal(t.c_cflag & CSIZE, CS8);
        assert_false(t.c_cflag & PARENB);
        assert_true(t.c_cflag & CREAD);
        assert_int_equal(t.c_cc[VMIN], 1);
        assert_int_equal(t.c_cc[VTIME], 0);
}

static void test_raw_enter_and_restore(void **state) {
        struct winsize ws = {.ws_row = 33, .ws_col = 111};
        struct termios before, during, after;
        int master, slave, fds[2];
        unsigned rows, cols;

        assert_int_equal(openpty(&master, &slave, NULL, NULL, &ws), 0);
        assert_int_equal(tcgetattr(slave, &before), 0);
        assert_true(before.c_lflag & ICANON);

        assert_int_equal(forgectl_tty_raw_enter(slave), 0);
        assert_int_equal(tcgetattr(slave, &during), 0);
        assert_false(during.c_lflag & (ICANON | ECHO | ISIG));
        assert_false(during.c_oflag & OPOST);

        forgectl_tty_restore();
        assert_int_equal(tcgetattr(slave, &after), 0);
        assert_int_equal(after.c_lflag, before.c_lflag);
        assert_int_equal(after.c_iflag, before.c_iflag);
        assert_int_equal(after.c_oflag, before.c_oflag);
        forgectl_tty_restore(); /* twice is harmless */

        /* the size comes from the first fd that is a terminal */
        assert_int_equal(pipe(fds), 0);
        forgectl_tty_size((int[]){fds[0], slave}, 2, &rows, &cols);
        assert_int_equal(rows, 33);
        assert_int_equal(cols, 111);
        forgectl_tty_size((int[]){fds[0], fds[1]}, 2, &rows, &cols);
        assert_int_equal(rows, 24);
        assert_int_equal(cols, 80);
        assert_int_equal(forgectl_tty_raw_enter(fds[0]), -ENOTTY);
        close(fds[0]);
        close(fds[1]);
        close(master);
        close(slave);
}

static void test_parse_exec_tty(void **state) {
        ForgectlExecArgs a;

        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "-it", "sb1", "--", "top"), 0);
        assert_true(a.read_stdin && a.tty);
        assert_string_equal(a.command, "top");
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "-t", "-i", "sb1", "vi", "x"), 0);
        assert_true(a.read_stdin && a.tty);
        assert_string_equal(a.command, "'vi' 'x'");
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "-i", "sb1", "cat"), 0);
        assert_true(a.read_stdin && !a.tty);
        forgectl_exec_args_done(&a);
        /* a bundle holds flags only; -e takes a value */
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "-ie", "A=1", "sb1", "cat"), -EINVAL);
        forgectl_exec_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "-itx", "sb1", "cat"), -EINVAL);
        forgectl_exec_args_done(&a);
        /* after the id, -it belongs to the command */
        assert_int_equal(PARSE(forgectl_parse_exec, &a, "exec", "sb1", "ls", "-it"), 0);
        assert_false(a.read_stdin || a.tty);
        assert_string_equal(a.command, "'ls' '-it'");
        forgectl_exec_args_done(&a);
}

static void test_parse_start(void **state) {
        ForgectlStartArgs a;

        assert_int_equal(PARSE(forgectl_parse_start, &a, "start", "--pty", "--stdin", "-e", "A=1", "--cwd", "/tmp",
                               "--timeout-ms", "500", "sb1", "--", "sleep", "9"),
                         0);
        assert_string_equal(a.id, "sb1");
        assert_true(a.pty && a.options.stdin_open);
        assert_string_equal(a.options.command, "'sleep' '9'");
        assert_string_equal(a.options.cwd, "/tmp");
        assert_string_equal(a.options.env[0], "A=1");
        assert_int_equal(a.options.timeout_ms, 500);
        forgectl_start_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_start, &a, "start", "sb1"), -EINVAL);
        forgectl_start_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_start, &a, "start", "--", "x"), -EINVAL);
        forgectl_start_args_done(&a);
        assert_int_equal(PARSE(forgectl_parse_start, &a, "start", "-h"), FORGECTL_HELP);
        forgectl_start_args_done(&a);
}

static void test_parse_logs_kill_shell(void **state) {
        ForgectlLogsArgs l;
        ForgectlKillArgs k;
        ForgectlShellArgs s;

        assert_int_equal(PARSE(forgectl_parse_logs, &l, "logs", "-f", "sb1", "42"), 0);
        assert_true(l.follow);
        assert_string_equal(l.id, "sb1");
        assert_int_equal(l.pid, 42);
        assert_int_equal(PARSE(forgectl_parse_logs, &l, "logs", "sb1", "42"), 0);
        assert_false(l.follow);
        assert_int_equal(PARSE(forgectl_parse_logs, &l, "logs", "sb1"), -EINVAL);
        assert_int_equal(PARSE(forgectl_parse_logs, &l, "logs", "sb1", "4x"), -EINVAL);
        assert_int_equal(PARSE(forgectl_parse_logs, &l, "logs", "sb1", "0"), -EINVAL);
        assert_int_equal(PARSE(forgectl_parse_logs, &l, "logs", "sb1", "1", "2"), -EINVAL);

        assert_int_equal(PARSE(forgectl_parse_kill, &k, "kill", "sb1", "7"), 0);
        assert_int_equal(k.signal, 0);
        assert_int_equal(PARSE(forgectl_parse_kill, &k, "kill", "-s", "TERM", "sb1", "7"), 0);
        assert_int_equal(k.signal, SIGTERM);
        assert_int_equal(PARSE(forgectl_parse_kill, &k, "kill", "sb1", "7", "-s", "sighup"), 0);
        assert_int_equal(k.signal, SIGHUP);
        assert_int_equal(PARSE(forgectl_parse_kill, &k, "kill", "--signal=9", "sb1", "7"), 0);
        assert_int_equal(k.signal, 9);
        assert_int_equal(PARSE(forgectl_parse_kill, &k, "kill", "-s", "NOPE", "sb1", "7"), -EINVAL);
        assert_int_equal(PARSE(forgectl_parse_kill, &k, "kill", "-s", "0", "sb1", "7"), -EINVAL);

        assert_int_equal(PARSE(forgectl_parse_shell, &s, "shell", "-e", "A=1", "--cwd", "/srv", "sb1"), 0);
        assert_string_equal(s.id, "sb1");
        assert_string_equal(s.cwd, "/srv");
        assert_string_equal(s.env[0], "A=1");
        forgectl_shell_args_done(&s);
        assert_int_equal(PARSE(forgectl_parse_shell, &s, "shell"), -EINVAL);
        forgectl_shell_args_done(&s);
        assert_int_equal(PARSE(forgectl_parse_shell, &s, "shell", "sb1", "extra"), -EINVAL);
        forgectl_shell_args_done(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_make_raw),         cmocka_unit_test(test_raw_enter_and_restore),
                cmocka_unit_test(test_parse_exec_tty),   cmocka_unit_test(test_parse_start),
                cmocka_unit_test(test_parse_logs_kill_shell),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
