/* QMP, QEMU's JSON control protocol, on <dir>/qmp.sock: a short connection per
 * operation (greeting, qmp_capabilities, the commands), each message one line of JSON.
 * QEMU serves one QMP client at a time; a second waits in the listen backlog. An fd
 * (getfd) travels as SCM_RIGHTS beside the command that names it. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "basic/macros.h"
#include "basic/time-util.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/qemu/qemu-internal.h"

#define QMP_TIMEOUT_MS 10000

int qmp_reply_parse(const char *line, size_t len, json_t **ret_value) {
        json_t *msg = json_loadb(line, len, 0, NULL), *value = NULL;
        int r;

        if (!json_is_object(msg))
                r = -EBADMSG;
        else if ((value = json_object_get(msg, "return")))
                r = 0;
        else if ((value = json_object_get(msg, "error")))
                r = -EIO;
        else
                r = 1;
        if (r == 1)
                value = msg;
        if (ret_value)
                *ret_value = value ? json_incref(value) : NULL;
        json_decref(msg);
        return r;
}

/* The next message: 0 and the value of a command's answer, -EIO and its error, 1 and
 * any other message (the greeting, an event); -ETIMEDOUT after timeout_ms. */
static int qmp_next(QmpConn *c, int64_t timeout_ms, json_t **ret_value) {
        int64_t deadline = time_mono_ms() + timeout_ms;

        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (nl) {
                        size_t n = (size_t) (nl - c->buf) + 1;
                        int r = qmp_reply_parse(c->buf, n, ret_value);
                        memmove(c->buf, c->buf + n, c->len - n);
                        c->len -= n;
                        return r;
                }
                if (c->len == sizeof(c->buf))
                        return -EMSGSIZE;
                struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
                int64_t left = deadline - time_mono_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                if (poll(&pfd, 1, (int) left) < 0 && errno != EINTR)
                        return -errno;
                ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
                if (got == 0)
                        return -ECONNRESET;
                if (got < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
                if (got > 0)
                        c->len += (size_t) got;
        }
}

/* Reads messages until one is a command's answer (or, with greeting, the greeting);
 * events are skipped. */
static int qmp_wait(QmpConn *c, bool greeting, json_t **ret_value) {
        for (;;) {
                json_t *msg = NULL;
                int r = qmp_next(c, QMP_TIMEOUT_MS, &msg);

                if (r == 1 && !greeting) {
                        json_decref(msg);
                        continue;
                }
                if (ret_value)
                        *ret_value = msg;
                else
                        json_decref(msg);
                return r;
        }
}

/* A short message on a fresh unix socket: the kernel takes it at once, fd and all. */
static int qmp_send(QmpConn *c, const char *line, size_t len, int fd) {
        union {
                struct cmsghdr hdr;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {0};
        struct iovec iov = {.iov_base = (void *) line, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        if (fd >= 0) {
                msg.msg_control = control.buf;
                msg.msg_controllen = sizeof(control.buf);
                struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
        }
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0)
                return -errno;
        return (size_t) n == len ? 0 : -EIO;
}

int qmp_call(QmpConn *c, const char *command, json_t *arguments, int fd, json_t **ret_value) {
        json_t *msg = json_pack("{s:s}", "execute", command), *value = NULL;
        char *line = NULL;
        int r = -ENOMEM;

        if (ret_value)
                *ret_value = NULL;
        if (msg && arguments)
                json_object_set(msg, "arguments", arguments);
        if (msg)
                line = json_dumps(msg, JSON_COMPACT);
        json_decref(msg);
        if (line) {
                size_t len = strlen(line);
                line[len] = '\n'; /* in place of the NUL: one line, sent as it is */
                r = qmp_send(c, line, len + 1, fd);
                free(line);
        }
        if (r >= 0)
                r = qmp_wait(c, false, &value);
        if (r == -EIO)
                snprintf(c->error, sizeof(c->error), "%s",
                         json_string_value(json_object_get(value, "desc")) ?: "no reason given");
        if (ret_value)
                *ret_value = value;
        else
                json_decref(value);
        return r;
}

int qmp_open(const char *dir, QmpConn *c) {
        int r;

        *c = (QmpConn){.fd = -1};
        r = isolator_unix_connect(dir, "qmp.sock", &c->fd);
        if (r >= 0)
                r = qmp_wait(c, true, NULL);
        if (r >= 0)
                r = qmp_call(c, "qmp_capabilities", NULL, -1, NULL);
        if (r < 0)
                qmp_close(c);
        return r;
}

void qmp_close(QmpConn *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
}

int qmp_execute(const char *dir, const char *command) {
        QmpConn c;
        int r = qmp_open(dir, &c);

        if (r >= 0)
                r = qmp_call(&c, command, NULL, -1, NULL);
        qmp_close(&c);
        return r;
}

int qmp_status(QmpConn *c, char *ret, size_t size) {
        json_t *value;
        int r = qmp_call(c, "query-status", NULL, -1, &value);
        const char *status = json_string_value(json_object_get(value, "status"));

        if (r >= 0 && !status)
                r = -EBADMSG;
        if (r >= 0)
                snprintf(ret, size, "%s", status);
        json_decref(value);
        return r;
}
