/*
 * fused_row_template.h: the fused kernel for problems with few query rows (decoding with a KV cache),
 * compiled once per ISA through kernel_table_template.h.
 *
 * The tile kernel (fused_tile_template.h) puts queries in vector lanes; with one query per head, all but
 * one lane of every FMA would be wasted. Here the lanes run along the features instead: a score is
 * a dot product of the query with a key row, and the output is a weighted sum of value rows, both
 * read straight from K and V. Decoding is bound by reading K and V, so the work is split along
 * the keys too: each item covers one query row and one contiguous range of keys and leaves a
 * partial result (unnormalised output, running maximum, running sum) that fused.c merges by
 * log-sum-exp. Masking, bias, dropout and the softmax are those of the tile kernel.
 *
 * Half-precision K and V are read as stored and widened in registers (F16C on x86, a shift for
 * bf16), so decoding reads half the bytes of a float cache. The loops are chosen by K's and V's
 * types once per group of keys (row_scores) or block (row_accumulate_block), a branch that always
 * goes the same way.
 */

/* Keys scored, then summed, at a time (a multiple of every ISA's ATTN_VL). Measured side by side
 * against the plain sum over the same bytes (paired, PAIRED_SUM=1, decode 4096 keys, 32 heads,
 * D = 128, Zen 4, 61 rounds, three runs, one disturbed by other work left out): f16 and bf16 K/V
 * on 1 thread reached 0.97-1.07 of its bandwidth with 16, 0.77-1.04 with 32, 0.75-0.93 with 64 and
 * 0.70-0.74 with 128 (K and V read in turn in shorter runs); on 2 threads, and float32 K/V, all
 * within noise of each other. */
#ifndef ROW_KEY_BLOCK
#define ROW_KEY_BLOCK 16
#endif
/* K and V rows about this many bytes ahead of the one in use are asked into L2 (prefetcht1 on x86),
 * one line at a time, for every K/V type. Measured side by side (Benchmarks/paired, decode 4096
 * keys, 32 heads, D = 128, against the plain vector sum over the same bytes): on Zen 4, 8 KB ahead
 * made float32 K/V 35-55 % faster on 1 and 2 threads (52-57 % of the sum's bandwidth without it,
 * 83-86 % with); rows 8 ahead into L1 instead made every type 10-25 % slower. For f16 and bf16 the
 * Zen 4 hardware prefetchers alone did a little better (89-98 % of the sum on 1 thread, 82-85 %
 * with), but on Zen 5 (attn_bench decode rows, two runs) they leave half K/V at 0.64-0.91x of the
 * float32 time, and prefetching them too gives 0.41-0.49x on 1 and 2 threads. */
#ifndef ROW_PREFETCH_BYTES
#define ROW_PREFETCH_BYTES 8192
#endif

ATTN_INLINE void row_prefetch(const void *p, int64_t bytes) {
    for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch((const char *)p + off, 0, 2);
}

/* Per-thread workspace, in floats: the scaled query, the output accumulator and a block of scores,
 * each padded to whole vectors. */
static int64_t fused_row_workspace_floats(const attn_problem *pr) {
    const int64_t dq = (pr->p.dim_qk + ATTN_VL - 1) / ATTN_VL * ATTN_VL;
    const int64_t dv = (pr->p.dim_v + ATTN_VL - 1) / ATTN_VL * ATTN_VL;
    return dq + dv + ROW_KEY_BLOCK;
}

/* Rows to ask into L2 ahead of use: K rows at pf->k while scores are computed, V rows at pf->v
 * while they are summed; rows k_step or v_step bytes apart, k_bytes or v_bytes long, the first
 * `rows` of a group or block (those before the item's last key). */
typedef struct row_prefetch_plan {
    const char *k, *v;
    int64_t rows, k_step, v_step, k_bytes, v_bytes;
} row_prefetch_plan;

/* The query's features are taken in slices of ROW_Q_VECS vectors held in registers while a group's
 * ATTN_VL key rows are multiplied with them: ATTN_VL accumulators, the slice and a load (25 of 32
 * zmm with 16-float vectors, 13 of 16 ymm with 8-float ones, 13 with 4-float ones). */
#ifndef ROW_Q_VECS
#define ROW_Q_VECS (ATTN_VL == 8 ? 4 : 8)
#endif

/* acc[vhsum_lane(g)] += the query's features [c, c + NV·ATTN_VL) times those of key g's row (at
 * k + g · k_stride elements), for the ATTN_VL keys of a group; w < ATTN_VL makes the last vector
 * partial (w features read; the query's padding is zero). A key past `last` reads key last's row
 * again: its lane is never used, and no branch is needed. Each key's sum is one chain of NV FMAs;
 * the group's ATTN_VL chains are independent. Row g of pf->k is asked into L2 with key g
 * (g < pf->rows), so the prefetches are spread between the loads. */
ATTN_INLINE void row_scores_slice_as(vf acc[ATTN_VL], const float *q, const void *k, int64_t k_stride, int last,
                                     int64_t c, const int NV, int w, const row_prefetch_plan *pf, attn_dtype t) {
    vf qs[8];
#pragma GCC unroll 8
    for (int u = 0; u < NV; u++) qs[u] = vload(q + c + u * ATTN_VL);
#pragma GCC unroll 16
    for (int g = 0; g < ATTN_VL; g++) {
        if (g < pf->rows) row_prefetch(pf->k + g * pf->k_step, pf->k_bytes);
        const void *kg = attn_element(k, t, (g < last ? g : last) * k_stride);
        vf a = acc[vhsum_lane(g)];
#pragma GCC unroll 8
        for (int u = 0; u < NV; u++)
            a = vfma(qs[u], u == NV - 1 && w < ATTN_VL ? vload_as(kg, c + u * ATTN_VL, t, w)
                                                       : vload_full(kg, c + u * ATTN_VL, t), a);
        acc[vhsum_lane(g)] = a;
    }
}

/* Scores of the keys g = 0 ..= last (< ATTN_VL) at once, key g's row at k + g * k_stride elements,
 * against q (dq features, zero-padded to whole vectors): lane g of the result is key g's score; the
 * lanes past `last` hold key last's score again. The features go in slices of ROW_Q_VECS vectors,
 * then 4, 2 and 1 and a partial one; one lane-sum reduction (vhsums) then serves the whole group,
 * where reducing each key's vector alone costs log2(ATTN_VL) shuffles and adds per key. Only the
 * first slice asks pf's rows into L2. */
ATTN_INLINE vf row_scores_as(const float *q, const void *k, int64_t k_stride, int last, int64_t dq,
                             const row_prefetch_plan *pf, attn_dtype t) {
    vf acc[ATTN_VL];
#pragma GCC unroll 16
    for (int g = 0; g < ATTN_VL; g++) acc[g] = vsplat(0.0f);
    const int64_t full = dq / ATTN_VL;
    const int tail = (int)(dq - full * ATTN_VL);
    const row_prefetch_plan none = {.rows = 0};
    int64_t c = 0, left = full;
    for (; left >= ROW_Q_VECS; left -= ROW_Q_VECS, c += ROW_Q_VECS * ATTN_VL)
        row_scores_slice_as(acc, q, k, k_stride, last, c, ROW_Q_VECS, ATTN_VL, c ? &none : pf, t);
    if (ROW_Q_VECS > 4 && left >= 4)
        row_scores_slice_as(acc, q, k, k_stride, last, c, 4, ATTN_VL, c ? &none : pf, t), left -= 4, c += 4 * ATTN_VL;
    if (left >= 2)
        row_scores_slice_as(acc, q, k, k_stride, last, c, 2, ATTN_VL, c ? &none : pf, t), left -= 2, c += 2 * ATTN_VL;
    if (left >= 1) row_scores_slice_as(acc, q, k, k_stride, last, c, 1, ATTN_VL, c ? &none : pf, t), c += ATTN_VL;
    if (tail) row_scores_slice_as(acc, q, k, k_stride, last, c, 1, tail, c ? &none : pf, t);
    return vhsums(acc, ATTN_VL);
}

/* o[c .. c + NV·ATTN_VL) += sum over the n keys of s[t] · v row t (rows `stride` elements apart),
 * with that slice of o held in NV registers for all n keys; w < ATTN_VL makes the last vector
 * partial (w lanes read, the rest of o's padding untouched by value: it gains zeros). */
ATTN_INLINE void row_accumulate_as(float *o, const float *s, int64_t n, const void *v, int64_t stride, int64_t c,
                                   const int NV, int w, const row_prefetch_plan *pf, attn_dtype t) {
    vf acc[8];
#pragma GCC unroll 8
    for (int u = 0; u < NV; u++) acc[u] = vload(o + c + u * ATTN_VL);
    for (int64_t j = 0; j < n; j++) {
        if (j < pf->rows) row_prefetch(pf->v + j * pf->v_step, pf->v_bytes);
        const vf sj = vsplat(s[j]);
        const void *vj = attn_element(v, t, j * stride);
#pragma GCC unroll 8
        for (int u = 0; u < NV; u++)
            acc[u] = vfma(sj, u == NV - 1 && w < ATTN_VL ? vload_as(vj, c + u * ATTN_VL, t, w)
                                                         : vload_full(vj, c + u * ATTN_VL, t), acc[u]);
    }
#pragma GCC unroll 8
    for (int u = 0; u < NV; u++) vstore(o + c + u * ATTN_VL, acc[u]);
}

/* The weighted sum of a block's value rows into o (dv features): slices of 8 vectors (8
 * accumulators, a broadcast and a load fit even 16 registers), then 4, 2 and 1, each sweeping the
 * block's rows once (in L1 after the first sweep, which alone asks pf's rows into L2); the last
 * vector may be partial. */
ATTN_INLINE void row_accumulate_block_as(float *o, const float *s, int64_t n, const void *v, int64_t stride,
                                         int64_t dv, const row_prefetch_plan *pf, attn_dtype t) {
    const int64_t full = dv / ATTN_VL;
    const int tail = (int)(dv - full * ATTN_VL);
    const row_prefetch_plan none = {.rows = 0};
    int64_t c = 0, left = full;
    for (; left >= 8; left -= 8, c += 8 * ATTN_VL) row_accumulate_as(o, s, n, v, stride, c, 8, ATTN_VL, c ? &none : pf, t);
    if (left >= 4) row_accumulate_as(o, s, n, v, stride, c, 4, ATTN_VL, c ? &none : pf, t), left -= 4, c += 4 * ATTN_VL;
    if (left >= 2) row_accumulate_as(o, s, n, v, stride, c, 2, ATTN_VL, c ? &none : pf, t), left -= 2, c += 2 * ATTN_VL;
    if (left >= 1) row_accumulate_as(o, s, n, v, stride, c, 1, ATTN_VL, c ? &none : pf, t), c += ATTN_VL;
    if (tail) row_accumulate_as(o, s, n, v, stride, c, 1, tail, c ? &none : pf, t);
}

ATTN_INLINE vf row_scores(const float *q, const void *k, int64_t k_stride, int last, int64_t dq,
                          const row_prefetch_plan *pf, attn_dtype t) {
    if (t == ATTN_DTYPE_F16) return row_scores_as(q, k, k_stride, last, dq, pf, ATTN_DTYPE_F16);
    if (t == ATTN_DTYPE_BF16) return row_scores_as(q, k, k_stride, last, dq, pf, ATTN_DTYPE_BF16);
    return row_scores_as(q, k, k_stride, last, dq, pf, ATTN_DTYPE_F32);
}

ATTN_INLINE void row_accumulate_block(float *o, const float *s, int64_t n, const void *v, int64_t stride, int64_t dv,
                                      const row_prefetch_plan *pf, attn_dtype t) {
    if (t == ATTN_DTYPE_F16)
        row_accumulate_block_as(o, s, n, v, stride, dv, pf, ATTN_DTYPE_F16);
    else if (t == ATTN_DTYPE_BF16)
        row_accumulate_block_as(o, s, n, v, stride, dv, pf, ATTN_DTYPE_BF16);
    else
        row_accumulate_block_as(o, s, n, v, stride, dv, pf, ATTN_DTYPE_F32);
}

/*
 * Query row i of (b, h) against keys [j0, j1) (already clipped to the row's visible range).
 * partial receives {m, l, o[0..dim_v)}: the running maximum, the sum of exp(score - m) and the
 * unnormalised output sum of exp(score - m) (dropout applied) times v.
 */
static void fused_row_item(const attn_problem *pr, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t j1,
                           float *workspace, float *partial) {
    const attn_params *p = &pr->p;
    const int64_t dq = p->dim_qk, dv = p->dim_v, hk = h / pr->group;
    const int64_t dq_pad = (dq + ATTN_VL - 1) / ATTN_VL * ATTN_VL, dv_pad = (dv + ATTN_VL - 1) / ATTN_VL * ATTN_VL;
    float *q = workspace, *o = q + dq_pad, *s = o + dv_pad;
    const float *qi = vrow_f32(p->q, p->q_dtype, b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2], dq, q);
    const int64_t k0 = b * p->k_stride[0] + hk * p->k_stride[1], v0 = b * p->v_stride[0] + hk * p->v_stride[1];
    for (int64_t d = 0; d < dq_pad; d++) q[d] = d < dq ? qi[d] * p->scale : 0.0f; /* in place when converted */
    for (int64_t c = 0; c < dv_pad; c++) o[c] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const attn_row_masks masks = attn_row_masks_at(pr, b, h, i);
    const uint64_t counter = attn_dropout_counter(pr, b, h, i);
    const int64_t k_size = (int64_t)attn_dtype_size(p->k_dtype), v_size = (int64_t)attn_dtype_size(p->v_dtype);
    const int64_t k_ahead = ROW_PREFETCH_BYTES / (dq * k_size) + 1, v_ahead = ROW_PREFETCH_BYTES / (dv * v_size) + 1;
    /* A position stride in bytes fits (validation checked the extents in bytes) only when there
     * are two positions to step between; with len_k 1 it is never used and may be anything. */
    const int64_t k_step = p->len_k > 1 ? p->k_stride[2] * k_size : 0;
    const int64_t v_step = p->len_k > 1 ? p->v_stride[2] * v_size : 0;
    vi lanes;
    for (int lane = 0; lane < ATTN_VL; lane++) lanes[lane] = lane;
    row_prefetch_plan pf = {.k_step = k_step, .v_step = v_step, .k_bytes = dq * k_size, .v_bytes = dv * v_size};

    for (int64_t jb = j0; jb < j1; jb += ROW_KEY_BLOCK) {
        const int64_t n = j1 - jb < ROW_KEY_BLOCK ? j1 - jb : ROW_KEY_BLOCK;
        /* Scores in whole vectors, -inf past the block's n keys (ROW_KEY_BLOCK is whole vectors),
         * so the maximum and the exponents below need no partial vectors: exp2(-inf) is 0. */
        vf vmax_s = vsplat(-INFINITY);
        for (int64_t g = 0; g < n; g += ATTN_VL) {
            const int64_t j = jb + g, w = n - g < ATTN_VL ? n - g : ATTN_VL;
            /* rows j + ahead .. j + w - 1 + ahead, those before j1 */
            pf.rows = j1 - (j + k_ahead) < w ? j1 - (j + k_ahead) : w;
            if (pf.rows > 0) pf.k = (const char *)p->k + (k0 + (j + k_ahead) * p->k_stride[2]) * k_size;
            vf x = row_scores(q, attn_element(p->k, p->k_dtype, k0 + j * p->k_stride[2]), p->k_stride[2],
                              (int)w - 1, dq, &pf, p->k_dtype);
            if (w < ATTN_VL) x = vselect(lanes < (int32_t)w, x, vsplat(-INFINITY));
            vmax_s = vmax(vmax_s, x); /* ignores NaN, as the tile kernel's max */
            vstore(s + g, x);
        }
        float block_max = -INFINITY;
        if (masks.bias || masks.mask) {
            for (int64_t t = 0; t < n; t++) {
                const float x = attn_bias_mask(&masks, jb + t, s[t]);
                s[t] = x;
                block_max = x > block_max ? x : block_max;
            }
        } else {
            for (int lane = 0; lane < ATTN_VL; lane++) block_max = vmax_s[lane] > block_max ? vmax_s[lane] : block_max;
        }
        const float m_new = block_max > m ? block_max : m;
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = exp2f((m - m_use) * FUSED_LOG2E);
        const vf mv = vsplat(m_use);
        vf vsum = vsplat(0.0f);
        for (int64_t t = 0; t < n; t += ATTN_VL) {
            const vf e = vexp2((vload(s + t) - mv) * FUSED_LOG2E);
            vsum += e;
            vstore(s + t, e);
        }
        float sum = 0.0f;
        for (int lane = 0; lane < ATTN_VL; lane++) sum += vsum[lane];
        if (m_new != m) {
            l *= alpha;
            for (int64_t c = 0; c < dv_pad; c += ATTN_VL) vstore(o + c, vload(o + c) * alpha);
        }
        l += sum;
        m = m_new;
        if (pr->dropout_threshold)
            for (int64_t t = 0; t < n; t++)
                s[t] = attn_dropout(pr, counter + (uint64_t)(jb + t), s[t]);
        pf.rows = j1 - (jb + v_ahead) < n ? j1 - (jb + v_ahead) : n;
        if (pf.rows > 0) pf.v = (const char *)p->v + (v0 + (jb + v_ahead) * p->v_stride[2]) * v_size;
        row_accumulate_block(o, s, n, attn_element(p->v, p->v_dtype, v0 + jb * p->v_stride[2]), p->v_stride[2], dv,
                             &pf, p->v_dtype);
    }
    partial[0] = m;
    partial[1] = l;
    memcpy(partial + 2, o, sizeof(float) * (size_t)dv);
}

#undef ROW_KEY_BLOCK
#undef ROW_PREFETCH_BYTES
#undef ROW_Q_VECS
