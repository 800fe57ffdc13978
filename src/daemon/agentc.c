#include "daemon/agentc.h"

#include <string.h>

#include "basic/log.h"

typedef struct PendingReply {
        struct PendingReply *next;
        uint32_t req_id;
        bool watched; /* its wait counts toward the silence rule (agentc_request_watch) */
        AgentReply cb;
        void *userdata;
} PendingReply;

typedef struct Channel {
        struct Channel *next;
        uint32_t id;
        const AgentChannelOps *ops;
        void *userdata;
} Channel;

struct AgentConn {
        unsigned n_ref;
        uv_pipe_t pipe;
        bool open;          /* the pipe is readable/writable */
        bool handle_closed; /* uv_close done, the handle may be freed */
        char sandbox_id[64];
        uint64_t serial;
        uint32_t next_req_id;
        uint32_t next_channel;
        PendingReply *replies;
        unsigned n_watched; /* replies whose wait is watched */
        Channel *channels;
        /* The silence rule (agentc.h): armed while a watched reply is awaited. */
        uv_timer_t silence_timer;
        uint64_t silence_timeout_ms;
        uint64_t heard_ms; /* loop time: the last bytes from the agent, or the wait's start */
        bool watching;     /* the owner lets the rule apply (the sandbox is not frozen) */
        AgentClosed on_closed;
        void *on_closed_userdata;
        size_t pending_bytes;
        /* One frame being assembled: header then payload. */
        uint8_t *frame;
        size_t frame_len;
        ProtoHeader header;
        bool have_header;
};

/* Connections are told apart by serial, which a freed one's address would not do. */
static uint64_t last_serial;

typedef struct WriteReq {
        uv_write_t req;
        AgentConn *conn;
        size_t len;
        uint8_t *data;
} WriteReq;

static void conn_free(AgentConn *c) {
        free(c->frame);
        free(c);
}

static void on_handle_closed(uv_handle_t *h) {
        AgentConn *c = h->data;

        c->handle_closed = true;
        agentc_unref(c);
}

static void on_timer_closed(uv_handle_t *h) {
        agentc_unref(h->data);
}

/* ---- the silence rule ---- */

static void on_silence(uv_timer_t *timer);

static bool silence_applies(const AgentConn *c) {
        return c->open && c->watching && c->n_watched > 0;
}

/* Arms the timer when a watched wait begins (the silence counts from then, not from
 * whatever quiet came before), disarms it when none is left. */
static void silence_update(AgentConn *c) {
        bool active = uv_is_active((uv_handle_t *) &c->silence_timer);

        if (silence_applies(c) && !active) {
                uv_update_time(c->pipe.loop); /* the cached time may be a long turn old */
                c->heard_ms = uv_now(c->pipe.loop);
                uv_timer_start(&c->silence_timer, on_silence, c->silence_timeout_ms, 0);
        } else if (!silence_applies(c) && active)
                uv_timer_stop(&c->silence_timer);
}

static void on_silence(uv_timer_t *timer) {
        AgentConn *c = timer->data;
        uint64_t now = uv_now(timer->loop);
        uint64_t quiet = now > c->heard_ms ? now - c->heard_ms : 0;

        if (!silence_applies(c))
                return;
        if (quiet < c->silence_timeout_ms) {
                uv_timer_start(timer, on_silence, c->silence_timeout_ms - quiet, 0);
                return;
        }
        log_sb_warn(c->sandbox_id, 0,
                    "agent sent nothing for %llu ms while %u request%s waited for a reply; closing the "
                    "connection",
                    (unsigned long long) quiet, c->n_watched, c->n_watched == 1 ? "" : "s");
        agentc_close(c);
}

void agentc_set_silence_timeout(AgentConn *c, uint64_t ms) {
        c->silence_timeout_ms = ms > 0 ? ms : AGENTC_SILENCE_TIMEOUT_MS;
        if (uv_is_active((uv_handle_t *) &c->silence_timer))
                uv_timer_start(&c->silence_timer, on_silence, 0, 0); /* re-judged at once */
}

void agentc_set_watching(AgentConn *c, bool watching) {
        if (!c || c->watching == watching)
                return;
        c->watching = watching;
        silence_update(c);
}

void agentc_request_watch(AgentConn *c, uint32_t req_id, bool watched) {
        for (PendingReply *p = c->replies; p; p = p->next)
                if (p->req_id == req_id) {
                        if (p->watched != watched)
                                c->n_watched += watched ? 1 : -1;
                        p->watched = watched;
                        break;
                }
        silence_update(c);
}

/* Takes p off the list of replies awaited (the caller frees it). */
static void reply_unlink(AgentConn *c, PendingReply **link) {
        PendingReply *p = *link;

        *link = p->next;
        if (p->watched)
                c->n_watched--;
}

AgentConn *agentc_ref(AgentConn *c) {
        if (c)
                c->n_ref++;
        return c;
}

AgentConn *agentc_unref(AgentConn *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        conn_free(c);
        return NULL;
}

bool agentc_is_open(const AgentConn *c) {
        return c && c->open;
}

uint64_t agentc_serial(const AgentConn *c) {
        return c ? c->serial : 0;
}

void agentc_on_closed(AgentConn *c, AgentClosed cb, void *userdata) {
        c->on_closed = cb;
        c->on_closed_userdata = userdata;
}

/* Fails everything in flight. Callbacks may close other channels, so entries are taken
 * off the lists one at a time; channels go first so that their owners learn of the loss
 * before the replies they wait for fail. */
static void conn_fail_all(AgentConn *c) {
        while (c->channels) {
                Channel *ch = c->channels;

                c->channels = ch->next;
                if (ch->ops->on_lost)
                        ch->ops->on_lost(ch->userdata);
                free(ch);
        }
        while (c->replies) {
                PendingReply *p = c->replies;
                ProtoResponse resp = {.req_id = p->req_id, .status = -ECONNRESET};

                reply_unlink(c, &c->replies);
                p->cb(p->userdata, &resp);
                free(p);
        }
}

void agentc_close(AgentConn *c) {
        if (!c || !c->open)
                return;
        c->open = false;
        agentc_ref(c); /* callbacks below may drop the last outside reference */
        uv_read_stop((uv_stream_t *) &c->pipe);
        uv_close((uv_handle_t *) &c->pipe, on_handle_closed); /* each handle holds a ref */
        uv_close((uv_handle_t *) &c->silence_timer, on_timer_closed);
        conn_fail_all(c);
        if (c->on_closed)
                c->on_closed(c, c->on_closed_userdata);
        agentc_unref(c);
}

static Channel *channel_find(AgentConn *c, uint32_t id) {
        for (Channel *ch = c->channels; ch; ch = ch->next)
                if (ch->id == id)
                        return ch;
        return NULL;
}

uint32_t agentc_channel_open(AgentConn *c, const AgentChannelOps *ops, void *userdata) {
        Channel *ch = calloc(1, sizeof(*ch));

        if (!ch)
                return 0;
        do
                c->next_channel = c->next_channel + 1 ? c->next_channel + 1 : 1;
        while (channel_find(c, c->next_channel));
        *ch = (Channel){.next = c->channels, .id = c->next_channel, .ops = ops, .userdata = userdata};
        c->channels = ch;
        return ch->id;
}

void agentc_channel_close(AgentConn *c, uint32_t id) {
        for (Channel **p = &c->channels; *p; p = &(*p)->next)
                if ((*p)->id == id) {
                        Channel *ch = *p;
                        *p = ch->next;
                        free(ch);
                        return;
                }
}

static void on_write_done(uv_write_t *req, int status) {
        WriteReq *w = (WriteReq *) req;

        w->conn->pending_bytes -= w->len;
        agentc_unref(w->conn);
        free(w->data);
        free(w);
}

/* Queues a finished frame; takes b's buffer in every case. */
static int conn_write(AgentConn *c, ProtoBuf *b) {
        WriteReq *w;
        uv_buf_t buf;
        int r;

        if (!c->open) {
                proto_buf_free(b);
                return -ECONNRESET;
        }
        r = proto_frame_finish(b);
        if (r < 0) {
                proto_buf_free(b);
                return r;
        }
        w = calloc(1, sizeof(*w));
        if (!w) {
                proto_buf_free(b);
                return -ENOMEM;
        }
        w->conn = agentc_ref(c);
        w->len = b->len;
        w->data = TAKE_PTR(b->data);
        proto_buf_free(b);
        buf = uv_buf_init((char *) w->data, w->len);
        c->pending_bytes += w->len;
        r = uv_write(&w->req, (uv_stream_t *) &c->pipe, &buf, 1, on_write_done);
        if (r < 0) {
                c->pending_bytes -= w->len;
                agentc_unref(c);
                free(w->data);
                free(w);
                return r;
        }
        return 0;
}

uint32_t agentc_request_begin(AgentConn *c, ProtoBuf *b, ProtoOp op) {
        uint32_t id = ++c->next_req_id;

        proto_request_begin(b, id, op);
        return id;
}

int agentc_request_send(AgentConn *c, ProtoBuf *b, AgentReply reply, void *userdata) {
        PendingReply *p = calloc(1, sizeof(*p));
        uint32_t req_id;
        int r;

        if (!p) {
                proto_buf_free(b);
                return -ENOMEM;
        }
        /* The id sits right after the frame header (see proto_request_begin). */
        if (b->len < PROTO_HEADER_SIZE + 4) {
                free(p);
                proto_buf_free(b);
                return -EINVAL;
        }
        req_id = (uint32_t) b->data[PROTO_HEADER_SIZE] << 24 | (uint32_t) b->data[PROTO_HEADER_SIZE + 1] << 16 |
                 (uint32_t) b->data[PROTO_HEADER_SIZE + 2] << 8 | b->data[PROTO_HEADER_SIZE + 3];
        r = conn_write(c, b);
        if (r < 0) {
                free(p);
                return r;
        }
        *p = (PendingReply){
                .next = c->replies, .req_id = req_id, .watched = true, .cb = reply, .userdata = userdata};
        c->replies = p;
        c->n_watched++;
        silence_update(c);
        return 0;
}

int agentc_send_data(AgentConn *c, uint32_t channel, ProtoStream stream, const void *data, size_t len) {
        while (len > 0) {
                size_t n = MIN(len, (size_t) PROTO_MAX_DATA);
                ProtoBuf b = {0};
                int r;

                proto_frame_begin(&b, PROTO_DATA, stream, channel);
                proto_buf_put_bytes(&b, data, n);
                r = conn_write(c, &b);
                if (r < 0)
                        return r;
                data = (const uint8_t *) data + n;
                len -= n;
        }
        return 0;
}

int agentc_send_eof(AgentConn *c, uint32_t channel, ProtoStream stream) {
        ProtoBuf b = {0};

        proto_frame_begin(&b, PROTO_EOF, stream, channel);
        return conn_write(c, &b);
}

int agentc_send_credit(AgentConn *c, uint32_t channel, ProtoStream stream, uint32_t bytes) {
        ProtoBuf b = {0};

        proto_frame_begin(&b, PROTO_CREDIT, stream, channel);
        proto_buf_put_u32(&b, bytes);
        return conn_write(c, &b);
}

size_t agentc_pending(const AgentConn *c) {
        return c->pending_bytes;
}

static int send_hello(AgentConn *c) {
        ProtoBuf b = {0};

        proto_frame_begin(&b, PROTO_HELLO, 0, 0);
        proto_buf_put_int(&b, PROTO_TAG_VERSION, PROTO_VERSION);
        return conn_write(c, &b);
}

static void dispatch_response(AgentConn *c, const uint8_t *payload, size_t len) {
        ProtoResponse resp = {0};
        int r = proto_response_decode(payload, len, &resp);

        if (r < 0) {
                log_sb_warn(c->sandbox_id, r, "agent sent a malformed response; closing");
                agentc_close(c);
                return;
        }
        for (PendingReply **p = &c->replies; *p; p = &(*p)->next)
                if ((*p)->req_id == resp.req_id) {
                        PendingReply *pr = *p;
                        reply_unlink(c, p);
                        silence_update(c);
                        pr->cb(pr->userdata, &resp);
                        free(pr);
                        break;
                }
        proto_response_done(&resp);
}

static void dispatch_channel(AgentConn *c, const ProtoHeader *h, const uint8_t *payload) {
        Channel *ch = channel_find(c, h->channel);
        uint16_t event;
        ProtoExit ex;
        ProtoReader rd;
        uint32_t credit;

        if (!ch)
                return; /* a channel we closed: late frames are expected and dropped */
        switch (h->type) {
        case PROTO_DATA:
                if (ch->ops->on_data)
                        ch->ops->on_data(ch->userdata, h->stream, payload, h->length);
                break;
        case PROTO_EOF:
                if (ch->ops->on_eof)
                        ch->ops->on_eof(ch->userdata, h->stream);
                break;
        case PROTO_CREDIT:
                proto_reader_init(&rd, payload, h->length);
                if (proto_reader_u32(&rd, &credit) == 0 && ch->ops->on_credit)
                        ch->ops->on_credit(ch->userdata, h->stream, credit);
                break;
        case PROTO_EVENT:
                if (proto_event_decode(payload, h->length, &event, &ex) == 0 && event == PROTO_EVENT_EXIT &&
                    ch->ops->on_exit)
                        ch->ops->on_exit(ch->userdata, &ex);
                break;
        }
}

static void dispatch_frame(AgentConn *c, const ProtoHeader *h, const uint8_t *payload) {
        ProtoHello hello;

        switch (h->type) {
        case PROTO_HELLO:
                if (proto_hello_decode(payload, h->length, &hello) < 0 || hello.version != PROTO_VERSION) {
                        log_sb_warn(c->sandbox_id, 0, "agent speaks an unknown protocol version; closing");
                        agentc_close(c);
                }
                break;
        case PROTO_RESPONSE:
                dispatch_response(c, payload, h->length);
                break;
        case PROTO_REQUEST:
                log_sb_warn(c->sandbox_id, 0, "agent sent a request; closing");
                agentc_close(c);
                break;
        default:
                dispatch_channel(c, h, payload);
        }
}

/* Feeds bytes into the frame assembler, dispatching each complete frame. */
static void conn_feed(AgentConn *c, const uint8_t *p, size_t n) {
        agentc_ref(c);
        while (n > 0 && c->open) {
                size_t want = c->have_header ? c->header.length : PROTO_HEADER_SIZE;
                size_t take = MIN(n, want - c->frame_len);

                memcpy(c->frame + c->frame_len, p, take);
                c->frame_len += take;
                p += take;
                n -= take;
                if (c->frame_len < want)
                        break;
                if (!c->have_header) {
                        if (proto_header_decode(c->frame, &c->header) < 0) {
                                log_sb_warn(c->sandbox_id, 0, "agent sent a malformed frame; closing");
                                agentc_close(c);
                                break;
                        }
                        c->have_header = true;
                        c->frame_len = 0;
                        if (c->header.length > 0)
                                continue;
                }
                c->have_header = false;
                c->frame_len = 0;
                dispatch_frame(c, &c->header, c->frame);
        }
        agentc_unref(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
        static char scratch[64 * 1024]; /* single loop thread; consumed before the next read */

        *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
        AgentConn *c = s->data;

        if (nread < 0) {
                if (nread != UV_EOF)
                        log_sb_warn(c->sandbox_id, (int) nread, "agent connection failed");
                agentc_close(c);
                return;
        }
        if (nread > 0)
                c->heard_ms = uv_now(s->loop);
        conn_feed(c, (const uint8_t *) buf->base, (size_t) nread);
}

int agentc_new(uv_loop_t *loop, int fd, const char *sandbox_id, AgentConn **ret) {
        AgentConn *c = calloc(1, sizeof(*c));
        int r;

        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->frame = malloc(PROTO_MAX_PAYLOAD + PROTO_HEADER_SIZE);
        r = c->frame ? uv_pipe_init(loop, &c->pipe, 0) : -ENOMEM;
        if (r < 0) {
                close(fd);
                conn_free(c);
                return r;
        }
        uv_timer_init(loop, &c->silence_timer);
        c->n_ref = 3; /* the caller's, and one held by each handle until its close callback */
        c->serial = ++last_serial;
        c->pipe.data = c;
        c->silence_timer.data = c;
        c->silence_timeout_ms = AGENTC_SILENCE_TIMEOUT_MS;
        c->watching = true;
        c->open = true;
        snprintf(c->sandbox_id, sizeof(c->sandbox_id), "%s", sandbox_id);
        r = uv_pipe_open(&c->pipe, fd);
        /* A refused fd (EEXIST: libuv still watches that number) is not the handle's:
         * uv_close() below will not close it. */
        if (r < 0)
                close(fd);
        if (r >= 0)
                r = uv_read_start((uv_stream_t *) &c->pipe, on_alloc, on_read);
        if (r >= 0)
                r = send_hello(c);
        if (r < 0) {
                agentc_close(c);
                agentc_unref(c);
                return r;
        }
        *ret = c;
        return 0;
}
