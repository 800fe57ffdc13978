/* FILE_READ and FILE_WRITE: file bytes streamed on (channel, STDIN) under credit. */
#include "agent/agent.h"
#include "basic/fd-util.h"
#include "basic/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint8_t scratch[PROTO_MAX_DATA];

Transfer *transfer_find(Agent *a, uint32_t channel) {
        for (Transfer *t = a->transfers; t; t = t->next)
                if (t->channel == channel)
                        return t;
        return NULL;
}

void transfer_free(Agent *a, Transfer *t) {
        for (Transfer **tp = &a->transfers; *tp; tp = &(*tp)->next)
                if (*tp == t) {
                        *tp = t->next;
                        break;
                }
        if (t->fd >= 0)
                close(t->fd);
        if (t->writing && t->tmp_name)
                unlinkat(t->dirfd, t->tmp_name, 0); /* a no-op once renamed into place */
        if (t->dirfd >= 0)
                close(t->dirfd);
        free(t->name);
        free(t->tmp_name);
        free(t);
}

static Transfer *transfer_new(Agent *a, const ProtoRequest *req) {
        Transfer *t = calloc(1, sizeof(Transfer));
        if (!t)
                return NULL;
        t->channel = req->channel;
        t->req_id = req->req_id;
        t->fd = t->dirfd = -1;
        t->next = a->transfers;
        a->transfers = t;
        return t;
}

static int transfer_check_channel(Agent *a, uint32_t channel) {
        if (channel == 0)
                return -EINVAL;
        return agent_channel_busy(a, channel) ? -EBUSY : 0;
}

/* Opens only regular files: the O_PATH look comes first so a FIFO or device is never
 * opened for reading at all; the second open is checked to be the same inode. */
static int read_open(const char *path, int64_t max_size, struct stat *ret_st) {
        struct stat st;
        int pfd, fd;

        int r = agent_open_path(path, O_PATH, &pfd);
        if (r < 0)
                return r;
        r = fstat(pfd, &st) < 0 ? -errno : 0;
        close(pfd);
        if (r < 0)
                return r;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -ENODEV;
        if (max_size >= 0 && st.st_size > max_size)
                return -EFBIG;
        r = agent_open_path(path, O_RDONLY | O_NONBLOCK | O_NOCTTY, &fd);
        if (r < 0)
                return r;
        if (fstat(fd, ret_st) < 0 || ret_st->st_ino != st.st_ino || ret_st->st_dev != st.st_dev ||
            !S_ISREG(ret_st->st_mode)) {
                close(fd);
                return -ENODEV;
        }
        return fd;
}

int agent_op_file_read(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        struct stat st;

        int r = transfer_check_channel(a, req->channel);
        if (r < 0)
                return r;
        int fd = read_open(req->path, req->max_size, &st);
        if (fd < 0)
                return fd;
        Transfer *t = transfer_new(a, req);
        if (!t) {
                close(fd);
                return -ENOMEM;
        }
        t->fd = fd;
        t->credit = PROTO_DEFAULT_WINDOW;
        t->left = req->max_size;
        proto_buf_put_int(fields, PROTO_TAG_SIZE, st.st_size);
        proto_buf_put_int(fields, PROTO_TAG_MODE, st.st_mode & 07777);
        return 0; /* the RESPONSE goes out now; DATA follows from transfer_pump() */
}

static void transfer_end(Agent *a, Transfer *t) {
        agent_send_empty(a, PROTO_EOF, t->channel, PROTO_STREAM_STDIN);
        transfer_free(a, t);
}

void transfer_pump(Agent *a, Transfer *t) {
        size_t want = t->credit < PROTO_MAX_DATA ? (size_t) t->credit : PROTO_MAX_DATA;
        if (t->left >= 0 && (uint64_t) t->left < want)
                want = (size_t) t->left;
        if (t->left == 0) {
                transfer_end(a, t);
                return;
        }
        if (want == 0 || !agent_can_produce(a))
                return;
        ssize_t n = read(t->fd, scratch, want);
        if (n < 0 && errno == EINTR)
                return;
        if (n <= 0) {
                if (n < 0)
                        log_warn_errno(errno, "read failed mid-transfer on channel %u", t->channel);
                transfer_end(a, t);
                return;
        }
        ProtoBuf b = {};
        proto_frame_begin(&b, PROTO_DATA, PROTO_STREAM_STDIN, t->channel);
        proto_buf_put_bytes(&b, scratch, (size_t) n);
        agent_send(a, &b);
        t->credit -= (uint64_t) n;
        if (t->left > 0)
                t->left -= n;
}

/* A temp name beside the target: hidden, unique, and short enough for NAME_MAX. */
static int write_open_temp(Transfer *t, mode_t mode) {
        char tmp[256];
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        for (unsigned i = 0; i < 32; i++) {
                snprintf(tmp, sizeof(tmp), ".%.200s.forge-%x%x", t->name, (unsigned) ts.tv_nsec, i);
                int fd = openat(t->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0 && errno == EEXIST)
                        continue;
                if (fd < 0)
                        return -errno;
                if (!(t->tmp_name = strdup(tmp))) {
                        unlinkat(t->dirfd, tmp, 0);
                        close(fd);
                        return -ENOMEM;
                }
                t->fd = fd;
                /* umask is 0 in the agent, but set the mode explicitly all the same. */
                return fchmod(fd, mode) < 0 ? -errno : 0;
        }
        return -EEXIST;
}

static int write_open_parent(const ProtoRequest *req, Transfer *t) {
        if (!req->parents)
                return agent_open_parent(req->path, &t->dirfd, &t->name);
        /* Create the parents first, then resolve the parent like any other path. */
        char *dir = strdup(req->path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        int fd, r = 0;
        if (slash && slash != dir) {
                *slash = 0;
                r = agent_mkdir_p(dir, 0755, &fd);
                if (r >= 0)
                        close(fd);
        }
        free(dir);
        return r < 0 ? r : agent_open_parent(req->path, &t->dirfd, &t->name);
}

static int write_start(const ProtoRequest *req, Transfer *t) {
        struct stat st;

        int r = agent_path_check(req->path);
        if (r < 0)
                return r;
        r = write_open_parent(req, t);
        if (r < 0)
                return r;
        if (agent_name_is_special(t->name))
                return -EISDIR;
        if (fstatat(t->dirfd, t->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
                return -EISDIR;
        return write_open_temp(t, req->mode >= 0 ? (mode_t) req->mode : 0644);
}

int agent_op_file_write(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size) {
        int r = transfer_check_channel(a, req->channel);
        if (r < 0)
                return r;
        Transfer *t = transfer_new(a, req);
        if (!t)
                return -ENOMEM;
        t->writing = true;
        r = write_start(req, t);
        if (r < 0) {
                transfer_free(a, t);
                return r;
        }
        t->allowed = PROTO_DEFAULT_WINDOW;
        agent_send_credit(a, t->channel, PROTO_STREAM_STDIN, PROTO_DEFAULT_WINDOW);
        return AGENT_RESPONDED; /* answered after EOF, or at the first error */
}

void transfer_cancel(Agent *a, Transfer *t) {
        /* The host gave up: a write is answered ECANCELED and its temporary file goes, so
         * the target keeps its old content; a read just stops. */
        if (t->writing)
                agent_respond(a, t->req_id, -ECANCELED, NULL, "cancelled by the host");
        transfer_free(a, t);
}

static void write_fail(Agent *a, Transfer *t, int err) {
        agent_respond(a, t->req_id, err, NULL, "write failed");
        transfer_free(a, t);
}

void transfer_data(Agent *a, Transfer *t, const uint8_t *data, size_t n) {
        if (n > t->allowed) {
                write_fail(a, t, -EPROTO);
                return;
        }
        int r = fd_write_full(t->fd, data, n);
        if (r < 0) {
                write_fail(a, t, r);
                return;
        }
        t->written += n;
        /* Written means the window is free again. */
        agent_send_credit(a, t->channel, PROTO_STREAM_STDIN, n);
}

void transfer_eof(Agent *a, Transfer *t) {
        ProtoBuf fields = {};

        if (fsync(t->fd) < 0) {
                write_fail(a, t, -errno);
                return;
        }
        if (renameat(t->dirfd, t->tmp_name, t->dirfd, t->name) < 0) {
                write_fail(a, t, -errno);
                return;
        }
        free(t->tmp_name);
        t->tmp_name = NULL;
        int dfd = openat(t->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                fsync(dfd); /* make the rename itself durable */
                close(dfd);
        }
        proto_buf_put_int(&fields, PROTO_TAG_SIZE, (int64_t) t->written);
        agent_respond(a, t->req_id, 0, &fields, NULL);
        proto_buf_free(&fields);
        transfer_free(a, t);
}
