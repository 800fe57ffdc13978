/* A remote process wired to our standard streams: attached to its terminal over a
 * WebSocket (shell, exec -t, attach), or following its output while our stdin goes to
 * its stdin (exec -i, logs -f). */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "basic/fd-util.h"
#include "basic/time-util.h"
#include "cli/forgectl.h"

/* Stop reading our input while this much is queued for the server. */
#define INPUT_QUEUE_MAX (1024 * 1024)
/* After the exit message, how long to wait for the server's close. */
#define CLOSE_WAIT_MS 2000

static volatile sig_atomic_t got_winch;
static volatile sig_atomic_t got_stop; /* the signal that ends the session, or 0 */

static void on_session_signal(int sig) {
        if (sig == SIGWINCH)
                got_winch = 1;
        else
                got_stop = sig;
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/* Installs the handlers with the signals blocked; *ret_wait_mask is the mask to wait
 * with (ppoll), under which they are delivered. */
static void session_signals_install(bool winch, sigset_t *ret_old_mask, sigset_t *ret_wait_mask) {
        struct sigaction sa = {.sa_handler = on_session_signal}; /* no SA_RESTART */
        sigset_t block;

        sigemptyset(&sa.sa_mask);
        sigemptyset(&block);
        for (size_t i = 0; i < ELEMENTSOF(stop_signals); i++) {
                sigaction(stop_signals[i], &sa, NULL);
                sigaddset(&block, stop_signals[i]);
        }
        if (winch) {
                sigaction(SIGWINCH, &sa, NULL);
                sigaddset(&block, SIGWINCH);
        }
        signal(SIGPIPE, SIG_IGN);
        got_winch = 0;
        got_stop = 0;
        sigprocmask(SIG_BLOCK, &block, ret_old_mask);
        *ret_wait_mask = *ret_old_mask;
        for (size_t i = 0; i < ELEMENTSOF(stop_signals); i++)
                sigdelset(ret_wait_mask, stop_signals[i]);
        sigdelset(ret_wait_mask, SIGWINCH);
}

int forgectl_process_exit_status(const ForgeProcess *p) {
        int status = forge_process_exit_status(p);

        return status < 0 || status > 255 ? FORGECTL_EXIT_FAILURE : status;
}

/* The session ended by our signal: the process goes too when we started it for this. */
static int session_stopped(ForgeClient *c, const char *id, long pid, bool kill_process, int sig) {
        if (kill_process)
                forge_process_kill(c, id, pid, NULL);
        return 128 + sig;
}

/* ---- attached to a terminal ---- */

typedef struct AttachState {
        bool exited;
        int status;
        int64_t exited_at;
} AttachState;

static int on_attach_output(const void *bytes, size_t size, void *userdata) {
        return fd_write_full(STDOUT_FILENO, bytes, size);
}

static void on_attach_exit(const ForgeProcess *p, void *userdata) {
        AttachState *st = userdata;

        st->exited = true;
        st->status = forgectl_process_exit_status(p);
        st->exited_at = time_mono_ms();
}

static void send_window_size(ForgeAttach *a) {
        static const int fds[] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
        unsigned rows, cols;

        forgectl_tty_size(fds, ELEMENTSOF(fds), &rows, &cols);
        forge_attach_resize(a, rows, cols);
}

/* Reads what our stdin has and queues it; false at its end. */
static bool input_forward(ForgeAttach *a) {
        char buf[16384];
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (n <= 0) {
                /* No more input: end-of-file for the remote terminal, as if typed. */
                forge_attach_send(a, "\x04", 1);
                return false;
        }
        forge_attach_send(a, buf, (size_t) n);
        return true;
}

/* One round: wait for the socket, our input or a signal, then handle what came. Returns
 * 0 to go on, 1 when the connection is closed, -errno (with *err filled). */
static int attach_step(ForgeAttach *a, AttachState *st, bool *stdin_open, const sigset_t *wait_mask,
                       ForgeClientError *err) {
        struct pollfd fds[2] = {{.fd = forge_attach_fd(a), .events = forge_attach_poll_events(a)}};
        struct timespec tick = {.tv_nsec = 100 * 1000 * 1000};
        nfds_t n = 1;

        if (*stdin_open && forge_attach_pending(a) < INPUT_QUEUE_MAX)
                fds[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        if (ppoll(fds, n, st->exited ? &tick : NULL, wait_mask) < 0)
                return errno == EINTR ? 0 : -errno;
        if (n > 1 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
                *stdin_open = input_forward(a);
        return forge_attach_dispatch(a, fds[0].revents, err);
}

static int attach_loop(ForgeAttach *a, AttachState *st, bool forward_stdin, const sigset_t *wait_mask,
                       ForgeClientError *err) {
        bool stdin_open = forward_stdin, close_sent = false;
        int r;

        send_window_size(a);
        for (;;) {
                if (got_stop)
                        return 0;
                if (got_winch) {
                        got_winch = 0;
                        send_window_size(a);
                }
                if (st->exited && !close_sent) {
                        forge_attach_close(a);
                        close_sent = true;
                }
                if (st->exited && time_mono_ms() - st->exited_at > CLOSE_WAIT_MS)
                        return 1; /* the server did not close: the exit status is all we need */
                r = attach_step(a, st, &stdin_open, wait_mask, err);
                if (r != 0)
                        return r;
        }
}

/* Asks the server how the process ended, for a connection that closed without saying:
 * true with *ret_status once it has ended (waiting a little for the exit to be noted). */
static bool exit_status_fetch(ForgeClient *c, const char *id, long pid, int *ret_status) {
        for (int i = 0; i < 20; i++) {
                ForgeProcess p = {};
                bool ended;

                if (forge_process_get(c, id, pid, &p, NULL) < 0)
                        return false;
                ended = !p.running;
                if (ended)
                        *ret_status = forgectl_process_exit_status(&p);
                forge_process_clear(&p);
                if (ended)
                        return true;
                usleep(100 * 1000);
        }
        return false;
}

int forgectl_session_attach(ForgeClient *c, const char *id, long pid, bool forward_stdin, bool kill_on_signal) {
        static const ForgeAttachCallbacks cbs = {.on_output = on_attach_output, .on_exit = on_attach_exit};
        ForgeClientError err = {};
        AttachState st = {};
        ForgeAttach *a = NULL;
        sigset_t old_mask, wait_mask;
        int r;

        r = forge_attach_open(c, id, pid, &cbs, &st, &a, &err);
        if (r < 0) {
                forgectl_report(&err, r);
                if (kill_on_signal) /* we started it for this session: don't leave it behind */
                        forge_process_kill(c, id, pid, NULL);
                return FORGECTL_EXIT_FAILURE;
        }
        session_signals_install(true, &old_mask, &wait_mask);
        if (forward_stdin && isatty(STDIN_FILENO))
                forgectl_tty_raw_enter(STDIN_FILENO);
        r = attach_loop(a, &st, forward_stdin, &wait_mask, &err);
        forgectl_tty_restore();
        forge_attach_free(a);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        if (got_stop)
                return session_stopped(c, id, pid, kill_on_signal, got_stop);
        if (!st.exited && exit_status_fetch(c, id, pid, &st.status))
                return st.status; /* the connection closed without the exit message */
        if (r < 0)
                return forgectl_report(&err, r);
        return st.exited ? st.status : FORGECTL_EXIT_FAILURE;
}

/* ---- following output ---- */

static volatile sig_atomic_t stream_interrupted;

static void on_stream_signal(int sig) {
        stream_interrupted = sig;
}

typedef struct StreamState {
        bool exited;
        int status;
        uint64_t dropped[2]; /* stdout, stderr: said once at the end */
} StreamState;

static int on_stream_event(const ForgeProcessEvent *ev, void *userdata) {
        StreamState *st = userdata;

        switch (ev->type) {
        case FORGE_EVENT_STDOUT:
                return fd_write_full(STDOUT_FILENO, ev->data, ev->size);
        case FORGE_EVENT_STDERR:
                return fd_write_full(STDERR_FILENO, ev->data, ev->size);
        case FORGE_EVENT_DROPPED:
                st->dropped[strcmp(ev->stream, "stderr") == 0] += ev->dropped;
                return 0;
        case FORGE_EVENT_EXIT:
                st->exited = true;
                st->status = forgectl_process_exit_status(ev->process);
                return 0;
        }
        return 0;
}

/* A child process that copies our stdin to the process's stdin, with its own client (a
 * libcurl handle must not be shared). It dies with us. */
static pid_t stdin_pump_start(ForgeClient *c, const char *id, long pid) {
        pid_t parent = getpid(), child = fork();

        if (child != 0)
                return child;
        ForgeClient *own = NULL;
        int r;

        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
                _exit(1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        r = forge_client_new(forge_client_url(c), &own, NULL);
        if (r >= 0)
                r = forge_process_pipe_stdin(own, id, pid, STDIN_FILENO, NULL);
        /* Errors stay quiet: the usual one is that the process exited before reading it
         * all, and the follow reports what matters. */
        _exit(r < 0 ? 1 : 0);
}

static void stdin_pump_stop(pid_t child) {
        if (child <= 0)
                return;
        kill(child, SIGTERM);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
                ;
}

int forgectl_session_stream(ForgeClient *c, const char *id, long pid, bool forward_stdin, bool kill_on_signal) {
        struct sigaction sa = {.sa_handler = on_stream_signal}, old_int, old_term, old_hup;
        ForgeClientError err = {};
        StreamState st = {};
        pid_t child = -1;
        int r;

        sigemptyset(&sa.sa_mask);
        stream_interrupted = 0;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGHUP, &sa, &old_hup);
        signal(SIGPIPE, SIG_IGN);
        if (forward_stdin)
                child = stdin_pump_start(c, id, pid);
        forge_client_set_interrupt_flag(c, &stream_interrupted);
        r = forge_process_follow(c, id, pid, FORGE_ENCODING_BASE64, on_stream_event, &st, &err);
        forge_client_set_interrupt_flag(c, NULL);
        stdin_pump_stop(child);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        if (st.dropped[0] || st.dropped[1])
                fprintf(stderr,
                        "forgectl: we fell behind and the server dropped %" PRIu64 " bytes of stdout and %" PRIu64
                        " of stderr\n",
                        st.dropped[0], st.dropped[1]);
        if (stream_interrupted)
                return session_stopped(c, id, pid, kill_on_signal, stream_interrupted);
        if (r < 0 && err.message[0])
                return forgectl_report(&err, r);
        if (r < 0) { /* our own write failed: stdout is gone */
                fprintf(stderr, "forgectl: writing output: %s\n", strerror(-r));
                return FORGECTL_EXIT_FAILURE;
        }
        return st.exited ? st.status : FORGECTL_EXIT_FAILURE;
}
