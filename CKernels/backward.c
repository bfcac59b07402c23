/*
 * backward.c: attn_backward_unfused, the reference attention backward pass (the contract is in
 * attn.h, above attn_backward_params).
 *
 * The forward's rules are reused, not copied: attn_problem_init validates `forward`, and per query
 * row attn_row_range, attn_row_masks_at / attn_bias_mask, attn_dropout_counter / attn_dropout and
 * attn_mean_weight (problem.h) say which keys it saw, with what bias, which weights dropout kept
 * and what a fully masked row's weights were. One function, backward_row, turns a row into its
 * weights W (for dv) and score gradients dS (for dq, dk, dbias); two passes use it:
 *   1. per (b, K/V head) group: zero its dk and dv rows, then for each query head of the group and
 *      each row, dq_i = scale Σ_j dS_j k_j, dk_j += scale dS_j q_i, dv_j += W_j dout_i. A group
 *      is one work item, so the GQA sums are in a fixed order and need no atomics.
 *   2. dbias, when asked for: one work item per dbias element row (the dimensions of non-zero
 *      stride), summing the rows that a stride of 0 folds onto it in (b, h, i) order.
 * Plain float loops: this is the reference, written for clarity; results do not depend on threads.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "problem.h"

typedef struct backward_run {
    attn_problem pr;          /* the forward problem, validated */
    attn_backward_params bp;  /* the caller's struct, read as its struct_size says */
    int threads;
    int64_t workspace_floats; /* per thread: W, dS and a dbias row, Lk floats each, cache-line rounded */
    float *workspace;
    int64_t dbias_count[3];   /* pass 2: items over (b, h, i), 1 where a dbias stride is 0 */
    int64_t dbias_fold[3];    /* the rows folded onto an item: the count where the stride is 0, else 1 */
} backward_run;

static int strides_nonnegative(int rank, const int64_t *stride) {
    for (int d = 0; d < rank; d++)
        if (stride[d] < 0) return 0;
    return 1;
}

/* A float tensor of rank 3 at element pointer p: counts, strides, row width. */
typedef struct bwd_tensor {
    const float *p;
    int64_t count[3], stride[3], inner, extent;
} bwd_tensor;

/* x (lower address) and y with the same strides are slices of one tensor along dimension d (0..2,
 * or 3 for the features): y starts k >= x's count steps further along d, and that tensor's rows are
 * disjoint. */
static int slices_of_one(const bwd_tensor *x, const bwd_tensor *y, int64_t delta) {
    for (int d = 0; d < 4; d++) {
        const int64_t step = d < 3 ? x->stride[d] : 1;
        const int64_t xcount = d < 3 ? x->count[d] : x->inner;
        if (step <= 0 || delta % step != 0 || delta / step < xcount) continue;
        int64_t count[3], inner = x->inner > y->inner ? x->inner : y->inner;
        for (int e = 0; e < 3; e++) count[e] = x->count[e] > y->count[e] ? x->count[e] : y->count[e];
        if (d < 3 && !attn_add_ok(delta / step, y->count[d], &count[d])) continue;
        if (d == 3 && !attn_add_ok(delta, y->inner, &inner)) continue;
        if (attn_extent_ok(3, count, x->stride, inner, NULL) && attn_rows_disjoint(3, count, x->stride, inner))
            return 1;
    }
    return 0;
}

/* Two outputs do not share an element: disjoint address ranges, or slices of one tensor. */
static int outputs_disjoint(const bwd_tensor *a, const bwd_tensor *b) {
    const uintptr_t pa = (uintptr_t)a->p, pb = (uintptr_t)b->p;
    const uintptr_t ea = pa + (uintptr_t)a->extent * sizeof(float), eb = pb + (uintptr_t)b->extent * sizeof(float);
    if (ea <= pb || eb <= pa) return 1;
    const bwd_tensor *x = pa <= pb ? a : b, *y = pa <= pb ? b : a;
    const uintptr_t bytes = (pa <= pb ? pb - pa : pa - pb);
    if (bytes % sizeof(float) != 0 || memcmp(x->stride, y->stride, sizeof x->stride) != 0) return 0;
    return slices_of_one(x, y, (int64_t)(bytes / sizeof(float)));
}

/* Everything the backward checks before it allocates: the struct, the forward problem, then the
 * backward's pointers, types, strides, extents and overlaps; and the plan (threads, workspace). */
static attn_status backward_prepare(backward_run *run, const attn_backward_params *params, int64_t *bytes) {
    memset(run, 0, sizeof *run);
    attn_status status = attn_read_backward_params(&run->bp, params);
    if (status != ATTN_OK) return status;
    status = attn_problem_init(&run->pr, &run->bp.forward);
    if (status != ATTN_OK) return status;
    const attn_backward_params *bp = &run->bp;
    const attn_params *p = &run->pr.p;
    if (!p->lse || !bp->dout || !bp->dq || !bp->dk || !bp->dv) return ATTN_ERR_NULL_POINTER;
    if (p->q_dtype != ATTN_DTYPE_F32 || p->k_dtype != ATTN_DTYPE_F32 || p->v_dtype != ATTN_DTYPE_F32 ||
        p->out_dtype != ATTN_DTYPE_F32)
        return ATTN_ERR_UNSUPPORTED;
    if (!strides_nonnegative(3, bp->dout_stride) || !strides_nonnegative(3, bp->dq_stride) ||
        !strides_nonnegative(3, bp->dk_stride) || !strides_nonnegative(3, bp->dv_stride) ||
        (bp->dbias && !strides_nonnegative(4, bp->dbias_stride)))
        return ATTN_ERR_INVALID_STRIDE;

    bwd_tensor dq = {bp->dq, {p->batch, p->heads_q, p->len_q}, {0}, p->dim_qk, 0};
    bwd_tensor dk = {bp->dk, {p->batch, p->heads_kv, p->len_k}, {0}, p->dim_qk, 0};
    bwd_tensor dv = {bp->dv, {p->batch, p->heads_kv, p->len_k}, {0}, p->dim_v, 0};
    memcpy(dq.stride, bp->dq_stride, sizeof dq.stride);
    memcpy(dk.stride, bp->dk_stride, sizeof dk.stride);
    memcpy(dv.stride, bp->dv_stride, sizeof dv.stride);
    const int64_t score_count[4] = {p->batch, p->heads_q, p->len_q, p->len_k};
    int64_t extent, dbias_extent = 0;
    if (!attn_extent_ok(3, dq.count, bp->dout_stride, p->dim_v, &extent) ||
        !attn_extent_ok(3, dq.count, dq.stride, dq.inner, &dq.extent) ||
        !attn_extent_ok(3, dk.count, dk.stride, dk.inner, &dk.extent) ||
        !attn_extent_ok(3, dv.count, dv.stride, dv.inner, &dv.extent) ||
        (bp->dbias && !attn_extent_ok(4, score_count, bp->dbias_stride, 1, &dbias_extent)))
        return ATTN_ERR_OVERFLOW;

    if (!attn_rows_disjoint(3, dq.count, dq.stride, dq.inner) || !attn_rows_disjoint(3, dk.count, dk.stride, dk.inner) ||
        !attn_rows_disjoint(3, dv.count, dv.stride, dv.inner))
        return ATTN_ERR_INVALID_STRIDE;
    if (!outputs_disjoint(&dq, &dk) || !outputs_disjoint(&dq, &dv) || !outputs_disjoint(&dk, &dv))
        return ATTN_ERR_INVALID_STRIDE;
    if (bp->dbias) {
        /* Elements reached without a stride of 0 must be distinct; dbias must miss dq, dk and dv. */
        int64_t distinct[4];
        for (int d = 0; d < 4; d++) distinct[d] = bp->dbias_stride[d] == 0 ? 1 : score_count[d];
        const bwd_tensor db = {bp->dbias, {1, 1, 1}, {0, 0, 0}, 1, dbias_extent};
        if (!attn_rows_disjoint(4, distinct, bp->dbias_stride, 1) || !outputs_disjoint(&db, &dq) ||
            !outputs_disjoint(&db, &dk) || !outputs_disjoint(&db, &dv))
            return ATTN_ERR_INVALID_STRIDE;
        for (int d = 0; d < 3; d++) {
            run->dbias_count[d] = distinct[d];
            run->dbias_fold[d] = bp->dbias_stride[d] == 0 ? score_count[d] : 1;
        }
    }

    /* 3 Lk floats per thread: Lk < 2^62 / 4 (validated extents), so no overflow below 2^63. */
    /* Threads: no more than the larger pass has items (B * Hq * Lq fits: validated). */
    int64_t items = p->batch * p->heads_kv;
    const int64_t dbias_items = run->dbias_count[0] * run->dbias_count[1] * run->dbias_count[2];
    if (bp->dbias && dbias_items > items) items = dbias_items;
    run->threads = attn_resolve_threads(p->num_threads);
    if (run->threads > items) run->threads = (int)items;
    int64_t floats;
    if (!attn_mul_ok(p->len_k, 3, &floats) || !attn_add_ok(floats, 15, &floats)) return ATTN_ERR_OVERFLOW;
    run->workspace_floats = floats & ~(int64_t)15;
    if (!attn_mul_ok(run->workspace_floats, run->threads, bytes) || !attn_mul_ok(*bytes, sizeof(float), bytes))
        return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

static float dot(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

/*
 * Query row (b, h, i): w[j] = the weight W_j that multiplies dout_i into dv_j, ds[j] = dS_j (the
 * score gradient, before the scale; dbias's value), for every key j < Lk. Keys of weight 0 get 0 in
 * both and are not read. Returns 0 when the whole row is 0 (a ZERO masked row).
 */
static int backward_row(const backward_run *run, int64_t b, int64_t h, int64_t i, float *w, float *ds) {
    const attn_problem *pr = &run->pr;
    const attn_params *p = &pr->p;
    const int64_t lk = p->len_k, hk = h / pr->group;
    const float lse = p->lse[(b * p->heads_q + h) * p->len_q + i];
    const uint64_t counter = attn_dropout_counter(pr, b, h, i);
    for (int64_t j = 0; j < lk; j++) w[j] = ds[j] = 0.0f;
    if (isnan(lse) || (lse == -INFINITY && p->masked_rows == ATTN_MASKED_ROWS_NAN)) {
        for (int64_t j = 0; j < lk; j++) w[j] = ds[j] = NAN;
        return 1;
    }
    if (lse == -INFINITY) {
        if (p->masked_rows == ATTN_MASKED_ROWS_ZERO) return 0;
        for (int64_t j = 0; j < lk; j++) w[j] = attn_mean_weight(pr, counter, j);
        return 1;
    }
    const float *q = (const float *)p->q + b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
    const float *k = (const float *)p->k + b * p->k_stride[0] + hk * p->k_stride[1];
    const float *v = (const float *)p->v + b * p->v_stride[0] + hk * p->v_stride[1];
    const float *out = (const float *)p->out + b * p->out_stride[0] + h * p->out_stride[1] + i * p->out_stride[2];
    const float *dout = (const float *)run->bp.dout + b * run->bp.dout_stride[0] + h * run->bp.dout_stride[1] +
                        i * run->bp.dout_stride[2];
    const float d_row = dot(dout, out, p->dim_v);
    int64_t lo, hi;
    attn_row_range(pr, b, i, &lo, &hi);
    const attn_row_masks masks = attn_row_masks_at(pr, b, h, i);
    for (int64_t j = lo; j < hi; j++) {
        const float s = attn_bias_mask(&masks, j, dot(q, k + j * p->k_stride[2], p->dim_qk) * p->scale);
        const float pj = expf(s - lse);
        if (pj == 0.0f) continue;
        float dp = dot(dout, v + j * p->v_stride[2], p->dim_v);
        w[j] = pj;
        if (pr->dropout_threshold) {
            w[j] = attn_dropout(pr, counter + (uint64_t)j, pj);
            dp = attn_dropout(pr, counter + (uint64_t)j, dp);
        }
        ds[j] = pj * (dp - d_row);
    }
    return 1;
}

/* Pass 1, one (b, K/V head) group: dq of its query heads, dk and dv of its K/V head. */
static void group_task(void *ctx, int64_t item, int thread) {
    const backward_run *run = ctx;
    const attn_problem *pr = &run->pr;
    const attn_params *p = &pr->p;
    const attn_backward_params *bp = &run->bp;
    const int64_t b = item / p->heads_kv, hk = item % p->heads_kv, dqk = p->dim_qk, dv_dim = p->dim_v;
    float *w = run->workspace + thread * run->workspace_floats, *ds = w + p->len_k;
    float *dk = (float *)bp->dk + b * bp->dk_stride[0] + hk * bp->dk_stride[1];
    float *dv = (float *)bp->dv + b * bp->dv_stride[0] + hk * bp->dv_stride[1];
    const float *k = (const float *)p->k + b * p->k_stride[0] + hk * p->k_stride[1];
    for (int64_t j = 0; j < p->len_k; j++) {
        for (int64_t c = 0; c < dqk; c++) dk[j * bp->dk_stride[2] + c] = 0.0f;
        for (int64_t c = 0; c < dv_dim; c++) dv[j * bp->dv_stride[2] + c] = 0.0f;
    }
    for (int64_t h = hk * pr->group; h < (hk + 1) * pr->group; h++) {
        for (int64_t i = 0; i < p->len_q; i++) {
            float *dq = (float *)bp->dq + b * bp->dq_stride[0] + h * bp->dq_stride[1] + i * bp->dq_stride[2];
            for (int64_t c = 0; c < dqk; c++) dq[c] = 0.0f;
            if (!backward_row(run, b, h, i, w, ds)) continue;
            const float *q = (const float *)p->q + b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
            const float *dout = (const float *)bp->dout + b * bp->dout_stride[0] + h * bp->dout_stride[1] +
                                i * bp->dout_stride[2];
            for (int64_t j = 0; j < p->len_k; j++) {
                if (w[j] != 0.0f)
                    for (int64_t c = 0; c < dv_dim; c++) dv[j * bp->dv_stride[2] + c] += w[j] * dout[c];
                if (ds[j] == 0.0f) continue;
                const float g = p->scale * ds[j];
                const float *kj = k + j * p->k_stride[2];
                float *dkj = dk + j * bp->dk_stride[2];
                for (int64_t c = 0; c < dqk; c++) dq[c] += ds[j] * kj[c];
                for (int64_t c = 0; c < dqk; c++) dkj[c] += g * q[c];
            }
            for (int64_t c = 0; c < dqk; c++) dq[c] *= p->scale;
        }
    }
}

/* Pass 2, one dbias row (b, h, i) over the dimensions of non-zero stride: the sum, in (b, h, i)
 * order, of the dS rows a stride of 0 folds onto it, then over j when its stride is 0 too. */
static void dbias_task(void *ctx, int64_t item, int thread) {
    const backward_run *run = ctx;
    const attn_backward_params *bp = &run->bp;
    const int64_t lk = run->pr.p.len_k, *n = run->dbias_count, *fold = run->dbias_fold;
    float *w = run->workspace + thread * run->workspace_floats, *ds = w + lk, *acc = ds + lk;
    const int64_t ob = item / (n[1] * n[2]), oh = item / n[2] % n[1], oi = item % n[2];
    for (int64_t j = 0; j < lk; j++) acc[j] = 0.0f;
    for (int64_t fb = 0; fb < fold[0]; fb++)
        for (int64_t fh = 0; fh < fold[1]; fh++)
            for (int64_t fi = 0; fi < fold[2]; fi++) {
                backward_row(run, ob + fb, oh + fh, oi + fi, w, ds);
                for (int64_t j = 0; j < lk; j++) acc[j] += ds[j];
            }
    float *db = bp->dbias + ob * bp->dbias_stride[0] + oh * bp->dbias_stride[1] + oi * bp->dbias_stride[2];
    if (bp->dbias_stride[3] == 0) {
        float s = 0.0f;
        for (int64_t j = 0; j < lk; j++) s += acc[j];
        db[0] = s;
    } else {
        for (int64_t j = 0; j < lk; j++) db[j * bp->dbias_stride[3]] = acc[j];
    }
}

attn_status attn_backward_unfused_workspace(const attn_backward_params *params, size_t *bytes) {
    if (!bytes) return ATTN_ERR_NULL_POINTER;
    backward_run run;
    int64_t total;
    const attn_status status = backward_prepare(&run, params, &total);
    if (status == ATTN_OK) *bytes = (size_t)total;
    return status;
}

attn_status attn_backward_unfused(const attn_backward_params *params) {
    backward_run run;
    int64_t bytes;
    const attn_status status = backward_prepare(&run, params, &bytes);
    if (status != ATTN_OK) return status;
    run.workspace = attn_alloc(bytes);
    if (!run.workspace) return ATTN_ERR_OUT_OF_MEMORY;
    attn_parallel_for(run.pr.p.batch * run.pr.p.heads_kv, run.threads, group_task, &run);
    if (run.bp.dbias)
        attn_parallel_for(run.dbias_count[0] * run.dbias_count[1] * run.dbias_count[2], run.threads, dbias_task, &run);
    attn_free(run.workspace);
    return ATTN_OK;
}
