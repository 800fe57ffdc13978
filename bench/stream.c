/* Streaming benchmark: bytes of `head -c N /dev/zero` run in a sandbox and followed
 * through forged's SSE output stream by a client that decodes every event (libforge:
 * SSE parse, JSON, base64), beside the same bytes through a local pipe
 * (`head -c N /dev/zero | cat > /dev/null`) in the same run; and the time to the first
 * byte of a follow after starting a process, beside spawning the same locally.
 * Absolute times on shared machines are noise: the ratios are the result. */
#include <forge/forge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct Count {
        double start, first;
        uint64_t bytes, dropped;
        int status;
} Count;

static int on_event(const ForgeProcessEvent *ev, void *userdata) {
        Count *c = userdata;

        if (ev->type == FORGE_EVENT_STDOUT) {
                if (c->first == 0 && ev->size > 0)
                        c->first = now_s();
                c->bytes += ev->size;
        } else if (ev->type == FORGE_EVENT_DROPPED)
                c->dropped += ev->dropped;
        else if (ev->type == FORGE_EVENT_EXIT)
                c->status = forge_process_exit_status(ev->process);
        return 0;
}

static int follow_run(ForgeClient *c, const char *id, const char *command, ForgeOutputEncoding enc, Count *ret) {
        ForgeProcessOptions o = {.command = command};
        ForgeClientError err = {};
        ForgeProcess p = {};
        int r;

        *ret = (Count){.start = now_s()};
        r = forge_process_start(c, id, &o, &p, &err);
        if (r >= 0)
                r = forge_process_follow(c, id, p.pid, enc, on_event, ret, &err);
        forge_process_clear(&p);
        if (r < 0)
                fprintf(stderr, "stream: %s (%s)\n", err.message, err.code);
        return r;
}

/* The local peer: sh -c command, stdout through a pipe read by us. */
static double local_run(const char *command, bool first_byte_only) {
        double t0 = now_s(), first = 0;
        char buf[65536];
        FILE *f = popen(command, "r");
        size_t n;

        if (!f)
                return -1;
        while ((n = fread(buf, 1, first_byte_only ? 1 : sizeof(buf), f)) > 0) {
                if (first == 0)
                        first = now_s();
                if (first_byte_only)
                        break;
        }
        pclose(f);
        return (first_byte_only ? first : now_s()) - t0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        const char *url = getenv("FORGE_URL") ? getenv("FORGE_URL") : FORGE_DEFAULT_URL;
        long long size = argc > 1 ? atoll(argv[1]) : 1LL << 30;
        int rounds = argc > 2 ? atoi(argv[2]) : 10;
        ForgeClientError err = {};
        ForgeClient *c = NULL;
        ForgeSandbox sb = {};
        struct utsname u;
        char cmd[128];
        int status = 0;

        setvbuf(stdout, NULL, _IOLBF, 0);
        uname(&u);
        printf("machine: %ld cpus, %s %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine);
        if (forge_client_new(url, &c, &err) < 0 || forge_sandbox_create(c, NULL, &sb, &err) < 0) {
                fprintf(stderr, "stream: %s (%s)\n", err.message, err.code);
                return 1;
        }

        printf("\n== throughput: head -c %lld /dev/zero\n", size);
        snprintf(cmd, sizeof(cmd), "head -c %lld /dev/zero", size);
        {
                char local[192];
                double t_pipe;
                snprintf(local, sizeof(local), "%s | cat > /dev/null", cmd);
                double t0 = now_s();
                if (system(local) != 0)
                        status = 1;
                t_pipe = now_s() - t0;
                printf("%-28s %8.3f s  %9.1f MiB/s\n", "local pipe (peer)", t_pipe, (double) size / t_pipe / 1048576);
                for (int e = 0; e < 2; e++) {
                        ForgeOutputEncoding enc = e == 0 ? FORGE_ENCODING_BASE64 : FORGE_ENCODING_TEXT;
                        Count k;
                        double t;
                        if (follow_run(c, sb.id, cmd, enc, &k) < 0) {
                                status = 1;
                                continue;
                        }
                        t = now_s() - k.start;
                        printf("%-28s %8.3f s  %9.1f MiB/s  ratio to pipe %.3f  received %llu dropped %llu%s\n",
                               e == 0 ? "forged SSE, base64" : "forged SSE, text", t,
                               (double) k.bytes / t / 1048576, ((double) k.bytes / t) / ((double) size / t_pipe),
                               (unsigned long long) k.bytes, (unsigned long long) k.dropped,
                               k.bytes + k.dropped == (uint64_t) size ? "" : "  (BYTES MISSING)");
                        if (k.bytes + k.dropped != (uint64_t) size)
                                status = 1;
                }
        }

        printf("\n== time to first byte: start `echo x` and follow (median of %d)\n", rounds);
        {
                double remote[64], local[64];
                rounds = rounds > 64 ? 64 : rounds < 1 ? 1 : rounds;
                for (int i = 0; i < rounds; i++) {
                        Count k;
                        if (follow_run(c, sb.id, "echo x", FORGE_ENCODING_BASE64, &k) < 0 || k.first == 0) {
                                status = 1;
                                remote[i] = 0;
                        } else
                                remote[i] = k.first - k.start;
                        local[i] = local_run("echo x", true);
                }
                qsort(remote, (size_t) rounds, sizeof(double), cmp_double);
                qsort(local, (size_t) rounds, sizeof(double), cmp_double);
                printf("%-28s %8.2f ms\n", "local sh -c + pipe (peer)", local[rounds / 2] * 1e3);
                printf("%-28s %8.2f ms  ratio to local %.1f\n", "forged start + follow", remote[rounds / 2] * 1e3,
                       remote[rounds / 2] / local[rounds / 2]);
        }
        forge_sandbox_destroy(c, sb.id, NULL);
        forge_sandbox_clear(&sb);
        forge_client_free(c);
        return status;
}
