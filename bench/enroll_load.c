/*
 * enroll_load.c — the load driver of bench/enroll.sh: CLIENTS threads, each
 * with one keep-alive libcurl handle, enroll N samples into a running
 * siamesed, PER images (28x28 PGMs from the Fashion-MNIST train set, base64 in
 * a JSON body) per request and one new subject per request. A 201 comes only
 * once the write is durable, so samples/s here is durable throughput. Prints
 * one JSON line: samples, requests, seconds, samples/s, requests/s, failures.
 *
 * usage: enroll_load URL N [PER=10] [CLIENTS=16] [IDX=/usr/share/datasets/
 *        fashion-mnist/train-images-idx3-ubyte.gz]
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static const char *url;
static int per, n_req, n_img;
static char **b64; /* n_img base64 PGMs */
static atomic_int next_req, failures;

static char *base64(const unsigned char *p, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(4 * ((n + 2) / 3) + 1), *q = o;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *q++ = t[v >> 18 & 63], *q++ = t[v >> 12 & 63];
        *q++ = i + 1 < n ? t[v >> 6 & 63] : '=', *q++ = i + 2 < n ? t[v & 63] : '=';
    }
    *q = 0;
    return o;
}

static size_t sink(char *p, size_t s, size_t n, void *u) {
    (void)p, (void)u;
    return s * n;
}

static void *client(void *arg) {
    (void)arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char target[512];
    snprintf(target, sizeof target, "%s/enroll", url);
    size_t cap = (size_t)per * 1200 + 256;
    char *body = malloc(cap);
    curl_easy_setopt(c, CURLOPT_URL, target);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    for (int r; (r = atomic_fetch_add(&next_req, 1)) < n_req;) {
        int len = snprintf(body, cap, "{\"subject\":\"e%07d\",\"image\":[", r);
        for (int j = 0; j < per; j++)
            len += snprintf(body + len, cap - (size_t)len, "%s\"%s\"", j ? "," : "",
                            b64[((size_t)r * (size_t)per + (size_t)j) % (size_t)n_img]);
        len += snprintf(body + len, cap - (size_t)len, "]}");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
        long code = 0;
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 201)
            atomic_fetch_add(&failures, 1);
    }
    free(body);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: enroll_load URL N [PER] [CLIENTS] [IDX]\n");
        return 2;
    }
    url = argv[1];
    int n = atoi(argv[2]), clients = argc > 4 ? atoi(argv[4]) : 16;
    per = argc > 3 ? atoi(argv[3]) : 10;
    const char *idx =
        argc > 5 ? argv[5] : "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    if (n < 1 || per < 1 || per > 256 || clients < 1 || clients > 256)
        return fprintf(stderr, "enroll_load: bad arguments\n"), 2;
    gzFile f = gzopen(idx, "rb");
    static unsigned char head[16], px[28 * 28 + 16];
    if (!f || gzread(f, head, 16) != 16)
        return fprintf(stderr, "enroll_load: cannot read %s\n", idx), 1;
    n_img = 10000;
    b64 = malloc((size_t)n_img * sizeof *b64);
    for (int i = 0; i < n_img; i++) {
        int h = snprintf((char *)px, 16, "P5 28 28 255\n");
        if (gzread(f, px + h, 28 * 28) != 28 * 28)
            return fprintf(stderr, "enroll_load: %s is short\n", idx), 1;
        b64[i] = base64(px, (size_t)h + 28 * 28);
    }
    gzclose(f);
    n_req = (n + per - 1) / per;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t th[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < clients; i++)
        pthread_create(&th[i], NULL, client, NULL);
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("{\"samples\":%d,\"requests\":%d,\"clients\":%d,\"seconds\":%.2f,\"samples_per_s\":%.0f,"
           "\"requests_per_s\":%.0f,\"failures\":%d}\n",
           n_req * per, n_req, clients, dt, n_req * per / dt, n_req / dt, atomic_load(&failures));
    curl_global_cleanup();
    return atomic_load(&failures) != 0;
}
