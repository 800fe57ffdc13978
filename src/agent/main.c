/* forge-agent: PID 1 of a sandbox. Parses flags, becomes a reaper, runs the loop. */
#include "agent/agent.h"
#include "agent/vm.h"
#include "basic/fd-util.h"
#include "basic/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void usage(void) {
        fprintf(stderr, "usage: forge-agent (--listen-fd N | --listen PATH) [--debug] [--log-json]\n");
}

static int listen_on_path(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static int parse_args(int argc, char **argv, int *ret_fd) {
        LogLevel level = LOG_LEVEL_INFO;
        int json = 0, fd = -1;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--listen-fd") == 0 && i + 1 < argc) {
                        char *end;
                        long v = strtol(argv[++i], &end, 10);
                        if (*end || v < 0 || v > INT32_MAX)
                                return -EINVAL;
                        fd = (int) v;
                        if (fd_set_cloexec(fd, 1) < 0 || fd_set_nonblock(fd, 1) < 0)
                                return -EBADF;
                } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
                        fd = listen_on_path(argv[++i]);
                        if (fd < 0)
                                return fd;
                } else if (strcmp(argv[i], "--debug") == 0)
                        level = LOG_LEVEL_DEBUG;
                else if (strcmp(argv[i], "--log-json") == 0)
                        json = 1;
                else
                        return -EINVAL;
        }
        log_setup(level, json);
        if (fd < 0)
                return -EINVAL;
        *ret_fd = fd;
        return 0;
}

/* All signals blocked and read from a signalfd: nothing runs asynchronously, and the
 * children inherit a fully blocked mask that the command child clears before exec. */
static int setup_process(Agent *a) {
        sigset_t all, wanted;

        a->is_pid1 = getpid() == 1;
        prctl(PR_SET_DUMPABLE, 0); /* sandboxed processes must not reach /proc/1/fd */
        if (!a->is_pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
                return -errno;
        umask(0); /* modes given by the host are applied exactly */
        signal(SIGCHLD, SIG_DFL);
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        sigemptyset(&wanted);
        sigaddset(&wanted, SIGCHLD);
        sigaddset(&wanted, SIGTERM);
        sigaddset(&wanted, SIGINT);
        a->sig_fd = signalfd(-1, &wanted, SFD_CLOEXEC | SFD_NONBLOCK);
        return a->sig_fd < 0 ? -errno : 0;
}

int main(int argc, char **argv) {
        Agent a = {.listen_fd = -1, .sig_fd = -1, .cgroup_procs_fd = -1};

        if (fd_ensure_std() < 0)
                return 1;
        /* The kernel starts a VM's init without arguments: the port replaces the socket. */
        bool in_vm = getpid() == 1 && argc == 1;
        int r = in_vm ? 0 : parse_args(argc, argv, &a.listen_fd);
        if (r < 0) {
                usage();
                log_error_errno(r, "bad arguments");
                return 2;
        }
        r = setup_process(&a);
        if (r >= 0 && in_vm)
                r = vm_init(&a);
        if (r < 0) {
                log_error_errno(r, "cannot set up the agent process");
                return 1;
        }
        log_info("forge-agent ready (pid %d, protocol %u)", getpid(), PROTO_VERSION);
        r = agent_run(&a);
        log_error_errno(r, "event loop failed");
        return 1;
}
