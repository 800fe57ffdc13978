/* Recursive removal that never follows a symlink (libc only). */
#pragma once

/* Removes `name` under dirfd (a file, a symlink or a whole tree). 0 or -errno;
 * a missing `name` is 0. */
int rm_rf_at(int dirfd, const char *name);
int rm_rf(const char *path);
