/*
 * layers.h — the network's building blocks as plain forward/backward functions
 * (the llm.c shape): outputs first, inputs const, sizes last; the first line
 * of each comment gives the shapes. Backward functions ADD into parameter
 * gradients (the caller zeroes them once per step) and OVERWRITE input
 * gradients. Every optimised kernel has a *_ref twin: a plain loop that the
 * unit tests hold it to.
 *
 * A Siamese batch of B pairs is one (2B, C) matrix: rows 0..B-1 are the left
 * images, rows B..2B-1 the right ones, so both branches share one matrix
 * product with the shared weights.
 */
#ifndef SIAMESE_LAYERS_H
#define SIAMESE_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/rng.h"

/* Smallest squared distance: D = sqrt(max(sum (a-b)^2, SM_DIST_EPS)). */
#define SM_DIST_EPS 1e-7f

/* out (N,OC) = inp (N,C) . weight(OC,C)^T + bias (OC) */
void dense_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                   int C, int OC);
void dense_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int OC);

/* out (N,OC) = inp (N,C) . weight_t (C,OC) + bias (OC): the same product with
 * the weights stored transposed, for inference of a few rows (the daemon's
 * one or two images): every step is a contiguous multiply-add over all OC
 * outputs, with no horizontal sums, and zero inputs (ReLU's, and image
 * background) are skipped, and each step is one fused multiply-add on CPUs
 * that have FMA. Equals dense_forward_ref() up to rounding. */
void dense_forward_t(float *out, const float *inp, const float *weight_t, const float *bias, int N,
                     int C, int OC);

/* dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C) (skipped when NULL),
 * dweight (OC,C) +=, dbias (OC) += */
void dense_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int N, int C, int OC);
void dense_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC);

/* out (n) = max(inp, 0); out may equal inp */
void relu_forward(float *out, const float *inp, size_t n);
/* dinp (n) = dout where out > 0, else 0; dinp may equal dout */
void relu_backward(float *dinp, const float *dout, const float *out, size_t n);

/* Inverted dropout, training only. out (n), mask (n): mask[i] is 0 or
 * 1/(1-p), drawn from rng; out = inp * mask. p in [0,1). */
void dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, Rng *rng);
/* dinp (n) = dout * mask */
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

/* emb (2B,E): left rows then right rows -> dist (B). D = sqrt(max(|a-b|^2, eps)) */
void distance_forward(float *dist, const float *emb, int B, int E);

/* dist (B), y (B; 1 same, 0 different) -> mean of y*D^2 + (1-y)*max(margin-D,0)^2 */
float contrastive_forward(const float *dist, const float *y, int B, float margin);

/* dist (B), y (B), emb (2B,E) -> demb (2B,E) = d(loss)/d(emb), the loss being
 * these B pairs' sum over n_mean (>= B): B for a whole batch, the batch's
 * size for a data-parallel share of it. Where the eps clamp is active the
 * gradient is 0, as for the clamped function. */
void contrastive_backward(float *demb, const float *emb, const float *dist, const float *y, int B,
                          int E, float margin, int n_mean);

/* ---- convolution, pooling, flatten: images channels-last (NHWC) ---------
 * Shapes: inp (N,H,W,C); kernel K, stride S, zero padding P;
 * OH = (H + 2P - K) / S + 1, OW likewise; out (N,OH,OW,OC).
 * weight (OC,K,K,C): the kernel in the activations' order (net_* permutes
 * from and to PyTorch's (OC,C,K,K)). */

/* Who computes conv2d_forward()/conv2d_backward(), process-wide: AUTO (the
 * default) = oneDNN f32 for batches of at least CONV_AUTO_MIN_N images when
 * built with it, else im2col + sgemm; ONEDNN/ONEDNN_BF16 = oneDNN for every
 * call (bf16: sources and weights rounded to bf16, f32 accumulation and
 * results); IM2COL = never oneDNN. A call oneDNN cannot serve (plan busy, a
 * shape it refuses) is computed by im2col. The *_ref twins never change. */
typedef enum { CONV_AUTO, CONV_IM2COL, CONV_ONEDNN, CONV_ONEDNN_BF16 } ConvBackend;
/* A training batch (2 x 128 pairs) is 256 images; inference works in chunks
 * of at most ~40 cnn images (network.c's 8 MB scratch), so AUTO leaves the
 * daemon to im2col: no oneDNN plans (~0.3-0.5 MB each) in its memory. */
#define CONV_AUTO_MIN_N 64
/* -ENOTSUP (and nothing changes) when oneDNN or its bf16 kernels are missing. */
int conv2d_set_backend(ConvBackend b);
ConvBackend conv2d_backend(void);
/* "auto", "im2col", "onednn" or "bf16" (static): the current one, or b's
 * (the config key conv_backend spells them so). */
const char *conv2d_backend_name(void);
const char *conv2d_backend_name_of(ConvBackend b);
/* How many conv2d_* calls oneDNN has computed in this process. */
size_t conv2d_onednn_calls(void);

/* out = conv(inp) + bias. col (N*OH*OW, K*K*C): scratch for the patches. */
void conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                    const float *bias, int N, int H, int W, int C, int OC, int K, int S, int P);
void conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N,
                        int H, int W, int C, int OC, int K, int S, int P);

/* dout (N,OH,OW,OC), inp (N,H,W,C) of the forward -> dweight +=, dbias +=,
 * dinp (N,H,W,C) overwritten (skipped when NULL). col: scratch as above. */
void conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                     const float *inp, const float *weight, int N, int H, int W, int C, int OC,
                     int K, int S, int P);
void conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int N, int H, int W, int C, int OC,
                         int K, int S, int P);

/* Max pool K×K, stride K, floor: out (N,H/K,W/K,C). */
void maxpool_forward(float *out, const float *inp, int N, int H, int W, int C, int K);
void maxpool_forward_ref(float *out, const float *inp, int N, int H, int W, int C, int K);
/* dinp (N,H,W,C) overwritten: each dout goes to the first input of its
 * window (scanning rows, as PyTorch's CPU kernel) equal to out, the forward's
 * output; the rest is 0. */
void maxpool_backward(float *dinp, const float *dout, const float *inp, const float *out, int N,
                      int H, int W, int C, int K);
/* ReLU then max pool, in one pass over the input (they commute: max(0, max
 * window) = max window of max(0, x)): out = max(0, maxpool(inp)), inp the
 * pre-ReLU values. Backward: dinp (N,H,W,C) overwritten with the gradient of
 * relu-then-pool at inp: dout to the first maximum of each window whose out
 * > 0, else 0 — what relu_backward() after maxpool_backward() of the ReLU'd
 * input gives (tests hold them to that). */
void maxpool_relu_forward(float *out, const float *inp, int N, int H, int W, int C, int K);
void maxpool_relu_backward(float *dinp, const float *dout, const float *inp, const float *out,
                           int N, int H, int W, int C, int K);
/* The same from the input itself (recomputes the first maximum). */
void maxpool_backward_ref(float *dinp, const float *dout, const float *inp, int N, int H, int W,
                          int C, int K);

/* inp (N,H,W,C) -> out (N,C,H,W): PyTorch's flatten order. */
void flatten_forward(float *out, const float *inp, int N, int H, int W, int C);
/* dout (N,C,H,W) -> dinp (N,H,W,C) */
void flatten_backward(float *dinp, const float *dout, int N, int H, int W, int C);

#endif
