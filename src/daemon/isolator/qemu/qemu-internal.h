/* Shared between the files of the qemu isolator; nothing outside isolator/qemu includes
 * it but its unit tests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/isolator/isolator.h"

#define QEMU_BINDS_MAX 8
/* Memory and writable disk of a VM whose limits say "no limit". */
#define QEMU_MEMORY_MB_DEFAULT 512
#define QEMU_DISK_MB_DEFAULT 4096

/* Everything one QEMU command line is made of; plain data, decided by qemu.c. */
typedef struct QemuArgs {
        const char *id;
        const char *dir;    /* the sandbox dir: pidfile, console log, writable disk */
        const char *kernel; /* guest parts (images/vm/build-guest.sh) */
        const char *initramfs;
        const char *image_disk;                   /* the image's read-only ext4 */
        const char *bind_disks[QEMU_BINDS_MAX];   /* read-only ext4 of each bind */
        const char *bind_targets[QEMU_BINDS_MAX]; /* where each is mounted in the guest */
        size_t n_binds;
        bool kvm;
        uint64_t tsc_khz; /* TCG: the host's TSC rate, which the guest cannot calibrate */
        int64_t cpus;
        int64_t memory_mb;
        int agent_fd, qmp_fd; /* listening sockets QEMU gets as these fds */
        uid_t uid;            /* QEMU drops to uid:uid once its devices are open; 0 = stays */
} QemuArgs;

/* qemu-argv.c: a NULL-terminated argv (argv[0] is the program name), freed with
 * proto_strv_free(). */
int qemu_argv_build(const QemuArgs *args, char ***ret);

/* qemu-qmp.c: runs one QMP command ("stop", "cont", "quit") on <dir>/qmp.sock. */
int qmp_execute(const char *dir, const char *command);
/* One QMP message: 0 for a command's return, -EIO for its error, 1 for anything else
 * (the greeting, events); -EBADMSG if it is no JSON object. */
int qmp_reply_classify(const char *line, size_t len);

/* qemu-disk.c */
/* <vm_dir>/images/<name>.ext4 from the image's rootfs, made once and again when the
 * rootfs is newer; returns its path in ret (PATH_MAX). */
int qemu_image_disk(const char *vm_dir, const SandboxPlan *plan, char *ret, ForgeError *err);
/* <dir>/disk.img, the per-VM writable ext4 (made once, it persists). */
int qemu_writable_disk(const SandboxPlan *plan, ForgeError *err);

/* qemu-pid.c */
/* The pid of the sandbox's QEMU (the holder of the lock QEMU takes on <dir>/qemu.pid),
 * 0 if none runs. A lock cannot outlive its process, so a recycled pid never matches. */
pid_t qemu_pid(const char *dir);
/* QEMUs started for <sandboxes_dir>/<id> (their -pidfile) whose id known() rejects. */
int qemu_reap_unknown(const char *sandboxes_dir, bool (*known)(const char *id, void *userdata),
                      void *userdata);
/* Kills the sandbox's QEMU and waits for it to be gone. */
int qemu_kill(const char *dir);
