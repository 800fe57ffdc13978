/* Masked and read-only /proc paths (SECURITY.md "Masked paths"), applied by the clone
 * child right after it mounted its procfs. Everything goes through fds: each target is
 * opened with O_NOFOLLOW under the proc mount's fd, a symlink is refused rather than
 * followed, and the mount is moved onto that fd, never onto a path resolved again later.
 * Files are covered with /dev/null (checked to be the real 1:3 device), directories with
 * an empty read-only tmpfs. Raw system calls only, as in ns-child.c. /sys is not mounted
 * in the sandbox, so /sys/firmware needs no mask. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "basic/macros.h"
#include "daemon/isolator/ns/ns-internal.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif

/* Host-wide information (interrupts, timers, scheduler state, keys of every user) or
 * raw kernel memory (kcore). */
static const char *const proc_masked[] = {
        "acpi", "asound", "interrupts", "kcore", "keys", "latency_stats", "sched_debug", "scsi", "timer_list",
        "timer_stats",
};
/* Host-wide knobs: readable, never writable. */
static const char *const proc_readonly[] = {"bus", "fs", "irq", "sys", "sysrq-trigger"};

#define MASK_ATTRS (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)

static void fd_close(int fd) {
        if (fd >= 0)
                syscall(SYS_close, fd);
}

/* An O_PATH fd of proc/<name>; 0 with *ret = -1 if it does not exist on this kernel,
 * -ELOOP if it is a symlink. */
static int target_open(int proc_fd, const char *name, struct stat *st, int *ret) {
        int fd = (int) syscall(SYS_openat, proc_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

        *ret = -1;
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (syscall(SYS_fstat, fd, st) < 0 || S_ISLNK(st->st_mode)) {
                int r = S_ISLNK(st->st_mode) ? -ELOOP : -errno;
                fd_close(fd);
                return r;
        }
        *ret = fd;
        return 0;
}

static int mount_move_onto(int mnt, int target) {
        if (syscall(SYS_move_mount, mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return -errno;
        return 0;
}

static int empty_dir_mount(void) {
        int fs = (int) syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC), mnt = -1;

        if (fs < 0)
                return -errno;
        if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", "4k", 0) >= 0 &&
            syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "nr_inodes", "1", 0) >= 0 &&
            syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) >= 0)
                mnt = (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MASK_ATTRS);
        if (mnt < 0)
                mnt = -errno;
        fd_close(fs);
        return mnt;
}

static int mask_one(int proc_fd, int null_fd, const char *name) {
        struct stat st;
        int target, mnt, r;

        r = target_open(proc_fd, name, &st, &target);
        if (r < 0 || target < 0)
                return r;
        if (S_ISDIR(st.st_mode))
                mnt = empty_dir_mount();
        else {
                mnt = (int) syscall(SYS_open_tree, null_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (mnt < 0)
                        mnt = -errno;
        }
        r = mnt < 0 ? mnt : mount_move_onto(mnt, target);
        fd_close(mnt);
        fd_close(target);
        return r;
}

/* A read-only bind of the path onto itself, submounts included. */
static int readonly_one(int proc_fd, const char *name) {
        struct mount_attr attr = {.attr_set = MASK_ATTRS};
        struct stat st;
        int target, mnt, r;

        r = target_open(proc_fd, name, &st, &target);
        if (r < 0 || target < 0)
                return r;
        mnt = (int) syscall(SYS_open_tree, target, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        r = mnt < 0 ? -errno : 0;
        if (r >= 0 && syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
                r = -errno;
        if (r >= 0)
                r = mount_move_onto(mnt, target);
        fd_close(mnt);
        fd_close(target);
        return r;
}

/* The sandbox's dev/null must be the null device, not whatever a path resolved to. */
static int null_open(void) {
        struct stat st;
        int fd = (int) syscall(SYS_openat, AT_FDCWD, "dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (syscall(SYS_fstat, fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
                fd_close(fd);
                return -ENODEV;
        }
        return fd;
}

int ns_child_mask_proc(NsChildPlan *p) {
        int proc_fd, null_fd, r = 0;

        proc_fd = (int) syscall(SYS_openat, AT_FDCWD, "proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (proc_fd < 0)
                return -errno;
        null_fd = null_open();
        if (null_fd < 0) {
                fd_close(proc_fd);
                return null_fd;
        }
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(proc_masked); i++)
                r = mask_one(proc_fd, null_fd, proc_masked[i]);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(proc_readonly); i++)
                r = readonly_one(proc_fd, proc_readonly[i]);
        fd_close(null_fd);
        fd_close(proc_fd);
        return r;
}
