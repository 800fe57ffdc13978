/* The probe's longer-running subcommands: resource bombs that report where the kernel
 * stopped them, holders that keep a per-user quota exhausted while a neighbour is
 * tested, the symlink/directory flipper of the file API race, and small inspectors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define RENAME_EXCHANGE_ 2
#define KEY_SPEC_PROCESS_KEYRING_ (-2)

static const char *err_or_none(int e) {
        return e ? errno_name(e) : "none";
}

static long arg_long(int argc, char **argv, int i, long fallback) {
        return i < argc ? strtol(argv[i], NULL, 10) : fallback;
}

static double now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* forkbomb MAX: fork sleeping children until fork fails; report how far it got. */
int cmd_forkbomb(int argc, char **argv) {
        long max = arg_long(argc, argv, 1, 100000);
        pid_t *pids = calloc((size_t) max, sizeof(pid_t));
        long n = 0;
        int err = 0;

        if (!pids)
                return 1;
        for (; n < max; n++) {
                pid_t pid = fork();
                if (pid < 0) {
                        err = errno;
                        break;
                }
                if (pid == 0) {
                        alarm(60);
                        for (;;)
                                pause();
                }
                pids[n] = pid;
        }
        printf("forks=%ld errno=%s\n", n, err_or_none(err));
        for (long i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
        for (long i = 0; i < n; i++)
                waitpid(pids[i], NULL, 0);
        return 0;
}

static void *thread_sleep(void *arg) {
        for (;;)
                pause();
        return arg;
}

/* threadbomb MAX: create sleeping threads until pthread_create fails. */
int cmd_threadbomb(int argc, char **argv) {
        long max = arg_long(argc, argv, 1, 100000);
        pthread_attr_t attr;
        long n = 0;
        int err = 0;

        alarm(60);
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        for (; n < max; n++) {
                pthread_t t;
                int r = pthread_create(&t, &attr, thread_sleep, NULL);
                if (r != 0) {
                        err = r;
                        break;
                }
        }
        printf("threads=%ld errno=%s\n", n, err_or_none(err));
        fflush(stdout);
        _exit(0);
}

/* nofile: raise the soft fd limit to the hard one, then open until it fails. */
int cmd_nofile(int argc, char **argv) {
        struct rlimit rl, core, fsize;
        long n = 0;
        int err = 0;

        getrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_CORE, &core);
        getrlimit(RLIMIT_FSIZE, &fsize);
        printf("soft=%lld hard=%lld core=%lld fsize=%lld\n", (long long) rl.rlim_cur, (long long) rl.rlim_max,
               (long long) core.rlim_cur, (long long) fsize.rlim_cur);
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                printf("raise errno=%s\n", errno_name(errno));
        for (; n < (1L << 21); n++) {
                if (open("/dev/null", O_RDONLY) < 0) {
                        err = errno;
                        break;
                }
        }
        printf("opened=%ld errno=%s\n", n, err_or_none(err));
        return 0;
}

/* fill PATH MAXMB: write 1 MiB blocks until a write fails (SIGXFSZ ignored, so the
 * file size limit shows as EFBIG), then fsync. */
int cmd_fill(int argc, char **argv) {
        static char block[1 << 20];
        long max = arg_long(argc, argv, 2, 1024);
        long long written = 0;
        int err = 0, fsync_err = 0;

        if (argc < 2)
                return 2;
        signal(SIGXFSZ, SIG_IGN);
        memset(block, 'x', sizeof(block));
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
                printf("written=0 errno=%s\n", errno_name(errno));
                return 0;
        }
        while (written < max * (long long) sizeof(block)) {
                ssize_t w = write(fd, block, sizeof(block));
                if (w < 0) {
                        err = errno;
                        break;
                }
                written += w;
        }
        if (fsync(fd) < 0)
                fsync_err = errno;
        close(fd);
        printf("written=%lld errno=%s fsync=%s\n", written, err_or_none(err), err_or_none(fsync_err));
        return 0;
}

/* inodes DIR MAX: create empty files until creation fails. */
int cmd_inodes(int argc, char **argv) {
        long max = arg_long(argc, argv, 2, 100000);
        char path[4096];
        long n = 0;
        int err = 0;

        if (argc < 2)
                return 2;
        mkdir(argv[1], 0755);
        for (; n < max; n++) {
                snprintf(path, sizeof(path), "%s/%ld", argv[1], n);
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd < 0) {
                        err = errno;
                        break;
                }
                close(fd);
        }
        printf("created=%ld errno=%s\n", n, err_or_none(err));
        return 0;
}

static volatile int burning = 1;

static void *thread_burn(void *arg) {
        volatile uint64_t x = 0;
        while (burning)
                x++;
        return arg;
}

/* burn THREADS SECS: spin; report CPU time over wall time (1.0 = one full core). */
int cmd_burn(int argc, char **argv) {
        long threads = arg_long(argc, argv, 1, 2), secs = arg_long(argc, argv, 2, 5);
        struct timespec c0, c1;
        pthread_t t[64];

        if (threads < 1 || threads > 64)
                return 2;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        double w0 = now_mono();
        for (long i = 0; i < threads; i++)
                pthread_create(&t[i], NULL, thread_burn, NULL);
        sleep((unsigned) secs);
        burning = 0;
        for (long i = 0; i < threads; i++)
                pthread_join(t[i], NULL);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double wall = now_mono() - w0;
        double cpu = (double) (c1.tv_sec - c0.tv_sec) + (double) (c1.tv_nsec - c0.tv_nsec) / 1e9;
        printf("cpu=%.3f wall=%.3f ratio=%.3f\n", cpu, wall, cpu / wall);
        return 0;
}

/* zombies N [DELAY_MS]: N children exit at once and are never waited for; after the
 * delay we exit too, so they are orphaned zombies for a reaper to collect. */
int cmd_zombies(int argc, char **argv) {
        long n = arg_long(argc, argv, 1, 20), delay = arg_long(argc, argv, 2, 0);
        long made = 0;

        for (; made < n; made++) {
                pid_t pid = fork();
                if (pid < 0)
                        break;
                if (pid == 0)
                        _exit(0);
        }
        printf("zombies=%ld\n", made);
        fflush(stdout);
        if (delay > 0)
                usleep((useconds_t) delay * 1000);
        return 0;
}

static long hold_one(const char *kind, long i) {
        char name[64];

        if (strcmp(kind, "inotify") == 0)
                return inotify_init1(IN_CLOEXEC);
        if (strcmp(kind, "mq") == 0) {
                long attr[8] = {0, 10, 8192, 0}; /* struct mq_attr: flags, maxmsg, msgsize */
                snprintf(name, sizeof(name), "forge-hold-%d-%ld", (int) getpid(), i);
                return syscall(SYS_mq_open, name, O_CREAT | O_RDWR | O_CLOEXEC, 0600, attr);
        }
        if (strcmp(kind, "keys") == 0) {
                static char payload[512];
                snprintf(name, sizeof(name), "forge-hold-%ld", i);
                return syscall(SYS_add_key, "user", name, payload, sizeof(payload), KEY_SPEC_PROCESS_KEYRING_);
        }
        errno = EINVAL;
        return -1;
}

/* hold KIND MAX SECS: take inotify instances, message queues or keys until the kernel
 * refuses (or MAX), report, then keep them for SECS seconds. */
int cmd_hold(int argc, char **argv) {
        long max = arg_long(argc, argv, 2, 100000), secs = arg_long(argc, argv, 3, 0);
        long n = 0;
        int err = 0;

        if (argc < 2)
                return 2;
        for (; n < max; n++)
                if (hold_one(argv[1], n) < 0) {
                        err = errno;
                        break;
                }
        printf("%s=%ld errno=%s\n", argv[1], n, err_or_none(err));
        fflush(stdout);
        if (secs > 0)
                sleep((unsigned) secs);
        return 0;
}

/* flip SECS PATH ALT...: swap PATH with each ALT in turn (renameat2 RENAME_EXCHANGE)
 * as fast as possible, so PATH is by turns a directory and symlinks. */
int cmd_flip(int argc, char **argv) {
        long secs = arg_long(argc, argv, 1, 10);
        unsigned long flips = 0;

        if (argc < 4)
                return 2;
        double end = now_mono() + (double) secs;
        printf("flipping\n");
        fflush(stdout);
        while (now_mono() < end)
                for (int i = 3; i < argc; i++) {
                        if (syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[i], RENAME_EXCHANGE_) < 0) {
                                printf("flips=%lu errno=%s\n", flips, errno_name(errno));
                                return 1;
                        }
                        flips++;
                }
        printf("flips=%lu errno=none\n", flips);
        return 0;
}

/* fds: our open descriptors and what they point at (the listing's own fd left out). */
int cmd_fds(int argc, char **argv) {
        char path[300], target[4096];
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;

        if (!d)
                return 1;
        while ((e = readdir(d))) {
                if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == dirfd(d))
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
                ssize_t n = readlink(path, target, sizeof(target) - 1);
                target[n < 0 ? 0 : n] = 0;
                printf("%s %s\n", e->d_name, target);
        }
        closedir(d);
        return 0;
}

static void ipc_report(const char *what, long r) {
        if (r < 0)
                printf("%s %s\n", what, errno_name(errno));
        else
                printf("%s ok:%ld\n", what, r);
}

/* ipc make|look KEY NAME: create (or look up) a SysV shared memory segment, message
 * queue and semaphore set under KEY, and a POSIX message queue NAME. */
int cmd_ipc(int argc, char **argv) {
        if (argc < 4)
                return 2;
        bool make = strcmp(argv[1], "make") == 0;
        key_t key = (key_t) strtol(argv[2], NULL, 0);
        int create = make ? IPC_CREAT | 0600 : 0;

        ipc_report("shm", shmget(key, make ? 4096 : 0, create));
        ipc_report("msg", msgget(key, create));
        ipc_report("sem", semget(key, make ? 1 : 0, create));
        ipc_report("mq", syscall(SYS_mq_open, argv[3], make ? O_CREAT | O_RDWR : O_RDONLY, 0600, NULL));
        return 0;
}
