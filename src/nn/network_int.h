/*
 * network_int.h — what network.c and network_train.c share: moving conv
 * weights between PyTorch's (OC,C,K,K) and the kernels' (OC,K,K,C).
 */
#ifndef SIAMESE_NETWORK_INT_H
#define SIAMESE_NETWORK_INT_H

/* dst (OC,K,K,C) = src (OC,C,K,K) */
void net_conv_to_hwc(float *dst, const float *src, int OC, int C, int K);
/* dst (OC,C,K,K) += src (OC,K,K,C) */
void net_conv_add_from_hwc(float *dst, const float *src, int OC, int C, int K);

#endif
