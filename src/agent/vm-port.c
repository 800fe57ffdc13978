/* The host connection of a VM agent: the virtio-serial port. It has no accept(): the
 * port is one stream that the host side opens and closes (forged's connection to QEMU's
 * chardev socket). With the host side closed the port reads EOF and polls POLLHUP, so
 * the agent drops its connection like a closed socket, then reopens the port here and
 * greets again once the host is back (a forged restart). */
#include "agent/vm.h"
#include "basic/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

int64_t vm_port_tick(Agent *a, int64_t now) {
        struct pollfd pfd;
        Conn *c;

        if (a->conn || !a->port_path[0])
                return 0;
        if (now < a->port_retry_ms)
                return a->port_retry_ms;
        a->port_retry_ms = now + VM_PORT_RETRY_MS;
        pfd = (struct pollfd){.fd = open(a->port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY),
                              .events = POLLIN};
        if (pfd.fd < 0) {
                log_warn_errno(errno, "cannot open %s", a->port_path);
                return a->port_retry_ms;
        }
        /* POLLHUP: nobody on the host side (yet). */
        if (poll(&pfd, 1, 0) < 0 || (pfd.revents & POLLHUP) || !(c = conn_new(pfd.fd))) {
                close(pfd.fd);
                return a->port_retry_ms;
        }
        a->conn = c;
        log_info("host connected on %s", a->port_path);
        agent_send_hello(a);
        return 0;
}
