/* A Server-Sent Events parser for the follow stream. It keeps nothing but the line a
 * chunk boundary cut and the event being built, so a stream of any length passes through
 * in constant memory; whole lines inside one chunk are never copied. */
#include <string.h>

#include "libforge/internal.h"

void forge__sse_init(ForgeSseParser *p, ForgeSseEventFn on_event, void *userdata) {
        *p = (ForgeSseParser){.on_event = on_event, .userdata = userdata, .max_size = FORGE_SSE_MAX_DEFAULT};
}

void forge__sse_done(ForgeSseParser *p) {
        free(p->line);
        free(p->data);
        p->line = p->data = NULL;
        p->line_size = p->line_allocated = p->data_size = p->data_allocated = 0;
}

static int buffer_append(char **buf, size_t *size, size_t *allocated, size_t max, const char *bytes,
                         size_t n) {
        if (n == 0)
                return 0;
        if (*size + n > max)
                return -EMSGSIZE;
        if (*size + n > *allocated) {
                size_t want = MAX(*size + n, MAX(*allocated * 2, (size_t) 4096));
                char *b = realloc(*buf, want);
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *allocated = want;
        }
        memcpy(*buf + *size, bytes, n);
        *size += n;
        return 0;
}

static int sse_dispatch(ForgeSseParser *p) {
        const char *type = p->event[0] ? p->event : "message";
        size_t size = p->data_size;
        int r = 0;

        if (p->seen_data) {
                if (size > 0 && p->data[size - 1] == '\n')
                        size--; /* the last data line's newline is not part of the data */
                r = p->on_event(type, size > 0 ? p->data : "", size, p->userdata);
        }
        p->data_size = 0;
        p->event[0] = 0;
        p->seen_data = false;
        return r < 0 ? r : 0;
}

static int sse_field(ForgeSseParser *p, const char *name, size_t name_len, const char *value,
                     size_t value_len) {
        int r;

        if (name_len == 4 && memcmp(name, "data", 4) == 0) {
                r = buffer_append(&p->data, &p->data_size, &p->data_allocated, p->max_size, value,
                                  value_len);
                if (r >= 0)
                        r = buffer_append(&p->data, &p->data_size, &p->data_allocated, p->max_size + 1,
                                          "\n", 1);
                p->seen_data = true;
                return r;
        }
        if (name_len == 5 && memcmp(name, "event", 5) == 0) {
                size_t n = MIN(value_len, sizeof(p->event) - 1);
                memcpy(p->event, value, n);
                p->event[n] = 0;
        }
        return 0; /* id, retry and unknown fields are ignored */
}

/* One line, without its terminator. */
static int sse_line(ForgeSseParser *p, const char *line, size_t len) {
        const char *colon, *value;
        size_t name_len, value_len;

        if (len == 0)
                return sse_dispatch(p);
        if (line[0] == ':')
                return 0; /* a comment (servers send them as keep-alives) */
        colon = memchr(line, ':', len);
        name_len = colon ? (size_t) (colon - line) : len;
        value = colon ? colon + 1 : line + len;
        value_len = len - (size_t) (value - line);
        if (value_len > 0 && value[0] == ' ') {
                value++;
                value_len--;
        }
        return sse_field(p, line, name_len, value, value_len);
}

/* Where the line that starts at s ends: the first CR or LF, or NULL. */
static const char *line_end(const char *s, size_t n) {
        const char *lf = memchr(s, '\n', n);
        const char *cr = memchr(s, '\r', lf ? (size_t) (lf - s) : n);

        return cr ? cr : lf;
}

static int sse_skip_bom(ForgeSseParser *p, const char **bytes, size_t *size) {
        static const char bom[] = "\xEF\xBB\xBF";
        size_t have = p->line_size;

        /* The BOM itself may be cut across chunks: gather up to three bytes first. */
        while (!p->started && *size > 0) {
                if ((*bytes)[0] != bom[have]) {
                        p->started = true;
                        break;
                }
                p->line_size = ++have;
                (*bytes)++;
                (*size)--;
                if (have == 3) {
                        p->line_size = 0;
                        p->started = true;
                }
        }
        if (p->started && p->line_size > 0 && p->line_size < 3) {
                /* a partial BOM that was not one: those bytes are the start of a line */
                size_t n = p->line_size;
                p->line_size = 0;
                return buffer_append(&p->line, &p->line_size, &p->line_allocated, p->max_size, bom, n);
        }
        return 0;
}

int forge__sse_feed(ForgeSseParser *p, const char *bytes, size_t size) {
        int r;

        if (!p->started) {
                r = sse_skip_bom(p, &bytes, &size);
                if (r < 0)
                        return r;
        }
        while (size > 0) {
                const char *end;

                if (p->after_cr) {
                        p->after_cr = false;
                        if (bytes[0] == '\n') {
                                bytes++;
                                size--;
                                continue;
                        }
                }
                end = line_end(bytes, size);
                if (!end) /* the line goes on in the next chunk */
                        return buffer_append(&p->line, &p->line_size, &p->line_allocated, p->max_size, bytes,
                                             size);
                if (p->line_size > 0) {
                        r = buffer_append(&p->line, &p->line_size, &p->line_allocated, p->max_size, bytes,
                                          (size_t) (end - bytes));
                        if (r >= 0)
                                r = sse_line(p, p->line, p->line_size);
                        p->line_size = 0;
                } else
                        r = sse_line(p, bytes, (size_t) (end - bytes));
                if (r < 0)
                        return r;
                p->after_cr = *end == '\r';
                size -= (size_t) (end - bytes) + 1;
                bytes = end + 1;
        }
        return 0;
}
