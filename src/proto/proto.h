/* The Forge agent protocol: frames over one reliable byte stream (libc only).
 *
 * Every frame is a 12-byte header followed by `length` payload bytes:
 *
 *   u32 length   payload bytes, at most PROTO_MAX_PAYLOAD
 *   u8  type     ProtoFrameType
 *   u8  stream   ProtoStream (DATA, EOF, CREDIT); 0 otherwise
 *   u16 reserved must be 0
 *   u32 channel  0 = control; otherwise a process or file-transfer channel
 *
 * All integers are big-endian. Control payloads (HELLO, REQUEST, RESPONSE, EVENT) are
 * a fixed prefix followed by TLV fields: u16 tag, u32 length, value. Integers in TLVs
 * are 8-byte big-endian; strings are raw bytes without a terminator (the decoder
 * refuses embedded NULs in string fields); repeated tags make lists (argv, env).
 * docs/agent-protocol.md is the full description. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTO_VERSION 1
#define PROTO_HEADER_SIZE 12
#define PROTO_MAX_PAYLOAD (1u << 20)
/* Bytes a sender may have in flight per stream before the receiver grants more. */
#define PROTO_DEFAULT_WINDOW (256u * 1024u)
/* Data frames are cut to at most this many bytes. */
#define PROTO_MAX_DATA (64u * 1024u)

typedef enum ProtoFrameType {
        PROTO_HELLO = 1,    /* both sides, first frame: version + features */
        PROTO_REQUEST = 2,  /* host -> agent, channel 0: u32 req_id, u16 op, TLVs */
        PROTO_RESPONSE = 3, /* agent -> host, channel 0: u32 req_id, i32 status (0 or -errno), TLVs */
        PROTO_DATA = 4,     /* bytes on (channel, stream) */
        PROTO_EOF = 5,      /* (channel, stream) will carry no more data */
        PROTO_CREDIT = 6,   /* payload u32: receiver grants this many more bytes on (channel, stream) */
        PROTO_EVENT = 7,    /* agent -> host: u16 event, TLVs; channel names the subject */
        _PROTO_FRAME_TYPE_MAX,
} ProtoFrameType;

typedef enum ProtoStream {
        PROTO_STREAM_STDIN = 0, /* also the one stream of a file transfer */
        PROTO_STREAM_STDOUT = 1,
        PROTO_STREAM_STDERR = 2,
        _PROTO_STREAM_MAX,
} ProtoStream;

typedef enum ProtoOp {
        PROTO_OP_SPAWN = 1,      /* argv+ env* cwd? channel uid? gid? stdin? timeout_ms? pty_rows? pty_cols? -> pid */
        PROTO_OP_SIGNAL = 2,     /* channel signal -> - */
        PROTO_OP_RESIZE = 3,     /* channel pty_rows pty_cols -> - */
        PROTO_OP_FILE_READ = 4,  /* path channel max_size? -> size mode; then DATA..EOF on channel */
        PROTO_OP_FILE_WRITE = 5, /* path channel mode? mkdirs? -> size (sent after EOF); see below */
        PROTO_OP_STAT = 6,       /* path -> stat fields */
        PROTO_OP_LIST = 7,       /* path -> entry* (each a nested TLV block of stat fields + name) */
        PROTO_OP_MKDIR = 8,      /* path mode? parents? -> - */
        PROTO_OP_REMOVE = 9,     /* path recursive? -> - */
        PROTO_OP_RENAME = 10,    /* path path2 -> - */
        PROTO_OP_USAGE = 11,     /* -> cpu_usec max_rss procs */
        PROTO_OP_PING = 12,      /* -> - */
        PROTO_OP_SHUTDOWN = 13,  /* -> - ; agent kills everything and exits */
        PROTO_OP_PROCS_LIST = 14, /* pid? -> proc* (each a nested TLV block: ProtoProc); META only with pid */
        PROTO_OP_PROC_ADOPT = 15, /* pid channel stdout_offset? stderr_offset? -> stdout_offset stderr_offset
                                   * stdout_end stderr_end; then the replay, then live output */
        PROTO_OP_CLOCK_SET = 16, /* time_ns -> - ; a VM's agent sets its wall clock (elsewhere: nothing) */
        _PROTO_OP_MAX,
} ProtoOp;

/* FILE_WRITE: the agent opens a temporary file beside the target and answers only at the
 * end. While open it grants CREDIT on (channel, STDIN); the host sends DATA then EOF; the
 * agent fsyncs, renames over the target and sends the RESPONSE. An early failure (bad
 * path, ENOSPC mid-stream) is a RESPONSE with an error; later DATA on that channel is
 * dropped. */

typedef enum ProtoEvent {
        PROTO_EVENT_EXIT = 1, /* channel = the process: exit_code? signal? timed_out? cpu_usec max_rss */
        _PROTO_EVENT_MAX,
} ProtoEvent;

typedef enum ProtoTag {
        PROTO_TAG_VERSION = 1,
        PROTO_TAG_FEATURE = 2,   /* string, repeated */
        PROTO_TAG_ARGV = 3,      /* string, repeated, in order */
        PROTO_TAG_ENV = 4,       /* "KEY=VALUE", repeated */
        PROTO_TAG_CWD = 5,
        PROTO_TAG_CHANNEL = 6,
        PROTO_TAG_UID = 7,
        PROTO_TAG_GID = 8,
        PROTO_TAG_STDIN = 9,     /* int, 1 = host will send stdin; otherwise stdin is /dev/null */
        PROTO_TAG_TIMEOUT_MS = 10,
        PROTO_TAG_PTY_ROWS = 11,
        PROTO_TAG_PTY_COLS = 12,
        PROTO_TAG_SIGNAL = 13,
        PROTO_TAG_PID = 14,
        PROTO_TAG_PATH = 15,
        PROTO_TAG_PATH2 = 16,
        PROTO_TAG_MODE = 17,
        PROTO_TAG_SIZE = 18,
        PROTO_TAG_MAX_SIZE = 19,
        PROTO_TAG_MTIME_NS = 20,
        PROTO_TAG_TYPE = 21,     /* int: ProtoFileType */
        PROTO_TAG_NAME = 22,
        PROTO_TAG_ENTRY = 23,    /* nested TLV block */
        PROTO_TAG_PARENTS = 24,  /* int, 1 = create missing parents */
        PROTO_TAG_RECURSIVE = 25,
        PROTO_TAG_EXIT_CODE = 26,
        PROTO_TAG_TIMED_OUT = 27,
        PROTO_TAG_CPU_USEC = 28,
        PROTO_TAG_MAX_RSS_KB = 29,
        PROTO_TAG_PROCS = 30,
        PROTO_TAG_MESSAGE = 31,  /* human detail for an error response */
        PROTO_TAG_LINK_TARGET = 32,
        PROTO_TAG_UID_OWNER = 33,
        PROTO_TAG_GID_OWNER = 34,
        PROTO_TAG_RETAIN = 35,   /* int, 1 = the agent keeps the process's output and exit across connections */
        PROTO_TAG_META = 36,     /* string: the host's own description of a retained process, kept verbatim */
        PROTO_TAG_PROC = 37,     /* nested TLV block: one retained process (PROCS_LIST) */
        PROTO_TAG_STDOUT_OFFSET = 38, /* absolute offsets in a retained process's streams */
        PROTO_TAG_STDERR_OFFSET = 39,
        PROTO_TAG_STDOUT_END = 40,
        PROTO_TAG_STDERR_END = 41,
        /* HELLO from the host, for a VM's agent (docs/agent-protocol.md, "Handshake"). */
        PROTO_TAG_TIME_NS = 42,  /* int: the host's wall clock, ns since the epoch */
        PROTO_TAG_HOSTNAME = 43, /* string: the sandbox's hostname */
        PROTO_TAG_PIDS_MAX = 44, /* int: most processes of the sandbox's commands; 0 = no limit */
        _PROTO_TAG_MAX,
} ProtoTag;

typedef enum ProtoFileType {
        PROTO_FILE_REGULAR = 1,
        PROTO_FILE_DIRECTORY = 2,
        PROTO_FILE_SYMLINK = 3,
        PROTO_FILE_OTHER = 4,
} ProtoFileType;

typedef struct ProtoHeader {
        uint32_t length;
        uint8_t type;
        uint8_t stream;
        uint32_t channel;
} ProtoHeader;

/* ---- frame header ---- */

void proto_header_encode(const ProtoHeader *h, uint8_t out[PROTO_HEADER_SIZE]);
/* 0, or -EBADMSG (unknown type, reserved bits, stream out of range, length too big). */
int proto_header_decode(const uint8_t in[PROTO_HEADER_SIZE], ProtoHeader *ret);

/* ---- building payloads: a growable buffer ---- */

typedef struct ProtoBuf {
        uint8_t *data;
        size_t len, cap;
        int failed; /* sticky: an allocation failed or a field was too large */
} ProtoBuf;

void proto_buf_free(ProtoBuf *b);
void proto_buf_put_u16(ProtoBuf *b, uint16_t v);
void proto_buf_put_u32(ProtoBuf *b, uint32_t v);
void proto_buf_put_bytes(ProtoBuf *b, const void *p, size_t n);
void proto_buf_put_tlv(ProtoBuf *b, uint16_t tag, const void *value, size_t n);
void proto_buf_put_str(ProtoBuf *b, uint16_t tag, const char *s);
void proto_buf_put_int(ProtoBuf *b, uint16_t tag, int64_t v);

/* A complete frame (header + payload) ready to write: start one, add fields, finish.
 * proto_frame_finish() patches the length and returns 0 or -ENOMEM/-EMSGSIZE. */
void proto_frame_begin(ProtoBuf *b, ProtoFrameType type, uint8_t stream, uint32_t channel);
int proto_frame_finish(ProtoBuf *b);
/* Helpers that begin a control frame with its fixed prefix. */
void proto_request_begin(ProtoBuf *b, uint32_t req_id, ProtoOp op);
void proto_response_begin(ProtoBuf *b, uint32_t req_id, int32_t status);
void proto_event_begin(ProtoBuf *b, uint32_t channel, ProtoEvent event);

/* ---- reading payloads: a cursor over TLV fields ---- */

typedef struct ProtoTlv {
        uint16_t tag;
        uint32_t len;
        const uint8_t *value;
} ProtoTlv;

typedef struct ProtoReader {
        const uint8_t *p;
        size_t left;
} ProtoReader;

void proto_reader_init(ProtoReader *r, const void *p, size_t n);
int proto_reader_u16(ProtoReader *r, uint16_t *ret);
int proto_reader_u32(ProtoReader *r, uint32_t *ret);
/* 1 with *ret filled, 0 at the end, -EBADMSG on a truncated field. */
int proto_reader_next(ProtoReader *r, ProtoTlv *ret);

/* Typed access to one TLV: -EBADMSG if the size is wrong or a string holds a NUL. */
int proto_tlv_int(const ProtoTlv *t, int64_t *ret);
/* Copies into a fresh NUL-terminated string (caller frees). */
int proto_tlv_strdup(const ProtoTlv *t, char **ret);

/* Decoded control messages. Strings point into freshly allocated memory owned by the
 * message; proto_*_done() frees them. Unknown tags are ignored (forward compatibility);
 * duplicated single-valued tags and missing required ones are -EBADMSG. */

#define PROTO_MAX_ARGS 4096
/* Most bytes of a SPAWN's META. */
#define PROTO_MAX_META (64u * 1024u)

typedef struct ProtoRequest {
        uint32_t req_id;
        uint16_t op;
        char **argv; /* NULL-terminated, or NULL */
        size_t n_argv;
        char **env; /* NULL-terminated, or NULL */
        size_t n_env;
        char *cwd, *path, *path2;
        uint32_t channel;
        int64_t uid, gid;     /* -1 when absent */
        int64_t stdin_open;   /* 0/1 */
        int64_t timeout_ms;   /* 0 = none */
        int64_t pty_rows, pty_cols; /* 0 = no pty */
        int64_t signal;
        int64_t mode;         /* -1 when absent */
        int64_t max_size;     /* -1 when absent */
        int64_t parents, recursive;
        int64_t retain;       /* 0/1 */
        char *meta;           /* NULL when absent */
        int64_t pid;          /* -1 when absent */
        int64_t offset[2];    /* PROC_ADOPT: replay from (stdout, stderr); 0 when absent */
        int64_t time_ns;      /* CLOCK_SET: the host's wall clock; -1 when absent */
} ProtoRequest;

/* On failure *ret holds nothing but req_id and op (when the prefix was readable), so the
 * agent can still answer. Values out of range for their field are -EINVAL, more than
 * PROTO_MAX_ARGS argv or env strings -E2BIG, other malformed input -EBADMSG. Unknown ops
 * decode (the agent answers -EOPNOTSUPP). */
int proto_request_decode(const void *payload, size_t n, ProtoRequest *ret);
void proto_request_done(ProtoRequest *r);

/* LIST answers hold at most this many entries (one full frame of minimal entries is
 * fewer; the cap only bounds the decoder's array). */
#define PROTO_MAX_ENTRIES 65536

/* Integer fields a message did not carry decode as -1 (ProtoStat.type as 0). */
typedef struct ProtoStat {
        char *name; /* only in LIST entries */
        int64_t type; /* ProtoFileType */
        int64_t size, mode, mtime_ns, uid, gid;
        char *link_target; /* symlinks, when readable */
} ProtoStat;

typedef struct ProtoExit {
        int64_t exit_code; /* -1 when killed by a signal */
        int64_t signal;    /* 0 when it exited */
        int64_t timed_out;
        int64_t cpu_usec, max_rss_kb;
} ProtoExit;

/* A retained process as PROCS_LIST reports it. start and end are the absolute offsets of
 * the oldest and next byte of the agent's ring for (stdout, stderr): start is also the
 * count of bytes dropped. */
typedef struct ProtoProc {
        int64_t pid;
        char *meta;          /* only when PROCS_LIST named the pid; NULL if the spawn gave none */
        int64_t stdin_open;  /* 0/1: stdin still takes bytes */
        int64_t start[2], end[2];
        int64_t exited;      /* 0/1: when 1, exit says how */
        ProtoExit exit;
} ProtoProc;

/* The agent's encoder for one PROCS_LIST entry (a PROC field). */
void proto_proc_put(ProtoBuf *b, const ProtoProc *p);

typedef struct ProtoResponse {
        uint32_t req_id;
        int32_t status;
        char *message;
        int64_t pid, size, mode;
        ProtoStat stat;     /* STAT */
        ProtoStat *entries; /* LIST */
        size_t n_entries;
        int64_t cpu_usec, max_rss_kb, procs; /* USAGE */
        ProtoProc *proc_list; /* PROCS_LIST */
        size_t n_procs;
        int64_t offset[2], end[2]; /* PROC_ADOPT; -1 when absent */
} ProtoResponse;

int proto_response_decode(const void *payload, size_t n, ProtoResponse *ret);
void proto_response_done(ProtoResponse *r);

/* EVENT payload: u16 event, TLVs. Only PROTO_EVENT_EXIT exists in version 1. */
int proto_event_decode(const void *payload, size_t n, uint16_t *ret_event, ProtoExit *ret_exit);

/* Longest hostname a HELLO may carry (the kernel's HOST_NAME_MAX). */
#define PROTO_HOSTNAME_MAX 64

/* HELLO payload: TLVs only. VERSION is required; FEATUREs are only checked (no NUL);
 * the host may add what a VM's agent should make true of its machine, each absent in
 * older hosts and in every HELLO but the one the qemu isolator sends after a boot or a
 * restore. */
typedef struct ProtoHello {
        uint32_t version;
        int64_t time_ns;  /* the host's CLOCK_REALTIME when it sent the HELLO; -1 when absent */
        int64_t pids_max; /* 0 = no limit; -1 when absent */
        char hostname[PROTO_HOSTNAME_MAX + 1]; /* "" when absent */
} ProtoHello;

/* 0, -EBADMSG (malformed, no VERSION, a repeated field, a hostname that is empty or too
 * long) or -EINVAL (a negative time or pids limit). */
int proto_hello_decode(const void *payload, size_t n, ProtoHello *ret);

/* Features forge-agent announces in its HELLO (version 1). */
#define PROTO_FEATURE_SPAWN "spawn"
#define PROTO_FEATURE_FILES "files"
#define PROTO_FEATURE_USAGE "usage"
#define PROTO_FEATURE_PTY "pty"
#define PROTO_FEATURE_RETAIN "retain" /* SPAWN's RETAIN, PROCS_LIST, PROC_ADOPT */

/* Encoders for the agent side (host side builds requests with the buf API). */
int proto_stat_put(ProtoBuf *b, const ProtoStat *st); /* the stat fields as TLVs */
