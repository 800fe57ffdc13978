/* Routes on snapshots: take one of a sandbox, list, inspect, delete. (Forks and
 * from_snapshot creates are in sandboxes.c.) */
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/core/snapshots.h"

static void on_snapshot(json_t *snapshot, const ForgeError *err, void *userdata) {
        ApiCall *call = userdata;

        if (err)
                return api_respond_error(call, err);
        api_respond_json(call, 201, snapshot);
}

void api_sandbox_snapshot(ApiCall *call) {
        static const char *const fields[] = {"name", NULL};
        ForgeError err = {0};
        const char *name = NULL;

        if (json_only_fields(call->body, fields, "", &err) < 0 ||
            json_get_string(call->body, "name", false, &name, &err) < 0)
                return api_respond_error(call, &err);
        if (name && strlen(name) > 128)
                return api_fail(call, "invalid_request", "'name' is longer than 128 bytes");
        if (manager_snapshot(call->api->manager, call->sb, name, on_snapshot, call, &err) < 0)
                api_respond_error(call, &err);
}

void api_snapshot_list(ApiCall *call) {
        json_t *list = snapshots_list(call->api->manager);

        if (!list)
                return api_fail(call, "internal", "out of memory");
        api_respond_json(call, 200, list);
}

/* The id segment after "snapshots/" (the router matched the shape; the core checks it). */
static void path_id(ApiCall *call, char *buf, size_t size) {
        const char *s = strstr(http_request_path(call->req), "/snapshots/") + strlen("/snapshots/");
        size_t n = strcspn(s, "/");

        snprintf(buf, size, "%.*s", (int) MIN(n, size - 1), s);
}

void api_snapshot_get(ApiCall *call) {
        ForgeError err = {0};
        json_t *snapshot;
        char id[64];

        path_id(call, id, sizeof(id));
        if (snapshot_get(call->api->manager, id, &snapshot, &err) < 0)
                return api_respond_error(call, &err);
        api_respond_json(call, 200, snapshot);
}

void api_snapshot_delete(ApiCall *call) {
        ForgeError err = {0};
        char id[64];

        path_id(call, id, sizeof(id));
        if (snapshot_delete(call->api->manager, id, &err) < 0)
                return api_respond_error(call, &err);
        api_respond_json(call, 204, NULL);
}
