/* isolator_command_run_held(): the program runs only after on_held returned, as the
 * very process on_held was given, with its fds in place; a failing on_held keeps it from
 * running at all and leaves no child behind. (The qemu isolator moves QEMU into its
 * cgroups there: test_qemu.py checks that for real.) */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/fs-util.h"
#include "basic/rm-rf.h"
#include "daemon/isolator/isolator-util.h"

typedef struct Fixture {
        char dir[64];
        char marker[PATH_MAX]; /* on_held writes the child's pid here */
        char out[PATH_MAX];    /* what the program printed */
        pid_t held;
        int on_held_result;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/forge-test-util-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->marker, sizeof(f->marker), "%s/marker", f->dir);
        snprintf(f->out, sizeof(f->out), "%s/out", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static int on_held(pid_t pid, void *userdata) {
        Fixture *f = userdata;
        char text[32];
        int fd;

        f->held = pid;
        if (f->on_held_result < 0)
                return f->on_held_result;
        /* The program prints this: had it run before, it would have found nothing. */
        fd = open(f->marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        snprintf(text, sizeof(text), "%ld", (long) pid);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        return 0;
}

/* The program sees the marker written while it was held, is the pid that was held, and
 * has the passed fd as fd 3. */
static void test_held_runs_after_on_held(void **state) {
        Fixture *f = *state;
        char script[PATH_MAX + 128], buf[256], expect[64];
        int out, pass;

        snprintf(script, sizeof(script), "cat %s; echo \" $$\"; cat <&3", f->marker);
        char *argv[] = {"sh", "-c", script, NULL};
        out = open(f->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        pass = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
        assert_true(out >= 0 && pass >= 0);
        assert_int_equal(isolator_command_run_held("/bin/sh", argv, out, &pass, 1, on_held, f), 0);
        close(out);
        close(pass);
        assert_int_equal(read_full_file(f->out, buf, sizeof(buf), NULL), 0);
        snprintf(expect, sizeof(expect), "%ld %ld\n", (long) f->held, (long) f->held);
        assert_true(strncmp(buf, expect, strlen(expect)) == 0);
        assert_non_null(strstr(buf + strlen(expect), "test_isolator_u")); /* our comm via fd 3 */
}

static void test_held_refused(void **state) {
        Fixture *f = *state;
        char script[PATH_MAX + 16];
        int out;

        snprintf(script, sizeof(script), "echo ran > %s", f->marker);
        char *argv[] = {"sh", "-c", script, NULL};
        out = open(f->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(out >= 0);
        f->on_held_result = -EPERM;
        assert_int_equal(isolator_command_run_held("/bin/sh", argv, out, NULL, 0, on_held, f), -EPERM);
        close(out);
        assert_true(f->held > 0);
        assert_int_equal(access(f->marker, F_OK), -1);         /* never ran */
        assert_int_equal(waitpid(f->held, NULL, WNOHANG), -1); /* reaped */
        assert_int_equal(errno, ECHILD);
}

static void test_held_failures(void **state) {
        Fixture *f = *state;
        char *argv[] = {"false", NULL};
        char *missing[] = {"missing", NULL};

        assert_int_equal(isolator_command_run_held("/bin/false", argv, -1, NULL, 0, on_held, f), -EIO);
        assert_int_equal(unlink(f->marker), 0);
        assert_int_equal(isolator_command_run_held("/nonexistent/program", missing, -1, NULL, 0, on_held, f),
                         -EIO);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_held_runs_after_on_held, setup, teardown),
                cmocka_unit_test_setup_teardown(test_held_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_held_failures, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
