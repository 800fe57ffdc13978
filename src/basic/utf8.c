#include "basic/utf8.h"

#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), or 0 if it is invalid. */
static size_t utf8_valid_len(const uint8_t *s, size_t left) {
        uint8_t c = s[0];
        size_t n;
        uint32_t cp, min;

        if (c < 0x80)
                return 1;
        if ((c & 0xE0) == 0xC0)
                n = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
                n = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
                n = 4, cp = c & 0x07, min = 0x10000;
        else
                return 0;
        if (n > left)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        return n;
}

char *utf8_sanitize(const uint8_t *s, size_t len, size_t *ret_len) {
        /* Each invalid byte becomes 3 bytes at most. */
        char *out = malloc(len * 3 + 1);
        size_t o = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_valid_len(s + i, len - i);

                if (n == 0) {
                        memcpy(out + o, "\xEF\xBF\xBD", 3);
                        o += 3;
                        i++;
                } else {
                        memcpy(out + o, s + i, n);
                        o += n;
                        i += n;
                }
        }
        out[o] = 0;
        *ret_len = o;
        return out;
}
