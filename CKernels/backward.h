/*
 * backward.h: what the fused attention backward's vector kernel (backward_tile_template.h, one copy
 * per ISA) shares with backward.c, which validates, plans and runs it.
 *
 * The fused backward splits the key blocks of each (batch, K/V head) into `stripes` (block kb into
 * stripe kb % stripes, so causal work is dealt evenly). One work item is one stripe: it owns dk and
 * dv of its blocks outright, and sums its share of dq into its own partial buffer; backward.c adds
 * the stripes' partials in stripe order afterwards. The stripe count depends on the shape only, so
 * every sum has the same order for any thread count.
 */
#ifndef ATTN_BACKWARD_H
#define ATTN_BACKWARD_H

#include "problem.h"

/* Keys per block: a multiple of every ISA's key micro-tile (64, 16 or 8 lanes). */
#define ATTN_BACKWARD_KEY_BLOCK 64

/*
 * Rows whose |lse| reaches this get their log-sum-exp recomputed in double (backward.c's lse_shift).
 * The forward's lse is m + log l rounded to float, and its rounding, up to half an ulp of lse,
 * multiplies every recomputed weight exp(s - lse) of the row by one factor, so the weights no longer
 * sum to 1: by up to 2^-19 (1.9e-6) below 64, a tenth of attn.h's 2e-5, but 2^-11 (5e-4) at 1e4,
 * 3 % at 1e6, and n times where all n visible keys have a bias of -FLT_MAX, as m + log l rounds to
 * m = -FLT_MAX. Below 64 nothing is recomputed: |lse| >= 64 takes a row maximum above 64 - ln Lk
 * (50 at a million keys) or below -64, past attn.h's "moderate size", so rows of ordinary scores
 * never pay for the extra pass over their keys.
 */
#define ATTN_BACKWARD_EXACT_LSE 64.0f

/* Row flags of the D pass (attn_backward_plan.row_flags). */
enum {
    ATTN_BACKWARD_ROW_NO_LSE = 1, /* lse is -inf or NaN: the masked-row policy, or NaN, decides */
    ATTN_BACKWARD_ROW_INEXACT = 2 /* q or dout holds a non-finite value */
};

typedef struct attn_backward_plan {
    const attn_problem *pr;
    const attn_backward_params *bp;
    const float *d;            /* D_i = dout_i · out_i of every row, (B, Hq, Lq) */
    const float *lse_shift;    /* per row, (B, Hq, Lq): its log-sum-exp minus lse, 0 below
                                  ATTN_BACKWARD_EXACT_LSE; its weights are exp((s - lse) - shift) */
    const uint8_t *row_flags;  /* per row, (B, Hq, Lq): ATTN_BACKWARD_ROW_* */
    const int64_t *no_lse_rows; /* per (b, h): rows flagged ATTN_BACKWARD_ROW_NO_LSE */
    int64_t key_blocks, stripes;
    /* Where each stripe sums its unscaled Σ dS k, zeroed before the pass: row (stripe, b, h, i) at
     * dq_sum + the dot of those with dq_sum_stride, dim_qk rounded up to whole vectors of the ISA
     * wide. Partial rows in the workspace, or dq itself when there is one stripe and dim_qk is a
     * whole number of vectors. */
    float *dq_sum;
    int64_t dq_sum_stride[4];
    float *ds_out;             /* with dbias: where dS (b, h, i, j) goes, each element written once */
    int64_t ds_stride[4];      /* (the caller's dbias when no stride is 0, else a full dS backward.c folds) */
} attn_backward_plan;

/* Query row (b, h, i) against keys [j0, j0 + nk) by the reference's rules, one element at a time:
 * dkt[c * ld + j] += dS_j q_c and dvt[c * ld + j] += W_j dout_c (unscaled, transposed, j from 0 at
 * key j0), dq[c] += dS_j k_jc, and dS into the plan's ds_out when there is one. Used for the rows
 * and blocks the vector kernel leaves out: rows without a finite lse, and tiles where a non-finite
 * input would turn a weight of 0 into NaN. scratch holds 2 * nk floats. */
void attn_backward_exact_row(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t nk,
                             float *dkt, float *dvt, int64_t ld, float *dq, float *scratch);

#endif
