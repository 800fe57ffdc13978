#include "basic/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/utf8.h"

static LogLevel log_max_level = LOG_LEVEL_INFO;
static int log_json;

static const char *const level_names[] = {
        [LOG_LEVEL_ERROR] = "error",
        [LOG_LEVEL_WARN] = "warn",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

void log_setup(LogLevel max_level, int json) {
        log_max_level = max_level;
        log_json = json;
}

int log_level_from_string(const char *s, LogLevel *ret) {
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcmp(s, level_names[i]) == 0) {
                        *ret = (LogLevel) i;
                        return 0;
                }
        return -EINVAL;
}

/* Writes s as a JSON string body (no quotes), escaping what JSON requires. */
static void json_escape(FILE *f, const char *s) {
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20)
                        fprintf(f, "\\u%04x", c);
                else
                        fputc(c, f);
        }
}

void log_full(LogLevel level, const char *sandbox, int err, const char *fmt, ...) {
        char msg[2048], stamp[32], *clean;
        size_t clean_len;
        struct timespec ts;
        struct tm tm;
        va_list ap;
        int saved = errno;

        if (level > log_max_level)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        if (err < 0)
                err = -err;

        flockfile(stderr);
        if (log_json) {
                fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\"", stamp, ts.tv_nsec / 1000000,
                        level_names[level]);
                if (sandbox)
                        fprintf(stderr, ",\"sandbox\":\"%s\"", sandbox);
                fputs(",\"msg\":\"", stderr);
                /* A message may quote a client's bytes; JSON strings must be UTF-8. */
                clean = utf8_sanitize((const uint8_t *) msg, strlen(msg), &clean_len);
                json_escape(stderr, clean ? clean : "(out of memory)");
                free(clean);
                fputc('"', stderr);
                if (err) {
                        fputs(",\"error\":\"", stderr);
                        json_escape(stderr, strerror(err));
                        fputc('"', stderr);
                }
                fputs("}\n", stderr);
        } else {
                fprintf(stderr, "%s.%03ldZ %-5s ", stamp, ts.tv_nsec / 1000000, level_names[level]);
                if (sandbox)
                        fprintf(stderr, "sandbox=%s ", sandbox);
                fputs(msg, stderr);
                if (err)
                        fprintf(stderr, ": %s", strerror(err));
                fputc('\n', stderr);
        }
        funlockfile(stderr);
        errno = saved;
}
