/*
 * conv_dnnl.c — conv2d forward and backward through oneDNN's JIT kernels
 * (brgconv/jit avx512_core, or avx512_core_bf16 in bf16), about twice the
 * speed of im2col + sgemm for the cnn preset's shapes (bench/bench_dnnl).
 *
 * Activations stay ours (NHWC f32) and the weights ours (OC,K,K,C f32, oneDNN's
 * ohwi); oneDNN gets the weights reordered to the layout its kernel wants
 * (with ohwi as given it falls back to its reference loop), in bf16 also the
 * activations converted; results come back f32 (the weight gradient reordered
 * to ohwi, then added, as the kernel interface promises).
 *
 * A plan (primitives, reorders, memories) per shape and precision is built on
 * first use and kept in a small table (a training run has a handful of
 * shapes; the least recently used plan makes room). A plan serves one caller
 * at a time and is made for one thread count (a data-parallel worker's
 * kernels run on its own thread): a caller that finds each plan of its shape
 * busy gets a new one; with no slot free, or oneDNN failing, it gets
 * -ENOTSUP and takes the im2col path, so concurrent inference is safe and
 * never waits.
 */
#include "conv_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef SM_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>

#include "siamese/blas.h"

/* ~0.26 MB each (cnn); training needs 2 per batch size and data-parallel
 * worker, and validation 2 more */
#define MAX_PLANS 16

/* src (a caller's buffer, or a library one) -> dst; prim NULL when the
 * layouts match, and then dst is src. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst;
} Reo;

typedef struct {
    ConvShape s;
    int used, bf16, ok, has_bwd, has_data;
    int nthr;           /* the OpenMP pool size its primitives were made for (blas_threads()) */
    unsigned long last; /* plan_get()'s clock at the last use */
    pthread_mutex_t busy;
    dnnl_stream_t strm;
    dnnl_primitive_t fwd, bww, bwd;
    Reo src, wf, dd, dw, wd, srcw; /* inputs in, gradient out */
    dnnl_memory_t bias, dst, db, dsrc;
    float *dwbuf, *dbbuf; /* the weight and bias gradients, before adding */
} Plan;

static Plan plans[MAX_PLANS];
static unsigned long clock_now;
static pthread_mutex_t table = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t eng;

static void eng_init(void) {
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success)
        eng = NULL;
}

static int md4(dnnl_memory_desc_t *d, int n, int c, int h, int w, dnnl_data_type_t t,
               dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {n, c, h, w};
    return dnnl_memory_desc_init_by_tag(d, 4, dims, t, tag) == dnnl_success ? 0 : -1;
}

/* A memory over a caller's buffer (handle set per call). */
static int user_mem(dnnl_memory_t *m, const dnnl_memory_desc_t *d) {
    return dnnl_memory_create(m, d, eng, DNNL_MEMORY_NONE) == dnnl_success ? 0 : -1;
}

/* from_user: the caller's buffer is the source (inputs), else the
 * destination (outputs); the other side is allocated when layouts differ. */
static int reo_init(Reo *r, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *lib,
                    int from_user) {
    dnnl_memory_t u;
    if (user_mem(&u, user) < 0)
        return -1;
    r->src = r->dst = u;
    if (dnnl_memory_desc_equal(user, lib))
        return 0;
    dnnl_memory_t l;
    if (dnnl_memory_create(&l, lib, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success)
        return -1;
    if (from_user)
        r->dst = l;
    else
        r->src = l;
    const dnnl_memory_desc_t *a = from_user ? user : lib, *b = from_user ? lib : user;
    dnnl_primitive_desc_t pd;
    if (dnnl_reorder_primitive_desc_create(&pd, a, eng, b, eng, NULL) != dnnl_success)
        return -1;
    int rc = dnnl_primitive_create(&r->prim, pd) == dnnl_success ? 0 : -1;
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* The caller's buffer for r's user side; the reorder runs for inputs. */
static int reo_run(Reo *r, dnnl_stream_t st, const float *user, int from_user) {
    if (dnnl_memory_set_data_handle(from_user ? r->src : r->dst, (void *)user) != dnnl_success)
        return -1;
    if (!r->prim || !from_user)
        return 0;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, r->src}, {DNNL_ARG_TO, r->dst}};
    return dnnl_primitive_execute(r->prim, st, 2, a) == dnnl_success ? 0 : -1;
}

static int reo_out(Reo *r, dnnl_stream_t st) {
    if (!r->prim)
        return 0;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, r->src}, {DNNL_ARG_TO, r->dst}};
    return dnnl_primitive_execute(r->prim, st, 2, a) == dnnl_success ? 0 : -1;
}

/* The descriptors of p's shape: activations NHWC in dt (f32 results),
 * weights in dt as the kernel likes them ("any"), or ohwi f32 (ours). */
typedef struct {
    dnnl_memory_desc_t src, srcf, wei, weif, weiu, bias, dst, ddst;
    dnnl_dims_t st, pl, pr;
} Descs;

static int descs_init(Descs *d, const ConvShape *s, int bf16) {
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    const int OH = (s->H + 2 * s->P - s->K) / s->S + 1, OW = (s->W + 2 * s->P - s->K) / s->S + 1;
    dnnl_dims_t bd = {s->OC};
    d->st[0] = d->st[1] = s->S;
    d->pl[0] = d->pl[1] = s->P;
    /* oneDNN wants the right padding that makes its output size ours (floor). */
    d->pr[0] = (OH - 1) * s->S + s->K - s->H - s->P;
    d->pr[1] = (OW - 1) * s->S + s->K - s->W - s->P;
    return md4(&d->src, s->N, s->C, s->H, s->W, dt, dnnl_nhwc) |
           md4(&d->srcf, s->N, s->C, s->H, s->W, dnnl_f32, dnnl_nhwc) |
           md4(&d->wei, s->OC, s->C, s->K, s->K, dt, dnnl_format_tag_any) |
           md4(&d->weif, s->OC, s->C, s->K, s->K, dnnl_f32, dnnl_format_tag_any) |
           md4(&d->weiu, s->OC, s->C, s->K, s->K, dnnl_f32, dnnl_ohwi) |
           md4(&d->dst, s->N, s->OC, OH, OW, dnnl_f32, dnnl_nhwc) |
           md4(&d->ddst, s->N, s->OC, OH, OW, dt, dnnl_nhwc) |
           (dnnl_memory_desc_init_by_tag(&d->bias, 1, bd, dnnl_f32, dnnl_x) != dnnl_success);
}

static const dnnl_memory_desc_t *q(const_dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

/* pd's primitive into *prim unless oneDNN only has its reference loop. */
static int make_prim(dnnl_primitive_t *prim, const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl || strncmp(impl, "ref", 3) == 0)
        return -1;
    return dnnl_primitive_create(prim, pd) == dnnl_success ? 0 : -1;
}

/* The forward primitive and its memories; *fpd is kept for backward. */
static int plan_forward(Plan *p, const Descs *d, dnnl_primitive_desc_t *fpd) {
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                           &d->src, &d->wei, &d->bias, &d->dst, d->st, d->pl,
                                           d->pr) != dnnl_success ||
        dnnl_primitive_desc_create(fpd, &cd, NULL, eng, NULL) != dnnl_success)
        return -1;
    return make_prim(&p->fwd, *fpd) | reo_init(&p->src, &d->srcf, q(*fpd, dnnl_query_src_md), 1) |
           reo_init(&p->wf, &d->weiu, q(*fpd, dnnl_query_weights_md), 1) |
           user_mem(&p->bias, &d->bias) | user_mem(&p->dst, &d->dst);
}

static int plan_backward(Plan *p, const Descs *d, const_dnnl_primitive_desc_t fpd) {
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t wpd = NULL, dpd = NULL;
    int rc = -1;
    if (dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &d->src, &d->weif,
                                                    &d->bias, &d->ddst, d->st, d->pl,
                                                    d->pr) != dnnl_success ||
        dnnl_primitive_desc_create(&wpd, &cd, NULL, eng, fpd) != dnnl_success)
        goto out;
    size_t wn = (size_t)p->s.OC * p->s.K * p->s.K * p->s.C;
    p->dwbuf = malloc(wn * sizeof *p->dwbuf);
    p->dbbuf = malloc((size_t)p->s.OC * sizeof *p->dbbuf);
    if (!p->dwbuf || !p->dbbuf ||
        (make_prim(&p->bww, wpd) | reo_init(&p->srcw, &d->srcf, q(wpd, dnnl_query_src_md), 1) |
         reo_init(&p->dd, &d->dst, q(wpd, dnnl_query_diff_dst_md), 1) |
         reo_init(&p->dw, &d->weiu, q(wpd, dnnl_query_diff_weights_md), 0) |
         user_mem(&p->db, &d->bias)))
        goto out;
    if (dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &d->srcf, &d->wei,
                                                 &d->ddst, d->st, d->pl, d->pr) != dnnl_success ||
        dnnl_primitive_desc_create(&dpd, &cd, NULL, eng, fpd) != dnnl_success ||
        !dnnl_memory_desc_equal(q(dpd, dnnl_query_diff_dst_md), q(wpd, dnnl_query_diff_dst_md)) ||
        (make_prim(&p->bwd, dpd) | reo_init(&p->wd, &d->weiu, q(dpd, dnnl_query_weights_md), 1) |
         user_mem(&p->dsrc, &d->srcf)))
        p->has_data = 0; /* backward-data falls back to im2col */
    else
        p->has_data = 1;
    rc = 0;
out:
    dnnl_primitive_desc_destroy(wpd);
    dnnl_primitive_desc_destroy(dpd);
    return rc;
}

static int plan_init(Plan *p) {
    Descs d;
    dnnl_primitive_desc_t fpd = NULL;
    if (dnnl_stream_create(&p->strm, eng, dnnl_stream_default_flags) != dnnl_success ||
        descs_init(&d, &p->s, p->bf16) || plan_forward(p, &d, &fpd)) {
        dnnl_primitive_desc_destroy(fpd);
        return -1;
    }
    p->has_bwd = plan_backward(p, &d, fpd) == 0;
    dnnl_primitive_desc_destroy(fpd);
    return 0;
}

static void reo_free(Reo *r) {
    dnnl_primitive_destroy(r->prim);
    if (r->dst != r->src)
        dnnl_memory_destroy(r->dst);
    dnnl_memory_destroy(r->src);
}

/* Everything p holds, back to an unused slot (its lock stays). */
static void plan_free(Plan *p) {
    dnnl_primitive_destroy(p->fwd), dnnl_primitive_destroy(p->bww), dnnl_primitive_destroy(p->bwd);
    Reo *r[] = {&p->src, &p->wf, &p->dd, &p->dw, &p->wd, &p->srcw};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        reo_free(r[i]);
    dnnl_memory_destroy(p->bias), dnnl_memory_destroy(p->dst), dnnl_memory_destroy(p->db);
    dnnl_memory_destroy(p->dsrc);
    dnnl_stream_destroy(p->strm);
    free(p->dwbuf), free(p->dbbuf);
    pthread_mutex_t keep = p->busy;
    memset(p, 0, sizeof *p);
    p->busy = keep;
}

static pthread_once_t plans_once = PTHREAD_ONCE_INIT;

static void plans_init(void) {
    eng_init();
    for (int i = 0; i < MAX_PLANS; i++)
        pthread_mutex_init(&plans[i].busy, NULL);
}

/* A slot for a new plan, locked: an unused one, else the least recently
 * used one nobody holds (rebuilt: the daemon's batch sizes vary), else NULL. */
static Plan *plan_slot(void) {
    Plan *best = NULL;
    for (int i = 0; i < MAX_PLANS; i++) {
        Plan *p = &plans[i];
        if (!p->used)
            return pthread_mutex_trylock(&p->busy) == 0 ? p : NULL;
        if (!best || p->last < best->last)
            best = p;
    }
    if (!best || pthread_mutex_trylock(&best->busy) != 0)
        return NULL;
    plan_free(best);
    return best;
}

/* The plan for s, locked for the caller; NULL when none can serve now. */
static Plan *plan_get(const ConvShape *s, int bf16) {
    pthread_once(&plans_once, plans_init);
    if (!eng)
        return NULL;
    pthread_mutex_lock(&table);
    Plan *p = NULL;
    const int nthr = blas_threads();
    for (int i = 0; i < MAX_PLANS && !p; i++)
        if (plans[i].used && plans[i].bf16 == bf16 && plans[i].nthr == nthr &&
            memcmp(&plans[i].s, s, sizeof *s) == 0 && pthread_mutex_trylock(&plans[i].busy) == 0)
            p = &plans[i];
    if (!p && (p = plan_slot()) != NULL) { /* none yet, or each one busy */
        p->s = *s, p->bf16 = bf16, p->nthr = nthr, p->used = 1;
        p->ok = plan_init(p) == 0; /* a failed plan stays until evicted: not retried */
    }
    if (p)
        p->last = ++clock_now;
    pthread_mutex_unlock(&table);
    if (p && !p->ok) {
        pthread_mutex_unlock(&p->busy);
        return NULL;
    }
    return p;
}

static int exec(Plan *p, dnnl_primitive_t prim, int n, const dnnl_exec_arg_t *a) {
    return dnnl_primitive_execute(prim, p->strm, n, a) == dnnl_success ? 0 : -1;
}

/* oneDNN runs on the calling thread's OpenMP pool: the size blas_set_threads()
 * chose (a daemon worker's pool would otherwise default to every core). */
static void pool_size(void) {
    if (omp_get_max_threads() != blas_threads())
        omp_set_num_threads(blas_threads());
}

int convd_forward(float *out, const float *inp, const float *weight, const float *bias,
                  const ConvShape *s, int bf16) {
    pool_size();
    Plan *p = plan_get(s, bf16);
    if (!p)
        return -ENOTSUP;
    int rc = reo_run(&p->src, p->strm, inp, 1) | reo_run(&p->wf, p->strm, weight, 1) |
             (dnnl_memory_set_data_handle(p->bias, (void *)bias) != dnnl_success) |
             (dnnl_memory_set_data_handle(p->dst, out) != dnnl_success);
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, p->src.dst},
                            {DNNL_ARG_WEIGHTS, p->wf.dst},
                            {DNNL_ARG_BIAS, p->bias},
                            {DNNL_ARG_DST, p->dst}};
    rc = rc || exec(p, p->fwd, 4, a) || dnnl_stream_wait(p->strm) != dnnl_success;
    pthread_mutex_unlock(&p->busy);
    return rc ? -EIO : 0;
}

int convd_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, const ConvShape *s, int bf16) {
    pool_size();
    Plan *p = plan_get(s, bf16);
    if (!p)
        return -ENOTSUP;
    if (!p->has_bwd || (dinp && !p->has_data)) {
        pthread_mutex_unlock(&p->busy);
        return -ENOTSUP;
    }
    int rc = reo_run(&p->srcw, p->strm, inp, 1) | reo_run(&p->dd, p->strm, dout, 1) |
             reo_run(&p->dw, p->strm, p->dwbuf, 0) |
             (dnnl_memory_set_data_handle(p->db, p->dbbuf) != dnnl_success);
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, p->srcw.dst},
                            {DNNL_ARG_DIFF_DST, p->dd.dst},
                            {DNNL_ARG_DIFF_WEIGHTS, p->dw.src},
                            {DNNL_ARG_DIFF_BIAS, p->db}};
    rc = rc || exec(p, p->bww, 4, a) || reo_out(&p->dw, p->strm);
    if (!rc && dinp) {
        rc = reo_run(&p->wd, p->strm, weight, 1) ||
             dnnl_memory_set_data_handle(p->dsrc, dinp) != dnnl_success;
        dnnl_exec_arg_t b[3] = {{DNNL_ARG_DIFF_DST, p->dd.dst},
                                {DNNL_ARG_WEIGHTS, p->wd.dst},
                                {DNNL_ARG_DIFF_SRC, p->dsrc}};
        rc = rc || exec(p, p->bwd, 3, b);
    }
    rc = rc || dnnl_stream_wait(p->strm) != dnnl_success;
    if (!rc) {
        size_t wn = (size_t)s->OC * s->K * s->K * s->C;
        for (size_t i = 0; i < wn; i++)
            dweight[i] += p->dwbuf[i];
        for (int i = 0; i < s->OC; i++)
            dbias[i] += p->dbbuf[i];
    }
    pthread_mutex_unlock(&p->busy);
    return rc ? -EIO : 0;
}

int convd_available(int bf16) {
    pthread_once(&plans_once, plans_init);
    if (!eng)
        return 0;
    return !bf16 || dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_bf16;
}

#else /* built without oneDNN */

int convd_forward(float *out, const float *inp, const float *weight, const float *bias,
                  const ConvShape *s, int bf16) {
    (void)out, (void)inp, (void)weight, (void)bias, (void)s, (void)bf16;
    return -ENOTSUP;
}

int convd_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, const ConvShape *s, int bf16) {
    (void)dinp, (void)dweight, (void)dbias, (void)dout, (void)inp, (void)weight, (void)s,
        (void)bf16;
    return -ENOTSUP;
}

int convd_available(int bf16) {
    (void)bf16;
    return 0;
}

#endif
