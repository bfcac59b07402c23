/*
 * backward.c: the attention backward pass, attn_backward (fused) and attn_backward_unfused (the
 * reference); the contract is in attn.h, above attn_backward_params.
 *
 * The forward's rules are reused, not copied: attn_problem_init validates `forward`, and per query
 * row attn_row_range, attn_row_masks_at / attn_bias_mask, attn_dropout_counter / attn_dropout and
 * attn_mean_weight (problem.h) say which keys it saw, with what bias, which weights dropout kept
 * and what a fully masked row's weights were. The weights are exp((s - lse) - shift), the shift 0
 * but in rows of large |lse|, whose log-sum-exp lse_shift recomputes (the threshold: backward.h).
 * backward_row turns a row against a range of keys into its weights W (for dv) and score
 * gradients dS (for dq, dk, dbias), one element at a time:
 *   unfused: per (b, K/V head) group, every row against every key by backward_row (the shift
 *     computed there), dk and dv summed in place;
 *   fused (FlashAttention-2's order, backward.h): D, the shift and the row flags once per row; per
 *     stripe of key blocks of each (b, K/V head), the ISA's vector kernel (backward_tile_template.h),
 *     which owns dk and dv of its blocks and sums its share of dq into the stripe's partial rows
 *     (falling back to backward_row where an input is not finite); then dq = scale Σ partials in
 *     stripe order.
 * Then dbias (both): per distinct dbias element row, the rows a stride of 0 folds onto it.
 * Every output element is summed by one work item in a fixed order: no atomics, and the same bits
 * for any thread count.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backward.h"

/* Work items of the fused path's stripes wanted over all (b, K/V head): enough for 8 threads. */
#define BACKWARD_MIN_ITEMS 8

typedef struct backward_run {
    attn_problem pr;          /* the forward problem, validated */
    attn_backward_params bp;  /* the caller's struct, read as its struct_size says */
    attn_backward_plan plan;  /* fused: what the vector kernel shares (backward.h); unfused: pr, bp */
    const attn_kernels *kernels;
    int threads;
    int64_t key_block;        /* keys per block: Lk (unfused) or ATTN_BACKWARD_KEY_BLOCK (fused) */
    int64_t workspace_floats; /* per thread (see backward_prepare), cache-line rounded */
    float *workspace;
    int64_t dbias_count[3];   /* pass 2: items over (b, h, i), 1 where a dbias stride is 0 */
    int64_t dbias_fold[3];    /* the rows folded onto an item: the count where the stride is 0, else 1 */
    int dbias_folds;          /* fused: dbias has a stride of 0, so the dbias pass folds the kernel's dS */
    int64_t shared[4];        /* fused: where the shared parts start (shared_floats) */
    int64_t dq_ld;            /* fused: floats per partial dq row, dim_qk rounded up to whole vectors */
    int dq_direct;            /* fused: the kernel sums into dq itself (one stripe, whole vectors) */
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

/* The address ranges of two outputs (extent floats from p) do not meet. */
static int ranges_disjoint(const bwd_tensor *a, const bwd_tensor *b) {
    const uintptr_t pa = (uintptr_t)a->p, pb = (uintptr_t)b->p;
    const uintptr_t ea = pa + (uintptr_t)a->extent * sizeof(float), eb = pb + (uintptr_t)b->extent * sizeof(float);
    return ea <= pb || eb <= pa;
}

/* Two outputs do not share an element: disjoint address ranges, or slices of one tensor. */
static int outputs_disjoint(const bwd_tensor *a, const bwd_tensor *b) {
    const uintptr_t pa = (uintptr_t)a->p, pb = (uintptr_t)b->p;
    if (ranges_disjoint(a, b)) return 1;
    const bwd_tensor *x = pa <= pb ? a : b, *y = pa <= pb ? b : a;
    const uintptr_t bytes = (pa <= pb ? pb - pa : pa - pb);
    if (bytes % sizeof(float) != 0 || memcmp(x->stride, y->stride, sizeof x->stride) != 0) return 0;
    return slices_of_one(x, y, (int64_t)(bytes / sizeof(float)));
}

/* The fused path's shared workspace before dq's partials, in floats, each part 16-float aligned:
 * the rows without lse per (b, h) (int64, two floats each) at 0, then of every row D at
 * offsets[1], the lse shift at offsets[2] and the flags (bytes) at offsets[3]; the partials from
 * offsets[0]. Returns 0 when that does not fit int64_t (rows, B·Hq·Lq, is below 2^61: validated). */
static int shared_floats(const attn_params *p, int64_t offsets[4]) {
    const int64_t heads = p->batch * p->heads_q, rows = heads * p->len_q, row_floats = (rows + 15) & ~(int64_t)15;
    offsets[1] = (2 * heads + 15) & ~(int64_t)15;
    return attn_add_ok(offsets[1], row_floats, &offsets[2]) && attn_add_ok(offsets[2], row_floats, &offsets[3]) &&
           attn_add_ok(offsets[3], (attn_ceil_div(rows, 4) + 15) & ~(int64_t)15, &offsets[0]);
}

/* Everything the backward checks before it allocates: the struct, the forward problem, then the
 * backward's pointers, types, strides, extents and overlaps; and the plan (threads, workspace). */
static attn_status backward_prepare(backward_run *run, const attn_backward_params *params, int fused, int64_t *bytes) {
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
        /* Elements reached without a stride of 0 must be distinct; dbias's address range must miss
         * dq's, dk's and dv's (it is no slice of theirs: the slices rule, which compares strides, would
         * take its stand-in strides {0, 0, 0} for those of a one-row dq, dk or dv given zero strides,
         * and accept a dbias around it). */
        int64_t distinct[4];
        for (int d = 0; d < 4; d++) distinct[d] = bp->dbias_stride[d] == 0 ? 1 : score_count[d];
        const bwd_tensor db = {bp->dbias, {1, 1, 1}, {0, 0, 0}, 1, dbias_extent};
        if (!attn_rows_disjoint(4, distinct, bp->dbias_stride, 1) || !ranges_disjoint(&db, &dq) ||
            !ranges_disjoint(&db, &dk) || !ranges_disjoint(&db, &dv))
            return ATTN_ERR_INVALID_STRIDE;
        for (int d = 0; d < 3; d++) {
            run->dbias_count[d] = distinct[d];
            run->dbias_fold[d] = bp->dbias_stride[d] == 0 ? score_count[d] : 1;
        }
    }

    /* Threads: no more than the largest pass has items (B * Hq * Lq fits: validated). */
    int64_t items = fused ? p->batch * p->heads_q : p->batch * p->heads_kv;
    const int64_t dbias_items = run->dbias_count[0] * run->dbias_count[1] * run->dbias_count[2];
    if (bp->dbias && dbias_items > items) items = dbias_items;
    run->plan.pr = &run->pr;
    run->plan.bp = &run->bp;
    run->key_block = fused ? ATTN_BACKWARD_KEY_BLOCK : p->len_k;
    int64_t floats = 0, shared = 0;
    if (fused) {
        attn_backward_plan *plan = &run->plan;
        const int64_t pairs = p->batch * p->heads_kv, rows = p->batch * p->heads_q * p->len_q;
        run->kernels = attn_kernels_current();
        plan->key_blocks = attn_ceil_div(p->len_k, ATTN_BACKWARD_KEY_BLOCK);
        plan->stripes = pairs >= BACKWARD_MIN_ITEMS ? 1 : attn_ceil_div(BACKWARD_MIN_ITEMS, pairs > 0 ? pairs : 1);
        if (plan->stripes > plan->key_blocks) plan->stripes = plan->key_blocks > 0 ? plan->key_blocks : 1;
        if (pairs * plan->stripes > items) items = pairs * plan->stripes;
        run->dq_ld = attn_ceil_div(p->dim_qk, run->kernels->vector_floats) * run->kernels->vector_floats;
        run->dq_direct = plan->stripes == 1 && run->dq_ld == p->dim_qk;
        /* Per thread: the kernel's blocks and tiles (below 2^56: Dqk and Dv are below 2^46); shared:
         * shared_floats and the partials, checked. */
        floats = run->kernels->backward_workspace_floats(&run->pr);
        int64_t partial;
        if (!shared_floats(p, run->shared) || !attn_mul_ok(rows, run->dq_direct ? 0 : run->dq_ld, &partial) ||
            !attn_mul_ok(partial, plan->stripes, &partial) || !attn_add_ok(run->shared[0], partial, &shared))
            return ATTN_ERR_OVERFLOW;
        /* dbias: written by the kernel when no stride is 0; else the whole dS (B, Hq, Lq, Lk), after
         * the partials, for the fold pass. */
        run->dbias_folds = bp->dbias && !(bp->dbias_stride[0] && bp->dbias_stride[1] && bp->dbias_stride[2] &&
                                          bp->dbias_stride[3]);
        int64_t ds_floats;
        if (run->dbias_folds && (!attn_mul_ok(rows, p->len_k, &ds_floats) || !attn_add_ok(shared, ds_floats, &shared)))
            return ATTN_ERR_OVERFLOW;
    } else {
        /* W, dS and a dbias block of Lk floats: Lk < 2^62 / 4 (validated extents). */
        floats = 3 * p->len_k;
    }
    if (bp->dbias && floats < 3 * run->key_block) floats = 3 * run->key_block;
    run->threads = attn_resolve_threads(p->num_threads);
    if (run->threads > items) run->threads = (int)items;
    run->workspace_floats = (floats + 15) & ~(int64_t)15;
    if (!attn_mul_ok(run->workspace_floats, run->threads, bytes) || !attn_add_ok(*bytes, shared, bytes) ||
        !attn_mul_ok(*bytes, sizeof(float), bytes))
        return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

static float dot(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

/* D_i = dout_i · out_i of query row (b, h, i). */
static float row_d(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i) {
    const attn_params *p = &plan->pr->p;
    const attn_backward_params *bp = plan->bp;
    const float *out = (const float *)p->out + b * p->out_stride[0] + h * p->out_stride[1] + i * p->out_stride[2];
    const float *dout = (const float *)bp->dout + b * bp->dout_stride[0] + h * bp->dout_stride[1] + i * bp->dout_stride[2];
    return dot(dout, out, p->dim_v);
}

/* The row's D: precomputed (fused) or computed here. */
static float row_d_of(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i) {
    const attn_params *p = &plan->pr->p;
    return plan->d ? plan->d[(b * p->heads_q + h) * p->len_q + i] : row_d(plan, b, h, i);
}

/* The masked, biased, scaled score of query row q against key j of the K rows at k. */
static float score(const attn_params *p, const attn_row_masks *masks, const float *q, const float *k, int64_t j) {
    return attn_bias_mask(masks, j, dot(q, k + j * p->k_stride[2], p->dim_qk) * p->scale);
}

/*
 * The shift of row (b, h, i): its log-sum-exp over the keys it sees (the forward's masks; dropout
 * comes after the softmax), in double from the scores backward_row forms, minus lse; 0 where lse is
 * not finite or |lse| < ATTN_BACKWARD_EXACT_LSE (backward.h), or where the sum is not finite. The
 * row's weights exp((s - lse) - shift) then sum to 1, as the forward's exp(s - m) / l did. The big
 * parts cancel first, m - lse, as lse + shift may not be a double either (-FLT_MAX + ln 4).
 */
static float lse_shift(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i, float lse) {
    if (!isfinite(lse) || fabsf(lse) < ATTN_BACKWARD_EXACT_LSE) return 0.0f;
    const attn_problem *pr = plan->pr;
    const attn_params *p = &pr->p;
    const float *q = (const float *)p->q + b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
    const float *k = (const float *)p->k + b * p->k_stride[0] + h / pr->group * p->k_stride[1];
    const attn_row_masks masks = attn_row_masks_at(pr, b, h, i);
    int64_t lo, hi;
    attn_row_range(pr, b, i, &lo, &hi);
    double m = -INFINITY, sum = 0.0;
    for (int64_t j = lo; j < hi; j++) {
        const double s = score(p, &masks, q, k, j);
        if (s == -INFINITY) continue;
        if (s > m) {
            sum = sum * exp(m - s) + 1.0;
            m = s;
        } else {
            sum += exp(s - m); /* NaN (a NaN score) stays */
        }
    }
    const double shift = (m - (double)lse) + log(sum);
    return isfinite(shift) ? (float)shift : 0.0f;
}

/* The row's shift: precomputed (fused) or computed here. */
static float lse_shift_of(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i, float lse) {
    const attn_params *p = &plan->pr->p;
    return plan->lse_shift ? plan->lse_shift[(b * p->heads_q + h) * p->len_q + i] : lse_shift(plan, b, h, i, lse);
}

/*
 * Query row (b, h, i) against keys [j0, j1): w[j - j0] = the weight W_j that multiplies dout_i into
 * dv_j, ds[j - j0] = dS_j (the score gradient before the scale; dbias's value). Keys of weight 0 get
 * 0 in both and are not read. Returns 0 when all of it is 0 (a ZERO masked row, or no visible key in
 * the range), leaving w and ds unwritten then.
 */
static int backward_row(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t j1, float *w,
                        float *ds) {
    const attn_problem *pr = plan->pr;
    const attn_params *p = &pr->p;
    const int64_t hk = h / pr->group;
    const float lse = p->lse[(b * p->heads_q + h) * p->len_q + i];
    const uint64_t counter = attn_dropout_counter(pr, b, h, i);
    int64_t lo, hi;
    attn_row_range(pr, b, i, &lo, &hi);
    if (lse == -INFINITY && p->masked_rows == ATTN_MASKED_ROWS_ZERO) return 0;
    if (!isnan(lse) && lse != -INFINITY && (hi <= j0 || lo >= j1)) return 0;
    for (int64_t j = j0; j < j1; j++) w[j - j0] = ds[j - j0] = 0.0f;
    if (isnan(lse) || (lse == -INFINITY && p->masked_rows == ATTN_MASKED_ROWS_NAN)) {
        for (int64_t j = j0; j < j1; j++) w[j - j0] = ds[j - j0] = NAN;
        return 1;
    }
    if (lse == -INFINITY) { /* ATTN_MASKED_ROWS_MEAN */
        for (int64_t j = j0; j < j1; j++) w[j - j0] = attn_mean_weight(pr, counter, j);
        return 1;
    }
    const float *q = (const float *)p->q + b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
    const float *k = (const float *)p->k + b * p->k_stride[0] + hk * p->k_stride[1];
    const float *v = (const float *)p->v + b * p->v_stride[0] + hk * p->v_stride[1];
    const float *dout = (const float *)plan->bp->dout + b * plan->bp->dout_stride[0] + h * plan->bp->dout_stride[1] +
                        i * plan->bp->dout_stride[2];
    const float d_row = row_d_of(plan, b, h, i), shift = lse_shift_of(plan, b, h, i, lse);
    const attn_row_masks masks = attn_row_masks_at(pr, b, h, i);
    if (lo < j0) lo = j0;
    if (hi > j1) hi = j1;
    for (int64_t j = lo; j < hi; j++) {
        const float s = score(p, &masks, q, k, j);
        const float pj = expf((s - lse) - shift);
        if (pj == 0.0f) continue;
        float dp = dot(dout, v + j * p->v_stride[2], p->dim_v), wj = pj;
        if (pr->dropout_threshold) {
            wj = attn_dropout(pr, counter + (uint64_t)j, pj);
            dp = attn_dropout(pr, counter + (uint64_t)j, dp);
        }
        w[j - j0] = wj;
        ds[j - j0] = pj * (dp - d_row);
    }
    return 1;
}

/* dk_j += g dS_j q_i and dv_j += W_j dout_i for keys [j0, j0 + n) of one row (w, ds from
 * backward_row), into dk and dv at element (j - j0) * dk_step (dv_step) + c * feature_step. */
static void add_kv(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i, int64_t n, const float *w,
                   const float *ds, float g, float *dk, int64_t dk_step, float *dv, int64_t dv_step, int64_t feature_step) {
    const attn_params *p = &plan->pr->p;
    const attn_backward_params *bp = plan->bp;
    const float *q = (const float *)p->q + b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
    const float *dout = (const float *)bp->dout + b * bp->dout_stride[0] + h * bp->dout_stride[1] + i * bp->dout_stride[2];
    for (int64_t j = 0; j < n; j++) {
        if (w[j] != 0.0f)
            for (int64_t c = 0; c < p->dim_v; c++) dv[j * dv_step + c * feature_step] += w[j] * dout[c];
        if (ds[j] == 0.0f) continue;
        for (int64_t c = 0; c < p->dim_qk; c++) dk[j * dk_step + c * feature_step] += g * ds[j] * q[c];
    }
}

/* dq_i += Σ_j dS_j k_j over keys [j0, j0 + n) (the scale comes after the last block). */
static void add_q(const attn_backward_plan *plan, int64_t b, int64_t hk, int64_t j0, int64_t n, const float *ds, float *dq) {
    const attn_params *p = &plan->pr->p;
    const float *k = (const float *)p->k + b * p->k_stride[0] + hk * p->k_stride[1] + j0 * p->k_stride[2];
    for (int64_t j = 0; j < n; j++) {
        if (ds[j] == 0.0f) continue;
        for (int64_t c = 0; c < p->dim_qk; c++) dq[c] += ds[j] * k[j * p->k_stride[2] + c];
    }
}

static float *dq_row(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i) {
    const attn_backward_params *bp = plan->bp;
    return (float *)bp->dq + b * bp->dq_stride[0] + h * bp->dq_stride[1] + i * bp->dq_stride[2];
}

/* Unfused pass 1, one (b, K/V head) group: dq of its query heads, dk and dv of its K/V head, each
 * row against every key. */
static void group_task(void *ctx, int64_t item, int thread) {
    const backward_run *run = ctx;
    const attn_problem *pr = &run->pr;
    const attn_params *p = &pr->p;
    const attn_backward_params *bp = &run->bp;
    const int64_t b = item / p->heads_kv, hk = item % p->heads_kv, lk = p->len_k;
    float *w = run->workspace + thread * run->workspace_floats, *ds = w + lk;
    float *dk = (float *)bp->dk + b * bp->dk_stride[0] + hk * bp->dk_stride[1];
    float *dv = (float *)bp->dv + b * bp->dv_stride[0] + hk * bp->dv_stride[1];
    for (int64_t j = 0; j < lk; j++) {
        for (int64_t c = 0; c < p->dim_qk; c++) dk[j * bp->dk_stride[2] + c] = 0.0f;
        for (int64_t c = 0; c < p->dim_v; c++) dv[j * bp->dv_stride[2] + c] = 0.0f;
    }
    for (int64_t h = hk * pr->group; h < (hk + 1) * pr->group; h++)
        for (int64_t i = 0; i < p->len_q; i++) {
            float *dq = dq_row(&run->plan, b, h, i);
            for (int64_t c = 0; c < p->dim_qk; c++) dq[c] = 0.0f;
            if (!backward_row(&run->plan, b, h, i, 0, lk, w, ds)) continue;
            add_kv(&run->plan, b, h, i, lk, w, ds, p->scale, dk, bp->dk_stride[2], dv, bp->dv_stride[2], 1);
            add_q(&run->plan, b, hk, 0, lk, ds, dq);
            for (int64_t c = 0; c < p->dim_qk; c++) dq[c] *= p->scale;
        }
}

void attn_backward_exact_row(const attn_backward_plan *plan, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t nk,
                             float *dkt, float *dvt, int64_t ld, float *dq, float *scratch) {
    float *w = scratch, *ds = scratch + nk;
    const int any = backward_row(plan, b, h, i, j0, j0 + nk, w, ds);
    if (plan->ds_out) {
        const int64_t *st = plan->ds_stride;
        float *out = plan->ds_out + b * st[0] + h * st[1] + i * st[2] + j0 * st[3];
        for (int64_t j = 0; j < nk; j++) out[j * st[3]] = any ? ds[j] : 0.0f;
    }
    if (!any) return;
    add_kv(plan, b, h, i, nk, w, ds, 1.0f, dkt, 1, dvt, 1, ld);
    add_q(plan, b, h / plan->pr->group, j0, nk, ds, dq);
}

/* Whether a row of n floats holds anything but finite values. */
static int nonfinite(const float *x, int64_t n) {
    float z = 0.0f; /* e - e is 0 for every finite e, NaN otherwise */
    for (int64_t c = 0; c < n; c++) z += x[c] - x[c];
    return z != 0.0f;
}

/* Fused pass 0, one (b, h): D, the lse shift and the flags of every row, the count of rows without
 * lse, and its partial dq rows zeroed. */
static void rows_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const backward_run *run = ctx;
    const attn_backward_plan *plan = &run->plan;
    const attn_params *p = &run->pr.p;
    const attn_backward_params *bp = &run->bp;
    const int64_t b = item / p->heads_q, h = item % p->heads_q;
    float *d = (float *)plan->d + item * p->len_q, *shift = (float *)plan->lse_shift + item * p->len_q;
    uint8_t *flags = (uint8_t *)plan->row_flags + item * p->len_q;
    int64_t no_lse = 0;
    for (int64_t i = 0; i < p->len_q; i++) {
        const float *q = (const float *)p->q + b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
        const float *dout = (const float *)bp->dout + b * bp->dout_stride[0] + h * bp->dout_stride[1] + i * bp->dout_stride[2];
        const float lse = p->lse[item * p->len_q + i];
        d[i] = row_d(plan, b, h, i);
        shift[i] = lse_shift(plan, b, h, i, lse);
        flags[i] = (uint8_t)((isfinite(lse) ? 0 : ATTN_BACKWARD_ROW_NO_LSE) |
                             (nonfinite(q, p->dim_qk) || nonfinite(dout, p->dim_v) ? ATTN_BACKWARD_ROW_INEXACT : 0));
        no_lse += !isfinite(lse);
    }
    ((int64_t *)plan->no_lse_rows)[item] = no_lse;
    const int64_t *st = plan->dq_sum_stride, width = run->dq_direct ? p->dim_qk : run->dq_ld;
    for (int64_t s = 0; s < plan->stripes; s++)
        for (int64_t i = 0; i < p->len_q; i++)
            memset(plan->dq_sum + s * st[0] + b * st[1] + h * st[2] + i * st[3], 0, sizeof(float) * (size_t)width);
}

/* Fused pass 1, one stripe of one (b, K/V head): the ISA's kernel. */
static void stripe_task(void *ctx, int64_t item, int thread) {
    const backward_run *run = ctx;
    const attn_params *p = &run->pr.p;
    const int64_t stripes = run->plan.stripes, pair = item / stripes;
    run->kernels->backward_stripe(&run->plan, pair / p->heads_kv, pair % p->heads_kv, item % stripes,
                                  run->workspace + thread * run->workspace_floats);
}

/* Fused pass 2, one (b, h): dq = scale Σ partials, in stripe order (or scale dq in place). */
static void dq_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const backward_run *run = ctx;
    const attn_backward_plan *plan = &run->plan;
    const attn_params *p = &run->pr.p;
    const int64_t b = item / p->heads_q, h = item % p->heads_q, *st = plan->dq_sum_stride;
    for (int64_t i = 0; i < p->len_q; i++) {
        float *dq = dq_row(plan, b, h, i);
        const float *part = plan->dq_sum + b * st[1] + h * st[2] + i * st[3];
        for (int64_t c = 0; c < p->dim_qk; c++) {
            float sum = part[c];
            for (int64_t s = 1; s < plan->stripes; s++) sum += part[s * st[0] + c];
            dq[c] = p->scale * sum;
        }
    }
}

/* dS of row (b, h, i) for keys [j0, j0 + m): the fused pass's when it kept the whole of it (into
 * *ds), else recomputed by backward_row. Returns 0 when all of it is 0. */
static int dbias_source(const backward_run *run, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t m, float *w,
                        float **ds) {
    const attn_params *p = &run->pr.p;
    if (run->plan.ds_out) {
        *ds = run->plan.ds_out + ((b * p->heads_q + h) * p->len_q + i) * p->len_k + j0;
        return 1;
    }
    return backward_row(&run->plan, b, h, i, j0, j0 + m, w, *ds);
}

/* The dbias pass, one dbias row (b, h, i) over the dimensions of non-zero stride: the sum, in
 * (b, h, i) order, of the dS rows a stride of 0 folds onto it, one key block at a time, then over j
 * in order when its stride is 0 too. (The fused path writes an unfolded dbias itself.) */
static void dbias_task(void *ctx, int64_t item, int thread) {
    const backward_run *run = ctx;
    const attn_backward_params *bp = &run->bp;
    const int64_t lk = run->pr.p.len_k, nb = run->key_block, *n = run->dbias_count, *fold = run->dbias_fold;
    float *w = run->workspace + thread * run->workspace_floats, *ds = w + nb, *acc = ds + nb;
    const int64_t ob = item / (n[1] * n[2]), oh = item / n[2] % n[1], oi = item % n[2];
    float *db = bp->dbias + ob * bp->dbias_stride[0] + oh * bp->dbias_stride[1] + oi * bp->dbias_stride[2];
    float sum = 0.0f;
    for (int64_t j0 = 0; j0 < lk; j0 += nb) {
        const int64_t m = lk - j0 < nb ? lk - j0 : nb;
        for (int64_t j = 0; j < m; j++) acc[j] = 0.0f;
        for (int64_t fb = 0; fb < fold[0]; fb++)
            for (int64_t fh = 0; fh < fold[1]; fh++)
                for (int64_t fi = 0; fi < fold[2]; fi++)
                {
                    float *row = ds;
                    if (dbias_source(run, ob + fb, oh + fh, oi + fi, j0, m, w, &row))
                        for (int64_t j = 0; j < m; j++) acc[j] += row[j];
                }
        if (bp->dbias_stride[3] == 0)
            for (int64_t j = 0; j < m; j++) sum += acc[j];
        else
            for (int64_t j = 0; j < m; j++) db[(j0 + j) * bp->dbias_stride[3]] = acc[j];
    }
    if (bp->dbias_stride[3] == 0) db[0] = sum;
}

static attn_status backward_run_all(const attn_backward_params *params, int fused) {
    backward_run run;
    int64_t bytes;
    const attn_status status = backward_prepare(&run, params, fused, &bytes);
    if (status != ATTN_OK) return status;
    run.workspace = attn_alloc(bytes);
    if (!run.workspace) return ATTN_ERR_OUT_OF_MEMORY;
    const attn_params *p = &run.pr.p;
    const int64_t heads = p->batch * p->heads_q;
    if (fused) {
        attn_backward_plan *plan = &run.plan;
        float *shared = run.workspace + run.workspace_floats * run.threads;
        const int64_t *offsets = run.shared;
        plan->no_lse_rows = (const int64_t *)shared;
        plan->d = shared + offsets[1];
        plan->lse_shift = shared + offsets[2];
        plan->row_flags = (const uint8_t *)(shared + offsets[3]);
        if (run.dq_direct) {
            const int64_t direct[4] = {0, run.bp.dq_stride[0], run.bp.dq_stride[1], run.bp.dq_stride[2]};
            plan->dq_sum = run.bp.dq;
            memcpy(plan->dq_sum_stride, direct, sizeof direct);
        } else {
            const int64_t ld = run.dq_ld, partial[4] = {heads * p->len_q * ld, p->heads_q * p->len_q * ld, p->len_q * ld, ld};
            plan->dq_sum = shared + offsets[0];
            memcpy(plan->dq_sum_stride, partial, sizeof partial);
        }
        if (run.dbias_folds) {
            const int64_t full[4] = {p->heads_q * p->len_q * p->len_k, p->len_q * p->len_k, p->len_k, 1};
            plan->ds_out = shared + offsets[0] + (run.dq_direct ? 0 : plan->stripes * heads * p->len_q * run.dq_ld);
            memcpy(plan->ds_stride, full, sizeof full);
        } else if (run.bp.dbias) {
            plan->ds_out = run.bp.dbias;
            memcpy(plan->ds_stride, run.bp.dbias_stride, sizeof plan->ds_stride);
        }
        attn_parallel_for(heads, run.threads, rows_task, &run);
        attn_parallel_for(p->batch * p->heads_kv * plan->stripes, run.threads, stripe_task, &run);
        attn_parallel_for(heads, run.threads, dq_task, &run);
    } else {
        attn_parallel_for(p->batch * p->heads_kv, run.threads, group_task, &run);
    }
    if (run.bp.dbias && (!fused || run.dbias_folds))
        attn_parallel_for(run.dbias_count[0] * run.dbias_count[1] * run.dbias_count[2], run.threads, dbias_task, &run);
    attn_free(run.workspace);
    return ATTN_OK;
}

static attn_status backward_workspace(const attn_backward_params *params, int fused, size_t *bytes) {
    if (!bytes) return ATTN_ERR_NULL_POINTER;
    backward_run run;
    int64_t total;
    const attn_status status = backward_prepare(&run, params, fused, &total);
    if (status == ATTN_OK) *bytes = (size_t)total;
    return status;
}

attn_status attn_backward(const attn_backward_params *params) { return backward_run_all(params, 1); }
attn_status attn_backward_unfused(const attn_backward_params *params) { return backward_run_all(params, 0); }

attn_status attn_backward_workspace(const attn_backward_params *params, size_t *bytes) {
    return backward_workspace(params, 1, bytes);
}
attn_status attn_backward_unfused_workspace(const attn_backward_params *params, size_t *bytes) {
    return backward_workspace(params, 0, bytes);
}
