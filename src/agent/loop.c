/* The agent's one poll() loop: host connection, listening socket, signals, pipes. */
#include "agent/agent.h"
#include "basic/log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef enum PollKind {
        POLL_SIGNAL,
        POLL_LISTEN,
        POLL_CONN,
        POLL_OUTPUT,
        POLL_REPORT,
        POLL_STDIN,
} PollKind;

typedef struct PollRef {
        PollKind kind;
        Proc *proc;
        int stream;
} PollRef;

typedef struct PollSet {
        struct pollfd *fds;
        PollRef *refs;
        size_t n, cap;
} PollSet;

int64_t agent_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void agent_kill_everything(Agent *a) {
        /* As PID 1 of a namespace, kill(-1) reaches every other process at once. */
        if (a->is_pid1)
                kill(-1, SIGKILL);
        tree_kill_all(NULL, NULL);
}

_Noreturn void agent_exit(Agent *a, int code) {
        if (a->conn)
                conn_flush_blocking(a->conn, 1000);
        exit(code);
}

static void agent_drop_conn(Agent *a) {
        if (!a->conn)
                return;
        conn_free(a->conn);
        a->conn = NULL;
        /* Processes keep running; retained ones keep their output for the next host. */
        for (Proc *p = a->procs; p; p = p->next)
                proc_release(p);
        while (a->transfers)
                transfer_free(a, a->transfers);
        log_info("host connection closed");
}

static void on_accept(Agent *a) {
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warn_errno(errno, "accept failed");
                return;
        }
        Conn *c = conn_new(fd);
        if (!c) {
                close(fd);
                return;
        }
        /* A newer connection wins: the host reconnects after a restart. */
        agent_drop_conn(a);
        a->conn = c;
        log_info("host connected");
        agent_send_hello(a);
}

static void on_child_exits(Agent *a) {
        int status;
        pid_t pid;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                for (Proc *p = a->procs; p; p = p->next)
                        if (p->shepherd == pid && !p->shepherd_reaped) {
                                proc_on_shepherd_exit(a, p, status);
                                break;
                        }
        /* Anything else was an orphan reparented to us: reaping it is all it needs. */
}

static void on_signal(Agent *a) {
        struct signalfd_siginfo si;

        while (read(a->sig_fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                        on_child_exits(a);
                        continue;
                }
                log_info("signal %u: killing every process and exiting", si.ssi_signo);
                agent_kill_everything(a);
                agent_exit(a, 0);
        }
}

static int pollset_add(PollSet *ps, int fd, short events, PollKind kind, Proc *p, int stream) {
        if (ps->n == ps->cap) {
                size_t cap = ps->cap ? ps->cap * 2 : 16;
                struct pollfd *fds = realloc(ps->fds, cap * sizeof(*fds));
                if (!fds)
                        return -ENOMEM;
                ps->fds = fds;
                PollRef *refs = realloc(ps->refs, cap * sizeof(*refs));
                if (!refs)
                        return -ENOMEM;
                ps->refs = refs;
                ps->cap = cap;
        }
        ps->fds[ps->n] = (struct pollfd) { .fd = fd, .events = events };
        ps->refs[ps->n++] = (PollRef) { .kind = kind, .proc = p, .stream = stream };
        return 0;
}

static int pollset_add_proc(PollSet *ps, Agent *a, Proc *p) {
        int r = 0;
        for (int s = PROTO_STREAM_STDOUT; s <= PROTO_STREAM_STDERR && r >= 0; s++)
                if (proc_stream_wants_read(a, p, s))
                        r = pollset_add(ps, p->out[s].fd, POLLIN, POLL_OUTPUT, p, s);
        if (r >= 0 && p->report_fd >= 0)
                r = pollset_add(ps, p->report_fd, POLLIN, POLL_REPORT, p, 0);
        if (r >= 0 && p->stdin_fd >= 0 && p->stdin_len > 0)
                r = pollset_add(ps, p->stdin_fd, POLLOUT, POLL_STDIN, p, 0);
        return r;
}

static int pollset_build(PollSet *ps, Agent *a) {
        int r;

        ps->n = 0;
        r = pollset_add(ps, a->sig_fd, POLLIN, POLL_SIGNAL, NULL, 0);
        if (r >= 0)
                r = pollset_add(ps, a->listen_fd, POLLIN, POLL_LISTEN, NULL, 0);
        if (r >= 0 && a->conn)
                r = pollset_add(ps, a->conn->fd, POLLIN | (a->conn->head ? POLLOUT : 0), POLL_CONN, NULL, 0);
        for (Proc *p = a->procs; p && r >= 0; p = p->next)
                r = pollset_add_proc(ps, a, p);
        return r;
}

static void on_conn_event(Agent *a, short revents) {
        Conn *c = a->conn;
        int r = 0;

        if (revents & POLLOUT)
                r = conn_flush(c);
        if (r >= 0 && (revents & (POLLIN | POLLHUP | POLLERR)))
                r = conn_on_readable(a, c);
        if (r < 0 && a->conn == c)
                agent_drop_conn(a);
}

static void dispatch_event(Agent *a, const struct pollfd *pfd, const PollRef *ref) {
        Proc *p = ref->proc;

        switch (ref->kind) {
        case POLL_SIGNAL:
                on_signal(a);
                break;
        case POLL_LISTEN:
                on_accept(a);
                break;
        case POLL_CONN:
                if (a->conn && a->conn->fd == pfd->fd)
                        on_conn_event(a, pfd->revents);
                break;
        case POLL_OUTPUT:
                if (p->out[ref->stream].fd == pfd->fd)
                        proc_on_output(a, p, ref->stream);
                break;
        case POLL_REPORT:
                if (p->report_fd == pfd->fd)
                        proc_on_report(a, p);
                break;
        case POLL_STDIN:
                if (p->stdin_fd == pfd->fd)
                        proc_stdin_flush(a, p);
                break;
        }
}

/* Timeouts, file reads (regular files are always "readable", so they are not polled)
 * and a connection marked broken; returns the poll timeout. */
static int agent_tick(Agent *a) {
        int64_t now = agent_now_ms(), next = -1;

        if (a->conn && a->conn->broken)
                agent_drop_conn(a);
        for (Proc *p = a->procs; p; p = p->next) {
                int64_t at = proc_check_timers(a, p, now);
                if (at > 0 && (next < 0 || at - now < next))
                        next = at - now;
        }
        for (Transfer *t = a->transfers, *tn; t; t = tn) {
                tn = t->next;
                if (!t->writing)
                        transfer_pump(a, t);
        }
        for (Transfer *t = a->transfers; t; t = t->next)
                if (!t->writing && t->credit > 0 && agent_can_produce(a))
                        next = 0;
        if (a->conn && a->conn->broken)
                next = 0;
        return next > INT32_MAX ? INT32_MAX : (int) next;
}

int agent_run(Agent *a) {
        PollSet ps = {};

        for (;;) {
                int timeout = agent_tick(a);
                if (pollset_build(&ps, a) < 0) {
                        log_error("out of memory building the poll set");
                        timeout = 100;
                }
                int n = poll(ps.fds, ps.n, timeout);
                if (n < 0 && errno != EINTR)
                        return -errno;
                for (size_t i = 0; n > 0 && i < ps.n; i++)
                        if (ps.fds[i].revents)
                                dispatch_event(a, &ps.fds[i], &ps.refs[i]);
                agent_gc_procs(a);
        }
}
