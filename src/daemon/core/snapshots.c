#include "daemon/core/snapshots.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/log.h"
#include "basic/random-util.h"
#include "basic/rm-rf.h"
#include "basic/time-util.h"
#include "daemon/core/lifecycle.h"
#include "daemon/core/store.h"

#define SNAPSHOT_PREFIX "snap-"

typedef struct SnapJob {
        uv_work_t work;
        Manager *manager;
        Sandbox *sb;
        SandboxPlan plan;
        bool was_running;
        char id[SNAPSHOT_ID_MAX + 1];
        char *dir;
        json_t *record;
        ForgeError err;
        int r;
        SnapshotDone done;
        void *userdata;
} SnapJob;

void snapshot_done(Snapshot *s) {
        free(s->image);
        free(s->dir);
        *s = (Snapshot){.image = NULL};
}

static bool id_is_valid(const char *id) {
        size_t n = strlen(id);

        if (n != SNAPSHOT_ID_MAX || strncmp(id, SNAPSHOT_PREFIX, strlen(SNAPSHOT_PREFIX)) != 0)
                return false;
        for (size_t i = strlen(SNAPSHOT_PREFIX); i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
                        return false;
        return true;
}

static int not_found(const char *id, ForgeError *err) {
        return forge_error_set(err, ENOENT, "snapshot_not_found", "no snapshot with id '%s'", id);
}

static int record_read(Manager *m, const char *id, json_t **ret, ForgeError *err) {
        _cleanup_free_ char *path = NULL;

        if (!id_is_valid(id))
                return not_found(id, err);
        if (asprintf(&path, "%s/%s/snapshot.json", m->snapshots_dir, id) < 0)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        if (store_read_json(path, ret) < 0)
                return not_found(id, err);
        return 0;
}

/* Records older than memory snapshots have neither "memory" nor the machine's limits. */
int snapshot_load(Manager *m, const char *id, Snapshot *ret, ForgeError *err) {
        const char *image, *isolator;
        json_int_t disk_mb, uid_base, memory_mb = 0, cpus_milli = 0;
        int memory = 0;
        json_t *rec;
        int r;

        r = record_read(m, id, &rec, err);
        if (r < 0)
                return r;
        *ret = (Snapshot){.image = NULL};
        snprintf(ret->id, sizeof(ret->id), "%s", id);
        if (json_unpack(rec, "{s:s, s:s, s:I, s:I, s?b, s?I, s?I}", "image", &image, "isolator", &isolator,
                        "disk_mb", &disk_mb, "uid_base", &uid_base, "memory", &memory, "memory_mb", &memory_mb,
                        "cpus_milli", &cpus_milli) < 0 ||
            !(ret->isolator = isolator_by_name(isolator)) || disk_mb <= 0 || uid_base < 0 || uid_base > UINT32_MAX ||
            (memory && (memory_mb <= 0 || cpus_milli <= 0))) {
                json_decref(rec);
                return forge_error_set(err, EBADMSG, "internal", "the record of snapshot %s is damaged", id);
        }
        ret->disk_mb = disk_mb;
        ret->uid_base = (uid_t) uid_base;
        ret->memory = memory;
        ret->memory_mb = memory_mb;
        ret->cpus_milli = cpus_milli;
        ret->image = strdup(image);
        json_decref(rec);
        if (!ret->image || asprintf(&ret->dir, "%s/%s", m->snapshots_dir, id) < 0) {
                ret->dir = NULL;
                snapshot_done(ret);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        return 0;
}

/* The API's view: the record without what only forged needs. */
static json_t *record_public(json_t *rec) {
        json_t *j = json_deep_copy(rec);

        if (j) {
                json_object_del(j, "uid_base");
                json_object_del(j, "created_ms");
                json_object_del(j, "cpus_milli");
                json_object_set(j, "snapshot_id", json_object_get(j, "id"));
        }
        return j;
}

static int id_generate(Manager *m, char ret[SNAPSHOT_ID_MAX + 1], char **ret_dir) {
        const size_t prefix = strlen(SNAPSHOT_PREFIX);

        for (int attempt = 0; attempt < 16; attempt++) {
                int r = random_label(ret + prefix, SNAPSHOT_ID_MAX - prefix);

                if (r < 0)
                        return r;
                memcpy(ret, SNAPSHOT_PREFIX, prefix);
                if (asprintf(ret_dir, "%s/%s", m->snapshots_dir, ret) < 0)
                        return -ENOMEM;
                if (mkdir(*ret_dir, 0700) >= 0)
                        return 0;
                free(*ret_dir);
                *ret_dir = NULL;
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

static void work_snapshot(uv_work_t *w) {
        SnapJob *job = w->data;
        const IsolatorOps *iso = job->sb->isolator;

        job->r = 0;
        if (job->was_running && (job->r = iso->suspend(&job->plan)) < 0) {
                forge_error_set(&job->err, job->r, "isolator_failed", "cannot stop sandbox %s to copy it",
                                job->sb->id);
                return;
        }
        job->r = iso->snapshot(&job->plan, job->dir, &job->err);
        if (job->was_running && iso->resume(&job->plan) < 0 && job->r >= 0)
                job->r = forge_error_set(&job->err, EIO, "isolator_failed", "cannot resume sandbox %s",
                                         job->sb->id);
}

/* What the snapshot's files take on disk (before snapshot.json is there). */
static int dir_blocks_bytes(const char *path, int64_t *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;
        struct stat st;

        if (!d)
                return -errno;
        TAKE_FD(fd);
        *ret = 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                    S_ISREG(st.st_mode))
                        *ret += (int64_t) st.st_blocks * 512;
        closedir(d);
        return 0;
}

static void after_snapshot(uv_work_t *w, int status) {
        SnapJob *job = w->data;
        _cleanup_free_ char *path = NULL;
        json_t *shown = NULL;
        int64_t size = 0;

        job->manager->n_jobs--;
        manager_hold_end(job->manager, job->sb);
        if (job->r >= 0 && (job->r = dir_blocks_bytes(job->dir, &size)) < 0)
                forge_error_set(&job->err, -job->r, "internal", "cannot read the snapshot's files");
        if (job->r >= 0) {
                json_object_set_new(job->record, "size_bytes", json_integer((json_int_t) size));
                if (asprintf(&path, "%s/snapshot.json", job->dir) < 0 || store_write_json(path, job->record) < 0)
                        job->r = forge_error_set(&job->err, EIO, "internal", "cannot record the snapshot");
        }
        if (job->r >= 0 && !(shown = record_public(job->record)))
                job->r = forge_error_set(&job->err, ENOMEM, "internal", "out of memory");
        if (job->r < 0) {
                log_sb_error(job->sb->id, job->r, "snapshot failed: %s", job->err.message);
                rm_rf(job->dir);
                job->done(NULL, &job->err, job->userdata);
        } else {
                log_sb_info(job->sb->id, "snapshot %s saved (%lld bytes on disk%s)", job->id, (long long) size,
                            job->sb->isolator->snapshots_memory ? ", memory included" : "");
                job->done(shown, NULL, job->userdata);
        }
        sandbox_unref(job->sb);
        json_decref(job->record);
        free(job->dir);
        free(job);
}

int manager_snapshot(Manager *m, Sandbox *sb, const char *name, SnapshotDone done, void *userdata,
                     ForgeError *err) {
        char created[40];
        SnapJob *job;
        int r;

        if (!sandbox_is_live(sb))
                return forge_error_set(err, EINVAL, "sandbox_not_running", "sandbox %s is %s", sb->id,
                                       sandbox_state_to_string(sb->state));
        if (!sb->isolator->snapshot)
                return forge_error_set(err, EOPNOTSUPP, "not_supported", "isolator %s cannot save a sandbox",
                                       sb->isolator->name);
        if (sb->transitioning || sb->waiters)
                return forge_error_set(err, EBUSY, "sandbox_busy",
                                       "sandbox %s is being suspended, resumed or copied", sb->id);
        job = calloc(1, sizeof(*job));
        if (!job)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        *job = (SnapJob){.manager = m, .was_running = sb->state == SANDBOX_RUNNING, .done = done, .userdata = userdata};
        r = id_generate(m, job->id, &job->dir);
        if (r < 0) {
                free(job);
                return forge_error_set(err, r, "internal", "cannot make a snapshot directory");
        }
        sandbox_plan(sb, &job->plan);
        time_format_rfc3339(time_now_ms(), created, sizeof(created));
        job->record = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:b, s:I, s:I}", "id", job->id,
                                "sandbox_id", sb->id, "image", sb->image, "isolator", sb->isolator->name, "disk_mb",
                                (json_int_t) sb->limits.disk_mb, "uid_base", (json_int_t) job->plan.uid_base,
                                "created_at", created, "created_ms", (json_int_t) time_now_ms(), "memory",
                                sb->isolator->snapshots_memory, "memory_mb", (json_int_t) sb->limits.memory_mb,
                                "cpus_milli", (json_int_t) sb->limits.cpus_milli);
        if (job->record && name)
                json_object_set_new(job->record, "name", json_string(name));
        if (!job->record) {
                rm_rf(job->dir);
                json_decref(job->record);
                free(job->dir);
                free(job);
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        }
        job->sb = sandbox_ref(sb);
        job->work.data = job;
        manager_hold_begin(sb);
        m->n_jobs++;
        r = uv_queue_work(m->loop, &job->work, work_snapshot, after_snapshot);
        if (r < 0) {
                work_snapshot(&job->work);
                after_snapshot(&job->work, 0);
        }
        return 0;
}

static int by_created(const void *a, const void *b) {
        json_int_t x = json_integer_value(json_object_get(*(json_t *const *) a, "created_ms"));
        json_int_t y = json_integer_value(json_object_get(*(json_t *const *) b, "created_ms"));

        return (x > y) - (x < y);
}

json_t *snapshots_list(Manager *m) {
        _cleanup_close_ int fd = open(m->snapshots_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(TAKE_FD(fd)) : NULL;
        json_t **recs = NULL, *list = json_array();
        struct dirent *de;
        size_t n = 0;

        while (d && list && (de = readdir(d))) {
                ForgeError err = {0};
                json_t *rec, **grown;

                if (!id_is_valid(de->d_name) || record_read(m, de->d_name, &rec, &err) < 0)
                        continue;
                grown = realloc(recs, (n + 1) * sizeof(*recs));
                if (!grown) {
                        json_decref(rec);
                        break;
                }
                recs = grown;
                recs[n++] = rec;
        }
        if (d)
                closedir(d);
        if (n > 0)
                qsort(recs, n, sizeof(*recs), by_created);
        for (size_t i = 0; i < n; i++) {
                if (list)
                        json_array_append_new(list, record_public(recs[i]));
                json_decref(recs[i]);
        }
        free(recs);
        return list ? json_pack("{s:o}", "snapshots", list) : NULL;
}

size_t snapshots_of_image(Manager *m, const char *image, char ret_first[SNAPSHOT_ID_MAX + 1]) {
        _cleanup_close_ int fd = open(m->snapshots_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(TAKE_FD(fd)) : NULL;
        struct dirent *de;
        size_t n = 0;

        while (d && (de = readdir(d))) {
                json_t *rec;

                if (!id_is_valid(de->d_name) || record_read(m, de->d_name, &rec, NULL) < 0)
                        continue;
                /* id_is_valid: the name is SNAPSHOT_ID_MAX long */
                if (strcmp(json_string_value(json_object_get(rec, "image")) ?: "", image) == 0 && n++ == 0)
                        memcpy(ret_first, de->d_name, SNAPSHOT_ID_MAX + 1);
                json_decref(rec);
        }
        if (d)
                closedir(d);
        return n;
}

int snapshot_get(Manager *m, const char *id, json_t **ret, ForgeError *err) {
        json_t *rec;
        int r = record_read(m, id, &rec, err);

        if (r < 0)
                return r;
        *ret = record_public(rec);
        json_decref(rec);
        return *ret ? 0 : forge_error_set(err, ENOMEM, "internal", "out of memory");
}

/* Sandboxes made from it copied its disk already, so none depends on it. */
int snapshot_delete(Manager *m, const char *id, ForgeError *err) {
        _cleanup_free_ char *dir = NULL;
        json_t *rec;
        int r = record_read(m, id, &rec, err);

        if (r < 0)
                return r;
        json_decref(rec);
        if (asprintf(&dir, "%s/%s", m->snapshots_dir, id) < 0)
                return forge_error_set(err, ENOMEM, "internal", "out of memory");
        r = rm_rf(dir);
        if (r < 0)
                return forge_error_set(err, r, "internal", "cannot remove snapshot %s", id);
        log_info("snapshot %s deleted", id);
        return 0;
}

void snapshots_reconcile(Manager *m) {
        _cleanup_close_ int fd = open(m->snapshots_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(TAKE_FD(fd)) : NULL;
        struct dirent *de;

        while (d && (de = readdir(d))) {
                _cleanup_free_ char *rec = NULL, *dir = NULL;

                if (de->d_name[0] == '.' || asprintf(&dir, "%s/%s", m->snapshots_dir, de->d_name) < 0 ||
                    asprintf(&rec, "%s/snapshot.json", dir) < 0)
                        continue;
                if (access(rec, F_OK) < 0) {
                        rm_rf(dir);
                        log_info("removed snapshot %s, which forged did not finish", de->d_name);
                }
        }
        if (d)
                closedir(d);
}
