#include "basic/ring.h"

#include <stdlib.h>
#include <string.h>

#include "basic/macros.h"

#define RING_MIN_ALLOC 4096

void ring_init(Ring *r, size_t max) {
        *r = (Ring){.max = max};
}

void ring_done(Ring *r) {
        free(r->buf);
        ring_init(r, r->max);
}

/* Reallocates to cap bytes with the content made contiguous from index 0. */
static int ring_resize(Ring *r, size_t cap) {
        size_t size = ring_size(r);
        uint8_t *buf;

        if (cap < size)
                return -EINVAL;
        if (cap == 0) {
                free(r->buf);
                *r = (Ring){.max = r->max, .start = r->start, .end = r->end};
                return 0;
        }
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        if (size > 0)
                ring_copy(r, r->start, buf, size);
        free(r->buf);
        r->buf = buf;
        r->cap = cap;
        r->head = 0;
        return 0;
}

/* Room for `need` bytes in total, up to max; growing doubles. */
static void ring_reserve(Ring *r, size_t need) {
        size_t cap;

        need = MIN(need, r->max);
        if (need <= r->cap)
                return;
        cap = MAX(MAX(r->cap * 2, (size_t) RING_MIN_ALLOC), need);
        (void) ring_resize(r, MIN(cap, r->max));
}

static void ring_drop(Ring *r, size_t n) {
        r->start += n;
        r->head = r->cap ? (r->head + n) % r->cap : 0;
}

void ring_append(Ring *r, const void *data, size_t len) {
        const uint8_t *p = data;
        size_t size = ring_size(r), tail, first;

        ring_reserve(r, size + len);
        if (len > r->cap) {
                /* Only the newest cap bytes can stay; everything held goes too. */
                ring_drop(r, size);
                r->end += len - r->cap;
                r->start = r->end;
                p += len - r->cap;
                len = r->cap;
                size = 0;
        } else if (size + len > r->cap) {
                ring_drop(r, size + len - r->cap);
                size = r->cap - len;
        }
        if (len == 0)
                return;
        tail = (r->head + size) % r->cap;
        first = MIN(len, r->cap - tail);
        memcpy(r->buf + tail, p, first);
        memcpy(r->buf, p + first, len - first);
        r->end += len;
}

size_t ring_copy(const Ring *r, uint64_t from, void *dst, size_t len) {
        size_t pos, first;

        if (from < r->start || from >= r->end)
                return 0;
        len = (size_t) MIN((uint64_t) len, r->end - from);
        pos = (r->head + (size_t) (from - r->start)) % r->cap;
        first = MIN(len, r->cap - pos);
        memcpy(dst, r->buf + pos, first);
        memcpy((uint8_t *) dst + first, r->buf, len - first);
        return len;
}

void ring_shrink(Ring *r) {
        if (r->cap > ring_size(r))
                (void) ring_resize(r, ring_size(r));
}

void ring_skip_to(Ring *r, uint64_t offset) {
        if (offset <= r->end)
                return;
        r->start = r->end = offset;
        r->head = 0;
}
