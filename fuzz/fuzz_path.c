/* Path handling on both sides: the daemon's api_resolve_path(), json_get_path() and
 * api_json_string() (daemon/api/validate.c), and the agent's agent_path_check(),
 * agent_name_is_special(), agent_open_path() and agent_open_parent() (agent/path.c).
 *
 * The agent functions resolve on this machine's filesystem, as they would inside a
 * sandbox; only O_PATH opens are made (nothing is read, written or created), so
 * agent_mkdir_p() is left out: it creates directories.
 *
 * Input: byte 0 picks the cwd relative paths are joined to, the rest is the path (as
 * the JSON string it arrives in, NULs included; C callers see it up to the first NUL). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "basic/log.h"
#include "daemon/api/api.h"

#define PATH_MAX_BYTES 4096

static char long_cwd[PATH_MAX_BYTES + 2];
static const char *cwds[] = {"/root", "/", "/a/b/", "/tmp/..", long_cwd + 4, long_cwd};

static void check_resolve(const char *path, const char *cwd) {
        ForgeError err = {0};
        char *resolved = NULL;
        int r = api_resolve_path(path, cwd, &resolved, &err);

        if (r < 0) {
                if (resolved || (strcmp(err.code, "invalid_path") != 0 && strcmp(err.code, "internal") != 0))
                        abort();
                return;
        }
        if (!resolved || !path[0] || strlen(resolved) > PATH_MAX_BYTES)
                abort();
        if (path[0] == '/' ? strcmp(resolved, path) != 0
                           : strncmp(resolved, cwd, strlen(cwd)) != 0 || resolved[strlen(cwd)] != '/' ||
                                     strcmp(resolved + strlen(cwd) + 1, path) != 0)
                abort();
        free(resolved);
}

/* The JSON string as the API receives it: NULs refused, anything else passed on. */
static void check_json_path(const uint8_t *data, size_t size) {
        json_t *body = json_object(), *s = json_stringn((const char *) data, size);
        ForgeError err = {0};
        const char *path;
        int r;

        if (!body)
                abort();
        if (!s) { /* not UTF-8: jansson refuses it when parsing too */
                json_decref(body);
                return;
        }
        json_object_set_new(body, "path", s);
        r = json_get_path(body, "path", &path, &err);
        if ((r == 0) != (memchr(data, 0, size) == NULL))
                abort();
        if (r == 0 && strlen(path) != size)
                abort();
        json_decref(body);
}

static void check_json_string(const char *path) {
        json_t *j = api_json_string(path);

        /* Bytes that are not UTF-8 are replaced, so there is always a string. */
        if (!j || !json_is_string(j))
                abort();
        json_decref(j);
}

static void check_agent(const char *path) {
        int r = agent_path_check(path), fd = -1, dirfd = -1;
        char *name = NULL;

        if ((r == 0) != (path[0] == '/' && strlen(path) <= PATH_MAX_BYTES))
                abort();
        (void) agent_name_is_special(path);
        if (agent_open_path(path, O_PATH | O_NOFOLLOW, &fd) == 0)
                close(fd);
        else if (r < 0 && fd != -1)
                abort();
        if (agent_open_parent(path, &dirfd, &name) == 0) {
                /* One component, never a separator; "." only for the root. */
                if (!name[0] || strchr(name, '/'))
                        abort();
                free(name);
                close(dirfd);
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_setup(LOG_LEVEL_ERROR, 0);
        long_cwd[0] = '/';
        memset(long_cwd + 1, 'c', sizeof(long_cwd) - 2);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *cwd;
        char *path;

        if (size < 1)
                return 0;
        cwd = cwds[data[0] % (sizeof(cwds) / sizeof(cwds[0]))];
        data++;
        size--;
        path = strndup((const char *) data, size);
        if (!path)
                abort();
        check_resolve(path, cwd);
        check_json_path(data, size);
        check_json_string(path);
        check_agent(path);
        free(path);
        return 0;
}
