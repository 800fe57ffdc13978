#include "basic/fd-util.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int fd_update_flag(int fd, int get, int set, int flag, int on) {
        int flags = fcntl(fd, get);
        if (flags < 0)
                return -errno;
        int wanted = on ? flags | flag : flags & ~flag;
        if (wanted != flags && fcntl(fd, set, wanted) < 0)
                return -errno;
        return 0;
}

int fd_set_nonblock(int fd, int nonblock) {
        return fd_update_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK, nonblock);
}

int fd_set_cloexec(int fd, int cloexec) {
        return fd_update_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, cloexec);
}

ssize_t fd_read_full(int fd, void *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = read(fd, (char *) buf + done, n - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

int fd_write_full(int fd, const void *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = write(fd, (const char *) buf + done, n - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                done += (size_t) k;
        }
        return 0;
}

int fd_ensure_std(void) {
        for (int fd = 0; fd <= 2; fd++) {
                if (fcntl(fd, F_GETFD) >= 0)
                        continue;
                int nfd = open("/dev/null", O_RDWR);
                if (nfd < 0)
                        return -errno;
                if (nfd != fd) {
                        /* A lower fd was free; it is ours now, so the loop fills in order. */
                        close(nfd);
                        return -EBADF;
                }
        }
        return 0;
}
