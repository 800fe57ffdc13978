/* UTF-8 validation (libc only). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A copy of s with every invalid sequence replaced by U+FFFD (EF BF BD); NUL-terminated,
 * *ret_len excludes the terminator. NULL on ENOMEM. */
char *utf8_sanitize(const uint8_t *s, size_t len, size_t *ret_len);
