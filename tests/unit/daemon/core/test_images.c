/* core/image-recipe.c, core/image-import.c and core/images.c: recipes folded with their
 * parents, the mirror picked from apt's index targets, the extractor's checks on crafted
 * archives (written here with libarchive's writer), and who keeps an image from being
 * removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/rm-rf.h"
#include "daemon/core/image-import.h"
#include "daemon/core/image-recipe.h"
#include "daemon/core/images.h"

static char tmpdir[64];

static int setup(void **state) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/forge-unit-images-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown(void **state) {
        rm_rf(tmpdir);
        return 0;
}

static void recipe_write(const char *name, const char *json) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/recipe.json", tmpdir, name);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(json, f);
        fclose(f);
}

static void test_recipe_folds_parents(void **state) {
        ImageRecipe r;
        ForgeError err = {};

        recipe_write("base", "{\"packages\":[\"bash\",\"ca-certificates\"],\"runtimes\":{\"sh\":\"sh\"},"
                             "\"shell\":\"/bin/bash\"}");
        recipe_write("py",
                     "{\"parent\":\"base\",\"packages\":[\"python3\",\"bash\"],\"runtimes\":{\"python\":"
                     "\"python3\"},\"workdir\":\"/work\"}");
        assert_int_equal(image_recipe_load(tmpdir, "py", &r, &err), 0);
        char *pk = json_dumps(r.packages, JSON_COMPACT),
             *meta = json_dumps(r.meta, JSON_COMPACT | JSON_SORT_KEYS);
        /* Built from a copy of the base image: only what base lacks is installed. */
        assert_string_equal(r.parent, "base");
        assert_string_equal(pk, "[\"python3\"]");
        assert_string_equal(meta, "{\"name\":\"py\",\"runtimes\":{\"python\":\"python3\",\"sh\":\"sh\"},"
                                  "\"shell\":\"/bin/bash\",\"user\":\"root\",\"workdir\":\"/work\"}");
        free(pk);
        free(meta);
        image_recipe_done(&r);
        assert_int_equal(image_recipe_load(tmpdir, "base", &r, &err), 0);
        pk = json_dumps(r.packages, JSON_COMPACT);
        assert_null(r.parent);
        assert_string_equal(pk, "[\"bash\",\"ca-certificates\"]");
        free(pk);
        image_recipe_done(&r);
}

static void test_recipe_errors(void **state) {
        ImageRecipe r;
        ForgeError err = {};

        assert_int_equal(image_recipe_load(tmpdir, "missing", &r, &err), -ENOENT);
        assert_string_equal(err.code, "recipe_not_found");
        recipe_write("loop1", "{\"parent\":\"loop2\",\"packages\":[]}");
        recipe_write("loop2", "{\"parent\":\"loop1\",\"packages\":[]}");
        err = (ForgeError){};
        assert_true(image_recipe_load(tmpdir, "loop1", &r, &err) < 0);
        assert_string_equal(err.code, "invalid_recipe");
        recipe_write("opt", "{\"packages\":[\"--foreign\"]}");
        err = (ForgeError){};
        assert_true(image_recipe_load(tmpdir, "opt", &r, &err) < 0);
        assert_string_equal(err.code, "invalid_recipe");
        recipe_write("unknown", "{\"packages\":[],\"script\":\"rm -rf /\"}");
        err = (ForgeError){};
        assert_true(image_recipe_load(tmpdir, "unknown", &r, &err) < 0);
        assert_string_equal(err.code, "invalid_recipe");
        err = (ForgeError){};
        assert_true(image_recipe_load(tmpdir, "../etc", &r, &err) < 0);
        assert_string_equal(err.code, "invalid_request");
}

static void test_apt_source_pick(void **state) {
        char *mirror = NULL, *suite = NULL;

        assert_int_equal(
                image_apt_source_pick("http://deb.example.org/debian-security/ bookworm-security deb\n"
                                      "http://deb.example.org/debian/ bookworm deb-src\n"
                                      "http://deb.example.org/debian/ bookworm deb\n"
                                      "http://deb.example.org/debian/ bookworm-updates deb\n",
                                      &mirror, &suite),
                0);
        assert_string_equal(mirror, "http://deb.example.org/debian");
        assert_string_equal(suite, "bookworm");
        free(mirror);
        free(suite);
        assert_int_equal(image_apt_source_pick("http://x/ bookworm-security deb\n", &mirror, &suite),
                         -ENOENT);
        assert_int_equal(image_apt_source_pick("", &mirror, &suite), -ENOENT);
}

/* ---- the extractor ---- */

typedef struct Entry {
        const char *name;
        mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, 0 = hardlink */
        const char *data_or_target;
        mode_t perm;
} Entry;

/* Writes the entries as a tar file; returns an fd open on it. */
static int tar_make(const Entry *entries, size_t n) {
        char path[128];
        struct archive *a = archive_write_new();
        int fd;

        snprintf(path, sizeof(path), "%s/archive.tar", tmpdir);
        archive_write_set_format_pax_restricted(a);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, entries[i].name);
                archive_entry_set_perm(e, entries[i].perm ? entries[i].perm : 0644);
                if (entries[i].type == 0)
                        archive_entry_set_hardlink(e, entries[i].data_or_target);
                else
                        archive_entry_set_filetype(e, entries[i].type);
                if (entries[i].type == AE_IFLNK)
                        archive_entry_set_symlink(e, entries[i].data_or_target);
                if (entries[i].type == AE_IFREG)
                        archive_entry_set_size(e, (la_int64_t) strlen(entries[i].data_or_target));
                assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
                if (entries[i].type == AE_IFREG)
                        archive_write_data(a, entries[i].data_or_target, strlen(entries[i].data_or_target));
                archive_entry_free(e);
        }
        archive_write_close(a);
        archive_write_free(a);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

/* Extracts into a fresh tmpdir/root; returns the result, err filled. */
static int extract(const Entry *entries, size_t n, ForgeError *err) {
        static const ImageImportLimits limits = {1 << 20, 100};
        char root[128];
        int fd = tar_make(entries, n), root_fd, r;

        snprintf(root, sizeof(root), "%s/root", tmpdir);
        rm_rf(root);
        assert_int_equal(mkdir(root, 0755), 0);
        root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *err = (ForgeError){};
        r = image_import_extract(fd, root_fd, &limits, err);
        close(fd);
        close(root_fd);
        return r;
}

#define EXTRACT(err, ...)                                                                                   \
        extract((const Entry[]){__VA_ARGS__}, sizeof((const Entry[]){__VA_ARGS__}) / sizeof(Entry), err)

static void assert_refused(int r, const ForgeError *err, const char *code) {
        assert_true(r < 0);
        assert_string_equal(err->code, code);
}

static void test_extract_refuses_escapes(void **state) {
        ForgeError err;
        char outside[160];

        snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
        assert_refused(EXTRACT(&err, {"../outside", AE_IFREG, "x", 0}), &err, "invalid_archive");
        assert_refused(EXTRACT(&err, {"/tmp/abs", AE_IFREG, "x", 0}), &err, "invalid_archive");
        assert_refused(EXTRACT(&err, {"l", AE_IFLNK, "..", 0}, {"l/outside", AE_IFREG, "x", 0}), &err,
                       "invalid_archive");
        assert_refused(EXTRACT(&err, {"l", AE_IFLNK, tmpdir, 0}, {"l/outside", AE_IFREG, "x", 0}), &err,
                       "invalid_archive");
        assert_refused(EXTRACT(&err, {"h", 0, "../archive.tar", 0}), &err, "invalid_archive");
        assert_refused(EXTRACT(&err, {"h", 0, "/etc/passwd", 0}), &err, "invalid_archive");
        assert_refused(EXTRACT(&err, {"fifo", AE_IFIFO, "", 0}), &err, "invalid_archive");
        assert_refused(EXTRACT(&err, {"d", AE_IFDIR, "", 0}, {"d", AE_IFREG, "x", 0}), &err,
                       "invalid_archive");
        assert_int_equal(access(outside, F_OK), -1);
}

static void test_extract_caps(void **state) {
        ForgeError err;
        Entry many[101];

        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = (Entry){"same", AE_IFREG, "x", 0};
        assert_refused(extract(many, ELEMENTSOF(many), &err), &err, "payload_too_large");
}

static void test_extract_clears_modes_and_keeps_order(void **state) {
        ForgeError err;
        char path[160], buf[16] = {};
        struct stat st;
        int fd;

        assert_int_equal(EXTRACT(&err, {"./bin//suid", AE_IFREG, "a", 04777}, {"t", AE_IFDIR, "", 01777},
                                 {"dup", AE_IFREG, "first", 0}, {"dup", AE_IFREG, "last", 0},
                                 {"hl", 0, "dup", 0}),
                         0);
        snprintf(path, sizeof(path), "%s/root/bin/suid", tmpdir);
        assert_int_equal(lstat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        snprintf(path, sizeof(path), "%s/root/t", tmpdir);
        assert_int_equal(lstat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        snprintf(path, sizeof(path), "%s/root/hl", tmpdir);
        fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, buf, sizeof(buf) - 1), 4);
        close(fd);
        assert_string_equal(buf, "last");
}

static void file_put(const char *rel, const char *content) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
        assert_int_equal(write_file_atomic(path, content, 0644), 0);
}

static void remove_refused(Manager *m, const char *name, const char *says) {
        ForgeError err = {};

        assert_int_equal(images_remove(m, name, &err), -EBUSY);
        assert_string_equal(err.code, "image_in_use");
        assert_non_null(strstr(err.message, says));
}

/* A snapshot naming the image and a build copying it both keep it. */
static void test_remove_refused_while_in_use(void **state) {
        char snapshots[128], dir[256];
        Manager m = {.loop = uv_default_loop(), .state_dir = tmpdir, .snapshots_dir = snapshots};
        ForgeError err = {};

        snprintf(snapshots, sizeof(snapshots), "%s/snapshots", tmpdir);
        snprintf(dir, sizeof(dir), "%s/images/mine/rootfs", tmpdir);
        assert_int_equal(mkdir_p(dir, 0755), 0);
        file_put("images/mine/image.json", "{\"name\": \"mine\", \"runtimes\": {}}");
        snprintf(dir, sizeof(dir), "%s/snap-abcde12345", snapshots);
        assert_int_equal(mkdir_p(dir, 0700), 0);
        file_put("snapshots/snap-abcde12345/snapshot.json",
                 "{\"id\": \"snap-abcde12345\", \"image\": \"mine\", \"isolator\": \"ns\"}");
        assert_int_equal(images_init(&m, &err), 0);

        remove_refused(&m, "mine", "snapshot snap-abcde12345");
        rm_rf(dir);
        assert_non_null(images_hold(&m, "mine"));
        assert_null(images_hold(&m, "nosuch"));
        remove_refused(&m, "mine", "being copied");
        images_release(&m, "mine");
        assert_int_equal(images_remove(&m, "mine", &err), 0);
        assert_null(images_get_json(&m, "mine"));
        uv_run(m.loop, UV_RUN_DEFAULT); /* the files go in the thread pool */

        assert_false(images_is_claimed(&m, "next"));
        char *claim = NULL;
        assert_int_equal(images_begin(&m, "next", &claim, &err), 0);
        assert_true(images_is_claimed(&m, "next"));
        assert_int_equal(images_finish(&m, "next", claim, false, &err), 0);
        assert_false(images_is_claimed(&m, "next"));
        free(claim);
        images_free(&m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_recipe_folds_parents, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recipe_errors, setup, teardown),
                cmocka_unit_test(test_apt_source_pick),
                cmocka_unit_test_setup_teardown(test_extract_refuses_escapes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_extract_caps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_extract_clears_modes_and_keeps_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove_refused_while_in_use, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
