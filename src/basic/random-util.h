/* Random names (libc and getrandom only). */
#pragma once

#include <stddef.h>

/* len random lowercase letters and digits, the first a letter (a DNS label that never
 * looks like a number), then a NUL: buf holds len + 1 bytes. 0 or -errno. */
int random_label(char *buf, size_t len);
