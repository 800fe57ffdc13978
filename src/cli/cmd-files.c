/* File commands: cp (streamed both ways), ls ID:PATH, mkdir ID:PATH. */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/forgectl.h"

static void print_cp_help(void) {
        printf("Usage: forgectl cp SRC DST\n"
               "\n"
               "Copies one file into or out of a sandbox; exactly one of SRC and DST is\n"
               "ID:PATH. The bytes are streamed, so size does not matter. A local `-` is\n"
               "standard input (upload) or standard output (download). When DST is a\n"
               "directory, or ends in '/', the file keeps its name inside it. Downloads land\n"
               "under a temporary name and are renamed when complete.\n");
}

void forgectl_cp_args_done(ForgectlCpArgs *a) {
        free(a->src_id);
        free(a->src_path);
        free(a->dst_id);
        free(a->dst_path);
        *a = (ForgectlCpArgs){};
}

/* One cp operand: "ID:PATH" fills id and path, anything else is a local path. */
static int cp_operand(const char *s, char **ret_id, char **ret_path) {
        int r = forgectl_split_remote(s, ret_id, ret_path);

        if (r != 0)
                return r;
        *ret_path = strdup(s);
        return *ret_path ? 0 : -ENOMEM;
}

int forgectl_parse_cp(int argc, char **argv, ForgectlCpArgs *ret) {
        static const ForgectlOption options[] = {{"help", 'h', false, FORGECTL_OPT_HELP}, {}};
        const char *value, *operands[2];
        ForgectlArgs a;
        int r, n = 0;

        *ret = (ForgectlCpArgs){};
        forgectl_args_init(&a, "cp", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                if (r == FORGECTL_ARG_DASHDASH) /* the rest are operands, even "-x" */
                        break;
                if (r != FORGECTL_ARG_OPERAND)
                        return r;
                if (n == 2)
                        return forgectl_usage_error("cp", "unexpected argument \"%s\"", value);
                operands[n++] = value;
        }
        for (; r == FORGECTL_ARG_DASHDASH && a.index < argc; a.index++) {
                if (n == 2)
                        return forgectl_usage_error("cp", "unexpected argument \"%s\"", argv[a.index]);
                operands[n++] = argv[a.index];
        }
        if (n < 2)
                return forgectl_usage_error("cp", "cp wants SRC and DST");
        if (cp_operand(operands[0], &ret->src_id, &ret->src_path) < 0 ||
            cp_operand(operands[1], &ret->dst_id, &ret->dst_path) < 0)
                return -ENOMEM;
        if (!ret->src_id == !ret->dst_id)
                return forgectl_usage_error("cp", "exactly one of SRC and DST must be ID:PATH");
        if (ret->src_id && !ret->src_path[0])
                return forgectl_usage_error("cp", "\"%s\" names no file", operands[0]);
        return 0;
}

static int local_error(const char *path, int r) {
        fprintf(stderr, "forgectl: %s: %s\n", path, strerror(-r));
        return FORGECTL_EXIT_FAILURE;
}

static bool ends_with_slash(const char *s) {
        size_t n = strlen(s);
        return n > 0 && s[n - 1] == '/';
}

/* "dir" + "/" + the last component of name; NULL on no memory. */
static char *path_join_basename(const char *dir, const char *name) {
        _cleanup_free_ char *copy = strdup(name);
        char *out;

        if (!copy ||
            asprintf(&out, "%s%s%s", dir, dir[0] && !ends_with_slash(dir) ? "/" : "", basename(copy)) < 0)
                return NULL;
        return out;
}

/* Where an upload goes: into the named directory when DST is one, else DST itself. */
static int upload_target(ForgeClient *c, const ForgectlCpArgs *a, char **ret) {
        ForgeFileInfo info = {};
        bool into_dir = !a->dst_path[0] || ends_with_slash(a->dst_path);

        if (!into_dir && forge_file_stat(c, a->dst_id, a->dst_path, &info, NULL) >= 0) {
                into_dir = info.type == FORGE_FILE_DIRECTORY;
                forge_file_info_clear(&info);
        }
        if (into_dir && strcmp(a->src_path, "-") == 0)
                return forgectl_usage_error("cp", "uploading standard input needs a file name in DST");
        *ret = into_dir ? path_join_basename(a->dst_path, a->src_path) : strdup(a->dst_path);
        return *ret ? 0 : -ENOMEM;
}

static int cp_upload(ForgeClient *c, const ForgectlCpArgs *a) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *target = NULL;
        ForgeClientError err = {};
        struct stat st;
        int r;

        if (strcmp(a->src_path, "-") != 0) {
                fd = open(a->src_path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return local_error(a->src_path, -errno);
                if (fstat(fd, &st) < 0)
                        return local_error(a->src_path, -errno);
                if (S_ISDIR(st.st_mode))
                        return local_error(a->src_path, -EISDIR);
        }
        r = upload_target(c, a, &target);
        if (r == -EINVAL)
                return FORGECTL_EXIT_USAGE;
        if (r < 0)
                return forgectl_report(NULL, r);
        r = forge_file_put_fd(c, a->dst_id, target, fd >= 0 ? fd : STDIN_FILENO, &err);
        return r < 0 ? forgectl_report(&err, r) : FORGECTL_EXIT_OK;
}

/* A download in progress: a temporary file beside the target, renamed on success and
 * removed otherwise. */
typedef struct Download {
        char *tmp_path;
        int fd;
} Download;

static void download_cleanup(Download *d) {
        if (d->fd >= 0)
                close(d->fd);
        if (d->tmp_path) {
                unlink(d->tmp_path);
                free(d->tmp_path);
        }
}

static int download_open(Download *d, const char *target) {
        _cleanup_free_ char *copy = strdup(target), *base_copy = strdup(target);
        mode_t mask;

        if (!copy || !base_copy ||
            asprintf(&d->tmp_path, "%s/.%s.forgectl-XXXXXX", dirname(copy), basename(base_copy)) < 0)
                return -ENOMEM;
        d->fd = mkostemp(d->tmp_path, O_CLOEXEC);
        if (d->fd < 0) {
                int r = -errno;
                free(TAKE_PTR(d->tmp_path));
                return r;
        }
        mask = umask(0);
        umask(mask);
        if (fchmod(d->fd, 0666 & ~mask) < 0)
                return -errno;
        return 0;
}

static int download_commit(Download *d, const char *target) {
        if (close(TAKE_FD(d->fd)) < 0 || rename(d->tmp_path, target) < 0)
                return -errno;
        free(TAKE_PTR(d->tmp_path));
        return 0;
}

static int cp_download(ForgeClient *c, const ForgectlCpArgs *a) {
        _cleanup_(download_cleanup) Download d = {.fd = -1};
        _cleanup_free_ char *target = NULL;
        ForgeClientError err = {};
        struct stat st;
        int r;

        if (strcmp(a->dst_path, "-") == 0) {
                r = forge_file_get_fd(c, a->src_id, a->src_path, STDOUT_FILENO, &err);
                return r < 0 ? forgectl_report(&err, r) : FORGECTL_EXIT_OK;
        }
        if (ends_with_slash(a->dst_path) || (stat(a->dst_path, &st) >= 0 && S_ISDIR(st.st_mode)))
                target = path_join_basename(a->dst_path, a->src_path);
        else
                target = strdup(a->dst_path);
        if (!target)
                return forgectl_report(NULL, -ENOMEM);
        r = download_open(&d, target);
        if (r < 0)
                return local_error(target, r);
        r = forge_file_get_fd(c, a->src_id, a->src_path, d.fd, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        r = download_commit(&d, target);
        return r < 0 ? local_error(target, r) : FORGECTL_EXIT_OK;
}

int forgectl_cmd_cp(ForgectlContext *ctx, int argc, char **argv) {
        _cleanup_(forgectl_cp_args_done) ForgectlCpArgs args = {};
        ForgeClient *c;
        int r;

        r = forgectl_parse_cp(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_cp_help(), FORGECTL_EXIT_OK;
        if (r == -ENOMEM)
                return forgectl_report(NULL, r);
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        return args.src_id ? cp_download(c, &args) : cp_upload(c, &args);
}

/* ---- ls ID:PATH ---- */

static void mode_string(ForgeFileType type, unsigned mode, char buf[11]) {
        static const char rwx[] = "rwxrwxrwx";

        buf[0] = type == FORGE_FILE_DIRECTORY ? 'd'
                 : type == FORGE_FILE_SYMLINK ? 'l'
                 : type == FORGE_FILE_REGULAR ? '-'
                                              : '?';
        for (int i = 0; i < 9; i++)
                buf[1 + i] = mode & (1u << (8 - i)) ? rwx[i] : '-';
        buf[10] = 0;
}

static void print_file_info(const ForgeFileInfo *f) {
        char mode[11];

        mode_string(f->type, f->mode, mode);
        printf("%s %12llu %-24s %s%s%s\n", mode, (unsigned long long) f->size, f->mtime ? f->mtime : "-",
               f->name, f->link_target ? " -> " : "", f->link_target ? f->link_target : "");
}

int forgectl_files_ls(ForgectlContext *ctx, const char *id, const char *path) {
        ForgeDirList list = {};
        ForgeFileInfo info = {};
        ForgeClientError err = {};
        ForgeClient *c;
        int r;

        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        r = forge_file_list(c, id, path, &list, &err);
        if (r == -ENOTDIR) { /* like ls(1), a file lists as itself */
                err = (ForgeClientError){};
                r = forge_file_stat(c, id, path, &info, &err);
                if (r < 0)
                        return forgectl_report(&err, r);
                print_file_info(&info);
                forge_file_info_clear(&info);
                return FORGECTL_EXIT_OK;
        }
        if (r < 0)
                return forgectl_report(&err, r);
        for (size_t i = 0; i < list.n_entries; i++)
                print_file_info(&list.entries[i]);
        forge_dir_list_clear(&list);
        return FORGECTL_EXIT_OK;
}

/* ---- mkdir ---- */

enum { MKDIR_OPT_PARENTS = 100 };

int forgectl_cmd_mkdir(ForgectlContext *ctx, int argc, char **argv) {
        static const ForgectlOption options[] = {
                {"help", 'h', false, FORGECTL_OPT_HELP},
                {"parents", 'p', false, MKDIR_OPT_PARENTS},
                {},
        };
        _cleanup_free_ const char **targets = NULL;
        bool parents = false;
        const char *value;
        ForgectlArgs a;
        ForgeClient *c;
        int r, status = FORGECTL_EXIT_OK;

        forgectl_args_init(&a, "mkdir", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return printf("Usage: forgectl mkdir [-p] ID:PATH...\n\n"
                                      "  -p, --parents       make missing parents; an existing directory is "
                                      "fine\n"),
                               FORGECTL_EXIT_OK;
                else if (r == MKDIR_OPT_PARENTS)
                        parents = true;
                else if (r == FORGECTL_ARG_OPERAND) {
                        if (forgectl_strv_push(&targets, value) < 0)
                                return forgectl_report(NULL, -ENOMEM);
                } else if (r < 0 && r != FORGECTL_ARG_DASHDASH)
                        return FORGECTL_EXIT_USAGE;
        }
        if (!targets)
                return forgectl_usage_error("mkdir", "no ID:PATH given"), FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                return FORGECTL_EXIT_FAILURE;
        for (const char **t = targets; *t; t++) {
                _cleanup_free_ char *id = NULL, *path = NULL;
                ForgeClientError err = {};

                r = forgectl_split_remote(*t, &id, &path);
                if (r == 0 || (r > 0 && !path[0]))
                        return forgectl_usage_error("mkdir", "\"%s\" is not ID:PATH", *t),
                               FORGECTL_EXIT_USAGE;
                if (r < 0)
                        return forgectl_report(NULL, r);
                r = forge_file_mkdir(c, id, path, parents, &err);
                if (r < 0)
                        status = forgectl_report(&err, r);
        }
        return status;
}
