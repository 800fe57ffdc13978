/* ns.pid: the sandbox's init pid and its start time, so a recycled pid is never taken
 * for the sandbox after forged restarts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "basic/fs-util.h"
#include "daemon/isolator/ns/ns-internal.h"

int ns_pidfile_write(const char *dir, pid_t pid, unsigned long long start_time) {
        char path[PATH_MAX], content[64];

        if (snprintf(path, sizeof(path), "%s/ns.pid", dir) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        snprintf(content, sizeof(content), "%ld %llu\n", (long) pid, start_time);
        return write_file_atomic(path, content, 0600);
}

int ns_pidfile_read(const char *dir, pid_t *ret_pid, unsigned long long *ret_start_time) {
        char path[PATH_MAX], content[64];
        long pid;
        int r;

        if (snprintf(path, sizeof(path), "%s/ns.pid", dir) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        r = read_full_file(path, content, sizeof(content), NULL);
        if (r < 0)
                return r;
        if (sscanf(content, "%ld %llu", &pid, ret_start_time) != 2 || pid <= 0)
                return -EINVAL;
        *ret_pid = (pid_t) pid;
        return 0;
}

/* State (field 3) and start time (field 22) of /proc/PID/stat. comm may hold spaces and
 * parentheses, so fields are counted from the last ')'. */
static int proc_stat_read(pid_t pid, char *ret_state, unsigned long long *ret_start) {
        char path[64], buf[1024];
        int r;

        snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
        r = read_full_file(path, buf, sizeof(buf), NULL);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ')
                return -EINVAL;
        p += 2;
        *ret_state = *p;
        for (int field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EINVAL;
                p++;
        }
        *ret_start = strtoull(p, NULL, 10);
        return 0;
}

int ns_proc_start_time(pid_t pid, unsigned long long *ret) {
        char state;
        int r = proc_stat_read(pid, &state, ret);
        if (r < 0)
                return r;
        return state == 'Z' || state == 'X' ? -ESRCH : 0;
}

pid_t ns_init_pid(const char *dir) {
        unsigned long long recorded, start;
        char state;
        pid_t pid;
        int r;

        r = ns_pidfile_read(dir, &pid, &recorded);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        if (proc_stat_read(pid, &state, &start) < 0 || start != recorded)
                return 0;
        if (state == 'Z' || state == 'X') {
                /* Our own exited child (same start time, so not a recycled pid): reap it. */
                waitpid(pid, NULL, WNOHANG);
                return 0;
        }
        return pid;
}
