/*
 * soak_load.c — the load driver of bench/soak.sh: CLIENTS threads, each with
 * one keep-alive libcurl handle, send a seeded mix of requests to a running
 * siamesed for DURATION seconds:
 *
 *   35% POST /verify with two images       10% POST /verify subject + image
 *   20% POST /identify (k=5)               20% POST /enroll (1-2 images)
 *   10% DELETE /subjects/{id}               5% GET a subject, a list page,
 *                                              /healthz or /metrics
 *
 * Each client enrolls and deletes only subjects of its own (soak-cNN-...),
 * at most 40 at a time, so every answer is known in advance: anything but
 * 200/201 is counted as unexpected, and the store stays bounded (enrolls and
 * deletes balance) so the daemon's memory should stay flat. Images are 28x28
 * PGMs drawn from a seeded generator plus the PNG fixtures in IMGDIR.
 *
 * It prints requests per route and status, latency percentiles per route, and
 * a last line "SOAK requests=N transport_errors=E 5xx=F unexpected=U".
 *
 * usage: soak_load PORT DURATION_S CLIENTS THINK_MS IMGDIR
 * build: cc -O2 -std=c17 -D_GNU_SOURCE soak_load.c -o soak_load -lcurl -lpthread
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { R_VERIFY, R_VERIFY_SUBJECT, R_IDENTIFY, R_ENROLL, R_DELETE, R_GET, N_ROUTES };
static const char *const route_name[N_ROUTES] = {
    "verify (pair)", "verify (subject)", "identify", "enroll", "delete", "get/list/health/metrics"};

enum { N_STATUS = 600, HIST = 4000, HIST_US = 100, OWN_MAX = 40, N_IMAGES = 64 };

/* Counters shared by every client: per route, per status (0: transport
 * error), and a latency histogram of 0.1 ms buckets up to 400 ms. */
static atomic_long counts[N_ROUTES][N_STATUS];
static atomic_long hist[N_ROUTES][HIST + 1];

typedef struct {
    unsigned char *p;
    size_t len;
    const char *type;
} Image;

static Image images[N_IMAGES + 4];
static int n_images;
static int port, clients, think_ms;
static double deadline;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "soak_load: out of memory\n");
        exit(1);
    }
    return p;
}

/* A 28x28 binary PGM of seeded noise (like the tests' img_pgm()). */
static Image pgm(uint32_t seed) {
    char head[32];
    int h = snprintf(head, sizeof head, "P5\n28 28\n255\n");
    Image im = {xmalloc((size_t)h + 784), (size_t)h + 784, "image/x-portable-graymap"};
    memcpy(im.p, head, (size_t)h);
    uint32_t x = seed * 2654435761u + 12345u;
    for (int i = 0; i < 784; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        im.p[h + i] = (unsigned char)(x >> 24);
    }
    return im;
}

static int file_image(const char *dir, const char *name, Image *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = (Image){xmalloc((size_t)n), (size_t)n, "image/png"};
    size_t got = fread(out->p, 1, (size_t)n, f);
    fclose(f);
    return got == (size_t)n ? 0 : -1;
}

static size_t discard(char *p, size_t size, size_t n, void *ud) {
    (void)p, (void)ud;
    return size * n;
}

/* One client: its handle, its RNG and the subjects it has enrolled. */
typedef struct {
    int id;
    CURL *c;
    uint64_t rng;
    long next_subject;
    char own[OWN_MAX][48];
    int n_own, first_own; /* a ring: oldest at first_own */
} Client;

static void part_image(curl_mime *m, const char *name, const Image *im) {
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, name);
    curl_mime_data(p, (const char *)im->p, im->len);
    curl_mime_filename(p, "img");
    curl_mime_type(p, im->type);
}

static void part_text(curl_mime *m, const char *name, const char *value) {
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, name);
    curl_mime_data(p, value, CURL_ZERO_TERMINATED);
}

/* Runs one request (mime body or none; method NULL: GET or POST) and
 * records it under route. Returns the HTTP status, 0 on a transport error. */
static long perform(Client *cl, int route, const char *path, const char *method, curl_mime *m) {
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = cl->c;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (m)
        curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    double t = now_s();
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    long us = (long)((now_s() - t) * 1e6), b = us / HIST_US;
    atomic_fetch_add(&counts[route][status > 0 && status < N_STATUS ? status : 0], 1);
    atomic_fetch_add(&hist[route][b < HIST ? b : HIST], 1);
    return status;
}

static const Image *any_image(Client *cl) {
    return &images[rng_next(&cl->rng) % (uint64_t)n_images];
}

static void do_enroll(Client *cl) {
    char subject[48];
    snprintf(subject, sizeof subject, "soak-c%02d-%06ld", cl->id, cl->next_subject++);
    curl_mime *m = curl_mime_init(cl->c);
    part_text(m, "subject", subject);
    int n = 1 + (int)(rng_next(&cl->rng) % 2);
    for (int i = 0; i < n; i++)
        part_image(m, "image", any_image(cl));
    if (perform(cl, R_ENROLL, "/enroll", NULL, m) == 201) {
        snprintf(cl->own[(cl->first_own + cl->n_own) % OWN_MAX], sizeof cl->own[0], "%s", subject);
        cl->n_own++;
    }
    curl_mime_free(m);
}

static void do_delete(Client *cl) {
    char path[96];
    snprintf(path, sizeof path, "/subjects/%s", cl->own[cl->first_own]);
    perform(cl, R_DELETE, path, "DELETE", NULL);
    cl->first_own = (cl->first_own + 1) % OWN_MAX;
    cl->n_own--;
}

static const char *some_own(Client *cl) {
    return cl->own[(cl->first_own + rng_next(&cl->rng) % (uint64_t)cl->n_own) % OWN_MAX];
}

static void do_one(Client *cl) {
    int r = (int)(rng_next(&cl->rng) % 100);
    curl_mime *m = NULL;
    char path[96];
    if (r < 35) {
        m = curl_mime_init(cl->c);
        part_image(m, "a", any_image(cl));
        part_image(m, "b", any_image(cl));
        perform(cl, R_VERIFY, "/verify", NULL, m);
    } else if (r < 45 && cl->n_own > 0) {
        m = curl_mime_init(cl->c);
        part_text(m, "subject", some_own(cl));
        part_image(m, "image", any_image(cl));
        perform(cl, R_VERIFY_SUBJECT, "/verify", NULL, m);
    } else if (r < 65) {
        m = curl_mime_init(cl->c);
        part_image(m, "image", any_image(cl));
        part_text(m, "k", "5");
        perform(cl, R_IDENTIFY, "/identify", NULL, m);
    } else if (r < 85 || cl->n_own <= 5) {
        if (cl->n_own == OWN_MAX)
            do_delete(cl);
        do_enroll(cl);
    } else if (r < 95) {
        do_delete(cl);
    } else {
        static const char *const fixed[] = {"/subjects?limit=50", "/healthz", "/metrics"};
        int k = (int)(rng_next(&cl->rng) % 4);
        if (k == 3 && cl->n_own > 0)
            snprintf(path, sizeof path, "/subjects/%s", some_own(cl));
        else
            snprintf(path, sizeof path, "%s", fixed[k % 3]);
        perform(cl, R_GET, path, NULL, NULL);
    }
    curl_mime_free(m);
}

static void *client_run(void *arg) {
    Client *cl = arg;
    if (!(cl->c = curl_easy_init()))
        return NULL;
    while (now_s() < deadline) {
        do_one(cl);
        if (think_ms)
            usleep((useconds_t)think_ms * 1000);
    }
    while (cl->n_own > 0) /* leave the store as it was found */
        do_delete(cl);
    curl_easy_cleanup(cl->c);
    return NULL;
}

static double percentile(int route, double q) {
    long total = 0, seen = 0;
    for (int b = 0; b <= HIST; b++)
        total += atomic_load(&hist[route][b]);
    for (int b = 0; b <= HIST; b++) {
        seen += atomic_load(&hist[route][b]);
        if (total && seen >= q * (double)total)
            return (b + 1) * HIST_US / 1e3;
    }
    return 0;
}

static void report(double seconds) {
    long total = 0, transport = 0, server = 0, unexpected = 0;
    printf("%-26s %8s  %s\n", "route", "requests",
           "statuses (count)       p50 / p99 / max-bucket ms");
    for (int r = 0; r < N_ROUTES; r++) {
        long n = 0;
        char line[512] = "";
        size_t len = 0;
        for (int s = 0; s < N_STATUS; s++) {
            long k = atomic_load(&counts[r][s]);
            if (!k)
                continue;
            n += k;
            len +=
                (size_t)snprintf(line + len, sizeof line - len, "%s%d:%ld", len ? " " : "", s, k);
            transport += s == 0 ? k : 0;
            server += s >= 500 ? k : 0;
            unexpected += s != 200 && s != 201 ? k : 0;
        }
        total += n;
        int top = HIST;
        while (top > 0 && !atomic_load(&hist[r][top]))
            top--;
        printf("%-26s %8ld  %-22s %.1f / %.1f / %.1f%s\n", route_name[r], n, line,
               percentile(r, 0.5), percentile(r, 0.99), (top + 1) * HIST_US / 1e3,
               top == HIST ? "+" : "");
    }
    printf("total %ld requests in %.0f s (%.0f req/s) from %d clients\n", total, seconds,
           total / seconds, clients);
    printf("SOAK requests=%ld transport_errors=%ld 5xx=%ld unexpected=%ld\n", total, transport,
           server, unexpected);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: soak_load PORT DURATION_S CLIENTS THINK_MS IMGDIR\n");
        return 2;
    }
    port = atoi(argv[1]), clients = atoi(argv[3]), think_ms = atoi(argv[4]);
    double duration = atof(argv[2]);
    if (port <= 0 || duration <= 0 || clients < 1 || clients > 256 || think_ms < 0) {
        fprintf(stderr, "soak_load: bad arguments\n");
        return 2;
    }
    static const char *const files[] = {"fm0_c9.png", "fm2_c1.png", "fm3_c1.png"};
    for (int i = 0; i < 3; i++)
        if (file_image(argv[5], files[i], &images[n_images]) == 0)
            n_images++;
    while (n_images < N_IMAGES)
        images[n_images] = pgm((uint32_t)(n_images * 7919)), n_images++;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t th[256];
    Client *cl = calloc((size_t)clients, sizeof *cl);
    if (!cl)
        return 1;
    double t0 = now_s();
    deadline = t0 + duration;
    for (int i = 0; i < clients; i++) {
        cl[i] = (Client){.id = i, .rng = 0x50a4ull + 7919ull * (uint64_t)i};
        if (pthread_create(&th[i], NULL, client_run, &cl[i]) != 0)
            return 1;
    }
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    report(now_s() - t0);
    free(cl);
    for (int i = 0; i < n_images; i++)
        free(images[i].p);
    curl_global_cleanup();
    return 0;
}
