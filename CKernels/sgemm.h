/*
 * sgemm.h: the single-threaded matrix multiply every ISA provides (kernels->sgemm_block), used by
 * attn_matmul (which splits C into blocks across threads) and by the unfused attention path (one
 * whole product per thread).
 */
#ifndef ATTN_SGEMM_H
#define ATTN_SGEMM_H

#include <stdint.h>

/* Floats of per-call workspace sgemm_block needs: one packed MC x KC block of A and one KC x NC
 * block of B, for the largest blocking of any ISA (sgemm_kernel.h checks each against it). */
#define ATTN_SGEMM_WORKSPACE_FLOATS (288 * 256 + 256 * 1024)

/* C (m, n) = A (m, k) · B (+ bias), or C += ... with accumulate; B is (k, n) with row stride ldb,
 * or, when b_transposed, Bᵀ stored as (n, k) with row stride ldb. bias (n,) or NULL. */
struct attn_sgemm_args {
    int64_t m, n, k;
    const float *a; int64_t lda;
    const float *b; int64_t ldb; int b_transposed;
    float *c;       int64_t ldc;
    const float *bias;
    int accumulate;
};

#endif
