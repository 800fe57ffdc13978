/* Retained processes (docs/agent-protocol.md, "Retained processes"): the agent keeps
 * their output and exit across host connections, lists them (PROCS_LIST) and hands one
 * to a host again (PROC_ADOPT): the ring from an offset, then live output. */
#include "agent/agent.h"
#include "basic/log.h"

#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>

static Proc *retained_find(Agent *a, int64_t pid) {
        for (Proc *p = a->procs; p; p = p->next)
                if (p->retain && p->pid == pid)
                        return p;
        return NULL;
}

/* A finished process whose pid the kernel gave to a new one is no longer listed, so a
 * pid names one retained process. */
void retained_forget_pid(Agent *a, Proc *fresh) {
        for (Proc *p = a->procs; p; p = p->next)
                if (p != fresh && p->retain && p->pid == fresh->pid) {
                        p->retain = false;
                        p->exit_sent = true;
                }
}

static void proc_describe(const Proc *p, bool with_meta, ProtoProc *ret) {
        int st = p->report.status;

        *ret = (ProtoProc) {
                .pid = p->pid,
                .meta = with_meta ? p->meta : NULL,
                .stdin_open = p->stdin_fd >= 0 && !p->stdin_eof,
                .exited = proc_is_finished(p),
        };
        for (int i = 0; i < 2; i++) {
                ret->start[i] = (int64_t) ring_start(&p->out[i + 1].ring);
                ret->end[i] = (int64_t) ring_end(&p->out[i + 1].ring);
        }
        if (ret->exited)
                ret->exit = (ProtoExit) {
                        .exit_code = WIFSIGNALED(st) ? -1 : WEXITSTATUS(st),
                        .signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0,
                        .timed_out = p->timed_out,
                        .cpu_usec = p->report.cpu_usec,
                        .max_rss_kb = p->report.max_rss_kb,
                };
}

/* Oldest first: the list is newest first, so it is walked from its end. */
static void list_put(ProtoBuf *fields, const Proc *p) {
        ProtoProc d;

        if (!p)
                return;
        list_put(fields, p->next);
        if (!p->retain || p->pid <= 0)
                return;
        proc_describe(p, false, &d);
        proto_proc_put(fields, &d);
}

/* Every retained process without its META (so the answer stays small), or the one PID
 * names with it. */
int agent_op_procs_list(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        ProtoProc d;

        if (req->pid < 0) {
                list_put(fields, a->procs);
                return 0;
        }
        Proc *p = retained_find(a, req->pid);
        if (!p) {
                snprintf(msg, msg_size, "no retained process with pid %lld", (long long) req->pid);
                return -ESRCH;
        }
        proc_describe(p, true, &d);
        proto_proc_put(fields, &d);
        return 0;
}

/* The ring from `from` to its end, in DATA frames. */
static void replay(Agent *a, Proc *p, int s, uint64_t from) {
        static uint8_t chunk[PROTO_MAX_DATA];
        Ring *r = &p->out[s].ring;
        size_t n;

        while ((n = ring_copy(r, from, chunk, sizeof(chunk))) > 0) {
                proc_send_data(a, p, s, chunk, n);
                from += n;
        }
}

int agent_op_proc_adopt(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        Proc *p = retained_find(a, req->pid);
        uint64_t from[2];

        if (!p) {
                snprintf(msg, msg_size, "no retained process with pid %lld", (long long) req->pid);
                return -ESRCH;
        }
        if (req->channel == 0 || (agent_channel_busy(a, req->channel) && proc_find(a, req->channel) != p)) {
                snprintf(msg, msg_size, "channel %u is 0 or in use", req->channel);
                return req->channel == 0 ? -EINVAL : -EBUSY;
        }
        for (int i = 0; i < 2; i++) {
                const Ring *r = &p->out[i + 1].ring;
                uint64_t want = (uint64_t) req->offset[i];
                from[i] = want < ring_start(r) ? ring_start(r) : want > ring_end(r) ? ring_end(r) : want;
        }
        proto_buf_put_int(fields, PROTO_TAG_STDOUT_OFFSET, (int64_t) from[0]);
        proto_buf_put_int(fields, PROTO_TAG_STDERR_OFFSET, (int64_t) from[1]);
        proto_buf_put_int(fields, PROTO_TAG_STDOUT_END, (int64_t) ring_end(&p->out[1].ring));
        proto_buf_put_int(fields, PROTO_TAG_STDERR_END, (int64_t) ring_end(&p->out[2].ring));
        p->channel = req->channel;
        p->attached = true;
        p->exit_sent = false;
        agent_respond(a, req->req_id, 0, fields, NULL);

        /* The answer, then what the ring holds past the host's offsets, then EOF for the
         * streams that ended: all before any later answer, so a host that follows ADOPT
         * with PING has the whole replay once PING is answered. From here on the stream
         * is attached as if just spawned: a fresh window, read only within credit. */
        for (int s = PROTO_STREAM_STDOUT; s <= PROTO_STREAM_STDERR; s++) {
                ProcStream *st = &p->out[s];
                replay(a, p, s, from[s - 1]);
                st->credit = PROTO_DEFAULT_WINDOW;
                if (st->ended)
                        agent_send_empty(a, PROTO_EOF, p->channel, (uint8_t) s);
        }
        if (p->stdin_fd >= 0 && !p->stdin_eof) {
                p->stdin_allowed = PROTO_DEFAULT_WINDOW - p->stdin_len;
                agent_send_credit(a, p->channel, PROTO_STREAM_STDIN, p->stdin_allowed);
        }
        if (proc_is_finished(p)) {
                proc_send_exit(a, p);
                p->exit_sent = true;
        }
        log_debug("adopted pid %d on channel %u", p->pid, p->channel);
        return AGENT_RESPONDED;
}
