/*
 * problem.c: turning an attn_params into a validated attn_problem, shared by the fused and unfused
 * paths so both accept and reject exactly the same inputs, plus the one scalar path both share for
 * fully masked rows under ATTN_MASKED_ROWS_MEAN.
 *
 * Validation order: struct_size (params.c), pointers, sizes and enums, strides, then overflow of every extent, then the
 * contents of key_len. Nothing is written before validation succeeds.
 */
#include <math.h>

#include "half.h"
#include "problem.h"

static int strides_nonnegative(int rank, const int64_t *stride) {
    for (int d = 0; d < rank; d++)
        if (stride[d] < 0) return 0;
    return 1;
}

attn_status attn_problem_init(attn_problem *pr, const attn_params *params) {
    attn_params read;
    const attn_status status = attn_read_params(&read, params);
    if (status != ATTN_OK) return status;
    const attn_params *p = &read;
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
    if (!attn_dtype_size(p->q_dtype) || !attn_dtype_size(p->k_dtype) || !attn_dtype_size(p->v_dtype) ||
        !attn_dtype_size(p->out_dtype))
        return ATTN_ERR_INVALID_ARGUMENT;

    if (!strides_nonnegative(3, p->q_stride) || !strides_nonnegative(3, p->k_stride) ||
        !strides_nonnegative(3, p->v_stride) || !strides_nonnegative(3, p->out_stride) ||
        (p->mask && !strides_nonnegative(4, p->mask_stride)) ||
        (p->bias && !strides_nonnegative(4, p->bias_stride)))
        return ATTN_ERR_INVALID_STRIDE;

    const int64_t q_count[3] = {p->batch, p->heads_q, p->len_q};
    const int64_t kv_count[3] = {p->batch, p->heads_kv, p->len_k};
    const int64_t score_count[4] = {p->batch, p->heads_q, p->len_q, p->len_k};
    int64_t extent;
    if (!attn_extent_bytes_ok(3, q_count, p->q_stride, p->dim_qk, (int64_t)attn_dtype_size(p->q_dtype), &extent) ||
        !attn_extent_bytes_ok(3, kv_count, p->k_stride, p->dim_qk, (int64_t)attn_dtype_size(p->k_dtype), &extent) ||
        !attn_extent_bytes_ok(3, kv_count, p->v_stride, p->dim_v, (int64_t)attn_dtype_size(p->v_dtype), &extent) ||
        !attn_extent_bytes_ok(3, q_count, p->out_stride, p->dim_v, (int64_t)attn_dtype_size(p->out_dtype), &extent) ||
        (p->mask && !attn_extent_ok(4, score_count, p->mask_stride, 1, &extent)) ||
        (p->bias && !attn_extent_ok(4, score_count, p->bias_stride, 1, &extent)))
        return ATTN_ERR_OVERFLOW;
    /* lse is (B, Hq, Lq) contiguous; every (b, h, i, j) must also have a distinct dropout counter
     * and the unfused path's Lq x Lk score matrix must be addressable. */
    int64_t rows, scores;
    if (!attn_mul_ok(p->batch, p->heads_q, &rows) || !attn_mul_ok(rows, p->len_q, &rows) ||
        !attn_mul_ok(rows, p->len_k, &scores) || !attn_extent_ok(0, NULL, NULL, rows, &extent))
        return ATTN_ERR_OVERFLOW;

    /* Kernel workspaces are a few hundred rows of dim_qk + dim_v floats; bounding each dimension
     * (below 2^46, as attn.h promises) keeps every such product far from overflow. */
    if (p->dim_qk >= ATTN_MAX_DIM || p->dim_v >= ATTN_MAX_DIM) return ATTN_ERR_OVERFLOW;

    if (!attn_rows_disjoint(3, q_count, p->out_stride, p->dim_v)) return ATTN_ERR_INVALID_STRIDE;

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
    const int64_t v0 = b * p->v_stride[0] + (h / pr->group) * p->v_stride[1];
    const uint64_t counter = attn_dropout_counter(pr, b, h, i);
    for (int64_t c = 0; c < p->dim_v; c++) out_row[c] = 0.0f;
    for (int64_t j = 0; j < p->len_k; j++) {
        const float wj = attn_mean_weight(pr, counter, j);
        if (wj == 0.0f) continue; /* dropped: its V row (NaN or not) plays no part */
        const int64_t vj = v0 + j * p->v_stride[2];
        for (int64_t c = 0; c < p->dim_v; c++) out_row[c] += wj * attn_load_f32(p->v, p->v_dtype, vj + c);
    }
}
