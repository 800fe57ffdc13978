/* The security battery's probe: a static program the tests upload into a sandbox and
 * run there. Each subcommand reports what the kernel answered, one "name result" line
 * per attempt, so the Python side can assert on exact outcomes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* One system call attempt. It runs in a forked child, so a seccomp kill, a changed
 * namespace or a leaked fd never affects the next attempt. Returns the raw result:
 * >= 0 on success, -1 with errno set on failure. */
typedef long (*ProbeFn)(void);

typedef struct {
        const char *name;
        ProbeFn fn;
} Probe;

/* A named group of attempts (a battery case or part of one). */
typedef struct {
        const char *group;
        const Probe *probes;
        size_t n_probes;
} ProbeGroup;

#define PROBE_GROUP(g, arr) {g, arr, sizeof(arr) / sizeof((arr)[0])}

/* probe.c */
const char *errno_name(int e);
const char *signal_name(int sig);
void probe_run(const Probe *p);
long raw_result(long r);

/* probe-kernel.c: the syscall groups (keyrings, modules, mount family, ...) */
extern const ProbeGroup kernel_groups[];
extern const size_t n_kernel_groups;

/* probe-tasks.c: resource bombs and holders, the flipper, ipc, fds */
int cmd_forkbomb(int argc, char **argv);
int cmd_threadbomb(int argc, char **argv);
int cmd_nofile(int argc, char **argv);
int cmd_fill(int argc, char **argv);
int cmd_inodes(int argc, char **argv);
int cmd_burn(int argc, char **argv);
int cmd_zombies(int argc, char **argv);
int cmd_hold(int argc, char **argv);
int cmd_flip(int argc, char **argv);
int cmd_fds(int argc, char **argv);
int cmd_ipc(int argc, char **argv);
