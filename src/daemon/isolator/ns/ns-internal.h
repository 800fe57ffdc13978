/* Shared between the files of the ns isolator; nothing outside isolator/ns includes it. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/isolator/isolator.h"

#define NS_BINDS_MAX 16

/* A read-only bind of a host path at the same place inside. The parent makes an idmapped
 * clone of it; the child stacks a read-only overlay on that (see step_bind_ro). */
typedef struct NsBind {
        char source[PATH_MAX]; /* absolute host path */
        char target[PATH_MAX]; /* the same path relative to the new root */
        uint64_t attrs;        /* MOUNT_ATTR_* of the mount inside: ro, nosuid, nodev (+noexec) */
        int fd;                /* child only: the idmapped clone received from the parent */
} NsBind;

struct sock_fprog;

/* Everything the child applies between clone and exec, computed by the parent. The child
 * works on its own copy (fork semantics) and may update the fd fields as it moves fds. */
typedef struct NsChildPlan {
        int parent_fds[2]; /* the parent's ends, closed first so EOF means something */
        /* Seqpacket socket, both ways: the child sends NS_MSG_USERNS once its user namespace
         * exists; the parent answers with one byte once uid maps and cgroups are in place,
         * carrying the idmapped mounts (image first, then one per bind) as SCM_RIGHTS; the
         * child sends the init's pid (NsInitMsg) and exits, the init goes on. */
        int release_fd;
        /* The sandbox's host uid/gid (root inside): the owner of its user namespace, so the
         * kernel's per-user counts in the initial namespace are the sandbox's own. */
        uid_t host_uid;
        gid_t host_gid;
        int error_fd;  /* write end, CLOEXEC: NsChildError on failure, EOF on exec */
        int agent_fd;  /* O_PATH to the agent binary */
        int log_fd;    /* agent.log, append */
        int listen_fd; /* the agent's listening socket, becomes fd 3 */
        /* Overlay paths: lower (the image rootfs) and the sandbox dir's upper, work, root.
         * The child opens them itself, so they resolve in its own mount namespace. */
        char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], root[PATH_MAX];
        int image_fd; /* child only: the idmapped clone of lower, received from the parent */
        NsBind binds[NS_BINDS_MAX];
        size_t n_binds;
        char hostname[65];
        char shm_options[64]; /* tmpfs options for /dev/shm, sized from the memory limit */
        int cap_last;
        uint64_t fsize_max; /* RLIMIT_FSIZE in bytes: the disk quota, 0 = unlimited */
        /* Built before clone (ns-seccomp.c); the child only passes it to seccomp(2). */
        const struct sock_fprog *seccomp;
} NsChildPlan;

/* /dev/shm is a quarter of the memory limit, at most 64 MiB: its pages count against
 * the memory limit and cannot be swapped, so a full /dev/shm must leave room for the
 * commands that would delete its files. */
#define NS_SHM_MAX_MB 64

/* Limits every sandbox process gets (SECURITY.md "Limits"). */
#define NS_RLIMIT_NOFILE 1024

/* The setup child's first message: its user namespace exists, maps may be written. */
#define NS_MSG_USERNS 'u'

/* The setup child's last message: the pid (in forged's pid namespace) of the sandbox's init,
 * forked with CLONE_PARENT into the new pid namespace, so forged's child. */
typedef struct NsInitMsg {
        int32_t pid;
} NsInitMsg;

typedef struct NsChildError {
        int step; /* index into the child's step list */
        int errnum;
} NsChildError;

/* ns-child.c: runs in the cloned child (then in the init it forks), never returns. */
_Noreturn void ns_child_run(NsChildPlan *p);
const char *ns_child_step_name(int step);

/* ns-spawn.c: the parent side of start(). */
int ns_spawn(const SandboxPlan *plan, ForgeError *err);
/* Raw clone(2) with fork semantics; 0 in the child. */
pid_t ns_clone(unsigned long flags);
int ns_write_id_maps(pid_t pid, uid_t base, uint32_t count);

/* ns-idmap.c: for a child whose id maps are written, detached clones of the image rootfs
 * (ret_fds[0]) and of each bind (ret_fds[1..n_binds]) idmapped with its user namespace. */
int ns_idmap_mounts_open(pid_t pid, const NsChildPlan *cp, int *ret_fds);

/* ns-mask.c (runs in the child): masked and read-only /proc paths, cwd = the new root. */
int ns_child_mask_proc(NsChildPlan *p);

/* ns-seccomp.c: the filter, built once per process; the pointer stays valid. */
int ns_seccomp_program(const struct sock_fprog **ret);

/* ns-disk.c: the per-sandbox ext4 image that holds upper/ and work/ when disk_mb > 0. */
int ns_disk_set_state_dir(const char *state_dir);
bool ns_disk_is_wanted(const SandboxPlan *plan);
/* Creates <dir>/disk.img (once) and mounts it on <dir>/disk; idempotent. */
int ns_disk_prepare(const SandboxPlan *plan, ForgeError *err);
/* Detaches <dir>/disk if mounted and waits for its loop device to be released. */
int ns_disk_release(const char *dir);
/* Loop devices backed by an image of this state dir whose sandbox known() rejects. */
int ns_disk_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata);
/* The loop device number backing <dir>/disk.img, 0 if none; for tests and logs. */
int ns_disk_loop_find(const char *dir, char *ret_name, size_t size);

/* ns-disk-copy.c: saving a sandbox's disk, and fitting a saved one to a new sandbox. */
/* Flushes <dir>/disk and copies <dir>/disk.img to dest (through dest.tmp, fsynced). */
int ns_disk_save(const SandboxPlan *plan, const char *dest, ForgeError *err);
/* Gives every file under the mounted disk at path whose uid or gid lies in
 * [from, from + count) the same id in [to, to + count); modes are kept (chown would
 * clear setuid and setgid). */
int ns_disk_shift_owners(const char *path, uid_t from, uid_t to, uint32_t count);

/* ns-pidfile.c: <dir>/ns.pid holds "PID STARTTIME". */
int ns_pidfile_write(const char *dir, pid_t pid, unsigned long long start_time);
int ns_pidfile_read(const char *dir, pid_t *ret_pid, unsigned long long *ret_start_time);
/* Field 22 of /proc/PID/stat; -ESRCH for a dead or zombie process. */
int ns_proc_start_time(pid_t pid, unsigned long long *ret);
/* The sandbox's init pid if ns.pid names a live process with the recorded start time,
 * else 0 (or -errno). Reaps it first if it is our zombie child. */
pid_t ns_init_pid(const char *dir);

/* ns-probe.c */
int ns_probe(ForgeError *err);
