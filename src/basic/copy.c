#include "basic/copy.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* <linux/fs.h>, which musl builds (the agent links basic) do not have. */
#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

static int copy_range(int src_fd, int dst_fd, off_t start, off_t end) {
        off_t in = start, out = start;

        while (in < end) {
                ssize_t n = copy_file_range(src_fd, &in, dst_fd, &out, (size_t) (end - in), 0);
                if (n < 0)
                        return -errno;
                if (n == 0) /* the source shrank under us */
                        return -EIO;
        }
        return 0;
}

int copy_file_contents(int src_fd, int dst_fd) {
        struct stat st;
        off_t data, hole;
        int r;

        if (fstat(src_fd, &st) < 0)
                return -errno;
        if (ioctl(dst_fd, FICLONE, src_fd) >= 0)
                return 0;
        for (data = 0; data < st.st_size; data = hole) {
                data = lseek(src_fd, data, SEEK_DATA);
                if (data < 0 && errno == ENXIO) /* only a hole is left */
                        break;
                if (data < 0)
                        return -errno;
                hole = lseek(src_fd, data, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                r = copy_range(src_fd, dst_fd, data, hole);
                if (r < 0)
                        return r;
        }
        return ftruncate(dst_fd, st.st_size) < 0 ? -errno : 0;
}
