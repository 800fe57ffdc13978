/* forge-agent inside a microVM (docs/isolator-qemu.md): vm-init.c boots the guest,
 * vm-port.c serves the protocol on a virtio-serial port instead of a listening socket,
 * vm-sync.c makes the machine match what the host's HELLO says. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"

/* The virtio-serial port's name (virtserialport name=), the same on the host side. */
#define VM_PORT_NAME "forge.agent"
/* While the host side of the port is closed, how often the agent looks again. */
#define VM_PORT_RETRY_MS 50

/* The cgroup the sandbox's commands run in (each command's process joins it before
 * its exec; the agent and the shepherds stay in the root cgroup, so the agent can always
 * fork a shepherd and answer), holding limits.pids in pids.max. */
#define VM_CGROUP_ROOT "/sys/fs/cgroup"
#define VM_CGROUP_DIR VM_CGROUP_ROOT "/sandbox"
/* How far the guest's wall clock may be from the host's before the agent sets it: well
 * above the time a HELLO takes to arrive, well below what a person would notice. */
#define VM_CLOCK_SLACK_NS (50 * 1000000LL)

/* What the kernel command line tells the guest's init (forge.hostname=, forge.binds=,
 * forge.pids=). */
#define VM_BINDS_MAX 8
typedef struct VmConfig {
        char hostname[65];
        char binds[VM_BINDS_MAX][4096]; /* guest paths of the bind disks bind0, bind1, ... */
        size_t n_binds;
        int64_t pids_max; /* 0 = no limit */
} VmConfig;

/* Parses a kernel command line (modified in place) into *c: 0 or -EINVAL. */
int vm_cmdline_parse(char *cmdline, VmConfig *c);

/* PID 1 of a VM: mounts, modules, the sandbox's root, the commands' cgroup; finds the
 * port (a->port_path) and arms the HELLO's settings (a->sync_ops). */
int vm_init(Agent *a);

/* Without a connection, opens the port once the host side is connected and greets the
 * host; returns when to look again (monotonic ms), or 0 when there is nothing to do. */
int64_t vm_port_tick(Agent *a, int64_t now);

/* How vm_sync() reads and changes the machine; tests pass their own. */
typedef struct VmSyncOps {
        int (*clock_get)(int64_t *ret_ns); /* CLOCK_REALTIME */
        int (*clock_set)(int64_t ns);
        int (*hostname_get)(char *ret, size_t size);
        int (*hostname_set)(const char *name);
        int (*pids_max_get)(int64_t *ret); /* 0 = no limit */
        int (*pids_max_set)(int64_t max);
} VmSyncOps;
extern const VmSyncOps vm_sync_real_ops;

enum {
        VM_SYNC_CLOCK = 1 << 0,
        VM_SYNC_HOSTNAME = 1 << 1,
        VM_SYNC_PIDS = 1 << 2,
};
/* Makes the machine match the fields h carries (absent ones are left alone): the wall
 * clock when it is off by more than VM_CLOCK_SLACK_NS, the hostname and the commands'
 * pids.max when they differ. Failures are logged, not fatal. Returns the VM_SYNC_* bits
 * of what it changed. */
unsigned vm_sync(const VmSyncOps *ops, const ProtoHello *h);
/* CLOCK_SET: the host's wall clock, sent after it resumed a paused VM (whose clock stood
 * still meanwhile). Set through a->sync_ops in a VM; an agent that is no VM's init has
 * no clock of its own and answers yes. */
int agent_op_clock_set(Agent *a, const ProtoRequest *req, ProtoBuf *fields, char *msg, size_t msg_size);
/* pids.max's text for a limit (0: "max"), and back. */
void vm_pids_max_format(int64_t max, char *buf, size_t size);
int vm_pids_max_parse(const char *s, int64_t *ret);
