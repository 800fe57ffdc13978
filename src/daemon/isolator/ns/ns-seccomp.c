/* The sandbox's seccomp filter (SECURITY.md, "Seccomp"): a denylist over the native
 * architecture, built once per forged process with libseccomp and exported to a plain BPF
 * program. The clone child only hands that program to seccomp(2): no allocation after
 * clone. Calls that the kernel already refuses without capabilities are listed anyway:
 * the filter is the second wall, and it also shrinks the kernel code a sandbox reaches. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "basic/macros.h"
#include "daemon/isolator/ns/ns-internal.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the seccomp filter knows x86_64 and aarch64 only"
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

typedef struct DenyRule {
        const char *name; /* resolved at run time: names the native arch lacks are skipped */
        int errnum;
} DenyRule;

/* Each entry: why a sandbox must not have it. EPERM unless said otherwise. */
static const DenyRule deny_rules[] = {
        /* Keyrings are shared kernel state with a long bug history, not per container. */
        {"keyctl", EPERM},
        {"add_key", EPERM},
        {"request_key", EPERM},
        /* New namespaces would hand the sandbox fresh capabilities to attack with. */
        {"unshare", EPERM},
        /* Joining another namespace is only ever an escape attempt. */
        {"setns", EPERM},
        /* The mount tree is fixed at start; no remounting /usr or /proc read-write. */
        {"mount", EPERM},
        {"umount2", EPERM},
        {"pivot_root", EPERM},
        {"chroot", EPERM},
        /* The new mount API, same reason as mount(2). */
        {"fsopen", EPERM},
        {"fsconfig", EPERM},
        {"fsmount", EPERM},
        {"fspick", EPERM},
        {"move_mount", EPERM},
        {"open_tree", EPERM},
        {"mount_setattr", EPERM},
        /* clone3 passes flags in memory that BPF cannot inspect: ENOSYS makes libcs fall
         * back to clone(2), whose flags the rules below do check. */
        {"clone3", ENOSYS},
        /* eBPF programs and perf events are large kernel attack surfaces. */
        {"bpf", EPERM},
        {"perf_event_open", EPERM},
        /* userfaultfd makes kernel races easy to win (a classic exploit primitive). */
        {"userfaultfd", EPERM},
        /* io_uring bypasses seccomp for the operations it performs and has a poor record. */
        {"io_uring_setup", EPERM},
        {"io_uring_enter", EPERM},
        {"io_uring_register", EPERM},
        /* Loading code into the kernel. */
        {"init_module", EPERM},
        {"finit_module", EPERM},
        {"delete_module", EPERM},
        /* Replacing or stopping the running kernel. */
        {"kexec_load", EPERM},
        {"kexec_file_load", EPERM},
        {"reboot", EPERM},
        /* Host-wide swap, process accounting and disk quotas. */
        {"swapon", EPERM},
        {"swapoff", EPERM},
        {"acct", EPERM},
        {"quotactl", EPERM},
        {"quotactl_fd", EPERM},
        /* Reading or writing other processes' memory; the agent must stay untouchable. */
        {"ptrace", EPERM},
        {"process_vm_readv", EPERM},
        {"process_vm_writev", EPERM},
        /* kcmp leaks kernel pointer order; pidfd_getfd steals another process's fds. */
        {"kcmp", EPERM},
        {"pidfd_getfd", EPERM},
        /* Obsolete profiling interface that exposes kernel state. */
        {"lookup_dcookie", EPERM},
        /* fanotify watches whole mounts and filesystems. */
        {"fanotify_init", EPERM},
        /* The clock is the host's, shared by every sandbox. */
        {"settimeofday", EPERM},
        {"clock_settime", EPERM},
        {"clock_adjtime", EPERM},
        {"adjtimex", EPERM},
        /* The UTS name is fixed by forged (and is the sandbox id). */
        {"sethostname", EPERM},
        {"setdomainname", EPERM},
        /* The kernel log leaks host addresses and activity. */
        {"syslog", EPERM},
        /* Raw port I/O and real-mode execution. */
        {"iopl", EPERM},
        {"ioperm", EPERM},
        {"vm86", EPERM},
        {"vm86old", EPERM},
        /* Opens files by handle, bypassing the path walk (the "shocker" escape). */
        {"open_by_handle_at", EPERM},
        /* Obsolete calls nobody needs and few have audited. */
        {"uselib", EPERM},
        {"ustat", EPERM},
        {"sysfs", EPERM},
        {"nfsservctl", EPERM},
        /* Hangs up the terminal of other processes in the session. */
        {"vhangup", EPERM},
        /* NUMA policy calls move memory between host nodes and touch host-wide state. */
        {"mbind", EPERM},
        {"set_mempolicy", EPERM},
        {"get_mempolicy", EPERM},
        {"set_mempolicy_home_node", EPERM},
        {"migrate_pages", EPERM},
        {"move_pages", EPERM},
};

/* clone(2) with any of these creates namespaces: EPERM (the first argument holds the
 * flags on x86_64 and on every other architecture Forge builds for). CLONE_NEWTIME
 * shares its bit with the exit signal in clone(2) and is only reachable via clone3 or
 * unshare, both denied above. */
static const unsigned long clone_ns_flags[] = {
        CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

static int rules_add_simple(scmp_filter_ctx ctx) {
        for (size_t i = 0; i < ELEMENTSOF(deny_rules); i++) {
                int nr = seccomp_syscall_resolve_name(deny_rules[i].name);
                if (nr == __NR_SCMP_ERROR)
                        continue;
                int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(deny_rules[i].errnum), nr, 0);
                /* A pseudo number: the call does not exist on this architecture. */
                if (r < 0 && nr >= 0)
                        return r;
        }
        return 0;
}

static int rules_add_clone(scmp_filter_ctx ctx) {
        for (size_t i = 0; i < ELEMENTSOF(clone_ns_flags); i++) {
                int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                         SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ioctl's request and socket's family are 32-bit in the kernel: compare the low 32 bits
 * only, so garbage in the upper half cannot slip a request past the filter. */
#define LOW32 0xffffffffULL

static int rules_add_args(scmp_filter_ctx ctx) {
        int r;

        /* TIOCSTI pushes input into a terminal: command injection into whoever owns it. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, (scmp_datum_t) TIOCSTI));
        /* TIOCLINUX can also inject input (selection paste) on virtual consoles. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, (scmp_datum_t) TIOCLINUX));
        /* AF_ALG exposes the kernel crypto API, a steady source of CVEs. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_ALG));
        /* AF_VSOCK reaches the hypervisor and other VMs' vsock endpoints. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_VSOCK));
        return r;
}

/* personality(2) may only take the values Docker's profile allows: PER_LINUX, PER_LINUX32,
 * UNAME26 with either, and 0xffffffff (query). Other flags (ADDR_NO_RANDOMIZE,
 * READ_IMPLIES_EXEC, MMAP_PAGE_ZERO...) weaken exploit mitigations. libseccomp 2.5 cannot
 * express "argument not in this set" (one comparison per argument and rule), so this one
 * rule is a few hand-written BPF instructions placed before libseccomp's program; every
 * other system call falls through to it. The kernel reads the argument as 32 bits. */
static const uint32_t personality_allowed[] = {PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32,
                                               0xffffffffu};
/* load arch, test, load nr, test, load arg, one test per value, two returns */
#define PERSONALITY_PREFIX_LEN (5 + ELEMENTSOF(personality_allowed) + 2)

static void personality_prefix(struct sock_filter *f) {
        const size_t n = ELEMENTSOF(personality_allowed);
        size_t i = 0;

        /* Not our architecture or not personality: jump past the prefix. */
        f[i++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
        f[i++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 0,
                                               (uint8_t) (PERSONALITY_PREFIX_LEN - 2));
        f[i++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        f[i++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0,
                                               (uint8_t) (PERSONALITY_PREFIX_LEN - 4));
        /* args[0], low half (little endian). */
        f[i++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
        for (size_t k = 0; k < n; k++)
                /* On a match, skip the remaining tests and the EPERM return. */
                f[i++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, personality_allowed[k],
                                                       (uint8_t) (n - k), 0);
        f[i++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
        f[i++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

static int filter_build(scmp_filter_ctx *ret) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        int r;

        if (!ctx)
                return -ENOMEM;
        /* Only the native ABI: i386 (int 0x80) and x32 calls get ENOSYS without running,
         * which keeps every rule above from being bypassed through another syscall table. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS));
        /* The filter is installed by raw seccomp(2) in the child, not by libseccomp. */
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r >= 0)
                r = rules_add_simple(ctx);
        if (r >= 0)
                r = rules_add_clone(ctx);
        if (r >= 0)
                r = rules_add_args(ctx);
        if (r < 0) {
                seccomp_release(ctx);
                return r;
        }
        *ret = ctx;
        return 0;
}

/* libseccomp 2.5 exports to an fd only: a memfd, read back into memory. */
static int filter_export(scmp_filter_ctx ctx, struct sock_fprog *ret) {
        _cleanup_close_ int fd = memfd_create("forge-seccomp", MFD_CLOEXEC);
        struct sock_filter *prog;
        struct stat st;
        size_t n, total;
        int r;

        if (fd < 0)
                return -errno;
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0)
                return -errno;
        n = (size_t) st.st_size / sizeof(struct sock_filter);
        if (n == 0 || (size_t) st.st_size % sizeof(struct sock_filter) != 0)
                return -EINVAL;
        total = PERSONALITY_PREFIX_LEN + n;
        if (total > BPF_MAXINSNS)
                return -E2BIG;
        prog = calloc(total, sizeof(*prog));
        if (!prog)
                return -ENOMEM;
        personality_prefix(prog);
        if (pread(fd, prog + PERSONALITY_PREFIX_LEN, (size_t) st.st_size, 0) != st.st_size) {
                free(prog);
                return -EIO;
        }
        *ret = (struct sock_fprog){.len = (unsigned short) total, .filter = prog};
        return 0;
}

static struct sock_fprog program;
static int program_error;
static pthread_once_t program_once = PTHREAD_ONCE_INIT;

static void program_init(void) {
        scmp_filter_ctx ctx;
        int r = filter_build(&ctx);

        if (r >= 0) {
                r = filter_export(ctx, &program);
                seccomp_release(ctx);
        }
        program_error = r < 0 ? r : 0;
}

int ns_seccomp_program(const struct sock_fprog **ret) {
        pthread_once(&program_once, program_init);
        if (program_error < 0)
                return program_error;
        *ret = &program;
        return 0;
}
