#include "daemon/core/images.h"

#include <stdio.h>
#include <string.h>

#include "daemon/core/image-host.h"

/* File suffixes interpreters expect (node picks the module system by suffix). */
static const struct {
        const char *runtime, *suffix;
} runtime_suffixes[] = {
        {"python", ".py"},
        {"node", ".js"},
        {"sh", ".sh"},
        {"bash", ".sh"},
};

/* Other names clients use for the same runtimes (SandboX says "shell"). */
static const struct {
        const char *alias, *runtime;
} runtime_aliases[] = {
        {"shell", "sh"},
        {"python3", "python"},
        {"javascript", "node"},
};

static const char *runtime_canonical(const char *runtime) {
        for (size_t i = 0; i < ELEMENTSOF(runtime_aliases); i++)
                if (strcmp(runtime_aliases[i].alias, runtime) == 0)
                        return runtime_aliases[i].runtime;
        return runtime;
}

int images_init(Manager *m, ForgeError *err) {
        _cleanup_free_ char *json_path = NULL;
        json_error_t jerr;
        int r;

        r = image_host_prepare(m->state_dir, err);
        if (r < 0)
                return r;
        if (asprintf(&json_path, "%s/images/host/image.json", m->state_dir) < 0 ||
            asprintf(&m->host_rootfs, "%s/images/host/rootfs", m->state_dir) < 0)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        m->host_image = json_load_file(json_path, 0, &jerr);
        if (!m->host_image)
                return forge_error_set(err, EBADMSG, "internal", "%s: %s", json_path, jerr.text);
        return 0;
}

int images_check(Manager *m, const char *name, ForgeError *err) {
        if (strcmp(name, "host") == 0)
                return 0;
        return forge_error_set(err, ENOENT, "image_not_found", "no image named '%s' (available: host)", name);
}

static json_t *image_runtimes(Manager *m, const char *image) {
        return strcmp(image, "host") == 0 ? json_object_get(m->host_image, "runtimes") : NULL;
}

int images_for_runtime(Manager *m, const char *runtime, const char **ret_image, ForgeError *err) {
        runtime = runtime_canonical(runtime);
        if (!json_is_string(json_object_get(image_runtimes(m, "host"), runtime)))
                return forge_error_set(err, ENOENT, "unsupported_runtime",
                                       "no image has the '%s' runtime (the host image offers what the host "
                                       "has installed: python needs python3, node needs nodejs)",
                                       runtime);
        *ret_image = "host";
        return 0;
}

int images_runtime(Manager *m, const char *image, const char *runtime, const char **ret_interp,
                   const char **ret_suffix, ForgeError *err) {
        const char *interp;

        runtime = runtime_canonical(runtime);
        interp = json_string_value(json_object_get(image_runtimes(m, image), runtime));

        if (!interp)
                return forge_error_set(err, ENOENT, "unsupported_runtime",
                                       "image '%s' has no '%s' runtime", image, runtime);
        *ret_interp = interp;
        *ret_suffix = "";
        for (size_t i = 0; i < ELEMENTSOF(runtime_suffixes); i++)
                if (strcmp(runtime_suffixes[i].runtime, runtime) == 0)
                        *ret_suffix = runtime_suffixes[i].suffix;
        return 0;
}

const char *images_workdir(Manager *m, const char *image) {
        const char *w = json_string_value(json_object_get(m->host_image, "workdir"));

        return w ? w : "/root";
}

void images_plan(Manager *m, const char *image, SandboxPlan *plan) {
        plan->image_rootfs = m->host_rootfs;
        plan->ro_binds = image_host_ro_binds();
}
