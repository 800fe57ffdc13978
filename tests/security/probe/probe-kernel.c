/* The kernel-surface attempts, grouped by battery case (SECURITY.md). Every attempt
 * uses arguments that would be harmless if the call were allowed: the point is only
 * whether the kernel answers EPERM/ENOSYS (or kills us) before it looks at them.
 * Structures and constants that musl's headers lack are spelled out here, sized as
 * in the kernel's uapi headers. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define X32_SYSCALL_BIT 0x40000000L
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define AF_ALG_ 38
#define AF_VSOCK_ 40
#define ETH_P_ALL_BE 0x0300 /* htons(ETH_P_ALL) */
#define PTRACE_SEIZE_ 0x4206
#define KEY_SPEC_PROCESS_KEYRING_ (-2)
#define KEY_SPEC_SESSION_KEYRING_ (-3)
#define UFFD_USER_MODE_ONLY_ 1
#define OPEN_TREE_CLONE_ 1
#define MOVE_MOUNT_F_EMPTY_PATH_ 0x00000004
#define MOUNT_ATTR_RDONLY_ 0x00000001
#define TIOCL_GETSHIFTSTATE_ 6

/* Zeroed buffers kept in .bss: the binary is linked without PIE, so their addresses
 * fit in 32 bits and the same buffers serve the i386 and x32 attempts. */
static uint8_t io_uring_params[120];
static uint64_t bpf_attr[16];
static uint64_t perf_attr[16];
static char hostname_buf[] = "forge-probe";

static const char *scratch_dir(void) {
        mkdir("/tmp/.forge-probe-mnt", 0700);
        return "/tmp/.forge-probe-mnt";
}

/* K1 keyrings */
static long p_keyctl_session(void) {
        return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, KEY_SPEC_SESSION_KEYRING_, 1);
}
static long p_keyctl_join(void) {
        return syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, "forge-probe");
}
static long p_add_key(void) {
        return syscall(SYS_add_key, "user", "forge-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING_);
}
static long p_request_key(void) {
        return syscall(SYS_request_key, "user", "forge-probe-absent", NULL, 0);
}

/* K2 modules */
static long p_init_module(void) {
        static char image[64];
        return syscall(SYS_init_module, image, sizeof(image), "");
}
static long p_finit_module(void) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        return syscall(SYS_finit_module, fd, "", 0);
}
static long p_delete_module(void) {
        return syscall(SYS_delete_module, "forge_probe_absent", O_NONBLOCK);
}

/* K3 bpf, perf, userfaultfd, io_uring */
static long p_bpf_map_create(void) {
        uint32_t *a = (uint32_t *) bpf_attr;
        a[0] = 2; /* BPF_MAP_TYPE_ARRAY */
        a[1] = 4; /* key_size */
        a[2] = 4; /* value_size */
        a[3] = 1; /* max_entries */
        return syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, bpf_attr, sizeof(bpf_attr));
}
static long p_perf_event_open(void) {
        /* software task clock of ourselves, user space only: the least privileged event */
        perf_attr[0] = 1 /* PERF_TYPE_SOFTWARE */ | ((uint64_t) 64 << 32) /* size VER0 */;
        perf_attr[1] = 1;                                 /* PERF_COUNT_SW_TASK_CLOCK */
        perf_attr[5] = (1u << 0) | (1u << 5) | (1u << 6); /* disabled, exclude_kernel, _hv */
        return syscall(SYS_perf_event_open, perf_attr, 0, -1, -1, 8 /* FD_CLOEXEC */);
}
static long p_userfaultfd(void) {
        return syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY_);
}
static long p_io_uring_setup(void) {
        return syscall(SYS_io_uring_setup, 4, io_uring_params);
}
static long p_io_uring_enter(void) {
        return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0);
}
static long p_io_uring_register(void) {
        return syscall(SYS_io_uring_register, -1, 0, NULL, 0);
}

/* K4 ptrace and its relatives, against a child of ours (the easiest target there is) */
static long probe_marker = 0x466f726765;

static pid_t spawn_sleeper(void) {
        pid_t pid = fork();
        if (pid == 0) {
                alarm(15);
                for (;;)
                        pause();
        }
        return pid;
}

static long with_sleeper(long (*attempt)(pid_t pid)) {
        pid_t pid = spawn_sleeper();
        if (pid < 0)
                return -2;
        usleep(20000);
        errno = 0;
        long r = attempt(pid);
        int e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        errno = e;
        return r;
}

static long a_seize(pid_t pid) {
        return syscall(SYS_ptrace, PTRACE_SEIZE_, pid, 0, 0);
}
static long a_attach(pid_t pid) {
        return syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, pid, 0, 0);
}
static long a_vm_readv(pid_t pid) {
        long value = 0;
        struct iovec local = {&value, sizeof(value)}, remote = {&probe_marker, sizeof(probe_marker)};
        return syscall(SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0);
}
static long a_kcmp(pid_t pid) {
        return syscall(SYS_kcmp, getpid(), pid, 0 /* KCMP_FILE */, 0, 0);
}
static long a_pidfd_getfd(pid_t pid) {
        long pidfd = syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -2;
        return syscall(SYS_pidfd_getfd, pidfd, 0, 0);
}
static long p_ptrace_seize_child(void) {
        return with_sleeper(a_seize);
}
static long p_ptrace_attach_child(void) {
        return with_sleeper(a_attach);
}
static long p_ptrace_seize_init(void) {
        /* SEIZE, not ATTACH: if it were allowed, the agent would not be stopped */
        return syscall(SYS_ptrace, PTRACE_SEIZE_, 1, 0, 0);
}
static long p_ptrace_traceme(void) {
        return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
}
static long p_process_vm_readv(void) {
        return with_sleeper(a_vm_readv);
}
static long p_kcmp(void) {
        return with_sleeper(a_kcmp);
}
static long p_pidfd_getfd(void) {
        return with_sleeper(a_pidfd_getfd);
}

/* K5 kexec, reboot, swap, port I/O, handles */
static long p_kexec_load(void) {
        return syscall(SYS_kexec_load, 0, 0, NULL, 0);
}
static long p_kexec_file_load(void) {
        return syscall(SYS_kexec_file_load, -1, -1, 1, "", 0);
}
static long p_reboot(void) {
        return syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* CAD_OFF */, NULL);
}
static long p_swapon(void) {
        return syscall(SYS_swapon, "/nonexistent-forge-swap", 0);
}
static long p_swapoff(void) {
        return syscall(SYS_swapoff, "/nonexistent-forge-swap");
}
static long p_iopl(void) {
        return syscall(SYS_iopl, 3);
}
static long p_ioperm(void) {
        return syscall(SYS_ioperm, 0x80, 1, 1);
}
static long p_open_by_handle_at(void) {
        struct {
                unsigned int handle_bytes;
                int handle_type;
                unsigned char f_handle[128];
        } h;
        int mount_id = 0;
        memset(&h, 0, sizeof(h));
        h.handle_bytes = sizeof(h.f_handle);
        if (syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &h, &mount_id, 0) < 0) {
                memset(&h, 0, sizeof(h));
                h.handle_bytes = 8;
                h.handle_type = 1;
        }
        int mfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return syscall(SYS_open_by_handle_at, mfd, &h, O_RDONLY);
}

/* K6 setns and unshare */
static long setns_path(const char *path, int nstype) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -2;
        return syscall(SYS_setns, fd, nstype);
}
static long p_setns_mnt(void) {
        return setns_path("/proc/self/ns/mnt", CLONE_NEWNS);
}
static long p_setns_user(void) {
        return setns_path("/proc/self/ns/user", CLONE_NEWUSER);
}
static long p_setns_net(void) {
        return setns_path("/proc/self/ns/net", CLONE_NEWNET);
}
static long p_setns_pidfd(void) {
        long pidfd = syscall(SYS_pidfd_open, 1, 0);
        if (pidfd < 0)
                return -2;
        return syscall(SYS_setns, pidfd, CLONE_NEWNET | CLONE_NEWUTS);
}
static long p_unshare_user(void) {
        return syscall(SYS_unshare, CLONE_NEWUSER);
}
static long p_unshare_mnt(void) {
        return syscall(SYS_unshare, CLONE_NEWNS);
}
static long p_unshare_net(void) {
        return syscall(SYS_unshare, CLONE_NEWNET);
}
static long p_unshare_pid(void) {
        return syscall(SYS_unshare, CLONE_NEWPID);
}
static long p_unshare_uts(void) {
        return syscall(SYS_unshare, CLONE_NEWUTS);
}
static long p_unshare_ipc(void) {
        return syscall(SYS_unshare, CLONE_NEWIPC);
}
static long p_unshare_cgroup(void) {
        return syscall(SYS_unshare, CLONE_NEWCGROUP);
}
static long p_unshare_time(void) {
        return syscall(SYS_unshare, CLONE_NEWTIME);
}

/* F7 clone with namespace flags, clone3. A child that is created exits at once. */
static long clone_flags(unsigned long flags) {
        long pid = syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0);
        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid((pid_t) pid, NULL, 0);
        return pid;
}
static long clone3_flags(uint64_t flags) {
        uint64_t args[8] = {0}; /* struct clone_args, CLONE_ARGS_SIZE_VER0 */
        args[0] = flags;
        args[4] = SIGCHLD; /* exit_signal */
        long pid = syscall(SYS_clone3, args, sizeof(args));
        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid((pid_t) pid, NULL, 0);
        return pid;
}
static long p_clone_newuser(void) {
        return clone_flags(CLONE_NEWUSER);
}
static long p_clone_newns(void) {
        return clone_flags(CLONE_NEWNS);
}
static long p_clone_newpid(void) {
        return clone_flags(CLONE_NEWPID);
}
static long p_clone_newnet(void) {
        return clone_flags(CLONE_NEWNET);
}
static long p_clone3_plain(void) {
        return clone3_flags(0);
}
static long p_clone3_newuser(void) {
        return clone3_flags(CLONE_NEWUSER);
}

/* K7 socket families; N8 binding raw sockets */
static long p_socket_alg(void) {
        return syscall(SYS_socket, AF_ALG_, SOCK_SEQPACKET, 0);
}
static long p_socket_vsock(void) {
        return syscall(SYS_socket, AF_VSOCK_, SOCK_STREAM, 0);
}
static long p_socket_packet_raw(void) {
        return syscall(SYS_socket, AF_PACKET, SOCK_RAW, ETH_P_ALL_BE);
}
static long p_socket_packet_dgram(void) {
        return syscall(SYS_socket, AF_PACKET, SOCK_DGRAM, ETH_P_ALL_BE);
}
static long p_socket_inet_raw(void) {
        return syscall(SYS_socket, AF_INET, SOCK_RAW, 255 /* IPPROTO_RAW */);
}
static long p_socket_inet_raw_icmp(void) {
        return syscall(SYS_socket, AF_INET, SOCK_RAW, 1 /* IPPROTO_ICMP */);
}
static long p_socket_inet6_raw(void) {
        return syscall(SYS_socket, AF_INET6, SOCK_RAW, 58 /* IPPROTO_ICMPV6 */);
}
static long p_socket_inet_packet(void) {
        return syscall(SYS_socket, AF_INET, 10 /* SOCK_PACKET */, ETH_P_ALL_BE);
}
static long p_raw_bind_packet(void) {
        long s = syscall(SYS_socket, AF_PACKET, SOCK_RAW, ETH_P_ALL_BE);
        if (s < 0)
                return s;
        struct {
                unsigned short family, protocol;
                int ifindex;
                unsigned short hatype;
                unsigned char pkttype, halen, addr[8];
        } sll = {AF_PACKET, ETH_P_ALL_BE, 1 /* lo */, 0, 0, 0, {0}};
        return syscall(SYS_bind, s, &sll, sizeof(sll));
}
static long p_raw_bind_inet(void) {
        long s = syscall(SYS_socket, AF_INET, SOCK_RAW, 1);
        if (s < 0)
                return s;
        struct {
                unsigned short family, port;
                uint32_t addr;
                unsigned char zero[8];
        } sin = {AF_INET, 0, 0x0100007f /* 127.0.0.1, network order */, {0}};
        return syscall(SYS_bind, s, &sin, sizeof(sin));
}

/* K8 the i386 ABI through int 0x80 (arguments truncated to 32 bits) and the x32 ABI */
static long int80(long nr, long a, long b, long c) {
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
        return raw_result(ret);
}
static long p_i386_getpid(void) {
        return int80(20, 0, 0, 0);
}
static long p_i386_keyctl(void) {
        return int80(288, 0, KEY_SPEC_SESSION_KEYRING_, 1);
}
static long p_i386_unshare_user(void) {
        return int80(310, CLONE_NEWUSER, 0, 0);
}
static long p_i386_io_uring_setup(void) {
        return int80(425, 4, (long) (uintptr_t) io_uring_params, 0);
}
static long p_i386_socket_vsock(void) {
        return int80(359, AF_VSOCK_, SOCK_STREAM, 0);
}
static long p_i386_sethostname(void) {
        return int80(74, (long) (uintptr_t) hostname_buf, 5, 0);
}
static long p_x32_getpid(void) {
        return syscall(X32_SYSCALL_BIT | SYS_getpid);
}
static long p_x32_keyctl(void) {
        return syscall(X32_SYSCALL_BIT | SYS_keyctl, 0, KEY_SPEC_SESSION_KEYRING_, 1);
}
static long p_x32_unshare_user(void) {
        return syscall(X32_SYSCALL_BIT | SYS_unshare, CLONE_NEWUSER);
}
static long p_x32_io_uring_setup(void) {
        return syscall(X32_SYSCALL_BIT | SYS_io_uring_setup, 4, io_uring_params);
}
static long p_x32_socket_vsock(void) {
        return syscall(X32_SYSCALL_BIT | SYS_socket, AF_VSOCK_, SOCK_STREAM, 0);
}

/* K9 TIOCSTI and TIOCLINUX on our own controlling terminal (a fresh pty), which is
 * the case the kernel itself allows; also with bits above the low 32 set, which the
 * kernel drops but a 64-bit seccomp comparison would not. */
static int open_controlling_pty(void) {
        int unlock = 0, n = -1;
        char path[64];

        if (setsid() < 0)
                return -1;
        int master = open("/dev/ptmx", O_RDWR | O_CLOEXEC);
        if (master < 0)
                return -1;
        if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
                return -1;
        snprintf(path, sizeof(path), "/dev/pts/%d", n);
        int slave = open(path, O_RDWR | O_CLOEXEC);
        if (slave < 0)
                return -1;
        ioctl(slave, TIOCSCTTY, 0);
        return slave;
}
static long tty_ioctl(unsigned long cmd, void *arg) {
        int fd = open_controlling_pty();
        if (fd < 0)
                return -2;
        return syscall(SYS_ioctl, fd, cmd, arg);
}
static long p_tiocsti(void) {
        char c = 'x';
        return tty_ioctl(TIOCSTI, &c);
}
static long p_tiocsti_high(void) {
        char c = 'x';
        return tty_ioctl((unsigned long) TIOCSTI | (1UL << 32), &c);
}
static long p_tioclinux(void) {
        char sub[2] = {TIOCL_GETSHIFTSTATE_, 0};
        return tty_ioctl(TIOCLINUX, sub);
}
static long p_tioclinux_high(void) {
        char sub[2] = {TIOCL_GETSHIFTSTATE_, 0};
        return tty_ioctl((unsigned long) TIOCLINUX | (1UL << 32), sub);
}

/* K10 the clock: set to what it already is */
static long p_clock_settime(void) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        return syscall(SYS_clock_settime, CLOCK_REALTIME, &now);
}
static long p_settimeofday(void) {
        struct timeval now;
        gettimeofday(&now, NULL);
        return syscall(SYS_settimeofday, &now, NULL);
}
static long p_adjtimex_set(void) {
        struct timex tx;
        memset(&tx, 0, sizeof(tx));
        if (syscall(SYS_adjtimex, &tx) < 0)
                tx.tick = 10000;
        tx.modes = ADJ_TICK; /* the tick it already has */
        return syscall(SYS_adjtimex, &tx);
}
static long p_adjtimex_read(void) {
        struct timex tx;
        memset(&tx, 0, sizeof(tx));
        return syscall(SYS_adjtimex, &tx);
}
static long p_clock_adjtime_read(void) {
        struct timex tx;
        memset(&tx, 0, sizeof(tx));
        return syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx);
}

/* K11 */
static long p_sethostname(void) {
        return syscall(SYS_sethostname, hostname_buf, strlen(hostname_buf));
}
static long p_setdomainname(void) {
        return syscall(SYS_setdomainname, hostname_buf, strlen(hostname_buf));
}

/* F6 the mount family */
static long p_mount_tmpfs(void) {
        return syscall(SYS_mount, "none", scratch_dir(), "tmpfs", 0, "size=1m");
}
static long p_mount_bind(void) {
        return syscall(SYS_mount, "/", scratch_dir(), NULL, MS_BIND | MS_REC, NULL);
}
static long p_mount_proc(void) {
        return syscall(SYS_mount, "proc", scratch_dir(), "proc", 0, NULL);
}
static long p_mount_remount(void) {
        return syscall(SYS_mount, NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL);
}
static long p_umount2(void) {
        return syscall(SYS_umount2, "/dev/shm", MNT_DETACH);
}
static long p_pivot_root(void) {
        return syscall(SYS_pivot_root, ".", ".");
}
static long p_chroot(void) {
        return syscall(SYS_chroot, scratch_dir());
}
static long p_fsopen(void) {
        return syscall(SYS_fsopen, "tmpfs", 0);
}
static long p_fsconfig(void) {
        return syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0);
}
static long p_fsmount(void) {
        return syscall(SYS_fsmount, -1, 0, 0);
}
static long p_fspick(void) {
        return syscall(SYS_fspick, AT_FDCWD, "/", 0);
}
static long p_move_mount(void) {
        return syscall(SYS_move_mount, -1, "", AT_FDCWD, scratch_dir(), MOVE_MOUNT_F_EMPTY_PATH_);
}
static long p_open_tree_clone(void) {
        return syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE_);
}
static long p_open_tree_plain(void) {
        return syscall(SYS_open_tree, AT_FDCWD, "/", 0);
}
static long p_mount_setattr(void) {
        uint64_t attr[4] = {MOUNT_ATTR_RDONLY_, 0, 0, 0}; /* struct mount_attr */
        return syscall(SYS_mount_setattr, AT_FDCWD, scratch_dir(), 0, attr, sizeof(attr));
}

/* F13 the kernel log */
static long p_syslog_read_all(void) {
        static char buf[4096];
        return syscall(SYS_syslog, 3 /* READ_ALL */, buf, sizeof(buf));
}
static long p_syslog_size(void) {
        return syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0);
}

static const Probe keyring[] = {
        {"keyctl_session", p_keyctl_session},
        {"keyctl_join", p_keyctl_join},
        {"add_key", p_add_key},
        {"request_key", p_request_key},
};
static const Probe module[] = {
        {"init_module", p_init_module},
        {"finit_module", p_finit_module},
        {"delete_module", p_delete_module},
};
static const Probe tracing[] = {
        {"bpf_map_create", p_bpf_map_create},
        {"perf_event_open", p_perf_event_open},
        {"userfaultfd", p_userfaultfd},
        {"io_uring_setup", p_io_uring_setup},
        {"io_uring_enter", p_io_uring_enter},
        {"io_uring_register", p_io_uring_register},
};
static const Probe ptrace_[] = {
        {"ptrace_seize_child", p_ptrace_seize_child},
        {"ptrace_attach_child", p_ptrace_attach_child},
        {"ptrace_seize_init", p_ptrace_seize_init},
        {"ptrace_traceme", p_ptrace_traceme},
        {"process_vm_readv", p_process_vm_readv},
        {"kcmp", p_kcmp},
        {"pidfd_getfd", p_pidfd_getfd},
};
static const Probe machine[] = {
        {"kexec_load", p_kexec_load},
        {"kexec_file_load", p_kexec_file_load},
        {"reboot", p_reboot},
        {"swapon", p_swapon},
        {"swapoff", p_swapoff},
        {"iopl", p_iopl},
        {"ioperm", p_ioperm},
        {"open_by_handle_at", p_open_by_handle_at},
};
static const Probe ns[] = {
        {"setns_mnt", p_setns_mnt},
        {"setns_user", p_setns_user},
        {"setns_net", p_setns_net},
        {"setns_pidfd", p_setns_pidfd},
        {"unshare_user", p_unshare_user},
        {"unshare_mnt", p_unshare_mnt},
        {"unshare_net", p_unshare_net},
        {"unshare_pid", p_unshare_pid},
        {"unshare_uts", p_unshare_uts},
        {"unshare_ipc", p_unshare_ipc},
        {"unshare_cgroup", p_unshare_cgroup},
        {"unshare_time", p_unshare_time},
};
static const Probe clone_[] = {
        {"clone_newuser", p_clone_newuser},
        {"clone_newns", p_clone_newns},
        {"clone_newpid", p_clone_newpid},
        {"clone_newnet", p_clone_newnet},
        {"clone3_plain", p_clone3_plain},
        {"clone3_newuser", p_clone3_newuser},
        {"unshare_user", p_unshare_user},
};
static const Probe sock[] = {
        {"socket_alg", p_socket_alg},
        {"socket_vsock", p_socket_vsock},
        {"socket_packet_raw", p_socket_packet_raw},
        {"socket_packet_dgram", p_socket_packet_dgram},
        {"socket_inet_raw", p_socket_inet_raw},
        {"socket_inet_raw_icmp", p_socket_inet_raw_icmp},
        {"socket_inet6_raw", p_socket_inet6_raw},
        {"socket_inet_packet", p_socket_inet_packet},
};
static const Probe rawbind[] = {
        {"raw_bind_packet", p_raw_bind_packet},
        {"raw_bind_inet", p_raw_bind_inet},
};
static const Probe abi[] = {
        {"i386_getpid", p_i386_getpid},
        {"i386_keyctl", p_i386_keyctl},
        {"i386_unshare_user", p_i386_unshare_user},
        {"i386_io_uring_setup", p_i386_io_uring_setup},
        {"i386_socket_vsock", p_i386_socket_vsock},
        {"i386_sethostname", p_i386_sethostname},
        {"x32_getpid", p_x32_getpid},
        {"x32_keyctl", p_x32_keyctl},
        {"x32_unshare_user", p_x32_unshare_user},
        {"x32_io_uring_setup", p_x32_io_uring_setup},
        {"x32_socket_vsock", p_x32_socket_vsock},
};
static const Probe tty[] = {
        {"tiocsti", p_tiocsti},
        {"tiocsti_high", p_tiocsti_high},
        {"tioclinux", p_tioclinux},
        {"tioclinux_high", p_tioclinux_high},
};
static const Probe clock_[] = {
        {"clock_settime", p_clock_settime},
        {"settimeofday", p_settimeofday},
        {"adjtimex_set", p_adjtimex_set},
        {"adjtimex_read", p_adjtimex_read},
        {"clock_adjtime_read", p_clock_adjtime_read},
};
static const Probe uts[] = {
        {"sethostname", p_sethostname},
        {"setdomainname", p_setdomainname},
};
static const Probe mount_[] = {
        {"mount_tmpfs", p_mount_tmpfs},
        {"mount_bind", p_mount_bind},
        {"mount_proc", p_mount_proc},
        {"mount_remount", p_mount_remount},
        {"umount2", p_umount2},
        {"pivot_root", p_pivot_root},
        {"chroot", p_chroot},
        {"fsopen", p_fsopen},
        {"fsconfig", p_fsconfig},
        {"fsmount", p_fsmount},
        {"fspick", p_fspick},
        {"move_mount", p_move_mount},
        {"open_tree_clone", p_open_tree_clone},
        {"open_tree_plain", p_open_tree_plain},
        {"mount_setattr", p_mount_setattr},
};
static const Probe syslog_[] = {
        {"syslog_read_all", p_syslog_read_all},
        {"syslog_size", p_syslog_size},
};
static const Probe cross[] = {
        {"socket_vsock", p_socket_vsock},
        {"io_uring_setup", p_io_uring_setup},
        {"io_uring_enter", p_io_uring_enter},
};

const ProbeGroup kernel_groups[] = {
        PROBE_GROUP("keyring", keyring), PROBE_GROUP("module", module),
        PROBE_GROUP("tracing", tracing), PROBE_GROUP("ptrace", ptrace_),
        PROBE_GROUP("machine", machine), PROBE_GROUP("ns", ns),
        PROBE_GROUP("clone", clone_),    PROBE_GROUP("sock", sock),
        PROBE_GROUP("rawbind", rawbind), PROBE_GROUP("abi", abi),
        PROBE_GROUP("tty", tty),         PROBE_GROUP("clock", clock_),
        PROBE_GROUP("uts", uts),         PROBE_GROUP("mount", mount_),
        PROBE_GROUP("syslog", syslog_),  PROBE_GROUP("cross", cross),
};
const size_t n_kernel_groups = sizeof(kernel_groups) / sizeof(kernel_groups[0]);
