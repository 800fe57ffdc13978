/* Durable JSON records: written to a temporary file, fsynced, renamed over the target,
 * and the directory fsynced, so a crash leaves either the old or the new record. */
#pragma once

#include <jansson.h>

int store_write_json(const char *path, json_t *j);
/* 0 with *ret a new reference; -ENOENT if absent, -EBADMSG if unparseable. */
int store_read_json(const char *path, json_t **ret);
