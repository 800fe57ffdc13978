/* QMP, QEMU's JSON control protocol, on <dir>/qmp.sock: one short connection per
 * command (greeting, qmp_capabilities, the command), each message one line of JSON.
 * QEMU serves one QMP client at a time; a second waits in the listen backlog. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/macros.h"
#include "daemon/isolator/isolator-util.h"
#include "daemon/isolator/qemu/qemu-internal.h"

#define QMP_TIMEOUT_MS 10000
#define QMP_LINE_MAX 8192

int qmp_reply_classify(const char *line, size_t len) {
        json_t *msg = json_loadb(line, len, 0, NULL);
        int r;

        if (!json_is_object(msg))
                r = -EBADMSG;
        else if (json_object_get(msg, "return"))
                r = 0;
        else if (json_object_get(msg, "error"))
                r = -EIO;
        else
                r = 1;
        json_decref(msg);
        return r;
}

typedef struct QmpConn {
        int fd;
        char buf[QMP_LINE_MAX];
        size_t len;
} QmpConn;

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads messages until one is a command's answer (or, with greeting, the greeting). */
static int qmp_wait(QmpConn *c, bool greeting, int64_t deadline) {
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (nl) {
                        size_t n = (size_t) (nl - c->buf) + 1;
                        int r = qmp_reply_classify(c->buf, n);
                        memmove(c->buf, c->buf + n, c->len - n);
                        c->len -= n;
                        if (r <= 0 || greeting)
                                return r;
                        continue;
                }
                if (c->len == sizeof(c->buf))
                        return -EMSGSIZE;
                struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
                int64_t left = deadline - now_ms();
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

static int qmp_send(QmpConn *c, const char *command, int64_t deadline) {
        char line[128];
        int n = snprintf(line, sizeof(line), "{\"execute\": \"%s\"}\n", command);

        if (n >= (int) sizeof(line))
                return -ENAMETOOLONG;
        /* A few bytes on a fresh unix socket: the kernel takes them at once. */
        if (write(c->fd, line, (size_t) n) != n)
                return errno ? -errno : -EIO;
        return qmp_wait(c, false, deadline);
}

int qmp_execute(const char *dir, const char *command) {
        int64_t deadline = now_ms() + QMP_TIMEOUT_MS;
        QmpConn c = {.fd = -1};
        int r;

        r = isolator_unix_connect(dir, "qmp.sock", &c.fd);
        if (r >= 0)
                r = qmp_wait(&c, true, deadline);
        if (r >= 0)
                r = qmp_send(&c, "qmp_capabilities", deadline);
        if (r >= 0)
                r = qmp_send(&c, command, deadline);
        if (c.fd >= 0)
                close(c.fd);
        return r;
}
