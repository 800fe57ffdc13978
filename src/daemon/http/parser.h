/* The seam between forged's HTTP layer and whatever library tokenizes HTTP/1.x requests.
 * Only parser.c includes the library's header; swapping http-parser for llhttp means
 * rewriting that one file against this interface. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct HttpWire HttpWire;

/* What the request head said, as far as framing is concerned. */
typedef struct HttpWireHead {
        const char *method; /* static string, e.g. "GET" */
        unsigned version_major, version_minor;
        bool keep_alive;        /* the library's reading of version + Connection */
        bool chunked;           /* Transfer-Encoding: chunked */
        int64_t content_length; /* -1 when absent */
        bool upgrade;           /* Upgrade/CONNECT: bytes after this message are not HTTP */
} HttpWireHead;

/* Callbacks return 0 to go on, HTTP_WIRE_PAUSE to stop feeding right after this event
 * (http_wire_feed() then returns what it consumed), or -1 to fail the parse. url, header
 * and body data may arrive in several pieces. */
#define HTTP_WIRE_PAUSE 1
typedef struct HttpWireEvents {
        int (*on_message_begin)(void *userdata);
        int (*on_url)(void *userdata, const char *at, size_t len);
        int (*on_header_field)(void *userdata, const char *at, size_t len);
        int (*on_header_value)(void *userdata, const char *at, size_t len);
        int (*on_headers_complete)(void *userdata, const HttpWireHead *head);
        int (*on_body)(void *userdata, const char *at, size_t len);
        int (*on_message_complete)(void *userdata);
} HttpWireEvents;

typedef enum HttpWireStatus {
        HTTP_WIRE_OK,              /* all input consumed (or upgrade reached) */
        HTTP_WIRE_PAUSED,          /* a callback asked to pause; call http_wire_resume() */
        HTTP_WIRE_CALLBACK_FAILED, /* a callback returned -1 */
        HTTP_WIRE_HEADER_OVERFLOW, /* the library's own header size limit */
        HTTP_WIRE_INVALID,         /* malformed request */
} HttpWireStatus;

int http_wire_new(const HttpWireEvents *events, void *userdata, HttpWire **ret);
HttpWire *http_wire_free(HttpWire *w);
/* Feeds bytes; returns how many were consumed. */
size_t http_wire_feed(HttpWire *w, const char *data, size_t len, HttpWireStatus *ret_status);
void http_wire_resume(HttpWire *w);
/* A short description of the last parse error, for debug logs. */
const char *http_wire_error_text(const HttpWire *w);
