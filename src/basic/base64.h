/* Base64, RFC 4648 standard alphabet (libc only). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Decodes len characters of s into a new buffer. Padding is optional; whitespace
 * (CR, LF, space, tab) is skipped. 0, -EINVAL on bad input, or -ENOMEM. */
int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len);

/* Characters base64_encode() writes for n bytes (with padding, without the NUL). */
#define BASE64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)

/* Encodes len bytes with padding into out, which must hold BASE64_ENCODED_LEN(len) + 1
 * characters; NUL-terminates it and returns the length written. */
size_t base64_encode(const void *data, size_t len, char *out);
