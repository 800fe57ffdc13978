/* The `host` image. The skeleton is owned by host root and is only ever the read-only
 * lower layer of a sandbox's overlay; writes inside land in the sandbox's upper layer.
 *
 * /etc is copied from an allowlist of what programs need to start and behave (dynamic
 * loader, name service, certificates, time zone, shell and language config), never a
 * secret: passwd and group are synthesized, and shadow files, sudoers, ssh config and
 * keys, private key dirs and package manager credentials are never read. */
#include "daemon/core/image-host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/rm-rf.h"
#include "basic/macros.h"

#define ETC_COPY_DEPTH_MAX 8
#define ETC_FILE_SIZE_MAX (16 * 1024 * 1024)

static const char *const ro_binds[] = {"/usr", NULL};

const char *const *image_host_ro_binds(void) {
        return ro_binds;
}

/* Top-level /etc entries worth copying; a trailing '*' matches a prefix. */
static const char *const etc_allow[] = {
        "alternatives",
        "bash.bashrc",
        "ca-certificates",
        "ca-certificates.conf",
        "debian_version",
        "gai.conf",
        "host.conf",
        "hosts",
        "inputrc",
        "ld-musl-x86_64.path",
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "locale.alias",
        "localtime",
        "magic",
        "magic.mime",
        "mime.types",
        "networks",
        "node*",
        "nsswitch.conf",
        "os-release",
        "perl",
        "profile",
        "profile.d",
        "protocols",
        "python3*",
        "rpc",
        "services",
        "shells",
        "ssl",
        "terminfo",
        "timezone",
        "vim",
};

/* Never copied, at any depth, even inside an allowed directory. */
static const char *const etc_deny[] = {
        "shadow*", "gshadow*", "sudoers*", "ssh",    "private",    "*.key",   "passwd*",
        "group*",  "pip.conf", "npmrc",    ".npmrc", "machine-id", "subuid*", "subgid*",
};

static bool name_matches(const char *name, const char *pattern) {
        size_t n = strlen(pattern);

        if (pattern[0] == '*') {
                size_t len = strlen(name);
                return len >= n - 1 && strcmp(name + len - (n - 1), pattern + 1) == 0;
        }
        if (pattern[n - 1] == '*')
                return strncmp(name, pattern, n - 1) == 0;
        return strcmp(name, pattern) == 0;
}

static bool name_in(const char *name, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (name_matches(name, list[i]))
                        return true;
        return false;
}

static int copy_regular(int src_dir, int dst_dir, const char *name, const struct stat *st) {
        char buf[65536];
        ssize_t n;
        int r = 0;

        if (st->st_size > ETC_FILE_SIZE_MAX)
                return 0;
        _cleanup_close_ int in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
                return errno == EACCES ? 0 : -errno;
        /* Group/other write and set-id bits never reach the image. */
        _cleanup_close_ int out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                         st->st_mode & 0755);
        if (out < 0)
                return -errno;
        while ((n = read(in, buf, sizeof(buf))) > 0)
                if (write(out, buf, (size_t) n) != n)
                        return errno ? -errno : -EIO;
        if (n < 0)
                r = -errno;
        return r;
}

static int copy_tree(int src_dir, int dst_dir, const char *name, int depth);

static int copy_dir_contents(int src, int dst, int depth) {
        int r = 0;
        DIR *d = fdopendir(src);

        if (!d) {
                r = -errno;
                close(src);
                return r;
        }
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                    name_in(de->d_name, etc_deny, ELEMENTSOF(etc_deny)))
                        continue;
                r = copy_tree(dirfd(d), dst, de->d_name, depth + 1);
        }
        closedir(d);
        return r;
}

/* Copies src_dir/name to dst_dir/name: directories, regular files and symlinks (kept
 * verbatim: they resolve inside the sandbox); anything else is skipped. */
static int copy_tree(int src_dir, int dst_dir, const char *name, int depth) {
        char target[PATH_MAX];
        struct stat st;
        int r;

        if (depth > ETC_COPY_DEPTH_MAX)
                return 0;
        if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISREG(st.st_mode))
                return copy_regular(src_dir, dst_dir, name, &st);
        if (S_ISLNK(st.st_mode)) {
                ssize_t n = readlinkat(src_dir, name, target, sizeof(target) - 1);
                if (n < 0)
                        return -errno;
                target[n] = 0;
                return symlinkat(target, dst_dir, name) < 0 ? -errno : 0;
        }
        if (!S_ISDIR(st.st_mode))
                return 0;
        if (mkdirat(dst_dir, name, 0755) < 0)
                return -errno;
        int src = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (src < 0)
                return errno == EACCES ? 0 : -errno;
        _cleanup_close_ int dst = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dst < 0) {
                r = -errno;
                close(src);
                return r;
        }
        return copy_dir_contents(src, dst, depth); /* takes src */
}

static int etc_copy(int root_fd) {
        _cleanup_close_ int src = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int dst = -1;
        int r = 0;

        if (src < 0)
                return -errno;
        if (mkdirat(root_fd, "etc", 0755) < 0)
                return -errno;
        dst = openat(root_fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dst < 0)
                return -errno;
        DIR *d = fdopendir(TAKE_FD(src));
        if (!d)
                return -errno;
        for (struct dirent *de; r >= 0 && (de = readdir(d));)
                if (name_in(de->d_name, etc_allow, ELEMENTSOF(etc_allow)) &&
                    !name_in(de->d_name, etc_deny, ELEMENTSOF(etc_deny)))
                        r = copy_tree(dirfd(d), dst, de->d_name, 0);
        closedir(d);
        return r;
}

static int file_create(int dirfd, const char *name, const char *content, mode_t mode) {
        _cleanup_close_ int fd =
                openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        size_t len = strlen(content);

        if (fd < 0)
                return -errno;
        return write(fd, content, len) == (ssize_t) len ? 0 : -EIO;
}

static const char *login_shell(void) {
        return access("/usr/bin/bash", X_OK) >= 0 ? "/bin/bash" : "/bin/sh";
}

static int etc_synthesize(int root_fd) {
        char passwd[256];
        int r;

        snprintf(passwd, sizeof(passwd),
                 "root:x:0:0:root:/root:%s\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                 login_shell());
        r = file_create(root_fd, "etc/passwd", passwd, 0644);
        if (r < 0)
                return r;
        r = file_create(root_fd, "etc/group", "root:x:0:\ntty:x:5:\nusers:x:100:\nnogroup:x:65534:\n", 0644);
        if (r < 0)
                return r;
        return file_create(root_fd, "etc/hostname", "sandbox\n", 0644);
}

/* bin -> usr/bin and friends, exactly as the host has them (merged /usr). */
static int usr_links_copy(int root_fd) {
        static const char *const names[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
        char target[PATH_MAX], host[32];

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                snprintf(host, sizeof(host), "/%s", names[i]);
                ssize_t n = readlink(host, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = 0;
                if (strncmp(target, "usr/", 4) != 0 && strncmp(target, "/usr/", 5) != 0)
                        continue;
                if (symlinkat(target, root_fd, names[i]) < 0)
                        return -errno;
        }
        return 0;
}

/* root/ is 0755 here although a home is 0700: the overlay looks entries up in the lower
 * layer with the sandbox's credentials, which do not own this copy. The 0700 a sandbox
 * sees comes from the same directory in its upper layer (see the ns isolator). */
static int dirs_make(int root_fd) {
        static const struct {
                const char *path;
                mode_t mode;
        } dirs[] = {
                {"usr", 0755},      {"tmp", 01777}, {"root", 0755}, {"home", 0755}, {"var", 0755},
                {"var/tmp", 01777}, {"run", 0755},  {"proc", 0555}, {"dev", 0755},
        };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (mkdirat(root_fd, dirs[i].path, 0700) < 0 ||
                    fchmodat(root_fd, dirs[i].path, dirs[i].mode, 0) < 0)
                        return -errno;
        return 0;
}

static int rootfs_build(int image_fd, const char *name) {
        int r;

        if (mkdirat(image_fd, name, 0755) < 0)
                return -errno;
        _cleanup_close_ int root_fd =
                openat(image_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root_fd < 0)
                return -errno;
        if (fchmod(root_fd, 0755) < 0)
                return -errno;
        r = dirs_make(root_fd);
        if (r >= 0)
                r = usr_links_copy(root_fd);
        if (r >= 0)
                r = etc_copy(root_fd);
        if (r >= 0)
                r = etc_synthesize(root_fd);
        return r;
}

static bool host_has(const char *prog) {
        char path[64];

        snprintf(path, sizeof(path), "/usr/local/bin/%s", prog);
        if (access(path, X_OK) >= 0)
                return true;
        snprintf(path, sizeof(path), "/usr/bin/%s", prog);
        return access(path, X_OK) >= 0;
}

static int image_json_write(const char *image_dir) {
        static const char *const runtimes[][2] = {
                {"python", "python3"}, {"node", "node"}, {"sh", "sh"}, {"bash", "bash"}};
        char json[512], path[PATH_MAX];
        size_t len;

        len = (size_t) snprintf(json, sizeof(json), "{\"name\":\"host\",\"runtimes\":{");
        for (size_t i = 0, n = 0; i < ELEMENTSOF(runtimes); i++)
                if (host_has(runtimes[i][1]))
                        len += (size_t) snprintf(json + len, sizeof(json) - len, "%s\"%s\":\"%s\"",
                                                 n++ ? "," : "", runtimes[i][0], runtimes[i][1]);
        snprintf(json + len, sizeof(json) - len, "},\"shell\":\"/bin/sh\",\"workdir\":\"/root\"}\n");
        if (path_join(path, sizeof(path), image_dir, "image.json") < 0)
                return -ENAMETOOLONG;
        return write_file_atomic(path, json, 0644);
}

int image_host_prepare(const char *state_dir, ForgeError *err) {
        char image_dir[PATH_MAX], tmp_name[64];
        int r;

        if (snprintf(image_dir, sizeof(image_dir), "%s/images/host", state_dir) >= (int) sizeof(image_dir))
                return forge_error_set(err, ENAMETOOLONG, "image_failed", "state dir path too long");
        r = mkdir_p(image_dir, 0755);
        if (r < 0)
                return forge_error_set(err, r, "image_failed", "cannot create %s: %s", image_dir,
                                       strerror(-r));
        _cleanup_close_ int image_fd = open(image_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (image_fd < 0)
                return forge_error_set(err, errno, "image_failed", "cannot open %s: %m", image_dir);
        if (faccessat(image_fd, "rootfs", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                snprintf(tmp_name, sizeof(tmp_name), "rootfs.tmp.%ld", (long) gettid());
                rm_rf_at(image_fd, tmp_name);
                r = rootfs_build(image_fd, tmp_name);
                /* A concurrent prepare may have won the rename: theirs is as good. */
                if (r >= 0 && renameat(image_fd, tmp_name, image_fd, "rootfs") < 0 && errno != EEXIST &&
                    errno != ENOTEMPTY)
                        r = -errno;
                rm_rf_at(image_fd, tmp_name);
                if (r < 0)
                        return forge_error_set(err, r, "image_failed", "cannot build the host image: %s",
                                               strerror(-r));
        }
        r = image_json_write(image_dir);
        if (r < 0)
                return forge_error_set(err, r, "image_failed", "cannot write the host image.json: %s",
                                       strerror(-r));
        return 0;
}
