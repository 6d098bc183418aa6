/* The Philox noise streams of philox.c, as the fused MLP engine (sweeper/engine/_c/mlp.c) calls them.
 * philox.c includes this header too, so the compiler checks every declaration against its definition.
 * Value j of a stream is a pure function of (key, first_block, j); see philox.c. */
#ifndef SWEEPER_PHILOX_H
#define SWEEPER_PHILOX_H

#include <stdint.h>

void sweeper_normal(float *out, int64_t n, uint64_t key, uint64_t first_block, float scale);
void sweeper_uniform(float *out, int64_t n, uint64_t key, uint64_t first_block, float lo, float hi);
void sweeper_add_normal(const float *src, float *dst, int64_t n, uint64_t key, uint64_t first_block, float scale,
                        int relu);

/* Several members at once on `threads` OpenMP threads: member i from keys[i] and first_blocks[i]. */
void sweeper_normal_many(float **outs, int64_t members, int64_t n, const uint64_t *keys,
                         const uint64_t *first_blocks, const float *scales, int threads);
void sweeper_uniform_many(float **outs, int64_t members, int64_t n, const uint64_t *keys,
                          const uint64_t *first_blocks, const float *scales, int threads);
void sweeper_add_normal_many(const float **srcs, float **dsts, int64_t members, int64_t n, const uint64_t *keys,
                             const uint64_t *first_blocks, const float *scales, int relu, int threads);
void sweeper_units_many(float **outs, int64_t members, int64_t n, const uint64_t *keys, const uint64_t *first_blocks,
                        int threads);

#endif
