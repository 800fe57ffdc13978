/* http-parser (Debian's libhttp-parser) behind the HttpWire interface of parser.h. */
#include "daemon/http/parser.h"

#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>

struct HttpWire {
        http_parser parser;
        const HttpWireEvents *events;
        void *userdata;
        bool upgraded; /* an Upgrade/CONNECT message is complete: what follows is not HTTP */
        bool malformed; /* refused by our own checks on top of the library's */
};

static HttpWire *wire_of(http_parser *p) {
        return p->data;
}

/* Maps an HttpWireEvents answer onto http-parser's convention: pausing is a parser
 * state, not a return value, so it is set here and 0 is returned. */
static int wire_answer(http_parser *p, int r) {
        if (r == HTTP_WIRE_PAUSE) {
                http_parser_pause(p, 1);
                return 0;
        }
        return r < 0 ? -1 : 0;
}

static int on_message_begin(http_parser *p) {
        HttpWire *w = wire_of(p);
        return wire_answer(p, w->events->on_message_begin(w->userdata));
}

static int on_url(http_parser *p, const char *at, size_t len) {
        HttpWire *w = wire_of(p);
        return wire_answer(p, w->events->on_url(w->userdata, at, len));
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
        HttpWire *w = wire_of(p);
        return wire_answer(p, w->events->on_header_field(w->userdata, at, len));
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
        HttpWire *w = wire_of(p);
        return wire_answer(p, w->events->on_header_value(w->userdata, at, len));
}

static int on_headers_complete(http_parser *p) {
        HttpWire *w = wire_of(p);
        HttpWireHead head;

        /* http-parser takes lengths up to 2^64-1; ours are signed. */
        if ((p->flags & F_CONTENTLENGTH) && p->content_length > (uint64_t) INT64_MAX) {
                w->malformed = true;
                return -1;
        }
        head = (HttpWireHead){
                .method = http_method_str((enum http_method) p->method),
                .version_major = p->http_major,
                .version_minor = p->http_minor,
                .keep_alive = http_should_keep_alive(p) != 0,
                .chunked = (p->flags & F_CHUNKED) != 0,
                .content_length = (p->flags & F_CONTENTLENGTH) ? (int64_t) p->content_length : -1,
                .upgrade = p->upgrade != 0,
        };

        /* Never return 1 here: to http-parser that means "this message has no body". */
        return wire_answer(p, w->events->on_headers_complete(w->userdata, &head));
}

static int on_body(http_parser *p, const char *at, size_t len) {
        HttpWire *w = wire_of(p);
        return wire_answer(p, w->events->on_body(w->userdata, at, len));
}

static int on_message_complete(http_parser *p) {
        HttpWire *w = wire_of(p);

        if (p->upgrade)
                w->upgraded = true;
        return wire_answer(p, w->events->on_message_complete(w->userdata));
}

static const http_parser_settings wire_settings = {
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
};

int http_wire_new(const HttpWireEvents *events, void *userdata, HttpWire **ret) {
        HttpWire *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        http_parser_init(&w->parser, HTTP_REQUEST);
        w->parser.data = w;
        w->events = events;
        w->userdata = userdata;
        *ret = w;
        return 0;
}

HttpWire *http_wire_free(HttpWire *w) {
        free(w);
        return NULL;
}

static HttpWireStatus wire_status(const HttpWire *w) {
        enum http_errno e = HTTP_PARSER_ERRNO(&w->parser);

        if (w->malformed)
                return HTTP_WIRE_INVALID;
        switch (e) {
        case HPE_OK:
                return HTTP_WIRE_OK;
        case HPE_PAUSED:
                return HTTP_WIRE_PAUSED;
        case HPE_HEADER_OVERFLOW:
                return HTTP_WIRE_HEADER_OVERFLOW;
        default:
                if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete)
                        return HTTP_WIRE_CALLBACK_FAILED;
                return HTTP_WIRE_INVALID;
        }
}

size_t http_wire_feed(HttpWire *w, const char *data, size_t len, HttpWireStatus *ret_status) {
        size_t n = 0;

        /* After an Upgrade/CONNECT message the remaining bytes belong to another protocol;
         * http-parser would treat them as a new request. Its upgrade flag is set as soon
         * as the head is parsed, so the message's end is awaited separately: the bytes
         * between (the head's last LF) still belong to HTTP. */
        if (!w->upgraded)
                n = http_parser_execute(&w->parser, &wire_settings, data, len);
        *ret_status = wire_status(w);
        return n;
}

void http_wire_resume(HttpWire *w) {
        http_parser_pause(&w->parser, 0);
}

const char *http_wire_error_text(const HttpWire *w) {
        return http_errno_description(HTTP_PARSER_ERRNO(&w->parser));
}
