/* Clocks and timestamps (libc only). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Wall clock in ms since the epoch. */
int64_t time_now_ms(void);
/* Monotonic clock in ms, for durations. */
int64_t time_mono_ms(void);
/* Sleeps ms milliseconds (a signal may cut it short). */
void time_sleep_ms(int64_t ms);
/* "2026-11-22T07:00:00.123Z"; buf of at least 32 bytes. */
void time_format_rfc3339(int64_t ms, char *buf, size_t size);
