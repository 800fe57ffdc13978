/* Logging: one line per event, with an optional sandbox id; text or JSON lines.
 * A function either logs a failure or returns it, never both (STYLE.md 10). */
#pragma once

#include "basic/macros.h"

typedef enum LogLevel {
        LOG_LEVEL_ERROR,
        LOG_LEVEL_WARN,
        LOG_LEVEL_INFO,
        LOG_LEVEL_DEBUG,
} LogLevel;

void log_setup(LogLevel max_level, int json);
int log_level_from_string(const char *s, LogLevel *ret);

/* sandbox may be NULL; err is a positive or negative errno, or 0 for none. */
void log_full(LogLevel level, const char *sandbox, int err, const char *fmt, ...) _printf_(4, 5);

#define log_error(...) log_full(LOG_LEVEL_ERROR, NULL, 0, __VA_ARGS__)
#define log_warn(...) log_full(LOG_LEVEL_WARN, NULL, 0, __VA_ARGS__)
#define log_info(...) log_full(LOG_LEVEL_INFO, NULL, 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_LEVEL_DEBUG, NULL, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_full(LOG_LEVEL_ERROR, NULL, (e), __VA_ARGS__)
#define log_warn_errno(e, ...) log_full(LOG_LEVEL_WARN, NULL, (e), __VA_ARGS__)
/* Sandbox-scoped variants. */
#define log_sb_error(id, e, ...) log_full(LOG_LEVEL_ERROR, (id), (e), __VA_ARGS__)
#define log_sb_warn(id, e, ...) log_full(LOG_LEVEL_WARN, (id), (e), __VA_ARGS__)
#define log_sb_info(id, ...) log_full(LOG_LEVEL_INFO, (id), 0, __VA_ARGS__)
#define log_sb_debug(id, ...) log_full(LOG_LEVEL_DEBUG, (id), 0, __VA_ARGS__)
