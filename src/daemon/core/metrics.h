/* Counters and histograms for GET /metrics (Prometheus text format 0.0.4), and the
 * rendering of them. Everything here runs on the libuv loop thread, as do all its
 * callers (API handlers, the manager's after-work callbacks), so there are no locks:
 * do not call these from a thread-pool work function. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Manager Manager;

typedef enum MetricCounter {
        METRIC_CREATES,         /* sandboxes that reached `running` */
        METRIC_CREATE_FAILURES, /* creations that failed after being accepted */
        METRIC_DESTROYS,
        METRIC_SUSPENDS,
        METRIC_RESUMES,
        METRIC_HIBERNATES,
        METRIC_HTTP_REQUESTS,
        _METRIC_COUNTER_MAX,
} MetricCounter;

typedef enum MetricHistogram {
        METRIC_CREATE_SECONDS, /* POST /v1/sandboxes accepted -> running */
        METRIC_EXEC_SECONDS,   /* shell/execute: command started -> result ready */
        METRIC_RESUME_SECONDS,
        _METRIC_HISTOGRAM_MAX,
} MetricHistogram;

/* The `forge_sandboxes{state}` labels, in output order. */
#define METRICS_STATES_MAX 4
extern const char *const metrics_states[METRICS_STATES_MAX];

/* Values read at scrape time rather than counted. */
typedef struct MetricsGauges {
        unsigned sandboxes[METRICS_STATES_MAX]; /* per metrics_states[] */
        unsigned pool_size;
        const char *version;
} MetricsGauges;

void metrics_count(MetricCounter c);
/* One API error answered with this code (api_respond_error). */
void metrics_count_error(const char *code);
void metrics_observe(MetricHistogram h, double seconds);
/* Observes time_mono_ms() - start_mono_ms. */
void metrics_observe_since(MetricHistogram h, int64_t start_mono_ms);
/* Back to zero (tests). */
void metrics_reset(void);

/* Counts the registry's sandboxes by state; states outside metrics_states[] are left out. */
void metrics_gauges_from_manager(const Manager *m, MetricsGauges *ret);
/* The whole exposition, NUL-terminated; the caller frees *ret. 0 or -ENOMEM. */
int metrics_render(const MetricsGauges *gauges, char **ret, size_t *ret_len);
