/* The local terminal: raw mode and its undoing, and the window size. The saved state is
 * global because it must be reachable from a signal handler and from atexit(). */
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "cli/forgectl.h"

static struct termios saved_termios;
static volatile sig_atomic_t saved_fd = -1;

void forgectl_termios_make_raw(struct termios *t) {
        t->c_iflag &= ~(tcflag_t) (IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
        t->c_oflag &= ~(tcflag_t) OPOST;
        t->c_lflag &= ~(tcflag_t) (ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        t->c_cflag &= ~(tcflag_t) (CSIZE | PARENB);
        t->c_cflag |= CS8;
        t->c_cc[VMIN] = 1;
        t->c_cc[VTIME] = 0;
}

void forgectl_tty_restore(void) {
        int fd = saved_fd;

        if (fd < 0)
                return;
        saved_fd = -1;
        /* tcsetattr is async-signal-safe; TCSADRAIN lets pending output out first */
        tcsetattr(fd, TCSADRAIN, &saved_termios);
}

int forgectl_tty_raw_enter(int fd) {
        static bool atexit_done;
        struct termios raw;

        if (tcgetattr(fd, &saved_termios) < 0)
                return -errno;
        raw = saved_termios;
        forgectl_termios_make_raw(&raw);
        if (!atexit_done) {
                atexit(forgectl_tty_restore);
                atexit_done = true;
        }
        saved_fd = fd;
        if (tcsetattr(fd, TCSADRAIN, &raw) < 0) {
                int e = errno;
                saved_fd = -1;
                return -e;
        }
        return 0;
}

void forgectl_tty_size(const int *fds, size_t n, unsigned *ret_rows, unsigned *ret_cols) {
        for (size_t i = 0; i < n; i++) {
                struct winsize ws = {};
                if (ioctl(fds[i], TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
                        *ret_rows = ws.ws_row;
                        *ret_cols = ws.ws_col;
                        return;
                }
        }
        *ret_rows = 24;
        *ret_cols = 80;
}
