/*
 * test_daemon_list.c — listing, limits and counting, on a daemon of their
 * own: /subjects walked page by page (every subject once, in id order, the
 * last page's next_cursor null), the largest enroll (256 images) and metadata
 * (64 KiB) accepted and one more refused whole, clients hanging up counted
 * and not left in flight, and /metrics counting exactly what was asked.
 */
#include <check.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon_harness.h"

static Shared S;
#define P (S.d.port)

static void listing_setup(void) {
    shared_start(&S, "listing", NULL);
}
static void listing_teardown(void) {
    shared_stop(&S);
}

/* ---- /subjects pagination ---- */

START_TEST(subjects_pagination) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf img = img_pgm(7, 28, 28);
    for (int i = 6; i >= 0; i--) {
        char id[16];
        snprintf(id, sizeof id, "pg-%d", i);
        enroll(P, id, &img, 1, NULL, NULL);
    }
    Resp all = http_get(P, "/subjects?limit=1000");
    ASSERT_JSON(all, 200);
    int total = cJSON_GetArraySize(cJSON_GetObjectItem(all.json, "subjects"));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(all.json, "next_cursor")));
    ck_assert_int_ge(total, 7);

    char path[300] = "/subjects?limit=3", prev[200] = "";
    int seen = 0, pages = 0, pg_seen[7] = {0};
    for (;;) {
        Resp r = http_get(P, path);
        ASSERT_JSON(r, 200);
        const cJSON *list = cJSON_GetObjectItem(r.json, "subjects");
        int n = cJSON_GetArraySize(list);
        pages++;
        ck_assert_int_le(n, 3);
        for (int i = 0; i < n; i++) {
            const cJSON *s = cJSON_GetArrayItem(list, i);
            const char *id = jstr(s, "subject");
            ck_assert_ptr_nonnull(id);
            ck_assert_msg(strcmp(prev, id) < 0, "'%s' after '%s'", id, prev);
            snprintf(prev, sizeof prev, "%s", id);
            ck_assert_str_eq(
                jstr(s, "subject"),
                jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(all.json, "subjects"), seen),
                     "subject"));
            ck_assert(is_iso_time(jstr(s, "created_at")));
            ck_assert(jnum(s, "sample_count") >= 0);
            int k;
            if (sscanf(id, "pg-%d", &k) == 1 && k >= 0 && k < 7 && strlen(id) == 4)
                pg_seen[k]++;
            seen++;
        }
        const cJSON *next = cJSON_GetObjectItem(r.json, "next_cursor");
        if (cJSON_IsNull(next)) {
            resp_free(&r);
            break;
        }
        ck_assert_msg(cJSON_IsString(next) && n == 3, "page %d: %s", pages, r.body);
        char *esc = curl_easy_escape(NULL, next->valuestring, 0);
        snprintf(path, sizeof path, "/subjects?limit=3&cursor=%s", esc);
        curl_free(esc);
        resp_free(&r);
        ck_assert_int_le(pages, total);
    }
    ck_assert_int_eq(seen, total);
    ck_assert_int_eq(pages, (total + 2) / 3); /* the last page is the one with items */
    for (int k = 0; k < 7; k++)
        ck_assert_msg(pg_seen[k] == 1, "pg-%d seen %d times", k, pg_seen[k]);
    resp_free(&all);

    Resp r = http_get(P, "/subjects");
    ASSERT_JSON(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "subjects")), total);
    resp_free(&r);
    buf_free(&img);
}
END_TEST

/* ---- /metrics ---- */

static double metric(const char *name, const char *const *labels) {
    Resp r = http_get(P, "/metrics");
    ASSERT_STATUS(r, 200);
    double v = prom_sum(r.body, name, labels);
    resp_free(&r);
    return isnan(v) ? 0 : v;
}

/* Polls until the metric reaches want (the count lands just after the reply). */
static double metric_reach(const char *name, const char *const *labels, double want) {
    double v = 0, until = now_s() + 3;
    while ((v = metric(name, labels)) < want && now_s() < until)
        usleep(10000);
    return v;
}

/* The most images one request may carry (256) are enrolled together. */
START_TEST(enroll_256_images) {
    Field f[258] = {TEXT("subject", "many-256")};
    Buf img[256];
    for (int i = 0; i < 256; i++) {
        img[i] = img_pgm((uint32_t)(5000 + i), 1 + i % 5, 1 + i % 3);
        f[1 + i] = IMAGE("image", img[i]);
    }
    Resp r = post_json(P, "/enroll", f, 257, NULL);
    ASSERT_JSON(r, 201);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 256);
    const cJSON *ids = cJSON_GetObjectItem(r.json, "samples");
    ck_assert_int_eq(cJSON_GetArraySize(ids), 256);
    for (int i = 1; i < 256; i++) /* ids in image order, all distinct */
        ck_assert(jnum(cJSON_GetArrayItem(ids, i), "sample") >
                  jnum(cJSON_GetArrayItem(ids, i - 1), "sample"));
    resp_free(&r);
    r = http_get(P, "/subjects/many-256?limit=1000");
    ASSERT_JSON(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "samples")), 256);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "next_cursor")));
    resp_free(&r);
    /* The 100th image verifies against the subject at distance ~0. */
    Field v[] = {TEXT("subject", "many-256"), IMAGE("image", img[99])};
    r = post_multipart(P, "/verify", v, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), SAME_DISTANCE, 1e-6);
    resp_free(&r);
    r = http_delete(P, "/subjects/many-256");
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "deleted_sample_count"), 256);
    resp_free(&r);
    for (int i = 0; i < 256; i++)
        buf_free(&img[i]);
}
END_TEST

/* Metadata up to 64 KiB is kept verbatim; one byte more is refused whole. */
START_TEST(metadata_size_limit) {
    Buf img = img_pgm(11, 28, 28), meta = {0};
    buf_str(&meta, "{\"pad\":\"");
    while (meta.len < 65536 - 2)
        buf_add(&meta, "m", 1);
    buf_str(&meta, "\"}");
    ck_assert_uint_eq(meta.len, 65536);
    Field f[] = {TEXT("subject", "meta-max"), IMAGE("image", img),
                 JRAW("metadata", (char *)meta.p)};
    Resp r = post_multipart(P, "/enroll", f, 3, NULL);
    ASSERT_JSON(r, 201);
    resp_free(&r);
    r = http_get(P, "/subjects/meta-max");
    ASSERT_JSON(r, 200);
    const char *pad = jstr(cJSON_GetObjectItem(r.json, "metadata"), "pad");
    ck_assert_msg(pad && strlen(pad) == 65536 - 10, "metadata came back changed");
    resp_free(&r);
    buf_str(&meta, " ");
    f[0] = TEXT("subject", "meta-over");
    f[2] = JRAW("metadata", (char *)meta.p);
    r = post_multipart(P, "/enroll", f, 3, NULL);
    ASSERT_JSON(r, 413);
    resp_free(&r);
    r = http_get(P, "/subjects/meta-over");
    ASSERT_JSON(r, 404);
    resp_free(&r);
    buf_free(&img), buf_free(&meta);
}
END_TEST

/* Clients that hang up mid-request are counted (code "other") and leave no
 * request in flight behind. */
START_TEST(aborted_requests) {
    const char *const other[] = {"route=\"verify\"", "code=\"other\"", NULL};
    double before = metric("siamesed_http_requests_total", other);
    for (int i = 0; i < 3; i++) {
        const char *rq =
            "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{\"a\":";
        int fd = raw_connect(P);
        ck_assert_int_ge(fd, 0);
        ck_assert(send(fd, rq, strlen(rq), MSG_NOSIGNAL) == (ssize_t)strlen(rq));
        usleep(20000);
        close(fd);
    }
    ck_assert_double_eq(metric_reach("siamesed_http_requests_total", other, before + 3),
                        before + 3);
    /* Only the scrape itself is in flight. */
    double until = now_s() + 3, in_flight = 0;
    while ((in_flight = metric("siamesed_in_flight_requests", NULL)) != 1 && now_s() < until)
        usleep(10000);
    ck_assert_double_eq(in_flight, 1);
}
END_TEST

START_TEST(metrics_count_requests) {
    Resp r = http_get(P, "/metrics");
    ASSERT_STATUS(r, 200);
    ck_assert_msg(strncmp(r.ctype, "text/plain", 10) == 0, "Content-Type %s", r.ctype);
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE siamesed_http_requests_total counter"));
    ck_assert_ptr_nonnull(strstr(r.body, "siamesed_http_request_duration_seconds_bucket"));
    char info[160];
    snprintf(info, sizeof info, "siamesed_model_info{fingerprint=\"%s\"", fingerprint(P));
    ck_assert_msg(strstr(r.body, info), "no %s in\n%s", info, r.body);
    ck_assert(!isnan(prom_sum(r.body, "siamesed_store_commits_total", NULL)));
    ck_assert(prom_sum(r.body, "siamesed_in_flight_requests", NULL) >= 1);
    resp_free(&r);

    const char *const ok[] = {"route=\"healthz\"", "code=\"200\"", NULL};
    const char *const nf[] = {"route=\"other\"", "code=\"404\"", NULL};
    const char *const hz[] = {"route=\"healthz\"", NULL};
    const char *const vf[] = {"route=\"verify\"", "code=\"400\"", NULL};
    double h0 = metric("siamesed_http_requests_total", ok);
    double n0 = metric("siamesed_http_requests_total", nf);
    double c0 = metric("siamesed_http_request_duration_seconds_count", hz);
    double v0 = metric("siamesed_http_requests_total", vf);
    for (int i = 0; i < 3; i++) {
        r = http_get(P, "/healthz");
        resp_free(&r);
    }
    r = http_get(P, "/no/such/route");
    ASSERT_JSON(r, 404);
    resp_free(&r);
    r = http(P, &(Req){.method = "POST",
                       .path = "/verify",
                       .ctype = "application/json",
                       .body = "{}",
                       .len = 2});
    ASSERT_JSON(r, 400);
    resp_free(&r);
    ck_assert_double_eq(metric_reach("siamesed_http_requests_total", ok, h0 + 3), h0 + 3);
    ck_assert_double_eq(metric_reach("siamesed_http_requests_total", nf, n0 + 1), n0 + 1);
    ck_assert_double_eq(metric_reach("siamesed_http_request_duration_seconds_count", hz, c0 + 3),
                        c0 + 3);
    ck_assert_double_eq(metric_reach("siamesed_http_requests_total", vf, v0 + 1), v0 + 1);

    /* The store gauges agree with the list. */
    Buf img[2] = {img_pgm(9, 28, 28), img_pgm(10, 28, 28)};
    enroll(P, "metrics-1", img, 2, NULL, NULL);
    buf_free(&img[0]), buf_free(&img[1]);
    r = http_get(P, "/subjects?limit=1000");
    ASSERT_JSON(r, 200);
    int subjects = cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "subjects"));
    double samples = 0;
    for (int i = 0; i < subjects; i++)
        samples +=
            jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "subjects"), i), "sample_count");
    resp_free(&r);
    ck_assert_double_eq(metric("siamesed_enrolled_subjects", NULL), subjects);
    ck_assert_double_eq(metric("siamesed_enrolled_samples", NULL), samples);
    double writes = metric("siamesed_store_writes_total", NULL);
    ck_assert_msg(writes >= 1 && metric("siamesed_store_commits_total", NULL) <= writes,
                  "commits above writes");
}
END_TEST

TCase *tcase_listing(void) {
    TCase *tc = tcase_create("listing");
    tcase_add_unchecked_fixture(tc, listing_setup, listing_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, subjects_pagination);
    tcase_add_test(tc, enroll_256_images);
    tcase_add_test(tc, metadata_size_limit);
    tcase_add_test(tc, aborted_requests);
    tcase_add_test(tc, metrics_count_requests);
    return tc;
}
