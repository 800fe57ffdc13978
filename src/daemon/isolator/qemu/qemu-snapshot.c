/* A VM saved whole: QEMU's migration stream written to a file (memory, CPU and device
 * state), the writable disk as it stood at that moment, and machine.json, what the
 * machine was (size, accelerator, QEMU binary, read-only disks). A sandbox made from it
 * starts QEMU with -incoming on that file instead of booting: its processes go on where
 * they were (docs/isolator-qemu.md, "Snapshots").
 *
 * QEMU 7.2 (Debian 12) has no "file:" migration URI; the file travels as an fd (QMP
 * getfd and "fd:NAME" to save, -incoming fd:N to load), so QEMU, running as the
 * sandbox's unprivileged uid, never opens a path in forged's state dir. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macros.h"
#include "basic/rm-rf.h"
#include "basic/time-util.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/qemu/qemu-internal.h"

#define MEMORY_FILE "memory"
#define MACHINE_FILE "machine.json"
#define FDNAME "forge-snapshot"
/* In the sandbox dir: a hibernated VM's machine, and the one being saved. */
#define HIBERNATION_DIR "hibernation"
#define HIBERNATION_TMP "hibernation.tmp"
/* Saving and loading run at disk speed (about 100 MB for a VM that ran python): a
 * minute is far beyond either, even on a loaded host. */
#define MIGRATE_TIMEOUT_MS 120000
#define MIGRATE_POLL_MS 20
/* No throttle: the VM is stopped, nobody waits on the guest but the client. */
#define MIGRATE_MAX_BANDWIDTH (1LL << 40)

/* A file as the machine saw it: replaced or rewritten, it reads differently. */
static json_t *file_identity(const char *path) {
        struct stat st;

        if (stat(path, &st) < 0)
                return json_null();
        return json_sprintf("%llu:%lld:%lld.%09ld", (unsigned long long) st.st_ino, (long long) st.st_size,
                            (long long) st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* What a saved machine needs again to be loaded: the same size and accelerator, the
 * same QEMU, and read-only disks with the very bytes its page cache holds. */
static json_t *machine_describe(const QemuArgs *args, const char *qemu) {
        json_t *disks = json_pack("{s:o}", "image", file_identity(args->image_disk));

        for (size_t i = 0; disks && i < args->n_binds; i++) {
                char serial[32];
                snprintf(serial, sizeof(serial), "bind%zu", i);
                json_object_set_new(disks, serial, file_identity(args->bind_disks[i]));
        }
        return json_pack("{s:i, s:I, s:I, s:s, s:o, s:o*}", "layout", QEMU_MACHINE_LAYOUT, "memory_mb",
                         (json_int_t) args->memory_mb, "cpus", (json_int_t) args->cpus, "accel",
                         args->kvm ? "kvm" : "tcg", "qemu", file_identity(qemu), "disks", disks);
}

int qemu_machine_write(const QemuArgs *args, const char *qemu) {
        char path[PATH_MAX], tmp[PATH_MAX];
        json_t *machine = machine_describe(args, qemu);
        int r = -ENOMEM;

        if (path_join(path, sizeof(path), args->dir, MACHINE_FILE) < 0 ||
            path_join(tmp, sizeof(tmp), args->dir, MACHINE_FILE ".tmp") < 0)
                r = -ENAMETOOLONG;
        else if (machine)
                r = json_dump_file(machine, tmp, JSON_COMPACT) < 0 ? -EIO : 0;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        json_decref(machine);
        return r;
}

int qemu_snapshot_has_memory(const SandboxPlan *plan) {
        char path[PATH_MAX];

        if (!plan->from_dir || path_join(path, sizeof(path), plan->from_dir, MEMORY_FILE) < 0)
                return 0;
        return access(path, F_OK) >= 0;
}

int qemu_snapshot_check(const SandboxPlan *plan, const QemuArgs *args, const char *qemu, ForgeError *err) {
        char path[PATH_MAX];
        json_t *saved = NULL, *now = machine_describe(args, qemu), *value;
        const char *key, *differs = NULL;

        if (path_join(path, sizeof(path), plan->from_dir, MACHINE_FILE) >= 0)
                saved = json_load_file(path, 0, NULL);
        if (!saved || !now) {
                json_decref(saved);
                json_decref(now);
                return forge_error_set(err, EBADMSG, "isolator_failed",
                                       "the snapshot's %s is missing or damaged", MACHINE_FILE);
        }
        json_object_foreach(now, key, value) if (!differs && !json_equal(value, json_object_get(saved, key)))
                differs = key;
        if (differs)
                forge_error_set(
                        err, EXDEV, "snapshot_incompatible",
                        "the snapshot's machine cannot be loaded here: its '%s' differs (guest parts "
                        "rebuilt, QEMU upgraded, or other limits)",
                        differs);
        json_decref(saved);
        json_decref(now);
        return differs ? -EXDEV : 0;
}

int qemu_snapshot_open_memory(const SandboxPlan *plan, int *ret_fd) {
        char path[PATH_MAX];
        int r = path_join(path, sizeof(path), plan->from_dir, MEMORY_FILE);

        if (r < 0)
                return r;
        *ret_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        return *ret_fd < 0 ? -errno : 0;
}

/* query-migrate until the stream is complete; QEMU's reason when it failed. */
static int migrate_wait(QmpConn *c, ForgeError *err) {
        int64_t deadline = time_mono_ms() + MIGRATE_TIMEOUT_MS;

        for (;;) {
                char status[32] = "", desc[160] = "";
                json_t *info = NULL;
                int r = qmp_call(c, "query-migrate", NULL, -1, &info);
                const char *s = json_string_value(json_object_get(info, "status"));
                const char *d = json_string_value(json_object_get(info, "error-desc"));

                snprintf(status, sizeof(status), "%s", s ? s : "");
                snprintf(desc, sizeof(desc), "%s", d ? d : status);
                json_decref(info);
                if (r < 0)
                        return forge_error_set(err, -r, "isolator_failed",
                                               "cannot follow QEMU saving the VM: %s", strerror(-r));
                if (strcmp(status, "completed") == 0)
                        return 0;
                if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0)
                        return forge_error_set(err, EIO, "isolator_failed", "QEMU could not save the VM: %s",
                                               desc);
                if (time_mono_ms() > deadline)
                        return forge_error_set(err, ETIMEDOUT, "isolator_failed",
                                               "QEMU did not save the VM in time");
                time_sleep_ms(MIGRATE_POLL_MS);
        }
}

/* A VM that was saved before and not run since is in "postmigrate", which QEMU 7.2 will
 * not save again: it runs for a moment (cont, stop) to be plainly paused. */
static int vm_make_savable(QmpConn *c, ForgeError *err) {
        char status[32];
        int r = qmp_status(c, status, sizeof(status));

        if (r >= 0 && strcmp(status, "postmigrate") == 0) {
                r = qmp_call(c, "cont", NULL, -1, NULL);
                if (r >= 0)
                        r = qmp_call(c, "stop", NULL, -1, NULL);
                if (r >= 0)
                        r = qmp_status(c, status, sizeof(status));
        }
        if (r < 0)
                return forge_error_set(err, -r, "isolator_failed", "cannot make the VM savable: %s",
                                       r == -EIO ? c->error : strerror(-r));
        if (strcmp(status, "paused") != 0)
                return forge_error_set(err, EBUSY, "isolator_failed", "the VM is %s, not paused", status);
        return 0;
}

/* The migration stream into dest/memory. */
static int memory_save(QmpConn *c, const char *dest, ForgeError *err) {
        _cleanup_close_ int fd = -1;
        char path[PATH_MAX];
        json_t *args;
        int r;

        if (path_join(path, sizeof(path), dest, MEMORY_FILE) < 0)
                return forge_error_set(err, ENAMETOOLONG, "isolator_failed", "snapshot path too long");
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return forge_error_set(err, errno, "isolator_failed", "cannot create %s: %m", path);
        args = json_pack("{s:s}", "fdname", FDNAME);
        r = qmp_call(c, "getfd", args, fd, NULL);
        json_decref(args);
        if (r >= 0) {
                args = json_pack("{s:I}", "max-bandwidth", (json_int_t) MIGRATE_MAX_BANDWIDTH);
                r = qmp_call(c, "migrate-set-parameters", args, -1, NULL);
                json_decref(args);
        }
        if (r >= 0) {
                args = json_pack("{s:s}", "uri", "fd:" FDNAME);
                r = qmp_call(c, "migrate", args, -1, NULL);
                json_decref(args);
        }
        if (r < 0)
                return forge_error_set(err, -r, "isolator_failed", "QEMU refused to save the VM: %s",
                                       r == -EIO ? c->error : strerror(-r));
        r = migrate_wait(c, err);
        if (r >= 0 && fsync(fd) < 0)
                r = forge_error_set(err, errno, "isolator_failed", "cannot write %s: %m", path);
        return r;
}

/* The disk after the memory: QEMU flushed it when it stopped the VM and finished the
 * stream, so it holds what the saved guest believes is written. */
static int files_save(const SandboxPlan *plan, const char *dest, ForgeError *err) {
        static const char *const names[] = {"disk.img", MACHINE_FILE};
        char from[PATH_MAX], to[PATH_MAX];

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                int r = path_join(from, sizeof(from), plan->dir, names[i]);
                if (r >= 0)
                        r = path_join(to, sizeof(to), dest, names[i]);
                if (r >= 0)
                        r = isolator_file_copy(from, to);
                if (r < 0)
                        return forge_error_set(err, r, "isolator_failed", "cannot copy the VM's %s: %s",
                                               names[i], strerror(-r));
        }
        return 0;
}

/* A hibernated VM's machine is a file already: copied as it is. */
static int hibernated_memory_copy(const SandboxPlan *plan, const char *dest, ForgeError *err) {
        char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
        int r = qemu_hibernation_path(plan, dir);

        if (r >= 0)
                r = path_join(from, sizeof(from), dir, MEMORY_FILE);
        if (r >= 0)
                r = path_join(to, sizeof(to), dest, MEMORY_FILE);
        if (r >= 0)
                r = isolator_file_copy(from, to);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed",
                                       "cannot copy the hibernated VM's memory: %s", strerror(-r));
        return 0;
}

/* The paused VM's migration stream into dest/memory, through its QEMU. */
static int machine_save(const SandboxPlan *plan, const char *dest, ForgeError *err) {
        QmpConn c;
        int r = qmp_open(plan->dir, &c);

        if (r < 0)
                return forge_error_set(err, -r, "isolator_failed", "cannot reach the VM's QEMU: %s",
                                       strerror(-r));
        r = vm_make_savable(&c, err);
        if (r >= 0)
                r = memory_save(&c, dest, err);
        qmp_close(&c);
        return r;
}

int qemu_snapshot(const SandboxPlan *plan, const char *dest, ForgeError *err) {
        int r;

        if (qemu_pid(plan->dir) <= 0 && qemu_is_hibernated(plan))
                r = hibernated_memory_copy(plan, dest, err);
        else
                r = machine_save(plan, dest, err);
        return r < 0 ? r : files_save(plan, dest, err);
}

int qemu_snapshot_resume(const SandboxPlan *plan, ForgeError *err) {
        int64_t deadline = time_mono_ms() + MIGRATE_TIMEOUT_MS;
        char status[32] = "";
        QmpConn c;
        int r = qmp_open(plan->dir, &c);

        /* A stream QEMU cannot load makes it exit; daemonized, it says why to no one. */
        while (r >= 0 && (r = qmp_status(&c, status, sizeof(status))) >= 0 &&
               strcmp(status, "inmigrate") == 0) {
                if (time_mono_ms() > deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                time_sleep_ms(MIGRATE_POLL_MS);
        }
        /* It was saved paused, and comes back paused. */
        if (r >= 0 && strcmp(status, "running") != 0)
                r = qmp_call(&c, "cont", NULL, -1, NULL);
        qmp_close(&c);
        if (r < 0)
                return forge_error_set(err, -r, "isolator_failed",
                                       "QEMU could not load the snapshot (VM state %s): %s",
                                       status[0] ? status : "unknown",
                                       r == -EIO          ? c.error
                                       : r == -ECONNRESET ? "QEMU exited"
                                                          : strerror(-r));
        return 0;
}

int qemu_hibernation_path(const SandboxPlan *plan, char *ret) {
        return path_join(ret, PATH_MAX, plan->dir, HIBERNATION_DIR);
}

bool qemu_is_hibernated(const SandboxPlan *plan) {
        char dir[PATH_MAX], path[PATH_MAX];

        return qemu_hibernation_path(plan, dir) >= 0 &&
               path_join(path, sizeof(path), dir, MEMORY_FILE) >= 0 && access(path, F_OK) >= 0;
}

int qemu_hibernation_drop(const SandboxPlan *plan) {
        char path[PATH_MAX];
        int r = path_join(path, sizeof(path), plan->dir, HIBERNATION_TMP);

        if (r >= 0)
                r = rm_rf(path);
        if (r >= 0 || r == -ENOENT)
                r = qemu_hibernation_path(plan, path);
        if (r >= 0)
                r = rm_rf(path);
        return r == -ENOENT ? 0 : r;
}

/* Into hibernation.tmp, renamed whole once on disk: a hibernation dir is complete, so
 * that a forged that dies while saving leaves a VM that is paused, not one half saved. */
int qemu_hibernation_save(const SandboxPlan *plan, ForgeError *err) {
        char tmp[PATH_MAX], dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
        int r = qemu_hibernation_drop(plan);

        if (r >= 0)
                r = path_join(tmp, sizeof(tmp), plan->dir, HIBERNATION_TMP);
        if (r >= 0)
                r = qemu_hibernation_path(plan, dir);
        if (r >= 0 && mkdir(tmp, 0700) < 0)
                r = -errno;
        if (r < 0)
                return forge_error_set(err, -r, "isolator_failed",
                                       "cannot make the VM's hibernation dir: %s", strerror(-r));
        r = machine_save(plan, tmp, err);
        if (r < 0) {
                /* A full disk, say: the half-written stream goes now, not at the next resume. */
                (void) rm_rf(tmp);
                return r;
        }
        r = path_join(from, sizeof(from), plan->dir, MACHINE_FILE);
        if (r >= 0)
                r = path_join(to, sizeof(to), tmp, MACHINE_FILE);
        if (r >= 0)
                r = isolator_file_copy(from, to);
        if (r >= 0 && rename(tmp, dir) < 0)
                r = -errno;
        if (r < 0)
                (void) rm_rf(tmp);
        else
                r = fsync_directory(plan->dir);
        if (r < 0)
                return forge_error_set(err, -r, "isolator_failed", "cannot keep the VM's hibernation: %s",
                                       strerror(-r));
        return 0;
}
