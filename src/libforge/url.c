/* Building request paths: ids and file paths are percent-encoded, so a '/', '?', '&' or
 * '#' inside them can never change the route or add a query parameter. */
#include <stdio.h>
#include <string.h>

#include "libforge/internal.h"

static bool is_unreserved(unsigned char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

char *forge__url_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t len = strlen(s), n = 0;
        char *out;

        out = malloc(len * 3 + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) s[i];
                if (is_unreserved(ch)) {
                        out[n++] = (char) ch;
                        continue;
                }
                out[n++] = '%';
                out[n++] = hex[ch >> 4];
                out[n++] = hex[ch & 0xf];
        }
        out[n] = 0;
        return out;
}

int forge__sandbox_path(const char *id, const char *suffix, char **ret) {
        _cleanup_free_ char *eid = NULL;

        if (!id || !id[0])
                return -EINVAL;
        eid = forge__url_escape(id);
        if (!eid)
                return -ENOMEM;
        if (asprintf(ret, "/v1/sandboxes/%s%s", eid, suffix ? suffix : "") < 0)
                return -ENOMEM;
        return 0;
}

int forge__file_path(const char *id, const char *route, const char *path, const char *extra, char **ret) {
        _cleanup_free_ char *eid = NULL, *epath = NULL;

        if (!id || !id[0] || !path || !path[0])
                return -EINVAL;
        eid = forge__url_escape(id);
        epath = forge__url_escape(path);
        if (!eid || !epath)
                return -ENOMEM;
        if (asprintf(ret, "/v1/sandboxes/%s/%s?path=%s%s", eid, route, epath, extra ? extra : "") < 0)
                return -ENOMEM;
        return 0;
}
