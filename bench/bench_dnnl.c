/*
 * bench_dnnl.c — our im2col + sgemm convolution (src/nn/conv.c) against
 * oneDNN's for the two convolutions of the cnn preset at one training step's
 * batch (a pair batch of B is 2B images): conv1 1->32 k5 on 28x28, conv2
 * 32->64 k5 on 12x12. Forward, backward-weights (with bias) and
 * backward-data (conv2 only: the first layer's input gradient is not
 * computed), f32 and bf16 (bf16 sources and weights, f32 destination and
 * f32 weight gradients, as a mixed-precision step would use), activations
 * channels-last (nhwc, our layout) or in the layout oneDNN prefers ("any":
 * nChw16c on AVX-512). Weights are "any" for oneDNN (a reorder of 51k floats
 * per step is noise) or ohwi, our (OC,K,K,C) as it stands (what conv.c
 * feeds it); reorders of activations are not timed.
 *
 * Rounds are interleaved (every case once per round, in order); each run is
 * the mean of a few calls; the table gives the median over rounds and every
 * run. usage: bench_dnnl [batch_pairs=128] [threads=2] [rounds=7]
 */
#include <dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/layers.h"
#include "siamese/rng.h"

#define MAX_CASES 48
#define MAX_ROUNDS 31

typedef struct {
    const char *name;
    int C, H, W, OC, K, bwd_data;
} Shape;

static const Shape shapes[] = {
    {"conv1", 1, 28, 28, 32, 5, 0},
    {"conv2", 32, 12, 12, 64, 5, 1},
};

enum { OP_FWD, OP_BWD_W, OP_BWD_D, OP_N };
static const char *op_name[OP_N] = {"fwd", "bwd_w", "bwd_d"};

/* One timed case: ours (conv.c) or a oneDNN primitive with its arguments. */
typedef struct {
    char label[96];
    const Shape *s;
    int op, N;
    double flops;
    /* ours */
    float *inp, *out, *col, *w, *b, *dw, *db, *dinp;
    /* oneDNN */
    dnnl_primitive_t prim;
    dnnl_exec_arg_t args[8];
    int nargs;
    double run[MAX_ROUNDS];
} Case;

static dnnl_engine_t eng;
static dnnl_stream_t strm;

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        dnnl_status_t st_ = (x);                                                                   \
        if (st_ != dnnl_success) {                                                                 \
            fprintf(stderr, "bench_dnnl: %s: status %d\n", #x, (int)st_);                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static float *randv(size_t n, Rng *r) {
    float *v = aligned_alloc(64, (n * sizeof *v + 63) & ~(size_t)63);
    if (!v)
        exit(1);
    for (size_t i = 0; i < n; i++)
        v[i] = rng_uniform(r) * 2 - 1;
    return v;
}

static int osz(const Shape *s) {
    return s->H - s->K + 1;
}

static void ours_setup(Case *c, Rng *r) {
    const Shape *s = c->s;
    size_t in = (size_t)c->N * s->H * s->W * s->C, o = (size_t)c->N * osz(s) * osz(s) * s->OC;
    size_t wn = (size_t)s->OC * s->K * s->K * s->C;
    c->inp = randv(in, r), c->out = randv(o, r), c->dinp = randv(in, r);
    c->col = randv((size_t)c->N * osz(s) * osz(s) * s->K * s->K * s->C, r);
    c->w = randv(wn, r), c->b = randv((size_t)s->OC, r);
    c->dw = randv(wn, r), c->db = randv((size_t)s->OC, r);
}

/* conv.c computes the weight gradient in the same call as the input
 * gradient, so ours "bwd_d" runs the whole backward (weights + data); the
 * table reports it minus ours bwd_w (medians). */
static void ours_run(Case *c) {
    const Shape *s = c->s;
    if (c->op == OP_FWD)
        conv2d_forward(c->out, c->col, c->inp, c->w, c->b, c->N, s->H, s->W, s->C, s->OC, s->K, 1,
                       0);
    else
        conv2d_backward(c->op == OP_BWD_D ? c->dinp : NULL, c->dw, c->db, c->col, c->out, c->inp,
                        c->w, c->N, s->H, s->W, s->C, s->OC, s->K, 1, 0);
}

/* A oneDNN memory for md, allocated by the library, filled with 0x3c003c00
 * words (0.0078 as bf16 pairs, ~0.0078 as f32): finite, normal values. */
static dnnl_memory_t mem_for(const dnnl_memory_desc_t *md) {
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    void *h;
    CHECK(dnnl_memory_get_data_handle(m, &h));
    size_t n = dnnl_memory_desc_get_size(md) / 4;
    for (size_t i = 0; i < n; i++)
        ((uint32_t *)h)[i] = 0x3c003c00u;
    return m;
}

static void md(dnnl_memory_desc_t *d, int n, int c, int h, int w, dnnl_data_type_t t,
               dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {n, c, h, w};
    CHECK(dnnl_memory_desc_init_by_tag(d, 4, dims, t, tag));
}

static void arg(Case *c, int which, const_dnnl_primitive_desc_t pd, dnnl_query_t q) {
    c->args[c->nargs].arg = which;
    c->args[c->nargs].memory = mem_for(dnnl_primitive_desc_query_md(pd, q, 0));
    c->nargs++;
}

/* md's layout as oneDNN's tags spell it: dims by decreasing stride
 * (a = n, b = c, ...; capital when blocked), then the inner blocks. */
static void fmt_str(char *buf, size_t size, const dnnl_memory_desc_t *m) {
    if (m->format_kind != dnnl_blocked) {
        snprintf(buf, size, "format %d", (int)m->format_kind);
        return;
    }
    const dnnl_blocking_desc_t *b = &m->format_desc.blocking;
    int order[DNNL_MAX_NDIMS], nd = m->ndims;
    for (int i = 0; i < nd; i++)
        order[i] = i;
    for (int i = 0; i < nd; i++) /* selection sort, largest stride first, stable */
        for (int j = i + 1; j < nd; j++)
            if (b->strides[order[j]] > b->strides[order[i]]) {
                int t = order[i];
                order[i] = order[j], order[j] = t;
            }
    size_t at = 0;
    for (int i = 0; i < nd && at + 1 < size; i++) {
        int blocked = 0;
        for (int k = 0; k < b->inner_nblks; k++)
            blocked |= b->inner_idxs[k] == order[i];
        buf[at++] = (char)((blocked ? 'A' : 'a') + order[i]);
    }
    buf[at] = 0;
    for (int k = 0; k < b->inner_nblks && at < size; k++)
        at += (size_t)snprintf(buf + at, size - at, "%d%c", (int)b->inner_blks[k],
                               'a' + (int)b->inner_idxs[k]);
}

/* A oneDNN case: data type dt for sources/weights (f32 results), activation
 * tag act (dnnl_nhwc or dnnl_format_tag_any). Returns the impl name. */
static const char *dnnl_setup(Case *c, dnnl_data_type_t dt, dnnl_format_tag_t act,
                              dnnl_format_tag_t wtag) {
    const Shape *s = c->s;
    dnnl_memory_desc_t src, srcf, wei, weif, bias, dst, dstlo;
    md(&src, c->N, s->C, s->H, s->W, dt, act);
    md(&srcf, c->N, s->C, s->H, s->W, dnnl_f32, act);
    md(&wei, s->OC, s->C, s->K, s->K, dt, wtag);
    md(&weif, s->OC, s->C, s->K, s->K, dnnl_f32, wtag);
    md(&dst, c->N, s->OC, osz(s), osz(s), dnnl_f32, act);
    md(&dstlo, c->N, s->OC, osz(s), osz(s), dt, act);
    dnnl_dims_t bd = {s->OC}, st = {1, 1}, pad = {0, 0};
    CHECK(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x));
    dnnl_convolution_desc_t fd, d;
    CHECK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                             &src, &wei, &bias, &dst, st, pad, pad));
    dnnl_primitive_desc_t fpd, pd;
    CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    if (c->op == OP_FWD) {
        pd = fpd;
    } else {
        if (c->op == OP_BWD_W)
            CHECK(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &src,
                                                              &weif, &bias, &dstlo, st, pad, pad));
        else
            CHECK(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &srcf, &wei,
                                                           &dstlo, st, pad, pad));
        CHECK(dnnl_primitive_desc_create(&pd, &d, NULL, eng, fpd));
    }
    if (c->op == OP_FWD) {
        arg(c, DNNL_ARG_SRC, pd, dnnl_query_src_md);
        arg(c, DNNL_ARG_WEIGHTS, pd, dnnl_query_weights_md);
        c->args[c->nargs].arg = DNNL_ARG_BIAS;
        c->args[c->nargs++].memory = mem_for(&bias);
        arg(c, DNNL_ARG_DST, pd, dnnl_query_dst_md);
    } else if (c->op == OP_BWD_W) {
        arg(c, DNNL_ARG_SRC, pd, dnnl_query_src_md);
        arg(c, DNNL_ARG_DIFF_DST, pd, dnnl_query_diff_dst_md);
        arg(c, DNNL_ARG_DIFF_WEIGHTS, pd, dnnl_query_diff_weights_md);
        c->args[c->nargs].arg = DNNL_ARG_DIFF_BIAS;
        c->args[c->nargs++].memory = mem_for(&bias);
    } else {
        arg(c, DNNL_ARG_DIFF_DST, pd, dnnl_query_diff_dst_md);
        arg(c, DNNL_ARG_WEIGHTS, pd, dnnl_query_weights_md);
        arg(c, DNNL_ARG_DIFF_SRC, pd, dnnl_query_diff_src_md);
    }
    CHECK(dnnl_primitive_create(&c->prim, pd));
    const char *impl = NULL;
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    char fmt[64] = "";
    const dnnl_memory_desc_t *sm = dnnl_primitive_desc_query_md(
        pd, c->op == OP_BWD_D ? dnnl_query_diff_src_md : dnnl_query_src_md, 0);
    fmt_str(fmt, sizeof fmt, sm);
    static char name[160];
    snprintf(name, sizeof name, "%s [%s]", impl, fmt);
    return name;
}

static void case_call(Case *c) {
    if (c->prim) {
        CHECK(dnnl_primitive_execute(c->prim, strm, c->nargs, c->args));
        CHECK(dnnl_stream_wait(strm));
    } else
        ours_run(c);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double t[MAX_ROUNDS];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static int add_cases(Case *cs, int n, int N, Rng *rng) {
    static const struct {
        const char *tag;
        dnnl_data_type_t dt;
        dnnl_format_tag_t act, wtag;
    } kinds[] = {
        {"onednn f32 nhwc/ohwi", dnnl_f32, dnnl_nhwc, dnnl_ohwi},
        {"onednn f32 nhwc", dnnl_f32, dnnl_nhwc, dnnl_format_tag_any},
        {"onednn f32 any", dnnl_f32, dnnl_format_tag_any, dnnl_format_tag_any},
        {"onednn bf16 nhwc", dnnl_bf16, dnnl_nhwc, dnnl_format_tag_any},
        {"onednn bf16 any", dnnl_bf16, dnnl_format_tag_any, dnnl_format_tag_any},
    };
    for (size_t si = 0; si < SM_ARRAY_LEN(shapes); si++)
        for (int op = 0; op < OP_N; op++) {
            const Shape *s = &shapes[si];
            if (op == OP_BWD_D && !s->bwd_data)
                continue;
            double mac = (double)N * osz(s) * osz(s) * s->OC * s->K * s->K * s->C;
            Case *c = &cs[n++];
            memset(c, 0, sizeof *c);
            c->s = s, c->op = op, c->N = N, c->flops = 2 * mac;
            snprintf(c->label, sizeof c->label, "%s %s ours im2col+sgemm f32 nhwc%s", s->name,
                     op_name[op], op == OP_BWD_D ? " (w+d runs, minus w)" : "");
            ours_setup(c, rng);
            for (size_t k = 0; k < SM_ARRAY_LEN(kinds); k++) {
                Case *d = &cs[n++];
                memset(d, 0, sizeof *d);
                d->s = s, d->op = op, d->N = N, d->flops = 2 * mac;
                const char *impl = dnnl_setup(d, kinds[k].dt, kinds[k].act, kinds[k].wtag);
                snprintf(d->label, sizeof d->label, "%s %s %s: %s", s->name, op_name[op],
                         kinds[k].tag, impl);
                if (strncmp(impl, "ref", 3) == 0) { /* the plain reference: minutes, not ms */
                    printf("# not timed (oneDNN's reference loop): %s\n", d->label);
                    n--;
                }
            }
        }
    return n;
}

int main(int argc, char **argv) {
    char err[SM_ERRMAX];
    if (blas_boot(argv, err) < 0) {
        fprintf(stderr, "bench_dnnl: %s\n", err);
        return 1;
    }
    int B = argc > 1 ? atoi(argv[1]) : 128, threads = argc > 2 ? atoi(argv[2]) : 2;
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    rounds = rounds < 1 ? 1 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
    blas_set_threads(threads);
    conv2d_set_backend(CONV_IM2COL); /* "ours" is im2col + sgemm */
    omp_set_num_threads(threads);
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    Rng rng;
    rng_seed(&rng, 1);
    static Case cs[MAX_CASES];
    int n = add_cases(cs, 0, 2 * B, &rng);
    const dnnl_version_t *v = dnnl_version();
    printf("# oneDNN %d.%d.%d, isa %d, OpenBLAS %s, threads %d, images/step %d, rounds %d\n",
           v->major, v->minor, v->patch, (int)dnnl_get_effective_cpu_isa(), blas_kernel(), threads,
           2 * B, rounds);
    for (int i = 0; i < n; i++) /* warm-up: JIT, page faults, thread pools */
        case_call(&cs[i]), case_call(&cs[i]);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++) {
            int reps = 3;
            double t0 = sm_now();
            for (int k = 0; k < reps; k++)
                case_call(&cs[i]);
            cs[i].run[r] = (sm_now() - t0) / reps;
        }
    printf("%-78s %9s %8s %8s  runs (ms)\n", "case", "ms", "GFLOP/s", "ours/x");
    double ours = 0, ours_w = 0;
    for (int i = 0; i < n; i++) {
        double m = median(cs[i].run, rounds);
        if (!cs[i].prim && cs[i].op == OP_BWD_D)
            m -= ours_w;
        if (!cs[i].prim)
            ours = m, ours_w = cs[i].op == OP_BWD_W ? m : ours_w;
        printf("%-78s %9.3f %8.1f %8.2f ", cs[i].label, m * 1e3, cs[i].flops / m / 1e9, ours / m);
        for (int r = 0; r < rounds; r++)
            printf(" %.3f", cs[i].run[r] * 1e3);
        printf("\n");
    }
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}
