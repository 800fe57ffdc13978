#include "basic/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int forge_error_set(ForgeError *e, int errnum, const char *code, const char *fmt, ...) {
        va_list ap;

        if (errnum < 0)
                errnum = -errnum;
        if (errnum == 0)
                errnum = EIO;
        if (!e || forge_error_is_set(e))
                return -errnum;
        e->errnum = errnum;
        snprintf(e->code, sizeof(e->code), "%s", code);
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return -errnum;
}
