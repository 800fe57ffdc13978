#include "daemon/core/store.h"

#include "basic/fs-util.h"
#include "basic/macros.h"

int store_write_json(const char *path, json_t *j) {
        _cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

        if (!text)
                return -ENOMEM;
        return write_file_atomic(path, text, 0600);
}

int store_read_json(const char *path, json_t **ret) {
        json_error_t jerr;
        json_t *j;

        if (access(path, F_OK) < 0)
                return -errno;
        j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return -EBADMSG;
        *ret = j;
        return 0;
}
