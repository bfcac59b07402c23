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
 * bf16), so decoding reads half the bytes of a float cache. Each key row's loop is chosen by its
 * type once per row (row_dot, row_axpy), a branch that always goes the same way.
 */

#define ROW_KEY_BLOCK 64 /* scores held at once */
/* K and V rows about this many bytes ahead of the one in use are asked into L2 (prefetcht1 on x86),
 * one line at a time. Measured side by side (Benchmarks/paired, decode 4096 keys, 32 heads,
 * D = 128, Zen 4): 8 KB ahead made float32 K/V 35-55 % faster on 1 and 2 threads, and f16/bf16
 * within noise on 1 thread and faster on 2; rows 8 ahead into L1 instead made every type 10-25 %
 * slower (the lines evicted what was in use). */
#define ROW_PREFETCH_BYTES 8192

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

/* q·k over n features, k of type t: full vectors, then the partial tail read without passing the
 * row's end. */
ATTN_INLINE float row_dot_as(const float *q, const void *k, attn_dtype t, int64_t n) {
    vf acc0 = vsplat(0.0f), acc1 = vsplat(0.0f);
    int64_t d = 0;
    for (; d + 2 * ATTN_VL <= n; d += 2 * ATTN_VL) {
        acc0 = vfma(vload(q + d), vload_full(k, d, t), acc0);
        acc1 = vfma(vload(q + d + ATTN_VL), vload_full(k, d + ATTN_VL, t), acc1);
    }
    for (; d < n; d += ATTN_VL) {
        /* q is zero-padded to whole vectors, so only k's tail needs a partial load. */
        vf kv = vload_as(k, d, t, n - d >= ATTN_VL ? ATTN_VL : (int)(n - d));
        acc0 = vfma(vload(q + d), kv, acc0);
    }
    acc0 += acc1;
    float s = 0.0f;
    for (int l = 0; l < ATTN_VL; l++) s += acc0[l];
    return s;
}

ATTN_INLINE float row_dot(const float *q, const void *k, attn_dtype t, int64_t n) {
    if (t == ATTN_DTYPE_F16) return row_dot_as(q, k, ATTN_DTYPE_F16, n);
    if (t == ATTN_DTYPE_BF16) return row_dot_as(q, k, ATTN_DTYPE_BF16, n);
    return row_dot_as(q, k, ATTN_DTYPE_F32, n);
}

/* o[0..n) += w · v[0..n), v of type t (o is padded to whole vectors). */
ATTN_INLINE void row_axpy_as(float *o, vf w, const void *v, attn_dtype t, int64_t n) {
    int64_t c = 0;
    for (; c + ATTN_VL <= n; c += ATTN_VL) vstore(o + c, vfma(w, vload_full(v, c, t), vload(o + c)));
    if (c < n) vstore(o + c, vfma(w, vload_as(v, c, t, (int)(n - c)), vload(o + c)));
}

ATTN_INLINE void row_axpy(float *o, vf w, const void *v, attn_dtype t, int64_t n) {
    if (t == ATTN_DTYPE_F16)
        row_axpy_as(o, w, v, ATTN_DTYPE_F16, n);
    else if (t == ATTN_DTYPE_BF16)
        row_axpy_as(o, w, v, ATTN_DTYPE_BF16, n);
    else
        row_axpy_as(o, w, v, ATTN_DTYPE_F32, n);
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
    const int64_t k_bytes = dq * (int64_t)attn_dtype_size(p->k_dtype), v_bytes = dv * (int64_t)attn_dtype_size(p->v_dtype);
    const int64_t k_ahead = ROW_PREFETCH_BYTES / k_bytes + 1, v_ahead = ROW_PREFETCH_BYTES / v_bytes + 1;

    for (int64_t jb = j0; jb < j1; jb += ROW_KEY_BLOCK) {
        const int64_t n = j1 - jb < ROW_KEY_BLOCK ? j1 - jb : ROW_KEY_BLOCK;
        float block_max = -INFINITY;
        for (int64_t t = 0; t < n; t++) {
            const int64_t j = jb + t;
            const void *kj = attn_element(p->k, p->k_dtype, k0 + j * p->k_stride[2]);
            if (j + k_ahead < j1)
                row_prefetch(attn_element(p->k, p->k_dtype, k0 + (j + k_ahead) * p->k_stride[2]), k_bytes);
            const float x = attn_bias_mask(&masks, j, row_dot(q, kj, p->k_dtype, dq));
            s[t] = x;
            block_max = x > block_max ? x : block_max; /* ignores NaN, as the tile kernel's max */
        }
        const float m_new = block_max > m ? block_max : m;
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = exp2f((m - m_use) * FUSED_LOG2E);
        const vf mv = vsplat(m_use);
        float sum = 0.0f;
        for (int64_t t = 0; t < n; t += ATTN_VL) {
            const int w = n - t < ATTN_VL ? (int)(n - t) : ATTN_VL;
            vf e = vexp2((vload_partial(s + t, w) - mv) * FUSED_LOG2E);
            for (int lane = 0; lane < w; lane++) sum += e[lane];
            vstore_partial(s + t, e, w);
        }
        if (m_new != m) {
            l *= alpha;
            for (int64_t c = 0; c < dv_pad; c += ATTN_VL) vstore(o + c, vload(o + c) * alpha);
        }
        l += sum;
        m = m_new;
        if (pr->dropout_threshold)
            for (int64_t t = 0; t < n; t++)
                s[t] = attn_dropout(pr, counter + (uint64_t)(jb + t), s[t]);
        for (int64_t t = 0; t < n; t++) {
            if (jb + t + v_ahead < j1)
                row_prefetch(attn_element(p->v, p->v_dtype, v0 + (jb + t + v_ahead) * p->v_stride[2]), v_bytes);
            row_axpy(o, vsplat(s[t]), attn_element(p->v, p->v_dtype, v0 + (jb + t) * p->v_stride[2]), p->v_dtype, dv);
        }
    }
    partial[0] = m;
    partial[1] = l;
    memcpy(partial + 2, o, sizeof(float) * (size_t)dv);
}

#undef ROW_KEY_BLOCK
#undef ROW_PREFETCH_BYTES
