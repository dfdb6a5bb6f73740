/*
 * optim.h — optimisers over one contiguous parameter buffer (n floats), so an
 * update is a single loop. Each has a *_ref twin (plain scalar loop) that the
 * vectorised version is tested against.
 */
#ifndef SIAMESE_OPTIM_H
#define SIAMESE_OPTIM_H

#include <stddef.h>

/* RMSprop (Keras/PyTorch form): v = rho*v + (1-rho)*g^2; p -= lr*g/(sqrt(v)+eps) */
void rmsprop_update(float *p, const float *g, float *v, size_t n, float lr, float rho, float eps);
void rmsprop_update_ref(float *p, const float *g, float *v, size_t n, float lr, float rho,
                        float eps);

/* Adam, step t >= 1: m = b1*m+(1-b1)*g; v = b2*v+(1-b2)*g^2;
 * p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) */
void adam_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                 float b2, float eps, int t);
void adam_update_ref(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                     float b2, float eps, int t);

/* Decoupled weight decay (AdamW's, Loshchilov & Hutter): p -= lr_wd * p,
 * lr_wd = the step's lr times the decay, applied to the weights (not the
 * biases) before the optimiser's step, so it does not pass through v. */
void decay_update(float *p, size_t n, float lr_wd);
void decay_update_ref(float *p, size_t n, float lr_wd);

/* Exponential moving average of the parameters: a = d*a + (1-d)*p. */
void ema_update(float *a, const float *p, size_t n, float d);
void ema_update_ref(float *a, const float *p, size_t n, float d);

/* The average's decay after step t >= 1: min(decay, (1+t)/(10+t)), so the
 * first steps do not leave the average at the initial weights
 * (tf.train.ExponentialMovingAverage with num_updates). */
float ema_decay_at(float decay, long t);

/* The learning rate of step t (0-based) of a run of total steps under cosine
 * decay: lr * (1 + cos(pi * t / total)) / 2, so lr at t = 0, lr/2 halfway and
 * 0 from t = total on. total < 1 gives lr (no run to decay over). */
float lr_cosine(float lr, long t, long total);

#endif
