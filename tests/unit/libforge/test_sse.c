/* The SSE parser: every way of cutting the stream into chunks gives the same events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "libforge/internal.h"

/* The events seen, as "type=data;" with the data's newlines as '|'. */
typedef struct Log {
        char text[4096];
        size_t len;
        int stop_after; /* return -EINTR on this event (1-based); 0: never */
        int count;
} Log;

static int on_event(const char *event, const char *data, size_t size, void *userdata) {
        Log *log = userdata;
        int n = snprintf(log->text + log->len, sizeof(log->text) - log->len, "%s=", event);

        log->len += (size_t) n;
        for (size_t i = 0; i < size && log->len < sizeof(log->text) - 2; i++)
                log->text[log->len++] = data[i] == '\n' ? '|' : data[i];
        log->text[log->len++] = ';';
        log->text[log->len] = 0;
        log->count++;
        return log->stop_after && log->count == log->stop_after ? -EINTR : 0;
}

/* Feeds s in chunks cut at the given offsets (sorted, ending with SIZE_MAX). */
static void parse_cut(const char *s, size_t len, const size_t *cuts, Log *log) {
        ForgeSseParser p;
        size_t at = 0;

        memset(log, 0, sizeof(*log));
        forge__sse_init(&p, on_event, log);
        for (const size_t *c = cuts;; c++) {
                size_t end = MIN(*c, len);
                assert_int_equal(forge__sse_feed(&p, s + at, end - at), 0);
                at = end;
                if (at == len)
                        break;
        }
        forge__sse_done(&p);
}

/* Whole, every single cut, every pair of cuts, and byte by byte: all give `expect`. */
static void check_all_cuts(const char *s, const char *expect) {
        size_t len = strlen(s);
        Log log;

        parse_cut(s, len, (size_t[]){SIZE_MAX}, &log);
        assert_string_equal(log.text, expect);
        for (size_t i = 0; i <= len; i++) {
                parse_cut(s, len, (size_t[]){i, SIZE_MAX}, &log);
                assert_string_equal(log.text, expect);
                for (size_t j = i; j <= len; j++) {
                        parse_cut(s, len, (size_t[]){i, j, SIZE_MAX}, &log);
                        assert_string_equal(log.text, expect);
                }
        }
        {
                ForgeSseParser p;
                memset(&log, 0, sizeof(log));
                forge__sse_init(&p, on_event, &log);
                for (size_t i = 0; i < len; i++)
                        assert_int_equal(forge__sse_feed(&p, s + i, 1), 0);
                forge__sse_done(&p);
                assert_string_equal(log.text, expect);
        }
}

static void test_events_and_fields(void **state) {
        check_all_cuts("event: stdout\ndata: {\"data\":\"hi\"}\n\n"
                       "event: exit\ndata: {\"pid\":1}\n\n",
                       "stdout={\"data\":\"hi\"};exit={\"pid\":1};");
        /* no event name is "message"; no space after the colon; one space only is taken */
        check_all_cuts("data:x\n\ndata:  two spaces\n\n", "message=x;message= two spaces;");
        /* id, retry and unknown fields are skipped; a field without colon is a name */
        check_all_cuts("id: 7\nretry: 100\nfoo: bar\nevent:stderr\ndata\n\n", "stderr=;");
        /* an event without data is not dispatched, and its name does not leak on */
        check_all_cuts("event: stdout\n\ndata: a\n\n", "message=a;");
        /* an unterminated event at the end is not dispatched */
        check_all_cuts("data: a\n\ndata: b\n", "message=a;");
}

static void test_multiline_data(void **state) {
        check_all_cuts("event: stdout\ndata: line one\ndata: line two\ndata:\ndata: four\n\n",
                       "stdout=line one|line two||four;");
}

static void test_comments(void **state) {
        check_all_cuts(": keep-alive\n\n:\nevent: stdout\n: in the middle\ndata: x\n\n:bye\n",
                       "stdout=x;");
}

static void test_line_endings(void **state) {
        /* CRLF, CR alone and LF alone, mixed; a CRLF cut between CR and LF is one end */
        check_all_cuts("event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\r\n\n",
                       "a=1;b=2;c=3;");
        check_all_cuts("data: x\r\r\n", "message=x;"); /* CR ends the line, CRLF the event */
}

static void test_byte_order_mark(void **state) {
        check_all_cuts("\xEF\xBB\xBF" "data: x\n\n", "message=x;");
        /* only at the very start */
        check_all_cuts("data: x\n\n\xEF\xBB\xBF" "data: y\n\n", "message=x;");
        /* bytes that begin like a BOM and are not one belong to the first line */
        check_all_cuts("\xEF" "data: x\n\n", "");
}

static void test_limits_and_stop(void **state) {
        ForgeSseParser p;
        Log log = {};
        char big[200];

        forge__sse_init(&p, on_event, &log);
        p.max_size = 100;
        memset(big, 'a', sizeof(big));
        assert_int_equal(forge__sse_feed(&p, "data: ", 6), 0);
        assert_int_equal(forge__sse_feed(&p, big, sizeof(big)), -EMSGSIZE);
        forge__sse_done(&p);

        /* many lines each under the limit, together over it */
        memset(&log, 0, sizeof(log));
        forge__sse_init(&p, on_event, &log);
        p.max_size = 100;
        for (int i = 0; i < 20; i++)
                if (forge__sse_feed(&p, "data: 0123456789\n", 17) < 0)
                        break;
        assert_int_equal(forge__sse_feed(&p, "data: 0123456789\n", 17), -EMSGSIZE);
        forge__sse_done(&p);

        /* a callback's error stops the parser and comes back */
        memset(&log, 0, sizeof(log));
        log.stop_after = 2;
        forge__sse_init(&p, on_event, &log);
        assert_int_equal(forge__sse_feed(&p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27), -EINTR);
        assert_int_equal(log.count, 2);
        forge__sse_done(&p);
}

static void test_large_event_in_pieces(void **state) {
        static const char head[] = "event: stdout\ndata: ";
        ForgeSseParser p;
        Log log = {};
        size_t n = 3 * 1024 * 1024;
        char *payload = malloc(n);
        int events = 0;

        assert_non_null(payload);
        memset(payload, 'x', n);
        forge__sse_init(&p, on_event, &log);
        /* the parser is fed the way libcurl does: 16 KiB at a time */
        assert_int_equal(forge__sse_feed(&p, head, strlen(head)), 0);
        for (size_t at = 0; at < n; at += 16384)
                assert_int_equal(forge__sse_feed(&p, payload + at, MIN((size_t) 16384, n - at)), 0);
        events = log.count;
        assert_int_equal(events, 0);
        assert_int_equal(forge__sse_feed(&p, "\n\n", 2), 0);
        assert_int_equal(log.count, 1);
        forge__sse_done(&p);
        free(payload);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_events_and_fields), cmocka_unit_test(test_multiline_data),
                cmocka_unit_test(test_comments),          cmocka_unit_test(test_line_endings),
                cmocka_unit_test(test_byte_order_mark),   cmocka_unit_test(test_limits_and_stop),
                cmocka_unit_test(test_large_event_in_pieces),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
