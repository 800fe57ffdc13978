/* Shared between the files of the ns isolator; nothing outside isolator/ns includes it. */
#pragma once

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "daemon/isolator/isolator.h"

#define NS_BINDS_MAX 16

/* A read-only bind of a host path at the same place inside. */
typedef struct NsBind {
        char source[PATH_MAX];       /* absolute host path */
        char target[PATH_MAX];       /* the same path relative to the new root */
        unsigned long remount_flags; /* MS_* for the read-only remount, locked flags kept */
} NsBind;

/* Everything the child applies between clone and exec, computed by the parent. The child
 * works on its own copy (fork semantics) and may update the fd fields as it moves fds. */
typedef struct NsChildPlan {
        int parent_fds[2]; /* the parent's pipe ends, closed first so EOF means something */
        int release_fd;    /* read end: one byte once uid maps and cgroups are in place */
        int error_fd;      /* write end, CLOEXEC: NsChildError on failure, EOF on exec */
        int agent_fd;      /* O_PATH to the agent binary */
        int log_fd;        /* agent.log, append */
        int listen_fd;     /* the agent's listening socket, becomes fd 3 */
        /* Overlay paths: lower (the image rootfs) and the sandbox dir's upper, work, root.
         * The child opens them itself, so they resolve in its own mount namespace. */
        char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], root[PATH_MAX];
        NsBind binds[NS_BINDS_MAX];
        size_t n_binds;
        char hostname[65];
        int cap_last;
} NsChildPlan;

typedef struct NsChildError {
        int step; /* index into the child's step list */
        int errnum;
} NsChildError;

/* ns-child.c: runs in the cloned child, never returns. */
_Noreturn void ns_child_run(NsChildPlan *p);
const char *ns_child_step_name(int step);

/* ns-spawn.c: the parent side of start(). */
int ns_spawn(const SandboxPlan *plan, ForgeError *err);
/* Raw clone(2) with fork semantics; 0 in the child. */
pid_t ns_clone(unsigned long flags);
int ns_write_id_maps(pid_t pid, uid_t base, uint32_t count);

/* ns-pidfile.c: <dir>/ns.pid holds "PID STARTTIME". */
int ns_pidfile_write(const char *dir, pid_t pid, unsigned long long start_time);
int ns_pidfile_read(const char *dir, pid_t *ret_pid, unsigned long long *ret_start_time);
/* Field 22 of /proc/PID/stat; -ESRCH for a dead or zombie process. */
int ns_proc_start_time(pid_t pid, unsigned long long *ret);
/* The sandbox's init pid if ns.pid names a live process with the recorded start time,
 * else 0 (or -errno). Reaps it first if it is our zombie child. */
pid_t ns_init_pid(const char *dir);

/* ns-probe.c */
int ns_probe(ForgeError *err);
