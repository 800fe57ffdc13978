/* Routes on sandboxes themselves: health, create, list, inspect, destroy. */
#include <math.h>
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/core/lifecycle.h"

void api_health(ApiCall *call) {
        json_t *isolators = json_array();

        for (const char *const *i = call->api->isolators; *i; i++)
                json_array_append_new(isolators, json_string(*i));
        api_respond_json(call, 200,
                         json_pack("{s:s, s:s, s:o, s:s, s:I}", "status", "ok", "version", FORGE_VERSION,
                                   "isolators", isolators, "default_isolator",
                                   call->api->manager->default_isolator->name, "sandboxes",
                                   (json_int_t) call->api->manager->n_sandboxes));
}

static int parse_cpus(json_t *limits, int64_t *ret, ForgeError *err) {
        json_t *v = json_object_get(limits, "cpus");
        double cpus;

        if (!v || json_is_null(v))
                return 0;
        cpus = json_number_value(v);
        if (!json_is_number(v) || !isfinite(cpus) || cpus < 0.01 || cpus > 1024)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "'limits.cpus' must be a number from 0.01 to 1024");
        *ret = (int64_t) llround(cpus * 1000.0);
        return 0;
}

static int parse_limits(json_t *body, SandboxLimits *l, ForgeError *err) {
        static const char *const fields[] = {"cpus", "memory_mb", "disk_mb", "pids", "timeout_ms", NULL};
        json_t *limits = json_object_get(body, "limits");
        int r;

        /* cpus, memory_mb and disk_mb 0: not given; the core takes the default or a
         * snapshot's. */
        *l = sandbox_default_limits;
        l->cpus_milli = l->memory_mb = l->disk_mb = 0;
        if (!limits || json_is_null(limits))
                return 0;
        if (!json_is_object(limits))
                return forge_error_set(err, EINVAL, "invalid_request", "'limits' must be an object");
        r = json_only_fields(limits, fields, "limits.", err);
        if (r >= 0)
                r = parse_cpus(limits, &l->cpus_milli, err);
        if (r >= 0)
                r = json_get_int(limits, "memory_mb", 16, 1024 * 1024, &l->memory_mb, err);
        if (r >= 0)
                r = json_get_int(limits, "disk_mb", 32, 1024 * 1024, &l->disk_mb, err);
        if (r >= 0)
                r = json_get_int(limits, "pids", 8, 1 << 22, &l->pids, err);
        if (r >= 0)
                r = json_get_int(limits, "timeout_ms", 1, 24LL * 3600 * 1000, &l->timeout_ms, err);
        return r;
}

static int parse_isolator(Api *api, json_t *body, const IsolatorOps **ret, ForgeError *err) {
        const char *name;
        int r = json_get_string(body, "isolator", false, &name, err);

        if (r < 0 || !name || strcmp(name, "auto") == 0)
                return r;
        *ret = isolator_by_name(name);
        if (!*ret)
                return forge_error_set(err, EINVAL, "invalid_request", "unknown isolator '%s' (use auto, ns or qemu)",
                                       name);
        return 0;
}

/* idle_timeout_s, hibernate_after_s, ttl_s and on_expire; a year is far past any
 * sensible value. */
static int parse_lifecycle(json_t *body, CreateSpec *spec, ForgeError *err) {
        const char *expire = NULL;
        int r;

        spec->idle_timeout_s = -1;
        spec->hibernate_after_s = -1;
        r = json_get_int(body, "idle_timeout_s", 0, 366LL * 24 * 3600, &spec->idle_timeout_s, err);
        if (r >= 0)
                r = json_get_int(body, "hibernate_after_s", 0, 366LL * 24 * 3600, &spec->hibernate_after_s,
                                 err);
        if (r >= 0)
                r = json_get_int(body, "ttl_s", 0, 366LL * 24 * 3600, &spec->ttl_s, err);
        if (r >= 0)
                r = json_get_string(body, "on_expire", false, &expire, err);
        if (r < 0)
                return r;
        if (expire && sandbox_expire_from_string(expire, &spec->on_expire) < 0)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "'on_expire' must be \"destroy\" or \"suspend\"");
        return 0;
}

/* One parser for create and fork; fields says which of them the route takes. */
static int parse_create(Api *api, json_t *body, const char *const *fields, CreateSpec *spec, ForgeError *err) {
        bool network = false;
        int r;

        *spec = (CreateSpec){0};
        r = json_only_fields(body, fields, "", err);
        if (r >= 0)
                r = json_get_string(body, "image", false, &spec->image, err);
        if (r >= 0)
                r = json_get_string(body, "runtime", false, &spec->runtime, err);
        if (r >= 0)
                r = parse_isolator(api, body, &spec->isolator, err);
        if (r >= 0)
                r = parse_limits(body, &spec->limits, err);
        if (r >= 0)
                r = json_get_env(body, "env", &spec->env, err);
        if (r >= 0)
                r = json_get_string_map(body, "metadata", 64, &spec->metadata, err);
        if (r >= 0)
                r = json_get_string(body, "cwd", false, &spec->cwd, err);
        if (r >= 0)
                r = json_get_string(body, "name", false, &spec->name, err);
        if (r >= 0)
                r = json_get_bool(body, "network", &network, err);
        if (r >= 0)
                r = parse_lifecycle(body, spec, err);
        if (r >= 0)
                r = json_get_string(body, "from_snapshot", false, &spec->from_snapshot, err);
        if (r < 0)
                return r;
        if (spec->cwd && (spec->cwd[0] != '/' || strlen(spec->cwd) > 4096))
                return forge_error_set(err, EINVAL, "invalid_request", "'cwd' must be an absolute path");
        if (spec->name && strlen(spec->name) > 128)
                return forge_error_set(err, EINVAL, "invalid_request", "'name' is longer than 128 bytes");
        if (network)
                return forge_error_set(err, EINVAL, "invalid_request",
                                       "network access is not supported by this version of forged yet");
        /* After every field is checked: bad input is told apart from a host without it. */
        if (spec->isolator && !isolator_is_ready(spec->isolator))
                return forge_error_set(err, ENOTSUP, "isolator_unavailable",
                                       "isolator '%s' is not available on this host (see forged's log)",
                                       spec->isolator->name);
        return 0;
}

static void on_created(Sandbox *sb, const ForgeError *err, void *userdata) {
        ApiCall *call = userdata;

        if (err)
                return api_respond_error(call, err);
        api_respond_json(call, 201, sandbox_to_json(sb));
}

void api_sandbox_create(ApiCall *call) {
        static const char *const fields[] = {"image",
                                             "runtime",
                                             "isolator",
                                             "limits",
                                             "env",
                                             "cwd",
                                             "name",
                                             "metadata",
                                             "network",
                                             "idle_timeout_s",
                                             "hibernate_after_s",
                                             "ttl_s",
                                             "on_expire",
                                             "from_snapshot",
                                             NULL};
        ForgeError err = {0};
        CreateSpec spec;

        if (parse_create(call->api, call->body, fields, &spec, &err) < 0 ||
            manager_create(call->api->manager, &spec, on_created, call, &err) < 0)
                api_respond_error(call, &err);
}

/* The fork takes its source's image, isolator, limits, env and cwd; its own name,
 * metadata (over the source's) and lifecycle. */
void api_sandbox_fork(ApiCall *call) {
        static const char *const fields[] = {
                "name", "metadata", "idle_timeout_s", "hibernate_after_s", "ttl_s", "on_expire", NULL};
        ForgeError err = {0};
        CreateSpec spec;

        if (parse_create(call->api, call->body, fields, &spec, &err) < 0 ||
            manager_fork(call->api->manager, call->sb, &spec, on_created, call, &err) < 0)
                api_respond_error(call, &err);
}

/* ?status=S and ?metadata.KEY=VALUE, combined with AND. */
static bool sandbox_matches(const Sandbox *sb, HttpRequest *req) {
        size_t n = http_request_query_count(req);

        for (size_t i = 0; i < n; i++) {
                const char *key, *value;
                json_t *have;

                http_request_query_at(req, i, &key, &value);
                if (strcmp(key, "status") == 0 && strcmp(value, sandbox_state_to_string(sb->state)) != 0)
                        return false;
                if (strncmp(key, "metadata.", 9) == 0) {
                        have = json_object_get(sb->metadata, key + 9);
                        if (!have || strcmp(json_string_value(have), value) != 0)
                                return false;
                }
        }
        return true;
}

void api_sandbox_list(ApiCall *call) {
        Manager *m = call->api->manager;
        json_t *list = json_array();

        for (size_t i = 0; i < m->n_sandboxes; i++)
                if (sandbox_matches(m->sandboxes[i], call->req))
                        json_array_append_new(list, sandbox_to_json(m->sandboxes[i]));
        api_respond_json(call, 200, json_pack("{s:o}", "sandboxes", list));
}

/* Reading a few cgroup files is cheap enough for the loop thread. */
void api_sandbox_get(ApiCall *call) {
        SandboxUsage usage;
        SandboxPlan plan;
        bool have = false;

        if (sandbox_is_live(call->sb)) {
                sandbox_plan(call->sb, &plan);
                have = call->sb->isolator->stats(&plan, &usage) >= 0;
        }
        api_respond_json(call, 200, sandbox_to_json_with_usage(call->sb, have ? &usage : NULL));
}

static void on_lifecycle_done(Sandbox *sb, const ForgeError *err, void *userdata) {
        ApiCall *call = userdata;

        if (err)
                return api_respond_error(call, err);
        api_respond_json(call, 200, sandbox_to_json(sb));
}

/* {"hibernate": true} saves a VM's machine to disk as well. Calls in flight on it (a
 * command, a follower, an attach) would lose their agent connection with the machine:
 * a hibernation waits until there are none. */
void api_sandbox_suspend(ApiCall *call) {
        static const char *const fields[] = {"hibernate", NULL};
        ForgeError err = {0};
        bool hibernate = false;

        if (json_only_fields(call->body, fields, "", &err) < 0 ||
            json_get_bool(call->body, "hibernate", &hibernate, &err) < 0)
                return api_respond_error(call, &err);
        if (hibernate && call->sb->n_active > 0)
                return api_fail(
                        call, "sandbox_busy",
                        "sandbox %s has calls in flight (commands, followers, attaches); hibernate it when "
                        "they have ended",
                        call->sb->id);
        manager_suspend(call->api->manager, call->sb, "client", hibernate, on_lifecycle_done, call);
}

/* A resume by hand counts as activity, so the idle clock starts over. */
void api_sandbox_resume(ApiCall *call) {
        sandbox_activity_begin(call->sb);
        sandbox_activity_end(call->sb);
        manager_ensure_running(call->api->manager, call->sb, on_lifecycle_done, call);
}

static void on_destroyed(Sandbox *sb, const ForgeError *err, void *userdata) {
        api_respond_json(userdata, 204, NULL);
}

void api_sandbox_delete(ApiCall *call) {
        if (call->sb->destroying)
                return api_fail(call, "sandbox_not_found", "sandbox %s is being destroyed", call->sb->id);
        manager_destroy(call->api->manager, call->sb, on_destroyed, call);
}
