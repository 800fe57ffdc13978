/* The host connection: one frame read buffer and a bounded output queue. */
#include "agent/agent.h"
#include "basic/log.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define RBUF_SIZE ((size_t) PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD)

Conn *conn_new(int fd) {
        Conn *c = calloc(1, sizeof(Conn));
        if (!c)
                return NULL;
        c->rbuf = malloc(RBUF_SIZE);
        if (!c->rbuf) {
                free(c);
                return NULL;
        }
        c->fd = fd;
        return c;
}

void conn_free(Conn *c) {
        if (!c)
                return;
        while (c->head) {
                OutChunk *next = c->head->next;
                free(c->head->data);
                free(c->head);
                c->head = next;
        }
        if (c->fd >= 0)
                close(c->fd);
        free(c->rbuf);
        free(c);
}

/* Hands every complete frame in the buffer to the dispatcher, then keeps the rest. */
static int conn_parse(Agent *a, Conn *c) {
        size_t off = 0;
        int r = 0;

        while (c->rlen - off >= PROTO_HEADER_SIZE) {
                ProtoHeader h;
                r = proto_header_decode(c->rbuf + off, &h);
                if (r < 0) {
                        log_warn("bad frame header from host, dropping the connection");
                        return r;
                }
                if (c->rlen - off - PROTO_HEADER_SIZE < h.length)
                        break;
                r = agent_on_frame(a, &h, c->rbuf + off + PROTO_HEADER_SIZE);
                if (r < 0)
                        return r;
                off += PROTO_HEADER_SIZE + h.length;
                if (a->conn != c || c->broken)
                        return -ECONNRESET;
        }
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
        return 0;
}

int conn_on_readable(Agent *a, Conn *c) {
        ssize_t n = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        c->rlen += (size_t) n;
        return conn_parse(a, c);
}

int conn_flush(Conn *c) {
        struct iovec iov[64];
        int n = 0;

        for (OutChunk *k = c->head; k && n < (int) (sizeof(iov) / sizeof(iov[0])); k = k->next, n++)
                iov[n] = (struct iovec) { .iov_base = k->data + k->off, .iov_len = k->len - k->off };
        if (n == 0)
                return 0;
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        c->queued -= (size_t) w;
        while (w > 0) {
                OutChunk *k = c->head;
                size_t left = k->len - k->off;
                if ((size_t) w < left) {
                        k->off += (size_t) w;
                        break;
                }
                w -= (ssize_t) left;
                c->head = k->next;
                if (!c->head)
                        c->tail = NULL;
                free(k->data);
                free(k);
        }
        return 0;
}

/* Used once, just before exiting, so a SHUTDOWN answer reaches the host. */
void conn_flush_blocking(Conn *c, int timeout_ms) {
        int64_t end = agent_now_ms() + timeout_ms;

        while (c->head) {
                int64_t left = end - agent_now_ms();
                struct pollfd p = { .fd = c->fd, .events = POLLOUT };
                if (left <= 0 || poll(&p, 1, (int) left) <= 0)
                        return;
                if (conn_flush(c) < 0)
                        return;
        }
}

void agent_send_raw(Agent *a, uint8_t *frame, size_t len) {
        Conn *c = a->conn;
        OutChunk *k;

        if (!c || c->broken || !(k = malloc(sizeof(OutChunk)))) {
                if (c && !c->broken) {
                        log_error("out of memory queueing a frame, dropping the connection");
                        c->broken = true;
                }
                free(frame);
                return;
        }
        *k = (OutChunk) { .data = frame, .len = len };
        if (c->tail)
                c->tail->next = k;
        else
                c->head = k;
        c->tail = k;
        c->queued += len;
        if (c->queued > AGENT_QUEUE_HARD) {
                log_warn("host is not reading (%zu bytes queued), dropping the connection", c->queued);
                c->broken = true;
        }
}

void agent_send(Agent *a, ProtoBuf *b) {
        int r = proto_frame_finish(b);
        if (r < 0) {
                log_error_errno(r, "cannot build a frame");
                proto_buf_free(b);
                return;
        }
        uint8_t *data = b->data;
        size_t len = b->len;
        *b = (ProtoBuf) {};
        agent_send_raw(a, data, len);
}

void agent_send_empty(Agent *a, ProtoFrameType type, uint32_t channel, uint8_t stream) {
        ProtoBuf b = {};
        proto_frame_begin(&b, type, stream, channel);
        agent_send(a, &b);
}

void agent_send_credit(Agent *a, uint32_t channel, uint8_t stream, uint64_t n) {
        while (n > 0) {
                uint32_t part = n > UINT32_MAX ? UINT32_MAX : (uint32_t) n;
                ProtoBuf b = {};
                proto_frame_begin(&b, PROTO_CREDIT, stream, channel);
                proto_buf_put_u32(&b, part);
                agent_send(a, &b);
                n -= part;
        }
}

bool agent_can_produce(const Agent *a) {
        return a->conn && !a->conn->broken && a->conn->queued < AGENT_QUEUE_SOFT;
}
