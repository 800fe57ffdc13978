/* Copying a file's contents (libc and Linux only). */
#pragma once

/* Copies everything src_fd holds to dst_fd (empty, same size afterwards): a reflink
 * (FICLONE) where the filesystem shares blocks, else the data segments one by one
 * (SEEK_DATA/SEEK_HOLE with copy_file_range), so holes stay holes and a sparse disk
 * image costs what it stores, not its size. 0 or -errno. */
int copy_file_contents(int src_fd, int dst_fd);
