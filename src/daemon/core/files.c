#include "daemon/core/files.h"

#include <signal.h>
#include <string.h>

static const struct {
        int errnum;
        const char *code;
        const char *what;
} file_errors[] = {
        {ENOENT, "path_not_found", "no such file or directory"},
        {ENOTDIR, "not_a_directory", "a component of the path is not a directory"},
        {EISDIR, "is_a_directory", "is a directory"},
        {ENODEV, "not_a_regular_file", "is not a regular file"},
        {EEXIST, "file_exists", "already exists"},
        {ENOTEMPTY, "directory_not_empty", "directory is not empty"},
        {ENOSPC, "no_space", "the sandbox's disk is full"},
        {EDQUOT, "no_space", "the sandbox's disk quota is exhausted"},
        {EFBIG, "payload_too_large", "file is too large"},
        {E2BIG, "payload_too_large", "the listing is too large"},
        {EINVAL, "invalid_path", "invalid path"},
        {ENAMETOOLONG, "invalid_path", "path is too long"},
        {ELOOP, "invalid_path", "too many symbolic links, or a /proc magic link"},
        {EACCES, "permission_denied", "permission denied"},
        {EPERM, "permission_denied", "operation not permitted"},
        {EROFS, "permission_denied", "read-only file system"},
        {ECONNRESET, "agent_unavailable", "the sandbox's agent went away"},
};

int files_error(ForgeError *err, int errnum, const char *path) {
        if (errnum < 0)
                errnum = -errnum;
        for (size_t i = 0; i < ELEMENTSOF(file_errors); i++)
                if (file_errors[i].errnum == errnum)
                        return forge_error_set(err, errnum, file_errors[i].code, "%s: %s", path,
                                               file_errors[i].what);
        return forge_error_set(err, errnum, "internal", "%s: %s", path, strerror(errnum));
}

/* Cancelling a transfer: SIGNAL on its channel (see docs/agent-protocol.md). */
static void transfer_cancel(AgentConn *c, uint32_t channel);

/* ---- writer ---- */

struct FileWriter {
        unsigned n_ref; /* the owner until done/abort, and the pending reply */
        AgentConn *conn;
        uint32_t channel;
        uint32_t req_id; /* the FILE_WRITE, answered at the end */
        size_t credit;
        bool finished; /* the EOF is sent */
        bool ended;    /* on_done ran or the owner aborted: no more callbacks */
        char *path;
        const FileWriterOps *ops;
        void *userdata;
};

/* Drops n references at once (one call, so the compiler can see no use after free). */
static void writer_release(FileWriter *w, unsigned n) {
        w->n_ref -= n;
        if (w->n_ref > 0)
                return;
        agentc_unref(w->conn);
        free(w->path);
        free(w);
}

static void writer_on_credit(void *userdata, ProtoStream stream, uint32_t bytes) {
        FileWriter *w = userdata;

        w->credit += bytes;
        if (!w->finished)
                agentc_request_watch(w->conn, w->req_id, false);
        if (!w->ended && w->ops->on_writable)
                w->ops->on_writable(w->userdata);
}

static const AgentChannelOps writer_channel_ops = {
        .on_credit = writer_on_credit,
};

static void writer_on_reply(void *userdata, const ProtoResponse *resp) {
        FileWriter *w = userdata;
        ForgeError err = {0};

        unsigned drop = 1; /* the reply's reference */

        agentc_channel_close(w->conn, w->channel);
        if (!w->ended) {
                w->ended = true;
                if (resp->status < 0)
                        files_error(&err, resp->status, w->path);
                w->ops->on_done(w->userdata, resp->status, resp->size, resp->status < 0 ? &err : NULL);
                drop++; /* and the owner's */
        }
        writer_release(w, drop);
}

int file_writer_start(AgentConn *c, const char *path, bool parents, const FileWriterOps *ops, void *userdata,
                      FileWriter **ret) {
        FileWriter *w = calloc(1, sizeof(*w));
        ProtoBuf b = {0};
        int r;

        if (!w || !(w->path = strdup(path))) {
                free(w);
                return -ENOMEM;
        }
        w->n_ref = 2;
        w->conn = agentc_ref(c);
        w->ops = ops;
        w->userdata = userdata;
        w->channel = agentc_channel_open(c, &writer_channel_ops, w);
        w->req_id = agentc_request_begin(c, &b, PROTO_OP_FILE_WRITE);
        proto_buf_put_str(&b, PROTO_TAG_PATH, path);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, w->channel);
        proto_buf_put_int(&b, PROTO_TAG_PARENTS, parents);
        r = w->channel ? agentc_request_send(c, &b, writer_on_reply, w) : -ENOMEM;
        if (r < 0) {
                if (!w->channel)
                        proto_buf_free(&b);
                agentc_channel_close(c, w->channel);
                writer_release(w, 2);
                return r;
        }
        /* Until the EOF the agent mostly waits for us (a client that uploads slowly, or
         * not at all for a while): its silence means something only while we wait for
         * its credit (file_writer_write) and once the EOF is sent. */
        agentc_request_watch(c, w->req_id, false);
        *ret = w;
        return 0;
}

size_t file_writer_window(const FileWriter *w) {
        return w->credit;
}

size_t file_writer_write(FileWriter *w, const void *data, size_t len) {
        size_t n = MIN(len, w->credit);

        if (n < len)
                agentc_request_watch(w->conn, w->req_id, true); /* the rest waits for its credit */
        if (n == 0 || agentc_send_data(w->conn, w->channel, PROTO_STREAM_STDIN, data, n) < 0)
                return 0;
        w->credit -= n;
        return n;
}

int file_writer_finish(FileWriter *w) {
        int r = agentc_send_eof(w->conn, w->channel, PROTO_STREAM_STDIN);

        /* From here the reply (after the fsync and rename) is the agent's to send. */
        if (r >= 0) {
                w->finished = true;
                agentc_request_watch(w->conn, w->req_id, true);
        }
        return r;
}

void file_writer_abort(FileWriter *w) {
        if (!w || w->ended)
                return;
        w->ended = true;
        transfer_cancel(w->conn, w->channel);
        writer_release(w, 1);
}

/* ---- a whole buffer ---- */

typedef struct BufferWrite {
        FileWriter *writer;
        uint8_t *data;
        size_t len, sent;
        void (*on_done)(void *userdata, int status, int64_t size, const ForgeError *err);
        void *userdata;
} BufferWrite;

static void buffer_on_writable(void *userdata) {
        BufferWrite *bw = userdata;

        if (bw->sent == bw->len)
                return;
        bw->sent += file_writer_write(bw->writer, bw->data + bw->sent, bw->len - bw->sent);
        if (bw->sent == bw->len)
                file_writer_finish(bw->writer);
}

static void buffer_on_done(void *userdata, int status, int64_t size, const ForgeError *err) {
        BufferWrite *bw = userdata;

        bw->on_done(bw->userdata, status, size, err);
        free(bw->data);
        free(bw);
}

static const FileWriterOps buffer_writer_ops = {
        .on_writable = buffer_on_writable,
        .on_done = buffer_on_done,
};

int file_write_buffer(AgentConn *c, const char *path, const void *data, size_t len,
                      void (*on_done)(void *userdata, int status, int64_t size, const ForgeError *err),
                      void *userdata) {
        BufferWrite *bw = calloc(1, sizeof(*bw));
        int r;

        if (!bw || !(bw->data = malloc(len ? len : 1))) {
                free(bw);
                return -ENOMEM;
        }
        memcpy(bw->data, data, len);
        bw->len = len;
        bw->on_done = on_done;
        bw->userdata = userdata;
        r = file_writer_start(c, path, true, &buffer_writer_ops, bw, &bw->writer);
        if (r < 0) {
                free(bw->data);
                free(bw);
                return r;
        }
        if (len == 0)
                file_writer_finish(bw->writer);
        return 0;
}

/* ---- reader ---- */

struct FileReader {
        unsigned n_ref; /* the owner until on_end/abort, the channel, and the pending reply */
        AgentConn *conn;
        uint32_t channel;
        bool ended;
        char *path;
        const FileReaderOps *ops;
        void *userdata;
};

static void reader_release(FileReader *r, unsigned n) {
        r->n_ref -= n;
        if (r->n_ref > 0)
                return;
        agentc_unref(r->conn);
        free(r->path);
        free(r);
}

/* Ends the transfer once: closes the channel and tells the owner. Returns how many
 * references the caller must drop (the channel's and the owner's, as they apply). */
static unsigned reader_end(FileReader *r, int status) {
        unsigned drop = 0;

        if (r->channel) {
                agentc_channel_close(r->conn, r->channel);
                r->channel = 0;
                drop++;
        }
        if (!r->ended) {
                r->ended = true;
                r->ops->on_end(r->userdata, status);
                drop++;
        }
        return drop;
}

static void reader_on_data(void *userdata, ProtoStream stream, const uint8_t *data, size_t len) {
        FileReader *r = userdata;

        if (!r->ended)
                r->ops->on_data(r->userdata, data, len);
}

static void reader_on_eof(void *userdata, ProtoStream stream) {
        FileReader *r = userdata;

        reader_release(r, reader_end(r, 0));
}

static void reader_on_lost(void *userdata) {
        FileReader *r = userdata;

        r->channel = 0; /* the connection already dropped it */
        reader_release(r, 1 + reader_end(r, -ECONNRESET));
}

static const AgentChannelOps reader_channel_ops = {
        .on_data = reader_on_data,
        .on_eof = reader_on_eof,
        .on_lost = reader_on_lost,
};

static void reader_on_reply(void *userdata, const ProtoResponse *resp) {
        FileReader *r = userdata;
        ForgeError err = {0};
        unsigned drop = 1; /* the reply's reference */

        if (!r->ended && resp->status < 0) {
                files_error(&err, resp->status, r->path);
                r->ops->on_open(r->userdata, resp->status, 0, &err);
                r->ended = true; /* on_open told the owner it is over */
                drop++;
                if (r->channel) {
                        agentc_channel_close(r->conn, r->channel);
                        r->channel = 0;
                        drop++;
                }
        } else if (!r->ended)
                r->ops->on_open(r->userdata, 0, resp->size, NULL);
        reader_release(r, drop);
}

int file_reader_start(AgentConn *c, const char *path, int64_t max_size, const FileReaderOps *ops,
                      void *userdata, FileReader **ret) {
        FileReader *r = calloc(1, sizeof(*r));
        ProtoBuf b = {0};
        int q;

        if (!r || !(r->path = strdup(path))) {
                free(r);
                return -ENOMEM;
        }
        r->n_ref = 3;
        r->conn = agentc_ref(c);
        r->ops = ops;
        r->userdata = userdata;
        r->channel = agentc_channel_open(c, &reader_channel_ops, r);
        agentc_request_begin(c, &b, PROTO_OP_FILE_READ);
        proto_buf_put_str(&b, PROTO_TAG_PATH, path);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, r->channel);
        if (max_size >= 0)
                proto_buf_put_int(&b, PROTO_TAG_MAX_SIZE, max_size);
        q = r->channel ? agentc_request_send(c, &b, reader_on_reply, r) : -ENOMEM;
        if (q < 0) {
                if (!r->channel)
                        proto_buf_free(&b);
                agentc_channel_close(c, r->channel);
                reader_release(r, 3);
                return q;
        }
        *ret = r;
        return 0;
}

void file_reader_consumed(FileReader *r, size_t len) {
        if (!r->ended && r->channel && len > 0)
                agentc_send_credit(r->conn, r->channel, PROTO_STREAM_STDIN, (uint32_t) len);
}

void file_reader_abort(FileReader *r) {
        unsigned drop = 1; /* the owner's reference */

        if (!r || r->ended)
                return;
        r->ended = true;
        if (r->channel) {
                transfer_cancel(r->conn, r->channel);
                agentc_channel_close(r->conn, r->channel);
                r->channel = 0;
                drop++;
        }
        reader_release(r, drop);
}

static void on_cancel_reply(void *userdata, const ProtoResponse *resp) {
}

static void transfer_cancel(AgentConn *c, uint32_t channel) {
        ProtoBuf b = {0};

        agentc_request_begin(c, &b, PROTO_OP_SIGNAL);
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, channel);
        proto_buf_put_int(&b, PROTO_TAG_SIGNAL, SIGKILL);
        agentc_request_send(c, &b, on_cancel_reply, NULL);
}
