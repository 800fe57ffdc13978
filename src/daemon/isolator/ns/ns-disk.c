/* The disk quota (SECURITY.md "Limits"): with limits.disk_mb > 0 the overlay's upper and
 * work dirs live on the sandbox's own ext4 filesystem, a sparse image <dir>/disk.img
 * loop-mounted by the host at <dir>/disk (nodev, nosuid). A full filesystem answers
 * ENOSPC, its inode table bounds the number of files, and the host never gives the
 * sandbox more than the image's size.
 *
 * create makes the image once (disk.img.tmp, mkfs, then renamed); start mounts it when it
 * is not mounted (after a reboot or a crash); destroy detaches the mount and waits for the
 * loop device to go (it is set up with autoclear, so the kernel releases it once the last
 * user, the sandbox's overlay, is gone). Loop devices are found again through their
 * backing file, so reconcile can release those of sandboxes it does not know. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic/copy.h"
#include "basic/fs-util.h"
#include "basic/log.h"
#include "basic/macros.h"
#include "daemon/isolator/ns/ns-internal.h"

#define LOOP_ATTACH_TRIES 32
#define LOOP_RELEASE_TIMEOUT_MS 3000
/* One inode per 8 KiB: a 1 GiB disk holds 131072 files (node_modules-sized trees fit,
 * an inode bomb still stops). */
#define BYTES_PER_INODE "8192"

extern char **environ;

static char state_dir_abs[PATH_MAX];

int ns_disk_set_state_dir(const char *state_dir) {
        if (!realpath(state_dir, state_dir_abs))
                return -errno;
        return 0;
}

bool ns_disk_is_wanted(const SandboxPlan *plan) {
        return plan->limits.disk_mb > 0;
}

static void sleep_ms(long ms) {
        nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* 1 if dirfd/name is the root of a mount, 0 if not, -errno (-ENOENT if absent). */
static int is_mount_root(int dirfd, const char *name) {
        struct statx sx;

        if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) < 0)
                return -errno;
        if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
                return -EOPNOTSUPP;
        return !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static const char *mkfs_path(void) {
        static const char *const candidates[] = {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"};

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
                if (access(candidates[i], X_OK) >= 0)
                        return candidates[i];
        return NULL;
}

/* forged is multi-threaded: posix_spawn (vfork and exec, no atfork handlers, no locks
 * taken in the child) instead of fork. Every fd forged holds is CLOEXEC; the child's stdio
 * is /dev/null. Reaped here by pid, so libuv's own SIGCHLD handling never sees it. */
static int mkfs_run(const char *image) {
        const char *mkfs = mkfs_path();
        char *const argv[] = {
                (char *) "mkfs.ext4", (char *) "-q", (char *) "-F",
                /* No blocks reserved for host root: the whole size is the sandbox's. */
                (char *) "-m", (char *) "0", (char *) "-i", (char *) BYTES_PER_INODE,
                /* The image is sparse and reads as zeros: nothing to initialize or discard. */
                (char *) "-E", (char *) "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                (char *) "-L", (char *) "forge", (char *) image, NULL,
        };
        posix_spawn_file_actions_t actions;
        int status, r;
        pid_t pid;

        if (!mkfs)
                return -ENOENT;
        r = posix_spawn_file_actions_init(&actions);
        if (r != 0)
                return -r;
        for (int fd = 0; fd < 3 && r == 0; fd++)
                r = posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn(&pid, mkfs, &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        if (r != 0)
                return -r;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* A free loop device bound to img_fd with autoclear; returns its fd. Two threads may be
 * handed the same free device: the loser gets EBUSY and asks again. */
static int loop_attach(int img_fd, const char *id, char *ret_dev, size_t size) {
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        struct loop_config cfg = {.fd = (uint32_t) img_fd};

        if (ctl < 0)
                return -errno;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        snprintf((char *) cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "forge:%s", id);
        for (int i = 0; i < LOOP_ATTACH_TRIES; i++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0)
                        return -errno;
                snprintf(ret_dev, size, "/dev/loop%d", n);
                int fd = open(ret_dev, O_RDWR | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                if (ioctl(fd, LOOP_CONFIGURE, &cfg) >= 0)
                        return fd;
                int r = -errno;
                close(fd);
                if (r != -EBUSY)
                        return r;
        }
        return -EBUSY;
}

/* Mounts dirfd/image on dirfd/disk. The loop fd is closed once mounted: with autoclear,
 * the device lives exactly as long as the filesystem. */
static int disk_mount(int dirfd, const char *image, const char *id) {
        _cleanup_close_ int img = -1, loop = -1;
        char dev[32], target[64];

        img = openat(dirfd, image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (img < 0)
                return -errno;
        loop = loop_attach(img, id, dev, sizeof(dev));
        if (loop < 0)
                return loop;
        snprintf(target, sizeof(target), "/proc/self/fd/%d/disk", dirfd);
        /* Exec must work inside (the sandbox runs what it builds): nodev and nosuid only.
         * noinit_itable: the image is sparse, its inode tables already read as zeros; the
         * kernel's background zeroing would only cost I/O. */
        if (mount(dev, target, "ext4", MS_NODEV | MS_NOSUID | MS_NOATIME, "errors=remount-ro,noinit_itable") < 0)
                return -errno;
        return 0;
}

static int layers_make(int dirfd, uid_t uid) {
        static const char *const names[] = {"disk/upper", "disk/work"};

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                if (mkdirat(dirfd, names[i], 0700) < 0 && errno != EEXIST)
                        return -errno;
                if (fchownat(dirfd, names[i], uid, (gid_t) uid, AT_SYMLINK_NOFOLLOW) < 0 ||
                    fchmodat(dirfd, names[i], 0755, 0) < 0)
                        return -errno;
        }
        return 0;
}

static int disk_image_make(int dirfd, const SandboxPlan *plan) {
        char path[PATH_MAX];
        int fd, r;

        /* A create that crashed midway may have left the temp image mounted. */
        if (is_mount_root(dirfd, "disk") > 0)
                (void) ns_disk_release(plan->dir);
        if (unlinkat(dirfd, "disk.img.tmp", 0) < 0 && errno != ENOENT)
                return -errno;
        fd = openat(dirfd, "disk.img.tmp", O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = ftruncate(fd, (off_t) plan->limits.disk_mb * 1024 * 1024) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;
        r = path_join(path, sizeof(path), plan->dir, "disk.img.tmp");
        if (r >= 0)
                r = mkfs_run(path);
        if (r >= 0)
                r = disk_mount(dirfd, "disk.img.tmp", plan->id);
        if (r >= 0)
                r = layers_make(dirfd, plan->uid_base);
        if (r >= 0 && renameat(dirfd, "disk.img.tmp", dirfd, "disk.img") < 0)
                r = -errno;
        return r;
}

/* The image of a saved disk, moved or copied into place, with its files given to this
 * sandbox's uid range. Its size is the saved one (the core keeps limits.disk_mb equal):
 * growing a mounted ext4 needs CAP_SYS_RESOURCE, which forged may not have. */
static int disk_image_from(int dirfd, const SandboxPlan *plan) {
        _cleanup_close_ int src = -1, img = -1;
        char path[PATH_MAX];
        int r;

        if (is_mount_root(dirfd, "disk") > 0)
                (void) ns_disk_release(plan->dir);
        if (unlinkat(dirfd, "disk.img.tmp", 0) < 0 && errno != ENOENT)
                return -errno;
        if (plan->disk_from_move) {
                if (renameat(AT_FDCWD, plan->disk_from, dirfd, "disk.img.tmp") < 0)
                        return -errno;
        } else {
                src = open(plan->disk_from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (src < 0)
                        return -errno;
                img = openat(dirfd, "disk.img.tmp", O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (img < 0)
                        return -errno;
                r = copy_file_contents(src, img);
                if (r < 0)
                        return r;
        }
        r = disk_mount(dirfd, "disk.img.tmp", plan->id);
        if (r >= 0)
                r = path_join(path, sizeof(path), plan->dir, "disk");
        if (r >= 0 && plan->disk_from_uid_base != plan->uid_base)
                r = ns_disk_shift_owners(path, plan->disk_from_uid_base, plan->uid_base, plan->uid_count);
        if (r >= 0)
                r = layers_make(dirfd, plan->uid_base);
        if (r >= 0 && renameat(dirfd, "disk.img.tmp", dirfd, "disk.img") < 0)
                r = -errno;
        return r;
}

int ns_disk_prepare(const SandboxPlan *plan, ForgeError *err) {
        _cleanup_close_ int dirfd = -1;
        int r;

        if (!ns_disk_is_wanted(plan))
                return 0;
        dirfd = open(plan->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dirfd < 0)
                return forge_error_set(err, errno, "isolator_failed", "cannot open %s: %m", plan->dir);
        if (mkdirat(dirfd, "disk", 0755) < 0 && errno != EEXIST)
                return forge_error_set(err, errno, "isolator_failed", "cannot make the disk mount point: %m");
        if (faccessat(dirfd, "disk.img", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                r = plan->disk_from ? disk_image_from(dirfd, plan) : disk_image_make(dirfd, plan);
                if (r < 0)
                        return forge_error_set(err, r, "isolator_failed", "cannot make the sandbox's disk: %s",
                                               strerror(-r));
                return 0;
        }
        r = is_mount_root(dirfd, "disk");
        if (r == 0)
                r = disk_mount(dirfd, "disk.img", plan->id);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot mount the sandbox's disk: %s",
                                       strerror(-r));
        return 0;
}

/* ---- loop devices, found through sysfs ---- */

/* Calls cb for every bound loop device with its name ("loop3") and backing file. */
static int loop_foreach(int (*cb)(const char *name, const char *backing, void *userdata), void *userdata) {
        DIR *d = opendir("/sys/block");
        struct dirent *de;
        int r = 0;

        if (!d)
                return -errno;
        while (r >= 0 && (de = readdir(d))) {
                char path[PATH_MAX], backing[PATH_MAX];
                size_t len;

                if (strncmp(de->d_name, "loop", 4) != 0)
                        continue;
                snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", de->d_name);
                if (read_full_file(path, backing, sizeof(backing), &len) < 0)
                        continue;
                while (len > 0 && backing[len - 1] == '\n')
                        backing[--len] = 0;
                r = cb(de->d_name, backing, userdata);
        }
        closedir(d);
        return r;
}

static bool loop_is_bound(const char *name) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", name);
        return access(path, F_OK) >= 0;
}

typedef struct LoopMatch {
        char image[PATH_MAX];
        char image_tmp[PATH_MAX];
        char *name;
        size_t size;
} LoopMatch;

static int loop_match(const char *name, const char *backing, void *userdata) {
        LoopMatch *m = userdata;

        if (strcmp(backing, m->image) != 0 && strcmp(backing, m->image_tmp) != 0)
                return 0;
        snprintf(m->name, m->size, "%s", name);
        return 1;
}

int ns_disk_loop_find(const char *dir, char *ret_name, size_t size) {
        LoopMatch m = {.name = ret_name, .size = size};
        char real[PATH_MAX];

        if (!realpath(dir, real))
                return -errno;
        if (snprintf(m.image, sizeof(m.image), "%s/disk.img", real) >= (int) sizeof(m.image) ||
            snprintf(m.image_tmp, sizeof(m.image_tmp), "%s/disk.img.tmp", real) >= (int) sizeof(m.image_tmp))
                return -ENAMETOOLONG;
        return loop_foreach(loop_match, &m);
}

/* Waits for autoclear; if something still holds the device, asks the kernel to clear it
 * once the last holder is gone (LOOP_CLR_FD on a busy device just sets autoclear). */
static int loop_wait_released(const char *name) {
        char dev[64];

        for (int waited = 0; waited < LOOP_RELEASE_TIMEOUT_MS; waited += 20) {
                if (!loop_is_bound(name))
                        return 0;
                sleep_ms(20);
        }
        snprintf(dev, sizeof(dev), "/dev/%s", name);
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
                (void) ioctl(fd, LOOP_CLR_FD, 0);
        return loop_is_bound(name) ? -EBUSY : 0;
}

/* Detaches every mount of the device "major:minor" in our namespace. */
static int mounts_detach(const char *devno) {
        _cleanup_free_ char *text = malloc(1 << 20);
        char *save = NULL;
        int ret = 0;

        if (!text)
                return -ENOMEM;
        if (read_full_file("/proc/self/mountinfo", text, 1 << 20, NULL) < 0)
                return -EIO;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char dev[32], point[PATH_MAX], *out = point;

                if (sscanf(line, "%*s %*s %31s %*s %4095s", dev, point) != 2 || strcmp(dev, devno) != 0)
                        continue;
                /* mountinfo escapes blanks and backslashes as \ooo. */
                for (const char *in = point; *in; in++, out++)
                        if (in[0] == '\\' && in[1] && in[2] && in[3]) {
                                *out = (char) (((in[1] - '0') << 6) | ((in[2] - '0') << 3) | (in[3] - '0'));
                                in += 3;
                        } else
                                *out = *in;
                *out = 0;
                if (umount2(point, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                        ret = -errno;
        }
        return ret;
}

static int loop_release(const char *name) {
        char path[PATH_MAX], devno[32];
        int r;

        snprintf(path, sizeof(path), "/sys/block/%s/dev", name);
        r = read_full_file(path, devno, sizeof(devno), NULL);
        if (r < 0)
                return loop_is_bound(name) ? r : 0;
        devno[strcspn(devno, "\n")] = 0;
        r = mounts_detach(devno);
        int w = loop_wait_released(name);
        return r < 0 ? r : w;
}

int ns_disk_release(const char *dir) {
        _cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        char name[32] = "";
        int r;

        if (dirfd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (faccessat(dirfd, "disk", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                return 0;
        r = ns_disk_loop_find(dir, name, sizeof(name));
        if (r < 0)
                return r;
        if (is_mount_root(dirfd, "disk") > 0) {
                char target[64];
                snprintf(target, sizeof(target), "/proc/self/fd/%d/disk", dirfd);
                if (umount2(target, MNT_DETACH) < 0)
                        return -errno;
        }
        return name[0] ? loop_release(name) : 0;
}

typedef struct ReapLoops {
        bool (*known)(const char *id, void *userdata);
        void *userdata;
        int ret;
} ReapLoops;

/* <state>/sandboxes/<id>/disk.img or <state>/trash/<id>/disk.img(.tmp), possibly
 * " (deleted)": the sandbox id, or false if the image is not one of ours. */
static bool backing_sandbox_id(const char *backing, char *ret, size_t size) {
        static const char *const parents[] = {"/sandboxes/", "/trash/"};
        size_t n = strlen(state_dir_abs);

        if (n == 0 || strncmp(backing, state_dir_abs, n) != 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(parents); i++) {
                size_t p = strlen(parents[i]);
                if (strncmp(backing + n, parents[i], p) != 0)
                        continue;
                const char *id = backing + n + p, *slash = strchr(id, '/');
                if (!slash || (size_t) (slash - id) >= size || strncmp(slash, "/disk.img", 9) != 0)
                        return false;
                snprintf(ret, size, "%.*s", (int) (slash - id), id);
                return true;
        }
        return false;
}

static int reap_loop(const char *name, const char *backing, void *userdata) {
        ReapLoops *c = userdata;
        char id[SANDBOX_ID_MAX + 1];

        if (!backing_sandbox_id(backing, id, sizeof(id)) || c->known(id, c->userdata))
                return 0;
        log_sb_info(id, "releasing the disk (%s) of an unknown sandbox", name);
        int r = loop_release(name);
        if (r < 0 && c->ret >= 0)
                c->ret = r;
        return 0;
}

int ns_disk_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata) {
        ReapLoops c = {.known = known, .userdata = userdata};
        int r = loop_foreach(reap_loop, &c);

        return r < 0 ? r : c.ret;
}
