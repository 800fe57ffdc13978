/* File routes: upload/download (SandboX), and the streamed files API. Every path is
 * resolved inside the sandbox by its agent; forged never opens a sandbox path. */
#include <string.h>

#include "basic/base64.h"
#include "basic/fault.h"
#include "basic/time-util.h"
#include "daemon/agentc.h"
#include "daemon/api/api.h"
#include "daemon/core/files.h"

/* Response bytes queued toward a slow client before the agent is told to wait. */
#define DOWNLOAD_HIGH_WATER (1024 * 1024)

/* The ?path= of the request, resolved against the sandbox's cwd. */
static int query_path(ApiCall *call, char **ret, ForgeError *err) {
        bool invalid = false;
        const char *path = http_request_query(call->req, "path", &invalid);

        if (invalid)
                return forge_error_set(err, EINVAL, "invalid_path", "the path must not contain NUL bytes");
        return api_resolve_path(path, call->sb->cwd, ret, err);
}

static bool query_flag(ApiCall *call, const char *name) {
        const char *v = http_request_query(call->req, name, NULL);

        return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static int call_agent(ApiCall *call, AgentConn **ret, ForgeError *err) {
        return manager_agent(call->api->manager, call->sb, ret, err);
}

static json_t *path_json(const char *path, int64_t size) {
        return json_pack("{s:o, s:I}", "path", api_json_string(path), "size", (json_int_t) size);
}

/* ---- upload: {"data": base64, "path"} ---- */

typedef struct PathCall {
        ApiCall *call;
        char *path;
} PathCall;

static void path_call_free(PathCall *pc) {
        free(pc->path);
        free(pc);
}

static void on_written(void *userdata, int status, int64_t size, const ForgeError *err) {
        PathCall *pc = userdata;

        if (status < 0)
                api_respond_error(pc->call, err);
        else
                api_respond_json(pc->call, 200, path_json(pc->path, size));
        path_call_free(pc);
}

void api_upload(ApiCall *call) {
        static const char *const fields[] = {"data", "path", NULL};
        _cleanup_free_ uint8_t *data = NULL;
        PathCall *pc = calloc(1, sizeof(*pc));
        const char *b64, *path;
        ForgeError err = {0};
        AgentConn *conn;
        size_t len = 0;
        int r = pc ? 0 : forge_error_set(&err, ENOMEM, "internal", "out of memory");

        if (r >= 0)
                r = json_only_fields(call->body, fields, "", &err);
        if (r >= 0)
                r = json_get_string(call->body, "data", true, &b64, &err);
        if (r >= 0)
                r = json_get_path(call->body, "path", &path, &err);
        if (r >= 0)
                r = api_resolve_path(path, call->sb->cwd, &pc->path, &err);
        if (r >= 0 && base64_decode(b64, strlen(b64), &data, &len) < 0)
                r = forge_error_set(&err, EINVAL, "invalid_request", "'data' is not valid base64");
        if (r >= 0)
                r = call_agent(call, &conn, &err);
        if (r >= 0) {
                pc->call = call;
                r = file_write_buffer(conn, pc->path, data, len, on_written, pc);
                if (r < 0)
                        forge_error_set(&err, r, "agent_unavailable", "cannot reach the sandbox's agent");
        }
        if (r < 0) {
                if (pc)
                        path_call_free(pc);
                api_respond_error(call, &err);
        }
}

/* ---- download and GET files: streamed, with backpressure from the client ---- */

typedef struct Download {
        ApiCall *call;
        FileReader *reader;
        size_t unacked; /* bytes passed to HTTP but not yet credited back to the agent */
        bool started;
} Download;

static void download_free(Download *d) {
        api_call_free(d->call);
        free(d);
}

static void on_download_drained(HttpRequest *req, void *userdata) {
        Download *d = userdata;

        if (d->reader && d->unacked > 0)
                file_reader_consumed(d->reader, d->unacked);
        d->unacked = 0;
}

static void on_download_open(void *userdata, int status, int64_t size, const ForgeError *err) {
        Download *d = userdata;

        if (status < 0) {
                d->reader = NULL;
                api_respond_error(d->call, err); /* frees the call */
                free(d);
                return;
        }
        d->started = true;
        http_response_begin(d->call->req, 200, "application/octet-stream");
}

static void on_download_data(void *userdata, const uint8_t *data, size_t len) {
        Download *d = userdata;

        http_response_write(d->call->req, data, len);
        if (http_response_pending(d->call->req) < DOWNLOAD_HIGH_WATER) {
                file_reader_consumed(d->reader, len + d->unacked);
                d->unacked = 0;
        } else {
                d->unacked += len;
                http_response_on_drained(d->call->req, on_download_drained, d);
        }
}

static void on_download_end(void *userdata, int status) {
        Download *d = userdata;

        d->reader = NULL;
        if (status < 0)
                http_response_abort(d->call->req); /* never let a cut file look complete */
        else
                http_response_end(d->call->req);
        download_free(d);
}

static const FileReaderOps download_ops = {
        .on_open = on_download_open,
        .on_data = on_download_data,
        .on_end = on_download_end,
};

static void on_download_client_gone(HttpRequest *req, void *userdata) {
        Download *d = userdata;

        file_reader_abort(TAKE_PTR(d->reader));
        download_free(d);
}

void api_download(ApiCall *call) {
        _cleanup_free_ char *path = NULL;
        Download *d = calloc(1, sizeof(*d));
        ForgeError err = {0};
        AgentConn *conn;
        int r = d ? 0 : forge_error_set(&err, ENOMEM, "internal", "out of memory");

        if (r >= 0)
                r = query_path(call, &path, &err);
        if (r >= 0)
                r = call_agent(call, &conn, &err);
        if (r >= 0) {
                d->call = call;
                r = file_reader_start(conn, path, -1, &download_ops, d, &d->reader);
                if (r < 0)
                        forge_error_set(&err, r, "agent_unavailable", "cannot reach the sandbox's agent");
        }
        if (r < 0) {
                free(d);
                return api_respond_error(call, &err);
        }
        http_request_on_abort(call->req, on_download_client_gone, d);
}

/* ---- PUT files: the request body streamed into the agent ---- */

typedef struct Upload {
        ApiCall *call;
        FileWriter *writer;
        char *path;
        uint8_t *held; /* a chunk the agent had no credit for yet */
        size_t held_len, held_off;
        bool body_done, writer_done, responded;
} Upload;

static void upload_maybe_free(Upload *u) {
        if (!u->body_done || !u->writer_done)
                return;
        if (!u->responded)
                api_call_free(u->call);
        free(u->held);
        free(u->path);
        free(u);
}

static void upload_flush(Upload *u) {
        if (u->held) {
                u->held_off += file_writer_write(u->writer, u->held + u->held_off, u->held_len - u->held_off);
                if (u->held_off < u->held_len)
                        return;
                free(TAKE_PTR(u->held));
                http_request_resume(u->call->req);
        }
        if (u->body_done && !u->responded)
                file_writer_finish(u->writer);
}

static void on_upload_writable(void *userdata) {
        Upload *u = userdata;

        if (!u->writer_done)
                upload_flush(u);
}

static void on_upload_done(void *userdata, int status, int64_t size, const ForgeError *err) {
        Upload *u = userdata;

        FAULT_POINT("upload.committed");
        u->writer_done = true;
        if (u->held) {
                /* Reading was paused for want of credit: let the rest of the body drain so
                 * the connection can carry the next request. */
                free(TAKE_PTR(u->held));
                http_request_resume(u->call->req);
        }
        u->responded = true;
        if (status < 0)
                api_respond_error(u->call, err);
        else
                api_respond_json(u->call, 200, path_json(u->path, size));
        upload_maybe_free(u);
}

static const FileWriterOps upload_writer_ops = {
        .on_writable = on_upload_writable,
        .on_done = on_upload_done,
};

static void on_upload_chunk(HttpRequest *req, const char *data, size_t len, void *userdata) {
        Upload *u = userdata;
        size_t n;

        if (u->writer_done)
                return; /* the agent already refused the file; the rest is dropped */
        n = u->held ? 0 : file_writer_write(u->writer, data, len);
        FAULT_POINT("upload.chunk_sent");
        if (n == len)
                return;
        /* No credit: keep the rest and stop reading until the agent catches up. */
        u->held = malloc(len - n);
        if (!u->held) {
                file_writer_abort(TAKE_PTR(u->writer));
                u->writer_done = true;
                u->responded = true;
                api_fail(u->call, "internal", "out of memory");
                return;
        }
        memcpy(u->held, data + n, len - n);
        u->held_len = len - n;
        u->held_off = 0;
        http_request_pause(req);
}

static void on_upload_end(HttpRequest *req, int status, void *userdata) {
        Upload *u = userdata;

        FAULT_POINT("upload.body_received");
        u->body_done = true;
        if (status < 0 && !u->writer_done) {
                /* The client broke off: the partial file must not replace the old one. */
                file_writer_abort(TAKE_PTR(u->writer));
                u->writer_done = true;
        } else if (!u->writer_done && !u->held)
                file_writer_finish(u->writer);
        upload_maybe_free(u);
}

void api_files_put(ApiCall *call) {
        Upload *u = calloc(1, sizeof(*u));
        ForgeError err = {0};
        AgentConn *conn;
        int r = u ? 0 : forge_error_set(&err, ENOMEM, "internal", "out of memory");

        if (r >= 0)
                r = query_path(call, &u->path, &err);
        if (r >= 0)
                r = call_agent(call, &conn, &err);
        if (r >= 0) {
                u->call = call;
                r = file_writer_start(conn, u->path, true, &upload_writer_ops, u, &u->writer);
                if (r < 0)
                        forge_error_set(&err, r, "agent_unavailable", "cannot reach the sandbox's agent");
        }
        if (r < 0) {
                if (u)
                        free(u->path);
                free(u);
                return api_respond_error(call, &err);
        }
        http_request_stream_body(call->req, on_upload_chunk, on_upload_end, u);
}

/* ---- single-request operations: stat, list, mkdir, delete ---- */

typedef void (*AgentAnswer)(ApiCall *call, const char *path, const ProtoResponse *resp);

typedef struct OpCall {
        ApiCall *call;
        char *path;
        AgentAnswer answer;
} OpCall;

static void on_op_reply(void *userdata, const ProtoResponse *resp) {
        OpCall *oc = userdata;
        ForgeError err = {0};

        if (resp->status < 0) {
                files_error(&err, resp->status, oc->path);
                api_respond_error(oc->call, &err);
        } else
                oc->answer(oc->call, oc->path, resp);
        free(oc->path);
        free(oc);
}

/* Sends op on path (with an optional flag TLV) and answers through `answer`. */
static void op_run(ApiCall *call, char *path, ProtoOp op, uint16_t flag_tag, bool flag, AgentAnswer answer) {
        OpCall *oc = calloc(1, sizeof(*oc));
        ForgeError err = {0};
        ProtoBuf b = {0};
        AgentConn *conn;
        int r = oc ? call_agent(call, &conn, &err) : forge_error_set(&err, ENOMEM, "internal", "out of memory");

        if (r >= 0) {
                *oc = (OpCall){.call = call, .path = path, .answer = answer};
                agentc_request_begin(conn, &b, op);
                proto_buf_put_str(&b, PROTO_TAG_PATH, path);
                if (flag_tag)
                        proto_buf_put_int(&b, flag_tag, flag);
                r = agentc_request_send(conn, &b, on_op_reply, oc);
                if (r < 0)
                        forge_error_set(&err, r, "agent_unavailable", "cannot reach the sandbox's agent");
        }
        if (r < 0) {
                free(oc);
                free(path);
                api_respond_error(call, &err);
        }
}

static const char *file_type_name(int64_t type) {
        switch (type) {
        case PROTO_FILE_REGULAR:
                return "file";
        case PROTO_FILE_DIRECTORY:
                return "directory";
        case PROTO_FILE_SYMLINK:
                return "symlink";
        default:
                return "other";
        }
}

static json_t *stat_json(const ProtoStat *st, const char *name) {
        char mtime[40];
        json_t *j;

        time_format_rfc3339(st->mtime_ns / 1000000, mtime, sizeof(mtime));
        j = json_pack("{s:o, s:s, s:I, s:I, s:s}", "name", api_json_string(name), "type", file_type_name(st->type), "size",
                      (json_int_t) st->size, "mode", (json_int_t) (st->mode & 07777), "mtime", mtime);
        if (j && st->link_target)
                json_object_set_new(j, "link_target", api_json_string(st->link_target));
        return j;
}

static const char *path_basename(const char *path) {
        const char *slash = strrchr(path, '/');

        return slash && slash[1] ? slash + 1 : path;
}

static void answer_stat(ApiCall *call, const char *path, const ProtoResponse *resp) {
        json_t *j = stat_json(&resp->stat, path_basename(path));

        if (j)
                json_object_set_new(j, "path", api_json_string(path));
        api_respond_json(call, 200, j);
}

static void answer_list(ApiCall *call, const char *path, const ProtoResponse *resp) {
        json_t *entries = json_array();

        for (size_t i = 0; i < resp->n_entries; i++) {
                json_array_append_new(entries, stat_json(&resp->entries[i], resp->entries[i].name));
        }
        api_respond_json(call, 200, json_pack("{s:o, s:o}", "path", api_json_string(path), "entries", entries));
}

static void answer_created(ApiCall *call, const char *path, const ProtoResponse *resp) {
        api_respond_json(call, 201, json_pack("{s:o}", "path", api_json_string(path)));
}

static void answer_deleted(ApiCall *call, const char *path, const ProtoResponse *resp) {
        api_respond_json(call, 204, NULL);
}

static void path_op(ApiCall *call, ProtoOp op, uint16_t flag_tag, bool flag, AgentAnswer answer) {
        ForgeError err = {0};
        char *path = NULL;

        if (query_path(call, &path, &err) < 0)
                return api_respond_error(call, &err);
        op_run(call, path, op, flag_tag, flag, answer);
}

void api_files_stat(ApiCall *call) {
        path_op(call, PROTO_OP_STAT, 0, false, answer_stat);
}

void api_files_list(ApiCall *call) {
        path_op(call, PROTO_OP_LIST, 0, false, answer_list);
}

void api_files_delete(ApiCall *call) {
        path_op(call, PROTO_OP_REMOVE, PROTO_TAG_RECURSIVE, query_flag(call, "recursive"), answer_deleted);
}

void api_files_mkdir(ApiCall *call) {
        static const char *const fields[] = {"path", "parents", NULL};
        ForgeError err = {0};
        const char *path;
        char *resolved = NULL;
        bool parents = false;

        if (json_only_fields(call->body, fields, "", &err) < 0 ||
            json_get_path(call->body, "path", &path, &err) < 0 ||
            json_get_bool(call->body, "parents", &parents, &err) < 0 ||
            api_resolve_path(path, call->sb->cwd, &resolved, &err) < 0)
                return api_respond_error(call, &err);
        op_run(call, resolved, PROTO_OP_MKDIR, PROTO_TAG_PARENTS, parents, answer_created);
}
