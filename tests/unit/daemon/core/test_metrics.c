/* core/metrics.c: counting, histogram buckets and the exact Prometheus text they render. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/metrics.h"

/* The rendered lines of one metric family: from its HELP line to the next HELP. */
static char *family(const MetricsGauges *g, const char *name) {
        char *text = NULL, *start, *end, *out, head[128];
        size_t len = 0;

        assert_int_equal(metrics_render(g, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        snprintf(head, sizeof(head), "# HELP %s ", name);
        start = strstr(text, head);
        assert_non_null(start);
        end = strstr(start + 1, "# HELP ");
        out = strndup(start, end ? (size_t) (end - start) : strlen(start));
        free(text);
        return out;
}

static void assert_family(const MetricsGauges *g, const char *name, const char *expected) {
        char *got = family(g, name);

        assert_string_equal(got, expected);
        free(got);
}

static int setup(void **state) {
        metrics_reset();
        return 0;
}

static void test_histogram_buckets_are_cumulative(void **state) {
        MetricsGauges g = {.version = "1.2.3"};

        metrics_observe(METRIC_CREATE_SECONDS, 0.05); /* on a bound: in that bucket (le) */
        metrics_observe(METRIC_CREATE_SECONDS, 0.75);
        metrics_observe(METRIC_CREATE_SECONDS, 100); /* past the last bound: only +Inf */
        assert_family(&g, "forge_create_seconds",
                      "# HELP forge_create_seconds Time from accepting a create to the sandbox running.\n"
                      "# TYPE forge_create_seconds histogram\n"
                      "forge_create_seconds_bucket{le=\"0.05\"} 1\n"
                      "forge_create_seconds_bucket{le=\"0.1\"} 1\n"
                      "forge_create_seconds_bucket{le=\"0.25\"} 1\n"
                      "forge_create_seconds_bucket{le=\"0.5\"} 1\n"
                      "forge_create_seconds_bucket{le=\"1\"} 2\n"
                      "forge_create_seconds_bucket{le=\"2.5\"} 2\n"
                      "forge_create_seconds_bucket{le=\"5\"} 2\n"
                      "forge_create_seconds_bucket{le=\"10\"} 2\n"
                      "forge_create_seconds_bucket{le=\"30\"} 2\n"
                      "forge_create_seconds_bucket{le=\"60\"} 2\n"
                      "forge_create_seconds_bucket{le=\"+Inf\"} 3\n"
                      "forge_create_seconds_sum 100.8\n"
                      "forge_create_seconds_count 3\n");
}

static void test_empty_histogram(void **state) {
        MetricsGauges g = {.version = "1.2.3"};

        assert_family(&g, "forge_resume_seconds",
                      "# HELP forge_resume_seconds Time to resume a suspended sandbox.\n"
                      "# TYPE forge_resume_seconds histogram\n"
                      "forge_resume_seconds_bucket{le=\"0.01\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"0.025\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"0.05\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"0.1\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"0.25\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"0.5\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"1\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"2.5\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"5\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"10\"} 0\n"
                      "forge_resume_seconds_bucket{le=\"+Inf\"} 0\n"
                      "forge_resume_seconds_sum 0\n"
                      "forge_resume_seconds_count 0\n");
}

static void test_counters(void **state) {
        MetricsGauges g = {.version = "1.2.3"};

        metrics_count(METRIC_CREATES);
        metrics_count(METRIC_CREATES);
        metrics_count(METRIC_SUSPENDS);
        assert_family(&g, "forge_sandbox_creates_total",
                      "# HELP forge_sandbox_creates_total Sandboxes created (reached running).\n"
                      "# TYPE forge_sandbox_creates_total counter\n"
                      "forge_sandbox_creates_total 2\n");
        assert_family(&g, "forge_sandbox_suspends_total",
                      "# HELP forge_sandbox_suspends_total Sandboxes suspended.\n"
                      "# TYPE forge_sandbox_suspends_total counter\n"
                      "forge_sandbox_suspends_total 1\n");
        assert_family(&g, "forge_sandbox_resumes_total",
                      "# HELP forge_sandbox_resumes_total Sandboxes resumed.\n"
                      "# TYPE forge_sandbox_resumes_total counter\n"
                      "forge_sandbox_resumes_total 0\n");
}

static void test_errors_by_code(void **state) {
        MetricsGauges g = {.version = "1.2.3"};

        metrics_count_error("sandbox_not_found");
        metrics_count_error("invalid_json");
        metrics_count_error("sandbox_not_found");
        metrics_count_error("odd\"co\\de\n");
        assert_family(&g, "forge_api_errors_total",
                      "# HELP forge_api_errors_total API error answers, by error code.\n"
                      "# TYPE forge_api_errors_total counter\n"
                      "forge_api_errors_total{code=\"sandbox_not_found\"} 2\n"
                      "forge_api_errors_total{code=\"invalid_json\"} 1\n"
                      "forge_api_errors_total{code=\"odd\\\"co\\\\de\\n\"} 1\n");
}

static void test_error_table_overflows_into_other(void **state) {
        MetricsGauges g = {.version = "x"};
        char code[32], *text;

        for (int i = 0; i < 100; i++) {
                snprintf(code, sizeof(code), "code_%d", i);
                metrics_count_error(code);
        }
        text = family(&g, "forge_api_errors_total");
        assert_non_null(strstr(text, "forge_api_errors_total{code=\"code_62\"} 1\n"));
        assert_null(strstr(text, "code_63"));
        assert_non_null(strstr(text, "forge_api_errors_total{code=\"other\"} 37\n"));
        free(text);
}

static void test_gauges(void **state) {
        MetricsGauges g = {.sandboxes = {1, 2, 0, 3}, .pool_size = 0, .version = "0.1.0"};

        assert_family(&g, "forge_build_info",
                      "# HELP forge_build_info Always 1; the version is in the label.\n"
                      "# TYPE forge_build_info gauge\n"
                      "forge_build_info{version=\"0.1.0\"} 1\n");
        assert_family(&g, "forge_sandboxes",
                      "# HELP forge_sandboxes Sandboxes in the registry, by state.\n"
                      "# TYPE forge_sandboxes gauge\n"
                      "forge_sandboxes{state=\"creating\"} 1\n"
                      "forge_sandboxes{state=\"running\"} 2\n"
                      "forge_sandboxes{state=\"suspended\"} 0\n"
                      "forge_sandboxes{state=\"failed\"} 3\n");
        assert_family(&g, "forge_pool_size",
                      "# HELP forge_pool_size Warm sandboxes waiting in the pool.\n"
                      "# TYPE forge_pool_size gauge\n"
                      "forge_pool_size 0\n");
}

/* Every line is a comment or "name[{labels}] value", and the text ends with a newline. */
static void test_every_line_is_well_formed(void **state) {
        MetricsGauges g = {.version = "0.1.0"};
        char *text = NULL, *line, *save = NULL;
        size_t len = 0, samples = 0;

        metrics_observe(METRIC_EXEC_SECONDS, 0.003);
        assert_int_equal(metrics_render(&g, &text, &len), 0);
        assert_true(len > 0 && text[len - 1] == '\n');
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *space = strrchr(line, ' ');
                if (line[0] == '#') {
                        assert_true(strncmp(line, "# HELP forge_", 13) == 0 || strncmp(line, "# TYPE forge_", 13) == 0);
                        continue;
                }
                assert_true(strncmp(line, "forge_", 6) == 0);
                assert_non_null(space);
                assert_true(space[1] >= '0' && space[1] <= '9');
                samples++;
        }
        assert_true(samples > 40);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_histogram_buckets_are_cumulative, setup),
                cmocka_unit_test_setup(test_empty_histogram, setup),
                cmocka_unit_test_setup(test_counters, setup),
                cmocka_unit_test_setup(test_errors_by_code, setup),
                cmocka_unit_test_setup(test_error_table_overflows_into_other, setup),
                cmocka_unit_test_setup(test_gauges, setup),
                cmocka_unit_test_setup(test_every_line_is_well_formed, setup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
