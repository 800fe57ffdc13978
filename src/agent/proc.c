/* A running command as the agent sees it: output under credit, stdin, the exit report,
 * and the ordering rule that EXIT follows EOF on stdout and stderr. */
#include "agent/agent.h"
#include "basic/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

static uint8_t scratch[PROTO_MAX_DATA];

Proc *proc_find(Agent *a, uint32_t channel) {
        for (Proc *p = a->procs; p; p = p->next)
                if (p->channel == channel && p->attached && !p->exit_sent)
                        return p;
        return NULL;
}

bool agent_channel_busy(Agent *a, uint32_t channel) {
        return proc_find(a, channel) || transfer_find(a, channel);
}

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void stdin_close(Proc *p) {
        close_fd(&p->stdin_fd);
        free(p->stdin_buf);
        p->stdin_buf = NULL;
        p->stdin_len = 0;
}

void proc_send_exit(Agent *a, Proc *p) {
        ProtoBuf b = {};
        int st = p->report.status;

        proto_event_begin(&b, p->channel, PROTO_EVENT_EXIT);
        if (WIFSIGNALED(st))
                proto_buf_put_int(&b, PROTO_TAG_SIGNAL, WTERMSIG(st));
        else
                proto_buf_put_int(&b, PROTO_TAG_EXIT_CODE, WEXITSTATUS(st));
        proto_buf_put_int(&b, PROTO_TAG_TIMED_OUT, p->timed_out);
        proto_buf_put_int(&b, PROTO_TAG_CPU_USEC, p->report.cpu_usec);
        proto_buf_put_int(&b, PROTO_TAG_MAX_RSS_KB, p->report.max_rss_kb);
        agent_send(a, &b);
}

bool proc_is_finished(const Proc *p) {
        return p->exited && p->out[PROTO_STREAM_STDOUT].ended && p->out[PROTO_STREAM_STDERR].ended;
}

static void proc_maybe_send_exit(Agent *a, Proc *p) {
        if (!proc_is_finished(p) || p->exit_sent)
                return;
        if (p->attached)
                proc_send_exit(a, p);
        p->settle_ms = 0;
        stdin_close(p);
        close_fd(&p->pty_fd);
        /* A retained process without a host keeps its EXIT for the one that adopts it. */
        p->exit_sent = p->attached || !p->retain;
}

/* The host gets EOF; whatever still comes through the pipe (background processes) is
 * read and dropped so they never block or get SIGPIPE. */
static void stream_finish(Agent *a, Proc *p, int s, bool closed) {
        ProcStream *st = &p->out[s];

        if (!st->ended && p->attached)
                agent_send_empty(a, PROTO_EOF, p->channel, (uint8_t) s);
        st->ended = true;
        st->discard = true;
        if (p->retain)
                ring_shrink(&st->ring);
        if (closed)
                close_fd(&st->fd);
        proc_maybe_send_exit(a, p);
}

static void stream_discard(ProcStream *st) {
        ssize_t n = read(st->fd, scratch, sizeof(scratch));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                close_fd(&st->fd);
}

void proc_send_data(Agent *a, Proc *p, int s, const uint8_t *data, size_t n) {
        uint8_t *frame = malloc(PROTO_HEADER_SIZE + n);

        if (!frame) {
                log_error("out of memory for output of channel %u", p->channel);
                return;
        }
        ProtoHeader h = { .length = (uint32_t) n, .type = PROTO_DATA, .stream = (uint8_t) s, .channel = p->channel };
        proto_header_encode(&h, frame);
        memcpy(frame + PROTO_HEADER_SIZE, data, n);
        agent_send_raw(a, frame, PROTO_HEADER_SIZE + n);
}

/* Attached, output goes to the host within its credit (and, retained, into the ring
 * too); a retained process without a host is read freely into its ring, so it never
 * blocks and its newest output waits for the next adoption. */
void proc_on_output(Agent *a, Proc *p, int s) {
        ProcStream *st = &p->out[s];

        if (st->discard) {
                stream_discard(st);
                return;
        }
        size_t want = PROTO_MAX_DATA;
        if (p->attached && st->credit < want)
                want = (size_t) st->credit;
        if (st->drain_left >= 0 && (uint64_t) st->drain_left < want)
                want = (size_t) st->drain_left;
        if (want == 0)
                return;
        ssize_t n = read(st->fd, scratch, want);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                stream_finish(a, p, s, true);
                return;
        }
        if (p->retain)
                ring_append(&st->ring, scratch, (size_t) n);
        if (p->attached) {
                proc_send_data(a, p, s, scratch, (size_t) n);
                st->credit -= (uint64_t) n;
        }
        if (st->drain_left >= 0 && (st->drain_left -= n) == 0)
                stream_finish(a, p, s, false);
}

/* What the main process wrote is in the pipe now, so FIONREAD says exactly how much the
 * host is still owed; later bytes come from background processes. */
static void proc_settle_streams(Agent *a, Proc *p) {
        p->settle_ms = 0;
        for (int s = PROTO_STREAM_STDOUT; s <= PROTO_STREAM_STDERR; s++) {
                ProcStream *st = &p->out[s];
                int avail = 0;
                if (st->ended)
                        continue;
                if (st->fd < 0 || ioctl(st->fd, FIONREAD, &avail) < 0)
                        avail = 0;
                st->drain_left = avail;
                if (avail == 0)
                        stream_finish(a, p, s, false);
        }
        proc_maybe_send_exit(a, p);
}

/* The main process is gone. On a PTY its last bytes may still be on their way to the
 * master, so the count waits a moment (or for EIO: every holder of the slave closed). */
static void proc_main_exited(Agent *a, Proc *p, const ShepherdReport *rep) {
        p->report = *rep;
        p->exited = true;
        p->deadline_ms = 0;
        if (p->pty_fd >= 0 && !p->out[PROTO_STREAM_STDOUT].ended) {
                p->settle_ms = agent_now_ms() + AGENT_PTY_SETTLE_MS;
                return;
        }
        proc_settle_streams(a, p);
}

void proc_on_report(Agent *a, Proc *p) {
        ShepherdReport rep;

        ssize_t n = read(p->report_fd, &rep, sizeof(rep));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n == (ssize_t) sizeof(rep) && !p->exited)
                proc_main_exited(a, p, &rep);
        else if (n <= 0)
                close_fd(&p->report_fd);
}

void proc_on_shepherd_exit(Agent *a, Proc *p, int status) {
        p->shepherd_reaped = true;
        if (!p->exited && p->report_fd >= 0)
                proc_on_report(a, p);
        if (!p->exited) {
                /* The shepherd died without a report (killed from inside the sandbox):
                 * its fate stands in for the command's. */
                ShepherdReport rep = { .status = status };
                log_warn("shepherd of channel %u died without a report", p->channel);
                proc_main_exited(a, p, &rep);
        }
        close_fd(&p->report_fd);
}

void proc_start(Agent *a, Proc *p) {
        if (p->stdin_fd >= 0) {
                p->stdin_allowed = PROTO_DEFAULT_WINDOW;
                agent_send_credit(a, p->channel, PROTO_STREAM_STDIN, PROTO_DEFAULT_WINDOW);
        }
        /* A terminal has one output stream: stderr ends at once, keeping the rule that
         * EXIT follows EOF on both. */
        if (p->pty_fd >= 0)
                stream_finish(a, p, PROTO_STREAM_STDERR, false);
}

void proc_add_credit(Proc *p, int s, uint32_t n) {
        ProcStream *st = &p->out[s];
        st->credit = st->credit + n > AGENT_CREDIT_MAX ? AGENT_CREDIT_MAX : st->credit + n;
}

void proc_stdin_flush(Agent *a, Proc *p) {
        size_t done = 0;

        while (p->stdin_fd >= 0 && done < p->stdin_len) {
                ssize_t n = write(p->stdin_fd, p->stdin_buf + done, p->stdin_len - done);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                if (n < 0) {
                        /* The reader is gone (EPIPE): drop what is left, keep the host moving. */
                        done = p->stdin_len;
                        close_fd(&p->stdin_fd);
                        break;
                }
                done += (size_t) n;
        }
        if (done > 0) {
                memmove(p->stdin_buf, p->stdin_buf + done, p->stdin_len - done);
                p->stdin_len -= done;
                p->stdin_allowed += done;
                if (p->attached)
                        agent_send_credit(a, p->channel, PROTO_STREAM_STDIN, done);
        }
        if (p->stdin_eof && p->stdin_len == 0)
                stdin_close(p);
}

void proc_stdin_data(Agent *a, Proc *p, const uint8_t *data, size_t n) {
        if (p->stdin_eof)
                return;
        if (n > p->stdin_allowed) {
                log_warn("host sent %zu stdin bytes beyond its credit on channel %u", n - (size_t) p->stdin_allowed,
                         p->channel);
                n = (size_t) p->stdin_allowed;
        }
        if (!p->stdin_buf && !(p->stdin_buf = malloc(PROTO_DEFAULT_WINDOW))) {
                log_error("out of memory for stdin of channel %u", p->channel);
                return;
        }
        /* allowed + buffered never exceeds the window, so this always fits. */
        memcpy(p->stdin_buf + p->stdin_len, data, n);
        p->stdin_len += n;
        p->stdin_allowed -= n;
        proc_stdin_flush(a, p);
}

void proc_stdin_eof(Agent *a, Proc *p) {
        p->stdin_eof = true;
        proc_stdin_flush(a, p);
}

void proc_kill_tree(Proc *p) {
        if (p->pid > 0 && !p->exited)
                kill(-p->pid, SIGKILL); /* quick first strike; the shepherd finds the rest */
        if (!p->shepherd_reaped)
                kill(p->shepherd, SIGTERM);
}

void proc_detach(Proc *p) {
        p->attached = false;
        p->exit_sent = true;
        p->deadline_ms = 0;
        p->settle_ms = 0;
        for (int s = PROTO_STREAM_STDOUT; s <= PROTO_STREAM_STDERR; s++) {
                p->out[s].discard = true;
                p->out[s].ended = true;
        }
        stdin_close(p);
}

void proc_release(Proc *p) {
        if (!p->retain) {
                proc_detach(p);
                return;
        }
        /* The deadline, PTY settling and stdin carry on; the host's stdin credit is void
         * (the adopting host gets a fresh window). */
        p->attached = false;
        p->stdin_allowed = 0;
}

bool proc_stream_wants_read(const Agent *a, const Proc *p, int s) {
        const ProcStream *st = &p->out[s];

        if (st->fd < 0)
                return false;
        if (st->discard)
                return true;
        if (st->drain_left == 0)
                return false;
        if (!p->attached)
                return p->retain;
        return st->credit > 0 && agent_can_produce(a);
}

int64_t proc_check_timers(Agent *a, Proc *p, int64_t now) {
        if (p->settle_ms > 0 && now >= p->settle_ms)
                proc_settle_streams(a, p);
        if (p->deadline_ms > 0 && !p->exited && now >= p->deadline_ms) {
                p->deadline_ms = 0;
                p->timed_out = true;
                proc_kill_tree(p);
        }
        if (p->deadline_ms > 0 && (p->settle_ms == 0 || p->deadline_ms < p->settle_ms))
                return p->deadline_ms;
        return p->settle_ms;
}

int agent_op_signal(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        Proc *p = proc_find(a, req->channel);
        Transfer *t = p ? NULL : transfer_find(a, req->channel);

        if (t) {
                transfer_cancel(a, t);
                return 0;
        }
        if (!p || p->pid <= 0)
                return -ESRCH;
        if (req->signal == SIGKILL) {
                proc_kill_tree(p);
                return 0;
        }
        if (kill(-p->pid, (int) req->signal) < 0)
                return -errno;
        return 0;
}

/* The kernel sends SIGWINCH to the terminal's foreground process group. */
int agent_op_resize(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        Proc *p = proc_find(a, req->channel);
        struct winsize ws = { .ws_row = (unsigned short) req->pty_rows, .ws_col = (unsigned short) req->pty_cols };

        if (!p)
                return -ESRCH;
        if (p->pty_fd < 0) {
                snprintf(msg, msg_size, "channel %u has no terminal", req->channel);
                return -ENOTTY;
        }
        if (req->pty_rows <= 0 || req->pty_cols <= 0)
                return -EINVAL;
        return ioctl(p->pty_fd, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

void proc_free(Proc *p) {
        stdin_close(p);
        close_fd(&p->pty_fd);
        close_fd(&p->report_fd);
        for (int s = PROTO_STREAM_STDOUT; s <= PROTO_STREAM_STDERR; s++) {
                close_fd(&p->out[s].fd);
                ring_done(&p->out[s].ring);
        }
        free(p->meta);
        free(p);
}

/* Nothing of the process is left to wait for: no fd open, the shepherd reaped. */
static bool proc_is_over(const Proc *p) {
        return p->shepherd_reaped && p->out[1].fd < 0 && p->out[2].fd < 0 && p->report_fd < 0 &&
               (p->exit_sent || (p->retain && !p->attached && proc_is_finished(p)));
}

/* Frees what is over: any process that is not retained, and retained ones past the
 * AGENT_KEEP_FINISHED newest finished (the list is newest first). */
void agent_gc_procs(Agent *a) {
        unsigned kept = 0;

        for (Proc **pp = &a->procs; *pp;) {
                Proc *p = *pp;
                bool over = proc_is_over(p);
                if (over && p->retain && kept < AGENT_KEEP_FINISHED) {
                        kept++;
                        over = false;
                }
                if (!over) {
                        pp = &p->next;
                        continue;
                }
                *pp = p->next;
                proc_free(p);
        }
}
