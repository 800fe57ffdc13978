/* Base64 decoding, RFC 4648 standard alphabet (libc only). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Decodes len characters of s into a new buffer. Padding is optional; whitespace
 * (CR, LF, space, tab) is skipped. 0, -EINVAL on bad input, or -ENOMEM. */
int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len);
