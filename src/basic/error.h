/* An error that must reach a client: a snake_case code, a human sentence and the errno.
 * Functions return -errno; when they also take a ForgeError *, they fill it so the API
 * layer can answer with {"error", "code"}. The code -> HTTP status table lives in
 * daemon/api/errors.c, and only there. */
#pragma once

#include "basic/macros.h"

typedef struct ForgeError {
        int errnum;      /* positive errno */
        char code[48];   /* e.g. "sandbox_not_found" */
        char message[256];
} ForgeError;

/* Fills *e (which may be NULL) unless it already holds an error, returns -errnum. */
int forge_error_set(ForgeError *e, int errnum, const char *code, const char *fmt, ...) _printf_(4, 5);
static inline int forge_error_is_set(const ForgeError *e) {
        return e && e->code[0] != 0;
}
