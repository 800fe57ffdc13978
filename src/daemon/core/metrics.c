/* The metrics registry: fixed counters and histograms, API errors by code, and the
 * Prometheus text exposition (format 0.0.4) written by hand: HELP and TYPE lines, one
 * sample per line, histograms as cumulative `_bucket{le}` lines ending with +Inf, then
 * `_sum` and `_count`. Loop thread only (metrics.h). */
#include "daemon/core/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macros.h"
#include "basic/time-util.h"
#include "daemon/core/manager.h"
#include "daemon/core/pool.h"

#define BUCKETS_MAX 16
/* Distinct error codes kept apart; more than this (there are ~30) count as "other". */
#define ERROR_CODES_MAX 64

const char *const metrics_states[METRICS_STATES_MAX] = {"creating", "running", "suspended", "failed"};

typedef struct CounterInfo {
        const char *name, *help;
} CounterInfo;

static const CounterInfo counter_info[_METRIC_COUNTER_MAX] = {
        [METRIC_CREATES] = {"forge_sandbox_creates_total", "Sandboxes created (reached running)."},
        [METRIC_CREATE_FAILURES] = {"forge_sandbox_create_failures_total",
                                    "Sandbox creations that failed after being accepted."},
        [METRIC_DESTROYS] = {"forge_sandbox_destroys_total", "Sandboxes destroyed."},
        [METRIC_SUSPENDS] = {"forge_sandbox_suspends_total", "Sandboxes suspended."},
        [METRIC_RESUMES] = {"forge_sandbox_resumes_total", "Sandboxes resumed."},
        [METRIC_HIBERNATES] = {"forge_sandbox_hibernations_total",
                               "Sandboxes hibernated (machine saved to disk)."},
        [METRIC_HTTP_REQUESTS] = {"forge_http_requests_total", "HTTP requests routed by the API."},
};

typedef struct HistogramInfo {
        const char *name, *help;
        double bounds[BUCKETS_MAX]; /* upper bounds, ascending; +Inf is implied */
        size_t n_bounds;
} HistogramInfo;

static const HistogramInfo histogram_info[_METRIC_HISTOGRAM_MAX] = {
        [METRIC_CREATE_SECONDS] = {"forge_create_seconds", "Time from accepting a create to the sandbox running.",
                                   {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}, 10},
        [METRIC_EXEC_SECONDS] = {"forge_exec_seconds", "Round trip of shell and execute commands.",
                                 {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}, 14},
        [METRIC_RESUME_SECONDS] = {"forge_resume_seconds", "Time to resume a suspended sandbox.",
                                   {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, 10},
};

typedef struct Histogram {
        uint64_t buckets[BUCKETS_MAX + 1]; /* per bucket, not cumulative; the last is +Inf */
        uint64_t count;
        double sum;
} Histogram;

typedef struct ErrorCount {
        char code[48];
        uint64_t count;
} ErrorCount;

static uint64_t counters[_METRIC_COUNTER_MAX];
static Histogram histograms[_METRIC_HISTOGRAM_MAX];
static ErrorCount errors[ERROR_CODES_MAX];
static size_t n_errors;

void metrics_count(MetricCounter c) {
        if (c >= 0 && c < _METRIC_COUNTER_MAX)
                counters[c]++;
}

void metrics_count_error(const char *code) {
        size_t i;

        for (i = 0; i < n_errors; i++)
                if (strcmp(errors[i].code, code) == 0)
                        break;
        if (i == n_errors) {
                if (n_errors == ERROR_CODES_MAX)
                        i = n_errors - 1; /* the last slot is "other" once the table is full */
                else {
                        snprintf(errors[i].code, sizeof(errors[i].code), "%s",
                                 n_errors == ERROR_CODES_MAX - 1 ? "other" : code);
                        n_errors++;
                }
        }
        errors[i].count++;
}

void metrics_observe(MetricHistogram h, double seconds) {
        const HistogramInfo *info;
        size_t b = 0;

        if (h < 0 || h >= _METRIC_HISTOGRAM_MAX)
                return;
        info = &histogram_info[h];
        while (b < info->n_bounds && seconds > info->bounds[b])
                b++;
        histograms[h].buckets[b]++;
        histograms[h].count++;
        histograms[h].sum += seconds;
}

void metrics_observe_since(MetricHistogram h, int64_t start_mono_ms) {
        metrics_observe(h, (double) (time_mono_ms() - start_mono_ms) / 1000.0);
}

void metrics_reset(void) {
        memset(counters, 0, sizeof(counters));
        memset(histograms, 0, sizeof(histograms));
        memset(errors, 0, sizeof(errors));
        n_errors = 0;
}

void metrics_gauges_from_manager(const Manager *m, MetricsGauges *ret) {
        *ret = (MetricsGauges){.version = NULL};
        for (size_t i = 0; i < m->n_sandboxes; i++) {
                const char *state = sandbox_state_to_string(m->sandboxes[i]->state);
                for (size_t s = 0; s < METRICS_STATES_MAX; s++)
                        if (state && strcmp(state, metrics_states[s]) == 0)
                                ret->sandboxes[s]++;
        }
        ret->pool_size = pool_ready(m);
}

/* The shortest of %.15g/%.17g that reads back exactly: "0.25", not 0.25000000000000000. */
static void number_print(FILE *f, double v) {
        char buf[32];

        snprintf(buf, sizeof(buf), "%.15g", v);
        if (strtod(buf, NULL) != v)
                snprintf(buf, sizeof(buf), "%.17g", v);
        fputs(buf, f);
}

/* A label value with the escapes the format requires: backslash, quote, newline. */
static void label_print(FILE *f, const char *s) {
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fprintf(f, "\\%c", *s);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

static void header_print(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram_print(FILE *f, MetricHistogram h) {
        const HistogramInfo *info = &histogram_info[h];
        const Histogram *hist = &histograms[h];
        uint64_t cumulative = 0;

        header_print(f, info->name, "histogram", info->help);
        for (size_t b = 0; b < info->n_bounds; b++) {
                cumulative += hist->buckets[b];
                fprintf(f, "%s_bucket{le=\"", info->name);
                number_print(f, info->bounds[b]);
                fprintf(f, "\"} %" PRIu64 "\n", cumulative);
        }
        fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum ", info->name, hist->count, info->name);
        number_print(f, hist->sum);
        fprintf(f, "\n%s_count %" PRIu64 "\n", info->name, hist->count);
}

static void gauges_print(FILE *f, const MetricsGauges *g) {
        header_print(f, "forge_build_info", "gauge", "Always 1; the version is in the label.");
        fputs("forge_build_info{version=\"", f);
        label_print(f, g->version ? g->version : "unknown");
        fputs("\"} 1\n", f);
        header_print(f, "forge_sandboxes", "gauge", "Sandboxes in the registry, by state.");
        for (size_t s = 0; s < METRICS_STATES_MAX; s++)
                fprintf(f, "forge_sandboxes{state=\"%s\"} %u\n", metrics_states[s], g->sandboxes[s]);
        header_print(f, "forge_pool_size", "gauge", "Warm sandboxes waiting in the pool.");
        fprintf(f, "forge_pool_size %u\n", g->pool_size);
}

static void counters_print(FILE *f) {
        for (size_t c = 0; c < _METRIC_COUNTER_MAX; c++) {
                header_print(f, counter_info[c].name, "counter", counter_info[c].help);
                fprintf(f, "%s %" PRIu64 "\n", counter_info[c].name, counters[c]);
        }
        header_print(f, "forge_api_errors_total", "counter", "API error answers, by error code.");
        for (size_t i = 0; i < n_errors; i++) {
                fputs("forge_api_errors_total{code=\"", f);
                label_print(f, errors[i].code);
                fprintf(f, "\"} %" PRIu64 "\n", errors[i].count);
        }
}

int metrics_render(const MetricsGauges *gauges, char **ret, size_t *ret_len) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return -ENOMEM;
        gauges_print(f, gauges);
        counters_print(f);
        for (size_t h = 0; h < _METRIC_HISTOGRAM_MAX; h++)
                histogram_print(f, (MetricHistogram) h);
        if (fclose(f) != 0 || !text) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        *ret_len = len;
        return 0;
}
