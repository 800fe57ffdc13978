/* available(): can this host give a child a user namespace in which overlayfs mounts?
 * One short-lived child, a tmpfs and an overlay in its private mount namespace. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macros.h"
#include "daemon/isolator/ns/ns-internal.h"

#define PROBE_UID 65534

/* Raw syscalls only, as in ns-child.c. Exits with the failing errno, 0 on success. */
static _Noreturn void probe_child(int release_fd) {
        static const char *const opts[] = {
                "lowerdir=/usr,upperdir=/tmp/u,workdir=/tmp/w,userxattr",
                "lowerdir=/usr,upperdir=/tmp/u,workdir=/tmp/w",
        };
        char byte;
        long r = syscall(SYS_read, release_fd, &byte, 1) == 1 ? 0 : EPIPE;

        if (r == 0 && (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0))
                r = errno;
        if (r == 0 && syscall(SYS_mount, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                r = errno;
        if (r == 0 && syscall(SYS_mount, "tmpfs", "/tmp", "tmpfs", 0, "mode=0755,size=1m") < 0)
                r = errno;
        for (size_t i = 0; r == 0 && i < 3; i++)
                if (syscall(SYS_mkdirat, AT_FDCWD, (const char *[]){"/tmp/u", "/tmp/w", "/tmp/m"}[i], 0755) <
                    0)
                        r = errno;
        if (r == 0) {
                r = EINVAL;
                /* Kernels before 6.6 lack user xattrs on tmpfs: retry without them. */
                for (size_t i = 0; r != 0 && i < ELEMENTSOF(opts); i++)
                        r = syscall(SYS_mount, "overlay", "/tmp/m", "overlay", 0, opts[i]) < 0 ? errno : 0;
        }
        for (;;)
                syscall(SYS_exit_group, r > 255 ? 255 : r);
}

int ns_probe(ForgeError *err) {
        char filesystems[4096];
        int release[2], status = 0, r;
        pid_t pid;

        r = read_full_file("/proc/filesystems", filesystems, sizeof(filesystems), NULL);
        if (r < 0 || !strstr(filesystems, "\toverlay\n"))
                return forge_error_set(err, ENODEV, "isolator_unavailable", "overlayfs is not available");
        if (pipe2(release, O_CLOEXEC) < 0)
                return forge_error_set(err, errno, "isolator_unavailable", "pipe: %m");
        pid = ns_clone(CLONE_NEWUSER | CLONE_NEWNS);
        if (pid == 0) {
                syscall(SYS_close, release[1]);
                probe_child(release[0]);
        }
        close(release[0]);
        if (pid < 0) {
                r = -errno;
                close(release[1]);
                return forge_error_set(err, r, "isolator_unavailable", "cannot create a user namespace: %s",
                                       strerror(-r));
        }
        r = ns_write_id_maps(pid, PROBE_UID, 1);
        if (r >= 0 && write(release[1], "x", 1) != 1)
                r = -errno;
        close(release[1]);
        if (r < 0)
                kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return forge_error_set(err, errno, "isolator_unavailable", "waitpid: %m");
        if (r < 0)
                return forge_error_set(err, r, "isolator_unavailable",
                                       "cannot map ids into a user namespace: %s", strerror(-r));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                r = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
                return forge_error_set(err, r, "isolator_unavailable",
                                       "overlayfs does not mount inside a user namespace: %s", strerror(r));
        }
        return 0;
}
