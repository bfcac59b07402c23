/*
 * backward.c: the attention backward pass, attn_backward (fused) and attn_backward_unfused (the
 * reference); the contract is in attn.h, above attn_backward_params.
 *
 * The forward's rules are reused, not copied: attn_problem_init validates `forward`, and per query
 * row attn_row_range, attn_row_masks_at / attn_bias_mask, attn_dropout_counter / attn_dropout and
 * attn_mean_weight (problem.h) say which keys it saw, with what bias, which weights dropout kept
 * and what a fully masked row's weights were. One function, backward_row, turns a row against a
 * range of keys into its weights W (for dv) and score gradients dS (for dq, dk, dbias); the paths
 * differ only in how they walk rows and key ranges:
 *   unfused: per (b, K/V head) group, every row against every key, dk and dv summed in place;
 *   fused (FlashAttention-2's order): D once per row; per key block of each (b, K/V head) its dk and
 *     dv in a tile over the group's rows; per query block of each (b, h) its dq over key blocks.
 * Then dbias (both): per distinct dbias element row, the rows a stride of 0 folds onto it.
 * Every output element is summed by one work item in a fixed order: no atomics, and the same bits
 * for any thread count. Plain float loops (portable C; vector kernels per ISA are to come).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "problem.h"

/* The fused path's blocks: keys per dk/dv work item and tile, query rows per dq work item. */
#define BACKWARD_KEY_BLOCK 64
#define BACKWARD_QUERY_BLOCK 32

typedef struct backward_run {
    attn_problem pr;          /* the forward problem, validated */
    attn_backward_params bp;  /* the caller's struct, read as its struct_size says */
    int threads;
    int64_t key_block;        /* keys per block: Lk (unfused) or BACKWARD_KEY_BLOCK (fused) */
    int64_t key_blocks, query_blocks; /* fused: blocks per (b, head) */
    int64_t workspace_floats; /* per thread (see backward_prepare), cache-line rounded */
    float *workspace;
    float *d;                 /* fused: D_i = dout_i · out_i of every row (B, Hq, Lq), after the threads' */
    int64_t d_floats;
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
    /* Threads: no more than the largest pass has items (B * Hq * Lq fits: validated). */
    int64_t items = p->batch * p->heads_kv;
    const int64_t dbias_items = run->dbias_count[0] * run->dbias_count[1] * run->dbias_count[2];
    if (bp->dbias && dbias_items > items) items = dbias_items;
    run->threads = attn_resolve_threads(p->num_threads);
    if (run->threads > items) run->threads = (int)items;
    /* Per thread: W, dS and a dbias block of key_block floats; the fused path adds its dk and dv
     * block (key_block x (Dqk + Dv): below 2^53, Dqk and Dv being below 2^46) and, shared, D for
     * every row (B Hq Lq floats: validated). */
    run->key_block = fused ? (p->len_k < BACKWARD_KEY_BLOCK ? p->len_k : BACKWARD_KEY_BLOCK) : p->len_k;
    if (fused) {
        const int64_t heads = p->batch * p->heads_q;
        run->query_blocks = attn_ceil_div(p->len_q, BACKWARD_QUERY_BLOCK);
        run->key_blocks = attn_ceil_div(p->len_k, run->key_block);
        items = p->batch * p->heads_kv * run->key_blocks;
        if (heads * run->query_blocks > items) items = heads * run->query_blocks;
        if (bp->dbias && dbias_items > items) items = dbias_items;
        run->threads = attn_resolve_threads(p->num_threads);
        if (run->threads > items) run->threads = (int)items;
    }
    int64_t floats;
    if (!attn_mul_ok(run->key_block, 3, &floats)) return ATTN_ERR_OVERFLOW;
    if (fused) floats += run->key_block * (p->dim_qk + p->dim_v);
    if (!attn_add_ok(floats, 15, &floats)) return ATTN_ERR_OVERFLOW;
    run->workspace_floats = floats & ~(int64_t)15;
    run->d_floats = fused ? p->batch * p->heads_q * p->len_q : 0;
    if (!attn_mul_ok(run->workspace_floats, run->threads, bytes) || !attn_add_ok(*bytes, run->d_floats, bytes) ||
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
static float row_d(const backward_run *run, int64_t b, int64_t h, int64_t i) {
    const attn_params *p = &run->pr.p;
    const attn_backward_params *bp = &run->bp;
    const float *out = (const float *)p->out + b * p->out_stride[0] + h * p->out_stride[1] + i * p->out_stride[2];
    const float *dout = (const float *)bp->dout + b * bp->dout_stride[0] + h * bp->dout_stride[1] + i * bp->dout_stride[2];
    return dot(dout, out, p->dim_v);
}

/* The row's D: precomputed (fused) or computed here. */
static float row_d_of(const backward_run *run, int64_t b, int64_t h, int64_t i) {
    const attn_params *p = &run->pr.p;
    return run->d ? run->d[(b * p->heads_q + h) * p->len_q + i] : row_d(run, b, h, i);
}

/*
 * Query row (b, h, i) against keys [j0, j1): w[j - j0] = the weight W_j that multiplies dout_i into
 * dv_j, ds[j - j0] = dS_j (the score gradient before the scale; dbias's value). Keys of weight 0 get
 * 0 in both and are not read. Returns 0 when all of it is 0 (a ZERO masked row, or no visible key in
 * the range), leaving w and ds unwritten then.
 */
static int backward_row(const backward_run *run, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t j1, float *w,
                        float *ds) {
    const attn_problem *pr = &run->pr;
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
    const float *dout = (const float *)run->bp.dout + b * run->bp.dout_stride[0] + h * run->bp.dout_stride[1] +
                        i * run->bp.dout_stride[2];
    const float d_row = row_d_of(run, b, h, i);
    const attn_row_masks masks = attn_row_masks_at(pr, b, h, i);
    if (lo < j0) lo = j0;
    if (hi > j1) hi = j1;
    for (int64_t j = lo; j < hi; j++) {
        const float s = attn_bias_mask(&masks, j, dot(q, k + j * p->k_stride[2], p->dim_qk) * p->scale);
        const float pj = expf(s - lse);
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

/* dk_j += scale dS_j q_i and dv_j += W_j dout_i for keys [j0, j1) of one row (w, ds from backward_row),
 * into rows at dk (stride ldk) and dv (stride ldv) that start at key j0. */
static void add_kv(const backward_run *run, int64_t b, int64_t h, int64_t i, int64_t n, const float *w,
                   const float *ds, float *dk, int64_t ldk, float *dv, int64_t ldv) {
    const attn_params *p = &run->pr.p;
    const attn_backward_params *bp = &run->bp;
    const float *q = (const float *)p->q + b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
    const float *dout = (const float *)bp->dout + b * bp->dout_stride[0] + h * bp->dout_stride[1] + i * bp->dout_stride[2];
    for (int64_t j = 0; j < n; j++) {
        if (w[j] != 0.0f)
            for (int64_t c = 0; c < p->dim_v; c++) dv[j * ldv + c] += w[j] * dout[c];
        if (ds[j] == 0.0f) continue;
        const float g = p->scale * ds[j];
        for (int64_t c = 0; c < p->dim_qk; c++) dk[j * ldk + c] += g * q[c];
    }
}

/* dq_i += Σ_j dS_j k_j over keys [j0, j0 + n) (the scale comes after the last block). */
static void add_q(const backward_run *run, int64_t b, int64_t hk, int64_t j0, int64_t n, const float *ds, float *dq) {
    const attn_params *p = &run->pr.p;
    const float *k = (const float *)p->k + b * p->k_stride[0] + hk * p->k_stride[1] + j0 * p->k_stride[2];
    for (int64_t j = 0; j < n; j++) {
        if (ds[j] == 0.0f) continue;
        for (int64_t c = 0; c < p->dim_qk; c++) dq[c] += ds[j] * k[j * p->k_stride[2] + c];
    }
}

static float *dq_row(const backward_run *run, int64_t b, int64_t h, int64_t i) {
    const attn_backward_params *bp = &run->bp;
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
            float *dq = dq_row(run, b, h, i);
            for (int64_t c = 0; c < p->dim_qk; c++) dq[c] = 0.0f;
            if (!backward_row(run, b, h, i, 0, lk, w, ds)) continue;
            add_kv(run, b, h, i, lk, w, ds, dk, bp->dk_stride[2], dv, bp->dv_stride[2]);
            add_q(run, b, hk, 0, lk, ds, dq);
            for (int64_t c = 0; c < p->dim_qk; c++) dq[c] *= p->scale;
        }
}

/* Fused pass 0: D of every row, once. */
static void d_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    backward_run *run = ctx;
    const attn_params *p = &run->pr.p;
    const int64_t b = item / p->heads_q, h = item % p->heads_q;
    for (int64_t i = 0; i < p->len_q; i++) run->d[item * p->len_q + i] = row_d(run, b, h, i);
}

/* Fused pass 1, one block of keys of one (b, K/V head): its dk and dv summed in the thread's tile
 * over the group's query heads and rows (rows that see none of the block skipped), then stored. */
static void kv_block_task(void *ctx, int64_t item, int thread) {
    const backward_run *run = ctx;
    const attn_problem *pr = &run->pr;
    const attn_params *p = &pr->p;
    const attn_backward_params *bp = &run->bp;
    const int64_t kb = item % run->key_blocks, bhk = item / run->key_blocks;
    const int64_t b = bhk / p->heads_kv, hk = bhk % p->heads_kv, nb = run->key_block;
    const int64_t j0 = kb * nb, n = p->len_k - j0 < nb ? p->len_k - j0 : nb;
    float *w = run->workspace + thread * run->workspace_floats, *ds = w + nb;
    float *dk = ds + 2 * nb, *dv = dk + nb * p->dim_qk;
    for (int64_t x = 0; x < n * p->dim_qk; x++) dk[x] = 0.0f;
    for (int64_t x = 0; x < n * p->dim_v; x++) dv[x] = 0.0f;
    for (int64_t h = hk * pr->group; h < (hk + 1) * pr->group; h++)
        for (int64_t i = 0; i < p->len_q; i++)
            if (backward_row(run, b, h, i, j0, j0 + n, w, ds)) add_kv(run, b, h, i, n, w, ds, dk, p->dim_qk, dv, p->dim_v);
    float *dk_out = (float *)bp->dk + b * bp->dk_stride[0] + hk * bp->dk_stride[1] + j0 * bp->dk_stride[2];
    float *dv_out = (float *)bp->dv + b * bp->dv_stride[0] + hk * bp->dv_stride[1] + j0 * bp->dv_stride[2];
    for (int64_t j = 0; j < n; j++) {
        memcpy(dk_out + j * bp->dk_stride[2], dk + j * p->dim_qk, sizeof(float) * (size_t)p->dim_qk);
        memcpy(dv_out + j * bp->dv_stride[2], dv + j * p->dim_v, sizeof(float) * (size_t)p->dim_v);
    }
}

/* Fused pass 2, one block of query rows of one (b, h): dq, one key block at a time. */
static void q_block_task(void *ctx, int64_t item, int thread) {
    const backward_run *run = ctx;
    const attn_problem *pr = &run->pr;
    const attn_params *p = &pr->p;
    const int64_t qb = item % run->query_blocks, bh = item / run->query_blocks;
    const int64_t b = bh / p->heads_q, h = bh % p->heads_q, nb = run->key_block;
    float *w = run->workspace + thread * run->workspace_floats, *ds = w + nb;
    const int64_t i1 = (qb + 1) * BACKWARD_QUERY_BLOCK < p->len_q ? (qb + 1) * BACKWARD_QUERY_BLOCK : p->len_q;
    for (int64_t i = qb * BACKWARD_QUERY_BLOCK; i < i1; i++) {
        float *dq = dq_row(run, b, h, i);
        for (int64_t c = 0; c < p->dim_qk; c++) dq[c] = 0.0f;
        for (int64_t j0 = 0; j0 < p->len_k; j0 += nb) {
            const int64_t n = p->len_k - j0 < nb ? p->len_k - j0 : nb;
            if (backward_row(run, b, h, i, j0, j0 + n, w, ds)) add_q(run, b, h / pr->group, j0, n, ds, dq);
        }
        for (int64_t c = 0; c < p->dim_qk; c++) dq[c] *= p->scale;
    }
}

/* The dbias pass of both paths, one dbias row (b, h, i) over the dimensions of non-zero stride: the
 * sum, in (b, h, i) order, of the dS rows a stride of 0 folds onto it, one key block at a time, then
 * over j in order when its stride is 0 too. */
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
                    if (backward_row(run, ob + fb, oh + fh, oi + fi, j0, j0 + m, w, ds))
                        for (int64_t j = 0; j < m; j++) acc[j] += ds[j];
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
    if (fused) {
        run.d = run.workspace + run.workspace_floats * run.threads;
        attn_parallel_for(p->batch * p->heads_q, run.threads, d_task, &run);
        attn_parallel_for(p->batch * p->heads_kv * run.key_blocks, run.threads, kv_block_task, &run);
        attn_parallel_for(p->batch * p->heads_q * run.query_blocks, run.threads, q_block_task, &run);
    } else {
        attn_parallel_for(p->batch * p->heads_kv, run.threads, group_task, &run);
    }
    if (run.bp.dbias)
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
