/* Killing a whole process tree: its members reparent to us (a subreaper or PID 1), so
 * killing our children over and over until none are left reaches every descendant,
 * however it double-forked or setsid'd. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t parse_pid(const char *name) {
        char *end;
        if (name[0] < '1' || name[0] > '9')
                return 0;
        long v = strtol(name, &end, 10);
        return *end == 0 && v > 0 && v < INT32_MAX ? (pid_t) v : 0;
}

/* The parent pid from /proc/<pid>/stat; the command name may hold ')' so parse after
 * the last one. */
static pid_t read_ppid(int proc_fd, const char *name) {
        char path[64], buf[512];
        int ppid;

        snprintf(path, sizeof(path), "%s/stat", name);
        int fd = openat(proc_fd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
                return -1;
        return ppid;
}

int tree_kill_children(void) {
        pid_t self = getpid();
        struct dirent *de;
        int found = 0;

        DIR *d = opendir("/proc");
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                pid_t pid = parse_pid(de->d_name);
                if (pid > 0 && pid != self && read_ppid(dirfd(d), de->d_name) == self) {
                        kill(pid, SIGKILL);
                        found++;
                }
        }
        closedir(d);
        return found;
}

static pid_t reap_one(void (*on_reaped)(pid_t, int, void *), void *userdata, int flags) {
        int status;
        pid_t pid = waitpid(-1, &status, flags);
        if (pid > 0 && on_reaped)
                on_reaped(pid, status, userdata);
        return pid;
}

void tree_kill_all(void (*on_reaped)(pid_t pid, int status, void *userdata), void *userdata) {
        struct timespec pause = { .tv_nsec = 10 * 1000 * 1000 };
        pid_t pid;

        for (;;) {
                int n = tree_kill_children();
                /* Each killed child is reaped before the next scan, so the grandchildren
                 * it leaves behind are already ours when we look again. */
                for (int i = 0; i < n; i++)
                        if (reap_one(on_reaped, userdata, 0) < 0 && errno == ECHILD)
                                return;
                while ((pid = reap_one(on_reaped, userdata, WNOHANG)) > 0)
                        ;
                if (pid < 0 && errno == ECHILD)
                        return;
                if (n <= 0) /* a child we could not see yet (or no /proc): look again soon */
                        nanosleep(&pause, NULL);
        }
}

int tree_count_procs(void) {
        struct dirent *de;
        int n = 0;

        DIR *d = opendir("/proc");
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (parse_pid(de->d_name) > 0 && parse_pid(de->d_name) != getpid())
                        n++;
        closedir(d);
        return n;
}
