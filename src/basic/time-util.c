#include "basic/time-util.h"

#include <stdio.h>
#include <time.h>

static int64_t clock_ms(clockid_t id) {
        struct timespec ts;

        clock_gettime(id, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_now_ms(void) {
        return clock_ms(CLOCK_REALTIME);
}

int64_t time_mono_ms(void) {
        return clock_ms(CLOCK_MONOTONIC);
}

void time_format_rfc3339(int64_t ms, char *buf, size_t size) {
        time_t secs = (time_t) (ms / 1000);
        struct tm tm;
        char base[24];

        gmtime_r(&secs, &tm);
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s.%03dZ", base, (int) (ms % 1000));
}

void time_sleep_ms(int64_t ms) {
        nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}
