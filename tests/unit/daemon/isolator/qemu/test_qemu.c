/* The qemu isolator's pure pieces: the command line, QMP message classification, and
 * finding (and reaping) a QEMU by its pidfile lock and command line, with stand-in
 * processes instead of real VMs (test_qemu.py boots real ones). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
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

#include "basic/macros.h"
#include "basic/rm-rf.h"
#include "daemon/isolator/qemu/qemu-internal.h"
#include "proto/decode.h"

/* snprintf that fails the test instead of truncating. */
static void _printf_(3, 4) xsnprintf(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        assert_true(n >= 0 && (size_t) n < size);
}

static QemuArgs args_default(void) {
        return (QemuArgs){
                .id = "abc123",
                .dir = "/state/sandboxes/abc123",
                .kernel = "/state/vm/vmlinuz",
                .initramfs = "/state/vm/initramfs.img",
                .image_disk = "/state/vm/images/host.ext4",
                .bind_disks = {"/state/vm/binds/usr.ext4"},
                .bind_targets = {"/usr"},
                .n_binds = 1,
                .tsc_khz = 2096016,
                .cpus = 2,
                .memory_mb = 384,
                .agent_fd = 3,
                .qmp_fd = 4,
                .disk_rw_fd = 5,
                .disk_ro_fd = 6,
                .incoming_fd = -1,
                .uid = 100000,
        };
}

/* The value after flag (the n-th occurrence), or NULL. */
static const char *arg_after(char **argv, const char *flag, int n) {
        for (size_t i = 0; argv[i] && argv[i + 1]; i++)
                if (strcmp(argv[i], flag) == 0 && n-- == 0)
                        return argv[i + 1];
        return NULL;
}

static bool has_arg(char **argv, const char *arg) {
        for (size_t i = 0; argv[i]; i++)
                if (strcmp(argv[i], arg) == 0)
                        return true;
        return false;
}

static void test_argv_tcg(void **state) {
        QemuArgs a = args_default();
        char **argv = NULL;

        a.pids = 64;
        assert_int_equal(qemu_argv_build(&a, &argv), 0);
        assert_string_equal(argv[0], "qemu-system-x86_64");
        /* the translation cache bounded, for the cgroup's memory limit */
        assert_string_equal(arg_after(argv, "-accel", 0), "tcg,tb-size=256");
        assert_string_equal(arg_after(argv, "-M", 0), "microvm,x-option-roms=off");
        assert_string_equal(arg_after(argv, "-smp", 0), "2");
        assert_string_equal(arg_after(argv, "-m", 0), "384M");
        assert_string_equal(arg_after(argv, "-nic", 0), "none");
        assert_true(has_arg(argv, "-nodefaults"));
        assert_true(has_arg(argv, "-daemonize"));
        assert_string_equal(arg_after(argv, "-runas", 0), "100000:100000");
        assert_string_equal(arg_after(argv, "-sandbox", 0), "on,obsolete=deny,resourcecontrol=deny");
        assert_string_equal(arg_after(argv, "-pidfile", 0), "/state/sandboxes/abc123/qemu.pid");
        assert_string_equal(arg_after(argv, "-serial", 0), "file:/state/sandboxes/abc123/console.log");
        assert_string_equal(
                arg_after(argv, "-append", 0),
                "console=ttyS0 panic=-1 quiet forge.hostname=abc123 forge.binds=/usr forge.pids=64 "
                "tsc_early_khz=2096016 tsc=reliable");
        assert_string_equal(arg_after(argv, "-drive", 0),
                            "id=image,file=/state/vm/images/host.ext4,format=raw,if=none,readonly=on");
        /* the writable disk: both fds in one set, no locking between them */
        assert_string_equal(arg_after(argv, "-add-fd", 0), "fd=5,set=1");
        assert_string_equal(arg_after(argv, "-add-fd", 1), "fd=6,set=1");
        assert_string_equal(arg_after(argv, "-drive", 1),
                            "id=disk,file=/dev/fdset/1,format=raw,if=none,file.locking=off");
        assert_string_equal(arg_after(argv, "-drive", 2),
                            "id=bind0,file=/state/vm/binds/usr.ext4,format=raw,if=none,readonly=on");
        assert_string_equal(arg_after(argv, "-device", 2), "virtio-blk-device,drive=bind0,serial=bind0");
        assert_string_equal(arg_after(argv, "-chardev", 0), "socket,id=agent,fd=3,server=on,wait=off");
        assert_string_equal(arg_after(argv, "-chardev", 1), "socket,id=qmp,fd=4,server=on,wait=off");
        assert_string_equal(arg_after(argv, "-device", 4), "virtserialport,chardev=agent,name=forge.agent");
        assert_null(arg_after(argv, "-incoming", 0)); /* a boot */
        proto_strv_free(argv);
}

/* A restore loads the saved machine from the fd it was given instead of booting; the
 * rest of the command line is the boot's, which the saved devices must match. */
static void test_argv_incoming(void **state) {
        QemuArgs a = args_default();
        char **boot = NULL, **argv = NULL;
        size_t i, j;

        assert_int_equal(qemu_argv_build(&a, &boot), 0);
        a.incoming_fd = 7;
        assert_int_equal(qemu_argv_build(&a, &argv), 0);
        assert_string_equal(arg_after(argv, "-incoming", 0), "fd:7");
        for (i = 0, j = 0; boot[i]; i++, j++) {
                if (strcmp(argv[j], "-incoming") == 0)
                        j += 2;
                assert_string_equal(boot[i], argv[j]);
        }
        proto_strv_free(boot);
        proto_strv_free(argv);
}

static void test_argv_kvm_and_no_binds(void **state) {
        QemuArgs a = args_default();
        char **argv = NULL;

        a.kvm = true;
        a.n_binds = 0;
        a.uid = 0;
        assert_int_equal(qemu_argv_build(&a, &argv), 0);
        assert_string_equal(arg_after(argv, "-accel", 0), "kvm");
        assert_string_equal(arg_after(argv, "-cpu", 0), "host");
        /* KVM calibrates the TSC itself; no binds, no forge.binds=; no pids limit, no forge.pids= */
        assert_string_equal(arg_after(argv, "-append", 0),
                            "console=ttyS0 panic=-1 quiet forge.hostname=abc123");
        assert_null(arg_after(argv, "-drive", 2));
        assert_null(arg_after(argv, "-runas", 0)); /* no uid: QEMU stays as it was started */
        proto_strv_free(argv);
}

/* A ',' inside an option value ends it for QEMU unless doubled. */
static void test_argv_escapes_commas(void **state) {
        QemuArgs a = args_default();
        char **argv = NULL;

        a.image_disk = "/odd,dir/host.ext4";
        assert_int_equal(qemu_argv_build(&a, &argv), 0);
        assert_string_equal(arg_after(argv, "-drive", 0),
                            "id=image,file=/odd,,dir/host.ext4,format=raw,if=none,readonly=on");
        proto_strv_free(argv);
}

static void test_qmp_replies(void **state) {
        const char *status = "{\"return\": {\"status\": \"inmigrate\", \"running\": false}}\n";
        json_t *value = NULL;

        assert_int_equal(qmp_reply_parse(status, strlen(status), &value), 0);
        assert_string_equal(json_string_value(json_object_get(value, "status")), "inmigrate");
        json_decref(value);
        status = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}";
        assert_int_equal(qmp_reply_parse(status, strlen(status), &value), -EIO);
        assert_string_equal(json_string_value(json_object_get(value, "desc")), "no");
        json_decref(value);
        status = "{\"event\": \"VSERPORT_CHANGE\", \"data\": {\"id\": \"forge-agent\", \"open\": false}}";
        assert_int_equal(qmp_reply_parse(status, strlen(status), &value), 1);
        assert_string_equal(json_string_value(json_object_get(value, "event")), "VSERPORT_CHANGE");
        json_decref(value);
        assert_int_equal(qmp_reply_parse("[]", 2, &value), -EBADMSG);
        assert_null(value);
#define CLASSIFY(s) qmp_reply_parse(s, strlen(s), NULL)
        assert_int_equal(CLASSIFY("{\"return\": {}}\r\n"), 0);
        assert_int_equal(CLASSIFY("{\"return\": {\"status\": \"paused\"}, \"id\": 1}"), 0);
        assert_int_equal(CLASSIFY("{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}"), -EIO);
        assert_int_equal(CLASSIFY("{\"QMP\": {\"version\": {}, \"capabilities\": []}}"), 1);
        assert_int_equal(CLASSIFY("{\"event\": \"STOP\", \"timestamp\": {}}"), 1);
        assert_int_equal(CLASSIFY("[1, 2]"), -EBADMSG);
        assert_int_equal(CLASSIFY("{\"return\": "), -EBADMSG);
        assert_int_equal(CLASSIFY(""), -EBADMSG);
#undef CLASSIFY
}

typedef struct Fixture {
        char root[64]; /* a state dir */
        char sandboxes[PATH_MAX];
        char dir[PATH_MAX]; /* <root>/sandboxes/<id> */
        char pidfile[PATH_MAX];
        pid_t child;
        int child_stdin;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        xsnprintf(f->root, sizeof(f->root), "/tmp/forge-qemu-unit-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        xsnprintf(f->sandboxes, sizeof(f->sandboxes), "%s/sandboxes", f->root);
        xsnprintf(f->dir, sizeof(f->dir), "%s/q%d", f->sandboxes, getpid());
        xsnprintf(f->pidfile, sizeof(f->pidfile), "%s/qemu.pid", f->dir);
        assert_int_equal(mkdir(f->sandboxes, 0700), 0);
        assert_int_equal(mkdir(f->dir, 0700), 0);
        f->child = -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        if (f->child > 0) {
                kill(f->child, SIGKILL);
                waitpid(f->child, NULL, 0);
        }
        rm_rf(f->root);
        free(f);
        return 0;
}

/* A saved machine loads only into the same one: machine.json, written at launch and
 * carried by the snapshot, against what a restore would start. */
static void test_snapshot_machine_check(void **state) {
        Fixture *f = *state;
        char image[PATH_MAX], path[PATH_MAX];
        QemuArgs a = args_default();
        SandboxPlan plan = {.from_dir = f->dir};
        ForgeError err = {0};
        int fd;

        xsnprintf(image, sizeof(image), "%s/host.ext4", f->root);
        fd = open(image, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
        a.dir = f->dir;
        a.image_disk = image;
        a.n_binds = 0;
        assert_int_equal(qemu_snapshot_has_memory(&plan), 0);
        assert_int_equal(qemu_machine_write(&a, "/bin/sh"), 0);
        assert_int_equal(qemu_snapshot_check(&plan, &a, "/bin/sh", &err), 0);
        a.memory_mb = 512;
        assert_int_equal(qemu_snapshot_check(&plan, &a, "/bin/sh", &err), -EXDEV);
        assert_string_equal(err.code, "snapshot_incompatible");
        assert_non_null(strstr(err.message, "'memory_mb'"));
        a.memory_mb = 384;
        err = (ForgeError){0};
        assert_int_equal(qemu_snapshot_check(&plan, &a, "/bin/true", &err), -EXDEV);
        assert_non_null(strstr(err.message, "'qemu'"));
        /* the image disk rebuilt (a new file in its place): its bytes may differ */
        assert_int_equal(unlink(image), 0);
        fd = open(image, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0 && write(fd, "x", 1) == 1);
        close(fd);
        err = (ForgeError){0};
        assert_int_equal(qemu_snapshot_check(&plan, &a, "/bin/sh", &err), -EXDEV);
        assert_non_null(strstr(err.message, "'disks'"));
        xsnprintf(path, sizeof(path), "%s/memory", f->dir);
        fd = open(path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(qemu_snapshot_has_memory(&plan), 1);
}

static void touch(const char *dir, const char *name) {
        char path[PATH_MAX];
        int fd;

        xsnprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
}

/* Only a complete hibernation (renamed into place) counts; a half-saved one does not,
 * and dropping removes both. */
static void test_hibernation_dir(void **state) {
        Fixture *f = *state;
        SandboxPlan plan = {.dir = f->dir};
        char path[PATH_MAX];

        assert_false(qemu_is_hibernated(&plan));
        xsnprintf(path, sizeof(path), "%s/hibernation.tmp", f->dir);
        assert_int_equal(mkdir(path, 0700), 0);
        touch(path, "memory");
        assert_false(qemu_is_hibernated(&plan));
        assert_int_equal(qemu_hibernation_path(&plan, path), 0);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_false(qemu_is_hibernated(&plan)); /* a dir without its memory file */
        touch(path, "memory");
        assert_true(qemu_is_hibernated(&plan));
        assert_int_equal(qemu_hibernation_drop(&plan), 0);
        assert_false(qemu_is_hibernated(&plan));
        assert_int_equal(access(path, F_OK), -1);
        xsnprintf(path, sizeof(path), "%s/hibernation.tmp", f->dir);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(qemu_hibernation_drop(&plan), 0); /* nothing there: fine */
}

/* A stand-in QEMU: locks the pidfile like QEMU does, and shows "-pidfile <path>" in a
 * command line whose argv[0] names qemu-system. It blocks reading stdin. */
static void stand_in_start(Fixture *f, bool lock) {
        int in[2], ready[2];
        char byte;

        assert_int_equal(pipe(in), 0);
        assert_int_equal(pipe(ready), 0);
        f->child = fork();
        assert_true(f->child >= 0);
        if (f->child == 0) {
                int fd = open(f->pidfile, O_RDWR | O_CREAT, 0600);
                if (fd < 0 || (lock && lockf(fd, F_TLOCK, 0) < 0))
                        _exit(1);
                dup2(in[0], 0);
                close(in[1]);
                /* the lock belongs to the process and survives exec */
                if (write(ready[1], "r", 1) != 1)
                        _exit(1);
                execl("/bin/sh", "qemu-system-x86_64", "-c", "read line", "-pidfile", f->pidfile,
                      (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(ready[1]);
        f->child_stdin = in[1];
        assert_int_equal(read(ready[0], &byte, 1), 1);
        close(ready[0]);
        usleep(100 * 1000); /* until the exec is done and /proc shows the new argv */
}

static void test_pid_from_lock(void **state) {
        Fixture *f = *state;

        assert_int_equal(qemu_pid(f->dir), 0); /* no pidfile */
        stand_in_start(f, false);
        assert_int_equal(qemu_pid(f->dir), 0); /* a pidfile nobody locks */
        kill(f->child, SIGKILL);
        waitpid(f->child, NULL, 0);
        stand_in_start(f, true);
        assert_int_equal(qemu_pid(f->dir), f->child);
        assert_int_equal(qemu_kill(f->dir), 0);
        assert_int_equal(qemu_pid(f->dir), 0);
        waitpid(f->child, NULL, 0);
        f->child = -1;
}

static const char *known_id;

static bool known(const char *id, void *userdata) {
        return known_id && strcmp(id, known_id) == 0;
}

static void test_reap_unknown(void **state) {
        Fixture *f = *state;
        const char *id = strrchr(f->dir, '/') + 1;

        stand_in_start(f, true);
        known_id = id;
        assert_int_equal(qemu_reap_unknown(f->sandboxes, known, NULL), 0);
        assert_int_equal(kill(f->child, 0), 0); /* known: left alone */
        known_id = NULL;
        char other[PATH_MAX];
        xsnprintf(other, sizeof(other), "%s-other", f->sandboxes);
        assert_int_equal(qemu_reap_unknown(other, known, NULL), 0);
        assert_int_equal(kill(f->child, 0), 0); /* another state dir's: left alone */
        /* unknown here: killed, and waited for until its lock is gone */
        pid_t child = f->child;
        int status;
        assert_int_equal(qemu_reap_unknown(f->sandboxes, known, NULL), 0);
        assert_int_equal(qemu_pid(f->dir), 0);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        f->child = -1;
}

/* The host cgroup's memory: the guest's -m plus QEMU's own (docs/isolator-qemu.md,
 * "Limits"): under TCG the translation cache on top. */
static void test_memory_limit(void **state) {
        assert_int_equal(qemu_memory_limit_mb(384, false), 384 + 192 + 24 + 256);
        assert_int_equal(qemu_memory_limit_mb(384, true), 384 + 192 + 24);
        assert_int_equal(qemu_memory_limit_mb(512, false), 512 + 192 + 32 + 256);
        assert_int_equal(qemu_memory_limit_mb(8192, true), 8192 + 192 + 512);
        /* always room for more than the guest and the cache */
        for (int64_t mb = 64; mb <= 65536; mb *= 2)
                assert_true(qemu_memory_limit_mb(mb, false) >=
                            mb + QEMU_TCG_TB_SIZE_MB + QEMU_MEMORY_BASE_MB);
}

static void test_cgroup_limits(void **state) {
        QemuArgs a = args_default();
        SandboxLimits l;

        qemu_cgroup_limits(&a, 1500, &l);
        assert_int_equal(l.cpus_milli, 1500); /* limits.cpus, not the rounded-up vCPUs */
        assert_int_equal(l.memory_mb, qemu_memory_limit_mb(384, false));
        assert_int_equal(l.pids, QEMU_PIDS_BASE + 2);
        assert_int_equal(l.disk_mb, 0); /* the disk is a file, not a cgroup's */
        a.kvm = true;
        a.cpus = 8;
        a.memory_mb = 2048;
        qemu_cgroup_limits(&a, 0, &l);
        assert_int_equal(l.cpus_milli, 0);
        assert_int_equal(l.memory_mb, qemu_memory_limit_mb(2048, true));
        assert_int_equal(l.pids, QEMU_PIDS_BASE + 8);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_memory_limit),
                cmocka_unit_test(test_cgroup_limits),
                cmocka_unit_test(test_argv_tcg),
                cmocka_unit_test(test_argv_kvm_and_no_binds),
                cmocka_unit_test(test_argv_escapes_commas),
                cmocka_unit_test(test_argv_incoming),
                cmocka_unit_test(test_qmp_replies),
                cmocka_unit_test_setup_teardown(test_snapshot_machine_check, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hibernation_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pid_from_lock, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reap_unknown, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
