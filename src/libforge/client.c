/* The client object and the one place that talks HTTP (through libcurl). */
#include <stdio.h>
#include <string.h>

#include "libforge/internal.h"

/* Collected answers bigger than this are refused: a shell result holds at most 1 MiB of
 * stdout and 1 MiB of stderr, each of which JSON escaping can grow up to sixfold. */
#define RESPONSE_MAX (64u * 1024 * 1024)

FORGE_PUBLIC int forge_client_new(const char *base_url, ForgeClient **ret, ForgeClientError *err) {
        ForgeClient *c;
        size_t len;

        if (!base_url || !base_url[0])
                return forge__error_set(err, EINVAL, 0, "invalid_argument", "no server URL given");
        c = calloc(1, sizeof(*c));
        if (!c)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        c->base_url = strdup(base_url);
        c->curl = curl_easy_init();
        if (!c->base_url || !c->curl) {
                forge_client_free(c);
                return forge__error_set(err, ENOMEM, 0, "local_io", "cannot set up the HTTP client");
        }
        len = strlen(c->base_url);
        while (len > 0 && c->base_url[len - 1] == '/')
                c->base_url[--len] = 0;
        c->connect_ms = 10000;
        *ret = c;
        return 0;
}

FORGE_PUBLIC void forge_client_free(ForgeClient *c) {
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->base_url);
        free(c);
}

FORGE_PUBLIC const char *forge_client_url(const ForgeClient *c) {
        return c->base_url;
}

FORGE_PUBLIC void forge_client_set_timeouts(ForgeClient *c, long connect_ms, long request_ms) {
        c->connect_ms = connect_ms;
        c->request_ms = request_ms;
}

FORGE_PUBLIC void forge_client_set_interrupt_flag(ForgeClient *c, const volatile sig_atomic_t *flag) {
        c->interrupt_flag = flag;
}

/* State of one transfer as libcurl's callbacks see it. */
typedef struct TransferState {
        ForgeClient *client;
        ForgeTransfer *transfer;
        size_t response_allocated;
        int local_error; /* -errno from a sink or source, or a too-big answer */
} TransferState;

static bool status_is_success(long status) {
        return status >= 200 && status < 300;
}

static int response_append(TransferState *st, const char *bytes, size_t size) {
        ForgeTransfer *t = st->transfer;
        size_t need = t->response_size + size + 1;

        if (need > RESPONSE_MAX)
                return -EFBIG;
        if (need > st->response_allocated) {
                size_t n = MAX(need, st->response_allocated * 2);
                char *p = realloc(t->response, n);
                if (!p)
                        return -ENOMEM;
                t->response = p;
                st->response_allocated = n;
        }
        memcpy(t->response + t->response_size, bytes, size);
        t->response_size += size;
        t->response[t->response_size] = 0;
        return 0;
}

static size_t on_response_bytes(char *bytes, size_t size, size_t nmemb, void *userdata) {
        TransferState *st = userdata;
        ForgeTransfer *t = st->transfer;
        size_t n = size * nmemb;
        long status = 0;
        int r;

        curl_easy_getinfo(st->client->curl, CURLINFO_RESPONSE_CODE, &status);
        /* Error answers are always collected, so a download never writes an error body
         * into the caller's file. */
        if (t->sink && status_is_success(status))
                r = t->sink(bytes, n, t->sink_userdata);
        else
                r = response_append(st, bytes, n);
        if (r < 0) {
                st->local_error = r;
                return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
        }
        return n;
}

static size_t on_request_bytes(char *buf, size_t size, size_t nmemb, void *userdata) {
        TransferState *st = userdata;
        ForgeTransfer *t = st->transfer;
        ssize_t n = t->source(buf, size * nmemb, t->source_userdata);

        if (n < 0) {
                st->local_error = (int) n;
                return CURL_READFUNC_ABORT;
        }
        return (size_t) n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
        TransferState *st = userdata;
        const volatile sig_atomic_t *flag = st->client->interrupt_flag;

        return flag && *flag ? 1 : 0;
}

static int headers_add(struct curl_slist **headers, const char *line) {
        struct curl_slist *l = curl_slist_append(*headers, line);

        if (!l)
                return -ENOMEM;
        *headers = l;
        return 0;
}

static int transfer_setup(ForgeClient *c, ForgeTransfer *t, TransferState *st, const char *url,
                          struct curl_slist **headers, char *curl_message) {
        CURL *h = c->curl;
        int r;

        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "libforge/" FORGE_VERSION);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->request_ms);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_message);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_response_bytes);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, st);
        if (c->interrupt_flag) {
                curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
                curl_easy_setopt(h, CURLOPT_XFERINFODATA, st);
        }

        /* No "Expect: 100-continue": it would stall big uploads for a second. */
        r = headers_add(headers, "Expect:");
        if (r >= 0 && t->body)
                r = headers_add(headers, "Content-Type: application/json");
        else if (r >= 0 && t->source)
                r = headers_add(headers, "Content-Type: application/octet-stream");
        else if (r >= 0)
                r = headers_add(headers, "Content-Type:"); /* none, rather than curl's form type */
        if (r >= 0 && t->accept) {
                char line[128];
                snprintf(line, sizeof(line), "Accept: %s", t->accept);
                r = headers_add(headers, line);
        }
        if (r < 0)
                return r;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
        if (t->buffer_size > 0)
                curl_easy_setopt(h, CURLOPT_BUFFERSIZE, t->buffer_size);

        if (t->source) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_READFUNCTION, on_request_bytes);
                curl_easy_setopt(h, CURLOPT_READDATA, st);
                if (t->source_size >= 0)
                        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) t->source_size);
        } else if (t->body) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, t->body);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) t->body_size);
        }
        if (strcmp(t->method, "GET") != 0 && strcmp(t->method, "POST") != 0)
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t->method);
        else if (strcmp(t->method, "POST") == 0 && !t->body) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
        }
        return 0;
}

static int transfer_local_error(const TransferState *st, ForgeClientError *err) {
        if (st->local_error == -EFBIG)
                return forge__error_set(err, EFBIG, 0, "bad_response", "the server's answer is too large");
        return forge__error_set(err, st->local_error, 0, "local_io", "%s", strerror(-st->local_error));
}

int forge__transfer_perform(ForgeClient *c, ForgeTransfer *t, ForgeClientError *err) {
        _cleanup_free_ char *url = NULL;
        char curl_message[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers = NULL;
        TransferState st = {.client = c, .transfer = t};
        long status = 0;
        CURLcode cc = CURLE_OK;
        int r;

        if (asprintf(&url, "%s%s", c->base_url, t->path) < 0)
                return forge__error_set(err, ENOMEM, 0, "local_io", "out of memory");
        r = transfer_setup(c, t, &st, url, &headers, curl_message);
        if (r >= 0)
                cc = curl_easy_perform(c->curl);
        curl_slist_free_all(headers);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
        if (r < 0)
                return forge__error_set(err, r, 0, "local_io", "out of memory");

        if (st.local_error < 0)
                return transfer_local_error(&st, err);
        if (cc != CURLE_OK)
                return forge__error_from_curl(cc, curl_message, c->base_url, err);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        t->status = (int) status;
        if (!status_is_success(status))
                return forge__error_from_response(t->status, t->response, t->response_size, err);
        return 0;
}

void forge__transfer_done(ForgeTransfer *t) {
        free(t->response);
        t->response = NULL;
        t->response_size = 0;
}

int forge__request_json(ForgeClient *c, const char *method, const char *path, json_t *body, json_t **ret,
                        ForgeClientError *err) {
        _cleanup_free_ char *text = NULL;
        ForgeTransfer t = {.method = method, .path = path};
        json_error_t jerr;
        json_t *answer = NULL;
        int r;

        if (body) {
                text = json_dumps(body, JSON_COMPACT);
                if (!text)
                        return forge__error_set(
                                err, EINVAL, 0, "invalid_argument",
                                "the request cannot be encoded as JSON (text must be UTF-8)");
                t.body = text;
                t.body_size = strlen(text);
        }
        r = forge__transfer_perform(c, &t, err);
        if (r >= 0 && ret && t.response_size > 0) {
                answer = json_loadb(t.response, t.response_size, JSON_ALLOW_NUL, &jerr);
                if (!answer)
                        r = forge__error_set(err, EPROTO, t.status, "bad_response",
                                             "the server's answer is not JSON: %s", jerr.text);
        }
        forge__transfer_done(&t);
        if (r < 0)
                return r;
        if (ret)
                *ret = answer;
        return 0;
}
