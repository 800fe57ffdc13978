/* Saved disks (snapshots and forks). A sandbox's whole filesystem state is its disk image
 * (ns-disk.c), so saving it is copying one file: the caller stops the sandbox, this
 * flushes the filesystem and copies the image, sharing blocks (reflink) where the state
 * dir's filesystem can and keeping holes everywhere, so the cost is what the sandbox
 * wrote, not its quota.
 *
 * Files on the disk belong to host uids of the sandbox that wrote them (its range starts
 * at its uid_base). A sandbox made from a saved disk has another range, so the owners
 * are shifted once when the copy is made: a walk over every file, which costs time in
 * proportion to the number of files (docs/isolator-ns.md has figures). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/copy.h"
#include "basic/fs-util.h"
#include "basic/macros.h"
#include "daemon/isolator/ns/ns-internal.h"

/* Directories nftw keeps open at once. */
#define SHIFT_OPEN_FDS 32

static int fsync_parent(const char *path) {
        char dir[PATH_MAX];
        _cleanup_close_ int fd = -1;
        char *slash;

        if (snprintf(dir, sizeof(dir), "%s", path) >= (int) sizeof(dir))
                return -ENAMETOOLONG;
        slash = strrchr(dir, '/');
        if (!slash)
                return -EINVAL;
        *slash = 0;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

static int copy_to_new(const char *src, const char *dest) {
        char tmp[PATH_MAX];
        _cleanup_close_ int in = -1, out = -1;
        int r;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", dest) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;
        in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
                return -errno;
        (void) unlink(tmp);
        out = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0)
                return -errno;
        r = copy_file_contents(in, out);
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, dest) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return fsync_parent(dest);
}

int ns_disk_save(const SandboxPlan *plan, const char *dest, ForgeError *err) {
        char path[PATH_MAX];
        _cleanup_close_ int mnt = -1;
        int r;

        r = path_join(path, sizeof(path), plan->dir, "disk");
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "sandbox dir path too long");
        /* Everything the stopped sandbox wrote reaches the image file before it is read. */
        mnt = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (mnt < 0 || syncfs(mnt) < 0)
                return forge_error_set(err, errno, "isolator_failed", "cannot flush the sandbox's disk: %m");
        r = path_join(path, sizeof(path), plan->dir, "disk.img");
        if (r >= 0)
                r = copy_to_new(path, dest);
        if (r < 0)
                return forge_error_set(err, r, "isolator_failed", "cannot copy the sandbox's disk: %s",
                                       strerror(-r));
        return 0;
}

/* nftw has no userdata: the shift in progress, per thread (ops run on worker threads). */
static __thread struct {
        uid_t from, to;
        uint32_t count;
} shift;

static uid_t shifted(uid_t id) {
        return id - shift.from < shift.count ? id - shift.from + shift.to : id;
}

static int shift_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        uid_t uid = shifted(st->st_uid);
        gid_t gid = (gid_t) shifted((uid_t) st->st_gid);

        if (type == FTW_NS || type == FTW_DNR)
                return EACCES;
        if (uid == st->st_uid && gid == st->st_gid)
                return 0;
        if (lchown(path, uid, gid) < 0)
                return errno;
        if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID)) && chmod(path, st->st_mode & 07777) < 0)
                return errno;
        return 0;
}

int ns_disk_shift_owners(const char *path, uid_t from, uid_t to, uint32_t count) {
        int r;

        shift.from = from;
        shift.to = to;
        shift.count = count;
        r = nftw(path, shift_one, SHIFT_OPEN_FDS, FTW_PHYS | FTW_MOUNT);
        if (r < 0)
                return -errno;
        return -r;
}
