/*
 * unfused.c: attn_forward_unfused, the reference path with the fused kernel's exact semantics.
 *
 * For one (batch, head) at a time it does what a framework without fusion does: S = Q·Kᵀ with the
 * packed matrix multiply, then per row scale, bias and masks, a vectorised softmax and dropout, then
 * out = P·V with the matrix multiply again. It is the "unfused" side of every benchmark, so it is
 * written to be fair: the same SIMD kernels, no transposes or copies of Q, K or V, parallel over
 * (batch, head). Its extra memory is the Lq x Lk score matrix per thread and, for each of q, k, v
 * and out in half precision, that head as floats: inputs are widened into it before the products
 * and out is rounded from it after them.
 */
#include <math.h>

#include "half.h"
#include "problem.h"
#include "sgemm.h"

typedef struct unfused_run {
    const attn_problem *pr;
    const attn_kernels *kernels;
    float *workspace;
    int64_t workspace_floats; /* per thread: scores, the float copies, the matrix multiply's packing */
    int64_t q_floats, k_floats, v_floats, out_floats; /* float copies of one head; 0: used in place */
} unfused_run;

/* Floats of one head's float32 copy of a tensor of type t: 0 for float32, read or written in place. */
static int64_t copy_floats(attn_dtype t, int64_t rows, int64_t cols) { return t == ATTN_DTYPE_F32 ? 0 : rows * cols; }

/* A (rows, cols) head at element offset off of a tensor of type t with row stride stride, as floats
 * for the matrix multiply: in place, or widened into buf with row stride cols (*ld). */
static const float *head_f32(const unfused_run *run, const void *p, attn_dtype t, int64_t off, int64_t stride,
                             int64_t rows, int64_t cols, float *buf, int64_t *ld) {
    *ld = t == ATTN_DTYPE_F32 ? stride : cols;
    if (t == ATTN_DTYPE_F32) return (const float *)p + off;
    for (int64_t r = 0; r < rows; r++)
        run->kernels->convert_row(buf + r * cols, ATTN_DTYPE_F32, attn_element(p, t, off + r * stride), t, cols);
    return buf;
}

/* Scale, bias and every mask applied to row i of the scores (keys outside [lo, hi) become -inf). */
static void prepare_row(const attn_problem *pr, int64_t b, int64_t h, int64_t i, float *s) {
    const attn_params *p = &pr->p;
    int64_t lo, hi;
    attn_row_range(pr, b, i, &lo, &hi);
    const attn_row_masks masks = attn_row_masks_at(pr, b, h, i);
    for (int64_t j = 0; j < p->len_k; j++) {
        const float x = attn_bias_mask(&masks, j, s[j] * p->scale);
        s[j] = j < lo || j >= hi ? -INFINITY : x;
    }
}

static void unfused_task(void *ctx, int64_t item, int thread) {
    const unfused_run *run = ctx;
    const attn_problem *pr = run->pr;
    const attn_params *p = &pr->p;
    const int64_t b = item / p->heads_q, h = item % p->heads_q, hk = h / pr->group;
    const int64_t lq = p->len_q, lk = p->len_k;
    float *scores = run->workspace + thread * run->workspace_floats;
    float *row_max = scores + lq * lk, *row_sums = row_max + lq;
    float *qbuf = row_sums + lq, *kbuf = qbuf + run->q_floats, *vbuf = kbuf + run->k_floats;
    float *obuf = vbuf + run->v_floats, *pack = obuf + run->out_floats;
    int64_t ldq, ldk, ldv;
    const float *q = head_f32(run, p->q, p->q_dtype, b * p->q_stride[0] + h * p->q_stride[1], p->q_stride[2], lq,
                              p->dim_qk, qbuf, &ldq);
    const float *k = head_f32(run, p->k, p->k_dtype, b * p->k_stride[0] + hk * p->k_stride[1], p->k_stride[2], lk,
                              p->dim_qk, kbuf, &ldk);
    const float *v = head_f32(run, p->v, p->v_dtype, b * p->v_stride[0] + hk * p->v_stride[1], p->v_stride[2], lk,
                              p->dim_v, vbuf, &ldv);
    const int64_t out0 = b * p->out_stride[0] + h * p->out_stride[1];
    const int in_place = p->out_dtype == ATTN_DTYPE_F32;
    float *out = in_place ? (float *)p->out + out0 : obuf;
    const int64_t ldo = in_place ? p->out_stride[2] : p->dim_v;

    const attn_matmul_params qk = {.m = lq, .n = lk, .k = p->dim_qk, .a = q, .lda = ldq, .b = k,
                                   .ldb = ldk, .b_transposed = 1, .c = scores, .ldc = lk};
    run->kernels->sgemm_block(&qk, pack);

    for (int64_t i = 0; i < lq; i++) {
        float *s = scores + i * lk;
        prepare_row(pr, b, h, i, s);
        run->kernels->softmax_row(s, s, lk, 1.0f, 0.0f, &row_max[i], &row_sums[i]);
        if (!pr->dropout_threshold || !(row_sums[i] > 0.0f)) continue;
        const uint64_t counter = attn_dropout_counter(pr, b, h, i);
        for (int64_t j = 0; j < lk; j++) s[j] = attn_dropout(pr, counter + (uint64_t)j, s[j]);
    }

    const attn_matmul_params pv = {.m = lq, .n = p->dim_v, .k = lk, .a = scores, .lda = lk, .b = v,
                                   .ldb = ldv, .c = out, .ldc = ldo};
    run->kernels->sgemm_block(&pv, pack);

    /* Rows came out normalised (softmax_row divides by the sum), except those with no visible key
     * or a NaN sum, which the finish writes over. */
    for (int64_t i = 0; i < lq; i++) {
        attn_row_finish(pr, b, h, i, row_max[i], row_sums[i], out + i * ldo);
        if (!in_place)
            run->kernels->convert_row((void *)attn_element(p->out, p->out_dtype, out0 + i * p->out_stride[2]),
                                      p->out_dtype, out + i * ldo, ATTN_DTYPE_F32, p->dim_v);
    }
}

/* Thread count and per-thread workspace (scores, row maxima and sums, packing space) for a validated
 * problem. */
static attn_status unfused_plan(unfused_run *run, const attn_problem *pr, int *threads, int64_t *bytes) {
    const attn_params *p = &pr->p;
    run->pr = pr;
    run->kernels = attn_kernels_current();
    const int64_t items = pr->p.batch * pr->p.heads_q;
    *threads = attn_resolve_threads(pr->p.num_threads);
    if (*threads > items) *threads = (int)items;
    /* No overflow in the copies: each head's extent, in floats, was checked by the validation. */
    run->q_floats = copy_floats(p->q_dtype, p->len_q, p->dim_qk);
    run->k_floats = copy_floats(p->k_dtype, p->len_k, p->dim_qk);
    run->v_floats = copy_floats(p->v_dtype, p->len_k, p->dim_v);
    run->out_floats = copy_floats(p->out_dtype, p->len_q, p->dim_v);
    int64_t floats;
    if (!attn_mul_ok(pr->p.len_q, pr->p.len_k, &floats) || !attn_add_ok(floats, 2 * pr->p.len_q, &floats) ||
        !attn_add_ok(floats, run->q_floats, &floats) || !attn_add_ok(floats, run->k_floats, &floats) ||
        !attn_add_ok(floats, run->v_floats, &floats) || !attn_add_ok(floats, run->out_floats, &floats) ||
        !attn_add_ok(floats, ATTN_SGEMM_WORKSPACE_FLOATS + 15, &floats))
        return ATTN_ERR_OVERFLOW;
    /* Rounded to whole cache lines so no two threads' workspaces share one. */
    run->workspace_floats = floats & ~(int64_t)15;
    if (!attn_mul_ok(run->workspace_floats, *threads, bytes) || !attn_mul_ok(*bytes, sizeof(float), bytes))
        return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

/* Validation and plan, shared by the workspace query and the forward pass so that they agree. */
static attn_status unfused_prepare(const attn_params *params, attn_problem *pr, unfused_run *run, int *threads,
                                   int64_t *bytes) {
    const attn_status status = attn_problem_init(pr, params);
    return status == ATTN_OK ? unfused_plan(run, pr, threads, bytes) : status;
}

attn_status attn_forward_unfused_workspace(const attn_params *params, size_t *bytes) {
    if (!bytes) return ATTN_ERR_NULL_POINTER;
    attn_problem pr;
    unfused_run run;
    int threads;
    int64_t total;
    const attn_status status = unfused_prepare(params, &pr, &run, &threads, &total);
    if (status == ATTN_OK) *bytes = (size_t)total;
    return status;
}

attn_status attn_forward_unfused(const attn_params *params) {
    attn_problem pr;
    unfused_run run;
    int threads;
    int64_t bytes;
    const attn_status status = unfused_prepare(params, &pr, &run, &threads, &bytes);
    if (status != ATTN_OK) return status;
    run.workspace = attn_alloc(bytes);
    if (!run.workspace) return ATTN_ERR_OUT_OF_MEMORY;
    attn_parallel_for(pr.p.batch * pr.p.heads_q, threads, unfused_task, &run);
    attn_free(run.workspace);
    return ATTN_OK;
}
