/* Cgroup layout discovery and the backend-independent operations. */
#include "daemon/isolator/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/log.h"
#include "basic/macros.h"
#include "basic/time-util.h"

static const char *const controller_names[_CGROUP_CONTROLLER_MAX] = {
        [CGROUP_MEMORY] = "memory", [CGROUP_CPU] = "cpu",         [CGROUP_CPUACCT] = "cpuacct",
        [CGROUP_PIDS] = "pids",     [CGROUP_FREEZER] = "freezer",
};

#define CONTROLLER_BIT(c) (1u << (c))
#define KILL_TIMEOUT_MS 10000

bool cgroup_id_is_valid(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n > SANDBOX_ID_MAX || id[0] == '.' || id[0] == '-')
                return false;
        return strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

/* Does the comma-separated list hold the word? */
static bool list_has_word(const char *list, size_t len, const char *word) {
        size_t wlen = strlen(word);
        const char *end = list + len;

        for (const char *p = list; p < end;) {
                const char *comma = memchr(p, ',', (size_t) (end - p));
                size_t n = comma ? (size_t) (comma - p) : (size_t) (end - p);
                if (n == wlen && memcmp(p, word, n) == 0)
                        return true;
                p += n + 1;
        }
        return false;
}

/* mountinfo escapes blanks as \040 and friends; cgroup mount points have none in practice
 * but decode them anyway. */
static void unescape_octal(char *s) {
        char *out = s;
        for (char *in = s; *in; in++) {
                if (in[0] == '\\' && in[1] >= '0' && in[1] <= '7' && in[2] && in[3]) {
                        *out++ = (char) (((in[1] - '0') << 6) | ((in[2] - '0') << 3) | (in[3] - '0'));
                        in += 3;
                } else
                        *out++ = *in;
        }
        *out = 0;
}

typedef struct MountEntry {
        char root[PATH_MAX];
        char point[PATH_MAX];
        char fstype[32];
        char superopts[256];
} MountEntry;

static int mountinfo_parse_line(const char *line, size_t len, MountEntry *ret) {
        char buf[3 * PATH_MAX];
        char *f[6] = {0}, *save = NULL, *dash;

        if (len >= sizeof(buf))
                return -E2BIG;
        memcpy(buf, line, len);
        buf[len] = 0;
        dash = strstr(buf, " - ");
        if (!dash)
                return -EINVAL;
        *dash = 0;
        f[0] = strtok_r(buf, " ", &save); /* id */
        for (int i = 1; i < 5 && f[i - 1]; i++)
                f[i] = strtok_r(NULL, " ", &save); /* parent, dev, root, mount point */
        if (!f[4])
                return -EINVAL;
        save = NULL;
        char *fstype = strtok_r(dash + 3, " ", &save);
        char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
        char *superopts = source ? strtok_r(NULL, " ", &save) : NULL;
        if (!superopts)
                return -EINVAL;
        snprintf(ret->root, sizeof(ret->root), "%s", f[3]);
        snprintf(ret->point, sizeof(ret->point), "%s", f[4]);
        snprintf(ret->fstype, sizeof(ret->fstype), "%s", fstype);
        snprintf(ret->superopts, sizeof(ret->superopts), "%s", superopts);
        unescape_octal(ret->root);
        unescape_octal(ret->point);
        return 0;
}

/* A mount shows the hierarchy from its root; strip that prefix off forged's path. */
static void join_mount_path(char *buf, size_t size, const MountEntry *m, const char *path) {
        size_t rlen = strlen(m->root);

        if (strcmp(m->root, "/") != 0 && strncmp(path, m->root, rlen) == 0)
                path += rlen;
        if (strcmp(path, "/") == 0)
                path = "";
        snprintf(buf, size, "%s%s", m->point, path);
}

/* Finds forged's path in the hierarchy whose /proc/self/cgroup line matches. */
static const char *own_path_for(const char *proc_cgroup, bool v2, const char *controller, char *buf,
                                size_t size) {
        for (const char *line = proc_cgroup; line && *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                const char *c1 = memchr(line, ':', len);
                const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t) (c1 + 1 - line)) : NULL;
                if (c2) {
                        bool match = v2 ? (c2 == c1 + 1 && strncmp(line, "0:", 2) == 0)
                                        : list_has_word(c1 + 1, (size_t) (c2 - c1 - 1), controller);
                        if (match) {
                                snprintf(buf, size, "%.*s", (int) (len - (size_t) (c2 + 1 - line)), c2 + 1);
                                return buf;
                        }
                }
                line = nl ? nl + 1 : NULL;
        }
        return NULL;
}

int cgroup_mounts_parse(const char *proc_cgroup, const char *mountinfo, CgroupMounts *ret) {
        char own[PATH_MAX];
        MountEntry m;

        memset(ret, 0, sizeof(*ret));
        for (const char *line = mountinfo; line && *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                if (mountinfo_parse_line(line, len, &m) >= 0) {
                        if (strcmp(m.fstype, "cgroup2") == 0 && ret->unified[0] == 0 &&
                            own_path_for(proc_cgroup, true, NULL, own, sizeof(own)))
                                join_mount_path(ret->unified, sizeof(ret->unified), &m, own);
                        for (int c = 0; strcmp(m.fstype, "cgroup") == 0 && c < _CGROUP_CONTROLLER_MAX; c++)
                                if (ret->v1[c][0] == 0 &&
                                    list_has_word(m.superopts, strlen(m.superopts), controller_names[c]) &&
                                    own_path_for(proc_cgroup, false, controller_names[c], own, sizeof(own)))
                                        join_mount_path(ret->v1[c], sizeof(ret->v1[c]), &m, own);
                }
                line = nl ? nl + 1 : NULL;
        }
        return 0;
}

static char group_name[CGROUP_GROUP_NAME_MAX] = "forge";

void cgroup_group_name(const char *state_dir, char *ret, size_t size) {
        uint32_t h = 2166136261u;

        for (const char *p = state_dir; *p; p++)
                h = (h ^ (uint8_t) *p) * 16777619u;
        snprintf(ret, size, "forge-%08x", h);
}

void cgroup_set_group(const char *name) {
        snprintf(group_name, sizeof(group_name), "%s", name);
}

const char *cgroup_group(void) {
        return group_name;
}

static CgroupHierarchy *layout_add_v1(CgroupLayout *l, const char *own, CgroupController c) {
        char base[PATH_MAX];

        snprintf(base, sizeof(base), "%s/%s", own, cgroup_group());
        for (size_t i = 0; i < l->n_hierarchies; i++)
                if (!l->hierarchies[i].v2 && strcmp(l->hierarchies[i].base, base) == 0) {
                        l->hierarchies[i].controllers |= CONTROLLER_BIT(c);
                        return &l->hierarchies[i];
                }
        if (l->n_hierarchies >= CGROUP_HIERARCHY_MAX)
                return NULL;
        CgroupHierarchy *h = &l->hierarchies[l->n_hierarchies++];
        h->v2 = false;
        h->controllers = CONTROLLER_BIT(c);
        snprintf(h->base, sizeof(h->base), "%s", base);
        return h;
}

static int layout_build(CgroupLayout *l) {
        static char proc_cgroup[16384], mountinfo[65536];
        static CgroupMounts mounts;
        int r;

        r = read_full_file("/proc/self/cgroup", proc_cgroup, sizeof(proc_cgroup), NULL);
        if (r < 0)
                return r;
        r = read_full_file("/proc/self/mountinfo", mountinfo, sizeof(mountinfo), NULL);
        if (r < 0)
                return r;
        cgroup_mounts_parse(proc_cgroup, mountinfo, &mounts);

        memset(l, 0, sizeof(*l));
        l->v2_index = -1;
        if (mounts.unified[0]) {
                CgroupHierarchy *h = &l->hierarchies[0];
                r = cgroup_v2_prepare(mounts.unified, h);
                if (r < 0)
                        log_warn_errno(r, "cgroup: cannot use the unified hierarchy at %s", mounts.unified);
                else {
                        l->v2_index = 0;
                        l->n_hierarchies = 1;
                }
        }
        for (int c = 0; c < _CGROUP_CONTROLLER_MAX; c++) {
                if (l->v2_index >= 0 && (l->hierarchies[0].controllers & CONTROLLER_BIT(c)))
                        continue;
                if (mounts.v1[c][0] &&
                    (c != CGROUP_CPUACCT ||
                     !(l->v2_index >= 0 && (l->hierarchies[0].controllers & CONTROLLER_BIT(CGROUP_CPU))))) {
                        if (!layout_add_v1(l, mounts.v1[c], (CgroupController) c))
                                return -E2BIG;
                        continue;
                }
                /* Core v2 features stand in for v1 cpuacct and freezer. */
                if (l->v2_index >= 0 && (c == CGROUP_CPUACCT || c == CGROUP_FREEZER))
                        l->hierarchies[0].controllers |= CONTROLLER_BIT(c);
        }
        if (l->n_hierarchies == 0)
                return -ENOENT;
        for (int c = CGROUP_MEMORY; c <= CGROUP_PIDS; c++)
                if (c != CGROUP_CPUACCT && !cgroup_layout_find(l, (CgroupController) c))
                        log_warn("cgroup: no %s controller for forged's cgroup; that limit will not apply",
                                 controller_names[c]);
        return 0;
}

static CgroupLayout layout;
static int layout_error;
static bool layout_done;
static pthread_once_t layout_once = PTHREAD_ONCE_INIT;

static void layout_init(void) {
        layout_error = layout_build(&layout);
        __atomic_store_n(&layout_done, true, __ATOMIC_RELEASE);
}

int cgroup_layout_get(const CgroupLayout **ret) {
        pthread_once(&layout_once, layout_init);
        if (layout_error < 0)
                return layout_error;
        *ret = &layout;
        return 0;
}

const CgroupHierarchy *cgroup_layout_find(const CgroupLayout *l, CgroupController c) {
        for (size_t i = 0; i < l->n_hierarchies; i++)
                if (l->hierarchies[i].controllers & CONTROLLER_BIT(c))
                        return &l->hierarchies[i];
        return NULL;
}

int cgroup_path(const CgroupHierarchy *h, const char *id, const char *file, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/%s%s%s", h->base, id, file ? "/" : "", file ? file : "");
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

int cgroup_write_knob(const char *dir, const char *knob, const char *value) {
        char path[PATH_MAX];

        if (path_join(path, sizeof(path), dir, knob) < 0)
                return -ENAMETOOLONG;
        return write_string_file(path, value);
}

static int apply_pids(const char *dir, int64_t pids) {
        char value[32] = "max";

        if (pids > 0)
                snprintf(value, sizeof(value), "%" PRId64, pids);
        return cgroup_write_knob(dir, "pids.max", value);
}

/* The limits of the controllers this hierarchy carries, in the backend's spelling. */
static int apply_limits(const CgroupHierarchy *h, const char *dir, const SandboxLimits *limits) {
        const CgroupLimitOps *ops = h->v2 ? &cgroup_v2_limit_ops : &cgroup_v1_limit_ops;
        int r = 0;

        if (h->controllers & (1u << CGROUP_MEMORY))
                r = ops->memory(dir, limits->memory_mb);
        if (r >= 0 && (h->controllers & (1u << CGROUP_CPU)))
                r = ops->cpu(dir, limits->cpus_milli);
        if (r >= 0 && (h->controllers & (1u << CGROUP_PIDS)))
                r = apply_pids(dir, limits->pids);
        return r;
}

/* Every per-sandbox operation starts here: a valid id, and the layout to find it in. */
static int layout_for(const char *id, const CgroupLayout **ret) {
        if (!cgroup_id_is_valid(id))
                return -EINVAL;
        return cgroup_layout_get(ret);
}

int cgroup_create(const char *id, const SandboxLimits *limits) {
        const CgroupLayout *l;
        char dir[PATH_MAX];
        int r;

        r = layout_for(id, &l);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n_hierarchies; i++) {
                const CgroupHierarchy *h = &l->hierarchies[i];
                r = cgroup_path(h, id, NULL, dir, sizeof(dir));
                if (r < 0)
                        return r;
                r = mkdir_p(dir, 0755);
                if (r < 0)
                        return r;
                r = apply_limits(h, dir, limits);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cgroup_attach(const char *id, pid_t pid) {
        const CgroupLayout *l;
        char procs[PATH_MAX], pidstr[32];
        int r;

        r = cgroup_layout_get(&l);
        if (r < 0)
                return r;
        snprintf(pidstr, sizeof(pidstr), "%ld", (long) pid);
        for (size_t i = 0; i < l->n_hierarchies; i++) {
                r = cgroup_path(&l->hierarchies[i], id, "cgroup.procs", procs, sizeof(procs));
                if (r < 0)
                        return r;
                r = write_string_file(procs, pidstr);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cgroup_signal_procs(const char *dir, int sig) {
        char path[PATH_MAX], buf[65536];
        int r, found = 0;

        r = path_join(path, sizeof(path), dir, "cgroup.procs");
        if (r < 0)
                return r;
        r = read_full_file(path, buf, sizeof(buf), NULL);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        for (char *p = buf; *p;) {
                char *end;
                long pid = strtol(p, &end, 10);
                if (end == p)
                        break;
                if (pid > 0 && kill((pid_t) pid, sig) >= 0)
                        found++;
                p = end;
                while (*p == '\n')
                        p++;
        }
        return found;
}

int cgroup_is_populated(const CgroupHierarchy *h, const char *dir) {
        char path[PATH_MAX], buf[4096];
        uint64_t populated;
        size_t len;
        int r;

        r = path_join(path, sizeof(path), dir, h->v2 ? "cgroup.events" : "cgroup.procs");
        if (r < 0)
                return r;
        r = read_full_file(path, buf, sizeof(buf), &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (!h->v2)
                return len > 0;
        r = keyed_u64_find(buf, "populated", &populated);
        return r < 0 ? r : populated != 0;
}

static int any_populated(const CgroupLayout *l, const char *id) {
        char dir[PATH_MAX];
        int r;

        for (size_t i = 0; i < l->n_hierarchies; i++) {
                if (cgroup_path(&l->hierarchies[i], id, NULL, dir, sizeof(dir)) < 0)
                        continue;
                r = cgroup_is_populated(&l->hierarchies[i], dir);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* One round of killing: cgroup.kill where the kernel has it, else freeze (so nothing can
 * fork or exit under us and pids stay valid), SIGKILL every member, thaw. */
static void kill_round(const CgroupLayout *l, const char *id) {
        const CgroupHierarchy *freezer = cgroup_layout_find(l, CGROUP_FREEZER);
        char dir[PATH_MAX], fdir[PATH_MAX];

        if (l->v2_index >= 0 && cgroup_path(&l->hierarchies[l->v2_index], id, NULL, dir, sizeof(dir)) >= 0 &&
            cgroup_v2_kill(dir) >= 0)
                return;
        bool frozen = freezer && !freezer->v2 && cgroup_path(freezer, id, NULL, fdir, sizeof(fdir)) >= 0 &&
                      cgroup_v1_freeze(fdir, true) >= 0;
        for (size_t i = 0; i < l->n_hierarchies; i++)
                if (cgroup_path(&l->hierarchies[i], id, NULL, dir, sizeof(dir)) >= 0)
                        cgroup_signal_procs(dir, SIGKILL);
        if (frozen)
                cgroup_v1_freeze(fdir, false);
}

int cgroup_kill_all(const char *id) {
        const CgroupLayout *l;
        int r;

        r = layout_for(id, &l);
        if (r < 0)
                return r;
        for (long waited = 0; waited < KILL_TIMEOUT_MS; waited += 10) {
                r = any_populated(l, id);
                if (r <= 0)
                        return r;
                if (waited % 200 == 0)
                        kill_round(l, id);
                time_sleep_ms(10);
        }
        return -ETIMEDOUT;
}

void cgroup_remove_group(void) {
        const CgroupLayout *l;

        /* Discovering the layout only to remove what it would make is pointless. */
        if (!__atomic_load_n(&layout_done, __ATOMIC_ACQUIRE) || cgroup_layout_get(&l) < 0)
                return;
        for (size_t i = 0; i < l->n_hierarchies; i++)
                (void) rmdir(l->hierarchies[i].base); /* busy while sandboxes remain: fine */
}

int cgroup_remove(const char *id) {
        const CgroupLayout *l;
        char dir[PATH_MAX];
        int r, ret = 0;

        r = layout_for(id, &l);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n_hierarchies; i++) {
                if (cgroup_path(&l->hierarchies[i], id, NULL, dir, sizeof(dir)) < 0)
                        continue;
                /* A v1 cgroup can stay busy for a moment after its last task exited. */
                for (int tries = 0; rmdir(dir) < 0; tries++) {
                        if (errno == ENOENT)
                                break;
                        if (errno != EBUSY || tries >= 100) {
                                ret = ret < 0 ? ret : -errno;
                                break;
                        }
                        time_sleep_ms(10);
                }
        }
        return ret;
}

static int usage_read(const CgroupHierarchy *h, const char *id, const char *file, char *buf, size_t size) {
        char path[PATH_MAX];
        int r = cgroup_path(h, id, file, path, sizeof(path));
        return r < 0 ? r : read_full_file(path, buf, size, NULL);
}

static uint64_t usage_u64(const CgroupHierarchy *h, const char *id, const char *file, const char *key) {
        char buf[8192];
        uint64_t v = 0;

        if (!h || usage_read(h, id, file, buf, sizeof(buf)) < 0)
                return 0;
        if (key)
                return keyed_u64_find(buf, key, &v) < 0 ? 0 : v;
        return strncmp(buf, "max", 3) == 0 ? 0 : strtoull(buf, NULL, 10);
}

int cgroup_get_usage(const char *id, SandboxUsage *ret) {
        const CgroupLayout *l;
        const CgroupHierarchy *h;
        int r;

        r = layout_for(id, &l);
        if (r < 0)
                return r;
        memset(ret, 0, sizeof(*ret));
        h = cgroup_layout_find(l, CGROUP_CPUACCT);
        if (h && h->v2)
                ret->cpu_usec = usage_u64(h, id, "cpu.stat", "usage_usec");
        else
                ret->cpu_usec = usage_u64(h, id, "cpuacct.usage", NULL) / 1000;
        h = cgroup_layout_find(l, CGROUP_MEMORY);
        if (h && h->v2) {
                ret->memory_bytes = usage_u64(h, id, "memory.current", NULL);
                ret->memory_peak_bytes = usage_u64(h, id, "memory.peak", NULL);
                ret->oom_kills = usage_u64(h, id, "memory.events", "oom_kill");
        } else {
                ret->memory_bytes = usage_u64(h, id, "memory.usage_in_bytes", NULL);
                ret->memory_peak_bytes = usage_u64(h, id, "memory.max_usage_in_bytes", NULL);
                ret->oom_kills = usage_u64(h, id, "memory.oom_control", "oom_kill");
        }
        ret->memory_peak_bytes = MAX(ret->memory_peak_bytes, ret->memory_bytes);
        ret->pids = usage_u64(cgroup_layout_find(l, CGROUP_PIDS), id, "pids.current", NULL);
        return 0;
}

int cgroup_freeze(const char *id, bool frozen) {
        const CgroupLayout *l;
        const CgroupHierarchy *h;
        char dir[PATH_MAX];
        int r;

        r = layout_for(id, &l);
        if (r < 0)
                return r;
        h = cgroup_layout_find(l, CGROUP_FREEZER);
        if (!h)
                return -ENOTSUP;
        r = cgroup_path(h, id, NULL, dir, sizeof(dir));
        if (r < 0)
                return r;
        if (h->v2)
                return cgroup_v2_freeze(dir, frozen);
        /* A v1 freeze gives up on a task caught mid-exit or mid-fork and stays FREEZING;
         * writing FROZEN again retries those. Never left half-frozen on failure. */
        for (int attempt = 0; attempt < 10; attempt++) {
                r = cgroup_v1_freeze(dir, frozen);
                if (r != -ETIMEDOUT)
                        return r;
        }
        if (frozen)
                (void) cgroup_v1_freeze(dir, false);
        return r;
}

int cgroup_foreach_sandbox(int (*cb)(const char *id, void *userdata), void *userdata) {
        const CgroupLayout *l;
        int r;

        r = cgroup_layout_get(&l);
        if (r < 0)
                return r;
        /* Ids are deduplicated by visiting each only from the first hierarchy holding it. */
        for (size_t i = 0; i < l->n_hierarchies; i++) {
                DIR *d = opendir(l->hierarchies[i].base);
                struct dirent *de;
                if (!d)
                        continue;
                while ((de = readdir(d))) {
                        char earlier[PATH_MAX];
                        bool seen = false;
                        if (de->d_type != DT_DIR || !cgroup_id_is_valid(de->d_name))
                                continue;
                        for (size_t j = 0; j < i && !seen; j++)
                                seen = cgroup_path(&l->hierarchies[j], de->d_name, NULL, earlier,
                                                   sizeof(earlier)) >= 0 &&
                                       access(earlier, F_OK) >= 0;
                        if (!seen && (r = cb(de->d_name, userdata)) < 0) {
                                closedir(d);
                                return r;
                        }
                }
                closedir(d);
        }
        return 0;
}

typedef struct ReapContext {
        bool (*known)(const char *id, void *userdata);
        void *userdata;
        int ret;
} ReapContext;

static int reap_one(const char *id, void *userdata) {
        ReapContext *c = userdata;
        int r;

        if (c->known(id, c->userdata))
                return 0;
        log_sb_info(id, "removing the cgroups and processes of an unknown sandbox");
        r = cgroup_kill_all(id);
        if (r >= 0)
                r = cgroup_remove(id);
        if (r < 0 && c->ret >= 0)
                c->ret = r;
        return 0;
}

int cgroup_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata) {
        ReapContext c = {.known = known, .userdata = userdata};
        int r = cgroup_foreach_sandbox(reap_one, &c);

        return r < 0 ? r : c.ret;
}
