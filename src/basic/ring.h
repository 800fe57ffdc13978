/* A byte ring (forged's process output, and forge-agent's for the processes it retains)
 * that keeps the newest `max` bytes of a stream and counts what it dropped.
 * Bytes are addressed by their absolute offset in the stream (0 = the first byte ever
 * appended), so a reader keeps its place as a plain number: everything before
 * ring_start() has been dropped, ring_end() is where the next byte will go. Memory grows
 * with use up to `max`, so a quiet stream costs little. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Ring {
        uint8_t *buf;
        size_t cap;     /* allocated */
        size_t max;     /* most bytes ever held */
        size_t head;    /* index in buf of the byte at `start` */
        uint64_t start; /* absolute offset of the oldest byte held = bytes dropped */
        uint64_t end;   /* absolute offset after the newest byte */
} Ring;

void ring_init(Ring *r, size_t max);
void ring_done(Ring *r);

/* Appends, dropping the oldest bytes past max. Never fails: if memory cannot grow, the
 * ring keeps what fits in what it has (and counts the rest as dropped). */
void ring_append(Ring *r, const void *data, size_t len);

static inline uint64_t ring_start(const Ring *r) {
        return r->start;
}
static inline uint64_t ring_end(const Ring *r) {
        return r->end;
}
static inline size_t ring_size(const Ring *r) {
        return (size_t) (r->end - r->start);
}

/* Copies at most len bytes starting at absolute offset `from` into dst; returns how many.
 * An offset before ring_start() copies nothing (the caller skips ahead); one at or past
 * ring_end() copies nothing either. */
size_t ring_copy(const Ring *r, uint64_t from, void *dst, size_t len);

/* Frees unused capacity (a finished stream keeps only what it holds). */
void ring_shrink(Ring *r);

/* Continues the stream at `offset` when that is past ring_end(): everything held and
 * everything up to `offset` counts as dropped (a reader learns that bytes it never saw
 * came before). An offset at or before ring_end() changes nothing. */
void ring_skip_to(Ring *r, uint64_t offset);
