/*
 * test_pg_balancer.c — config/haproxy.cfg, the example load balancer, in
 * front of two real nodes on one PostgreSQL database: enrolls and identifies
 * through it are spread over both nodes (each reply's X-Request-Id is found
 * in exactly one node's access log, the node X-Served-By names), a subject
 * enrolled through one node is identified through the other, a killed node
 * is routed around without a failed request, with both nodes down the
 * balancer answers 503 as JSON, and a node started again gets traffic back.
 *
 * The config is the example file itself with its bind and two server
 * addresses replaced (each line must occur exactly once), so a change to the example is tested.
 * Skips (77) when haproxy or PostgreSQL is not installed, or when this
 * siamesed does not take --db postgresql:// (pg_nodes.h).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg_nodes.h"

typedef struct {
    pid_t pid;
    int port;
    char dir[320], cfg[400], log[400];
} Balancer;

static const char *haproxy_path(void) {
    static char path[512];
    const char *env = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin", env ? env : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof path, "%s/haproxy", d);
        if (access(path, X_OK) == 0)
            return path;
    }
    return NULL;
}

static int any_free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* text with its one occurrence of from replaced by to (asserts exactly one). */
static void replace_once_ok(Buf *text, const char *from, const char *to) {
    char *s = (char *)text->p, *at = strstr(s, from);
    ck_assert_msg(at && !strstr(at + 1, from), "config/haproxy.cfg must hold '%s' exactly once",
                  from);
    Buf out = {0};
    buf_add(&out, s, (size_t)(at - s));
    buf_str(&out, to);
    buf_str(&out, at + strlen(from));
    buf_free(text);
    *text = out;
}

/* Writes the example config for the nodes' ports and starts haproxy on it. */
static void balancer_start_ok(Balancer *b, int node1, int node2) {
    char example[400], addr[3][48];
    Buf cfg;
    ck_assert_int_eq(scratch_dir("haproxy", b->dir, sizeof b->dir), 0);
    snprintf(example, sizeof example, "%s/config/haproxy.cfg", H.srcroot);
    snprintf(b->cfg, sizeof b->cfg, "%s/haproxy.cfg", b->dir);
    snprintf(b->log, sizeof b->log, "%s/haproxy.log", b->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        ck_assert_msg(buf_read_file(example, &cfg) == 0, "cannot read %s", example);
        b->port = any_free_port();
        snprintf(addr[0], sizeof addr[0], "bind 127.0.0.1:%d", b->port);
        snprintf(addr[1], sizeof addr[1], "server node1 127.0.0.1:%d", node1);
        snprintf(addr[2], sizeof addr[2], "server node2 127.0.0.1:%d", node2);
        replace_once_ok(&cfg, "bind 127.0.0.1:8080", addr[0]);
        replace_once_ok(&cfg, "server node1 127.0.0.1:8081", addr[1]);
        replace_once_ok(&cfg, "server node2 127.0.0.1:8082", addr[2]);
        ck_assert_int_eq(spit(b->cfg, cfg.p, cfg.len), 0);
        buf_free(&cfg);
        b->pid = fork();
        ck_assert_int_ge(b->pid, 0);
        if (b->pid == 0) {
            FILE *f = freopen(b->log, "a", stdout);
            if (!f || dup2(fileno(stdout), 2) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
                _exit(126);
            execl(haproxy_path(), "haproxy", "-f", b->cfg, "-db", (char *)NULL);
            _exit(127);
        }
        for (double end = now_s() + 10; now_s() < end; usleep(20000)) {
            int st;
            if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
                b->pid = 0;
                break;
            }
            int fd = raw_connect(b->port);
            if (fd >= 0) {
                close(fd);
                return;
            }
        }
        if (b->pid)
            kill(b->pid, SIGKILL), waitpid(b->pid, NULL, 0), b->pid = 0;
    }
    log_dump(b->log);
    ck_abort_msg("haproxy did not start on %s", b->cfg);
}

static void balancer_stop(Balancer *b) {
    if (b->pid)
        kill(b->pid, SIGTERM), waitpid(b->pid, NULL, 0), b->pid = 0;
}

/* Which node's access log holds the reply's request id: 1 or 2; asserts
 * that exactly one does, and that it is the node X-Served-By names. */
static int answered_by_ok(const Resp *r, const Own *n1, const Own *n2) {
    char needle[48];
    ck_assert_msg(strlen(r->request_id) == 16, "no X-Request-Id in the reply: %.200s", r->body);
    snprintf(needle, sizeof needle, "id=%s", r->request_id);
    /* The access line is written once the reply is out: wait for it. */
    int in1 = 0, in2 = 0;
    for (double end = now_s() + 2; in1 + in2 == 0 && now_s() < end; usleep(in1 + in2 ? 0 : 5000))
        in1 = file_has(n1->d.log, needle), in2 = file_has(n2->d.log, needle);
    ck_assert_msg(in1 + in2 == 1, "request %s in node1's log %d, node2's %d", r->request_id, in1,
                  in2);
    ck_assert_str_eq(r->served_by, in1 ? "node1" : "node2");
    return in1 ? 1 : 2;
}

/* Identify through the balancer; the Resp (caller frees). */
static Resp identify(int port, const Buf *img) {
    Field f[] = {IMAGE("image", *img), TEXT("k", "1")};
    return post_multipart(port, "/identify", f, 2, NODE_AUTH);
}

static const char *best_subject(const Resp *r) {
    const cJSON *m =
        r->json ? cJSON_GetArrayItem(cJSON_GetObjectItem(r->json, "matches"), 0) : NULL;
    return m ? jstr(m, "subject") : NULL;
}

#define N_SUBJECTS 8

/* Enrolls N_SUBJECTS through the balancer; by[i] gets the node that took i. */
static void enroll_through_ok(const Balancer *lb, const Own *n1, const Own *n2, Buf *img, int *by) {
    for (int i = 0; i < N_SUBJECTS; i++) {
        char subject[32];
        snprintf(subject, sizeof subject, "lb-%d", i);
        img[i] = img_pgm(700 + (uint32_t)i, 28, 28);
        Resp r = node_enroll(lb->port, subject, &img[i]);
        ASSERT_JSON(r, 201);
        by[i] = answered_by_ok(&r, n1, n2);
        resp_free(&r);
    }
}

/* Identifies subject i through the balancer until the node that did not
 * enroll it (enrolled_by) answers with it as the best match; count[node]
 * counts the replies. Visible within 100 ms p99 is the design, so 2 s is a
 * failure, not a slow run. */
static void identify_crossed_ok(const Balancer *lb, const Own *n1, const Own *n2, const Buf *img,
                                int i, int enrolled_by, int *count) {
    char subject[32];
    snprintf(subject, sizeof subject, "lb-%d", i);
    for (double end = now_s() + 2;; usleep(10000)) {
        Resp r = identify(lb->port, img);
        ASSERT_JSON(r, 200);
        int node = answered_by_ok(&r, n1, n2);
        int hit = best_subject(&r) && strcmp(best_subject(&r), subject) == 0;
        count[node]++;
        ck_assert_msg(node != enrolled_by || hit, "%s not identified on node%d, which took it",
                      subject, node);
        ck_assert_msg(node == enrolled_by || hit || now_s() < end,
                      "%s, enrolled through node%d, not identified on node%d after 2 s: %.300s",
                      subject, enrolled_by, node, r.body);
        resp_free(&r);
        if (hit && node != enrolled_by)
            return;
    }
}

START_TEST(spreads_and_fails_over) {
    PgCluster *pg = cluster_start_ok(0);
    Own n1, n2;
    own_init_ok(&n1, "node1");
    own_init_ok(&n2, "node2");
    node_start_ok(&n1, pg);
    node_start_ok(&n2, pg);
    Balancer lb = {0};
    balancer_start_ok(&lb, n1.d.port, n2.d.port);

    Buf img[N_SUBJECTS];
    int by[N_SUBJECTS], count[3] = {0};
    enroll_through_ok(&lb, &n1, &n2, img, by);
    for (int i = 0; i < N_SUBJECTS; i++)
        count[by[i]]++;
    ck_assert_msg(count[1] > 0 && count[2] > 0, "enrolls: node1 %d, node2 %d", count[1], count[2]);
    /* One request off the rhythm, so round robin sends each first identify
     * to the node that did not take the subject's enroll. */
    Resp h = http(lb.port, &(Req){.method = "GET", .path = "/healthz"});
    ASSERT_STATUS(h, 200);
    resp_free(&h);
    count[1] = count[2] = 0;
    for (int i = 0; i < N_SUBJECTS; i++)
        identify_crossed_ok(&lb, &n1, &n2, &img[i], i, by[i], count);
    ck_assert_msg(count[1] > 0 && count[2] > 0, "identifies: node1 %d, node2 %d", count[1],
                  count[2]);

    /* node1 dies: the balancer retries on node2; nobody sees a failure. */
    daemon_kill(&n1.d);
    for (int i = 0; i < 10; i++) {
        Resp r = identify(lb.port, &img[i % N_SUBJECTS]);
        ASSERT_JSON(r, 200);
        ck_assert_int_eq(answered_by_ok(&r, &n1, &n2), 2);
        resp_free(&r);
    }
    /* Both down: the balancer's own answer, as JSON. */
    daemon_kill(&n2.d);
    Resp r = identify(lb.port, &img[0]);
    ASSERT_JSON(r, 503);
    ck_assert_str_eq(error_code(&r), "no_node");
    resp_free(&r);
    /* node1 back: its health checks pass and it gets the traffic. */
    node_restart_ok(&n1, pg);
    for (double end = now_s() + 15;; usleep(100000)) {
        r = identify(lb.port, &img[1]);
        if (r.status == 200)
            break;
        ck_assert_msg(now_s() < end, "node1 restarted, balancer still answers %ld", r.status);
        resp_free(&r);
    }
    ck_assert_str_eq(best_subject(&r), "lb-1");
    ck_assert_int_eq(answered_by_ok(&r, &n1, &n2), 1);
    resp_free(&r);

    balancer_stop(&lb);
    own_stop_ok(&n1);
    own_logs_clean_ok(&n1);
    own_logs_clean_ok(&n2);
    for (int i = 0; i < N_SUBJECTS; i++)
        buf_free(&img[i]);
    pg_cluster_stop(pg);
}
END_TEST

int main(int argc, char **argv) {
    if (!haproxy_path()) {
        printf("SKIP pg_balancer: haproxy is not installed (Debian's haproxy)\n");
        return 77;
    }
    Suite *s = suite_create("pg_balancer");
    TCase *tc = tcase_create("balancer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, spreads_and_fails_over);
    suite_add_tcase(s, tc);
    return pg_nodes_main(argc, argv, "pg_balancer", s);
}
