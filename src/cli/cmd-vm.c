/* forgectl vm setup: prepares the qemu isolator's guest parts on this host (kernel,
 * initramfs with forge-agent, the host image's /usr disk) by running forge-vm-build,
 * installed beside forgectl from images/vm/build-guest.sh. Local: no server involved. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/forgectl.h"

enum {
        OPT_STATE_DIR = 100,
        OPT_AGENT,
};

static void print_vm_help(void) {
        printf("Usage: forgectl vm setup [--state-dir DIR] [--agent PATH]\n"
               "\n"
               "Prepares the microVM guest parts for the qemu isolator in DIR/vm: the kernel of\n"
               "Debian's linux-image-cloud-amd64 (fetched with apt), an initramfs holding\n"
               "forge-agent, and the host image's /usr as a disk. Parts already up to date are\n"
               "kept. Run it as root on the host forged runs on.\n"
               "\n"
               "  --state-dir DIR  forged's state directory (default /var/lib/forge)\n"
               "  --agent PATH     the forge-agent to boot (default: the one beside forgectl)\n");
}

int forgectl_parse_vm(int argc, char **argv, ForgectlVmArgs *ret) {
        static const ForgectlOption options[] = {{"help", 'h', false, FORGECTL_OPT_HELP},
                                                 {"state-dir", 0, true, OPT_STATE_DIR},
                                                 {"agent", 0, true, OPT_AGENT},
                                                 {}};
        const char *value;
        ForgectlArgs a;
        int r;

        *ret = (ForgectlVmArgs){.state_dir = "/var/lib/forge"};
        forgectl_args_init(&a, "vm", argc, argv);
        while ((r = forgectl_args_next(&a, options, &value)) != FORGECTL_ARG_END) {
                if (r == FORGECTL_OPT_HELP)
                        return FORGECTL_HELP;
                if (r == OPT_STATE_DIR)
                        ret->state_dir = value;
                else if (r == OPT_AGENT)
                        ret->agent = value;
                else if (r == FORGECTL_ARG_OPERAND && !ret->action)
                        ret->action = value;
                else if (r == FORGECTL_ARG_OPERAND)
                        return forgectl_usage_error("vm", "unexpected argument \"%s\"", value);
                else if (r < 0 && r != FORGECTL_ARG_DASHDASH)
                        return r;
        }
        if (!ret->action)
                return forgectl_usage_error("vm", "missing action (setup)");
        if (strcmp(ret->action, "setup") != 0)
                return forgectl_usage_error("vm", "unknown action \"%s\" (setup)", ret->action);
        if (!ret->state_dir[0])
                return forgectl_usage_error("vm", "--state-dir must not be empty");
        return 0;
}

/* dir/name where dir is the directory of this forgectl binary. */
static int beside_self(const char *name, char *ret, size_t size) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n < 0)
                return -errno;
        self[n] = 0;
        if (snprintf(ret, size, "%s/%s", dirname(self), name) >= (int) size)
                return -ENAMETOOLONG;
        return 0;
}

int forgectl_cmd_vm(ForgectlContext *ctx, int argc, char **argv) {
        char builder[PATH_MAX], agent[PATH_MAX], out[PATH_MAX];
        ForgectlVmArgs args;
        int r;

        r = forgectl_parse_vm(argc, argv, &args);
        if (r == FORGECTL_HELP)
                return print_vm_help(), FORGECTL_EXIT_OK;
        if (r < 0)
                return FORGECTL_EXIT_USAGE;
        r = beside_self("forge-vm-build", builder, sizeof(builder));
        if (r >= 0 && !args.agent)
                r = beside_self("forge-agent", agent, sizeof(agent));
        if (r >= 0 && snprintf(out, sizeof(out), "%s/vm", args.state_dir) >= (int) sizeof(out))
                r = -ENAMETOOLONG;
        if (r < 0) {
                fprintf(stderr, "forgectl vm: %s\n", strerror(-r));
                return FORGECTL_EXIT_FAILURE;
        }
        execl(builder, "forge-vm-build", out, args.agent ? args.agent : agent, (char *) NULL);
        fprintf(stderr, "forgectl vm: cannot run %s: %m\n", builder);
        return FORGECTL_EXIT_FAILURE;
}
