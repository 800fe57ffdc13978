/* Reason phrases for the status line. */
#include "daemon/http/http.h"

#include "basic/macros.h"

static const struct {
        int status;
        const char *reason;
} status_reasons[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {422, "Unprocessable Entity"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {507, "Insufficient Storage"},
};

const char *http_status_reason(int status) {
        for (size_t i = 0; i < ELEMENTSOF(status_reasons); i++)
                if (status_reasons[i].status == status)
                        return status_reasons[i].reason;
        if (status >= 100 && status < 200)
                return "Informational";
        if (status >= 200 && status < 300)
                return "Success";
        if (status >= 300 && status < 400)
                return "Redirection";
        if (status >= 400 && status < 500)
                return "Client Error";
        return "Server Error";
}
