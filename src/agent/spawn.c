/* SPAWN: pipes, a shepherd per command, and the exec status that decides the answer. */
#include "agent/agent.h"
#include "basic/fd-util.h"
#include "basic/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static const char *const stage_names[_SPAWN_STAGE_MAX] = {
        [SPAWN_STAGE_FORK] = "fork",           [SPAWN_STAGE_STDIO] = "stdio",
        [SPAWN_STAGE_SETGROUPS] = "setgroups", [SPAWN_STAGE_SETGID] = "setresgid",
        [SPAWN_STAGE_SETUID] = "setresuid",    [SPAWN_STAGE_CHDIR] = "chdir",
        [SPAWN_STAGE_EXEC] = "execve",         [SPAWN_STAGE_CGROUP] = "cgroup",
};

/* All pipe ends the agent keeps, and those the shepherd takes. With a PTY, out[0] is
 * the master, in[1] a dup of it, out[1] the slave and pty a third master fd for RESIZE. */
typedef struct SpawnFds {
        int in[2], out[2], err[2], status[2], report[2], pty;
} SpawnFds;

static void fds_close(SpawnFds *f) {
        int *all = (int *) f;
        for (size_t i = 0; i < sizeof(SpawnFds) / sizeof(int); i++)
                if (all[i] >= 0) {
                        close(all[i]);
                        all[i] = -1;
                }
}

/* A fresh terminal in the sandbox's own devpts (/dev/ptmx points into it). */
static int pty_open(SpawnFds *f, const ProtoRequest *req) {
        struct winsize ws = { .ws_row = (unsigned short) (req->pty_rows ? req->pty_rows : 24),
                              .ws_col = (unsigned short) (req->pty_cols ? req->pty_cols : 80) };
        char name[64];

        f->pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (f->pty < 0 || grantpt(f->pty) < 0 || unlockpt(f->pty) < 0 ||
            ptsname_r(f->pty, name, sizeof(name)) != 0 || ioctl(f->pty, TIOCSWINSZ, &ws) < 0)
                return -errno;
        f->out[1] = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (f->out[1] < 0 || (f->out[0] = fcntl(f->pty, F_DUPFD_CLOEXEC, 3)) < 0 ||
            (f->in[1] = fcntl(f->pty, F_DUPFD_CLOEXEC, 3)) < 0)
                return -errno;
        return 0;
}

static bool spawn_has_pty(const ProtoRequest *req) {
        return req->pty_rows > 0 || req->pty_cols > 0;
}

static int fds_open(SpawnFds *f, const ProtoRequest *req) {
        int r = 0;

        memset(f, -1, sizeof(*f));
        if (spawn_has_pty(req))
                r = pty_open(f, req);
        else if ((req->stdin_open && pipe2(f->in, O_CLOEXEC) < 0) || pipe2(f->out, O_CLOEXEC) < 0 ||
                 pipe2(f->err, O_CLOEXEC) < 0)
                r = -errno;
        if (r >= 0 && (pipe2(f->status, O_CLOEXEC) < 0 || pipe2(f->report, O_CLOEXEC) < 0))
                r = -errno;
        if (r < 0)
                fds_close(f);
        return r;
}

static int spawn_validate(Agent *a, const ProtoRequest *req, char *msg, size_t msg_size) {
        if (req->channel == 0 || agent_channel_busy(a, req->channel)) {
                snprintf(msg, msg_size, "channel %u is 0 or in use", req->channel);
                return req->channel == 0 ? -EINVAL : -EBUSY;
        }
        if (req->argv[0][0] == 0 || (req->cwd && req->cwd[0] != '/')) {
                snprintf(msg, msg_size, "empty program name or relative cwd");
                return -EINVAL;
        }
        for (size_t i = 0; i < req->n_env; i++)
                if (!strchr(req->env[i], '=')) {
                        snprintf(msg, msg_size, "environment entry without '='");
                        return -EINVAL;
                }
        return 0;
}

/* Blocks until the command has exec'd (the CLOEXEC status pipe closes) or failed. The
 * wait is short: only the child's setup between fork and execve runs meanwhile. */
static int spawn_read_status(int fd, pid_t *ret_pid, char *msg, size_t msg_size) {
        int32_t rec[2];
        pid_t pid = 0;
        ssize_t n;

        while ((n = fd_read_full(fd, rec, sizeof(rec))) == sizeof(rec)) {
                if (rec[0] == SPAWN_STAGE_PID) {
                        pid = rec[1];
                        continue;
                }
                int stage = rec[0] > 0 && rec[0] < _SPAWN_STAGE_MAX ? rec[0] : SPAWN_STAGE_EXEC;
                snprintf(msg, msg_size, "%s: %s", stage_names[stage], strerror(rec[1]));
                return rec[1] > 0 ? -rec[1] : -EIO;
        }
        if (pid <= 0) {
                snprintf(msg, msg_size, "shepherd died before starting the command");
                return -EIO;
        }
        *ret_pid = pid;
        return 0;
}

static Proc *proc_new(const ProtoRequest *req, SpawnFds *f, pid_t shepherd) {
        Proc *p = calloc(1, sizeof(Proc));
        if (!p)
                return NULL;
        if (req->retain && req->meta && !(p->meta = strdup(req->meta))) {
                free(p);
                return NULL;
        }
        p->channel = req->channel;
        p->shepherd = shepherd;
        p->attached = true;
        p->report_fd = TAKE_FD(f->report[0]);
        p->stdin_fd = TAKE_FD(f->in[1]);
        p->pty_fd = TAKE_FD(f->pty);
        p->out[PROTO_STREAM_STDIN] = (ProcStream) { .fd = -1, .discard = true, .ended = true };
        p->out[PROTO_STREAM_STDOUT] = (ProcStream) { .fd = TAKE_FD(f->out[0]), .credit = PROTO_DEFAULT_WINDOW, .drain_left = -1 };
        p->out[PROTO_STREAM_STDERR] = (ProcStream) { .fd = TAKE_FD(f->err[0]), .credit = PROTO_DEFAULT_WINDOW, .drain_left = -1 };
        for (int s = PROTO_STREAM_STDIN; s <= PROTO_STREAM_STDERR; s++)
                ring_init(&p->out[s].ring, AGENT_RING_BYTES);
        p->retain = req->retain;
        if (req->timeout_ms > 0)
                p->deadline_ms = agent_now_ms() + req->timeout_ms;
        fd_set_nonblock(p->out[1].fd, 1);
        if (p->out[2].fd >= 0)
                fd_set_nonblock(p->out[2].fd, 1);
        fd_set_nonblock(p->report_fd, 1);
        if (p->stdin_fd >= 0)
                fd_set_nonblock(p->stdin_fd, 1);
        return p;
}

static pid_t spawn_fork_shepherd(Agent *a, const ProtoRequest *req, SpawnFds *f) {
        static char *empty_env[] = { NULL };
        SpawnPlan plan = {
                .argv = req->argv,
                .envp = req->env ? req->env : empty_env,
                .cwd = req->cwd,
                .uid = req->uid,
                .gid = req->gid,
                .stdin_fd = f->in[0],
                .stdout_fd = f->out[1],
                .stderr_fd = f->err[1],
                .tty_fd = spawn_has_pty(req) ? f->out[1] : -1,
                .status_fd = f->status[1],
                .report_fd = f->report[1],
                .cgroup_fd = a->cgroup_procs_fd,
        };
        pid_t pid = fork();
        if (pid == 0)
                shepherd_run(&plan);
        return pid;
}

int agent_op_spawn(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        SpawnFds f;
        pid_t pid = 0;

        int r = spawn_validate(a, req, msg, msg_size);
        if (r < 0)
                return r;
        r = fds_open(&f, req);
        if (r < 0)
                return r;
        pid_t shepherd = spawn_fork_shepherd(a, req, &f);
        if (shepherd < 0) {
                r = -errno;
                fds_close(&f);
                return r;
        }
        /* Close the child's ends now, or EOF would never come on any of these pipes. */
        int keep[] = { f.in[0], f.out[1], f.err[1], f.status[1], f.report[1] };
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
                if (keep[i] >= 0)
                        close(keep[i]);
        f.in[0] = f.out[1] = f.err[1] = f.status[1] = f.report[1] = -1;

        Proc *p = proc_new(req, &f, shepherd);
        if (!p) {
                fds_close(&f);
                kill(shepherd, SIGTERM);
                return -ENOMEM; /* the shepherd is reaped as an unknown child */
        }
        p->next = a->procs;
        a->procs = p;
        r = spawn_read_status(f.status[0], &pid, msg, msg_size);
        fds_close(&f);
        if (r < 0) {
                /* Nothing ran: drop the channel quietly and let the shepherd be reaped. */
                p->retain = false;
                proc_detach(p);
                return r;
        }
        p->pid = pid;
        if (p->retain)
                retained_forget_pid(a, p);
        proto_buf_put_int(fields, PROTO_TAG_PID, pid);
        agent_respond(a, req->req_id, 0, fields, NULL);
        proc_start(a, p);
        log_debug("spawned %s as pid %d on channel %u%s", req->argv[0], pid, p->channel,
                  p->pty_fd >= 0 ? " on a pty" : "");
        return AGENT_RESPONDED;
}
