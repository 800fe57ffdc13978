/* Following a process's output: GET .../output?follow=1 is a Server-Sent Events stream;
 * libcurl's write callback feeds the SSE parser, and each event is decoded (JSON, then
 * base64) and handed to the caller. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "basic/base64.h"
#include "libforge/internal.h"

typedef struct FollowState {
        ForgeProcessEventFn on_event;
        void *userdata;
        ForgeSseParser sse;
        bool exited;
        int callback_error; /* the caller's negative return, passed back as is */
        char bad_event[96]; /* what was wrong with an event the server sent */
} FollowState;

static int follow_fail(FollowState *st, const char *what) {
        snprintf(st->bad_event, sizeof(st->bad_event), "%s", what);
        return -EPROTO;
}

static int deliver(FollowState *st, const ForgeProcessEvent *ev) {
        int r = st->on_event(ev, st->userdata);

        if (r < 0)
                st->callback_error = r;
        return r < 0 ? r : 0;
}

static int deliver_bytes(FollowState *st, ForgeProcessEventType type, const char *b64, size_t len) {
        _cleanup_free_ uint8_t *bytes = NULL;
        size_t n = 0;

        if (base64_decode(b64, len, &bytes, &n) < 0)
                return follow_fail(st, "an output event holds bad base64");
        return deliver(st, &(ForgeProcessEvent){.type = type, .data = (const char *) bytes, .size = n});
}

/* The common shape of a base64 output event, read without a JSON parser: the data is
 * most of what a follow carries. Returns 1 when `data` is not exactly that shape. */
static int output_event_fast(FollowState *st, ForgeProcessEventType type, const char *data, size_t size) {
        static const char head[] = "{\"data_base64\":\"";
        const size_t hl = sizeof(head) - 1;
        const char *end;

        if (size < hl + 2 || memcmp(data, head, hl) != 0 || data[size - 1] != '}' || data[size - 2] != '"')
                return 1;
        end = memchr(data + hl, '"', size - hl);
        if (end != data + size - 2)
                return 1;
        return deliver_bytes(st, type, data + hl, (size_t) (end - data - hl));
}

static int on_output_event(FollowState *st, ForgeProcessEventType type, json_t *j) {
        json_t *b64 = json_object_get(j, "data_base64"), *text = json_object_get(j, "data");
        ForgeProcessEvent ev = {.type = type};

        if (json_is_string(b64))
                return deliver_bytes(st, type, json_string_value(b64), json_string_length(b64));
        if (json_is_string(text)) {
                ev.data = json_string_value(text);
                ev.size = json_string_length(text);
        } else
                return follow_fail(st, "an output event has no data");
        return deliver(st, &ev);
}

static int on_exit_event(FollowState *st, json_t *j) {
        ForgeProcess p = {};
        ForgeProcessEvent ev = {.type = FORGE_EVENT_EXIT, .process = &p};
        int r;

        if (forge__process_from_json(j, &p, NULL) < 0)
                return follow_fail(st, "the exit event is not a process object");
        st->exited = true;
        r = deliver(st, &ev);
        forge_process_clear(&p);
        return r;
}

static int on_sse_event(const char *event, const char *data, size_t size, void *userdata) {
        FollowState *st = userdata;
        _cleanup_json_ json_t *j = NULL;
        json_t *stream;

        bool is_stdout = strcmp(event, "stdout") == 0, is_stderr = strcmp(event, "stderr") == 0;
        int r;

        if (!is_stdout && !is_stderr && strcmp(event, "dropped") != 0 && strcmp(event, "exit") != 0)
                return 0; /* an event this client does not know */
        if (is_stdout || is_stderr) {
                r = output_event_fast(st, is_stdout ? FORGE_EVENT_STDOUT : FORGE_EVENT_STDERR, data, size);
                if (r <= 0)
                        return r;
        }
        j = json_loadb(data, size, JSON_ALLOW_NUL, NULL);
        if (!json_is_object(j))
                return follow_fail(st, "an event does not hold a JSON object");
        if (strcmp(event, "stdout") == 0)
                return on_output_event(st, FORGE_EVENT_STDOUT, j);
        if (strcmp(event, "stderr") == 0)
                return on_output_event(st, FORGE_EVENT_STDERR, j);
        if (strcmp(event, "exit") == 0)
                return on_exit_event(st, j);
        stream = json_object_get(j, "stream");
        return deliver(st, &(ForgeProcessEvent){
                                   .type = FORGE_EVENT_DROPPED,
                                   .stream = json_is_string(stream) ? json_string_value(stream) : "",
                                   .dropped = (uint64_t) json_integer_value(json_object_get(j, "bytes")),
                           });
}

static int on_follow_bytes(const char *bytes, size_t size, void *userdata) {
        FollowState *st = userdata;

        return forge__sse_feed(&st->sse, bytes, size);
}

FORGE_PUBLIC int forge_process_follow(ForgeClient *c, const char *id, long pid, ForgeOutputEncoding encoding,
                                      ForgeProcessEventFn on_event, void *userdata, ForgeClientError *err) {
        _cleanup_free_ char *path = NULL;
        FollowState st = {.on_event = on_event, .userdata = userdata};
        ForgeTransfer t = {.method = "GET", .accept = "text/event-stream", .buffer_size = 256 * 1024};
        char suffix[96];
        int r;

        if (!on_event)
                return forge__error_set(err, EINVAL, 0, "invalid_argument", "no event callback given");
        snprintf(suffix, sizeof(suffix), "/processes/%ld/output?follow=1%s", pid,
                 encoding == FORGE_ENCODING_BASE64 ? "&encoding=base64" : "");
        r = forge__sandbox_path(id, suffix, &path);
        if (r < 0)
                return r == -EINVAL ? forge__error_set(err, EINVAL, 0, "invalid_argument", "no sandbox id given")
                                    : forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        forge__sse_init(&st.sse, on_sse_event, &st);
        t.path = path;
        t.sink = on_follow_bytes;
        t.sink_userdata = &st;
        r = forge__transfer_perform(c, &t, err);
        forge__transfer_done(&t);
        forge__sse_done(&st.sse);
        if (st.callback_error < 0)
                return st.callback_error; /* the caller's own reason: *err is not about it */
        if (st.bad_event[0])
                return forge__error_set(err, EPROTO, 200, "bad_response", "%s", st.bad_event);
        if (r == -EMSGSIZE)
                return forge__error_set(err, EMSGSIZE, 200, "bad_response", "an event is too large");
        if (r < 0)
                return r;
        if (!st.exited)
                return forge__error_set(err, EPIPE, 200, "bad_response",
                                        "the output stream ended before the process exited");
        return 0;
}
