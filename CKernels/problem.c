/*
 * problem.c: turning an attn_params into a validated attn_problem, shared by the fused and unfused
 * paths so both accept and reject exactly the same inputs, plus the one scalar path both share for
 * fully masked rows under ATTN_MASKED_ROWS_MEAN.
 *
 * Validation order: pointers, sizes and enums, strides, then overflow of every extent, then the
 * contents of key_len. Nothing is written before validation succeeds.
 */
#include <math.h>

#include "internal.h"

attn_params attn_params_default(void) {
    attn_params p = {0};
    p.window_left = -1;
    p.window_right = -1;
    return p;
}

/* One past the largest element offset of a tensor with `rank` dims of given counts and strides and
 * a contiguous innermost run of `inner` elements; 0 on overflow. Strides must be >= 0. */
static int extent_ok(int rank, const int64_t *count, const int64_t *stride, int64_t inner, int64_t *extent) {
    int64_t e = inner;
    for (int d = 0; d < rank; d++) {
        int64_t span;
        if (!attn_mul_ok(count[d] - 1, stride[d], &span) || !attn_add_ok(e, span, &e)) return 0;
    }
    /* The kernels form byte addresses, so the extent in bytes must fit in size_t too. */
    int64_t bytes;
    if (!attn_mul_ok(e, (int64_t)sizeof(float), &bytes) || (uint64_t)bytes > (uint64_t)SIZE_MAX) return 0;
    *extent = e;
    return 1;
}

static int strides_nonnegative(int rank, const int64_t *stride) {
    for (int d = 0; d < rank; d++)
        if (stride[d] < 0) return 0;
    return 1;
}

/* Output rows of `inner` elements at {count, stride} must never share an element: ordered by stride,
 * each dimension must step past everything the smaller ones span. (Sufficient, and exact for every
 * layout made by transposing a contiguous tensor.) */
static int rows_disjoint(int rank, const int64_t *count, const int64_t *stride, int64_t inner) {
    int used[4] = {0};
    int64_t span = inner;
    for (int step = 0; step < rank; step++) {
        int best = -1;
        for (int d = 0; d < rank; d++)
            if (!used[d] && count[d] > 1 && (best < 0 || stride[d] < stride[best])) best = d;
        if (best < 0) break;
        used[best] = 1;
        if (stride[best] < span) return 0;
        span = (count[best] - 1) * stride[best] + span; /* no overflow: extent_ok checked it */
    }
    return 1;
}

attn_status attn_problem_init(attn_problem *pr, const attn_params *params) {
    if (!params) return ATTN_ERR_NULL_POINTER;
    const attn_params *p = params;
    if (!p->q || !p->k || !p->v || !p->out) return ATTN_ERR_NULL_POINTER;

    if (p->batch < 1 || p->heads_q < 1 || p->heads_kv < 1 || p->len_q < 1 || p->len_k < 1 ||
        p->dim_qk < 1 || p->dim_v < 1)
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p->heads_q % p->heads_kv != 0) return ATTN_ERR_INVALID_ARGUMENT;
    if (!isfinite(p->scale)) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->causal != ATTN_CAUSAL_NONE && p->causal != ATTN_CAUSAL_TOP_LEFT && p->causal != ATTN_CAUSAL_BOTTOM_RIGHT)
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p->masked_rows != ATTN_MASKED_ROWS_ZERO && p->masked_rows != ATTN_MASKED_ROWS_NAN &&
        p->masked_rows != ATTN_MASKED_ROWS_MEAN)
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p->window_left < -1 || p->window_right < -1) return ATTN_ERR_INVALID_ARGUMENT;
    if (!(p->dropout_p >= 0.0f && p->dropout_p < 1.0f)) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->num_threads < 0 || p->num_threads > ATTN_MAX_THREADS) return ATTN_ERR_INVALID_ARGUMENT;

    if (!strides_nonnegative(3, p->q_stride) || !strides_nonnegative(3, p->k_stride) ||
        !strides_nonnegative(3, p->v_stride) || !strides_nonnegative(3, p->out_stride) ||
        (p->mask && !strides_nonnegative(4, p->mask_stride)) ||
        (p->bias && !strides_nonnegative(4, p->bias_stride)))
        return ATTN_ERR_INVALID_STRIDE;

    const int64_t q_count[3] = {p->batch, p->heads_q, p->len_q};
    const int64_t kv_count[3] = {p->batch, p->heads_kv, p->len_k};
    const int64_t score_count[4] = {p->batch, p->heads_q, p->len_q, p->len_k};
    int64_t extent;
    if (!extent_ok(3, q_count, p->q_stride, p->dim_qk, &extent) ||
        !extent_ok(3, kv_count, p->k_stride, p->dim_qk, &extent) ||
        !extent_ok(3, kv_count, p->v_stride, p->dim_v, &extent) ||
        !extent_ok(3, q_count, p->out_stride, p->dim_v, &extent) ||
        (p->mask && !extent_ok(4, score_count, p->mask_stride, 1, &extent)) ||
        (p->bias && !extent_ok(4, score_count, p->bias_stride, 1, &extent)))
        return ATTN_ERR_OVERFLOW;
    /* lse is (B, Hq, Lq) contiguous; every (b, h, i, j) must also have a distinct dropout counter
     * and the unfused path's Lq x Lk score matrix must be addressable. */
    int64_t rows, scores;
    if (!attn_mul_ok(p->batch, p->heads_q, &rows) || !attn_mul_ok(rows, p->len_q, &rows) ||
        !attn_mul_ok(rows, p->len_k, &scores) || !extent_ok(0, NULL, NULL, rows, &extent))
        return ATTN_ERR_OVERFLOW;

    /* Kernel workspaces are a few hundred rows of dim_qk + dim_v floats; bounding the dimensions
     * (below 2^46 each) keeps every such product far from overflow. */
    int64_t dims;
    if (!attn_add_ok(p->dim_qk, p->dim_v, &dims) || !attn_mul_ok(dims, (int64_t)1 << 16, &dims))
        return ATTN_ERR_OVERFLOW;

    if (!rows_disjoint(3, q_count, p->out_stride, p->dim_v)) return ATTN_ERR_INVALID_STRIDE;

    if (p->key_len)
        for (int64_t b = 0; b < p->batch; b++)
            if (p->key_len[b] < 0 || p->key_len[b] > p->len_k) return ATTN_ERR_INVALID_ARGUMENT;

    pr->p = *p;
    if (pr->p.scale == 0.0f) pr->p.scale = (float)(1.0 / sqrt((double)p->dim_qk));
    pr->group = p->heads_q / p->heads_kv;
    pr->has_causal = p->causal != ATTN_CAUSAL_NONE;
    pr->causal_off = p->causal == ATTN_CAUSAL_TOP_LEFT ? 0 : p->len_k - p->len_q;
    pr->window_off = pr->causal_off;
    pr->has_window_left = p->window_left >= 0;
    pr->has_window_right = p->window_right >= 0;
    const int64_t widest = p->len_q + p->len_k;
    pr->window_left = p->window_left < widest ? p->window_left : widest;
    pr->window_right = p->window_right < widest ? p->window_right : widest;
    pr->dropout_threshold = attn_dropout_threshold(p->dropout_p);
    pr->dropout_scale = p->dropout_p > 0.0f ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    return ATTN_OK;
}

attn_status attn_validate(const attn_params *params) {
    attn_problem pr;
    return attn_problem_init(&pr, params);
}

void attn_masked_row_fill(const attn_problem *pr, int64_t b, int64_t h, int64_t i, float *out_row) {
    const attn_params *p = &pr->p;
    if (p->masked_rows == ATTN_MASKED_ROWS_ZERO) {
        for (int64_t c = 0; c < p->dim_v; c++) out_row[c] = 0.0f;
        return;
    }
    if (p->masked_rows == ATTN_MASKED_ROWS_NAN) {
        for (int64_t c = 0; c < p->dim_v; c++) out_row[c] = NAN;
        return;
    }
    /* Uniform weights 1/Lk over every key, then dropout on those weights, as a softmax over scores
     * that are all the most negative finite float produces. Plain scalar code on purpose: the path
     * is rare, and the fused and unfused kernels both call it, so they agree exactly. */
    const float *v = p->v + b * p->v_stride[0] + (h / pr->group) * p->v_stride[1];
    const float w = 1.0f / (float)p->len_k;
    const uint64_t counter0 = p->dropout_offset + (uint64_t)((b * p->heads_q + h) * p->len_q + i) * (uint64_t)p->len_k;
    for (int64_t c = 0; c < p->dim_v; c++) out_row[c] = 0.0f;
    for (int64_t j = 0; j < p->len_k; j++) {
        float wj = w;
        if (pr->dropout_threshold) {
            if (attn_dropout_bits(p->dropout_seed, counter0 + (uint64_t)j) < pr->dropout_threshold) continue;
            wj *= pr->dropout_scale;
        }
        const float *vj = v + j * p->v_stride[2];
        for (int64_t c = 0; c < p->dim_v; c++) out_row[c] += wj * vj[c];
    }
}
