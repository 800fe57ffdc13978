/* The qemu isolator: each sandbox a QEMU microVM whose init is forge-agent (DESIGN.md
 * section 5, docs/isolator-qemu.md). KVM where /dev/kvm opens, TCG otherwise. This
 * file is the ops table and its orchestrators; the command line is qemu-argv.c, disks
 * qemu-disk.c, control qemu-qmp.c, finding the QEMU process qemu-pid.c, its host cgroup
 * qemu-cgroup.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/log.h"
#include "basic/macros.h"
#include "basic/time-util.h"
#include "daemon/isolator/cgroup.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/qemu/qemu-internal.h"
#include "proto/decode.h"
#include "proto/proto.h"

/* From QEMU's start to the agent's hello: a TCG boot takes seconds on a busy host. */
#define BOOT_TIMEOUT_KVM_MS 30000
#define BOOT_TIMEOUT_TCG_MS 180000
#define TSC_KHZ_FALLBACK 2000000
/* After a restore, how long the first connection waits for the agent's hello before it
 * hangs up, and how long it then stays away (see boot_wait). */
#define RESTORE_HELLO_WAIT_MS 2000
#define RESTORE_HANGUP_MS 500

static const char *const qemu_candidates[] = {"/usr/bin/qemu-system-x86_64",
                                              "/usr/local/bin/qemu-system-x86_64"};

static char vm_dir[PATH_MAX];        /* $STATE/vm: guest parts (forgectl vm setup) */
static char sandboxes_dir[PATH_MAX]; /* $STATE/sandboxes as the manager spells it */

/* The connection each boot saw its agent greet on, kept for forged's first connect().
 * Hanging up and connecting again instead races in the guest: when the guest sees the
 * hangup after forged's HELLO has arrived, the agent drops that HELLO with the old
 * connection and both sides wait for each other (seen under load). Worker threads put,
 * the loop thread takes. */
typedef struct Greeted {
        struct Greeted *next;
        char id[SANDBOX_ID_MAX + 1];
        int fd;
} Greeted;

static pthread_mutex_t greeted_lock = PTHREAD_MUTEX_INITIALIZER;
static Greeted *greeted_list;

/* The kept connection of a sandbox, or -1; the caller owns it. */
static int greeted_take(const char *id) {
        int fd = -1;

        pthread_mutex_lock(&greeted_lock);
        for (Greeted **g = &greeted_list; *g; g = &(*g)->next)
                if (strcmp((*g)->id, id) == 0) {
                        Greeted *found = *g;
                        *g = found->next;
                        fd = found->fd;
                        free(found);
                        break;
                }
        pthread_mutex_unlock(&greeted_lock);
        return fd;
}

static void greeted_put(const char *id, int fd) {
        Greeted *g = calloc(1, sizeof(*g));
        int old = greeted_take(id);

        if (old >= 0)
                close(old);
        if (!g) {
                close(fd); /* forged's connect() makes a new one */
                return;
        }
        snprintf(g->id, sizeof(g->id), "%s", id);
        g->fd = fd;
        pthread_mutex_lock(&greeted_lock);
        g->next = greeted_list;
        greeted_list = g;
        pthread_mutex_unlock(&greeted_lock);
}

static const char *qemu_binary(void) {
        for (size_t i = 0; i < ELEMENTSOF(qemu_candidates); i++)
                if (access(qemu_candidates[i], X_OK) >= 0)
                        return qemu_candidates[i];
        return NULL;
}

static bool kvm_is_usable(void) {
        _cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        return fd >= 0;
}

/* The host's TSC rate, which a TCG guest reads through rdtsc. */
static uint64_t host_tsc_khz(void) {
        char buf[8192];
        const char *p;
        double mhz;

        if (read_full_file("/proc/cpuinfo", buf, sizeof(buf), NULL) < 0 || !(p = strstr(buf, "cpu MHz")) ||
            !(p = strchr(p, ':')) || sscanf(p + 1, "%lf", &mhz) != 1 || mhz <= 0)
                return TSC_KHZ_FALLBACK;
        return (uint64_t) (mhz * 1000);
}

/* The fds QEMU is started with, in launch_fds_open()'s order. */
enum {
        FD_AGENT = 3,
        FD_QMP,
        FD_DISK_RW,
        FD_DISK_RO,
        FD_INCOMING,
};

static int plan_check(const SandboxPlan *plan, ForgeError *err) {
        if (!cgroup_id_is_valid(plan->id))
                return forge_error_set(err, EINVAL, "invalid_sandbox", "invalid sandbox id '%s'", plan->id);
        if (!plan->dir || plan->dir[0] != '/')
                return forge_error_set(err, EINVAL, "invalid_sandbox", "sandbox dir must be absolute");
        return 0;
}

static int guest_part(const char *name, char *ret, ForgeError *err) {
        if (snprintf(ret, PATH_MAX, "%s/%s", vm_dir, name) >= PATH_MAX)
                return forge_error_set(err, ENAMETOOLONG, "isolator_failed", "state dir path too long");
        if (access(ret, R_OK) < 0)
                return forge_error_set(err, errno, "isolator_unavailable",
                                       "the microVM guest parts are missing (%s): run 'forgectl vm setup'",
                                       ret);
        return 0;
}

/* Each read-only bind (the host image's /usr) is a disk the builder made: binds/usr.ext4. */
static int bind_disk(const char *target, char *ret, ForgeError *err) {
        char name[PATH_MAX];

        if (strchr(target, ',') || strchr(target, ' ') || strlen(target) < 2 ||
            snprintf(name, sizeof(name), "binds/%s.ext4", target + 1) >= (int) sizeof(name))
                return forge_error_set(err, EINVAL, "isolator_failed", "cannot give a VM the bind '%s'",
                                       target);
        for (char *p = name + 6; *p; p++)
                if (*p == '/')
                        *p = '-';
        return guest_part(name, ret, err);
}

static int qemu_create(const SandboxPlan *plan, ForgeError *err) {
        char path[PATH_MAX];
        int r = plan_check(plan, err);

        if (r >= 0)
                r = guest_part("vmlinuz", path, err);
        if (r >= 0)
                r = guest_part("initramfs.img", path, err);
        for (size_t i = 0; r >= 0 && plan->ro_binds && plan->ro_binds[i]; i++)
                r = bind_disk(plan->ro_binds[i], path, err);
        if (r >= 0)
                r = qemu_image_disk(vm_dir, plan, path, err);
        if (r >= 0)
                r = qemu_writable_disk(plan, err);
        return r;
}

typedef struct BootPaths {
        char kernel[PATH_MAX], initramfs[PATH_MAX], image[PATH_MAX];
        char binds[QEMU_BINDS_MAX][PATH_MAX];
} BootPaths;

static int args_make(const SandboxPlan *plan, BootPaths *paths, QemuArgs *args, ForgeError *err) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int r;

        *args = (QemuArgs){
                .id = plan->id,
                .dir = plan->dir,
                .kernel = paths->kernel,
                .initramfs = paths->initramfs,
                .image_disk = paths->image,
                .kvm = kvm_is_usable(),
                .cpus = plan->limits.cpus_milli > 0 ? (plan->limits.cpus_milli + 999) / 1000 : 1,
                .memory_mb = plan->limits.memory_mb > 0 ? plan->limits.memory_mb : QEMU_MEMORY_MB_DEFAULT,
                .pids = plan->limits.pids > 0 ? plan->limits.pids : 0,
                .agent_fd = FD_AGENT,
                .qmp_fd = FD_QMP,
                .disk_rw_fd = FD_DISK_RW,
                .disk_ro_fd = FD_DISK_RO,
                .incoming_fd = -1,
                .uid = plan->uid_base,
        };
        if (ncpu > 0 && args->cpus > ncpu)
                args->cpus = ncpu;
        if (!args->kvm)
                args->tsc_khz = host_tsc_khz();
        r = guest_part("vmlinuz", paths->kernel, err);
        if (r >= 0)
                r = guest_part("initramfs.img", paths->initramfs, err);
        if (r >= 0)
                r = qemu_image_disk(vm_dir, plan, paths->image, err);
        for (size_t i = 0; r >= 0 && plan->ro_binds && plan->ro_binds[i]; i++) {
                if (i == QEMU_BINDS_MAX)
                        return forge_error_set(err, E2BIG, "isolator_failed", "too many binds for a VM");
                r = bind_disk(plan->ro_binds[i], paths->binds[i], err);
                args->bind_disks[i] = paths->binds[i];
                args->bind_targets[i] = plan->ro_binds[i];
                args->n_binds = i + 1;
        }
        return r;
}

/* What QEMU gets as fds 3 and up: the agent's and QMP's listening sockets, the writable
 * disk read-write and read-only, and for a restore the saved machine. */
typedef struct LaunchFds {
        int fd[5];
        size_t n;
} LaunchFds;

static void launch_fds_close(LaunchFds *f) {
        for (size_t i = 0; i < f->n; i++)
                close(f->fd[i]);
        f->n = 0;
}

static int launch_fds_open(const SandboxPlan *plan, bool restore, LaunchFds *f) {
        char disk[PATH_MAX];
        int r;

        *f = (LaunchFds){.n = 0};
        r = path_join(disk, sizeof(disk), plan->dir, "disk.img");
        if (r >= 0 && (r = isolator_unix_listen(plan->dir, "agent.sock", &f->fd[f->n])) >= 0)
                f->n++;
        if (r >= 0 && (r = isolator_unix_listen(plan->dir, "qmp.sock", &f->fd[f->n])) >= 0)
                f->n++;
        for (int i = 0; r >= 0 && i < 2; i++) {
                int fd = open(disk, (i == 0 ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        r = -errno;
                else
                        f->fd[f->n++] = fd;
        }
        if (r >= 0 && restore && (r = qemu_snapshot_open_memory(plan, &f->fd[f->n])) >= 0)
                f->n++;
        if (r < 0)
                launch_fds_close(f);
        return r;
}

/* QEMU daemonizes once its devices are up; its parent's exit status says whether. It
 * starts in the sandbox's cgroups: the child that execs it is held until forged moved it
 * there, so QEMU, its daemonized fork and every thread of theirs never run outside and
 * every page they touch is charged there. (Moving the daemonized QEMU in afterwards
 * would leave what it allocated while the guest booted charged to forged, and could
 * miss a fork racing the move.) */
static int qemu_launch(const SandboxPlan *plan, QemuArgs *args, ForgeError *err) {
        const char *qemu = qemu_binary();
        _cleanup_close_ int log_fd = -1;
        char **argv = NULL;
        char path[PATH_MAX];
        LaunchFds fds = {.n = 0};
        int r;

        if (!qemu)
                return forge_error_set(err, ENOENT, "isolator_unavailable",
                                       "qemu-system-x86_64 is not installed");
        r = path_join(path, sizeof(path), plan->dir, "qemu.log");
        if (r >= 0) {
                log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
                r = log_fd < 0 ? -errno : 0;
        }
        if (r >= 0)
                r = launch_fds_open(plan, args->incoming_fd >= 0, &fds);
        if (r >= 0)
                r = qemu_argv_build(args, &argv);
        if (r >= 0)
                r = isolator_command_run_held(qemu, argv, log_fd, fds.fd, fds.n, qemu_cgroup_enter,
                                              (void *) plan->id);
        proto_strv_free(argv);
        launch_fds_close(&fds);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "QEMU did not start (see %s): %s", path,
                                       strerror(-r));
        /* What this VM is, for a snapshot of it to carry. */
        r = qemu_machine_write(args, qemu);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot record the VM's machine: %s",
                                       strerror(-r));
        return 0;
}

/* Reads frames until the agent's hello has been read whole: 1, or 0 once until has
 * passed. A restored agent may first send what it had queued for the host it had before
 * the snapshot, maybe from the middle of a frame: anything that does not decode is
 * -EBADMSG. */
static int hello_wait(const SandboxPlan *plan, int fd, int64_t until, ForgeError *err) {
        uint8_t header[PROTO_HEADER_SIZE];
        size_t got = 0, skip = 0;
        bool greeted = false;
        ProtoHeader h;

        for (;;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                uint8_t sink[4096];
                ssize_t n;

                if (time_mono_ms() > until)
                        return 0;
                if (qemu_pid(plan->dir) <= 0)
                        return forge_error_set(err, ECHILD, "isolator_failed",
                                               "the VM stopped while booting (see %s/console.log)",
                                               plan->dir);
                if (poll(&pfd, 1, 200) <= 0)
                        continue;
                if (skip > 0)
                        n = read(fd, sink, MIN(skip, sizeof(sink)));
                else
                        n = read(fd, header + got, sizeof(header) - got);
                if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
                        return forge_error_set(err, EIO, "isolator_failed",
                                               "the VM's agent port closed while booting");
                if (n <= 0)
                        continue;
                if (skip > 0) {
                        skip -= (size_t) n;
                        if (skip == 0 && greeted)
                                return 1;
                        continue;
                }
                got += (size_t) n;
                if (got < sizeof(header))
                        continue;
                if (proto_header_decode(header, &h) < 0)
                        return -EBADMSG;
                greeted = h.type == PROTO_HELLO;
                if (greeted && h.length == 0)
                        return 1;
                got = 0;
                skip = h.length;
        }
}

/* The host's HELLO. To an agent that still holds the connection of a host before us (a
 * restored VM, saved while forged was connected; or a hangup and a connect so close
 * that the guest saw neither) it is a second HELLO on that connection, and the agent
 * greets us as a new host (agent/dispatch.c); to any other it is the usual first.
 *
 * With plan, it also tells the agent what the machine must be now (agent/vm-sync.c): the
 * host's wall clock, the sandbox's hostname and its pids limit, which a restored VM has
 * from the moment and the sandbox it was saved from. */
static int hello_send(int fd, const SandboxPlan *plan) {
        ProtoBuf b = {0};
        ssize_t n;
        int r;

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        if (plan) {
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                proto_buf_put_int(&b, PROTO_TAG_TIME_NS, (int64_t) now.tv_sec * 1000000000 + now.tv_nsec);
                proto_buf_put_str(&b, PROTO_TAG_HOSTNAME, plan->hostname ? plan->hostname : plan->id);
                proto_buf_put_int(&b, PROTO_TAG_PIDS_MAX, plan->limits.pids > 0 ? plan->limits.pids : 0);
        }
        r = proto_frame_finish(&b);
        /* A few bytes on a fresh socket: the kernel takes them at once. */
        n = r < 0 ? -1 : write(fd, b.data, b.len);
        if (r >= 0 && n != (ssize_t) b.len)
                r = n < 0 ? -errno : -EIO;
        proto_buf_free(&b);
        return r;
}

/* Waits for the agent's hello on the port and keeps that connection for forged's
 * connect() (greeted_put): forged's HELLO on it is a second HELLO, and the agent greets
 * again (agent/dispatch.c).
 *
 * Once the agent has greeted, a HELLO with the machine's settings follows (hello_send).
 * Not sooner: the first HELLO can wait until the guest opens its port, seconds into a
 * boot, and its clock would be that old; and after a restore it may be lost in an old
 * host's half-read frame. The agent takes the second as a new host too and
 * greets once more; forged's client reads that greeting with its own.
 *
 * After a restore the agent may first send what it had queued for its old host (which
 * hello_wait() skips), or it may have been in the middle of reading a frame of the old
 * host's, which our HELLO then garbles: the agent drops that connection, opens the
 * port again and greets. Should no hello come all the same, the wait ends by hanging up,
 * pausing so that the guest sees the hangup (a hangup and a connect in quick succession
 * cancel out in the guest) and connecting again, waiting longer each time. */
static int boot_wait(const SandboxPlan *plan, bool kvm, bool restored, ForgeError *err) {
        int64_t deadline = time_mono_ms() + (kvm ? BOOT_TIMEOUT_KVM_MS : BOOT_TIMEOUT_TCG_MS);
        int64_t patience = restored ? RESTORE_HELLO_WAIT_MS : deadline;

        for (;;) {
                _cleanup_close_ int fd = -1;
                int r = isolator_unix_connect(plan->dir, "agent.sock", &fd);

                if (r >= 0)
                        r = hello_send(fd, NULL);
                if (r < 0)
                        return forge_error_set(err, r, "isolator_failed",
                                               "cannot reach the VM's agent port: %s", strerror(-r));
                r = hello_wait(plan, fd, MIN(time_mono_ms() + patience, deadline), err);
                if (r > 0) {
                        r = hello_send(fd, plan);
                        if (r < 0)
                                return forge_error_set(err, r, "isolator_failed",
                                                       "cannot greet the VM's agent: %s", strerror(-r));
                        greeted_put(plan->id, TAKE_FD(fd));
                        return 0;
                }
                if (r < 0 && r != -EBADMSG)
                        return r;
                if (r == -EBADMSG && !restored)
                        return forge_error_set(err, EPROTO, "isolator_failed",
                                               "the VM's agent did not greet");
                if (time_mono_ms() + RESTORE_HANGUP_MS > deadline)
                        return forge_error_set(err, ETIMEDOUT, "isolator_failed",
                                               "the VM's agent did not start in time (see %s/console.log)",
                                               plan->dir);
                log_sb_warn(plan->id, 0, "no greeting from the restored agent: connecting again");
                close(TAKE_FD(fd));
                time_sleep_ms(RESTORE_HANGUP_MS);
                patience *= 2;
        }
}

static int qemu_start(const SandboxPlan *plan, ForgeError *err) {
        bool restore = qemu_snapshot_has_memory(plan) > 0;
        int64_t started = time_mono_ms(), launched = 0, loaded = 0;
        BootPaths paths;
        QemuArgs args;
        int r = plan_check(plan, err);

        if (r < 0)
                return r;
        if (qemu_pid(plan->dir) > 0)
                return 0;
        r = args_make(plan, &paths, &args, err);
        if (r >= 0 && restore) {
                args.incoming_fd = FD_INCOMING;
                r = qemu_snapshot_check(plan, &args, qemu_binary(), err);
        }
        if (r >= 0 && (r = qemu_cgroup_prepare(&args, plan->limits.cpus_milli)) < 0)
                forge_error_set(err, r, "isolator_failed", "cannot make the VM's cgroups: %s", strerror(-r));
        if (r >= 0)
                r = qemu_launch(plan, &args, err);
        launched = loaded = time_mono_ms();
        if (r >= 0 && restore) {
                r = qemu_snapshot_resume(plan, err);
                loaded = time_mono_ms();
        }
        if (r >= 0)
                r = boot_wait(plan, args.kvm, restore, err);
        if (r >= 0)
                log_sb_info(plan->id, "microVM %s (%s) in %lld ms: QEMU up %lld, %s %lld, agent %lld",
                            restore ? "restored from a snapshot" : "booted", args.kvm ? "kvm" : "tcg",
                            (long long) (time_mono_ms() - started), (long long) (launched - started),
                            restore ? "machine loaded" : "-", (long long) (loaded - launched),
                            (long long) (time_mono_ms() - loaded));
        return r;
}

static int qemu_connect(const SandboxPlan *plan, int *ret_fd) {
        int fd = greeted_take(plan->id);

        if (fd >= 0) {
                *ret_fd = fd;
                return 0;
        }
        return isolator_unix_connect(plan->dir, "agent.sock", ret_fd);
}

/* A hibernated VM lives on in its file. */
static int qemu_is_alive(const SandboxPlan *plan) {
        return qemu_pid(plan->dir) > 0 || qemu_is_hibernated(plan);
}

/* The VM as the host sees it: its cgroup's CPU time, memory (guest RAM as far as the
 * guest touched it, QEMU's own, the page cache of its disks) and tasks (QEMU's threads),
 * and the writable disk's allocated blocks. */
static int qemu_stats(const SandboxPlan *plan, SandboxUsage *ret) {
        char path[PATH_MAX];
        struct stat st;
        int r;

        r = cgroup_get_usage(plan->id, ret);
        if (r < 0)
                return r;
        ret->disk_bytes = -1;
        if (path_join(path, sizeof(path), plan->dir, "disk.img") >= 0 && stat(path, &st) >= 0)
                ret->disk_bytes = (int64_t) st.st_blocks * 512;
        return 0;
}

static int qemu_suspend(const SandboxPlan *plan) {
        if (qemu_pid(plan->dir) <= 0 && qemu_is_hibernated(plan))
                return 0;
        return qmp_execute(plan->dir, "stop");
}

/* QEMU goes once its machine is on disk; its cgroups stay, empty, for the wake-up. */
static int qemu_hibernate(const SandboxPlan *plan, ForgeError *err) {
        int kept, r;

        if (qemu_pid(plan->dir) <= 0)
                return qemu_is_hibernated(plan) ? 0
                                                : forge_error_set(err, ESRCH, "isolator_failed",
                                                                  "the VM's QEMU is not running");
        r = qemu_hibernation_save(plan, err);
        if (r < 0)
                return r;
        kept = greeted_take(plan->id);
        if (kept >= 0)
                close(kept);
        r = qemu_kill(plan->dir);
        if (r < 0)
                return forge_error_set(err, -r, "isolator_failed",
                                       "cannot stop the hibernated VM's QEMU: %s", strerror(-r));
        return 0;
}

/* Loads a hibernated machine. One that this host no longer starts the same way (guest
 * parts rebuilt, QEMU upgraded while it slept) boots anew with its disk instead, as
 * after a crash: a sandbox that could never wake up again would be worse. */
static int hibernation_wake(const SandboxPlan *plan) {
        char dir[PATH_MAX];
        SandboxPlan from = *plan;
        ForgeError err = {0};
        int r = qemu_hibernation_path(plan, dir);

        if (r < 0)
                return r;
        from.from_dir = dir;
        r = qemu_start(&from, &err);
        if (r == -EXDEV) {
                log_sb_warn(plan->id, r,
                            "cannot load its hibernated machine (%s): booting it with its files",
                            err.message);
                r = qemu_start(plan, &err);
        }
        if (r < 0) {
                log_sb_error(plan->id, r, "cannot wake from hibernation: %s", err.message);
                qemu_kill(plan->dir);
                return r;
        }
        r = qemu_hibernation_drop(plan);
        if (r < 0)
                log_sb_warn(plan->id, r, "cannot remove the loaded hibernation");
        return 0;
}

/* A hibernation next to a running QEMU is one that forged died saving or loading: the
 * running machine is the newer, and the file goes. */
static int qemu_resume(const SandboxPlan *plan) {
        if (qemu_pid(plan->dir) <= 0)
                return qemu_is_hibernated(plan) ? hibernation_wake(plan) : -ESRCH;
        if (qemu_hibernation_drop(plan) < 0)
                log_sb_warn(plan->id, 0, "cannot remove an outdated hibernation");
        return qmp_execute(plan->dir, "cont");
}

/* Kills QEMU and removes its cgroups and sockets; the writable disk stays (a revive boots
 * it again). The cgroups hold everything QEMU started; the pidfile lock also finds a
 * QEMU that runs outside them (started by a forged from before VMs had cgroups). */
static int qemu_destroy(const SandboxPlan *plan) {
        static const char *const leftovers[] = {"agent.sock", "qmp.sock", "qemu.pid"};
        _cleanup_close_ int dirfd = -1;
        int r, k;

        if (!plan->dir)
                return -EINVAL;
        int kept = greeted_take(plan->id);
        if (kept >= 0)
                close(kept);
        r = qemu_cgroup_destroy(plan->id);
        k = qemu_kill(plan->dir);
        if (r >= 0)
                r = k;
        if (r < 0)
                return r;
        dirfd = open(plan->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        for (size_t i = 0; dirfd >= 0 && i < ELEMENTSOF(leftovers); i++)
                if (unlinkat(dirfd, leftovers[i], 0) < 0 && errno != ENOENT && r >= 0)
                        r = -errno;
        return r;
}

/* By cgroup (which also finds what ns's reap would, should ns not be ready here) and by
 * command line (a QEMU started outside any cgroup, by a forged from before they had). */
static int qemu_reap(bool (*known)(const char *id, void *userdata), void *userdata) {
        int r = qemu_cgroup_reap_unknown(known, userdata);
        int p = qemu_reap_unknown(sandboxes_dir, known, userdata);

        return r < 0 ? r : p;
}

static int qemu_init(const char *state_dir, ForgeError *err) {
        char abs[PATH_MAX];

        if (!realpath(state_dir, abs))
                return forge_error_set(err, errno, "internal", "cannot resolve %s", state_dir);
        if (snprintf(vm_dir, sizeof(vm_dir), "%s/vm", abs) >= (int) sizeof(vm_dir) ||
            snprintf(sandboxes_dir, sizeof(sandboxes_dir), "%s/sandboxes", state_dir) >=
                    (int) sizeof(sandboxes_dir))
                return forge_error_set(err, ENAMETOOLONG, "internal", "state dir path too long");
        return 0;
}

static void qemu_image_removed(const char *image_name) {
        int r = qemu_image_disk_remove(vm_dir, image_name);

        if (r < 0)
                log_warn_errno(-r, "cannot remove the VM disk of image %s", image_name);
}

/* Nothing host-wide to release: each VM's resources live in its sandbox dir. */
static void qemu_fini(void) {
}

static int qemu_available(ForgeError *err) {
        if (!qemu_binary())
                return forge_error_set(
                        err, ENOENT, "isolator_unavailable",
                        "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)");
        return 0;
}

/* The default only where it is fast: with KVM, and with its guest parts in place. */
static int qemu_preferred(const char *state_dir, ForgeError *why) {
        char path[PATH_MAX];

        if (!kvm_is_usable())
                return forge_error_set(why, ENODEV, "isolator_unavailable", "no usable /dev/kvm");
        for (size_t i = 0; i < 2; i++) {
                static const char *const parts[] = {"vmlinuz", "initramfs.img"};
                if (snprintf(path, sizeof(path), "%s/vm/%s", state_dir, parts[i]) >= (int) sizeof(path) ||
                    access(path, R_OK) < 0)
                        return forge_error_set(
                                why, ENOENT, "isolator_unavailable",
                                "KVM is there but the guest parts are not: run 'forgectl vm setup'");
        }
        snprintf(why->message, sizeof(why->message), "KVM and the guest parts are there");
        return 0;
}

const IsolatorOps isolator_qemu = {
        .name = "qemu",
        .init = qemu_init,
        .fini = qemu_fini,
        .available = qemu_available,
        .preferred = qemu_preferred,
        .create = qemu_create,
        .start = qemu_start,
        .connect = qemu_connect,
        .is_alive = qemu_is_alive,
        .stats = qemu_stats,
        .suspend = qemu_suspend,
        .resume = qemu_resume,
        .hibernate = qemu_hibernate,
        .clock_stops = true,
        .snapshot = qemu_snapshot,
        .snapshots_memory = true,
        .destroy = qemu_destroy,
        .reap_unknown = qemu_reap,
        .image_removed = qemu_image_removed,
};
