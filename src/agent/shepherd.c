/* The shepherd: one per command. It is a subreaper, so everything the command leaves
 * behind (double-forked, setsid'd) becomes its child; it reports the main process's exit
 * to the agent, reaps the rest, and on SIGTERM kills the whole tree. It never execs.
 * Between fork and execve the command child only applies the plan: no allocation. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct Shepherd {
        pid_t main;
        int report_fd;
        bool main_done;
} Shepherd;

static _Noreturn void child_fail(int status_fd, SpawnStage stage, int err) {
        int32_t rec[2] = { stage, err };
        (void) !write(status_fd, rec, sizeof(rec));
        _exit(127);
}

/* The terminal becomes the controlling one of the command's new session (setsid came
 * first) and all three of its stdio fds. */
static int child_tty(int tty) {
        if (ioctl(tty, TIOCSCTTY, 0) < 0 || dup2(tty, 0) < 0 || dup2(tty, 1) < 0 || dup2(tty, 2) < 0)
                return -errno;
        return 0;
}

static int child_pipes(const SpawnPlan *p) {
        int in = p->stdin_fd;
        if (in < 0 && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
                return -errno;
        if (dup2(in, 0) < 0 || dup2(p->stdout_fd, 1) < 0 || dup2(p->stderr_fd, 2) < 0)
                return -errno;
        return 0;
}

static int child_stdio(const SpawnPlan *p) {
        int r = p->tty_fd >= 0 ? child_tty(p->tty_fd) : child_pipes(p);
        if (r < 0)
                return r;
        /* Everything above 2 goes at exec; marking instead of closing keeps the status
         * pipe usable until then. */
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                for (int fd = 3; fd < 65536; fd++)
                        fcntl(fd, F_SETFD, FD_CLOEXEC);
        return 0;
}

static void child_identity(const SpawnPlan *p) {
        if (p->uid < 0 && p->gid < 0)
                return;
        /* Without CAP_SETGID setgroups fails; that is harmless only if there are no
         * supplementary groups to drop. */
        if (setgroups(0, NULL) < 0 && getgroups(0, NULL) != 0)
                child_fail(p->status_fd, SPAWN_STAGE_SETGROUPS, errno);
        if (p->gid >= 0 && setresgid((gid_t) p->gid, (gid_t) p->gid, (gid_t) p->gid) < 0)
                child_fail(p->status_fd, SPAWN_STAGE_SETGID, errno);
        if (p->uid >= 0 && setresuid((uid_t) p->uid, (uid_t) p->uid, (uid_t) p->uid) < 0)
                child_fail(p->status_fd, SPAWN_STAGE_SETUID, errno);
}

static const char *env_path(char **envp) {
        for (char **e = envp; *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                        return *e + 5;
        return DEFAULT_PATH;
}

/* execvpe with the command's own PATH (the agent's environment is not the command's),
 * on the stack only. */
static int child_exec(char **argv, char **envp) {
        char buf[4096];
        int err = ENOENT;

        if (strchr(argv[0], '/')) {
                execve(argv[0], argv, envp);
                return errno;
        }
        for (const char *dir = env_path(envp); dir; dir = strchr(dir, ':') ? strchr(dir, ':') + 1 : NULL) {
                size_t dlen = strchrnul(dir, ':') - dir;
                size_t flen = strlen(argv[0]);
                if (dlen + flen + 2 > sizeof(buf))
                        continue;
                memcpy(buf, dlen ? dir : ".", dlen ? dlen : 1);
                size_t off = dlen ? dlen : 1;
                buf[off] = '/';
                memcpy(buf + off + 1, argv[0], flen + 1);
                execve(buf, argv, envp);
                if (errno == EACCES)
                        err = EACCES;
                else if (errno != ENOENT && errno != ENOTDIR)
                        return errno;
        }
        return err;
}

/* Into the sandbox's cgroup (a VM's, whose pids.max is limits.pids), before anything the
 * command could fork: "0" is the writer itself. Joining is never refused for being over
 * the limit (only forks are), so a command still starts in a sandbox that is full. */
static void child_cgroup(const SpawnPlan *p) {
        if (p->cgroup_fd >= 0 && write(p->cgroup_fd, "0", 1) != 1)
                child_fail(p->status_fd, SPAWN_STAGE_CGROUP, errno);
}

static _Noreturn void child_run(const SpawnPlan *p) {
        sigset_t none;

        child_cgroup(p);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setsid(); /* its own session and process group, so signals address the command */
        if (child_stdio(p) < 0)
                child_fail(p->status_fd, SPAWN_STAGE_STDIO, errno);
        child_identity(p);
        if (chdir(p->cwd ? p->cwd : "/") < 0)
                child_fail(p->status_fd, SPAWN_STAGE_CHDIR, errno);
        umask(022);
        child_fail(p->status_fd, SPAWN_STAGE_EXEC, child_exec(p->argv, p->envp));
}

static void shepherd_report(Shepherd *s, int status) {
        struct rusage ru;
        ShepherdReport rep = { .status = status };

        /* Everything reaped so far: the main process and whatever it or we waited for. */
        if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
                rep.cpu_usec = (int64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                               ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
                rep.max_rss_kb = ru.ru_maxrss;
        }
        (void) !write(s->report_fd, &rep, sizeof(rep));
        s->main_done = true;
}

static void shepherd_on_reaped(pid_t pid, int status, void *userdata) {
        Shepherd *s = userdata;
        if (pid == s->main)
                shepherd_report(s, status);
}

/* Keeps only fd 2 (for a last-resort message) and the report pipe. */
static void shepherd_close_fds(int keep) {
        for (int fd = 0; fd < 2; fd++)
                if (fd != keep)
                        close(fd);
        if (keep > 3 && syscall(SYS_close_range, 3U, (unsigned) keep - 1, 0U) < 0)
                for (int fd = 3; fd < keep; fd++)
                        close(fd);
        if (syscall(SYS_close_range, (unsigned) keep + 1, ~0U, 0U) < 0)
                for (int fd = keep + 1; fd < 65536; fd++)
                        close(fd);
}

static _Noreturn void shepherd_loop(Shepherd *s) {
        sigset_t set;
        int status;
        pid_t pid;

        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        for (;;) {
                while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                        shepherd_on_reaped(pid, status, s);
                if (pid < 0 && errno == ECHILD)
                        _exit(0); /* the main process and every descendant are gone */
                if (sigwaitinfo(&set, NULL) == SIGTERM) {
                        kill(-s->main, SIGKILL);
                        tree_kill_all(shepherd_on_reaped, s);
                        _exit(0);
                }
        }
}

_Noreturn void shepherd_run(const SpawnPlan *plan) {
        Shepherd s = { .report_fd = plan->report_fd };

        /* Signals stay blocked (inherited from the agent); SIGTERM from the agent, or from
         * the kernel when the agent dies, means: kill the tree. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        s.main = fork();
        if (s.main == 0)
                child_run(plan);
        if (s.main < 0)
                child_fail(plan->status_fd, SPAWN_STAGE_FORK, errno);
        int32_t rec[2] = { SPAWN_STAGE_PID, s.main };
        (void) !write(plan->status_fd, rec, sizeof(rec));
        shepherd_close_fds(s.report_fd);
        shepherd_loop(&s);
}
