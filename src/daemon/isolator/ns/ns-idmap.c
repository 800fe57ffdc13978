/* Idmapped mounts (parent side). The image rootfs and the read-only binds belong to host
 * root; cloned with the sandbox's user namespace as their idmap, host uid 0 shows as uid 0
 * inside, so the sandbox's root owns the image (overlay can copy files up, /usr/bin/sh is
 * root's) while on disk nothing changes and no per-sandbox copy is made.
 *
 * Only host root can idmap these mounts (it needs CAP_SYS_ADMIN over the filesystem's
 * user namespace), so the parent does it once the child's maps are written, and sends
 * the detached mounts to the child over its release socket. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "basic/macros.h"
#include "daemon/isolator/ns/ns-internal.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif

static int idmapped_clone(const char *path, int userns_fd, uint64_t attrs, int *ret) {
        struct mount_attr attr = {
                .attr_set = MOUNT_ATTR_IDMAP | attrs,
                .userns_fd = (uint64_t) userns_fd,
        };
        _cleanup_close_ int fd = -1;

        /* Not recursive: like a plain bind, mounts below path are not part of it. */
        fd = (int) syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

int ns_idmap_mounts_open(pid_t pid, const NsChildPlan *cp, int *ret_fds) {
        _cleanup_close_ int userns = -1;
        char path[64];
        size_t n = 0;
        int r;

        snprintf(path, sizeof(path), "/proc/%ld/ns/user", (long) pid);
        userns = open(path, O_RDONLY | O_CLOEXEC);
        if (userns < 0)
                return -errno;
        /* The lower layer is never written through (copy-up goes to upper); read-only all
         * the same. */
        r = idmapped_clone(cp->lower, userns, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                           &ret_fds[n]);
        if (r >= 0)
                n++;
        for (size_t i = 0; r >= 0 && i < cp->n_binds; i++) {
                r = idmapped_clone(cp->binds[i].source, userns, cp->binds[i].attrs, &ret_fds[n]);
                if (r >= 0)
                        n++;
        }
        if (r < 0)
                while (n > 0)
                        closep(&ret_fds[--n]);
        return r;
}
