/* Unit tests for the API layer: routing, the error table, body validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/api/api.h"

static void expect_route(const char *method, const char *path, ApiHandler handler, const char *want_id) {
        char id[64];
        int status = 0;
        const ApiRoute *r = api_route_match(method, path, id, sizeof(id), &status, NULL, 0);

        assert_non_null(r);
        assert_ptr_equal(r->handler, handler);
        assert_string_equal(id, want_id);
}

static void expect_no_route(const char *method, const char *path, int want_status) {
        char id[64];
        int status = 0;

        assert_null(api_route_match(method, path, id, sizeof(id), &status, NULL, 0));
        assert_int_equal(status, want_status);
}

static void test_routes_match(void **state) {
        expect_route("GET", "/health", api_health, "");
        expect_route("POST", "/v1/sandboxes", api_sandbox_create, "");
        expect_route("POST", "/v1/sandbox", api_sandbox_create, "");
        expect_route("GET", "/v1/sandboxes/", api_sandbox_list, "");
        expect_route("GET", "/v1/sandboxes/abc123", api_sandbox_get, "abc123");
        expect_route("DELETE", "/v1/sandbox/abc123", api_sandbox_delete, "abc123");
        expect_route("POST", "/v1/sandbox/abc/shell", api_shell, "abc");
        expect_route("POST", "/v1/sandboxes/abc/execute", api_execute, "abc");
        expect_route("POST", "/v1/sandbox/abc/upload", api_upload, "abc");
        expect_route("GET", "/v1/sandbox/abc/download", api_download, "abc");
        expect_route("GET", "/v1/sandboxes/abc/files", api_download, "abc");
        expect_route("PUT", "/v1/sandboxes/abc/files", api_files_put, "abc");
        expect_route("DELETE", "/v1/sandboxes/abc/files", api_files_delete, "abc");
        expect_route("GET", "/v1/sandboxes/abc/files/list", api_files_list, "abc");
        expect_route("GET", "/v1/sandboxes/abc/files/stat", api_files_stat, "abc");
        expect_route("POST", "/v1/sandboxes/abc/files/mkdir", api_files_mkdir, "abc");
        expect_route("POST", "/v1/sandboxes/abc/processes", api_process_start, "abc");
        expect_route("GET", "/v1/sandboxes/abc/processes", api_process_list, "abc");
        expect_route("GET", "/v1/sandboxes/abc/processes/12", api_process_get, "abc");
        expect_route("DELETE", "/v1/sandbox/abc/processes/12", api_process_kill, "abc");
        expect_route("GET", "/v1/sandboxes/abc/processes/12/output", api_process_output, "abc");
        expect_route("POST", "/v1/sandboxes/abc/processes/12/stdin", api_process_stdin, "abc");
        expect_route("POST", "/v1/sandboxes/abc/processes/12/signal", api_process_signal, "abc");
        expect_route("GET", "/v1/sandboxes/abc/processes/12/attach", api_process_attach, "abc");
}

static void test_routes_refuse(void **state) {
        expect_no_route("GET", "/", 404);
        expect_no_route("GET", "/v1/sandboxesx", 404);
        expect_no_route("GET", "/v1/sandboxes/abc/nope", 404);
        expect_no_route("GET", "/v1/sandboxes//shell", 404);
        expect_no_route("GET", "/v1/sandboxes/abc/shell/extra", 404);
        expect_no_route("PATCH", "/v1/sandboxes/abc", 405);
        expect_no_route("GET", "/v1/sandboxes/abc/shell", 405);
        expect_no_route("POST", "/health", 405);
        expect_no_route("GET", "/v1/sandboxes/abc/processes//output", 404);
        expect_no_route("GET", "/v1/sandboxes/abc/processes/12/nope", 404);
        expect_no_route("PUT", "/v1/sandboxes/abc/processes/12", 405);
}

static void test_route_id_too_long_is_404(void **state) {
        char id[8];
        int status = 0;

        assert_null(api_route_match("GET", "/v1/sandboxes/0123456789abcdef", id, sizeof(id), &status, NULL, 0));
        assert_int_equal(status, 404);
}

static void test_route_405_lists_allowed_methods(void **state) {
        char id[64], allow[64];
        int status = 0;

        assert_null(api_route_match("PATCH", "/v1/sandboxes/abc/files", id, sizeof(id), &status, allow,
                                    sizeof(allow)));
        assert_int_equal(status, 405);
        assert_string_equal(allow, "GET, PUT, DELETE");
}

static void test_error_table(void **state) {
        assert_int_equal(api_error_status("invalid_json"), 400);
        assert_int_equal(api_error_status("invalid_request"), 400);
        assert_int_equal(api_error_status("sandbox_not_found"), 404);
        assert_int_equal(api_error_status("path_not_found"), 404);
        assert_int_equal(api_error_status("method_not_allowed"), 405);
        assert_int_equal(api_error_status("sandbox_not_running"), 409);
        assert_int_equal(api_error_status("payload_too_large"), 413);
        assert_int_equal(api_error_status("at_capacity"), 503);
        assert_int_equal(api_error_status("no_space"), 507);
        assert_int_equal(api_error_status("no_such_code_at_all"), 500);
}

static void test_validate_fields(void **state) {
        static const char *const allowed[] = {"a", "b", NULL};
        json_t *obj = json_pack("{s:i, s:s}", "a", 1, "b", "x");
        ForgeError err = {0};
        const char *s;
        int64_t i = -1;
        bool flag = false;

        assert_int_equal(json_only_fields(obj, allowed, "", &err), 0);
        json_object_set_new(obj, "c", json_true());
        assert_int_equal(json_only_fields(obj, allowed, "limits.", &err), -EINVAL);
        assert_string_equal(err.code, "invalid_request");
        assert_non_null(strstr(err.message, "limits.c"));

        err = (ForgeError){0};
        assert_int_equal(json_get_string(obj, "a", false, &s, &err), -EINVAL);
        err = (ForgeError){0};
        assert_int_equal(json_get_string(obj, "zz", true, &s, &err), -EINVAL);
        err = (ForgeError){0};
        assert_int_equal(json_get_string(obj, "zz", false, &s, &err), 0);
        assert_null(s);
        assert_int_equal(json_get_int(obj, "a", 0, 10, &i, &err), 0);
        assert_int_equal(i, 1);
        assert_int_equal(json_get_int(obj, "a", 5, 10, &i, &err), -EINVAL);
        err = (ForgeError){0};
        assert_int_equal(json_get_int(obj, "b", 0, 10, &i, &err), -EINVAL);
        err = (ForgeError){0};
        assert_int_equal(json_get_bool(obj, "c", &flag, &err), 0);
        assert_true(flag);
        json_decref(obj);
}

static void test_validate_string_map(void **state) {
        json_t *ok = json_pack("{s:{s:s}}", "env", "K", "V");
        json_t *bad = json_pack("{s:{s:i}}", "env", "K", 1);
        ForgeError err = {0};
        json_t *map;

        assert_int_equal(json_get_string_map(ok, "env", 10, &map, &err), 0);
        assert_non_null(map);
        assert_int_equal(json_get_string_map(bad, "env", 10, &map, &err), -EINVAL);
        json_decref(ok);
        json_decref(bad);
}

static void test_resolve_path(void **state) {
        ForgeError err = {0};
        char *p = NULL, longp[5000];

        assert_int_equal(api_resolve_path("a/b", "/root", &p, &err), 0);
        assert_string_equal(p, "/root/a/b");
        free(p);
        assert_int_equal(api_resolve_path("/etc/x", "/root", &p, &err), 0);
        assert_string_equal(p, "/etc/x");
        free(p);
        assert_int_equal(api_resolve_path("", "/root", &p, &err), -EINVAL);
        assert_string_equal(err.code, "invalid_path");
        memset(longp, 'a', sizeof(longp) - 1);
        longp[sizeof(longp) - 1] = 0;
        err = (ForgeError){0};
        assert_int_equal(api_resolve_path(longp, "/root", &p, &err), -EINVAL);
        assert_string_equal(err.code, "invalid_path");
}

static void test_json_string_lossy(void **state) {
        json_t *j = api_json_string("a\xff");

        assert_non_null(j);
        assert_string_equal(json_string_value(j), "a\xEF\xBF\xBD");
        json_decref(j);
        j = api_json_string(NULL);
        assert_true(json_is_null(j));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_routes_match),        cmocka_unit_test(test_routes_refuse),
                cmocka_unit_test(test_route_id_too_long_is_404),
                cmocka_unit_test(test_route_405_lists_allowed_methods), cmocka_unit_test(test_error_table),
                cmocka_unit_test(test_validate_fields),     cmocka_unit_test(test_validate_string_map),
                cmocka_unit_test(test_resolve_path),        cmocka_unit_test(test_json_string_lossy),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
