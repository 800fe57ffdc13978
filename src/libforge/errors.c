/* Turning what went wrong (a server error body, a curl failure) into -errno plus a
 * ForgeClientError. The server's codes map to errnos in exactly one table. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "libforge/internal.h"

static const struct {
        const char *code;
        int errnum;
} code_errnos[] = {
        {"invalid_json", EINVAL},
        {"invalid_request", EINVAL},
        {"invalid_path", EINVAL},
        {"unsupported_runtime", EOPNOTSUPP},
        {"not_a_directory", ENOTDIR},
        {"is_a_directory", EISDIR},
        {"not_a_regular_file", EINVAL},
        {"not_found", ENOENT},
        {"sandbox_not_found", ENOENT},
        {"path_not_found", ENOENT},
        {"method_not_allowed", EOPNOTSUPP},
        {"sandbox_not_running", EBUSY},
        {"file_exists", EEXIST},
        {"directory_not_empty", ENOTEMPTY},
        {"payload_too_large", EFBIG},
        {"header_too_large", E2BIG},
        {"at_capacity", EAGAIN},
        {"no_space", ENOSPC},
        {"agent_unavailable", EHOSTUNREACH},
        {"internal", EIO},
        {"process_not_found", ENOENT},
        {"stdin_closed", EPIPE},
        {"no_pty", ENOTTY},
};

static int errno_from_status(int status) {
        switch (status) {
        case 400:
                return EINVAL;
        case 404:
                return ENOENT;
        case 405:
                return EOPNOTSUPP;
        case 409:
                return EBUSY;
        case 413:
                return EFBIG;
        case 429:
        case 503:
                return EAGAIN;
        case 507:
                return ENOSPC;
        default:
                return EIO;
        }
}

int forge__errno_from_code(const char *code, int status) {
        if (code)
                for (size_t i = 0; i < ELEMENTSOF(code_errnos); i++)
                        if (strcmp(code, code_errnos[i].code) == 0)
                                return code_errnos[i].errnum;
        return errno_from_status(status);
}

int forge__error_set(ForgeClientError *err, int errnum, int status, const char *code, const char *fmt, ...) {
        va_list ap;

        if (errnum < 0)
                errnum = -errnum;
        if (errnum == 0)
                errnum = EIO;
        if (!err)
                return -errnum;
        err->status = status;
        snprintf(err->code, sizeof(err->code), "%s", code);
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return -errnum;
}

/* The first line of a body that is not the JSON we expect, made printable. */
static void body_excerpt(const char *body, size_t size, char *buf, size_t buf_size) {
        size_t n = 0;

        for (size_t i = 0; i < size && n + 1 < buf_size; i++) {
                unsigned char ch = (unsigned char) body[i];
                if (ch == '\n' || ch == '\r')
                        break;
                buf[n++] = (ch >= 0x20 && ch < 0x7f) ? (char) ch : '?';
        }
        buf[n] = 0;
}

int forge__error_from_response(int status, const char *body, size_t size, ForgeClientError *err) {
        _cleanup_json_ json_t *j = NULL;
        const char *message, *code;
        char excerpt[160];

        if (body && size > 0)
                j = json_loadb(body, size, 0, NULL);
        message = json_string_value(json_object_get(j, "error"));
        code = json_string_value(json_object_get(j, "code"));
        if (message || code)
                return forge__error_set(err, forge__errno_from_code(code, status), status,
                                        code ? code : "http_error", "%s",
                                        message ? message : "the server gave no reason");

        body_excerpt(body ? body : "", size, excerpt, sizeof(excerpt));
        return forge__error_set(err, errno_from_status(status), status, "http_error",
                                "the server answered HTTP %d%s%s", status, excerpt[0] ? ": " : "", excerpt);
}

int forge__error_from_curl(CURLcode cc, const char *curl_message, const char *url, ForgeClientError *err) {
        const char *detail = curl_message && curl_message[0] ? curl_message : curl_easy_strerror(cc);

        switch (cc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return forge__error_set(err, cc == CURLE_COULDNT_CONNECT ? ECONNREFUSED : EHOSTUNREACH, 0,
                                        "connection_failed", "cannot connect to forged at %s: %s", url,
                                        detail);
        case CURLE_OPERATION_TIMEDOUT:
                return forge__error_set(err, ETIMEDOUT, 0, "timeout",
                                        "no answer from forged at %s in time: %s", url, detail);
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return forge__error_set(err, EINVAL, 0, "invalid_argument", "bad server URL %s: %s", url,
                                        detail);
        case CURLE_ABORTED_BY_CALLBACK:
                return forge__error_set(err, ECANCELED, 0, "interrupted", "interrupted");
        case CURLE_OUT_OF_MEMORY:
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        default:
                return forge__error_set(err, EIO, 0, "connection_failed", "talking to forged at %s: %s", url,
                                        detail);
        }
}
