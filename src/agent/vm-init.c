/* forge-agent as the init of a microVM (docs/isolator-qemu.md): the kernel runs it from
 * the initramfs with no arguments. It loads the modules the initramfs carries, builds the
 * sandbox's root (the image disk read-only under the writable disk, in an overlay, plus
 * the read-only bind disks), switches into it, makes the cgroup the sandbox's commands
 * run in and finds the virtio-serial port it then serves the protocol on. The host names
 * every disk by its virtio serial and passes the rest on the kernel command line
 * (forge.hostname=, forge.binds=, forge.pids=). */
#include "agent/agent.h"
#include "agent/vm.h"
#include "basic/fs-util.h"
#include "basic/log.h"
#include "basic/macros.h"
#include "basic/time-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define VM_CMDLINE_MAX 4096
#define VM_DEVICE_WAIT_MS 30000 /* modules probe devices asynchronously; TCG is slow */

/* Boot failures are fatal and logged where they happen, on the console. */
_printf_(2, 3) static int vm_fail(int errnum, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        errnum = abs(errnum);
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_error_errno(errnum, "%s", msg);
        return -errnum;
}

static int mount_step(const char *source, const char *target, const char *type, unsigned long flags,
                      const char *data) {
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                return vm_fail(errno, "cannot create %s", target);
        if (mount(source, target, type, flags, data) < 0)
                return vm_fail(errno, "cannot mount %s on %s", source, target);
        return 0;
}

/* forge.pids=N: a positive count, or 0 for none. */
static int cmdline_pids(const char *s, VmConfig *c) {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || end == s || *end || v < 0)
                return vm_fail(EINVAL, "bad forge.pids '%s'", s);
        c->pids_max = v;
        return 0;
}

/* forge.hostname=ID, forge.binds=/a,/b and forge.pids=N; other words are the kernel's. */
int vm_cmdline_parse(char *cmdline, VmConfig *c) {
        char *save = NULL;
        int r = 0;

        for (char *w = strtok_r(cmdline, " \n", &save); w && r >= 0; w = strtok_r(NULL, " \n", &save)) {
                if (strncmp(w, "forge.hostname=", 15) == 0)
                        snprintf(c->hostname, sizeof(c->hostname), "%s", w + 15);
                else if (strncmp(w, "forge.pids=", 11) == 0)
                        r = cmdline_pids(w + 11, c);
                else if (strncmp(w, "forge.binds=", 12) == 0) {
                        char *bsave = NULL;
                        for (char *b = strtok_r(w + 12, ",", &bsave); b; b = strtok_r(NULL, ",", &bsave)) {
                                if (c->n_binds == VM_BINDS_MAX || b[0] != '/')
                                        return vm_fail(EINVAL, "bad forge.binds entry '%s'", b);
                                snprintf(c->binds[c->n_binds++], sizeof(c->binds[0]), "%s", b);
                        }
                }
        }
        return r;
}

static int cmdline_read(VmConfig *c) {
        char buf[VM_CMDLINE_MAX];
        int r = read_full_file("/proc/cmdline", buf, sizeof(buf), NULL);

        if (r < 0)
                return vm_fail(r, "cannot read /proc/cmdline");
        return vm_cmdline_parse(buf, c);
}

/* Every /lib/modules/NAME.ko in the order the builder wrote (dependencies first). */
static int modules_load(void) {
        char order[4096], *save = NULL;
        int r = read_full_file("/lib/modules/order", order, sizeof(order), NULL);

        if (r < 0)
                return vm_fail(r, "cannot read /lib/modules/order");
        for (char *m = strtok_r(order, "\n", &save); m; m = strtok_r(NULL, "\n", &save)) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "/lib/modules/%s.ko", m);
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return vm_fail(errno, "cannot open %s", path);
                if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                        return vm_fail(errno, "cannot load module %s", m);
        }
        return 0;
}

/* The /dev node of the entry under dir (/sys/block, /sys/class/virtio-ports) whose
 * attribute file reads want, waiting for the device to be probed. */
static int device_find(const char *dir, const char *attr, const char *want, char *ret, size_t size) {
        for (int waited = 0; waited < VM_DEVICE_WAIT_MS; waited += 10) {
                DIR *d = opendir(dir);
                struct dirent *de;

                while (d && (de = readdir(d))) {
                        char path[PATH_MAX], value[64];
                        size_t len;

                        if (de->d_name[0] == '.' ||
                            snprintf(path, sizeof(path), "%s/%s/%s", dir, de->d_name, attr) >=
                                    (int) sizeof(path) ||
                            read_full_file(path, value, sizeof(value), &len) < 0)
                                continue;
                        value[strcspn(value, "\n")] = 0;
                        if (strcmp(value, want) == 0) {
                                snprintf(ret, size, "/dev/%s", de->d_name);
                                closedir(d);
                                return 0;
                        }
                }
                if (d)
                        closedir(d);
                time_sleep_ms(10);
        }
        return vm_fail(ENODEV, "no device with %s '%s' under %s", attr, want, dir);
}

static int disk_mount(const char *serial, const char *target, unsigned long flags) {
        char dev[PATH_MAX];
        int r = device_find("/sys/block", "serial", serial, dev, sizeof(dev));

        if (r < 0)
                return r;
        return mount_step(dev, target, "ext4", flags, NULL);
}

/* /run/root: the image read-only, under upper/ of the writable disk, plus the binds. */
static int root_build(const VmConfig *c) {
        char opts[256];
        int r;

        r = disk_mount("image", "/run/image", MS_RDONLY | MS_NODEV);
        if (r >= 0)
                r = disk_mount("disk", "/run/disk", MS_NODEV);
        if (r < 0)
                return r;
        if ((mkdir("/run/disk/upper", 0755) < 0 && errno != EEXIST) ||
            (mkdir("/run/disk/work", 0700) < 0 && errno != EEXIST))
                return vm_fail(errno, "cannot create the overlay dirs on the writable disk");
        snprintf(opts, sizeof(opts), "lowerdir=/run/image,upperdir=/run/disk/upper,workdir=/run/disk/work");
        r = mount_step("overlay", "/run/root", "overlay", MS_NODEV, opts);
        for (size_t i = 0; r >= 0 && i < c->n_binds; i++) {
                char serial[32], target[PATH_MAX];
                snprintf(serial, sizeof(serial), "bind%zu", i);
                if (path_join(target, sizeof(target), "/run/root", c->binds[i]) < 0)
                        return vm_fail(ENAMETOOLONG, "bind path too long");
                r = disk_mount(serial, target, MS_RDONLY | MS_NODEV | MS_NOSUID);
        }
        return r;
}

/* /dev, /proc and /sys move into the new root, which becomes / (the initramfs stays
 * underneath, unreachable: it holds only the agent and a few modules). */
static int root_switch(void) {
        static const char *const moved[] = {"/dev", "/proc", "/sys"};
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(moved) && r >= 0; i++) {
                char target[PATH_MAX];
                snprintf(target, sizeof(target), "/run/root%s", moved[i]);
                r = mount_step(moved[i], target, NULL, MS_MOVE, NULL);
        }
        if (r < 0)
                return r;
        if (chdir("/run/root") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
            chdir("/") < 0)
                return vm_fail(errno, "cannot switch to the sandbox's root");
        return 0;
}

static int mounts_late(void) {
        int r = mount_step("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620");
        if (r >= 0)
                r = mount_step("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        if (r >= 0)
                r = mount_step("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
        return r;
}

/* The cgroup of the sandbox's commands (vm.h), with limits.pids as its pids.max. The
 * limit holds commands that mean no harm (a runaway loop, a fork bomb) inside the
 * guest; root in the guest may lift it, as it may do anything to its own kernel, and the
 * VM as a whole stays bounded by its host cgroup. */
static int cgroup_setup(Agent *a, int64_t pids_max) {
        int r = mount_step("cgroup2", VM_CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

        if (r < 0)
                return r;
        r = write_string_file(VM_CGROUP_ROOT "/cgroup.subtree_control", "+pids");
        if (r < 0)
                return vm_fail(r, "cannot enable the pids controller");
        if (mkdir(VM_CGROUP_DIR, 0755) < 0 && errno != EEXIST)
                return vm_fail(errno, "cannot create %s", VM_CGROUP_DIR);
        r = vm_sync_real_ops.pids_max_set(pids_max);
        if (r < 0)
                return vm_fail(r, "cannot set %s/pids.max", VM_CGROUP_DIR);
        a->cgroup_procs_fd = open(VM_CGROUP_DIR "/cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (a->cgroup_procs_fd < 0)
                return vm_fail(errno, "cannot open %s/cgroup.procs", VM_CGROUP_DIR);
        return 0;
}

/* The guest has no network device; lo is up so that local servers work. */
static int loopback_up(void) {
        struct ifreq ifr = {.ifr_name = "lo"};
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return vm_fail(errno, "cannot read the flags of lo");
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return vm_fail(errno, "cannot bring lo up");
        return 0;
}

int vm_init(Agent *a) {
        VmConfig c = {};
        int r;

        r = mount_step("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
        if (r >= 0)
                r = mount_step("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        if (r >= 0)
                r = mount_step("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
        if (r >= 0)
                r = cmdline_read(&c);
        if (r >= 0)
                r = modules_load();
        if (r >= 0)
                r = root_build(&c);
        if (r >= 0)
                r = root_switch();
        if (r >= 0)
                r = mounts_late();
        if (r >= 0)
                r = cgroup_setup(a, c.pids_max);
        if (r >= 0)
                r = loopback_up();
        if (r >= 0 && c.hostname[0] && sethostname(c.hostname, strlen(c.hostname)) < 0)
                r = vm_fail(errno, "cannot set the hostname");
        if (r >= 0)
                r = device_find("/sys/class/virtio-ports", "name", VM_PORT_NAME, a->port_path,
                                sizeof(a->port_path));
        if (r >= 0)
                a->sync_ops = &vm_sync_real_ops;
        return r;
}
