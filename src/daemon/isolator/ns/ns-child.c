/* What the child runs between clone and the agent's exec: a list of small named steps
 * applying an NsChildPlan. Only raw system calls here: the parent may be multi-threaded,
 * so no malloc, no stdio, no logging and no glibc set*id (which would signal the parent's
 * threads). A failure is reported as (step, errno) on the CLOEXEC error pipe.
 *
 * The steps up to fork-init run in the setup child, a plain fork of forged: it becomes the
 * sandbox's host uid, makes the user namespace (so that uid owns it), waits for the
 * parent to map it, makes the other namespaces and forks the sandbox's init into the new
 * pid namespace. The init runs every later step and execs the agent. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "basic/macros.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/ns/ns-internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define FD_ERROR 4
#define FD_AGENT 5
/* The overlay's layers and mount point. lower is the idmapped image the parent sent,
 * attached in our namespace; the others are opened by the child itself (so they are mounts
 * of its own namespace) while it still has host root's fsuid, owner of the 0700 sandbox
 * dir. Once the root overlay exists, 6 and 7 are reused for the read-only binds. */
enum { FD_LOWER = 6, FD_UPPER, FD_WORK, FD_ROOT };
static const char *const layer_fd_paths[] = {
        [FD_LOWER - FD_LOWER] = "/proc/self/fd/6",
        [FD_UPPER - FD_LOWER] = "/proc/self/fd/7",
        [FD_WORK - FD_LOWER] = "/proc/self/fd/8",
};
/* Received fds are moved here, out of the way of the fixed numbers above. */
#define FD_FLOOR 10

static int sys_result(long r) {
        return r < 0 ? -errno : 0;
}

static int sys_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                     const char *data) {
        return sys_result(syscall(SYS_mount, src, dst, type, flags, data));
}

static int sys_close(int fd) {
        return sys_result(syscall(SYS_close, fd));
}

static int step_close_parent_fds(NsChildPlan *p) {
        for (size_t i = 0; i < ELEMENTSOF(p->parent_fds); i++)
                if (sys_close(p->parent_fds[i]) < 0)
                        return -errno;
        return 0;
}

static int fd_move_high(int *fd) {
        int moved = (int) syscall(SYS_fcntl, *fd, F_DUPFD_CLOEXEC, FD_FLOOR);
        if (moved < 0)
                return -errno;
        sys_close(*fd);
        *fd = moved;
        return 0;
}

/* The setup child is still host root: drops the host's groups and becomes the sandbox's
 * host uid, which the user namespace made next takes as its owner. The kernel charges the
 * per-user counts of everything inside (inotify instances, mqueue bytes, namespaces...) at
 * every level of the namespace tree, in the initial namespace to that owner: made by host
 * root, every sandbox would share host root's budget (SECURITY.md R12). The saved uid and
 * the fsuid stay host root's (setfsuid(0) is allowed by the saved uid): open-layers still
 * needs the fsuid of the 0700 sandbox dir's owner; become-root drops both. */
static int step_drop_host_ids(NsChildPlan *p) {
        int r = sys_result(syscall(SYS_setgroups, 0, NULL));
        if (r >= 0)
                r = sys_result(syscall(SYS_setresgid, p->host_gid, p->host_gid, p->host_gid));
        if (r >= 0)
                r = sys_result(syscall(SYS_setresuid, p->host_uid, p->host_uid, 0));
        if (r < 0)
                return r;
        /* setfsuid answers the previous fsuid, never an error: ask again to check. */
        (void) syscall(SYS_setfsuid, 0);
        return syscall(SYS_setfsuid, -1) == 0 ? 0 : -EPERM;
}

/* Its owner is our euid: the sandbox's host uid. The parent waits for this message to
 * write the maps and to idmap the image with the namespace. */
static int step_unshare_user(NsChildPlan *p) {
        char msg = NS_MSG_USERNS;
        int r = sys_result(syscall(SYS_unshare, CLONE_NEWUSER));
        if (r < 0)
                return r;
        return syscall(SYS_sendto, p->release_fd, &msg, 1, MSG_NOSIGNAL, NULL, 0) == 1 ? 0 : -errno;
}

/* The release message carries the idmapped image, then one mount per bind. */
static int release_fds_take(NsChildPlan *p, const struct msghdr *msg) {
        const struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
        int fds[NS_BINDS_MAX + 1];
        size_t n = 1 + p->n_binds;
        int r;

        if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
            cm->cmsg_len != CMSG_LEN(sizeof(int) * n) || (msg->msg_flags & MSG_CTRUNC))
                return -EBADMSG;
        memcpy(fds, CMSG_DATA(cm), sizeof(int) * n);
        p->image_fd = fds[0];
        r = fd_move_high(&p->image_fd);
        for (size_t i = 0; r >= 0 && i < p->n_binds; i++) {
                p->binds[i].fd = fds[i + 1];
                r = fd_move_high(&p->binds[i].fd);
        }
        return r;
}

static int step_wait_release(NsChildPlan *p) {
        union {
                char buf[CMSG_SPACE(sizeof(int) * (NS_BINDS_MAX + 1))];
                struct cmsghdr align;
        } control;
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        long n;

        do
                n = syscall(SYS_recvmsg, p->release_fd, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        /* EOF: the parent gave up on us. */
        if (n != 1)
                return -EPIPE;
        return release_fds_take(p, &msg);
}

/* Blocks every signal until exec and restores default dispositions, so none of forged's
 * handlers can run here and no SIG_IGN leaks into the agent. */
static int step_reset_signals(NsChildPlan *p) {
        uint64_t all = ~(uint64_t) 0;
        int r = sys_result(syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all)));

        if (r >= 0)
                isolator_child_signals_default();
        return r;
}

/* Made once the maps exist and after the parent moved us into the sandbox's cgroups (the
 * cgroup namespace is rooted there). Owned by our user namespace, so root inside rules
 * them: mounts, hostname, its own network, ipc (mqueues charged to the sandbox) and the
 * pid namespace of the init forked next. */
static int step_unshare_namespaces(NsChildPlan *p) {
        return sys_result(syscall(SYS_unshare, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                                                       CLONE_NEWUTS | CLONE_NEWCGROUP));
}

/* unshare(CLONE_NEWPID) moves only later children: the init, PID 1 of the new namespace,
 * is forked here with CLONE_PARENT, so it is forged's child (reaped by pid, killed on
 * destroy, no process in between). The setup child reports its pid and exits; the init
 * runs the remaining steps. */
static int step_fork_init(NsChildPlan *p) {
        NsInitMsg msg;
        long pid = syscall(SYS_clone, CLONE_PARENT, NULL, NULL, NULL, 0);

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                sys_close(p->release_fd);
                p->release_fd = -1;
                return 0;
        }
        msg.pid = (int32_t) pid;
        if (syscall(SYS_sendto, p->release_fd, &msg, sizeof(msg), MSG_NOSIGNAL, NULL, 0) != sizeof(msg)) {
                int r = -errno;
                (void) syscall(SYS_kill, pid, SIGKILL);
                return r;
        }
        for (;;)
                syscall(SYS_exit_group, 0);
}

/* Overlay only takes layers that are mounts of our namespace: the idmapped image is
 * attached over the image's own path, where nothing else in this namespace looks. */
static int step_attach_image(NsChildPlan *p) {
        int r = sys_result(syscall(SYS_move_mount, p->image_fd, "", AT_FDCWD, p->lower, MOVE_MOUNT_F_EMPTY_PATH));
        if (r < 0)
                return r;
        if (syscall(SYS_dup3, p->image_fd, FD_LOWER, O_CLOEXEC) < 0)
                return -errno;
        sys_close(p->image_fd);
        p->image_fd = FD_LOWER;
        return 0;
}

static int step_open_layers(NsChildPlan *p) {
        const char *paths[] = {p->upper, p->work, p->root};

        for (int i = 0; i < (int) ELEMENTSOF(paths); i++) {
                int fd = (int) syscall(SYS_openat, AT_FDCWD, paths[i],
                                       O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                if (syscall(SYS_dup3, fd, FD_UPPER + i, O_CLOEXEC) < 0)
                        return -errno;
                sys_close(fd);
        }
        return 0;
}

/* Root of the user namespace for every id: this also drops host root's saved uid and
 * fsuid, kept since drop-host-ids for open-layers. */
static int step_become_root(NsChildPlan *p) {
        int r = sys_result(syscall(SYS_setresgid, 0, 0, 0));
        if (r < 0)
                return r;
        r = sys_result(syscall(SYS_setresuid, 0, 0, 0));
        if (r < 0)
                return r;
        return sys_result(syscall(SYS_umask, 022));
}

static int step_make_private(NsChildPlan *p) {
        return sys_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
}

/* The overlay is built with the fd-based mount API so that cwd can enter it through the
 * mount fd: the sandbox dir is 0700 root and the sandbox's uid cannot walk a path to it.
 * Layers are named through the /proc/self/fd links step_open_layers() made. */
static int step_mount_overlay(NsChildPlan *p) {
        int fs, mnt, r;

        fs = (int) syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
        if (fs < 0)
                return -errno;
        r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir", layer_fd_paths[0], 0));
        if (r >= 0)
                r = sys_result(
                        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "upperdir", layer_fd_paths[1], 0));
        if (r >= 0)
                r = sys_result(
                        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "workdir", layer_fd_paths[2], 0));
        /* Overlay keeps its metadata in user.* xattrs inside a user namespace. */
        if (r >= 0)
                r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0));
        if (r >= 0)
                r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
        if (r < 0) {
                sys_close(fs);
                return r;
        }
        /* Writable by the sandbox: nosuid as well as nodev. */
        mnt = (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
        r = mnt < 0 ? -errno : 0;
        sys_close(fs);
        if (r < 0)
                return r;
        r = sys_result(syscall(SYS_move_mount, mnt, "", FD_ROOT, "",
                               MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
        if (r >= 0)
                r = sys_result(syscall(SYS_fchdir, mnt));
        sys_close(mnt);
        return r;
}

/* An empty, read-only tmpfs: the second layer a read-only overlay needs. */
static int empty_layer_open(void) {
        int fs, mnt, r;

        fs = (int) syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0)
                return -errno;
        r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", "4k", 0));
        if (r >= 0)
                r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0755", 0));
        if (r >= 0)
                r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
        mnt = r < 0 ? r : (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
        if (mnt == -1)
                mnt = -errno;
        sys_close(fs);
        return mnt;
}

/* The idmapped clone is writable for whoever holds CAP_SYS_ADMIN over our mount namespace
 * (its read-only flag is not locked: locking only happens when a mount namespace is
 * copied). A read-only overlay on top of it has no upper layer and cannot be made
 * writable at all, and it hides the clone: the clone is attached at the target only long
 * enough to become the overlay's layer (overlay accepts attached mounts only), then
 * detached. fds 6 and 7 are free again once the root overlay exists. */
static int bind_ro_one(NsBind *b, int empty_fd) {
        int fs, mnt, r;

        r = sys_result(syscall(SYS_move_mount, b->fd, "", AT_FDCWD, b->target, MOVE_MOUNT_F_EMPTY_PATH));
        if (r >= 0 && (syscall(SYS_dup3, b->fd, FD_LOWER, O_CLOEXEC) < 0 ||
                       syscall(SYS_dup3, empty_fd, FD_UPPER, O_CLOEXEC) < 0))
                r = -errno;
        if (r < 0)
                return r;
        fs = (int) syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
        if (fs < 0)
                return -errno;
        r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir",
                               "/proc/self/fd/6:/proc/self/fd/7", 0));
        if (r >= 0)
                r = sys_result(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
        mnt = r < 0 ? r : (int) syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned) b->attrs);
        if (mnt == -1)
                mnt = -errno;
        sys_close(fs);
        if (mnt < 0)
                return mnt;
        r = sys_result(syscall(SYS_umount2, "/proc/self/fd/6", MNT_DETACH));
        if (r >= 0)
                r = sys_result(syscall(SYS_move_mount, mnt, "", AT_FDCWD, b->target, MOVE_MOUNT_F_EMPTY_PATH));
        sys_close(mnt);
        sys_close(b->fd);
        b->fd = -1;
        return r;
}

/* From here on cwd is the new root and every target is relative to it. */
static int step_bind_ro(NsChildPlan *p) {
        int empty, r = 0;

        if (p->n_binds == 0)
                return 0;
        empty = empty_layer_open();
        if (empty < 0)
                return empty;
        for (size_t i = 0; r >= 0 && i < p->n_binds; i++)
                r = bind_ro_one(&p->binds[i], empty);
        sys_close(empty);
        return r;
}

static int step_mount_proc(NsChildPlan *p) {
        return sys_mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static int step_mount_dev(NsChildPlan *p) {
        /* nodev does not reach the host nodes bound below: each bind is its own mount. */
        return sys_mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                         "mode=0755,size=64k,nr_inodes=64");
}

/* mknod is not allowed in a user namespace: bind the host's nodes over empty files. */
static int step_dev_nodes(NsChildPlan *p) {
        static const char *const nodes[][2] = {
                {"/dev/null", "dev/null"},     {"/dev/zero", "dev/zero"},       {"/dev/full", "dev/full"},
                {"/dev/random", "dev/random"}, {"/dev/urandom", "dev/urandom"}, {"/dev/tty", "dev/tty"},
        };
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                int fd = (int) syscall(SYS_openat, AT_FDCWD, nodes[i][1],
                                       O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0666);
                if (fd < 0)
                        return -errno;
                sys_close(fd);
                int r = sys_mount(nodes[i][0], nodes[i][1], NULL, MS_BIND, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int step_dev_links(NsChildPlan *p) {
        static const char *const links[][2] = {
                {"/proc/self/fd", "dev/fd"},       {"/proc/self/fd/0", "dev/stdin"},
                {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"},
                {"pts/ptmx", "dev/ptmx"},
        };
        for (size_t i = 0; i < ELEMENTSOF(links); i++)
                if (syscall(SYS_symlinkat, links[i][0], AT_FDCWD, links[i][1]) < 0)
                        return -errno;
        return 0;
}

static int step_mount_devpts(NsChildPlan *p) {
        if (syscall(SYS_mkdirat, AT_FDCWD, "dev/pts", 0755) < 0)
                return -errno;
        return sys_mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                         "newinstance,ptmxmode=0666,mode=0620");
}

static int step_mount_shm(NsChildPlan *p) {
        if (syscall(SYS_mkdirat, AT_FDCWD, "dev/shm", 01777) < 0)
                return -errno;
        return sys_mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, p->shm_options);
}

/* Nothing may add nodes to /dev later. */
static int step_seal_dev(NsChildPlan *p) {
        return sys_mount(NULL, "dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                         NULL);
}

static int step_set_hostname(NsChildPlan *p) {
        size_t n = 0;

        while (p->hostname[n])
                n++;
        return sys_result(syscall(SYS_sethostname, p->hostname, n));
}

/* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only ours. */
static int step_pivot_root(NsChildPlan *p) {
        int r = sys_result(syscall(SYS_pivot_root, ".", "."));
        if (r < 0)
                return r;
        r = sys_result(syscall(SYS_umount2, ".", MNT_DETACH));
        if (r < 0)
                return r;
        return sys_result(syscall(SYS_chdir, "/"));
}

/* With bounding, inheritable and ambient sets empty, exec gives even uid 0 nothing. */
static int step_drop_caps(NsChildPlan *p) {
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};

        for (int cap = 0; cap <= p->cap_last; cap++)
                if (syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        return sys_result(syscall(SYS_capset, &hdr, data));
}

static int step_no_new_privs(NsChildPlan *p) {
        return sys_result(syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
}

static int step_setsid(NsChildPlan *p) {
        return sys_result(syscall(SYS_setsid));
}

static int rlimit_set(int resource, uint64_t value) {
        struct {
                uint64_t cur, max;
        } rl = {value, value};
        return sys_result(syscall(SYS_prlimit64, 0, resource, &rl, NULL));
}

/* Inherited by the agent and everything it starts; without capabilities nobody can raise
 * them again. No core dumps (they could fill the disk and leak memory of the agent);
 * 1024 fds (R10); files no larger than the disk quota (EFBIG before ENOSPC). */
static int step_rlimits(NsChildPlan *p) {
        int r = rlimit_set(RLIMIT_CORE, 0);
        if (r >= 0)
                r = rlimit_set(RLIMIT_NOFILE, NS_RLIMIT_NOFILE);
        if (r >= 0 && p->fsize_max > 0)
                r = rlimit_set(RLIMIT_FSIZE, p->fsize_max);
        return r;
}

/* The last step before exec: from here on the denylist applies to us, then the agent.
 * TSYNC is moot for a single thread, but makes a stray thread an error, not a hole. */
static int step_seccomp(NsChildPlan *p) {
        return sys_result(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, p->seccomp));
}

/* 0 = /dev/null, 1 and 2 = the log, 3 = the listening socket, 4 and 5 (CLOEXEC) = the
 * error pipe and the agent binary until exec; everything else closed. The parent placed
 * our fds at 10 and above, so the dup2s below never clobber each other. */
static int step_setup_fds(NsChildPlan *p) {
        int null_fd = (int) syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
                return -errno;
        if (syscall(SYS_dup3, p->error_fd, FD_ERROR, O_CLOEXEC) < 0)
                return -errno;
        p->error_fd = FD_ERROR;
        if (syscall(SYS_dup3, null_fd, 0, 0) < 0 || syscall(SYS_dup3, p->log_fd, 1, 0) < 0 ||
            syscall(SYS_dup3, p->log_fd, 2, 0) < 0 || syscall(SYS_dup3, p->listen_fd, 3, 0) < 0 ||
            syscall(SYS_dup3, p->agent_fd, FD_AGENT, O_CLOEXEC) < 0)
                return -errno;
        p->agent_fd = FD_AGENT;
        return sys_result(syscall(SYS_close_range, FD_AGENT + 1, ~0U, 0));
}

static int step_exec_agent(NsChildPlan *p) {
        static const char *const argv[] = {"forge-agent", "--listen-fd", "3", NULL};
        static const char *const envp[] = {
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        uint64_t none = 0;

        (void) syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
        syscall(SYS_execveat, p->agent_fd, "", argv, envp, AT_EMPTY_PATH);
        return -errno;
}

typedef struct NsChildStep {
        const char *name;
        int (*run)(NsChildPlan *p);
} NsChildStep;

static const NsChildStep child_steps[] = {
        {"reset-signals", step_reset_signals},
        {"close-parent-fds", step_close_parent_fds},
        {"drop-host-ids", step_drop_host_ids},
        {"unshare-user", step_unshare_user},
        {"wait-release", step_wait_release},
        {"unshare-namespaces", step_unshare_namespaces},
        {"fork-init", step_fork_init},
        {"make-private", step_make_private},
        {"attach-image", step_attach_image},
        {"open-layers", step_open_layers},
        {"become-root", step_become_root},
        {"mount-overlay", step_mount_overlay},
        {"bind-ro", step_bind_ro},
        {"mount-proc", step_mount_proc},
        {"mount-dev", step_mount_dev},
        {"dev-nodes", step_dev_nodes},
        {"mask-proc", ns_child_mask_proc},
        {"dev-links", step_dev_links},
        {"mount-devpts", step_mount_devpts},
        {"mount-shm", step_mount_shm},
        {"seal-dev", step_seal_dev},
        {"set-hostname", step_set_hostname},
        {"pivot-root", step_pivot_root},
        {"drop-caps", step_drop_caps},
        {"no-new-privs", step_no_new_privs},
        {"setsid", step_setsid},
        {"rlimits", step_rlimits},
        {"setup-fds", step_setup_fds},
        {"seccomp", step_seccomp},
        {"exec-agent", step_exec_agent},
};

const char *ns_child_step_name(int step) {
        if (step < 0 || (size_t) step >= ELEMENTSOF(child_steps))
                return "unknown";
        return child_steps[step].name;
}

_Noreturn void ns_child_run(NsChildPlan *p) {
        for (size_t i = 0; i < ELEMENTSOF(child_steps); i++) {
                int r = child_steps[i].run(p);
                if (r < 0) {
                        NsChildError e = {.step = (int) i, .errnum = -r};
                        (void) syscall(SYS_write, p->error_fd, &e, sizeof(e));
                        break;
                }
        }
        for (;;)
                syscall(SYS_exit_group, 127);
}
