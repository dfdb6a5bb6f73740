/*
 * conv_int.h — what conv.c hands to its oneDNN backend (conv_dnnl.c).
 */
#ifndef SIAMESE_CONV_INT_H
#define SIAMESE_CONV_INT_H

/* One convolution's sizes, as layers.h names them; compared bytewise. */
typedef struct {
    int N, H, W, C, OC, K, S, P;
} ConvShape;

/* The kernels of layers.h through oneDNN, sources and weights in bf16 when
 * bf16 (results f32). 0, or -ENOTSUP/-EIO when oneDNN cannot serve this call
 * (not built in, plan busy or failed): the caller computes it itself. */
int convd_forward(float *out, const float *inp, const float *weight, const float *bias,
                  const ConvShape *s, int bf16);
int convd_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, const ConvShape *s, int bf16);
/* Whether oneDNN is built in and usable (bf16: the CPU has bf16 kernels). */
int convd_available(int bf16);

#endif
