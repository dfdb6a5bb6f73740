/*
 * bench_pg_feed.c — two stores on one PostgreSQL database (as two daemons
 * would be, in one process): how long an enroll acknowledged on store A
 * takes to be visible to identify/verify on store B (the change feed), and
 * the durable enroll rate PostgreSQL sustains meanwhile.
 *
 * LOAD threads enroll one sample at a time (alternately on A and B, each to
 * its own subject) for the whole run; one probe thread enrolls PROBES samples
 * on A, one every 5 ms, and after each acknowledgement polls verify on B
 * (every 50 us) until it finds the sample: that time is its lag.
 *
 * usage: bench_pg_feed [URI] [PROBES=500] [LOAD=16]
 * Without URI a throwaway cluster is started (tests/pg_cluster.h). Prints the
 * CPU, then one JSON line: lag p50/p99/max in ms, load enrolls/s, commits.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_cluster.h"
#include "siamese/common.h"
#include "siamese/rng.h"
#include "siamese/store.h"

#define DIM 128
#define FP "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static Store *st_a, *st_b;
static atomic_int stop;
static atomic_long enrolled;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fill(Rng *r, float *v) {
    for (int i = 0; i < DIM; i++)
        v[i] = rng_uniform(r) * 2 - 1;
}

static void *load_main(void *arg) {
    int t = (int)(intptr_t)arg;
    Rng r;
    rng_seed(&r, 1000 + (uint64_t)t);
    char name[32], err[SM_ERRMAX];
    for (long i = 0; !atomic_load(&stop); i++) {
        float e[DIM];
        int64_t id;
        fill(&r, e);
        StoreSampleIn in = {.embedding = e};
        snprintf(name, sizeof name, "load%d-%ld", t, i);
        if (store_enroll(t % 2 ? st_b : st_a, name, NULL, &in, 1, &id, NULL, err) != 0) {
            fprintf(stderr, "load enroll: %s\n", err);
            return NULL;
        }
        atomic_fetch_add(&enrolled, 1);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int open_store(const char *uri, Store **out) {
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = {.path = uri, .fingerprint = FP, .dim = DIM};
    int rc = store_open(&cfg, out, err);
    if (rc != 0)
        fprintf(stderr, "store_open: %s\n", err);
    return rc;
}

int main(int argc, char **argv) {
    char perr[PG_CLUSTER_ERRMAX] = "", err[SM_ERRMAX] = "";
    PgCluster *pg = NULL;
    const char *uri = argc > 1 && argv[1][0] ? argv[1] : NULL;
    int probes = argc > 2 ? atoi(argv[2]) : 500, nload = argc > 3 ? atoi(argv[3]) : 16;
    /* Only a PostgreSQL URI: anything else (--help, a path) would open a
     * SQLite file of that name in the current directory. */
    int is_uri = !uri || !strncmp(uri, "postgresql://", 13) || !strncmp(uri, "postgres://", 11);
    if (!is_uri || argc > 4 || probes < 1 || probes > 100000 || nload < 0 || nload > 256)
        return fprintf(stderr, "usage: bench_pg_feed [postgresql://URI] [PROBES] [LOAD]\n"), 2;
    if (!uri) {
        if (pg_cluster_start(&pg, 0, perr) != 0)
            return fprintf(stderr, "pg_cluster_start: %s\n", perr), 1;
        uri = pg_cluster_uri(pg);
    }
    if (open_store(uri, &st_a) != 0 || open_store(uri, &st_b) != 0)
        return 1;
    pthread_t *th = calloc((size_t)nload + 1, sizeof *th);
    double *lag = calloc((size_t)probes, sizeof *lag);
    if (!th || !lag)
        return 1;
    for (int t = 0; t < nload; t++)
        pthread_create(&th[t], NULL, load_main, (void *)(intptr_t)t);
    Rng r;
    rng_seed(&r, 7);
    double t_start = now_ms();
    int lost = 0;
    for (int p = 0; p < probes; p++) {
        float e[DIM];
        int64_t id;
        char name[32];
        fill(&r, e);
        StoreSampleIn in = {.embedding = e};
        snprintf(name, sizeof name, "probe%d", p);
        if (store_enroll(st_a, name, NULL, &in, 1, &id, NULL, err) != 0)
            return fprintf(stderr, "probe enroll: %s\n", err), 1;
        double t0 = now_ms();
        IndexHit h;
        while (store_verify(st_b, name, e, &h, err) != 0) {
            if (now_ms() - t0 > 10000) {
                lost++;
                break;
            }
            usleep(50);
        }
        lag[p] = now_ms() - t0;
        usleep(5000);
    }
    double secs = (now_ms() - t_start) / 1e3;
    atomic_store(&stop, 1);
    for (int t = 0; t < nload; t++)
        pthread_join(th[t], NULL);
    StoreStats sa, sb;
    store_stats(st_a, &sa);
    store_stats(st_b, &sb);
    qsort(lag, (size_t)probes, sizeof *lag, cmp_double);
    FILE *cpu = popen("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", "r");
    char model[128] = "";
    if (cpu && fgets(model, sizeof model, cpu))
        model[strcspn(model, "\n")] = 0;
    if (cpu)
        pclose(cpu);
    printf("cpu:%s (%ld cores)\n", model, sysconf(_SC_NPROCESSORS_ONLN));
    printf("{\"probes\": %d, \"lag_ms_p50\": %.2f, \"lag_ms_p99\": %.2f, \"lag_ms_max\": %.2f,"
           " \"not_seen\": %d, \"load_threads\": %d, \"load_enrolls_per_s\": %.0f,"
           " \"writes\": %llu, \"commits\": %llu}\n",
           probes, lag[probes / 2], lag[(int)ceil(probes * 0.99) - 1], lag[probes - 1], lost, nload,
           (double)atomic_load(&enrolled) / secs, (unsigned long long)(sa.writes + sb.writes),
           (unsigned long long)(sa.commits + sb.commits));
    store_close(st_a);
    store_close(st_b);
    pg_cluster_stop(pg);
    free(th);
    free(lag);
    return lost ? 1 : 0;
}
