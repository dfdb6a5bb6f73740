/*
 * daemon_http.c — the HTTP side of the daemon test harness (see
 * daemon_harness.h): requests through libcurl (one easy handle per request,
 * so forked test processes never share a connection), raw requests over a
 * socket for what libcurl will not send (lying Content-Length, broken
 * framing), the two body encodings the daemon accepts, and small readers for
 * JSON replies and Prometheus text.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon_harness.h"

#define BOUNDARY "sm-test-7MA4YWxkTrZu0gW"

/* ---- responses ---- */

/* Records the headers the tests look at from one "Name: value" line. */
static void header_take(Resp *r, const char *p, size_t len) {
    const char *colon = memchr(p, ':', len), *end = p + len;
    if (!colon)
        return;
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char *dst = NULL;
    size_t cap = 0;
    if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0)
        dst = r->ctype, cap = sizeof r->ctype;
    else if (nlen == 5 && strncasecmp(p, "Allow", 5) == 0)
        dst = r->allow, cap = sizeof r->allow;
    else if (nlen == 16 && strncasecmp(p, "WWW-Authenticate", 16) == 0)
        dst = r->www_auth, cap = sizeof r->www_auth;
    else if (nlen == 11 && strncasecmp(p, "Retry-After", 11) == 0)
        dst = r->retry_after, cap = sizeof r->retry_after;
    else if (nlen == 12 && strncasecmp(p, "X-Request-Id", 12) == 0)
        dst = r->request_id, cap = sizeof r->request_id;
    else if (nlen == 11 && strncasecmp(p, "X-Served-By", 11) == 0)
        dst = r->served_by, cap = sizeof r->served_by;
    if (dst)
        snprintf(dst, cap, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    Resp *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) /* a new response (after 100 Continue) */
        r->ctype[0] = r->allow[0] = r->www_auth[0] = r->retry_after[0] = r->request_id[0] =
            r->served_by[0] = 0;
    header_take(r, p, len);
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    buf_add(ud, p, size * n);
    return size * n;
}

typedef struct {
    const uint8_t *p;
    size_t len, off;
} Reader;

static size_t on_read(char *dst, size_t size, size_t n, void *ud) {
    Reader *rd = ud;
    size_t want = size * n, left = rd->len - rd->off;
    if (want > left)
        want = left;
    if (want > 7000) /* several chunks even for small bodies */
        want = 7000;
    memcpy(dst, rd->p + rd->off, want);
    rd->off += want;
    return want;
}

/* Moves the body into r and parses it when it is JSON. */
static void resp_finish(Resp *r, Buf *body) {
    if (!body->p)
        buf_add(body, "", 0);
    r->body = (char *)body->p;
    r->len = body->len;
    if (strncasecmp(r->ctype, "application/json", 16) == 0)
        r->json = cJSON_ParseWithLength(r->body, r->len);
}

void resp_free(Resp *r) {
    free(r->body);
    cJSON_Delete(r->json);
    *r = (Resp){0};
}

/* Sets the method and the body of a request on c. */
static void set_method(CURL *c, const Req *rq, Reader *rd) {
    const char *m = rq->method;
    if (strcmp(m, "GET") == 0 && !rq->body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        return;
    }
    if (rq->chunked) {
        *rd = (Reader){rq->body, rq->len, 0};
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, rd);
    } else if (rq->body || strcmp(m, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->len);
    }
    if (strcmp(m, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
}

/* The calling thread's reused handle (http_keepalive_begin()), if any. */
static __thread CURL *keep;
static __thread int keep_connects;

void http_keepalive_begin(void) {
    if (!keep && !(keep = curl_easy_init()))
        abort();
    keep_connects = 0;
}

int http_keepalive_end(void) {
    curl_easy_cleanup(keep);
    keep = NULL;
    return keep_connects;
}

Resp http(int port, const Req *rq) {
    Resp r = {0};
    Buf body = {0};
    Reader rd;
    char url[2048], line[2200];
    struct curl_slist *hdr = NULL;
    CURL *c = keep ? keep : curl_easy_init();
    if (!c)
        abort();
    if (keep)
        curl_easy_reset(c); /* options back to defaults; the connection stays */
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", rq->ca ? "https" : "http", port, rq->path);
    if (rq->ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, rq->ca);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    set_method(c, rq, &rd);
    snprintf(line, sizeof line, "Content-Type:%s%s", rq->ctype ? " " : "",
             rq->ctype ? rq->ctype : "");
    hdr = curl_slist_append(hdr, line);
    hdr = curl_slist_append(hdr, "Expect:");
    if (rq->chunked)
        hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
    if (rq->auth) {
        snprintf(line, sizeof line, "Authorization: %s", rq->auth);
        hdr = curl_slist_append(hdr, line);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    r.curl_rc = (int)curl_easy_perform(c);
    if (r.curl_rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    long connects = 0;
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    keep_connects += (int)connects;
    curl_slist_free_all(hdr);
    if (!keep)
        curl_easy_cleanup(c);
    resp_finish(&r, &body);
    return r;
}

Resp http_get(int port, const char *path) {
    return http(port, &(Req){.method = "GET", .path = path});
}

Resp http_delete(int port, const char *path) {
    return http(port, &(Req){.method = "DELETE", .path = path});
}

/* ---- raw requests ---- */

/* Parses a whole HTTP/1.1 response held in b into r. */
static void raw_parse(Resp *r, Buf *b) {
    char *s = (char *)(b->p ? b->p : (uint8_t *)"");
    char *hend = strstr(s, "\r\n\r\n");
    Buf body = {0};
    if (strncmp(s, "HTTP/1.", 7) == 0 && hend) {
        r->status = strtol(s + 9, NULL, 10);
        for (char *l = strstr(s, "\r\n") + 2; l < hend; l = strstr(l, "\r\n") + 2)
            header_take(r, l, (size_t)(strstr(l, "\r\n") - l));
        buf_add(&body, hend + 4, b->len - (size_t)(hend + 4 - s));
    }
    buf_free(b);
    resp_finish(r, &body);
}

/* 1 once b holds a complete response with a Content-Length body. */
static int raw_complete(const Buf *b) {
    const char *s = (const char *)b->p, *hend = s ? strstr(s, "\r\n\r\n") : NULL;
    if (!hend)
        return 0;
    const char *cl = strcasestr(s, "\r\nContent-Length:");
    if (!cl || cl > hend)
        return 0;
    size_t want = strtoul(cl + 17, NULL, 10);
    return b->len - (size_t)(hend + 4 - s) >= want;
}

int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Sends bytes on a new connection; reads one response, or with until_close
 * everything until the server closes (curl_rc -2 if it did not within
 * timeout_s seconds). */
static Resp raw_exchange(int port, const void *bytes, size_t n, int until_close, int timeout_s) {
    Resp r = {0};
    Buf b = {0};
    int fd = raw_connect(port);
    struct timeval tv = {timeout_s, 0};
    if (fd < 0) {
        r.curl_rc = -1;
        resp_finish(&r, &b);
        return r;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (size_t off = 0; off < n;) { /* the server may answer and close early */
        ssize_t k = send(fd, (const char *)bytes + off, n - off, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    char chunk[4096];
    ssize_t k = 0;
    while ((until_close || !raw_complete(&b)) && (k = recv(fd, chunk, sizeof chunk, 0)) > 0)
        buf_add(&b, chunk, (size_t)k);
    close(fd);
    raw_parse(&r, &b);
    if (until_close && k < 0)
        r.curl_rc = -2;
    return r;
}

Resp http_raw(int port, const void *bytes, size_t n) {
    return raw_exchange(port, bytes, n, 0, 20);
}

Resp http_raw_until_close(int port, const void *bytes, size_t n) {
    return raw_exchange(port, bytes, n, 1, 3);
}

/* ---- bodies ---- */

static size_t field_len(const Field *f) {
    return f->kind == F_IMAGE || f->len ? f->len : strlen(f->data);
}

Buf body_multipart(const Field *f, int n, char *ctype, size_t size) {
    Buf b = {0};
    snprintf(ctype, size, "multipart/form-data; boundary=%s", BOUNDARY);
    for (int i = 0; i < n; i++) {
        buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", BOUNDARY, f[i].name);
        if (f[i].kind == F_IMAGE)
            buf_printf(&b, "; filename=\"%s-%d.bin\"\r\nContent-Type: application/octet-stream",
                       f[i].name, i);
        buf_str(&b, "\r\n\r\n");
        buf_add(&b, f[i].data, field_len(&f[i]));
        buf_str(&b, "\r\n");
    }
    buf_printf(&b, "--%s--\r\n", BOUNDARY);
    return b;
}

/* The JSON value of field i (images base64, raw JSON parsed, text strings). */
static cJSON *json_value(const Field *f) {
    if (f->kind == F_JSON) { /* sent as written, not as cJSON would print it */
        char *t = strndup(f->data, field_len(f));
        cJSON *v = cJSON_CreateRaw(t);
        free(t);
        return v;
    }
    if (f->kind == F_TEXT)
        return cJSON_CreateString(f->data);
    char *s = b64(f->data, f->len);
    cJSON *v = cJSON_CreateString(s);
    free(s);
    return v;
}

Buf body_json(const Field *f, int n) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) {
        int first = 1, count = 0;
        for (int j = 0; j < n; j++) {
            count += strcmp(f[j].name, f[i].name) == 0;
            first &= !(j < i && strcmp(f[j].name, f[i].name) == 0);
        }
        if (!first)
            continue;
        if (count == 1 || f[i].kind != F_IMAGE) {
            cJSON_AddItemToObject(o, f[i].name, json_value(&f[i]));
            continue;
        }
        cJSON *arr = cJSON_AddArrayToObject(o, f[i].name);
        for (int j = i; j < n; j++)
            if (strcmp(f[j].name, f[i].name) == 0)
                cJSON_AddItemToArray(arr, json_value(&f[j]));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    Buf b = {0};
    buf_str(&b, s);
    free(s);
    return b;
}

Resp post_multipart(int port, const char *path, const Field *f, int n, const char *auth) {
    char ctype[128];
    Buf b = body_multipart(f, n, ctype, sizeof ctype);
    Resp r = http(port, &(Req){.method = "POST",
                               .path = path,
                               .ctype = ctype,
                               .body = b.p,
                               .len = b.len,
                               .auth = auth});
    buf_free(&b);
    return r;
}

Resp post_json(int port, const char *path, const Field *f, int n, const char *auth) {
    Buf b = body_json(f, n);
    Resp r = http(port, &(Req){.method = "POST",
                               .path = path,
                               .ctype = "application/json",
                               .body = b.p,
                               .len = b.len,
                               .auth = auth});
    buf_free(&b);
    return r;
}

/* ---- reading replies ---- */

double jnum(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *jstr(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *error_code(const Resp *r) {
    const cJSON *o = r->json, *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (strcasecmp(r->ctype, "application/json") != 0 || !cJSON_IsObject(o) ||
        cJSON_GetArraySize(o) != 1 || !cJSON_IsObject(e) || cJSON_GetArraySize(e) != 2)
        return NULL;
    const char *code = jstr(e, "code"), *msg = jstr(e, "message");
    if (!code || !msg || !*code || !*msg)
        return NULL;
    return code;
}

double prom_sum(const char *text, const char *name, const char *const *labels) {
    double sum = NAN;
    size_t nlen = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (*l == '#' || strncmp(l, name, nlen) != 0 || (l[nlen] != '{' && l[nlen] != ' '))
            continue;
        const char *eol = strchr(l, '\n') ? strchr(l, '\n') : l + strlen(l);
        const char *lb = l + nlen, *le = lb;
        if (*lb == '{' && !(le = memchr(lb, '}', (size_t)(eol - lb))))
            continue;
        int ok = 1;
        for (int i = 0; labels && labels[i] && ok; i++)
            ok = memmem(lb, (size_t)(le - lb), labels[i], strlen(labels[i])) != NULL;
        if (ok)
            sum = (isnan(sum) ? 0 : sum) + strtod(le + (*le == '}'), NULL);
    }
    return sum;
}

double json_vec_distance(const cJSON *a, const cJSON *b) {
    int n = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a) || !cJSON_IsArray(b) || n != cJSON_GetArraySize(b) || n == 0)
        return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) {
        double d = cJSON_GetArrayItem(a, i)->valuedouble - cJSON_GetArrayItem(b, i)->valuedouble;
        s += d * d;
    }
    return sqrt(s);
}
