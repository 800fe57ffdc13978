#include "daemon/core/image-import.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "basic/macros.h"

/* Every lookup below the new root: no symlink, no magic link, no mount crossing, and
 * no ".." or absolute jump out of it. */
#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

typedef struct Extract {
        struct archive *archive;
        int root_fd;
        const ImageImportLimits *limits;
        uint64_t bytes, entries;
        ForgeError *err;
} Extract;

static int open_beneath(int root_fd, const char *path, int flags, mode_t mode, uint64_t resolve) {
        struct open_how how = {.flags = (uint64_t) flags | O_CLOEXEC, .mode = mode, .resolve = resolve};
        int fd = (int) syscall(SYS_openat2, root_fd, path, &how, sizeof(how));

        return fd < 0 ? -errno : fd;
}

static int refuse(Extract *x, const char *name, const char *why) {
        return forge_error_set(x->err, EINVAL, "invalid_archive",
                               "the archive is refused: entry '%.160s' %s", name, why);
}

/* "./a//b/" → "a/b"; "" for the root itself. -EINVAL for absolute names and "..". */
static int name_normalize(const char *in, char *out, size_t size) {
        size_t len = 0;

        if (in[0] == '/')
                return -EINVAL;
        while (*in) {
                size_t seg = strcspn(in, "/");

                if (seg == 2 && in[0] == '.' && in[1] == '.')
                        return -EINVAL;
                if (seg > 0 && !(seg == 1 && in[0] == '.')) {
                        if (len + seg + 2 > size)
                                return -ENAMETOOLONG;
                        if (len > 0)
                                out[len++] = '/';
                        memcpy(out + len, in, seg);
                        len += seg;
                }
                in += seg;
                in += strspn(in, "/");
        }
        out[len] = 0;
        return 0;
}

/* The directory holding `path` (normalized, non-empty), walked one component at a time
 * and made where the archive did not list it; *ret_base is the last component. */
static int parent_open(Extract *x, char *path, const char **ret_base, int *ret_fd) {
        _cleanup_close_ int cur = open_beneath(x->root_fd, ".", O_PATH | O_DIRECTORY, 0, BENEATH);
        char *comp = path, *slash;

        if (cur < 0)
                return cur;
        while ((slash = strchr(comp, '/'))) {
                int next;

                *slash = 0;
                next = open_beneath(cur, comp, O_PATH | O_DIRECTORY, 0, BENEATH);
                if (next == -ENOENT && mkdirat(cur, comp, 0755) >= 0)
                        next = open_beneath(cur, comp, O_PATH | O_DIRECTORY, 0, BENEATH);
                *slash = '/';
                if (next < 0)
                        return next;
                closep(&cur);
                cur = next;
                comp = slash + 1;
        }
        *ret_base = comp;
        *ret_fd = TAKE_FD(cur);
        return 0;
}

/* A7: what is there already gives way, unless it is a directory. */
static int existing_clear(Extract *x, int dir_fd, const char *base, const char *name, bool want_dir) {
        struct stat st;

        if (fstatat(dir_fd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISDIR(st.st_mode))
                return want_dir ? 1 : refuse(x, name, "replaces a directory");
        return unlinkat(dir_fd, base, 0) < 0 ? -errno : 0;
}

static int data_copy(Extract *x, int fd, const char *name) {
        const void *buf;
        size_t size;
        la_int64_t offset;
        int r;

        while ((r = archive_read_data_block(x->archive, &buf, &size, &offset)) == ARCHIVE_OK) {
                if (pwrite(fd, buf, size, offset) != (ssize_t) size)
                        return forge_error_set(x->err, errno ? errno : EIO, "no_space",
                                               "cannot write '%.160s': %m", name);
        }
        if (r != ARCHIVE_EOF)
                return forge_error_set(x->err, EINVAL, "invalid_archive", "cannot read '%.160s': %s", name,
                                       archive_error_string(x->archive));
        return 0;
}

static int entry_file(Extract *x, int dir_fd, const char *base, const char *name, mode_t mode,
                      int64_t size) {
        _cleanup_close_ int fd = -1;
        int r;

        /* A6: the size the header declares (holes of sparse files too) counts. */
        x->bytes += (uint64_t) MAX(size, (int64_t) 0);
        if (x->bytes > x->limits->max_bytes)
                return forge_error_set(x->err, EFBIG, "payload_too_large",
                                       "the archive expands to more than %llu bytes",
                                       (unsigned long long) x->limits->max_bytes);
        r = existing_clear(x, dir_fd, base, name, false);
        if (r < 0)
                return r;
        fd = openat(dir_fd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        r = data_copy(x, fd, name);
        if (r < 0)
                return r;
        /* The size a sparse file ends with, a hole at the end included. */
        if (size > 0 && ftruncate(fd, size) < 0)
                return -errno;
        return fchmod(fd, mode) < 0 ? -errno : 0;
}

static int entry_dir(Extract *x, int dir_fd, const char *base, const char *name, mode_t mode) {
        int r = existing_clear(x, dir_fd, base, name, true);

        if (r < 0)
                return r;
        if (r == 0 && mkdirat(dir_fd, base, mode) < 0)
                return -errno;
        /* Not through the name: fchmodat follows symlinks, and this is a directory. */
        _cleanup_close_ int fd = openat(dir_fd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fchmod(fd, mode) < 0 ? -errno : 0;
}

static int entry_symlink(Extract *x, int dir_fd, const char *base, const char *name, const char *target) {
        int r = existing_clear(x, dir_fd, base, name, false);

        if (r < 0)
                return r;
        /* Kept verbatim: it resolves inside the sandbox, and nothing here follows it. */
        return symlinkat(target, dir_fd, base) < 0 ? -errno : 0;
}

static int entry_hardlink(Extract *x, int dir_fd, const char *base, const char *name, const char *target) {
        char norm[PATH_MAX];
        _cleanup_close_ int src = -1;
        struct stat st;
        int r;

        if (name_normalize(target, norm, sizeof(norm)) < 0 || !norm[0])
                return refuse(x, name, "links to a path outside the image");
        src = open_beneath(x->root_fd, norm, O_PATH | O_NOFOLLOW, 0, BENEATH);
        if (src < 0)
                return refuse(x, name, "links to a path that is not an earlier file of the archive");
        if (fstat(src, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return refuse(x, name, "links to something other than a file");
        r = existing_clear(x, dir_fd, base, name, false);
        if (r < 0)
                return r;
        return linkat(src, "", dir_fd, base, AT_EMPTY_PATH) < 0 ? -errno : 0;
}

static int entry_extract(Extract *x, struct archive_entry *e) {
        char name[PATH_MAX];
        const char *raw = archive_entry_pathname(e), *base = NULL, *link;
        mode_t type = archive_entry_filetype(e);
        /* A5: no set-id, no sticky, no group or other write; owners are not looked at. */
        mode_t mode = archive_entry_perm(e) & 0755;
        _cleanup_close_ int dir_fd = -1;
        int r;

        if (!raw)
                return refuse(x, "?", "has no name");
        if (++x->entries > x->limits->max_entries)
                return forge_error_set(x->err, EFBIG, "payload_too_large",
                                       "the archive has more than %llu entries",
                                       (unsigned long long) x->limits->max_entries);
        r = name_normalize(raw, name, sizeof(name));
        if (r == -ENAMETOOLONG)
                return refuse(x, raw, "has too long a name");
        if (r < 0)
                return refuse(x, raw, "is absolute or has a '..' component");
        if (!name[0])
                return 0; /* the root itself: it stays 0755 and root's */
        link = archive_entry_hardlink(e);
        if (!link && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
                return refuse(x, raw, "is a device, FIFO or socket");
        r = parent_open(x, name, &base, &dir_fd);
        if (r == -ELOOP || r == -EXDEV || r == -ENOTDIR)
                return refuse(x, raw, "lies beyond a symlink or a non-directory");
        if (r < 0)
                return forge_error_set(x->err, -r, "invalid_archive",
                                       "cannot create the parent of '%.160s': %s", raw, strerror(-r));
        if (link)
                r = entry_hardlink(x, dir_fd, base, raw, link);
        else if (type == AE_IFDIR)
                r = entry_dir(x, dir_fd, base, raw, mode);
        else if (type == AE_IFLNK)
                r = entry_symlink(x, dir_fd, base, raw, archive_entry_symlink(e) ?: "");
        else
                r = entry_file(x, dir_fd, base, raw, mode, archive_entry_size(e));
        if (r < 0 && !forge_error_is_set(x->err))
                forge_error_set(x->err, -r, "invalid_archive", "cannot extract '%.160s': %s", raw,
                                strerror(-r));
        return r;
}

int image_import_extract(int archive_fd, int root_fd, const ImageImportLimits *limits, ForgeError *err) {
        Extract x = {.root_fd = root_fd, .limits = limits, .err = err};
        struct archive_entry *e;
        int r = 0, ar;

        x.archive = archive_read_new();
        if (!x.archive)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        /* Only the filters libarchive has built in: none of them runs an external program. */
        archive_read_support_filter_gzip(x.archive);
        archive_read_support_filter_bzip2(x.archive);
        archive_read_support_filter_xz(x.archive);
        archive_read_support_filter_zstd(x.archive);
        archive_read_support_format_tar(x.archive);
        if (archive_read_open_fd(x.archive, archive_fd, 64 * 1024) != ARCHIVE_OK) {
                r = forge_error_set(err, EINVAL, "invalid_archive", "not a tar archive: %s",
                                    archive_error_string(x.archive));
                goto out;
        }
        while (r >= 0 && (ar = archive_read_next_header(x.archive, &e)) == ARCHIVE_OK)
                r = entry_extract(&x, e);
        if (r >= 0 && ar != ARCHIVE_EOF)
                r = forge_error_set(err, EINVAL, "invalid_archive", "the archive is damaged: %s",
                                    archive_error_string(x.archive));
        if (r >= 0 && x.entries == 0)
                r = forge_error_set(err, EINVAL, "invalid_archive", "the archive is empty");
        /* Where the isolator mounts /proc and /dev, and the usual tmp and home of root, for
         * archives made without them. */
        for (const char *const *d = (const char *const[]){"proc", "dev", "tmp", "root", NULL}; r >= 0 && *d; d++)
                if (mkdirat(root_fd, *d, 0755) < 0 && errno != EEXIST)
                        r = forge_error_set(err, errno, "internal", "cannot make /%s in the image: %m", *d);
out:
        archive_read_free(x.archive);
        return r;
}

static bool root_has_program(int root_fd, const char *path) {
        struct stat st;
        /* In the image's own terms: its absolute symlinks resolve against its root. */
        _cleanup_close_ int fd =
                open_beneath(root_fd, path, O_PATH, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);

        return fd >= 0 && fstat(fd, &st) >= 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

json_t *image_import_runtimes(int root_fd) {
        static const char *const found[][3] = {
                {"python", "python3", "usr/bin/python3"},
                {"node", "node", "usr/bin/node"},
                {"sh", "sh", "bin/sh"},
                {"bash", "bash", "bin/bash"},
        };
        json_t *runtimes = json_object();

        for (size_t i = 0; runtimes && i < ELEMENTSOF(found); i++)
                if (root_has_program(root_fd, found[i][2]))
                        json_object_set_new(runtimes, found[i][0], json_string(found[i][1]));
        return runtimes;
}
