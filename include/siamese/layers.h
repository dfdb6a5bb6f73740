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
 * background) are skipped. Equals dense_forward_ref() up to rounding. */
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

/* dist (B), y (B), emb (2B,E) -> demb (2B,E) = d(mean loss)/d(emb). Where the
 * eps clamp is active the gradient is 0, as for the clamped function. */
void contrastive_backward(float *demb, const float *emb, const float *dist, const float *y, int B,
                          int E, float margin);

/* ---- convolution, pooling, flatten: images channels-last (NHWC) ---------
 * Shapes: inp (N,H,W,C); kernel K, stride S, zero padding P;
 * OH = (H + 2P - K) / S + 1, OW likewise; out (N,OH,OW,OC).
 * weight (OC,K,K,C): the kernel in the activations' order (net_* permutes
 * from and to PyTorch's (OC,C,K,K)). */

/* out = conv(inp) + bias. col (N*OH*OW, K*K*C) receives the patches
 * (im2col), which conv2d_backward() needs. */
void conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                    const float *bias, int N, int H, int W, int C, int OC, int K, int S, int P);
void conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N,
                        int H, int W, int C, int OC, int K, int S, int P);

/* dout (N,OH,OW,OC), col as left by conv2d_forward() -> dweight +=, dbias +=,
 * dinp (N,H,W,C) overwritten (skipped when NULL; col is clobbered then). */
void conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                     const float *weight, int N, int H, int W, int C, int OC, int K, int S, int P);
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
/* The same from the input itself (recomputes the first maximum). */
void maxpool_backward_ref(float *dinp, const float *dout, const float *inp, int N, int H, int W,
                          int C, int K);

/* inp (N,H,W,C) -> out (N,C,H,W): PyTorch's flatten order. */
void flatten_forward(float *out, const float *inp, int N, int H, int W, int C);
/* dout (N,C,H,W) -> dinp (N,H,W,C) */
void flatten_backward(float *dinp, const float *dout, int N, int H, int W, int C);

#endif
