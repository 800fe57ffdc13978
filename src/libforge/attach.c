/* attach: a process's terminal over a WebSocket (RFC 6455). libcurl does not speak
 * WebSocket in Debian 12's version, so this file opens a plain TCP connection itself,
 * sends the HTTP upgrade request, checks the answer (Sec-WebSocket-Accept is SHA-1 and
 * base64 from libforge's own helpers), and then leaves all framing to wslay. */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nettle/sha1.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <strings.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "basic/base64.h"
#include "basic/time-util.h"
#include "libforge/internal.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HEAD_MAX (64 * 1024)
#define MESSAGE_MAX (16 * 1024 * 1024)

struct ForgeAttach {
        int fd;
        wslay_event_context_ptr ws;
        ForgeAttachCallbacks cbs;
        void *userdata;
        char *early; /* bytes that came with the handshake answer: the first frames */
        size_t early_size, early_used;
        bool peer_gone;  /* recv() saw the end of the stream or an error */
        int error;       /* -errno: a callback failed or a message was malformed */
        bool exited;     /* the exit message came */
};

/* ---- connecting ---- */

typedef struct Endpoint {
        char *host; /* without IPv6 brackets */
        char *port;
        char *host_header; /* as the URL spelled it, with the port */
        char *prefix;      /* the URL's path, without a trailing slash */
} Endpoint;

static void endpoint_done(Endpoint *e) {
        free(e->host);
        free(e->port);
        free(e->host_header);
        free(e->prefix);
}

static int endpoint_parse(const char *base_url, Endpoint *e, ForgeClientError *err) {
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
        int r = 0;

        if (!u)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        if (curl_url_set(u, CURLUPART_URL, base_url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
                r = forge__error_set(err, EINVAL, 0, "invalid_argument", "cannot parse the server URL %s",
                                     base_url);
        else if (strcasecmp(scheme, "http") != 0)
                r = forge__error_set(err, EPROTONOSUPPORT, 0, "invalid_argument",
                                     "attach speaks plain http:// only, not %s://", scheme);
        if (r >= 0) {
                size_t hl = strlen(host), pl = strlen(path);
                bool bracketed = hl >= 2 && host[0] == '[';
                while (pl > 0 && path[pl - 1] == '/')
                        pl--;
                e->host = strndup(host + bracketed, hl - 2 * bracketed);
                e->port = strdup(port);
                e->prefix = strndup(path, pl);
                if (asprintf(&e->host_header, "%s:%s", host, port) < 0)
                        e->host_header = NULL;
                if (!e->host || !e->port || !e->prefix || !e->host_header)
                        r = forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        }
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_free(path);
        curl_url_cleanup(u);
        return r;
}

/* Waits until fd is ready for `events`, at most until deadline (ms, monotonic). */
static int wait_fd(int fd, short events, int64_t deadline) {
        for (;;) {
                int64_t now = time_mono_ms();
                struct pollfd p = {.fd = fd, .events = events};
                int n;

                if (now >= deadline)
                        return -ETIMEDOUT;
                n = poll(&p, 1, (int) MIN(deadline - now, (int64_t) INT32_MAX));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n > 0)
                        return 0;
        }
}

static int connect_one(const struct addrinfo *ai, int64_t deadline) {
        _cleanup_close_ int fd = -1;
        socklen_t len = sizeof(int);
        int one = 1, soerr = 0, r;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
                return -errno;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
                return -errno;
        r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
                return r;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
                return -errno;
        if (soerr != 0)
                return -soerr;
        /* keystrokes go out at once */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return TAKE_FD(fd);
}

static int tcp_connect(const Endpoint *e, long connect_ms, ForgeClientError *err) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        int64_t deadline = time_mono_ms() + (connect_ms > 0 ? connect_ms : 10000);
        int fd = -ECONNREFUSED, g;

        g = getaddrinfo(e->host, e->port, &hints, &res);
        if (g != 0)
                return forge__error_set(err, EHOSTUNREACH, 0, "connection_failed", "cannot resolve %s: %s",
                                        e->host, gai_strerror(g));
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                fd = connect_one(ai, deadline);
                if (fd >= 0 || fd == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(res);
        if (fd == -ETIMEDOUT)
                return forge__error_set(err, ETIMEDOUT, 0, "timeout", "connecting to forged at %s timed out",
                                        e->host_header);
        if (fd < 0)
                return forge__error_set(err, fd, 0, "connection_failed", "cannot connect to forged at %s: %s",
                                        e->host_header, strerror(-fd));
        return fd;
}

/* ---- the upgrade handshake ---- */

/* base64(SHA-1(key + GUID)): what the server must answer to our key. */
static void websocket_accept_for(const char *key, char ret[64]) {
        uint8_t digest[SHA1_DIGEST_SIZE];
        struct sha1_ctx sha;

        sha1_init(&sha);
        sha1_update(&sha, strlen(key), (const uint8_t *) key);
        sha1_update(&sha, strlen(WS_GUID), (const uint8_t *) WS_GUID);
        sha1_digest(&sha, sizeof(digest), digest);
        base64_encode(digest, sizeof(digest), ret);
}

static int send_all(int fd, const char *bytes, size_t size, int64_t deadline) {
        while (size > 0) {
                ssize_t n = send(fd, bytes, size, MSG_NOSIGNAL);
                if (n < 0 && errno == EAGAIN) {
                        int r = wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                bytes += n;
                size -= (size_t) n;
        }
        return 0;
}

/* Reads until the end of the answer's head; *ret_size is all that was read, *ret_head
 * the length of the head (up to and including the blank line). */
static int read_head(int fd, char *buf, size_t max, size_t *ret_size, size_t *ret_head, int64_t deadline) {
        size_t size = 0;

        for (;;) {
                char *end;
                ssize_t n;
                int r;

                buf[size] = 0;
                end = strstr(buf, "\r\n\r\n");
                if (end) {
                        *ret_size = size;
                        *ret_head = (size_t) (end - buf) + 4;
                        return 0;
                }
                if (size >= max - 1)
                        return -E2BIG;
                n = recv(fd, buf + size, max - 1 - size, 0);
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                        r = wait_fd(fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                size += (size_t) n;
        }
}

/* The value of header `name` in a response head, or NULL; copied into ret. */
static const char *head_header(const char *head, const char *name, char *ret, size_t ret_size) {
        size_t nl = strlen(name);

        for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
                const char *p = line + 2, *end = strstr(p, "\r\n");
                size_t n;
                if (!end || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
                        continue;
                p += nl + 1;
                while (*p == ' ' || *p == '\t')
                        p++;
                n = MIN((size_t) (end - p), ret_size - 1);
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                memcpy(ret, p, n);
                ret[n] = 0;
                return ret;
        }
        return NULL;
}

/* A refused upgrade: the server's JSON error, from the body that followed the head. */
static int handshake_refused(int fd, int status, char *buf, size_t size, size_t head, int64_t deadline,
                             ForgeClientError *err) {
        char value[32];
        long want = head_header(buf, "Content-Length", value, sizeof(value)) ? strtol(value, NULL, 10) : 0;

        want = MIN(want, (long) (HEAD_MAX - 1 - head));
        while ((long) (size - head) < want) {
                ssize_t n = recv(fd, buf + size, (size_t) want - (size - head), 0);
                if (n < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(fd, POLLIN, deadline) >= 0)
                        continue;
                if (n <= 0)
                        break;
                size += (size_t) n;
        }
        return forge__error_from_response(status, buf + head, MIN(size - head, (size_t) MAX(want, 0)), err);
}

static int handshake(int fd, const Endpoint *e, const char *path, long timeout_ms, ForgeAttach *a,
                     ForgeClientError *err) {
        _cleanup_free_ char *request = NULL, *buf = malloc(HEAD_MAX);
        int64_t deadline = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
        unsigned char nonce[16];
        char key[32], expect[64], value[128];
        size_t size = 0, head = 0;
        int status = 0, r;

        if (!buf || getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
                return forge__error_set(err, ENOMEM, 0, "local_io", "cannot prepare the WebSocket handshake");
        base64_encode(nonce, sizeof(nonce), key);
        websocket_accept_for(key, expect);
        if (asprintf(&request,
                     "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: libforge/" FORGE_VERSION "\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     e->prefix, path, e->host_header, key) < 0)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        r = send_all(fd, request, strlen(request), deadline);
        if (r >= 0)
                r = read_head(fd, buf, HEAD_MAX, &size, &head, deadline);
        if (r == -ETIMEDOUT)
                return forge__error_set(err, ETIMEDOUT, 0, "timeout", "forged did not answer the attach request");
        if (r < 0)
                return forge__error_set(err, r, 0, "connection_failed", "attaching to forged at %s: %s",
                                        e->host_header, strerror(-r));
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                return forge__error_set(err, EPROTO, 0, "bad_response", "the attach answer is not HTTP");
        if (status != 101)
                return handshake_refused(fd, status, buf, size, head, deadline, err);
        if (!head_header(buf, "Sec-WebSocket-Accept", value, sizeof(value)) || strcmp(value, expect) != 0 ||
            !head_header(buf, "Upgrade", value, sizeof(value)) || strcasecmp(value, "websocket") != 0)
                return forge__error_set(err, EPROTO, 101, "bad_response",
                                        "the server's WebSocket handshake is not valid");
        if (size > head) {
                a->early = malloc(size - head);
                if (!a->early)
                        return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
                memcpy(a->early, buf + head, size - head);
                a->early_size = size - head;
        }
        return 0;
}

/* ---- wslay's side ---- */

static ssize_t on_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *userdata) {
        ForgeAttach *a = userdata;
        ssize_t n;

        if (a->early_used < a->early_size) {
                size_t k = MIN(len, a->early_size - a->early_used);
                memcpy(buf, a->early + a->early_used, k);
                a->early_used += k;
                return (ssize_t) k;
        }
        n = recv(a->fd, buf, len, 0);
        if (n > 0)
                return n;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        a->peer_gone = true;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
}

static ssize_t on_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *userdata) {
        ForgeAttach *a = userdata;
        ssize_t n = send(a->fd, data, len, MSG_NOSIGNAL);

        if (n >= 0)
                return n;
        if (errno == EAGAIN || errno == EINTR)
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        else {
                a->peer_gone = true;
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
}

static int on_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *userdata) {
        return getrandom(buf, len, 0) == (ssize_t) len ? 0 : -1;
}

static void on_control_message(ForgeAttach *a, const uint8_t *data, size_t len) {
        _cleanup_json_ json_t *j = json_loadb((const char *) data, len, 0, NULL);
        ForgeProcess p = {};

        if (!json_is_object(j) || !json_is_string(json_object_get(j, "type")))
                return; /* not for us: tolerated, as unknown SSE events are */
        if (strcmp(json_string_value(json_object_get(j, "type")), "exit") != 0)
                return;
        if (forge__process_from_json(j, &p, NULL) < 0) {
                a->error = -EPROTO;
                return;
        }
        a->exited = true;
        if (a->cbs.on_exit)
                a->cbs.on_exit(&p, a->userdata);
        forge_process_clear(&p);
}

static void on_ws_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                          void *userdata) {
        ForgeAttach *a = userdata;

        if (a->error < 0)
                return;
        if (arg->opcode == WSLAY_BINARY_FRAME && a->cbs.on_output) {
                int r = a->cbs.on_output(arg->msg, arg->msg_length, a->userdata);
                if (r < 0)
                        a->error = r;
        } else if (arg->opcode == WSLAY_TEXT_FRAME)
                on_control_message(a, arg->msg, arg->msg_length);
}

static const struct wslay_event_callbacks ws_callbacks = {
        .recv_callback = on_ws_recv,
        .send_callback = on_ws_send,
        .genmask_callback = on_ws_genmask,
        .on_msg_recv_callback = on_ws_message,
};

/* ---- the session ---- */

FORGE_PUBLIC void forge_attach_free(ForgeAttach *a) {
        if (!a)
                return;
        if (a->ws)
                wslay_event_context_free(a->ws);
        if (a->fd >= 0)
                close(a->fd);
        free(a->early);
        free(a);
}

FORGE_PUBLIC int forge_attach_open(ForgeClient *c, const char *id, long pid, const ForgeAttachCallbacks *cbs,
                                   void *userdata, ForgeAttach **ret, ForgeClientError *err) {
        _cleanup_(endpoint_done) Endpoint e = {};
        _cleanup_free_ char *path = NULL;
        ForgeAttach *a;
        char suffix[64];
        int r;

        snprintf(suffix, sizeof(suffix), "/processes/%ld/attach", pid);
        r = forge__sandbox_path(id, suffix, &path);
        if (r < 0)
                return r == -EINVAL ? forge__error_set(err, EINVAL, 0, "invalid_argument", "no sandbox id given")
                                    : forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        r = endpoint_parse(c->base_url, &e, err);
        if (r < 0)
                return r;
        a = calloc(1, sizeof(*a));
        if (!a)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        a->fd = -1;
        a->cbs = cbs ? *cbs : (ForgeAttachCallbacks){};
        a->userdata = userdata;
        r = a->fd = tcp_connect(&e, c->connect_ms, err);
        if (r >= 0)
                r = handshake(a->fd, &e, path, c->connect_ms, a, err);
        if (r >= 0 && wslay_event_context_client_init(&a->ws, &ws_callbacks, a) != 0)
                r = forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        if (r < 0) {
                forge_attach_free(a);
                return r;
        }
        wslay_event_config_set_max_recv_msg_length(a->ws, MESSAGE_MAX);
        *ret = a;
        return 0;
}

FORGE_PUBLIC int forge_attach_fd(const ForgeAttach *a) {
        return a->fd;
}

FORGE_PUBLIC short forge_attach_poll_events(const ForgeAttach *a) {
        short ev = 0;

        if (wslay_event_want_read(a->ws))
                ev |= POLLIN;
        if (wslay_event_want_write(a->ws))
                ev |= POLLOUT;
        return ev;
}

FORGE_PUBLIC size_t forge_attach_pending(const ForgeAttach *a) {
        return wslay_event_get_queued_msg_length(a->ws);
}

static int attach_ended(ForgeAttach *a, ForgeClientError *err) {
        if (a->exited)
                return 1;
        return forge__error_set(err, ECONNRESET, 0, "connection_failed",
                                "the terminal connection closed before the process exited");
}

FORGE_PUBLIC int forge_attach_dispatch(ForgeAttach *a, short revents, ForgeClientError *err) {
        int r = 0;

        /* Frames that came with the handshake answer are read without waiting for poll. */
        if ((revents & (POLLIN | POLLHUP | POLLERR)) || a->early_used < a->early_size)
                r = wslay_event_recv(a->ws);
        if (r == 0 && a->error == 0 && wslay_event_want_write(a->ws))
                r = wslay_event_send(a->ws);
        if (a->error == -EPROTO)
                return forge__error_set(err, EPROTO, 0, "bad_response", "the exit message is not a process object");
        if (a->error < 0)
                return forge__error_set(err, a->error, 0, "local_io", "%s", strerror(-a->error));
        if (r != 0 || a->peer_gone)
                return attach_ended(a, err);
        if (!wslay_event_want_read(a->ws) && !wslay_event_want_write(a->ws))
                return attach_ended(a, err); /* the close handshake is done */
        return 0;
}

static int queue_message(ForgeAttach *a, uint8_t opcode, const void *bytes, size_t size) {
        struct wslay_event_msg msg = {.opcode = opcode, .msg = bytes, .msg_length = size};
        int r = wslay_event_queue_msg(a->ws, &msg);

        if (r == WSLAY_ERR_NOMEM)
                return -ENOMEM;
        return r == 0 ? 0 : -EPIPE; /* a close was queued or sent: no more messages */
}

FORGE_PUBLIC int forge_attach_send(ForgeAttach *a, const void *bytes, size_t size) {
        if (size == 0)
                return 0;
        return queue_message(a, WSLAY_BINARY_FRAME, bytes, size);
}

FORGE_PUBLIC int forge_attach_resize(ForgeAttach *a, unsigned rows, unsigned cols) {
        char msg[96];
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"resize\",\"rows\":%u,\"cols\":%u}", rows, cols);

        return queue_message(a, WSLAY_TEXT_FRAME, msg, (size_t) n);
}

FORGE_PUBLIC int forge_attach_close(ForgeAttach *a) {
        int r = wslay_event_queue_close(a->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);

        return r == 0 || r == WSLAY_ERR_NO_MORE_MSG ? 0 : -ENOMEM;
}
