#include "basic/random-util.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

int random_label(char *buf, size_t len) {
        static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        uint8_t rnd[64];

        if (len == 0 || len > sizeof(rnd))
                return -EINVAL;
        if (getrandom(rnd, len, 0) != (ssize_t) len)
                return -errno;
        buf[0] = alnum[rnd[0] % 26];
        for (size_t i = 1; i < len; i++)
                buf[i] = alnum[rnd[i] % 36];
        buf[len] = 0;
        return 0;
}
