/* GET /metrics: the Prometheus text exposition (docs/observability.md). */
#include <stdlib.h>

#include "daemon/api/api.h"
#include "daemon/core/metrics.h"

void api_metrics(ApiCall *call) {
        MetricsGauges gauges;
        char *text = NULL;
        size_t len = 0;

        metrics_gauges_from_manager(call->api->manager, &gauges);
        gauges.version = FORGE_VERSION;
        if (metrics_render(&gauges, &text, &len) < 0)
                return api_fail(call, "internal", "out of memory");
        http_respond(call->req, 200, "text/plain; version=0.0.4", text, len);
        free(text);
        api_call_free(call);
}
