/* Small fd helpers (libc only). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

int fd_set_nonblock(int fd, int nonblock);
int fd_set_cloexec(int fd, int cloexec);
/* Reads until n bytes, EOF or an error; returns the count read or -errno. */
ssize_t fd_read_full(int fd, void *buf, size_t n);
/* Writes all n bytes (retrying on EINTR/short writes); 0 or -errno. */
int fd_write_full(int fd, const void *buf, size_t n);
/* Makes sure 0, 1 and 2 are open, so later pipes never land on them. */
int fd_ensure_std(void);
