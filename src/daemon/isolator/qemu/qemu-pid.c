/* Finding a sandbox's QEMU: it daemonizes, so it is not forged's child, and it holds a
 * POSIX lock on its pidfile for as long as it runs. F_GETLK names the holder. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/log.h"
#include "basic/macros.h"
#include "daemon/isolator/qemu/qemu-internal.h"

#define QEMU_EXIT_TIMEOUT_MS 5000
#define CMDLINE_MAX 16384

pid_t qemu_pid(const char *dir) {
        struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        char path[PATH_MAX];
        _cleanup_close_ int fd = -1;

        if (path_join(path, sizeof(path), dir, "qemu.pid") < 0)
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fcntl(fd, F_GETLK, &lk) < 0)
                return -errno;
        return lk.l_type == F_UNLCK ? 0 : lk.l_pid;
}

/* Gone once its lock is: an exited process holds none, even before it is reaped. */
static int kill_and_wait(pid_t pid, const char *dir) {
        if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
                return -errno;
        for (int waited = 0; waited < QEMU_EXIT_TIMEOUT_MS; waited += 10) {
                if (qemu_pid(dir) <= 0)
                        return 0;
                nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
        }
        return -ETIMEDOUT;
}

int qemu_kill(const char *dir) {
        pid_t pid = qemu_pid(dir);
        return pid <= 0 ? pid : kill_and_wait(pid, dir);
}

/* The id in "-pidfile <sandboxes_dir>/<id>/qemu.pid" of a QEMU's command line, if any. */
static int cmdline_sandbox_id(const char *cmdline, size_t len, const char *sandboxes_dir, char *ret_id) {
        size_t prefix = strlen(sandboxes_dir);

        for (const char *p = cmdline; p < cmdline + len; p += strlen(p) + 1) {
                const char *arg = p + strlen(p) + 1;
                if (strcmp(p, "-pidfile") != 0 || arg >= cmdline + len)
                        continue;
                if (strncmp(arg, sandboxes_dir, prefix) != 0 || arg[prefix] != '/')
                        return 0;
                const char *id = arg + prefix + 1, *slash = strchr(id, '/');
                if (!slash || strcmp(slash, "/qemu.pid") != 0 || slash == id || slash - id > SANDBOX_ID_MAX)
                        return 0;
                memcpy(ret_id, id, (size_t) (slash - id));
                ret_id[slash - id] = 0;
                return 1;
        }
        return 0;
}

int qemu_reap_unknown(const char *sandboxes_dir, bool (*known)(const char *id, void *userdata),
                      void *userdata) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        int ret = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char path[64], cmdline[CMDLINE_MAX], id[SANDBOX_ID_MAX + 1], dir[PATH_MAX];
                size_t len;
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
                if (read_full_file(path, cmdline, sizeof(cmdline), &len) < 0 ||
                    !strstr(cmdline, "qemu-system") ||
                    cmdline_sandbox_id(cmdline, len, sandboxes_dir, id) <= 0 || known(id, userdata))
                        continue;
                log_sb_info(id, "killing the QEMU of an unknown sandbox");
                snprintf(dir, sizeof(dir), "%s/%s", sandboxes_dir, id);
                int r = kill_and_wait((pid_t) pid, dir);
                if (r < 0 && ret >= 0)
                        ret = r;
        }
        closedir(d);
        return ret;
}
