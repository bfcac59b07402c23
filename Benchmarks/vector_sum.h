/*
 * vector_sum.h: the plain vector sum the benchmarks compare memory-bound kernels with (attn_bench's
 * read bandwidth and decode rows, paired.c's PAIRED_SUM contender), so both measure the same loop.
 */
#ifndef BENCH_VECTOR_SUM_H
#define BENCH_VECTOR_SUM_H

#include <stddef.h>
#include <string.h>

/* Sum of x[0..n) with four independent vector accumulators, so the loop is bound by memory, not
 * by the latency of one chain of additions. n is a multiple of 16. */
static inline float vector_sum(const float *x, size_t n) {
    typedef float vec __attribute__((vector_size(16)));
    vec acc[4] = {{0}};
    for (size_t i = 0; i < n; i += 16)
        for (int c = 0; c < 4; c++) {
            vec v;
            memcpy(&v, x + i + 4 * c, sizeof v);
            acc[c] += v;
        }
    vec t = acc[0] + acc[1] + acc[2] + acc[3];
    return t[0] + t[1] + t[2] + t[3];
}

#endif
