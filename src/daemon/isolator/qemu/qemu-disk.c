/* A VM's disks. The image is a read-only ext4 made from its rootfs (mkfs.ext4 -d) once
 * and shared by every VM of that image; the writable disk is the VM's own sparse ext4
 * (new, or a snapshot's), which the guest's init puts under the image in an overlay: it
 * is what persists. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macros.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/qemu/qemu-internal.h"

/* Room on the image disk beyond its files: ext4's own metadata and journal. */
#define IMAGE_SLACK_MB 64

static uint64_t tree_bytes;

static int on_tree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        tree_bytes += (uint64_t) st->st_blocks * 512 + 4096; /* + an inode's share */
        return 0;
}

/* nftw keeps its state in statics: one walk at a time across worker threads. */
static int rootfs_size_mb(const char *rootfs, int64_t *ret) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        int r;

        pthread_mutex_lock(&lock);
        tree_bytes = 0;
        r = nftw(rootfs, on_tree_entry, 64, FTW_PHYS | FTW_MOUNT) < 0 ? -errno : 0;
        *ret = (int64_t) (tree_bytes / (1024 * 1024)) * 5 / 4 + IMAGE_SLACK_MB;
        pthread_mutex_unlock(&lock);
        return r;
}

static bool disk_is_current(const char *disk, const char *rootfs) {
        struct stat d, s;
        return stat(disk, &d) >= 0 && stat(rootfs, &s) >= 0 && d.st_mtime >= s.st_mtime;
}

int qemu_image_disk(const char *vm_dir, const SandboxPlan *plan, char *ret, ForgeError *err) {
        char dir[PATH_MAX], tmp[PATH_MAX];
        int64_t size_mb;
        int r;

        if (snprintf(dir, sizeof(dir), "%s/images", vm_dir) >= (int) sizeof(dir) ||
            snprintf(ret, PATH_MAX, "%s/%s.ext4", dir, plan->image_name) >= PATH_MAX ||
            snprintf(tmp, sizeof(tmp), "%s.%s.tmp", ret, plan->id) >= (int) sizeof(tmp))
                return forge_error_set(err, ENAMETOOLONG, "isolator_failed", "state dir path too long");
        if (disk_is_current(ret, plan->image_rootfs))
                return 0;
        char *const options[] = {(char *) "-L", (char *) "image", (char *) "-d", (char *) plan->image_rootfs,
                                 NULL};
        r = mkdir_p(dir, 0700);
        if (r >= 0)
                r = rootfs_size_mb(plan->image_rootfs, &size_mb);
        if (r >= 0)
                r = isolator_mkfs(options, tmp, size_mb);
        /* Sandboxes of one image may race here: each builds its own, the last rename wins. */
        if (r >= 0 && rename(tmp, ret) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return forge_error_set(err, r, "isolator_failed", "cannot make the disk of image '%s': %s",
                                       plan->image_name, strerror(-r));
        }
        return 0;
}

/* VMs that run on it keep it open; they are none, or the image could not be removed. */
int qemu_image_disk_remove(const char *vm_dir, const char *image_name) {
        char path[PATH_MAX];

        if (snprintf(path, sizeof(path), "%s/images/%s.ext4", vm_dir, image_name) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int qemu_writable_disk(const SandboxPlan *plan, ForgeError *err) {
        char path[PATH_MAX], tmp[PATH_MAX];
        int64_t size_mb = plan->limits.disk_mb > 0 ? plan->limits.disk_mb : QEMU_DISK_MB_DEFAULT;
        /* One inode per 8 KiB, no blocks reserved for root: the whole size is the VM's. */
        char *const options[] = {(char *) "-m", (char *) "0",
                                 (char *) "-i", (char *) "8192",
                                 (char *) "-E", (char *) "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                                 (char *) "-L", (char *) "disk",
                                 NULL};
        int r;

        if (path_join(path, sizeof(path), plan->dir, "disk.img") < 0 ||
            path_join(tmp, sizeof(tmp), plan->dir, "disk.img.tmp") < 0)
                return forge_error_set(err, ENAMETOOLONG, "isolator_failed", "sandbox dir path too long");
        if (access(path, F_OK) >= 0)
                return 0;
        (void) unlink(tmp);
        /* A snapshot's disk keeps its size: the core holds limits.disk_mb to it. */
        r = plan->from_dir ? isolator_file_from(plan, "disk.img", AT_FDCWD, tmp)
                           : isolator_mkfs(options, tmp, size_mb);
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return forge_error_set(err, r, "isolator_failed", "cannot make the VM's writable disk: %s",
                                       strerror(-r));
        }
        return 0;
}
