/* Shared by the HTTP and API fuzz targets: feeds bytes to a real HttpServer connection.
 *
 * One end of a socketpair is accepted into the server the way server.c's on_connection
 * accepts a TCP client (http_conn_new, open the handle, http_conn_start); the harness
 * writes the input on the other end in pieces, reads and drops whatever the server
 * answers, and runs the loop until the server has nothing left to do. Then it hangs up
 * and runs the loop until the connection is gone, so each input ends with nothing left
 * allocated. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/http/http.h"

/* Work the harness's handler has scheduled for later (a deferred answer, a resume):
 * the feed keeps running the loop while this returns true. */
typedef bool (*HttpFeedBusy)(void);

/* Writes data to a new connection of s in pieces of `piece` bytes (0 = all at once),
 * running the loop after each, then settles, hangs up and waits for the connection to
 * be freed. Aborts the process if the connection outlives a generous bound: that is a
 * leak or a livelock in the HTTP layer, which is what the fuzzer is looking for. */
void http_feed_run(uv_loop_t *loop, HttpServer *s, const uint8_t *data, size_t len, size_t piece,
                   HttpFeedBusy busy);
