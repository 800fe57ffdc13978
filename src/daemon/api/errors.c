/* The one table from error codes to HTTP statuses (STYLE.md 4). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "basic/log.h"
#include "daemon/api/api.h"
#include "daemon/core/metrics.h"

static const struct {
        const char *code;
        int status;
} error_statuses[] = {
        {"invalid_json", 400},
        {"invalid_request", 400},
        {"invalid_path", 400},
        {"unsupported_runtime", 400},
        {"not_a_directory", 400},
        {"is_a_directory", 400},
        {"not_a_regular_file", 400},
        {"spawn_failed", 400},
        {"invalid_recipe", 400},
        {"invalid_archive", 400},
        {"not_supported", 400},
        {"permission_denied", 403},
        {"not_found", 404},
        {"sandbox_not_found", 404},
        {"path_not_found", 404},
        {"image_not_found", 404},
        {"recipe_not_found", 404},
        {"process_not_found", 404},
        {"snapshot_not_found", 404},
        {"method_not_allowed", 405},
        {"sandbox_not_running", 409},
        {"sandbox_busy", 409},
        {"file_exists", 409},
        {"directory_not_empty", 409},
        {"process_not_running", 409},
        {"stdin_closed", 409},
        {"snapshot_incompatible", 409},
        {"no_pty", 409},
        {"image_exists", 409},
        {"image_busy", 409},
        {"image_in_use", 409},
        {"payload_too_large", 413},
        {"header_too_large", 431},
        {"at_capacity", 503},
        {"agent_unavailable", 503},
        {"isolator_unavailable", 503},
        {"no_space", 507},
        {"isolator_failed", 500},
        {"build_failed", 500},
        {"internal", 500},
};

int api_error_status(const char *code) {
        for (size_t i = 0; i < ELEMENTSOF(error_statuses); i++)
                if (strcmp(error_statuses[i].code, code) == 0)
                        return error_statuses[i].status;
        return 500;
}

void api_respond_json(ApiCall *call, int status, json_t *body) {
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

        if (body && !text)
                http_respond(call->req, 500, "application/json",
                             "{\"error\":\"out of memory\",\"code\":\"internal\"}", 42);
        else if (text)
                http_respond(call->req, status, "application/json", text, strlen(text));
        else
                http_respond(call->req, status, NULL, NULL, 0);
        free(text);
        json_decref(body);
        api_call_free(call);
}

void api_respond_error(ApiCall *call, const ForgeError *err) {
        const char *code = err && err->code[0] ? err->code : "internal";
        const char *message = err && err->message[0] ? err->message : "internal error";
        int status = api_error_status(code);
        json_t *body = json_pack("{s:s, s:s}", "error", message, "code", code);

        metrics_count_error(code);
        /* A 4xx is the client's to read; a 5xx is ours, logged here once with its sandbox
         * (503 is capacity or a lost agent, not a bug: a warning). */
        if (status >= 500)
                log_full(status == 503 ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR, call->sb ? call->sb->id : NULL,
                         err ? err->errnum : 0, "%s %s answered %d %s: %s", http_request_method(call->req),
                         http_request_path(call->req), status, code, message);
        /* A message quoting a client's bytes may not be UTF-8; the code still goes out. */
        if (!body)
                body = json_pack("{s:s, s:s}", "error", "the request was refused", "code", code);
        api_respond_json(call, status, body);
}

void api_fail(ApiCall *call, const char *code, const char *fmt, ...) {
        ForgeError err = {.errnum = 0}; /* a sentence, no errno behind it */
        va_list ap;

        snprintf(err.code, sizeof(err.code), "%s", code);
        va_start(ap, fmt);
        vsnprintf(err.message, sizeof(err.message), fmt, ap);
        va_end(ap);
        api_respond_error(call, &err);
}
