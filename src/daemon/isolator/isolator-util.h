/* Helpers shared by the isolators (ns/, qemu/); core/ never includes this header. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/isolator/isolator.h"

/* Runs path with argv, stdin /dev/null, stdout and stderr on out_fd (-1: /dev/null), and
 * pass_fds[i] as fd 3 + i; waits for it. 0 if it exited 0, -EIO if it failed, -errno.
 * forged is multi-threaded: posix_spawn (vfork and exec, no atfork handlers, no locks
 * taken in the child), never fork. The child is reaped here by pid, so libuv's own
 * SIGCHLD handling never sees it. At most ISOLATOR_PASS_FDS_MAX fds are passed. */
#define ISOLATOR_PASS_FDS_MAX 8
int isolator_command_run(const char *path, char *const argv[], int out_fd, const int *pass_fds,
                         size_t n_pass);
/* The same, with the program held before its exec while on_held(pid, userdata) runs in
 * forged; the program runs only if that returns >= 0 (else the child is killed and its
 * error returned). What is done to the child there, such as moving it into cgroups,
 * holds for the program from its first instruction, every thread and every fork of it.
 * The child is forked (not vforked: it must wait) and makes only system calls until
 * the exec. */
/* In a child forked from the multi-threaded forged, before its exec: every signal's
 * disposition back to the default (system calls only), so none of forged's handlers can
 * run there and no SIG_IGN leaks into the program. The caller blocked signals first. */
void isolator_child_signals_default(void);
int isolator_command_run_held(const char *path, char *const argv[], int out_fd, const int *pass_fds,
                              size_t n_pass, int (*on_held)(pid_t pid, void *userdata), void *userdata);

/* A connected, non-blocking, CLOEXEC stream to the unix socket dir/name. */
int isolator_unix_connect(const char *dir, const char *name, int *ret_fd);
/* A listening, CLOEXEC unix socket bound at dir/name, mode 0600 (an old one is replaced). */
int isolator_unix_listen(const char *dir, const char *name, int *ret_fd);

/* mkfs.ext4 -q -F with options (NULL-terminated, may be NULL) on target; with size_mb > 0
 * the file is created at that size, else it must exist. */
int isolator_mkfs(char *const *options, const char *target, int64_t size_mb);

/* Copies the file src to dest, a new file (written as dest.tmp, synced, renamed, its
 * directory synced): holes stay holes, blocks are shared where the filesystem can
 * (copy_file_contents()). */
int isolator_file_copy(const char *src, const char *dest);
/* plan->from_dir/name (a snapshot()'s file) as dirfd/dest: moved there with
 * plan->from_move, else copied, synced and left as it is. dest must not exist. */
int isolator_file_from(const SandboxPlan *plan, const char *name, int dirfd, const char *dest);
