/*
 * unfused.c: attn_forward_unfused, the reference path with the fused kernel's exact semantics.
 *
 * For one (batch, head) at a time it does what a framework without fusion does: S = Q·Kᵀ with the
 * packed matrix multiply, then per row scale, bias and masks, a vectorised softmax and dropout, then
 * out = P·V with the matrix multiply again. It is the "unfused" side of every benchmark, so it is
 * written to be fair: the same SIMD kernels, no transposes or copies of Q, K or V, parallel over
 * (batch, head). Its extra memory is the Lq x Lk score matrix per thread.
 */
#include <math.h>

#include "internal.h"
#include "sgemm.h"

typedef struct unfused_run {
    const attn_problem *pr;
    const attn_kernels *kernels;
    float *workspace;
    int64_t workspace_floats; /* per thread: scores, then the matrix multiply's packing space */
} unfused_run;

/* Scale, bias and every mask applied to row i of the scores (keys outside [lo, hi) become -inf). */
static void prepare_row(const attn_problem *pr, int64_t b, int64_t h, int64_t i, float *s) {
    const attn_params *p = &pr->p;
    int64_t lo, hi;
    attn_row_range(pr, b, i, &lo, &hi);
    const float *bias = p->bias ? p->bias + b * p->bias_stride[0] + h * p->bias_stride[1] + i * p->bias_stride[2] : NULL;
    const uint8_t *mask = p->mask ? p->mask + b * p->mask_stride[0] + h * p->mask_stride[1] + i * p->mask_stride[2] : NULL;
    for (int64_t j = 0; j < p->len_k; j++) {
        float x = s[j] * p->scale;
        if (bias) x += bias[j * p->bias_stride[3]];
        if (j < lo || j >= hi || (mask && !mask[j * p->mask_stride[3]])) x = -INFINITY;
        s[j] = x;
    }
}

static void unfused_task(void *ctx, int64_t item, int thread) {
    const unfused_run *run = ctx;
    const attn_problem *pr = run->pr;
    const attn_params *p = &pr->p;
    const int64_t b = item / p->heads_q, h = item % p->heads_q, hk = h / pr->group;
    const int64_t lq = p->len_q, lk = p->len_k;
    float *scores = run->workspace + thread * run->workspace_floats;
    float *row_sums = scores + lq * lk;
    float *pack = row_sums + lq;
    const float *q = p->q + b * p->q_stride[0] + h * p->q_stride[1];
    const float *k = p->k + b * p->k_stride[0] + hk * p->k_stride[1];
    const float *v = p->v + b * p->v_stride[0] + hk * p->v_stride[1];
    float *out = p->out + b * p->out_stride[0] + h * p->out_stride[1];

    const attn_sgemm_args qk = {lq, lk, p->dim_qk, q, p->q_stride[2], k, p->k_stride[2], 1, scores, lk, NULL, 0};
    run->kernels->sgemm_block(&qk, pack);

    for (int64_t i = 0; i < lq; i++) {
        float *s = scores + i * lk;
        prepare_row(pr, b, h, i, s);
        float mx;
        run->kernels->softmax_row(s, lk, &mx, &row_sums[i]);
        if (p->lse) p->lse[(b * p->heads_q + h) * lq + i] = row_sums[i] == 0.0f ? -INFINITY : mx + logf(row_sums[i]);
        if (!pr->dropout_threshold || row_sums[i] == 0.0f) continue;
        const uint64_t base = p->dropout_offset + (uint64_t)((b * p->heads_q + h) * lq + i) * (uint64_t)lk;
        for (int64_t j = 0; j < lk; j++)
            s[j] = attn_dropout_bits(p->dropout_seed, base + (uint64_t)j) >= pr->dropout_threshold ? s[j] * pr->dropout_scale : 0.0f;
    }

    const attn_sgemm_args pv = {lq, p->dim_v, lk, scores, lk, v, p->v_stride[2], 0, out, p->out_stride[2], NULL, 0};
    run->kernels->sgemm_block(&pv, pack);

    /* Rows that saw no key came out as 0 (all their weights are exp(-inf) = 0): apply the policy. */
    for (int64_t i = 0; i < lq; i++)
        if (row_sums[i] == 0.0f) attn_masked_row_fill(pr, b, h, i, out + i * p->out_stride[2]);
}

/* Thread count and per-thread workspace (scores, row sums, packing space) for a validated problem. */
static attn_status unfused_plan(unfused_run *run, const attn_problem *pr, int *threads, int64_t *bytes) {
    run->pr = pr;
    run->kernels = attn_kernels_current();
    const int64_t items = pr->p.batch * pr->p.heads_q;
    *threads = attn_resolve_threads(pr->p.num_threads);
    if (*threads > items) *threads = (int)items;
    int64_t floats;
    if (!attn_mul_ok(pr->p.len_q, pr->p.len_k, &floats) || !attn_add_ok(floats, pr->p.len_q, &floats) ||
        !attn_add_ok(floats, ATTN_SGEMM_WORKSPACE_FLOATS + 15, &floats))
        return ATTN_ERR_OVERFLOW;
    /* Rounded to whole cache lines so no two threads' workspaces share one. */
    run->workspace_floats = floats & ~(int64_t)15;
    if (!attn_mul_ok(run->workspace_floats, *threads, bytes) || !attn_mul_ok(*bytes, sizeof(float), bytes))
        return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

attn_status attn_forward_unfused_workspace(const attn_params *params, size_t *bytes) {
    if (!bytes) return ATTN_ERR_NULL_POINTER;
    attn_problem pr;
    unfused_run run;
    int threads;
    int64_t total;
    attn_status status = attn_problem_init(&pr, params);
    if (status == ATTN_OK) status = unfused_plan(&run, &pr, &threads, &total);
    if (status == ATTN_OK) *bytes = (size_t)total;
    return status;
}

attn_status attn_forward_unfused(const attn_params *params) {
    attn_problem pr;
    unfused_run run;
    int threads;
    int64_t bytes;
    attn_status status = attn_problem_init(&pr, params);
    if (status == ATTN_OK) status = unfused_plan(&run, &pr, &threads, &bytes);
    if (status != ATTN_OK) return status;
    run.workspace = attn_alloc(bytes);
    if (!run.workspace) return ATTN_ERR_OUT_OF_MEMORY;
    attn_parallel_for(pr.p.batch * pr.p.heads_q, threads, unfused_task, &run);
    attn_free(run.workspace);
    return ATTN_OK;
}
