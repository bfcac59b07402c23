/*
 * problem.h: a validated attention problem and the per-row rules every attention kernel applies
 * (the tile and row kernels of the fused path, and the unfused path): which keys a row sees, how
 * bias and mask change a score, which weights dropout keeps, and how a row ends (its log-sum-exp,
 * and the masked-row policy). Written once here so the paths cannot drift apart; the kernels differ
 * only in how they compute scores and sums.
 */
#ifndef ATTN_PROBLEM_H
#define ATTN_PROBLEM_H

#include <math.h>

#include "internal.h"

/* A validated attention problem with its derived quantities, shared by the fused and unfused paths. */
struct attn_problem {
    attn_params p;          /* with scale resolved */
    int64_t group;          /* heads_q / heads_kv */
    int64_t causal_off;     /* added to i to get the last visible key: 0 or Lk - Lq */
    int64_t window_off;     /* added to i to get the aligned position for the window */
    int has_causal, has_window_left, has_window_right;
    /* The windows clamped to Lq + Lk (a wider window hides nothing), so i + offset +/- window
     * cannot overflow. */
    int64_t window_left, window_right;
    uint32_t dropout_threshold;
    float dropout_scale;    /* 1 / (1 - p) */
};

/* Reads *params as its struct_size says (attn.h), validates it and derives the problem; the single
 * gate both attention paths go through. */
attn_status attn_problem_init(attn_problem *pr, const attn_params *params);

/* Writes row (b, h, i) of a query with no visible key, as params->masked_rows says. */
void attn_masked_row_fill(const attn_problem *pr, int64_t b, int64_t h, int64_t i, float *out_row);

/* Visible key range [lo, hi) of query row i from causal, window and key length (mask and bias come
 * on top, element by element). lo >= hi means no visible key from these three. */
static inline void attn_row_range(const attn_problem *pr, int64_t b, int64_t i, int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = pr->p.len_k;
    if (pr->p.key_len && pr->p.key_len[b] < h) h = pr->p.key_len[b];
    if (pr->has_causal && i + pr->causal_off + 1 < h) h = i + pr->causal_off + 1;
    if (pr->has_window_right && i + pr->window_off + pr->window_right + 1 < h)
        h = i + pr->window_off + pr->window_right + 1;
    if (pr->has_window_left && i + pr->window_off - pr->window_left > l)
        l = i + pr->window_off - pr->window_left;
    *lo = l;
    *hi = h;
}

/* The bias and bool mask of one query row (b, h, i): each at key 0 with its step per key, NULL
 * when not given. */
typedef struct attn_row_masks {
    const float *bias;    int64_t bias_step;
    const uint8_t *mask;  int64_t mask_step;
} attn_row_masks;

static inline attn_row_masks attn_row_masks_at(const attn_problem *pr, int64_t b, int64_t h, int64_t i) {
    const attn_params *p = &pr->p;
    attn_row_masks r = {NULL, p->bias_stride[3], NULL, p->mask_stride[3]};
    if (p->bias) r.bias = p->bias + b * p->bias_stride[0] + h * p->bias_stride[1] + i * p->bias_stride[2];
    if (p->mask) r.mask = p->mask + b * p->mask_stride[0] + h * p->mask_stride[1] + i * p->mask_stride[2];
    return r;
}

/* Scaled score x of key j with the row's bias added, then -inf where the mask says not to attend. */
static inline float attn_bias_mask(const attn_row_masks *r, int64_t j, float x) {
    if (r->bias) x += r->bias[j * r->bias_step];
    if (r->mask && !r->mask[j * r->mask_step]) x = -INFINITY;
    return x;
}

/* The dropout counter of score (b, h, i, 0); key j's is this + j (attn.h). */
static inline uint64_t attn_dropout_counter(const attn_problem *pr, int64_t b, int64_t h, int64_t i) {
    const attn_params *p = &pr->p;
    return p->dropout_offset + (uint64_t)((b * p->heads_q + h) * p->len_q + i) * (uint64_t)p->len_k;
}

/* Softmax weight w after dropout: 0 when the score with this counter is dropped, else w / (1 - p).
 * Only called when dropout is on (pr->dropout_threshold != 0). */
static inline float attn_dropout(const attn_problem *pr, uint64_t counter, float w) {
    return attn_dropout_bits(pr->p.dropout_seed, counter) >= pr->dropout_threshold ? w * pr->dropout_scale : 0.0f;
}

/* Weight of key j in a fully masked row under ATTN_MASKED_ROWS_MEAN, whose dropout counter at key 0
 * is `counter`: the uniform 1/Lk, after dropout. The forward's fill and the backward both use it. */
static inline float attn_mean_weight(const attn_problem *pr, uint64_t counter, int64_t j) {
    const float w = 1.0f / (float)pr->p.len_k;
    return pr->dropout_threshold ? attn_dropout(pr, counter + (uint64_t)j, w) : w;
}

/*
 * The end of query row (b, h, i) whose scores had maximum m (natural units) and sum of exponentials
 * sum = Σ exp(score - m): writes its log-sum-exp, and returns 1 when the caller is to normalise the
 * row (sum > 0). Otherwise the row is written here: a sum of 0 means no key was visible (every
 * score -inf), and the row gets the masked-row policy with lse -inf; a NaN sum means a NaN or +inf
 * score (NaN in q, k or bias), and the row is NaN with lse NaN, whatever dropout kept.
 */
static inline int attn_row_finish(const attn_problem *pr, int64_t b, int64_t h, int64_t i, float m, float sum,
                                  float *out_row) {
    const attn_params *p = &pr->p;
    if (p->lse) p->lse[(b * p->heads_q + h) * p->len_q + i] = sum == 0.0f ? -INFINITY : m + logf(sum);
    if (sum > 0.0f) return 1;
    if (sum == 0.0f) {
        attn_masked_row_fill(pr, b, h, i, out_row);
    } else {
        for (int64_t c = 0; c < p->dim_v; c++) out_row[c] = NAN;
    }
    return 0;
}

#endif /* ATTN_PROBLEM_H */
