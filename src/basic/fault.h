/* Fault injection for crash tests (libc only).
 *
 * FAULT_POINT("create.after_start") marks a step where a crash must leave nothing
 * behind that a restart cannot repair. In the normal build it is nothing at all. In the
 * test build (-DFORGE_FAULTS, build/bin/forged-faults) the process kills itself with
 * SIGKILL when the environment variable FORGE_FAULT equals the point's name, which is
 * exactly what `kill -9` at that instant would do: no cleanup, no atexit, no flushing.
 * tests/integration/test_faults.py drives it. */
#pragma once

#ifdef FORGE_FAULTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One write(2) before dying, so the test can tell the point was reached; no stdio, so
 * this is safe from any thread. SIGKILL takes the whole process, whichever thread. */
static inline void fault_point(const char *name) {
        const char *want = getenv("FORGE_FAULT");

        if (!want || strcmp(want, name) != 0)
                return;
        (void) !write(STDERR_FILENO, "FORGE_FAULT hit: ", 17);
        (void) !write(STDERR_FILENO, name, strlen(name));
        (void) !write(STDERR_FILENO, "\n", 1);
        kill(getpid(), SIGKILL);
        pause();
}
#define FAULT_POINT(name) fault_point(name)
#else
#define FAULT_POINT(name) \
        do {              \
        } while (0)
#endif
