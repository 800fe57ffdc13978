/* forgectl image build|ls|rm|import. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/forgectl.h"

static void print_image_help(void) {
        printf("Usage: forgectl image COMMAND [ARGS]\n"
               "\n"
               "  build NAME           build image NAME from the server's recipe (images/NAME),\n"
               "                       showing phases and bytes on a terminal\n"
               "  ls                   list images\n"
               "  rm NAME...           remove images (refused while a sandbox uses one)\n"
               "  import NAME FILE     make image NAME from a rootfs tarball (docker export,\n"
               "                       plain or gzip/xz/bzip2/zstd compressed)\n");
}

static const struct {
        const char *name;
        ForgectlImageCommand cmd;
        int min_args, max_args; /* operands after the subcommand */
} image_commands[] = {
        {"build", FORGECTL_IMAGE_BUILD, 1, 1},
        {"ls", FORGECTL_IMAGE_LS, 0, 0},
        {"rm", FORGECTL_IMAGE_RM, 1, 64},
        {"import", FORGECTL_IMAGE_IMPORT, 2, 2},
};

void forgectl_image_args_done(ForgectlImageArgs *a) {
        free(a->operands);
        *a = (ForgectlImageArgs){};
}

int forgectl_parse_image(int argc, char **argv, ForgectlImageArgs *ret) {
        static const ForgectlOption options[] = {{"help", 'h', false, FORGECTL_OPT_HELP}, {}};
        const char *value, *sub = NULL;
        size_t n = 0, which = 0;
        ForgectlArgs a;
        int r;

        *ret = (ForgectlImageArgs){};
        forgectl_args_init(&a, "image", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return forgectl_image_args_done(ret), FORGECTL_HELP;
                if (r < 0 && r != FORGECTL_ARG_OPERAND && r != FORGECTL_ARG_DASHDASH)
                        return forgectl_image_args_done(ret), -EINVAL;
                if (r != FORGECTL_ARG_OPERAND)
                        continue;
                if (!sub) {
                        sub = value;
                        continue;
                }
                if (forgectl_strv_push(&ret->operands, value) < 0)
                        return forgectl_image_args_done(ret), -ENOMEM;
                n++;
        }
        if (!sub)
                return forgectl_usage_error("image", "no image command given (build, ls, rm, import)");
        while (which < ELEMENTSOF(image_commands) && strcmp(image_commands[which].name, sub) != 0)
                which++;
        if (which == ELEMENTSOF(image_commands)) {
                forgectl_image_args_done(ret);
                return forgectl_usage_error("image", "unknown image command \"%s\"", sub);
        }
        if ((int) n < image_commands[which].min_args || (int) n > image_commands[which].max_args) {
                forgectl_image_args_done(ret);
                return forgectl_usage_error("image", "wrong number of arguments for \"image %s\"", sub);
        }
        ret->cmd = image_commands[which].cmd;
        return 0;
}

/* "1.5 GiB" */
static void format_bytes(uint64_t n, char *buf, size_t size) {
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        double v = (double) n;
        size_t u = 0;

        while (v >= 1024 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int on_progress(const ForgeImageProgress *p, void *userdata) {
        char bytes[32];

        format_bytes(p->bytes, bytes, sizeof(bytes));
        /* One line, redrawn: image, phase, bytes so far, what the builder says. */
        fprintf(stdout, "\r\033[K%-8.8s %-8s %10s  %.50s", p->image, p->phase, bytes,
                p->message ? p->message : "");
        fflush(stdout);
        return 0;
}

static int image_build(ForgeClient *c, const char *name) {
        bool tty = isatty(STDOUT_FILENO);
        ForgeClientError err = {};
        ForgeImage img = {};
        struct timespec t0, t1;
        char size[32];
        int r;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = forge_image_build(c, name, tty ? on_progress : NULL, NULL, &img, &err);
        if (tty)
                fputs("\r\033[K", stdout);
        if (r < 0)
                return forgectl_report(&err, r);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        format_bytes((uint64_t) img.size, size, sizeof(size));
        printf("built %s (%s) in %.1f s\n", img.name, size,
               (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
        forge_image_clear(&img);
        return FORGECTL_EXIT_OK;
}

static int image_ls(ForgeClient *c) {
        ForgeClientError err = {};
        ForgeImageList list = {};
        char size[32];
        int r;

        r = forge_image_list(c, &list, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        printf("%-20s %10s  %-25s %s\n", "NAME", "SIZE", "CREATED", "RUNTIMES");
        for (size_t i = 0; i < list.n_images; i++) {
                ForgeImage *img = &list.images[i];
                if (img->size >= 0)
                        format_bytes((uint64_t) img->size, size, sizeof(size));
                else
                        snprintf(size, sizeof(size), "-");
                printf("%-20s %10s  %-25s %s\n", img->name, size, img->created ? img->created : "(built in)",
                       img->runtimes);
        }
        forge_image_list_clear(&list);
        return FORGECTL_EXIT_OK;
}

static int image_rm(ForgeClient *c, const char *const *names) {
        int status = FORGECTL_EXIT_OK;

        for (const char *const *n = names; *n; n++) {
                ForgeClientError err = {};
                int r = forge_image_remove(c, *n, &err);
                if (r < 0)
                        status = forgectl_report(&err, r);
        }
        return status;
}

static int image_import(ForgeClient *c, const char *name, const char *file) {
        ForgeClientError err = {};
        ForgeImage img = {};
        char size[32];
        int r;

        r = forge_image_import(c, name, file, &img, &err);
        if (r < 0)
                return forgectl_report(&err, r);
        format_bytes((uint64_t) img.size, size, sizeof(size));
        printf("imported %s (%s; runtimes: %s)\n", img.name, size, img.runtimes[0] ? img.runtimes : "none");
        forge_image_clear(&img);
        return FORGECTL_EXIT_OK;
}

int forgectl_cmd_image(ForgectlContext *ctx, int argc, char **argv) {
        ForgectlImageArgs a;
        ForgeClient *c;
        int r;

        r = forgectl_parse_image(argc, argv, &a);
        if (r == FORGECTL_HELP)
                return print_image_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return r == -ENOMEM ? forgectl_report(NULL, r) : FORGECTL_EXIT_USAGE;
        if (forgectl_client(ctx, &c) < 0)
                r = FORGECTL_EXIT_FAILURE;
        else if (a.cmd == FORGECTL_IMAGE_BUILD)
                r = image_build(c, a.operands[0]);
        else if (a.cmd == FORGECTL_IMAGE_LS)
                r = image_ls(c);
        else if (a.cmd == FORGECTL_IMAGE_RM)
                r = image_rm(c, a.operands);
        else
                r = image_import(c, a.operands[0], a.operands[1]);
        forgectl_image_args_done(&a);
        return r;
}
