/* forge-agent inside a microVM (docs/isolator-qemu.md): vm-init.c boots the guest,
 * vm-port.c serves the protocol on a virtio-serial port instead of a listening socket. */
#pragma once

#include <stdint.h>

#include "agent/agent.h"

/* The virtio-serial port's name (virtserialport name=), the same on the host side. */
#define VM_PORT_NAME "forge.agent"
/* While the host side of the port is closed, how often the agent looks again. */
#define VM_PORT_RETRY_MS 50

/* PID 1 of a VM: mounts, modules, the sandbox's root; finds the port (a->port_path). */
int vm_init(Agent *a);

/* Without a connection, opens the port once the host side is connected and greets the
 * host; returns when to look again (monotonic ms), or 0 when there is nothing to do. */
int64_t vm_port_tick(Agent *a, int64_t now);
