/*
 * rng.h — a small seeded PRNG (xoshiro256**, seeded through splitmix64).
 * Plain data: copy it to fork a stream. Same seed, same sequence, on every
 * platform; the trainer's determinism rests on this.
 */
#ifndef SIAMESE_RNG_H
#define SIAMESE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t rng_below(Rng *r, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float rng_uniform(Rng *r);

#endif
