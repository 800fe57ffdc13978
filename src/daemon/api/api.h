/* The v1 HTTP API: routes, validation, and the one table that maps error codes to HTTP
 * statuses. Handlers translate requests into core calls and never reach around them. */
#pragma once

#include <jansson.h>

#include "basic/error.h"
#include "daemon/core/manager.h"
#include "daemon/http/http.h"
#include "proto/proto.h"

#define FORGE_VERSION "0.1.0"

typedef struct Api {
        Manager *manager;
        const char *const *isolators; /* names available on this host, NULL-terminated */
} Api;

/* The HttpHandler for every request. */
void api_handle(HttpRequest *req, void *userdata);

/* One API call in flight: the request, the sandbox its path names (a reference, or NULL),
 * and the parsed JSON body for routes that take one. */
typedef struct ApiCall {
        Api *api;
        HttpRequest *req;
        Sandbox *sb;
        json_t *body;
        bool active; /* counted in sb's activity (core/lifecycle.h) until freed */
} ApiCall;

typedef void (*ApiHandler)(ApiCall *call);

typedef enum ApiBody {
        API_BODY_NONE,     /* no body expected (any sent is ignored) */
        API_BODY_JSON,     /* a JSON object is required */
        API_BODY_OPTIONAL, /* a JSON object, or nothing at all = {} */
        API_BODY_STREAM,   /* the handler reads the raw body itself */
} ApiBody;

/* What a route needs of the sandbox its path names. */
typedef enum ApiSandboxNeed {
        API_SANDBOX_ANY,     /* any state (inspect, destroy, suspend, resume) */
        API_SANDBOX_RUNNING, /* running; a suspended one is resumed first, others are 409 */
        API_SANDBOX_AWAKE,   /* a suspended one is resumed first; a failed one is fine too */
} ApiSandboxNeed;

typedef struct ApiRoute {
        const char *method;
        const char *pattern; /* segments; "*" is the sandbox id */
        ApiHandler handler;
        ApiBody body;
        ApiSandboxNeed needs;
} ApiRoute;

/* The route for method+path. On no match, NULL and *ret_status is 404 or 405 (the path
 * exists with another method; ret_allow, if not NULL, then lists the methods it has).
 * ret_id receives the "*" segment, if any. */
const ApiRoute *api_route_match(const char *method, const char *path, char *ret_id, size_t id_size,
                                int *ret_status, char *ret_allow, size_t allow_size);

/* ---- answering ---- */

int api_error_status(const char *code);
void api_respond_error(ApiCall *call, const ForgeError *err);
void api_respond_json(ApiCall *call, int status, json_t *body); /* steals body */
/* Ends the call: drops the sandbox and request references, frees the body. */
void api_call_free(ApiCall *call);
/* Answers an error with this code and message. */
void api_fail(ApiCall *call, const char *code, const char *fmt, ...) _printf_(3, 4);

/* ---- validating JSON bodies (validate.c); each returns 0 or fills err ---- */

int json_only_fields(json_t *obj, const char *const *allowed, const char *where, ForgeError *err);
/* *ret NULL when absent; -EINVAL when present with another type. */
int json_get_string(json_t *obj, const char *key, bool required, const char **ret, ForgeError *err);
/* A required path field: like json_get_string, with NUL bytes refused as invalid_path. */
int json_get_path(json_t *obj, const char *key, const char **ret, ForgeError *err);
int json_get_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *ret, ForgeError *err);
int json_get_bool(json_t *obj, const char *key, bool *ret, ForgeError *err);
/* An object whose values are all strings (env, metadata); *ret NULL when absent. */
int json_get_string_map(json_t *obj, const char *key, size_t max_entries, json_t **ret, ForgeError *err);
/* Like json_get_string_map, for environment variables: names without '='. */
int json_get_env(json_t *obj, const char *key, json_t **ret, ForgeError *err);
/* A JSON string of s with invalid UTF-8 replaced (paths and names are bytes); null for NULL. */
json_t *api_json_string(const char *s);
/* A sandbox path: non-empty, ≤ 4096 bytes, no NUL; relative ones are joined to cwd. */
int api_resolve_path(const char *path, const char *cwd, char **ret, ForgeError *err);

/* ---- route handlers ---- */

void api_health(ApiCall *call);
void api_metrics(ApiCall *call);
void api_image_list(ApiCall *call);
void api_image_get(ApiCall *call);
void api_image_import(ApiCall *call);
void api_image_delete(ApiCall *call);
void api_image_build(ApiCall *call);
void api_sandbox_create(ApiCall *call);
void api_sandbox_list(ApiCall *call);
void api_sandbox_get(ApiCall *call);
void api_sandbox_delete(ApiCall *call);
void api_sandbox_suspend(ApiCall *call);
void api_sandbox_resume(ApiCall *call);
void api_sandbox_fork(ApiCall *call);
void api_sandbox_snapshot(ApiCall *call);
void api_snapshot_list(ApiCall *call);
void api_snapshot_get(ApiCall *call);
void api_snapshot_delete(ApiCall *call);
void api_shell(ApiCall *call);
void api_execute(ApiCall *call);
void api_upload(ApiCall *call);
void api_download(ApiCall *call);
void api_files_put(ApiCall *call);
void api_files_delete(ApiCall *call);
void api_files_list(ApiCall *call);
void api_files_stat(ApiCall *call);
void api_files_mkdir(ApiCall *call);
void api_process_start(ApiCall *call);
void api_process_list(ApiCall *call);
void api_process_get(ApiCall *call);
void api_process_kill(ApiCall *call);
void api_process_output(ApiCall *call);
void api_process_stdin(ApiCall *call);
void api_process_signal(ApiCall *call);
void api_process_attach(ApiCall *call);

/* ---- output as JSON and Server-Sent Events (commands.c, processes.c) ---- */

/* A JSON string of output bytes, invalid UTF-8 replaced. */
json_t *api_output_json(const uint8_t *data, size_t len);
/* "SIGKILL" for 9; null for 0. */
json_t *api_signal_json(int sig);
/* ?encoding=: absent (text) or base64; anything else is invalid_request. */
int api_output_encoding(HttpRequest *req, bool *ret_base64, ForgeError *err);
/* Sends output as a `stdout`/`stderr` event ({"data"} or {"data_base64"}); returns how
 * many bytes it took. In text form an incomplete UTF-8 character at the end is left for
 * the next call while more may come. */
size_t api_sse_output(HttpRequest *req, ProtoStream stream, const uint8_t *data, size_t len, bool base64, bool more);
/* Sends one event whose data is a JSON value (stolen). */
int api_sse_json(HttpRequest *req, const char *event, json_t *data);
