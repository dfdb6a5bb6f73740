/*
 * daemon_harness.h — what the daemon integration tests share: running the
 * real siamesed binary as a child process (on a free loopback port, with its
 * stderr in a file), talking HTTP to it through libcurl or a raw socket,
 * building multipart and JSON+base64 bodies, and reading fixture images.
 *
 * Nothing here calls ck_assert: the helpers return codes, so they are safe in
 * Check's unchecked fixtures (which run in the runner process) as well as in
 * tests. Every daemon started here gets PR_SET_PDEATHSIG(SIGKILL), so a test
 * process that dies on a failed assertion never leaves a daemon behind.
 */
#ifndef DAEMON_HARNESS_H
#define DAEMON_HARNESS_H

#include <check.h>
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Paths from the command line (test_daemon SIAMESED MKMODEL SRCROOT) and the
 * run's scratch directory with two models, A (seed 11) and B (seed 22). */
typedef struct {
    const char *siamesed, *mkmodel, *srcroot;
    char root[256]; /* scratch directory of this run */
    char model_a[320], model_b[320];
} Harness;
extern Harness H;

/* A growable byte buffer, always NUL-terminated (the NUL not counted). */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

void buf_add(Buf *b, const void *p, size_t n);
void buf_str(Buf *b, const char *s);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(Buf *b);
/* The whole file in *out (NUL-terminated; free with buf_free()); 0, or -1 if
 * unreadable. */
int buf_read_file(const char *path, Buf *out);

/* tests/data/img/NAME read whole; aborts the process if it cannot be read. */
Buf img_file(const char *name);
/* A w x h binary PGM whose pixels are a deterministic function of seed. */
Buf img_pgm(uint32_t seed, int w, int h);
/* Malloc'ed standard base64 of n bytes (caller frees). */
char *b64(const void *p, size_t n);
double now_s(void);

/* ---- processes ---- */

typedef struct {
    pid_t pid; /* 0 when not running */
    int port;
    int status; /* wait status once it has exited */
    char log[400];
    char ca[400]; /* the --tls-cert it was given ("" for plain HTTP) */
} Daemon;

/* A fresh directory under H.root named after tag (out: size bytes). 0 or -1. */
int scratch_dir(const char *tag, char *out, size_t size);
/* Runs mkmodel OUT SEED [WIDTHS] (widths NULL: 128,128,128); 0 on success. */
int model_make(const char *path, unsigned seed, const char *widths);
/* The same with a training summary (JSON object text; NULL: none). */
int model_make_trained(const char *path, unsigned seed, const char *widths, const char *training);

/* Starts `siamesed --listen 127.0.0.1:PORT --train-if-missing no ARGS...`
 * (args NULL-terminated; --threads 2 added unless args set it) with stderr
 * and stdout appended to log, and waits until GET /healthz answers 200.
 * With --tls-cert among args, /healthz is asked over HTTPS trusting that
 * certificate. Retries with another port when the chosen one was taken. 0 when serving;
 * -1 when the daemon exited first (d->status holds its wait status) or did
 * not answer within 60 s (then it is killed). */
int daemon_start(Daemon *d, const char *log, const char *const *args);
/* The same on a given port (a node started again where a balancer expects
 * it), one attempt: -1 also when the port is taken. */
int daemon_start_on(Daemon *d, int port, const char *log, const char *const *args);
/* SIGTERM, then waits (SIGKILL after 30 s). Returns the wait status. */
int daemon_stop(Daemon *d);
/* The same with another signal. */
int daemon_signal_stop(Daemon *d, int sig);
/* Waits for a daemon already told to stop; -1 (and SIGKILL) after seconds. */
int daemon_wait(Daemon *d, double seconds);
/* SIGKILL and reap. Returns the wait status. */
int daemon_kill(Daemon *d);
/* Runs `siamesed ARGS...` to completion (killed after 120 s), output appended
 * to log. Returns the wait status, or -1 if it could not be run. */
int tool_run(const char *log, const char *const *args);
/* 1 when a wait status is a normal exit with code 0. */
int exited_ok(int status);

/* 1 if the file contains needle, 0 if not or unreadable. */
int file_has(const char *path, const char *needle);
/* 1 if log holds a sanitizer report (ASan, LSan, UBSan, TSan). */
int log_has_sanitizer_report(const char *log);
/* Prints the last lines of a log to stderr, for failure messages. */
void log_dump(const char *log);
/* Removes a directory tree; errors ignored. */
void tree_remove(const char *dir);

/* ---- HTTP ---- */

typedef struct {
    const char *method; /* GET, POST, DELETE, HEAD, PUT ... */
    const char *path;   /* with query */
    const char *ctype;  /* Content-Type; NULL sends none */
    const void *body;
    size_t len;
    const char *auth; /* whole Authorization value, or NULL */
    int chunked;      /* send the body with Transfer-Encoding: chunked */
    const char *ca;   /* HTTPS, trusting this PEM certificate; NULL: plain HTTP */
} Req;

typedef struct {
    long status; /* 0 when the transfer failed (see curl_rc) */
    int curl_rc;
    char ctype[128], allow[128], www_auth[160], retry_after[16];
    char request_id[24]; /* X-Request-Id (its access-log line's id=) */
    char served_by[32];  /* X-Served-By (the example balancer's node name) */
    char *body;          /* NUL-terminated, never NULL after http()/http_raw() */
    size_t len;
    cJSON *json; /* parsed body when it is JSON, else NULL */
} Resp;

Resp http(int port, const Req *rq);
/* From begin to end, this thread's requests share one libcurl handle and so
 * reuse its connection (keep-alive); end returns how many connections were
 * opened meanwhile. */
void http_keepalive_begin(void);
int http_keepalive_end(void);
/* A socket connected to 127.0.0.1:port, or -1. */
int raw_connect(int port);
/* Sends raw bytes on a new connection and reads one response (until the
 * connection closes or a whole Content-Length body arrived). */
Resp http_raw(int port, const void *bytes, size_t n);
/* Like http_raw() but reads until the server closes the connection; the body
 * then holds everything after the first header block (a second response
 * included). curl_rc is -2 when the server kept the connection open for 3 s. */
Resp http_raw_until_close(int port, const void *bytes, size_t n);
void resp_free(Resp *r);

Resp http_get(int port, const char *path);
Resp http_delete(int port, const char *path);

/* One field of a request body. kind: text (data NUL-terminated when len is
 * 0), an image (binary: a file part, or base64 in JSON; a name given more
 * than once becomes a JSON array), or raw JSON (a text part in multipart,
 * the JSON value itself in a JSON body). */
enum { F_TEXT, F_IMAGE, F_JSON };
typedef struct {
    const char *name;
    const void *data;
    size_t len;
    int kind;
} Field;

#define TEXT(n, s) ((Field){(n), (s), 0, F_TEXT})
#define JRAW(n, s) ((Field){(n), (s), 0, F_JSON})
#define IMAGE(n, b) ((Field){(n), (b).p, (b).len, F_IMAGE})

/* multipart/form-data body of the fields; ctype (size bytes) gets the
 * Content-Type header value. */
Buf body_multipart(const Field *f, int n, char *ctype, size_t size);
/* application/json body of the fields. */
Buf body_json(const Field *f, int n);

Resp post_multipart(int port, const char *path, const Field *f, int n, const char *auth);
Resp post_json(int port, const char *path, const Field *f, int n, const char *auth);

/* Number member of an object (NaN if absent or not a number). */
double jnum(const cJSON *o, const char *name);
/* String member (NULL if absent or not a string). */
const char *jstr(const cJSON *o, const char *name);
/* The error code of a {"error":{"code","message"}} body sent as
 * application/json, or NULL when the reply is not exactly of that shape. */
const char *error_code(const Resp *r);

/* Sum of the Prometheus samples named name whose label text contains every
 * one of the NULL-terminated label fragments (e.g. "route=\"verify\""). NaN
 * when no sample matched. */
double prom_sum(const char *text, const char *name, const char *const *labels);

/* Euclidean distance between two JSON arrays of numbers (NaN on mismatch). */
double json_vec_distance(const cJSON *a, const cJSON *b);

/* ---- the test cases (test_daemon*.c) ---- */

/* A daemon shared by the tests of one TCase, started by an unchecked fixture
 * in the runner process: model A, a fresh database, the given extra flags. */
typedef struct {
    Daemon d;
    char dir[320], db[400];
} Shared;

/* Starts s (tag names its scratch directory). On failure s->d.port is 0 and
 * the tests of the TCase fail on their first request. */
void shared_start(Shared *s, const char *tag, const char *const *extra);
/* Stops s and checks that it exited 0 without a sanitizer report; a failure
 * is printed and counted in harness_failures (main's exit status). */
void shared_stop(Shared *s);
extern int harness_failures;

/* Asserts a reply's status (and, for ASSERT_JSON, a parsed JSON body). */
#define ASSERT_STATUS(r, want)                                                                     \
    ck_assert_msg((r).status == (want), "status %ld, want %d (curl %d); body: %.500s", (r).status, \
                  (int)(want), (r).curl_rc, (r).body)
#define ASSERT_JSON(r, want)                                                                       \
    do {                                                                                           \
        ASSERT_STATUS(r, want);                                                                    \
        ck_assert_msg(strcmp((r).ctype, "application/json") == 0 && (r).json,                      \
                      "reply is not JSON: Content-Type '%s', body %.200s", (r).ctype, (r).body);   \
    } while (0)

/* sqrt(1e-7): the distance the model reports for identical embeddings. */
#define SAME_DISTANCE 3.1622776601683794e-4

/* In test_daemon.c; these assert. Enrolls n (<= 8) images under subject
 * (metadata: JSON object text or NULL); ids (may be NULL) get the new ids. */
void enroll(int port, const char *subject, const Buf *imgs, int n, const char *metadata,
            double *ids);
/* The served model's fingerprint (a static buffer). */
const char *fingerprint(int port);
/* 1 for "2026-01-02T03:04:05.678Z". */
int is_iso_time(const char *s);

TCase *tcase_routes(void);     /* test_daemon.c */
TCase *tcase_listing(void);    /* test_daemon_list.c */
TCase *tcase_input(void);      /* test_daemon_input.c */
TCase *tcase_access(void);     /* test_daemon_access.c */
TCase *tcase_openapi(void);    /* test_daemon_access.c */
TCase *tcase_lifecycle(void);  /* test_daemon_life.c */
TCase *tcase_safety(void);     /* test_daemon_safe.c */
TCase *tcase_security(void);   /* test_daemon_sec.c */
TCase *tcase_api(void);        /* test_daemon_api.c */
TCase *tcase_models(void);     /* test_daemon_models.c */
TCase *tcase_bulk(void);       /* test_daemon_bulk.c */
TCase *tcase_scheduling(void); /* test_daemon_sched.c */

#endif
