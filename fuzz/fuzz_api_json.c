/* The API layer's request validation: JSON bodies of create, shell, execute, upload and
 * mkdir (and the query strings of the file routes), run through the real api_handle()
 * behind a real HTTP connection (http-feed.c), plus api_route_match() on every method
 * and path that arrives.
 *
 * The manager is a fixture: one running sandbox "fuzzbox", one failed sandbox
 * "stopped", room for no new sandbox (so a create that passes validation is refused
 * with at_capacity before anything is made), and an isolator whose agent cannot be
 * reached (so a command or file call that passes validation ends at agent_unavailable).
 * Nothing touches the disk or starts a process.
 *
 * Input: byte 0 picks the route; for ROUTE_RAW the rest is "METHOD TARGET\n" and a body,
 * otherwise the rest is the body sent to that route. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/rm-rf.h"
#include "daemon/api/api.h"
#include "daemon/core/images.h"
#include "daemon/core/manager.h"
#include "http-feed.h"

static const struct {
        const char *method, *target;
} fixed_routes[] = {
        {"POST", "/v1/sandboxes"},
        {"POST", "/v1/sandboxes/fuzzbox/shell"},
        {"POST", "/v1/sandboxes/fuzzbox/execute"},
        {"POST", "/v1/sandboxes/fuzzbox/upload"},
        {"POST", "/v1/sandboxes/fuzzbox/files/mkdir"},
        {"POST", "/v1/sandbox"},
        {"POST", "/v1/sandboxes/stopped/shell"},
};
#define ROUTE_RAW ELEMENTSOF(fixed_routes)

static uv_loop_t loop;
static HttpServer *server;
static Manager manager;
static Sandbox *sandboxes[2];
static Api api;
static volatile size_t sink;

/* Only connect and is_alive are reached; the rest refuse, should that ever change. */
static int fuzz_isolator_init(const char *state_dir, ForgeError *err) {
        return -ENOSYS;
}

static int fuzz_isolator_available(ForgeError *err) {
        return -ENOSYS;
}

static int fuzz_isolator_plan_op(const SandboxPlan *plan, ForgeError *err) {
        return -ENOSYS;
}

static int fuzz_isolator_connect(const SandboxPlan *plan, int *ret_fd) {
        return -ECONNREFUSED;
}

static int fuzz_isolator_is_alive(const SandboxPlan *plan) {
        return 1;
}

static int fuzz_isolator_stats(const SandboxPlan *plan, SandboxUsage *ret) {
        return -ENOSYS;
}

static int fuzz_isolator_destroy(const SandboxPlan *plan) {
        return -ENOSYS;
}

static int fuzz_isolator_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata) {
        return -ENOSYS;
}

static const IsolatorOps fuzz_isolator = {
        .name = "fuzz",
        .init = fuzz_isolator_init,
        .available = fuzz_isolator_available,
        .create = fuzz_isolator_plan_op,
        .start = fuzz_isolator_plan_op,
        .connect = fuzz_isolator_connect,
        .is_alive = fuzz_isolator_is_alive,
        .stats = fuzz_isolator_stats,
        .destroy = fuzz_isolator_destroy,
        .reap_unknown = fuzz_isolator_reap_unknown,
};

static Sandbox *fixture_sandbox(const char *id, SandboxState state, const char *reason) {
        Sandbox *sb = sandbox_new(&manager, id);

        if (!sb)
                abort();
        sb->isolator = &fuzz_isolator;
        sb->image = strdup("host");
        sb->cwd = strdup("/root");
        sb->limits = (SandboxLimits){.cpus_milli = 1000, .memory_mb = 512, .pids = 256, .timeout_ms = 60000};
        json_object_set_new(sb->env, "FUZZ", json_string("1"));
        json_object_set_new(sb->metadata, "team", json_string("fuzz"));
        sandbox_set_state(sb, state, reason);
        return sb;
}

static char images_state[] = "/tmp/forge-fuzz-XXXXXX";

static void images_state_remove(void) {
        rm_rf(images_state);
}

static void fixture_setup(void) {
        static const char *const isolators[] = {"fuzz", NULL};
        ForgeError err = {0};

        /* The image registry is real: the host image, prepared in a directory of our own. */
        if (!mkdtemp(images_state)) {
                perror("mkdtemp");
                abort();
        }
        atexit(images_state_remove);
        manager = (Manager){
                .loop = &loop,
                .state_dir = images_state,
                .sandboxes_dir = "/nonexistent/forge-fuzz/sandboxes",
                .trash_dir = "/nonexistent/forge-fuzz/trash",
                .snapshots_dir = "/nonexistent/forge-fuzz/snapshots",
                .agent_path = "/nonexistent/forge-agent",
                .default_isolator = &fuzz_isolator,
                .max_sandboxes = 0,
                .sandboxes = sandboxes,
                .n_sandboxes = 2,
        };
        if (images_init(&manager, &err) < 0) {
                fprintf(stderr, "images_init: %s\n", err.message);
                abort();
        }
        sandboxes[0] = fixture_sandbox("fuzzbox", SANDBOX_RUNNING, NULL);
        sandboxes[1] = fixture_sandbox("stopped", SANDBOX_FAILED, "fuzz: \xff not UTF-8");
        api = (Api){.manager = &manager, .isolators = isolators};
}

/* Every call must give back the sandbox references it took. */
static void fixture_check(void) {
        if (manager.n_sandboxes != 2 || sandboxes[0]->n_ref != 1 || sandboxes[1]->n_ref != 1 ||
            sandboxes[0]->agent || sandboxes[1]->agent) {
                fprintf(stderr, "fixture changed: %zu sandboxes, refs %u %u\n", manager.n_sandboxes,
                        sandboxes[0]->n_ref, sandboxes[1]->n_ref);
                abort();
        }
}

static void route_match_small_buffers(const char *method, const char *path) {
        char id[8], allow[12];
        int status = 0;
        const ApiRoute *route = api_route_match(method, path, id, sizeof(id), &status, allow, sizeof(allow));

        if (!route && status != 404 && status != 405)
                abort();
        sink += strlen(id) + strlen(allow) + (route != NULL);
        route = api_route_match(method, path, id, sizeof(id), &status, NULL, 0);
        sink += strlen(id) + (route != NULL);
}

static void on_request(HttpRequest *req, void *userdata) {
        const char *method = http_request_method(req), *path = http_request_path(req);
        char id[256], allow[64];
        int status = 0;
        const ApiRoute *route = api_route_match(method, path, id, sizeof(id), &status, allow, sizeof(allow));

        route_match_small_buffers(method, path);
        /* Destroying would take the fixture's sandbox away (and queue work on the pool). */
        if (route && route->handler == api_sandbox_delete) {
                http_respond(req, 204, NULL, NULL, 0);
                return;
        }
        api_handle(req, userdata);
}

static bool never_busy(void) {
        return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        signal(SIGPIPE, SIG_IGN);
        log_setup(getenv("FUZZ_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
        if (uv_loop_init(&loop) < 0)
                abort();
        fixture_setup();
        if (http_server_new(&loop, NULL, on_request, &api, &server) < 0)
                abort();
        return 0;
}

/* "METHOD TARGET HTTP/1.1", a Content-Length and the body. */
static char *request_build(const char *method, size_t method_len, const char *target, size_t target_len,
                           const uint8_t *body, size_t body_len, size_t *ret_len) {
        char *text = NULL;
        int n = asprintf(&text, "%.*s %.*s HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", (int) method_len,
                         method, (int) target_len, target, body_len);
        char *all;

        if (n < 0)
                abort();
        all = malloc((size_t) n + body_len);
        if (!all)
                abort();
        memcpy(all, text, (size_t) n);
        if (body_len)
                memcpy(all + n, body, body_len);
        free(text);
        *ret_len = (size_t) n + body_len;
        return all;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t route, len;
        char *request;

        if (size < 1)
                return 0;
        route = data[0] % (ROUTE_RAW + 1);
        data++;
        size--;
        if (route == ROUTE_RAW) {
                const uint8_t *nl = memchr(data, '\n', size);
                const uint8_t *space = nl ? memchr(data, ' ', (size_t) (nl - data)) : NULL;

                if (!space)
                        return 0;
                request = request_build((const char *) data, (size_t) (space - data),
                                        (const char *) space + 1, (size_t) (nl - space - 1), nl + 1,
                                        size - (size_t) (nl + 1 - data), &len);
        } else
                request = request_build(fixed_routes[route].method, strlen(fixed_routes[route].method),
                                        fixed_routes[route].target, strlen(fixed_routes[route].target), data,
                                        size, &len);
        http_feed_run(&loop, server, (const uint8_t *) request, len, 0, never_busy);
        free(request);
        fixture_check();
        return 0;
}
