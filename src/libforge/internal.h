/* libforge internals shared between its files. Everything here carries the `forge__`
 * prefix (libuv's `uv__` convention) and is hidden: the library is compiled with
 * -fvisibility=hidden and only FORGE_PUBLIC functions of forge/forge.h are exported.
 * Unit tests link the static archive, so they can reach these too. */
#pragma once

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>

#include "basic/macros.h"
#include "forge/forge.h"

struct ForgeClient {
        char *base_url; /* without trailing slashes */
        CURL *curl;     /* reused, so the connection stays alive between calls */
        long connect_ms;
        long request_ms;
        const volatile sig_atomic_t *interrupt_flag;
};

/* json_decrefp comes with jansson (2.14). */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* ---- errors.c ---- */

/* Fills *err (may be NULL) and returns -errnum. */
int forge__error_set(ForgeClientError *err, int errnum, int status, const char *code, const char *fmt, ...)
        _printf_(5, 6);
/* The errno that stands for a server error code; falls back on the HTTP status. */
int forge__errno_from_code(const char *code, int status);
/* Decodes a non-2xx answer: the server's {"error", "code"} body, or whatever came. */
int forge__error_from_response(int status, const char *body, size_t size, ForgeClientError *err);
/* A transfer that failed before an answer came. */
int forge__error_from_curl(CURLcode cc, const char *curl_message, const char *url, ForgeClientError *err);

/* ---- url.c ---- */

/* Percent-encodes s for a query value or a path segment (only unreserved bytes stay). */
char *forge__url_escape(const char *s);
/* "/v1/sandboxes/<id><suffix>", id escaped. -EINVAL for an empty id. */
int forge__sandbox_path(const char *id, const char *suffix, char **ret);
/* "/v1/sandboxes/<id>/<route>?path=<path><extra>", id and path escaped. -EINVAL for an
 * empty id or path. */
int forge__file_path(const char *id, const char *route, const char *path, const char *extra, char **ret);

/* ---- client.c ---- */

/* Where the bytes of a 2xx answer go; returns 0 or -errno (which aborts the call). */
typedef int (*ForgeSinkFn)(const char *bytes, size_t size, void *userdata);
/* Fills up to `size` bytes of a request body; returns the count, 0 at the end, -errno. */
typedef ssize_t (*ForgeSourceFn)(char *buf, size_t size, void *userdata);

typedef struct ForgeTransfer {
        const char *method; /* "GET", "POST", "PUT", "DELETE" */
        const char *path;   /* already escaped, starting with "/" */
        const char *body;   /* a JSON body, or NULL */
        size_t body_size;
        ForgeSourceFn source; /* a streamed body (PUT), or NULL */
        void *source_userdata;
        int64_t source_size; /* -1: unknown (sent chunked) */
        ForgeSinkFn sink;    /* where 2xx bytes go; NULL: collected in `response` */
        void *sink_userdata;
        const char *accept; /* an Accept header, or NULL */
        long buffer_size;   /* libcurl's receive buffer, 0 for its default */
        /* filled by forge__transfer_perform */
        int status;
        char *response; /* the collected answer (always for non-2xx), NUL-terminated */
        size_t response_size;
} ForgeTransfer;

/* Performs t; a non-2xx answer becomes an error. Free t->response afterwards. */
int forge__transfer_perform(ForgeClient *c, ForgeTransfer *t, ForgeClientError *err);
void forge__transfer_done(ForgeTransfer *t);
/* One JSON request and its JSON answer; body may be NULL; ret may be NULL to discard.
 * An empty answer gives *ret = NULL. */
int forge__request_json(ForgeClient *c, const char *method, const char *path, json_t *body, json_t **ret,
                        ForgeClientError *err);

/* ---- json.c ---- */

/* Copy of a string member, or NULL when absent or null. -ENOMEM only on allocation. */
int forge__json_strdup(json_t *obj, const char *key, char **ret);
/* A JSON string's bytes (NULs kept) into a NUL-terminated buffer; "" when not a string. */
int forge__buffer_from_json(json_t *v, ForgeBuffer *ret);
/* Adds "KEY=VALUE" entries to obj as members; -EINVAL on an entry without '='. */
int forge__json_add_pairs(json_t *obj, const char *const *pairs, const char *what, ForgeClientError *err);
int forge__sandbox_from_json(json_t *j, ForgeSandbox *ret, ForgeClientError *err);
int forge__result_from_json(json_t *j, ForgeResult *ret, ForgeClientError *err);
int forge__file_info_from_json(json_t *j, ForgeFileInfo *ret, ForgeClientError *err);
/* Signal name ("SIGKILL" or "KILL") to number, 0 when unknown. */
int forge__signal_from_name(const char *name);

/* ---- sse.c: a Server-Sent Events parser (the WHATWG event-stream format) ----
 *
 * Fed any slicing of the stream; calls on_event once per dispatched event with its type
 * ("message" when none was named) and its data lines joined by '\n'. Comments, `id` and
 * `retry` are skipped. Lines end in CRLF, LF or CR. */
typedef int (*ForgeSseEventFn)(const char *event, const char *data, size_t size, void *userdata);

typedef struct ForgeSseParser {
        ForgeSseEventFn on_event;
        void *userdata;
        size_t max_size;   /* of one line and of one event's data; beyond: -EMSGSIZE */
        char *line;        /* a line cut by a chunk boundary */
        size_t line_size, line_allocated;
        char *data; /* the event being built: data lines, each followed by '\n' */
        size_t data_size, data_allocated;
        char event[64];
        bool seen_data;  /* a data field came (it may have been empty) */
        bool after_cr;   /* the last byte was a CR: an LF right after belongs to it */
        bool started;    /* past a possible byte order mark */
} ForgeSseParser;

#define FORGE_SSE_MAX_DEFAULT (16u * 1024 * 1024)

void forge__sse_init(ForgeSseParser *p, ForgeSseEventFn on_event, void *userdata);
/* 0, or -EMSGSIZE, -ENOMEM, or the callback's negative return (the parser is then
 * unusable). */
int forge__sse_feed(ForgeSseParser *p, const char *bytes, size_t size);
void forge__sse_done(ForgeSseParser *p);

/* ---- process.c ---- */

int forge__process_from_json(json_t *j, ForgeProcess *ret, ForgeClientError *err);
/* Standard base64 of size bytes, NUL-terminated; NULL on allocation failure. */
