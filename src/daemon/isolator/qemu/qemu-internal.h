/* Shared between the files of the qemu isolator; nothing outside isolator/qemu includes
 * it but its unit tests. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/isolator/isolator.h"

#define QEMU_BINDS_MAX 8
/* Memory and writable disk of a VM whose limits say "no limit". */
#define QEMU_MEMORY_MB_DEFAULT 512
#define QEMU_DISK_MB_DEFAULT 4096
/* Which devices the command line gives a VM, in which order: a saved machine loads only
 * into the same. Bump it with every change to qemu_argv_build()'s devices. */
#define QEMU_MACHINE_LAYOUT 1
/* The fd set (-add-fd set=) of the writable disk. */
#define QEMU_DISK_FDSET 1

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
        int64_t pids;         /* limits.pids, which the guest's init gives its commands' cgroup; 0 = none */
        int agent_fd, qmp_fd; /* listening sockets QEMU gets as these fds */
        /* The writable disk, opened by forged read-write and read-only (QEMU reopens it
         * read-only while migrating, then read-write again, as an unprivileged uid that
         * cannot open the path): both go into one fd set, QEMU picks by access mode. */
        int disk_rw_fd, disk_ro_fd;
        int incoming_fd; /* a saved machine (snapshot) QEMU loads instead of booting; -1 = boot */
        uid_t uid;       /* QEMU drops to uid:uid once its devices are open; 0 = stays */
} QemuArgs;

/* qemu-cgroup.c: the VM's host cgroup (docs/isolator-qemu.md, "Limits", has the
 * measurements behind these numbers). */
/* TCG's translation cache (-accel tcg,tb-size=): QEMU 7.2 would let it grow to
 * min(1 GiB, host RAM / 8), and it only grows until full; a fixed size bounds it. */
#define QEMU_TCG_TB_SIZE_MB 256
/* The rest of QEMU: heap, thread stacks, device and block-layer buffers, TCG's TLBs,
 * mapped libraries, kernel memory charged for it. Measured 80-90 MiB here; about twice
 * that, for what was not measured (more disks, more I/O threads' malloc arenas). */
#define QEMU_MEMORY_BASE_MB 192
/* What grows with the guest's size (TCG's TLBs, KVM's page tables, dirty bitmaps of a
 * snapshot): 1/16 of it, about four times what grew here from 384 to 1024 MiB. */
#define QEMU_MEMORY_PER_GUEST_DIV 16
/* Tasks QEMU may have on the host: main loop, RCU, its thread pool (64 at most per
 * AioContext in QEMU 7.2, we have one), migration, the parent of -daemonize for a
 * moment, and one per vCPU on top. A thread QEMU cannot create aborts it: generous. */
#define QEMU_PIDS_BASE 128
/* guest_mb (-m) plus QEMU's own overhead under KVM or TCG, in MiB. */
int64_t qemu_memory_limit_mb(int64_t guest_mb, bool kvm);
/* The cgroup limits of a VM started with args: cpus_milli (limits.cpus) as for ns, memory
 * from qemu_memory_limit_mb(), pids QEMU_PIDS_BASE + vCPUs. */
void qemu_cgroup_limits(const QemuArgs *args, int64_t cpus_milli, SandboxLimits *ret);
/* Creates the VM's cgroups with those limits (idempotent) and empties them. */
int qemu_cgroup_prepare(const QemuArgs *args, int64_t cpus_milli);
/* isolator_command_run_held()'s on_held: moves the held QEMU (pid) into the cgroups of
 * the sandbox whose id userdata is. */
int qemu_cgroup_enter(pid_t pid, void *userdata);
/* Kills whatever is left in the VM's cgroups and removes them; missing ones (or no
 * cgroups on this host) are fine. */
int qemu_cgroup_destroy(const char *id);
/* cgroup_reap_unknown(), where this host has cgroups at all. */
int qemu_cgroup_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata);

/* qemu-argv.c: a NULL-terminated argv (argv[0] is the program name), freed with
 * proto_strv_free(). */
int qemu_argv_build(const QemuArgs *args, char ***ret);

/* qemu-qmp.c */
#define QMP_LINE_MAX 8192
typedef struct QmpConn {
        int fd;
        char buf[QMP_LINE_MAX];
        size_t len;
        char error[160]; /* QEMU's reason for the last refusal (-EIO) */
} QmpConn;
/* Connects to <dir>/qmp.sock and leaves the greeting and capabilities negotiation done. */
int qmp_open(const char *dir, QmpConn *c);
void qmp_close(QmpConn *c);
/* Runs command with arguments (may be NULL) and, with fd >= 0, that fd passed along;
 * 0 and its "return" value in *ret_value (may be NULL; a new reference), -EIO and the
 * "error" object for QEMU's refusal (its reason also in c->error), or -errno. */
int qmp_call(QmpConn *c, const char *command, json_t *arguments, int fd, json_t **ret_value);
/* Runs one command without arguments ("stop", "cont") on its own connection. */
int qmp_execute(const char *dir, const char *command);
/* query-status: "running", "paused", "inmigrate", "postmigrate", ... */
int qmp_status(QmpConn *c, char *ret, size_t size);
/* One QMP message: 0 for a command's return, -EIO for its error (*ret_value the value
 * of either), 1 for anything else (the greeting, events; *ret_value the message);
 * -EBADMSG if it is no JSON object (*ret_value NULL). */
int qmp_reply_parse(const char *line, size_t len, json_t **ret_value);

/* qemu-disk.c */
/* <vm_dir>/images/<name>.ext4 from the image's rootfs, made once and again when the
 * rootfs is newer; returns its path in ret (PATH_MAX). */
int qemu_image_disk(const char *vm_dir, const SandboxPlan *plan, char *ret, ForgeError *err);
/* Removes the disk qemu_image_disk() made of image_name, if any. */
int qemu_image_disk_remove(const char *vm_dir, const char *image_name);
/* <dir>/disk.img, the per-VM writable ext4: made once (new, or plan->from_dir's), it
 * persists. */
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

/* qemu-snapshot.c: the machine saved with QEMU's migration to a file, beside its disk. */
/* <args->dir>/machine.json: what a VM started with args (by the QEMU at path qemu) is,
 * for a snapshot of it to carry. */
int qemu_machine_write(const QemuArgs *args, const char *qemu);
/* Saves the stopped VM of plan into dest: memory (QMP migrate, or a hibernated VM's
 * file), disk.img, machine.json. */
int qemu_snapshot(const SandboxPlan *plan, const char *dest, ForgeError *err);
/* 1 if plan->from_dir holds a saved machine, 0 if not (a disk only, or no snapshot). */
int qemu_snapshot_has_memory(const SandboxPlan *plan);
/* 0 if the machine saved in plan->from_dir can be loaded by QEMU started with args
 * (same size, accelerator, QEMU binary, read-only disks), else -EXDEV saying what
 * differs. */
int qemu_snapshot_check(const SandboxPlan *plan, const QemuArgs *args, const char *qemu, ForgeError *err);
/* The saved memory of plan->from_dir, opened for QEMU's -incoming. */
int qemu_snapshot_open_memory(const SandboxPlan *plan, int *ret_fd);
/* Hibernation: the machine of a suspended VM saved into <dir>/hibernation (memory and
 * machine.json, as a snapshot has them; the disk stays where it is), from which resume
 * loads it. */
/* <plan->dir>/hibernation into ret (PATH_MAX). */
int qemu_hibernation_path(const SandboxPlan *plan, char *ret);
/* A complete hibernation is there. */
bool qemu_is_hibernated(const SandboxPlan *plan);
/* Saves the paused VM's machine into <dir>/hibernation, all or nothing; QEMU still runs. */
int qemu_hibernation_save(const SandboxPlan *plan, ForgeError *err);
/* Removes a hibernation (loaded, or outdated by a QEMU that runs) and any half-saved one. */
int qemu_hibernation_drop(const SandboxPlan *plan);
/* After QEMU started with -incoming: waits until it has loaded the machine, then lets it
 * run. */
int qemu_snapshot_resume(const SandboxPlan *plan, ForgeError *err);
