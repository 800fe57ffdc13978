/* The QEMU command line of a microVM: -M microvm, no default devices, no network, the
 * guest parts, one virtio-blk per disk (named by its serial, which the guest's init
 * looks for), the agent's virtio-serial port and QMP on sockets forged made and passes
 * as fds, the writable disk as fds too, and -incoming on a saved machine when the VM
 * comes from a snapshot. QEMU daemonizes and holds a lock on its pidfile, so it
 * outlives forged.
 *
 * QEMU itself is confined: once its files and sockets are open it runs as the
 * sandbox's own unprivileged uid (-runas; the uid root inside an ns sandbox of the same
 * slot would have), and under its seccomp filter (-sandbox) without obsolete system
 * calls or scheduler and affinity changes. elevateprivileges=deny cannot be used: it
 * forbids the setsid of -daemonize and the setuid of -runas. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macros.h"
#include "daemon/isolator/qemu/qemu-internal.h"

#define ARGV_MAX 96

typedef struct Argv {
        char *v[ARGV_MAX + 1];
        size_t n;
        int error;
} Argv;

_printf_(2, 3) static void argv_add(Argv *a, const char *fmt, ...) {
        va_list ap;
        char *s;

        if (a->error)
                return;
        if (a->n == ARGV_MAX) {
                a->error = -E2BIG;
                return;
        }
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                a->error = -ENOMEM;
        else
                a->v[a->n++] = s;
        va_end(ap);
}

/* A value inside a QEMU option list: every ',' is doubled. */
static char *opt_escape(const char *s) {
        size_t n = strlen(s) + 1;
        for (const char *p = s; *p; p++)
                n += *p == ',';
        char *out = malloc(n), *o = out;
        for (; out && *s; s++) {
                *o++ = *s;
                if (*s == ',')
                        *o++ = ',';
        }
        if (out)
                *o = 0;
        return out;
}

/* file: a path, or the fd set holding it (options: what follows file=). */
static void argv_add_disk(Argv *a, const char *serial, const char *file, const char *options) {
        _cleanup_free_ char *escaped = opt_escape(file);

        if (!escaped) {
                a->error = -ENOMEM;
                return;
        }
        argv_add(a, "-drive");
        argv_add(a, "id=%s,file=%s,format=raw,if=none%s", serial, escaped, options);
        argv_add(a, "-device");
        argv_add(a, "virtio-blk-device,drive=%s,serial=%s", serial, serial);
}

/* The writable disk from the fds forged opened: one fd set, read-write and read-only.
 * No image locking: a second fd of the set taking the lock would conflict with the
 * first, and forged already starts one QEMU per disk. */
static void argv_add_writable_disk(Argv *a, const QemuArgs *args) {
        char fdset[32];

        snprintf(fdset, sizeof(fdset), "/dev/fdset/%d", QEMU_DISK_FDSET);
        argv_add(a, "-add-fd");
        argv_add(a, "fd=%d,set=%d", args->disk_rw_fd, QEMU_DISK_FDSET);
        argv_add(a, "-add-fd");
        argv_add(a, "fd=%d,set=%d", args->disk_ro_fd, QEMU_DISK_FDSET);
        argv_add_disk(a, "disk", fdset, ",file.locking=off");
}

/* console on the serial port (the sandbox's console.log), no reboot on panic, and what
 * the guest's init reads: hostname, where the bind disks go, the pids limit. A restored
 * VM never reads its command line again (it is in the saved memory): the host's HELLO
 * sets hostname and limit there (qemu.c, hello_send). */
static void argv_add_cmdline(Argv *a, const QemuArgs *args) {
        char binds[1024] = "", tsc[96] = "", pids[40] = "";
        size_t off = 0;

        for (size_t i = 0; i < args->n_binds; i++)
                off += (size_t) snprintf(binds + off, sizeof(binds) - MIN(off, sizeof(binds)), "%s%s",
                                         i ? "," : " forge.binds=", args->bind_targets[i]);
        if (off >= sizeof(binds)) {
                a->error = -E2BIG;
                return;
        }
        /* Without KVM the guest has no timer to calibrate its TSC against and hangs. */
        if (!args->kvm)
                snprintf(tsc, sizeof(tsc), " tsc_early_khz=%llu tsc=reliable",
                         (unsigned long long) args->tsc_khz);
        if (args->pids > 0)
                snprintf(pids, sizeof(pids), " forge.pids=%lld", (long long) args->pids);
        argv_add(a, "-append");
        argv_add(a, "console=ttyS0 panic=-1 quiet forge.hostname=%s%s%s%s", args->id, binds, pids, tsc);
}

int qemu_argv_build(const QemuArgs *args, char ***ret) {
        _cleanup_free_ char *console = NULL, *pidfile = NULL;
        Argv a = {};

        if (asprintf(&console, "%s/console.log", args->dir) < 0 ||
            asprintf(&pidfile, "%s/qemu.pid", args->dir) < 0)
                return -ENOMEM;
        argv_add(&a, "qemu-system-x86_64");
        argv_add(&a, "-name");
        argv_add(&a, "forge-%s", args->id);
        argv_add(&a, "-M");
        argv_add(&a, "microvm,x-option-roms=off");
        argv_add(&a, "-accel");
        if (args->kvm)
                argv_add(&a, "kvm");
        else
                argv_add(&a, "tcg,tb-size=%d", QEMU_TCG_TB_SIZE_MB);
        argv_add(&a, "-cpu");
        argv_add(&a, "%s", args->kvm ? "host" : "max");
        argv_add(&a, "-smp");
        argv_add(&a, "%lld", (long long) args->cpus);
        argv_add(&a, "-m");
        argv_add(&a, "%lldM", (long long) args->memory_mb);
        argv_add(&a, "-nodefaults");
        argv_add(&a, "-no-user-config");
        argv_add(&a, "-nic");
        argv_add(&a, "none");
        argv_add(&a, "-display");
        argv_add(&a, "none");
        argv_add(&a, "-no-reboot");
        argv_add(&a, "-kernel");
        argv_add(&a, "%s", args->kernel);
        argv_add(&a, "-initrd");
        argv_add(&a, "%s", args->initramfs);
        argv_add_cmdline(&a, args);
        argv_add(&a, "-serial");
        argv_add(&a, "file:%s", console);
        argv_add_disk(&a, "image", args->image_disk, ",readonly=on");
        argv_add_writable_disk(&a, args);
        for (size_t i = 0; i < args->n_binds; i++) {
                char serial[32];
                snprintf(serial, sizeof(serial), "bind%zu", i);
                argv_add_disk(&a, serial, args->bind_disks[i], ",readonly=on");
        }
        argv_add(&a, "-device");
        argv_add(&a, "virtio-serial-device");
        argv_add(&a, "-chardev");
        argv_add(&a, "socket,id=agent,fd=%d,server=on,wait=off", args->agent_fd);
        argv_add(&a, "-device");
        argv_add(&a, "virtserialport,chardev=agent,name=forge.agent");
        argv_add(&a, "-chardev");
        argv_add(&a, "socket,id=qmp,fd=%d,server=on,wait=off", args->qmp_fd);
        argv_add(&a, "-mon");
        argv_add(&a, "chardev=qmp,mode=control");
        argv_add(&a, "-sandbox");
        argv_add(&a, "on,obsolete=deny,resourcecontrol=deny");
        if (args->uid > 0) {
                argv_add(&a, "-runas");
                argv_add(&a, "%lu:%lu", (unsigned long) args->uid, (unsigned long) args->uid);
        }
        if (args->incoming_fd >= 0) {
                argv_add(&a, "-incoming");
                argv_add(&a, "fd:%d", args->incoming_fd);
        }
        argv_add(&a, "-daemonize");
        argv_add(&a, "-pidfile");
        argv_add(&a, "%s", pidfile);
        if (a.error) {
                for (size_t i = 0; i < a.n; i++)
                        free(a.v[i]);
                return a.error;
        }
        *ret = malloc((a.n + 1) * sizeof(char *));
        if (!*ret) {
                for (size_t i = 0; i < a.n; i++)
                        free(a.v[i]);
                return -ENOMEM;
        }
        memcpy(*ret, a.v, a.n * sizeof(char *));
        (*ret)[a.n] = NULL;
        return 0;
}
