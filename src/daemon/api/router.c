/* Routing: the table of v1 routes, path matching, and the common steps of every call
 * (find the sandbox, check its state, read and parse the body). */
#include <stdio.h>
#include <string.h>

#include "basic/log.h"
#include "daemon/api/api.h"
#include "daemon/core/lifecycle.h"
#include "daemon/core/metrics.h"

static const ApiRoute routes[] = {
        {"GET", "health", api_health, API_BODY_NONE, false},
        {"GET", "metrics", api_metrics, API_BODY_NONE, API_SANDBOX_ANY},
        {"GET", "v1/images", api_image_list, API_BODY_NONE, false},
        {"GET", "v1/images/+", api_image_get, API_BODY_NONE, false},
        {"PUT", "v1/images/+", api_image_import, API_BODY_STREAM, false},
        {"DELETE", "v1/images/+", api_image_delete, API_BODY_NONE, false},
        {"POST", "v1/images/+/build", api_image_build, API_BODY_NONE, false},
        {"GET", "v1/sandboxes", api_sandbox_list, API_BODY_NONE, false},
        {"POST", "v1/sandboxes", api_sandbox_create, API_BODY_OPTIONAL, false},
        {"GET", "v1/sandboxes/*", api_sandbox_get, API_BODY_NONE, API_SANDBOX_ANY},
        {"DELETE", "v1/sandboxes/*", api_sandbox_delete, API_BODY_NONE, API_SANDBOX_ANY},
        {"POST", "v1/sandboxes/*/suspend", api_sandbox_suspend, API_BODY_OPTIONAL, API_SANDBOX_ANY},
        {"POST", "v1/sandboxes/*/resume", api_sandbox_resume, API_BODY_NONE, API_SANDBOX_ANY},
        {"POST", "v1/sandboxes/*/fork", api_sandbox_fork, API_BODY_OPTIONAL, API_SANDBOX_ANY},
        {"POST", "v1/sandboxes/*/snapshot", api_sandbox_snapshot, API_BODY_OPTIONAL, API_SANDBOX_ANY},
        {"GET", "v1/snapshots", api_snapshot_list, API_BODY_NONE, false},
        {"GET", "v1/snapshots/+", api_snapshot_get, API_BODY_NONE, false},
        {"DELETE", "v1/snapshots/+", api_snapshot_delete, API_BODY_NONE, false},
        {"POST", "v1/sandboxes/*/shell", api_shell, API_BODY_JSON, API_SANDBOX_RUNNING},
        {"POST", "v1/sandboxes/*/execute", api_execute, API_BODY_JSON, API_SANDBOX_RUNNING},
        {"POST", "v1/sandboxes/*/upload", api_upload, API_BODY_JSON, API_SANDBOX_RUNNING},
        {"GET", "v1/sandboxes/*/download", api_download, API_BODY_NONE, API_SANDBOX_RUNNING},
        {"GET", "v1/sandboxes/*/files", api_download, API_BODY_NONE, API_SANDBOX_RUNNING},
        {"PUT", "v1/sandboxes/*/files", api_files_put, API_BODY_STREAM, API_SANDBOX_RUNNING},
        {"DELETE", "v1/sandboxes/*/files", api_files_delete, API_BODY_NONE, API_SANDBOX_RUNNING},
        {"GET", "v1/sandboxes/*/files/list", api_files_list, API_BODY_NONE, API_SANDBOX_RUNNING},
        {"GET", "v1/sandboxes/*/files/stat", api_files_stat, API_BODY_NONE, API_SANDBOX_RUNNING},
        {"POST", "v1/sandboxes/*/files/mkdir", api_files_mkdir, API_BODY_JSON, API_SANDBOX_RUNNING},
        {"POST", "v1/sandboxes/*/processes", api_process_start, API_BODY_JSON, API_SANDBOX_RUNNING},
        {"GET", "v1/sandboxes/*/processes", api_process_list, API_BODY_NONE, API_SANDBOX_AWAKE},
        {"GET", "v1/sandboxes/*/processes/+", api_process_get, API_BODY_NONE, API_SANDBOX_AWAKE},
        {"DELETE", "v1/sandboxes/*/processes/+", api_process_kill, API_BODY_NONE, API_SANDBOX_AWAKE},
        {"GET", "v1/sandboxes/*/processes/+/output", api_process_output, API_BODY_NONE, API_SANDBOX_AWAKE},
        {"POST", "v1/sandboxes/*/processes/+/stdin", api_process_stdin, API_BODY_JSON, API_SANDBOX_AWAKE},
        {"POST", "v1/sandboxes/*/processes/+/signal", api_process_signal, API_BODY_JSON, API_SANDBOX_AWAKE},
        {"GET", "v1/sandboxes/*/processes/+/attach", api_process_attach, API_BODY_NONE, API_SANDBOX_AWAKE},
};

/* Compares one pattern with a path (both without the leading '/'); "*" matches one
 * non-empty segment, copied to ret_id; "+" matches one non-empty segment the handler
 * reads itself (a process's pid). A trailing '/' on the path is ignored. */
static bool pattern_matches(const char *pattern, const char *path, char *ret_id, size_t id_size) {
        while (*pattern) {
                size_t seg = strcspn(path, "/");

                if (*pattern == '*') {
                        if (seg == 0 || seg >= id_size)
                                return false;
                        memcpy(ret_id, path, seg);
                        ret_id[seg] = 0;
                        pattern++;
                } else if (*pattern == '+') {
                        if (seg == 0)
                                return false;
                        pattern++;
                } else {
                        size_t plen = strcspn(pattern, "/");
                        if (plen != seg || strncmp(pattern, path, seg) != 0)
                                return false;
                        pattern += plen;
                }
                path += seg;
                if (*pattern == '/') {
                        if (*path != '/')
                                return false;
                        pattern++;
                        path++;
                }
        }
        return *path == 0 || (path[0] == '/' && path[1] == 0);
}

const ApiRoute *api_route_match(const char *method, const char *path, char *ret_id, size_t id_size,
                                int *ret_status, char *ret_allow, size_t allow_size) {
        char normalized[512];
        bool path_exists = false;
        size_t allow_len = 0;

        /* The SandboX ForgeIsolator client says /v1/sandbox; both spellings are one API. */
        if (strncmp(path, "/v1/sandbox", 11) == 0 && (path[11] == 0 || path[11] == '/'))
                snprintf(normalized, sizeof(normalized), "v1/sandboxes%s", path + 11);
        else
                snprintf(normalized, sizeof(normalized), "%s", path[0] == '/' ? path + 1 : path);
        ret_id[0] = 0;
        if (ret_allow && allow_size > 0)
                ret_allow[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                if (!pattern_matches(routes[i].pattern, normalized, ret_id, id_size))
                        continue;
                if (strcmp(routes[i].method, method) == 0)
                        return &routes[i];
                path_exists = true;
                /* The Allow header a 405 must carry. */
                if (ret_allow && allow_len < allow_size)
                        allow_len += (size_t) snprintf(ret_allow + allow_len, allow_size - allow_len, "%s%s",
                                                       allow_len ? ", " : "", routes[i].method);
        }
        *ret_status = path_exists ? 405 : 404;
        return NULL;
}

void api_call_free(ApiCall *call) {
        if (!call)
                return;
        if (call->active)
                sandbox_activity_end(call->sb);
        sandbox_unref(call->sb);
        json_decref(call->body);
        http_request_unref(call->req);
        free(call);
}

typedef struct BodyWait {
        ApiCall *call;
        const ApiRoute *route;
} BodyWait;

static void on_sandbox_ready(Sandbox *sb, const ForgeError *err, void *userdata) {
        BodyWait *w = userdata;
        ApiCall *call = w->call;
        const ApiRoute *route = w->route;

        free(w);
        if (err)
                return api_respond_error(call, err);
        route->handler(call);
}

/* The last common step: a call that uses the sandbox counts as activity (until it ends:
 * a follower or an attach keeps the sandbox awake while connected) and finds it running,
 * resuming it first if it was suspended. The one place where calls resume sandboxes. */
static void call_run(ApiCall *call, const ApiRoute *route) {
        BodyWait *w;

        if (!call->sb || route->needs == API_SANDBOX_ANY || !sandbox_is_live(call->sb))
                return route->handler(call);
        call->active = true;
        sandbox_activity_begin(call->sb);
        w = calloc(1, sizeof(*w));
        if (!w)
                return api_fail(call, "internal", "out of memory");
        *w = (BodyWait){.call = call, .route = route};
        manager_ensure_running(call->api->manager, call->sb, on_sandbox_ready, w);
}

static void on_body(HttpRequest *req, int status, const char *body, size_t len, void *userdata) {
        BodyWait *w = userdata;
        ApiCall *call = w->call;
        const ApiRoute *route = w->route;
        json_error_t jerr;

        free(w);
        if (status != 0) {
                api_call_free(call); /* the server already answered 413 */
                return;
        }
        if (len == 0 && route->body == API_BODY_OPTIONAL)
                call->body = json_object();
        else if (len == 0)
                return api_fail(call, "invalid_json", "this route needs a JSON object body");
        else
                call->body = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!call->body)
                return api_fail(call, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)",
                                jerr.text, jerr.line, jerr.column);
        if (!json_is_object(call->body))
                return api_fail(call, "invalid_json", "the body must be a JSON object");
        call_run(call, route);
}

void api_handle(HttpRequest *req, void *userdata) {
        Api *api = userdata;
        char id[256], allow[64];
        const ApiRoute *route;
        ApiCall *call;
        int status = 404;

        call = calloc(1, sizeof(*call));
        if (!call) {
                http_respond(req, 500, "application/json", "{\"error\":\"out of memory\",\"code\":\"internal\"}",
                             42);
                return;
        }
        call->api = api;
        call->req = http_request_ref(req);
        metrics_count(METRIC_HTTP_REQUESTS);
        route = api_route_match(http_request_method(req), http_request_path(req), id, sizeof(id), &status, allow,
                                sizeof(allow));
        if (!route) {
                if (status == 405) {
                        http_response_header(req, "Allow", allow);
                        return api_fail(call, "method_not_allowed", "%s is not allowed on %s",
                                        http_request_method(req), http_request_path(req));
                }
                return api_fail(call, "not_found", "no route for %s %s", http_request_method(req),
                                http_request_path(req));
        }
        if (id[0]) {
                call->sb = sandbox_ref(manager_find(api->manager, id));
                if (!call->sb)
                        return api_fail(call, "sandbox_not_found", "no sandbox with id '%s'", id);
                if (route->needs == API_SANDBOX_RUNNING && !sandbox_is_live(call->sb))
                        return api_fail(call, "sandbox_not_running", "sandbox %s is %s%s%s", id,
                                        sandbox_state_to_string(call->sb->state),
                                        call->sb->reason ? ": " : "", call->sb->reason ? call->sb->reason : "");
        }
        if (route->body == API_BODY_JSON || route->body == API_BODY_OPTIONAL) {
                BodyWait *w = calloc(1, sizeof(*w));
                if (!w)
                        return api_fail(call, "internal", "out of memory");
                *w = (BodyWait){.call = call, .route = route};
                http_request_read_body(req, on_body, w);
                return;
        }
        call_run(call, route);
}
