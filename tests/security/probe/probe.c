/* probe: entry point, the fork-per-attempt runner and the result vocabulary.
 *
 *   probe sys GROUP...     run the syscall attempts of each group ("all" for every one)
 *   probe list             list the groups
 *   probe forkbomb MAX | threadbomb MAX | nofile | fill PATH MAXMB | inodes DIR MAX
 *   probe burn THREADS SECS | zombies N | hold KIND MAX SECS | flip SECS PATH ALT...
 *   probe fds | ipc make|look KEY NAME
 *
 * A syscall attempt prints "name ok:<value>", "name <ERRNO>" or "name killed:<SIGNAL>". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe.h"

static const struct {
        int value;
        const char *name;
} errnos[] = {
        {EPERM, "EPERM"},
        {ENOENT, "ENOENT"},
        {ESRCH, "ESRCH"},
        {EINTR, "EINTR"},
        {EIO, "EIO"},
        {ENXIO, "ENXIO"},
        {E2BIG, "E2BIG"},
        {ENOEXEC, "ENOEXEC"},
        {EBADF, "EBADF"},
        {ECHILD, "ECHILD"},
        {EAGAIN, "EAGAIN"},
        {ENOMEM, "ENOMEM"},
        {EACCES, "EACCES"},
        {EFAULT, "EFAULT"},
        {EBUSY, "EBUSY"},
        {EEXIST, "EEXIST"},
        {EXDEV, "EXDEV"},
        {ENODEV, "ENODEV"},
        {ENOTDIR, "ENOTDIR"},
        {EISDIR, "EISDIR"},
        {EINVAL, "EINVAL"},
        {ENFILE, "ENFILE"},
        {EMFILE, "EMFILE"},
        {ENOTTY, "ENOTTY"},
        {ETXTBSY, "ETXTBSY"},
        {EFBIG, "EFBIG"},
        {ENOSPC, "ENOSPC"},
        {ESPIPE, "ESPIPE"},
        {EROFS, "EROFS"},
        {EMLINK, "EMLINK"},
        {EPIPE, "EPIPE"},
        {ERANGE, "ERANGE"},
        {ENAMETOOLONG, "ENAMETOOLONG"},
        {ENOSYS, "ENOSYS"},
        {ENOTEMPTY, "ENOTEMPTY"},
        {ELOOP, "ELOOP"},
        {ENOKEY, "ENOKEY"},
        {EKEYREJECTED, "EKEYREJECTED"},
        {EDQUOT, "EDQUOT"},
        {EOVERFLOW, "EOVERFLOW"},
        {EOPNOTSUPP, "EOPNOTSUPP"},
        {EAFNOSUPPORT, "EAFNOSUPPORT"},
        {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
        {ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"},
        {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {ENETUNREACH, "ENETUNREACH"},
        {ECONNREFUSED, "ECONNREFUSED"},
        {ENODATA, "ENODATA"},
        {EUSERS, "EUSERS"},
};

const char *errno_name(int e) {
        static char buf[32];

        for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
                if (errnos[i].value == e)
                        return errnos[i].name;
        snprintf(buf, sizeof(buf), "E%d", e);
        return buf;
}

const char *signal_name(int sig) {
        static char buf[32];

        switch (sig) {
        case SIGSYS:
                return "SIGSYS";
        case SIGSEGV:
                return "SIGSEGV";
        case SIGKILL:
                return "SIGKILL";
        case SIGILL:
                return "SIGILL";
        case SIGBUS:
                return "SIGBUS";
        case SIGALRM:
                return "SIGALRM";
        case SIGABRT:
                return "SIGABRT";
        case SIGTRAP:
                return "SIGTRAP";
        default:
                snprintf(buf, sizeof(buf), "SIG%d", sig);
                return buf;
        }
}

/* The raw kernel convention (-4095..-1 is -errno) turned into -1 plus errno. */
long raw_result(long r) {
        if (r < 0 && r > -4096) {
                errno = (int) -r;
                return -1;
        }
        return r;
}

typedef struct {
        long ret;
        int err;
} ProbeAnswer;

/* Runs one attempt in a child: the child reports through a pipe; a child that dies
 * reports nothing and its signal is the answer. An attempt that hangs is stopped by
 * SIGALRM after 10 s, which the tests do not count as blocked. */
void probe_run(const Probe *p) {
        int fds[2];
        ProbeAnswer a = {0, 0};
        int status = 0;
        pid_t pid;

        fflush(stdout);
        if (pipe(fds) < 0) {
                printf("%s setup:%s\n", p->name, errno_name(errno));
                return;
        }
        pid = fork();
        if (pid < 0) {
                printf("%s setup:%s\n", p->name, errno_name(errno));
                close(fds[0]);
                close(fds[1]);
                return;
        }
        if (pid == 0) {
                close(fds[0]);
                alarm(10);
                errno = 0;
                a.ret = p->fn();
                a.err = errno;
                if (write(fds[1], &a, sizeof(a)) != (ssize_t) sizeof(a))
                        _exit(3);
                _exit(0);
        }
        close(fds[1]);
        ssize_t n = read(fds[0], &a, sizeof(a));
        close(fds[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (n == (ssize_t) sizeof(a)) {
                if (a.ret >= 0)
                        printf("%s ok:%ld\n", p->name, a.ret);
                else if (a.ret == -2)
                        printf("%s setup:%s\n", p->name, errno_name(a.err));
                else
                        printf("%s %s\n", p->name, errno_name(a.err));
        } else if (WIFSIGNALED(status)) {
                printf("%s killed:%s\n", p->name, signal_name(WTERMSIG(status)));
        } else {
                printf("%s noreport:%d\n", p->name, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        fflush(stdout);
}

static const ProbeGroup *group_find(const char *name) {
        for (size_t i = 0; i < n_kernel_groups; i++)
                if (strcmp(kernel_groups[i].group, name) == 0)
                        return &kernel_groups[i];
        return NULL;
}

static int cmd_sys(int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                bool all = strcmp(argv[i], "all") == 0;
                const ProbeGroup *g = all ? NULL : group_find(argv[i]);

                if (!all && !g) {
                        fprintf(stderr, "probe: unknown group %s\n", argv[i]);
                        return 2;
                }
                for (size_t k = 0; k < n_kernel_groups; k++) {
                        const ProbeGroup *cur = all ? &kernel_groups[k] : g;
                        for (size_t j = 0; j < cur->n_probes; j++)
                                probe_run(&cur->probes[j]);
                        if (!all)
                                break;
                }
        }
        return 0;
}

static int cmd_list(int argc, char **argv) {
        for (size_t i = 0; i < n_kernel_groups; i++) {
                printf("%s:", kernel_groups[i].group);
                for (size_t j = 0; j < kernel_groups[i].n_probes; j++)
                        printf(" %s", kernel_groups[i].probes[j].name);
                printf("\n");
        }
        return 0;
}

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
} commands[] = {
        {"sys", cmd_sys},
        {"list", cmd_list},
        {"forkbomb", cmd_forkbomb},
        {"threadbomb", cmd_threadbomb},
        {"nofile", cmd_nofile},
        {"fill", cmd_fill},
        {"inodes", cmd_inodes},
        {"burn", cmd_burn},
        {"zombies", cmd_zombies},
        {"hold", cmd_hold},
        {"flip", cmd_flip},
        {"fds", cmd_fds},
        {"ipc", cmd_ipc},
};

int main(int argc, char **argv) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc < 2) {
                fprintf(stderr, "usage: probe COMMAND ARGS... (see probe.c)\n");
                return 2;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(commands[i].name, argv[1]) == 0)
                        return commands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "probe: unknown command %s\n", argv[1]);
        return 2;
}
