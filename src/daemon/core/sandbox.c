#include "daemon/core/sandbox.h"

#include <stdio.h>
#include <string.h>

#include "daemon/agentc.h"
#include "daemon/core/images.h"
#include "daemon/core/manager.h"
#include "daemon/core/process.h"
#include "basic/time-util.h"

const SandboxLimits sandbox_default_limits = {
        .cpus_milli = 1000,
        .memory_mb = 512,
        .disk_mb = 4096,
        .pids = 256,
        .timeout_ms = 60000,
};

static const char *const state_names[_SANDBOX_STATE_MAX] = {
        [SANDBOX_CREATING] = "creating",
        [SANDBOX_RUNNING] = "running",
        [SANDBOX_FAILED] = "failed",
        [SANDBOX_DESTROYED] = "destroyed",
        [SANDBOX_SUSPENDED] = "suspended",
};

static const char *const expire_names[_SANDBOX_EXPIRE_MAX] = {
        [SANDBOX_EXPIRE_DESTROY] = "destroy",
        [SANDBOX_EXPIRE_SUSPEND] = "suspend",
};

Sandbox *sandbox_new(Manager *m, const char *id) {
        Sandbox *sb = calloc(1, sizeof(*sb));

        if (!sb)
                return NULL;
        sb->n_ref = 1;
        sb->manager = m;
        snprintf(sb->id, sizeof(sb->id), "%s", id);
        sb->env = json_object();
        sb->metadata = json_object();
        if (!sb->env || !sb->metadata || asprintf(&sb->dir, "%s/%s", m->sandboxes_dir, id) < 0) {
                sb->dir = NULL;
                return sandbox_unref(sb);
        }
        sb->created_ms = sb->updated_ms = sb->last_active_ms = time_now_ms();
        return sb;
}

Sandbox *sandbox_ref(Sandbox *sb) {
        if (sb)
                sb->n_ref++;
        return sb;
}

Sandbox *sandbox_unref(Sandbox *sb) {
        if (!sb || --sb->n_ref > 0)
                return NULL;
        process_table_free(sb->processes);
        agentc_unref(sb->agent);
        free(sb->dir);
        free(sb->reason);
        free(sb->name);
        free(sb->image);
        free(sb->cwd);
        json_decref(sb->env);
        json_decref(sb->metadata);
        free(sb->destroy_later);
        free(sb);
        return NULL;
}

const char *sandbox_state_to_string(SandboxState s) {
        return s < _SANDBOX_STATE_MAX ? state_names[s] : NULL;
}

int sandbox_state_from_string(const char *s, SandboxState *ret) {
        for (size_t i = 0; i < _SANDBOX_STATE_MAX; i++)
                if (strcmp(s, state_names[i]) == 0) {
                        *ret = (SandboxState) i;
                        return 0;
                }
        return -EINVAL;
}

bool sandbox_is_running(const Sandbox *sb) {
        return sb->state == SANDBOX_RUNNING && !sb->destroying;
}

bool sandbox_is_live(const Sandbox *sb) {
        return (sb->state == SANDBOX_RUNNING || sb->state == SANDBOX_SUSPENDED) && !sb->destroying;
}

const char *sandbox_expire_to_string(SandboxExpire e) {
        return e < _SANDBOX_EXPIRE_MAX ? expire_names[e] : NULL;
}

int sandbox_expire_from_string(const char *s, SandboxExpire *ret) {
        for (size_t i = 0; i < _SANDBOX_EXPIRE_MAX; i++)
                if (strcmp(s, expire_names[i]) == 0) {
                        *ret = (SandboxExpire) i;
                        return 0;
                }
        return -EINVAL;
}

void sandbox_agent_watch(Sandbox *sb) {
        agentc_set_watching(sb->agent, sb->state == SANDBOX_RUNNING && !sb->transitioning);
}

void sandbox_set_state(Sandbox *sb, SandboxState state, const char *reason) {
        sb->state = state;
        sb->hibernated = sb->hibernated && state == SANDBOX_SUSPENDED;
        free(sb->reason);
        sb->reason = reason ? strdup(reason) : NULL;
        sb->updated_ms = time_now_ms();
}

static json_t *limits_to_json(const SandboxLimits *l) {
        return json_pack("{s:f, s:I, s:I, s:I, s:I}", "cpus", (double) l->cpus_milli / 1000.0, "memory_mb",
                         (json_int_t) l->memory_mb, "disk_mb", (json_int_t) l->disk_mb, "pids",
                         (json_int_t) l->pids, "timeout_ms", (json_int_t) l->timeout_ms);
}

static json_t *usage_to_json(const SandboxUsage *u) {
        if (!u)
                return json_null();
        return json_pack("{s:I, s:I, s:I, s:I, s:o}", "cpu_usec", (json_int_t) u->cpu_usec, "memory_bytes",
                         (json_int_t) u->memory_bytes, "memory_peak_bytes", (json_int_t) u->memory_peak_bytes,
                         "pids", (json_int_t) u->pids, "disk_bytes",
                         u->disk_bytes >= 0 ? json_integer(u->disk_bytes) : json_null());
}

json_t *sandbox_to_json_with_usage(const Sandbox *sb, const SandboxUsage *usage) {
        char created[40], updated[40], active[40];

        time_format_rfc3339(sb->created_ms, created, sizeof(created));
        time_format_rfc3339(sb->updated_ms, updated, sizeof(updated));
        time_format_rfc3339(sb->last_active_ms, active, sizeof(active));
        return json_pack(
                "{s:s, s:s, s:s?, s:b, s:s, s:s, s:s?, s:O, s:O, s:s, s:o, s:s, s:s, s:s, s:I, s:I, s:I, "
                "s:s, s:o}",
                "id", sb->id, "status", sandbox_state_to_string(sb->state), "reason", sb->reason,
                "hibernated", sb->hibernated, "image", sb->image, "isolator", sb->isolator->name, "name",
                sb->name, "metadata", sb->metadata, "env", sb->env, "cwd", sb->cwd, "limits",
                limits_to_json(&sb->limits), "created_at", created, "updated_at", updated, "last_active_at",
                active, "idle_timeout_s", (json_int_t) sb->idle_timeout_s, "hibernate_after_s",
                (json_int_t) sb->hibernate_after_s, "ttl_s", (json_int_t) sb->ttl_s, "on_expire",
                sandbox_expire_to_string(sb->on_expire), "usage", usage_to_json(usage));
}

json_t *sandbox_to_json(const Sandbox *sb) {
        return sandbox_to_json_with_usage(sb, NULL);
}

json_t *sandbox_to_record(const Sandbox *sb) {
        json_t *j = sandbox_to_json(sb);

        if (!j)
                return NULL;
        /* Absent rather than null, so that reading back needs no null handling. */
        if (!sb->reason)
                json_object_del(j, "reason");
        if (!sb->name)
                json_object_del(j, "name");
        json_object_del(j, "usage");
        if (json_object_set_new(j, "created_ms", json_integer(sb->created_ms)) < 0 ||
            json_object_set_new(j, "updated_ms", json_integer(sb->updated_ms)) < 0 ||
            json_object_set_new(j, "uid_slot", json_integer(sb->uid_slot)) < 0 ||
            json_object_set_new(j, "last_active_ms", json_integer(sb->last_active_ms)) < 0 ||
            json_object_set_new(j, "ttl_expired", json_boolean(sb->ttl_expired)) < 0 ||
            json_object_set_new(j, "cpus_milli", json_integer(sb->limits.cpus_milli)) < 0 ||
            (sb->pooled && json_object_set_new(j, "pooled", json_true()) < 0)) {
                json_decref(j);
                return NULL;
        }
        return j;
}

/* Records written before idle and TTL existed lack these fields: all optional. */
static int lifecycle_from_record(Sandbox *sb, json_t *rec) {
        json_int_t active = sb->updated_ms, idle = 0, hibernate_after = 0, ttl = 0;
        const char *expire = "destroy";
        int expired = 0, pooled = 0, hibernated = 0;

        if (json_unpack(rec, "{s?I, s?I, s?I, s?b, s?I, s?s, s?b, s?b}", "last_active_ms", &active,
                        "idle_timeout_s", &idle, "hibernate_after_s", &hibernate_after, "hibernated",
                        &hibernated, "ttl_s", &ttl, "on_expire", &expire, "ttl_expired", &expired, "pooled",
                        &pooled) < 0 ||
            idle < 0 || hibernate_after < 0 || ttl < 0 ||
            sandbox_expire_from_string(expire, &sb->on_expire) < 0)
                return -EBADMSG;
        sb->hibernate_after_s = hibernate_after;
        sb->hibernated = hibernated;
        sb->last_active_ms = active;
        sb->idle_timeout_s = idle;
        sb->ttl_s = ttl;
        sb->ttl_expired = expired;
        sb->pooled = pooled;
        return 0;
}

int sandbox_from_record(Sandbox *sb, json_t *rec) {
        const char *id, *status, *reason = NULL, *name = NULL, *image, *isolator, *cwd;
        json_t *env, *metadata;
        json_int_t created, updated, slot, cpus, mem, disk = 0, pids, timeout;
        json_error_t jerr;

        if (json_unpack_ex(rec, &jerr, 0, "{s:s, s:s, s?s, s?s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:{s:I, s?I, s:I, s:I}}",
                           "id", &id, "status", &status, "reason", &reason, "name", &name, "image", &image,
                           "isolator", &isolator, "cwd", &cwd, "env", &env, "metadata", &metadata, "created_ms",
                           &created, "updated_ms", &updated, "uid_slot", &slot, "cpus_milli", &cpus, "limits",
                           "memory_mb", &mem, "disk_mb", &disk, "pids", &pids, "timeout_ms", &timeout) < 0)
                return -EBADMSG;
        if (strcmp(id, sb->id) != 0 || sandbox_state_from_string(status, &sb->state) < 0 ||
            !json_is_object(env) || !json_is_object(metadata) || slot < 0 || slot > UINT32_MAX)
                return -EBADMSG;
        sb->isolator = isolator_by_name(isolator);
        if (!sb->isolator)
                return -EBADMSG;
        sb->reason = reason ? strdup(reason) : NULL;
        sb->name = name ? strdup(name) : NULL;
        sb->image = strdup(image);
        sb->cwd = strdup(cwd);
        if (!sb->image || !sb->cwd || (reason && !sb->reason) || (name && !sb->name))
                return -ENOMEM;
        json_decref(sb->env);
        json_decref(sb->metadata);
        sb->env = json_incref(env);
        sb->metadata = json_incref(metadata);
        sb->created_ms = created;
        sb->updated_ms = updated;
        sb->uid_slot = (uint32_t) slot;
        sb->limits = (SandboxLimits){
                .cpus_milli = cpus, .memory_mb = mem, .disk_mb = disk, .pids = pids, .timeout_ms = timeout};
        return lifecycle_from_record(sb, rec);
}

void sandbox_plan(const Sandbox *sb, SandboxPlan *plan) {
        Manager *m = sb->manager;

        *plan = (SandboxPlan){
                .dir = sb->dir,
                .image_name = sb->image,
                .agent_path = m->agent_path,
                .uid_base = UID_RANGE_BASE + sb->uid_slot * UID_RANGE_SIZE,
                .uid_count = UID_RANGE_SIZE,
                .hostname = sb->id,
                .limits = sb->limits,
        };
        snprintf(plan->id, sizeof(plan->id), "%s", sb->id);
        images_plan(m, sb->image, plan);
}
