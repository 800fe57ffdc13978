/* forged: parse flags, build the manager, serve the API, run the loop. */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "daemon/agentc.h"
#include "daemon/api/api.h"
#include "daemon/core/lifecycle.h"
#include "daemon/core/pool.h"

typedef struct Options {
        char host[64];
        int port;
        const char *state_dir;
        const char *isolator;
        const char *agent_path;
        unsigned max_sandboxes;
        unsigned pool_size;
        uint64_t idle_timeout_ms;
        uint64_t agent_timeout_ms;
        int64_t sandbox_idle_timeout_s;
        LogLevel log_level;
        bool log_json;
} Options;

static void usage(FILE *f) {
        fputs("Usage: forged [OPTIONS]\n"
              "Serve the Forge sandbox API.\n\n"
              "  --listen HOST:PORT     address to serve on (default 127.0.0.1:3456)\n"
              "  --state-dir DIR        where sandboxes and images live (default /var/lib/forge)\n"
              "  --isolator auto|ns     default isolator for new sandboxes (default auto)\n"
              "  --agent PATH           the static forge-agent (default: beside forged)\n"
              "  --max-sandboxes N      refuse creates past N sandboxes (default 256)\n"
              "  --pool N               keep N warm sandboxes of the default image and\n"
              "                         limits ready for creates (default 0)\n"
              "  --idle-timeout-ms N    close connections that send no complete request\n"
              "                         head within N ms (default 60000)\n"
              "  --idle-timeout-s N     suspend sandboxes idle for N s unless they say\n"
              "                         otherwise (default 0: never)\n"
              "  --agent-timeout-ms N   a sandbox's agent that sends nothing for N ms while\n"
              "                         a request waits for its reply is taken for dead:\n"
              "                         the call fails (503) and the next one reconnects\n"
              "                         (default 60000)\n"
              "  --log-level LEVEL      error, warn, info or debug (default info)\n"
              "  --log-json             write log lines as JSON\n"
              "  --help, --version\n",
              f);
}

/* "HOST:PORT" or "[V6]:PORT". */
static int parse_listen(const char *s, Options *o) {
        const char *colon = strrchr(s, ':');
        const char *host = s;
        size_t host_len;
        char *end;
        long port;

        if (!colon)
                return -EINVAL;
        host_len = (size_t) (colon - s);
        if (host_len >= 2 && s[0] == '[' && colon[-1] == ']') {
                host++;
                host_len -= 2;
        }
        port = strtol(colon + 1, &end, 10);
        if (host_len == 0 || host_len >= sizeof(o->host) || *end || port < 0 || port > 65535)
                return -EINVAL;
        memcpy(o->host, host, host_len);
        o->host[host_len] = 0;
        o->port = (int) port;
        return 0;
}

static int parse_options(int argc, char **argv, Options *o) {
        static const struct option longopts[] = {
                {"listen", required_argument, NULL, 'l'},   {"state-dir", required_argument, NULL, 's'},
                {"isolator", required_argument, NULL, 'i'}, {"agent", required_argument, NULL, 'a'},
                {"max-sandboxes", required_argument, NULL, 'm'},
                {"idle-timeout-s", required_argument, NULL, 'I'},
                {"log-level", required_argument, NULL, 'L'},
                {"log-json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {"idle-timeout-ms", required_argument, NULL, 't'},
                {"pool", required_argument, NULL, 'p'},
                {"agent-timeout-ms", required_argument, NULL, 'A'},
                {"version", no_argument, NULL, 'V'},
                {0},
        };
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "", longopts, NULL)) >= 0)
                switch (c) {
                case 'l':
                        if (parse_listen(optarg, o) < 0) {
                                fprintf(stderr, "forged: --listen wants HOST:PORT, got '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 's':
                        o->state_dir = optarg;
                        break;
                case 'i':
                        o->isolator = optarg;
                        break;
                case 'a':
                        o->agent_path = optarg;
                        break;
                case 'm':
                        o->max_sandboxes = (unsigned) strtoul(optarg, &end, 10);
                        if (*end || o->max_sandboxes == 0) {
                                fprintf(stderr, "forged: --max-sandboxes wants a positive number\n");
                                return -EINVAL;
                        }
                        break;
                case 'p':
                        o->pool_size = (unsigned) strtoul(optarg, &end, 10);
                        if (*end || !*optarg || o->pool_size > 1024) {
                                fprintf(stderr, "forged: --pool wants a number from 0 to 1024\n");
                                return -EINVAL;
                        }
                        break;
                case 't':
                        o->idle_timeout_ms = strtoull(optarg, &end, 10);
                        if (*end || o->idle_timeout_ms < 100) {
                                fprintf(stderr, "forged: --idle-timeout-ms wants a number of ms >= 100\n");
                                return -EINVAL;
                        }
                        break;
                case 'A':
                        o->agent_timeout_ms = strtoull(optarg, &end, 10);
                        if (*end || !*optarg || o->agent_timeout_ms < 100) {
                                fprintf(stderr, "forged: --agent-timeout-ms wants a number of ms >= 100\n");
                                return -EINVAL;
                        }
                        break;
                case 'I':
                        o->sandbox_idle_timeout_s = strtoll(optarg, &end, 10);
                        if (*end || !*optarg || o->sandbox_idle_timeout_s < 0) {
                                fprintf(stderr, "forged: --idle-timeout-s wants a number of seconds >= 0\n");
                                return -EINVAL;
                        }
                        break;
                case 'L':
                        if (log_level_from_string(optarg, &o->log_level) < 0) {
                                fprintf(stderr, "forged: unknown log level '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'j':
                        o->log_json = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                case 'V':
                        puts("forged " FORGE_VERSION);
                        exit(EXIT_SUCCESS);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "forged: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

/* forge-agent ships beside forged (build/bin, or the install prefix's bin). */
static char *agent_path_default(void) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *path = NULL;

        if (n < 0)
                return NULL;
        self[n] = 0;
        if (asprintf(&path, "%s/forge-agent", dirname(self)) < 0)
                return NULL;
        return path;
}

/* `auto` is the strongest isolator this host runs well: qemu with KVM, else ns. */
static const IsolatorOps *isolator_choose(const char *name, const char *state_dir, ForgeError *err) {
        char why[256] = "";
        bool is_auto = strcmp(name, "auto") == 0;
        const IsolatorOps *iso = is_auto ? isolator_auto(state_dir, why, sizeof(why)) : isolator_by_name(name);

        if (!iso) {
                forge_error_set(err, EINVAL, "invalid_request", "unknown isolator '%s'", name);
                return NULL;
        }
        if (iso->available(err) < 0)
                return NULL;
        if (is_auto)
                log_info("isolator auto: using %s (%s)", iso->name, why);
        return iso;
}

static void on_stop_signal(uv_signal_t *s, int signum) {
        log_info("signal %d: stopping; sandboxes keep running and are reattached on the next start", signum);
        uv_stop(s->loop);
}

int main(int argc, char **argv) {
        Options o = {
                .host = "127.0.0.1",
                .port = 3456,
                .state_dir = "/var/lib/forge",
                .isolator = "auto",
                .max_sandboxes = 256,
                .idle_timeout_ms = 60 * 1000,
                .agent_timeout_ms = AGENTC_SILENCE_TIMEOUT_MS,
                .log_level = LOG_LEVEL_INFO,
        };
        _cleanup_free_ char *agent_default = NULL;
        HttpLimits limits = {
                .max_header_bytes = 64 * 1024,
                .max_body_bytes = 64 * 1024 * 1024,
                .max_connections = 1024,
        };
        ForgeError err = {0};
        ManagerConfig cfg;
        Manager *m = NULL;
        HttpServer *server = NULL;
        uv_signal_t sigterm, sigint;
        Api api;
        int r;

        if (parse_options(argc, argv, &o) < 0)
                return 2;
        if (o.pool_size > o.max_sandboxes) {
                fprintf(stderr, "forged: --pool cannot be more than --max-sandboxes (%u)\n", o.max_sandboxes);
                return 2;
        }
        log_setup(o.log_level, o.log_json);
        limits.idle_timeout_ms = o.idle_timeout_ms;
        signal(SIGPIPE, SIG_IGN);
        if (!o.agent_path)
                o.agent_path = agent_default = agent_path_default();
        if (!o.agent_path || access(o.agent_path, X_OK) < 0) {
                log_error("cannot find forge-agent (looked at %s); pass --agent", o.agent_path ? o.agent_path : "?");
                return 1;
        }
        cfg = (ManagerConfig){.state_dir = o.state_dir,
                              .agent_path = o.agent_path,
                              .max_sandboxes = o.max_sandboxes,
                              .idle_timeout_s = o.sandbox_idle_timeout_s,
                              .pool_size = o.pool_size,
                              .agent_timeout_ms = o.agent_timeout_ms};
        cfg.default_isolator = isolator_choose(o.isolator, o.state_dir, &err);
        if (!cfg.default_isolator || manager_new(uv_default_loop(), &cfg, &m, &err) < 0) {
                log_error("cannot start: %s", err.message);
                return 1;
        }
        r = manager_reconcile(m);
        if (r < 0)
                log_warn_errno(r, "reconcile could not remove every leftover");
        r = manager_sweep_start(m);
        if (r < 0) {
                log_error_errno(r, "cannot start the idle and TTL timer");
                return 1;
        }
        api = (Api){.manager = m, .isolators = isolator_ready_names()};
        r = http_server_new(uv_default_loop(), &limits, api_handle, &api, &server);
        if (r >= 0)
                r = http_server_listen(server, o.host, o.port);
        if (r < 0) {
                log_error_errno(r, "cannot listen on %s:%d", o.host, o.port);
                return 1;
        }
        pool_start(m);
        uv_signal_init(uv_default_loop(), &sigterm);
        uv_signal_init(uv_default_loop(), &sigint);
        uv_signal_start(&sigterm, on_stop_signal, SIGTERM);
        uv_signal_start(&sigint, on_stop_signal, SIGINT);
        log_info("forged %s listening on %s:%d, state in %s, %zu sandboxes", FORGE_VERSION, o.host, o.port,
                 o.state_dir, m->n_sandboxes);
        uv_run(uv_default_loop(), UV_RUN_DEFAULT);
        manager_quiesce(m);
        http_server_free(server);
        manager_free(m);
        return 0;
}
