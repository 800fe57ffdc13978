/* forge-agent internals: the state one single-threaded loop owns (see
 * docs/agent-protocol.md for the protocol and the process model). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/ring.h"
#include "proto/proto.h"

/* Above the soft mark the agent stops reading process output and files, so data waits in
 * pipes rather than in memory; above the hard mark the host is not reading at all and
 * the connection is dropped. */
#define AGENT_QUEUE_SOFT (1u << 20)
#define AGENT_QUEUE_HARD (8u << 20)
/* Credit is a u32 per frame but adds up; saturate well below overflow. */
#define AGENT_CREDIT_MAX ((uint64_t) 1 << 40)
/* A handler that has sent (or will later send) its own RESPONSE returns this. */
#define AGENT_RESPONDED 1
/* A PTY hands the slave's writes to the master asynchronously (the kernel's flip buffer),
 * so when the main process exits its last output may not be readable yet: the agent
 * keeps reading this long before it counts what the host is still owed. */
#define AGENT_PTY_SETTLE_MS 100
/* A retained process keeps the newest this many bytes of stdout and of stderr (as forged
 * does), and the agent keeps this many finished retained processes, newest first. */
#define AGENT_RING_BYTES (1024 * 1024)
#define AGENT_KEEP_FINISHED 256

typedef struct OutChunk {
        struct OutChunk *next;
        uint8_t *data;
        size_t len, off;
} OutChunk;

typedef struct Conn {
        int fd;
        bool broken; /* protocol error or queue overflow: drop at the next turn */
        bool host_greeted; /* the host's HELLO came: another one is a new host */
        uint8_t *rbuf; /* one frame: header + PROTO_MAX_PAYLOAD */
        size_t rlen;
        OutChunk *head, *tail;
        size_t queued;
} Conn;

/* What a shepherd tells the agent when the command's main process ends. */
typedef struct ShepherdReport {
        int32_t status; /* wait status */
        int32_t unused;
        int64_t cpu_usec;
        int64_t max_rss_kb;
} ShepherdReport;

typedef struct ProcStream {
        int fd;
        uint64_t credit;
        int64_t drain_left; /* after the main exit: bytes still owed to the host; -1 before */
        bool ended;   /* no more bytes for the host (EOF sent, if it was attached) */
        bool discard; /* read and drop: host gone, or the stream ended for the host */
        Ring ring;    /* a retained process's output, whether or not a host is attached */
} ProcStream;

typedef struct Proc {
        struct Proc *next;
        uint32_t channel;
        pid_t pid, shepherd;
        bool attached;  /* started or adopted on the current connection: its events are reported */
        bool retain;    /* kept across connections until adopted again (SPAWN's RETAIN) */
        char *meta;     /* the host's META, kept verbatim for PROCS_LIST */
        bool exited;    /* the main process ended (report received or synthesized) */
        bool exit_sent; /* EXIT sent on this attachment, or never to be sent; the channel is free again */
        bool shepherd_reaped;
        bool timed_out;
        int64_t deadline_ms; /* monotonic; 0 = none */
        int64_t settle_ms;   /* PTY: when to count the output still owed after the main exit; 0 = none */
        int report_fd;
        int pty_fd; /* the PTY master (for RESIZE), -1 without a PTY; stdout and stdin are dups */
        ShepherdReport report;
        ProcStream out[3]; /* indexed by ProtoStream; [STDIN] unused */
        int stdin_fd;
        uint8_t *stdin_buf; /* host bytes not yet in the pipe, at most the window */
        size_t stdin_len;
        uint64_t stdin_allowed; /* credit the host still holds */
        bool stdin_eof;
} Proc;

typedef struct Transfer {
        struct Transfer *next;
        uint32_t channel, req_id;
        bool writing;
        int fd;
        /* FILE_READ */
        uint64_t credit;
        int64_t left; /* -1 = until EOF */
        /* FILE_WRITE */
        int dirfd;
        char *name, *tmp_name;
        uint64_t written, allowed;
} Transfer;

typedef struct Agent {
        int listen_fd, sig_fd;
        Conn *conn;
        Proc *procs;
        Transfer *transfers;
        bool is_pid1;
        /* In a VM (vm.h): the virtio-serial port served instead of listen_fd, and when
         * to look at it again while the host side is closed. */
        char port_path[64];
        int64_t port_retry_ms;
        /* In a VM: how a host HELLO's settings are applied (vm-sync.c); NULL elsewhere,
         * where the host sets clock, hostname and limits from outside. */
        const struct VmSyncOps *sync_ops;
        /* In a VM: cgroup.procs of the commands' cgroup (vm.h), which each command's
         * process joins before its exec; -1 elsewhere. */
        int cgroup_procs_fd;
} Agent;

typedef int (*AgentHandler)(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);

/* loop.c */
int agent_run(Agent *a);
int64_t agent_now_ms(void);
_Noreturn void agent_exit(Agent *a, int code);
/* What the host that goes had: processes keep running (retained ones keep their output
 * for the next host), transfers end. */
void agent_release_host(Agent *a);

/* conn.c */
Conn *conn_new(int fd);
void conn_free(Conn *c);
int conn_on_readable(Agent *a, Conn *c);
int conn_flush(Conn *c);
void conn_flush_blocking(Conn *c, int timeout_ms);
/* Queue a finished frame (takes b->data). Without a connection the frame is dropped. */
void agent_send(Agent *a, ProtoBuf *b);
void agent_send_raw(Agent *a, uint8_t *frame, size_t len);
void agent_send_empty(Agent *a, ProtoFrameType type, uint32_t channel, uint8_t stream);
void agent_send_credit(Agent *a, uint32_t channel, uint8_t stream, uint64_t n);
bool agent_can_produce(const Agent *a);

/* dispatch.c */
int agent_on_frame(Agent *a, const ProtoHeader *h, const uint8_t *payload);
void agent_respond(Agent *a, uint32_t req_id, int status, const ProtoBuf *fields, const char *msg);
void agent_send_hello(Agent *a);

/* spawn.c, shepherd.c */
int agent_op_spawn(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
typedef struct SpawnPlan {
        char **argv, **envp;
        const char *cwd;
        int64_t uid, gid;
        int stdin_fd, stdout_fd, stderr_fd; /* stdin_fd -1 = /dev/null */
        int tty_fd; /* a PTY slave: the controlling terminal and stdio; -1 = pipes */
        int status_fd, report_fd;
        int cgroup_fd; /* cgroup.procs the command joins first; -1 = stays where it is */
} SpawnPlan;
_Noreturn void shepherd_run(const SpawnPlan *plan);
/* Stages the exec'ing child reports through the status pipe. */
typedef enum SpawnStage {
        SPAWN_STAGE_PID = 0,
        SPAWN_STAGE_FORK,
        SPAWN_STAGE_STDIO,
        SPAWN_STAGE_SETGROUPS,
        SPAWN_STAGE_SETGID,
        SPAWN_STAGE_SETUID,
        SPAWN_STAGE_CHDIR,
        SPAWN_STAGE_EXEC,
        SPAWN_STAGE_CGROUP,
        _SPAWN_STAGE_MAX,
} SpawnStage;

/* proc.c */
Proc *proc_find(Agent *a, uint32_t channel);
bool agent_channel_busy(Agent *a, uint32_t channel);
/* After the successful RESPONSE: the stdin window, and stderr's EOF on a PTY. */
void proc_start(Agent *a, Proc *p);
void proc_on_output(Agent *a, Proc *p, int stream);
void proc_on_report(Agent *a, Proc *p);
void proc_on_shepherd_exit(Agent *a, Proc *p, int status);
void proc_stdin_data(Agent *a, Proc *p, const uint8_t *data, size_t n);
void proc_stdin_eof(Agent *a, Proc *p);
void proc_stdin_flush(Agent *a, Proc *p);
void proc_add_credit(Proc *p, int stream, uint32_t n);
void proc_kill_tree(Proc *p);
void proc_detach(Proc *p);
/* The host connection is gone: a retained process keeps its output in its rings until it
 * is adopted again; any other is detached. */
void proc_release(Proc *p);
/* Whether the loop should poll the stream for reading now. */
bool proc_stream_wants_read(const Agent *a, const Proc *p, int stream);
void proc_free(Proc *p);
/* The main process ended and both streams ended for the host. */
bool proc_is_finished(const Proc *p);
void proc_send_data(Agent *a, Proc *p, int stream, const uint8_t *data, size_t n);
void proc_send_exit(Agent *a, Proc *p);

/* retain.c */
void retained_forget_pid(Agent *a, Proc *fresh);
/* Timeout and PTY settling; returns the next deadline (monotonic ms), 0 if none. */
int64_t proc_check_timers(Agent *a, Proc *p, int64_t now);
void agent_gc_procs(Agent *a);
int agent_op_signal(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_resize(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_procs_list(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_proc_adopt(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);

/* tree.c */
/* SIGKILLs every child of the caller; returns how many it found, or -errno. */
int tree_kill_children(void);
/* Kills every descendant (they reparent to the caller, a subreaper) and reaps them all;
 * on_reaped, if set, sees each reaped pid. */
void tree_kill_all(void (*on_reaped)(pid_t pid, int status, void *userdata), void *userdata);
int tree_count_procs(void);

/* files.c, transfer.c */
int agent_open_path(const char *path, int flags, int *ret_fd);
int agent_open_parent(const char *path, int *ret_dirfd, char **ret_name);
int agent_op_stat(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_list(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_mkdir(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_remove(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_rename(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_file_read(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
int agent_op_file_write(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
Transfer *transfer_find(Agent *a, uint32_t channel);
void transfer_pump(Agent *a, Transfer *t);
void transfer_data(Agent *a, Transfer *t, const uint8_t *data, size_t n);
void transfer_eof(Agent *a, Transfer *t);
void transfer_free(Agent *a, Transfer *t);
/* SIGNAL on a transfer channel: stop it (a write leaves the target untouched). */
void transfer_cancel(Agent *a, Transfer *t);

/* path.c */
int agent_openat(int dirfd, const char *path, int flags, mode_t mode);
int agent_path_check(const char *path);
bool agent_name_is_special(const char *name);
int agent_mkdir_p(const char *path, mode_t mode, int *ret_fd);
