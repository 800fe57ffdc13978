/* Server-Sent Events: a chunked text/event-stream response and its event framing
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html). Each event goes out
 * as one chunk, so a client never sees half an event between two writes. */
#include "daemon/http/internal.h"

#include <string.h>

int http_sse_begin(HttpRequest *r) {
        http_response_header(r, "Cache-Control", "no-cache");
        /* nginx and friends would otherwise buffer the stream. */
        http_response_header(r, "X-Accel-Buffering", "no");
        return http_response_begin(r, 200, "text/event-stream");
}

static bool sse_text_is_valid(const char *s, size_t len) {
        return !memchr(s, '\n', len) && !memchr(s, '\r', len);
}

int http_sse_send(HttpRequest *r, const char *event, const char *data, size_t len) {
        uv_buf_t bufs[5];
        unsigned n = 0;

        if ((event && !sse_text_is_valid(event, strlen(event))) || !sse_text_is_valid(data, len))
                return -EINVAL;
        if (event) {
                bufs[n++] = uv_buf_init((char *) "event: ", 7);
                bufs[n++] = uv_buf_init((char *) event, (unsigned) strlen(event));
        }
        bufs[n++] = uv_buf_init((char *) (event ? "\ndata: " : "data: "), event ? 7 : 6);
        bufs[n++] = uv_buf_init((char *) data, (unsigned) len);
        bufs[n++] = uv_buf_init((char *) "\n\n", 2);
        return http_response_writev(r, bufs, n);
}

int http_sse_comment(HttpRequest *r, const char *text) {
        uv_buf_t bufs[3] = {
                uv_buf_init((char *) ": ", 2),
                uv_buf_init((char *) text, (unsigned) strlen(text)),
                uv_buf_init((char *) "\n\n", 2),
        };

        if (!sse_text_is_valid(text, strlen(text)))
                return -EINVAL;
        return http_response_writev(r, bufs, 3);
}
