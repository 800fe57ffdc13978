/* Small file helpers (libc only). All return 0 or -errno and open fds O_CLOEXEC. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes s to an existing file (cgroup and /proc knobs): no create, no truncate. */
int write_string_file(const char *path, const char *s);
int write_string_file_at(int dirfd, const char *name, const char *s);

/* Reads at most size-1 bytes and NUL-terminates; ret_len may be NULL. */
int read_full_file(const char *path, char *buf, size_t size, size_t *ret_len);
int read_full_file_at(int dirfd, const char *name, char *buf, size_t size, size_t *ret_len);

/* Reads a file holding one unsigned decimal number ("max" reads as UINT64_MAX). */
int read_u64_file(const char *path, uint64_t *ret);

/* Finds "key value" among the lines of text (cgroup stat files); -ENOENT if absent. */
int keyed_u64_find(const char *text, const char *key, uint64_t *ret);

/* mkdir -p; existing directories are fine. Does not chmod existing ones. */
int mkdir_p(const char *path, mode_t mode);

/* Creates or replaces path with content through a temp file, fsync and rename(2), then
 * fsyncs the directory: after a crash the file is either old or new, never partial. */
int write_file_atomic(const char *path, const char *content, mode_t mode);
/* fsync(2) of a directory: makes the renames and creations in it durable. 0 or -errno. */
int fsync_directory(const char *dir);

/* buf = a "/" b; -ENAMETOOLONG if it does not fit. */
int path_join(char *buf, size_t size, const char *a, const char *b);
