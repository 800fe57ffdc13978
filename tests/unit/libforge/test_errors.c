/* libforge's decoding of errors and answers, and its URL building, without a server.
 * The one network case uses a port nothing listens on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "libforge/internal.h"

static void test_error_from_server_body(void **state) {
        static const char body[] =
                "{\"error\": \"no sandbox with id abc\", \"code\": \"sandbox_not_found\"}";
        ForgeClientError err = {};

        assert_int_equal(forge__error_from_response(404, body, strlen(body), &err), -ENOENT);
        assert_int_equal(err.status, 404);
        assert_string_equal(err.code, "sandbox_not_found");
        assert_string_equal(err.message, "no sandbox with id abc");
}

static void test_error_codes_table(void **state) {
        assert_int_equal(forge__errno_from_code("file_exists", 409), EEXIST);
        assert_int_equal(forge__errno_from_code("directory_not_empty", 409), ENOTEMPTY);
        assert_int_equal(forge__errno_from_code("sandbox_not_running", 409), EBUSY);
        assert_int_equal(forge__errno_from_code("not_a_directory", 400), ENOTDIR);
        assert_int_equal(forge__errno_from_code("is_a_directory", 400), EISDIR);
        assert_int_equal(forge__errno_from_code("no_space", 507), ENOSPC);
        assert_int_equal(forge__errno_from_code("at_capacity", 503), EAGAIN);
        assert_int_equal(forge__errno_from_code("payload_too_large", 413), EFBIG);
        /* an unknown code falls back on the status */
        assert_int_equal(forge__errno_from_code("brand_new_code", 404), ENOENT);
        assert_int_equal(forge__errno_from_code("brand_new_code", 400), EINVAL);
        assert_int_equal(forge__errno_from_code(NULL, 418), EIO);
}

static void test_error_from_odd_bodies(void **state) {
        static const char html[] = "<html>Bad Gateway</html>\nmore";
        static const char only_code[] = "{\"code\": \"internal\"}";
        static const char wrong_types[] = "{\"error\": 5, \"code\": []}";
        ForgeClientError err = {};

        assert_int_equal(forge__error_from_response(502, html, strlen(html), &err), -EIO);
        assert_int_equal(err.status, 502);
        assert_string_equal(err.code, "http_error");
        assert_string_equal(err.message, "the server answered HTTP 502: <html>Bad Gateway</html>");

        err = (ForgeClientError){};
        assert_int_equal(forge__error_from_response(500, only_code, strlen(only_code), &err), -EIO);
        assert_string_equal(err.code, "internal");
        assert_string_equal(err.message, "the server gave no reason");

        err = (ForgeClientError){};
        assert_int_equal(forge__error_from_response(400, wrong_types, strlen(wrong_types), &err), -EINVAL);
        assert_string_equal(err.code, "http_error");

        err = (ForgeClientError){};
        assert_int_equal(forge__error_from_response(404, NULL, 0, &err), -ENOENT);
        assert_string_equal(err.message, "the server answered HTTP 404");

        /* binary junk is made printable */
        err = (ForgeClientError){};
        assert_int_equal(forge__error_from_response(500,
                                                    "a\x01\xff"
                                                    "b",
                                                    4, &err),
                         -EIO);
        assert_string_equal(err.message, "the server answered HTTP 500: a??b");

        /* err may be NULL */
        assert_int_equal(forge__error_from_response(409, NULL, 0, NULL), -EBUSY);
}

static void test_error_message_is_bounded(void **state) {
        char body[2048];
        ForgeClientError err = {};

        memset(body, 'x', sizeof(body));
        memcpy(body, "{\"error\":\"", 10);
        memcpy(body + sizeof(body) - 24, "\",\"code\":\"invalid_json\"}", 24);
        assert_int_equal(forge__error_from_response(400, body, sizeof(body), &err), -EINVAL);
        assert_string_equal(err.code, "invalid_json");
        assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
}

static void test_error_from_curl(void **state) {
        ForgeClientError err = {};

        assert_int_equal(forge__error_from_curl(CURLE_COULDNT_CONNECT, "", "http://127.0.0.1:9", &err),
                         -ECONNREFUSED);
        assert_string_equal(err.code, "connection_failed");
        assert_int_equal(err.status, 0);
        assert_non_null(strstr(err.message, "http://127.0.0.1:9"));

        err = (ForgeClientError){};
        assert_int_equal(forge__error_from_curl(CURLE_OPERATION_TIMEDOUT, "slow", "http://h", &err),
                         -ETIMEDOUT);
        assert_string_equal(err.code, "timeout");

        err = (ForgeClientError){};
        assert_int_equal(forge__error_from_curl(CURLE_ABORTED_BY_CALLBACK, NULL, "http://h", &err),
                         -ECANCELED);
        assert_string_equal(err.code, "interrupted");
}

/* A real request to a port that refuses connections. */
static void test_connection_refused(void **state) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(addr);
        char url[64], *json = NULL;
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        int fd;

        /* a port that was free a moment ago and has no listener */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &addr, sizeof(addr)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &addr, &len), 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(addr.sin_port));

        assert_int_equal(forge_client_new(url, &c, &err), 0);
        assert_int_equal(forge_health(c, &json, &err), -ECONNREFUSED);
        assert_null(json);
        assert_string_equal(err.code, "connection_failed");
        url[strlen(url) - 1] = 0; /* the client drops the trailing slash */
        assert_string_equal(forge_client_url(c), url);
        assert_non_null(strstr(err.message, url));
        forge_client_free(c);
        close(fd);
}

static void test_client_rejects_bad_input(void **state) {
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        ForgeSandbox sb = {};

        assert_int_equal(forge_client_new("", &c, &err), -EINVAL);
        assert_string_equal(err.code, "invalid_argument");
        assert_int_equal(forge_client_new("http://127.0.0.1:1", &c, &err), 0);
        err = (ForgeClientError){};
        assert_int_equal(forge_sandbox_get(c, "", &sb, &err), -EINVAL);
        assert_string_equal(err.code, "invalid_argument");
        err = (ForgeClientError){};
        assert_int_equal(forge_file_remove(c, "abc", "", false, &err), -EINVAL);
        forge_client_free(c);
        forge_client_free(NULL);
        forge_sandbox_clear(NULL);
        forge_result_clear(NULL);
}

static void test_url_escape(void **state) {
        _cleanup_free_ char *a = forge__url_escape("/tmp/a b&c=d?#%+é");
        _cleanup_free_ char *p = NULL, *f = NULL;

        assert_string_equal(a, "%2Ftmp%2Fa%20b%26c%3Dd%3F%23%25%2B%C3%A9");
        assert_int_equal(forge__sandbox_path("ab/../x", "/shell", &p), 0);
        assert_string_equal(p, "/v1/sandboxes/ab%2F..%2Fx/shell");
        assert_int_equal(forge__file_path("sb1", "files", "/a&recursive=1", NULL, &f), 0);
        assert_string_equal(f, "/v1/sandboxes/sb1/files?path=%2Fa%26recursive%3D1");
        free(TAKE_PTR(f));
        assert_int_equal(forge__file_path("sb1", "files", "d", "&recursive=1", &f), 0);
        assert_string_equal(f, "/v1/sandboxes/sb1/files?path=d&recursive=1");
        assert_int_equal(forge__sandbox_path("", NULL, &p), -EINVAL);
}

static void test_result_decoding(void **state) {
        static const char text[] =
                "{\"success\": false, \"stdout\": \"a\\u0000b\", \"stderr\": \"oops\\n\", \"exitCode\": "
                "137, "
                "\"exit_code\": 137, \"executionTime\": 12, \"execution_time_ms\": 12, \"timedOut\": false, "
                "\"truncated\": true, \"oomKilled\": true, \"signal\": \"SIGKILL\"}";
        _cleanup_json_ json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL);
        _cleanup_json_ json_t *bad = json_loads("{\"stdout\": \"x\"}", 0, NULL);
        ForgeClientError err = {};
        ForgeResult r = {};

        assert_non_null(j);
        assert_int_equal(forge__result_from_json(j, &r, &err), 0);
        assert_int_equal(r.stdout_buf.size, 3);
        assert_memory_equal(r.stdout_buf.data, "a\0b", 3);
        assert_string_equal(r.stderr_buf.data, "oops\n");
        assert_int_equal(r.exit_code, 137);
        assert_int_equal(r.signal, SIGKILL);
        assert_true(r.truncated);
        assert_true(r.oom_killed);
        assert_false(r.timed_out);
        assert_int_equal(r.execution_ms, 12);
        forge_result_clear(&r);
        forge_result_clear(&r);

        assert_int_equal(forge__result_from_json(bad, &r, &err), -EPROTO);
        assert_string_equal(err.code, "bad_response");
        assert_int_equal(forge__signal_from_name("TERM"), SIGTERM);
        assert_int_equal(forge__signal_from_name("SIGNOPE"), 0);
        assert_int_equal(forge__signal_from_name(NULL), 0);
}

static void test_sandbox_decoding(void **state) {
        static const char text[] =
                "{\"id\": \"k3h9x2m4q7\", \"status\": \"running\", \"image\": \"host\", \"isolator\": "
                "\"ns\", "
                "\"name\": null, \"metadata\": {}, \"env\": {}, \"cwd\": \"/root\", "
                "\"limits\": {\"cpus\": 0.5, \"memory_mb\": 512, \"pids\": 256, \"timeout_ms\": 60000}, "
                "\"created_at\": \"2026-11-22T07:00:00.000Z\", \"updated_at\": "
                "\"2026-11-22T07:00:00.000Z\"}";
        _cleanup_json_ json_t *j = json_loads(text, 0, NULL);
        _cleanup_json_ json_t *noid = json_loads("{\"status\": \"running\"}", 0, NULL);
        ForgeClientError err = {};
        ForgeSandbox sb = {};

        assert_int_equal(forge__sandbox_from_json(j, &sb, &err), 0);
        assert_string_equal(sb.id, "k3h9x2m4q7");
        assert_string_equal(sb.status, "running");
        assert_null(sb.name);
        assert_null(sb.reason);
        assert_true(sb.limits.cpus == 0.5);
        assert_int_equal(sb.limits.memory_mb, 512);
        assert_int_equal(sb.limits.timeout_ms, 60000);
        assert_non_null(strstr(sb.json, "\"k3h9x2m4q7\""));
        forge_sandbox_clear(&sb);
        assert_int_equal(forge__sandbox_from_json(noid, &sb, &err), -EPROTO);
}

static void test_file_info_decoding(void **state) {
        _cleanup_json_ json_t *j =
                json_loads("{\"path\": \"/l\", \"name\": \"l\", \"type\": \"symlink\", "
                           "\"size\": 4, \"mode\": 511, \"mtime\": \"t\", \"link_target\": \"/x\"}",
                           0, NULL);
        ForgeClientError err = {};
        ForgeFileInfo info = {};

        assert_int_equal(forge__file_info_from_json(j, &info, &err), 0);
        assert_int_equal(info.type, FORGE_FILE_SYMLINK);
        assert_string_equal(forge_file_type_to_string(info.type), "symlink");
        assert_int_equal(info.mode, 0777);
        assert_int_equal(info.size, 4);
        assert_string_equal(info.link_target, "/x");
        forge_file_info_clear(&info);
}

static void test_pairs(void **state) {
        _cleanup_json_ json_t *obj = json_object();
        const char *good[] = {"A=1", "B=", "C=x=y", NULL};
        const char *bad[] = {"NOEQ", NULL};
        ForgeClientError err = {};

        assert_int_equal(forge__json_add_pairs(obj, good, "env", &err), 0);
        assert_string_equal(json_string_value(json_object_get(obj, "B")), "");
        assert_string_equal(json_string_value(json_object_get(obj, "C")), "x=y");
        assert_int_equal(forge__json_add_pairs(obj, bad, "env", &err), -EINVAL);
        assert_string_equal(err.code, "invalid_argument");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_from_server_body),
                cmocka_unit_test(test_error_codes_table),
                cmocka_unit_test(test_error_from_odd_bodies),
                cmocka_unit_test(test_error_message_is_bounded),
                cmocka_unit_test(test_error_from_curl),
                cmocka_unit_test(test_connection_refused),
                cmocka_unit_test(test_client_rejects_bad_input),
                cmocka_unit_test(test_url_escape),
                cmocka_unit_test(test_result_decoding),
                cmocka_unit_test(test_sandbox_decoding),
                cmocka_unit_test(test_file_info_decoding),
                cmocka_unit_test(test_pairs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
