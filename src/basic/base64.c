#include "basic/base64.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Each character's 6-bit value plus one; 0 marks a character that is not base64 and
 * B64_SKIP whitespace, so the table needs no initializer for the invalid ones. */
enum { B64_SKIP = 0x80 };

static const uint8_t base64_values[256] = {
        ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
        ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
        ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
        ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
        ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
        ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
        ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
        ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
        [' '] = B64_SKIP, ['\n'] = B64_SKIP, ['\r'] = B64_SKIP, ['\t'] = B64_SKIP,
};

int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len) {
        const uint8_t *t = base64_values;
        uint8_t *out = malloc(len / 4 * 3 + 3);
        uint32_t acc = 0;
        size_t o = 0, n = 0, pad = 0, i = 0;

        if (!out)
                return -ENOMEM;
        /* Fast path: whole groups of four plain characters, as streams send them. */
        for (; i + 4 <= len; i += 4) {
                uint8_t a = (uint8_t) (t[(uint8_t) s[i]] - 1), b = (uint8_t) (t[(uint8_t) s[i + 1]] - 1),
                        c = (uint8_t) (t[(uint8_t) s[i + 2]] - 1), d = (uint8_t) (t[(uint8_t) s[i + 3]] - 1);
                if ((a | b | c | d) & 0xC0)
                        break; /* padding, whitespace or junk: the careful loop below */
                acc = (uint32_t) a << 18 | (uint32_t) b << 12 | (uint32_t) c << 6 | d;
                out[o++] = (uint8_t) (acc >> 16);
                out[o++] = (uint8_t) (acc >> 8);
                out[o++] = (uint8_t) acc;
        }
        acc = 0;
        for (; i < len; i++) {
                uint8_t v = t[(uint8_t) s[i]];

                if (v == B64_SKIP)
                        continue;
                if (s[i] == '=') {
                        pad++;
                        continue;
                }
                if (v == 0 || pad > 0)
                        goto invalid; /* a data character after padding is not base64 */
                acc = acc << 6 | (uint32_t) (v - 1);
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

size_t base64_encode(const void *data, size_t len, char *out) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const uint8_t *in = data;
        size_t o = 0, i = 0;

        for (; i + 3 <= len; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[v >> 12 & 63];
                out[o++] = alphabet[v >> 6 & 63];
                out[o++] = alphabet[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t) in[i] << 16 | (i + 1 < len ? (uint32_t) in[i + 1] << 8 : 0);
                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[v >> 12 & 63];
                out[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
                out[o++] = '=';
        }
        out[o] = 0;
        return o;
}
