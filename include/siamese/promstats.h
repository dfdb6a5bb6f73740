/*
 * promstats.h — the daemon's request counters and latency histograms, served
 * in the Prometheus text exposition format (version 0.0.4).
 *
 * A PromStats holds, for each route named at creation and each status code,
 * a latency histogram (whose count is also the request counter).
 * promstats_observe() is called once per finished request from any worker
 * thread; it only does relaxed atomic additions (C11 atomics, no lock), so it
 * never blocks. promstats_render() reads the counters (a snapshot that is
 * consistent per histogram: its _count is the sum of its buckets) and appends
 * gauges the caller computes at scrape time (store sizes, model info,
 * requests in flight...).
 *
 * Metrics, all prefixed "siamesed_":
 *   http_requests_total{route,code}              counter, for each (route, code)
 *                                                pair seen at least once
 *   http_request_duration_seconds{route,code,le} histogram, for the same pairs:
 *                                                _bucket (cumulative), _sum, _count
 *   <gauge name>{<gauge labels>}                 each caller gauge
 * code is one of PROM_CODES below, or "other" for any other status (e.g. 499
 * for a client that went away). A route index outside [0, n_routes) is
 * counted under route="unknown", which is rendered only once it has counts.
 */
#ifndef SIAMESE_PROMSTATS_H
#define SIAMESE_PROMSTATS_H

#include <stddef.h>

typedef struct PromStats PromStats;

/* Status codes counted individually; the rest are code="other". */
#define PROM_CODES 200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503, 507

/* Upper bounds (seconds) of the finite histogram buckets; +Inf follows. */
#define PROM_BUCKETS 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5

/* A value computed by the caller at render time: a gauge, or a counter whose
 * running total the caller keeps (name it *_total). */
typedef struct {
    const char *name;   /* without the "siamesed_" prefix: [a-zA-Z_:][a-zA-Z0-9_:]* */
    const char *help;   /* one line for # HELP (escaped when rendered); NULL for none */
    double value;       /* NaN and infinities are rendered as Prometheus spells them */
    const char *labels; /* NULL or "" for none, else what goes between the braces:
                           name="value",name="value" (values escaped as the format
                           asks: \\ \" \n). Checked when rendered. */
    int counter;        /* nonzero: rendered as TYPE counter (a running total) */
} PromGauge;

/* A PromStats for n_routes routes named names[0..n_routes-1] (label values;
 * copied). NULL when out of memory or when the arguments are invalid
 * (n_routes < 1, a NULL name). Free with promstats_free(). */
PromStats *promstats_new(const char *const *names, int n_routes);

/* Frees p. NULL is fine. */
void promstats_free(PromStats *p);

/* Counts one finished request: route index, HTTP status, latency in seconds
 * (negative or NaN counts as 0). Thread-safe and lock-free. NULL p is a no-op. */
void promstats_observe(PromStats *p, int route, int status, double seconds);

/* Renders every metric of p (NULL p: none) and then the n_gauges gauges,
 * each family with # HELP and # TYPE lines. Gauges with the same name are one
 * family and must be adjacent (different labels). *out is malloc'ed
 * NUL-terminated text of *len bytes; the caller frees it with free().
 * Returns 0, -EINVAL for an invalid gauge name or label string, a repeated
 * gauge family or a name taken by the built-in metrics, or -ENOMEM; on
 * failure *out is NULL. */
int promstats_render(const PromStats *p, const PromGauge *gauges, int n_gauges, char **out,
                     size_t *len);

#endif
