#include "daemon/isolator/isolator.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macros.h"
#include "daemon/isolator/cgroup.h"

static const IsolatorOps *const isolators[] = {
        &isolator_ns,
        &isolator_qemu,
};

/* Initialized and usable in this forged; names of those, NULL-terminated, for /health. */
static bool ready[ELEMENTSOF(isolators)];
static const char *ready_names[ELEMENTSOF(isolators) + 1];

const IsolatorOps *isolator_by_name(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(isolators); i++)
                if (strcmp(isolators[i]->name, name) == 0)
                        return isolators[i];
        return NULL;
}

const IsolatorOps *isolator_auto(const char *state_dir, char *why, size_t size) {
        /* Strongest first; the last one has no preferred() and always qualifies. */
        static const IsolatorOps *const by_strength[] = {&isolator_qemu, &isolator_ns};
        ForgeError e = {0};

        for (size_t i = 0; i < ELEMENTSOF(by_strength); i++) {
                const IsolatorOps *iso = by_strength[i];
                if (!iso->preferred) {
                        if (e.message[0])
                                snprintf(why, size, "not %s: %s", by_strength[0]->name, e.message);
                        return iso;
                }
                e = (ForgeError){0};
                if (iso->available(&e) >= 0 && iso->preferred(state_dir, &e) >= 0) {
                        snprintf(why, size, "%s", e.message[0] ? e.message : "preferred on this host");
                        return iso;
                }
        }
        return NULL;
}

/* Both isolators put their sandboxes into cgroups under one group per forged instance:
 * named before any isolator (or the cgroup layout discovery) runs. */
static int cgroup_group_init(const char *state_dir, ForgeError *err) {
        char abs[PATH_MAX], name[CGROUP_GROUP_NAME_MAX];

        if (!realpath(state_dir, abs))
                return forge_error_set(err, errno, "internal", "cannot resolve %s", state_dir);
        cgroup_group_name(abs, name, sizeof(name));
        cgroup_set_group(name);
        return 0;
}

int isolator_init_all(const IsolatorOps *required, const char *state_dir, ForgeError *err) {
        size_t n = 0;
        int r;

        r = cgroup_group_init(state_dir, err);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(isolators); i++) {
                const IsolatorOps *iso = isolators[i];
                ForgeError why = {0};

                if (iso == required) {
                        r = iso->init(state_dir, err);
                        if (r < 0)
                                return r;
                } else if (iso->available(&why) < 0 || iso->init(state_dir, &why) < 0) {
                        log_info("isolator %s is not available: %s", iso->name, why.message);
                        continue;
                }
                ready[i] = true;
                ready_names[n++] = iso->name;
        }
        return 0;
}

void isolator_fini_all(void) {
        for (size_t i = 0; i < ELEMENTSOF(isolators); i++)
                if (ready[i]) {
                        isolators[i]->fini();
                        ready[i] = false;
                }
        /* A clean stop leaves no empty group behind (sandboxes keep theirs: they outlive
         * forged). */
        cgroup_remove_group();
        memset(ready_names, 0, sizeof(ready_names));
}

bool isolator_is_ready(const IsolatorOps *iso) {
        for (size_t i = 0; i < ELEMENTSOF(isolators); i++)
                if (isolators[i] == iso)
                        return ready[i];
        return false;
}

const char *const *isolator_ready_names(void) {
        return ready_names;
}

int isolator_destroy_any(const SandboxPlan *plan) {
        int ret = 0;

        for (size_t i = 0; i < ELEMENTSOF(isolators); i++)
                if (ready[i]) {
                        int r = isolators[i]->destroy(plan);
                        if (r < 0 && ret >= 0)
                                ret = r;
                }
        return ret;
}

void isolator_image_removed_all(const char *image_name) {
        for (size_t i = 0; i < ELEMENTSOF(isolators); i++)
                if (ready[i] && isolators[i]->image_removed)
                        isolators[i]->image_removed(image_name);
}

int isolator_reap_unknown_all(bool (*known)(const char *id, void *userdata), void *userdata) {
        int ret = 0;

        for (size_t i = 0; i < ELEMENTSOF(isolators); i++)
                if (ready[i]) {
                        int r = isolators[i]->reap_unknown(known, userdata);
                        if (r < 0 && ret >= 0)
                                ret = r;
                }
        return ret;
}
