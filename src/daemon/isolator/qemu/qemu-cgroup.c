/* A VM's host cgroup: <forged's cgroup>/<group>/<id>, the same one an ns sandbox of that
 * id would have (../cgroup.c), holding QEMU and everything it forks or spawns. What it is
 * limited to is decided here (docs/isolator-qemu.md, "Limits"); QEMU enters it before
 * its exec (qemu.c, isolator_command_run_held), so every thread and every page it ever
 * has is in it and charged to it. */
#include <errno.h>

#include "daemon/isolator/cgroup.h"
#include "daemon/isolator/qemu/qemu-internal.h"

int64_t qemu_memory_limit_mb(int64_t guest_mb, bool kvm) {
        int64_t overhead = QEMU_MEMORY_BASE_MB + guest_mb / QEMU_MEMORY_PER_GUEST_DIV;

        return guest_mb + overhead + (kvm ? 0 : QEMU_TCG_TB_SIZE_MB);
}

void qemu_cgroup_limits(const QemuArgs *args, int64_t cpus_milli, SandboxLimits *ret) {
        *ret = (SandboxLimits){
                .cpus_milli = cpus_milli,
                .memory_mb = qemu_memory_limit_mb(args->memory_mb, args->kvm),
                .pids = QEMU_PIDS_BASE + args->cpus,
        };
}

int qemu_cgroup_prepare(const QemuArgs *args, int64_t cpus_milli) {
        SandboxLimits limits;
        int r;

        qemu_cgroup_limits(args, cpus_milli, &limits);
        r = cgroup_create(args->id, &limits);
        if (r < 0)
                return r;
        /* One QEMU per cgroup: whatever an earlier one left there (none should) goes. */
        return cgroup_kill_all(args->id);
}

int qemu_cgroup_enter(pid_t pid, void *userdata) {
        const char *id = userdata;

        return cgroup_attach(id, pid);
}

int qemu_cgroup_destroy(const char *id) {
        const CgroupLayout *l;
        int r;

        /* No cgroup can exist for an id that is not valid for one (reconcile's bare plans
         * may carry any directory name), nor on a host without cgroups (where no VM could
         * start, but destroy must still succeed). */
        if (!cgroup_id_is_valid(id) || cgroup_layout_get(&l) < 0)
                return 0;
        r = cgroup_kill_all(id);
        return r < 0 ? r : cgroup_remove(id);
}

int qemu_cgroup_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata) {
        const CgroupLayout *l;

        if (cgroup_layout_get(&l) < 0)
                return 0;
        return cgroup_reap_unknown(known, userdata);
}
