/* See http-feed.h. Reaches into daemon/http/internal.h on purpose: the harness stands
 * in for server.c's accept path and watches the connection's state to know when the
 * server is done, which the public header does not show. */
#include "http-feed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/http/internal.h"

/* Loop turns without progress after which the server is considered settled, and the
 * turns a dead connection may take to be freed. */
#define SETTLE_TURNS 3
#define FREE_TURNS 1000

static size_t peer_read_total;

/* The client reads and drops whatever the server sends (FUZZ_ECHO=1 shows it). */
static void peer_drain(int fd) {
        static char sink[64 * 1024];
        ssize_t n;

        static int echo = -1;

        if (echo < 0)
                echo = getenv("FUZZ_ECHO") != NULL; /* to see what the server answered */
        while ((n = read(fd, sink, sizeof(sink))) > 0) {
                peer_read_total += (size_t) n;
                if (echo)
                        fwrite(sink, 1, (size_t) n, stderr);
        }
}

static size_t socket_unread(int fd) {
        int n = 0;

        if (ioctl(fd, FIONREAD, &n) < 0)
                return 0;
        return (size_t) n;
}

/* A fingerprint of everything that can move while the server works. */
static size_t conn_progress(const HttpServer *s, const HttpConn *c, int server_fd, HttpFeedBusy busy) {
        return peer_read_total * 7 + socket_unread(server_fd) * 5 + c->in_start * 3 + c->in_end +
               c->n_writes * 11 + (c->req ? 13 : 0) + (c->closed ? 17 : 0) + (s->scheduled ? 19 : 0) +
               (busy() ? 23 : 0);
}

/* Runs the loop until nothing changes for a few turns (or max_turns pass). */
static void loop_settle(uv_loop_t *loop, HttpServer *s, HttpConn *c, int server_fd, int peer_fd,
                        HttpFeedBusy busy, unsigned max_turns) {
        unsigned quiet = 0;

        for (unsigned turn = 0; turn < max_turns && quiet < SETTLE_TURNS; turn++) {
                size_t before = conn_progress(s, c, server_fd, busy);

                peer_drain(peer_fd);
                uv_run(loop, UV_RUN_NOWAIT);
                peer_drain(peer_fd);
                if (c->closed && !busy())
                        return;
                quiet = conn_progress(s, c, server_fd, busy) == before ? quiet + 1 : 0;
        }
}

static HttpConn *conn_accept(HttpServer *s, int fd) {
        HttpConn *c;
        int r;

        /* What server.c's on_connection does with an accepted TCP socket. */
        r = http_conn_new(s, false, &c);
        if (r < 0) {
                close(fd);
                return NULL;
        }
        r = uv_tcp_open(&c->tcp, fd);
        if (r >= 0)
                r = http_conn_start(c);
        if (r < 0) {
                fprintf(stderr, "http-feed: cannot start a connection: %s\n", uv_strerror(r));
                abort(); /* the harness's own failure, not a finding */
        }
        /* on_connection drops its reference here; the harness keeps it to watch. */
        return c;
}

static void feed_pieces(uv_loop_t *loop, HttpServer *s, HttpConn *c, int server_fd, int peer_fd,
                        const uint8_t *data, size_t len, size_t piece, HttpFeedBusy busy) {
        size_t off = 0;
        unsigned stuck = 0;

        while (off < len && !c->closed && stuck < 8) {
                size_t n = piece == 0 || piece > len - off ? len - off : piece;
                ssize_t w = write(peer_fd, data + off, n);

                if (w > 0) {
                        off += (size_t) w;
                        stuck = 0;
                } else if (w < 0 && errno != EAGAIN && errno != EINTR)
                        break; /* the server closed its end */
                else
                        stuck++; /* the server stopped reading: settle, then try again */
                loop_settle(loop, s, c, server_fd, peer_fd, busy, w > 0 ? 1 : 64);
        }
}

void http_feed_run(uv_loop_t *loop, HttpServer *s, const uint8_t *data, size_t len, size_t piece,
                   HttpFeedBusy busy) {
        int sv[2], server_fd;
        HttpConn *c;
        unsigned turn;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
                perror("socketpair");
                abort();
        }
        server_fd = sv[0];
        c = conn_accept(s, server_fd);
        if (!c) {
                close(sv[1]);
                return;
        }
        feed_pieces(loop, s, c, server_fd, sv[1], data, len, piece, busy);
        loop_settle(loop, s, c, server_fd, sv[1], busy, 256);

        /* The client hangs up: a request still in flight is aborted. */
        shutdown(sv[1], SHUT_WR);
        loop_settle(loop, s, c, server_fd, sv[1], busy, 64);
        close(sv[1]);
        /* Still open (not reading, so it cannot see the hang-up): what
         * http_server_free() does to every connection. */
        if (!c->closed)
                http_conn_abort(c, -ECONNRESET);
        for (turn = 0; turn < FREE_TURNS && (c->n_ref > 1 || busy()); turn++)
                uv_run(loop, UV_RUN_NOWAIT);
        if (c->n_ref > 1 || busy()) {
                fprintf(stderr, "http-feed: connection still referenced (%u refs) %u turns after closing\n",
                        c->n_ref, turn);
                abort();
        }
        http_conn_unref(c);
}
