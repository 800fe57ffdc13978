#include "basic/base64.h"

#include <errno.h>
#include <stdlib.h>

static int base64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len) {
        uint8_t *out = malloc(len / 4 * 3 + 3);
        uint32_t acc = 0;
        size_t o = 0, n = 0, pad = 0;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                int v;

                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                        continue;
                if (c == '=') {
                        pad++;
                        continue;
                }
                v = base64_value(c);
                if (v < 0 || pad > 0)
                        goto invalid; /* a data character after padding is not base64 */
                acc = acc << 6 | (uint32_t) v;
                if (++n % 4 == 0) {
                        out[o++] = (uint8_t) (acc >> 16);
                        out[o++] = (uint8_t) (acc >> 8);
                        out[o++] = (uint8_t) acc;
                        acc = 0;
                }
        }
        switch (n % 4) {
        case 1:
                goto invalid;
        case 2:
                out[o++] = (uint8_t) (acc >> 4);
                break;
        case 3:
                out[o++] = (uint8_t) (acc >> 10);
                out[o++] = (uint8_t) (acc >> 2);
                break;
        }
        if (pad > 2)
                goto invalid;
        *ret = out;
        *ret_len = o;
        return 0;
invalid:
        free(out);
        return -EINVAL;
}
