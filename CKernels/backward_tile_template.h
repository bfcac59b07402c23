/*
 * backward_tile_template.h: the fused attention backward's vector kernel, one stripe of key blocks
 * of one (batch, K/V head) (backward.h), compiled once per ISA through kernel_table_template.h
 * after fused_tile_template.h. attn.h says what is computed; backward.c plans and runs it.
 *
 * One register-blocked product forms all five matrix products of FlashAttention-2's backward,
 *   acc[v][c] += Σ_t a[t·lda + v·VL + lane] · b_c[t·bt],
 * a being a buffer of this kernel (packed or a tile, padded, so a vector load never leaves it) and
 * each b_c a row or column of the caller's, broadcast one element at a time (whatever its stride).
 * For four products the lanes are keys, so the tiles are row-major (row, key) and every per-row
 * quantity (lse, D, the visible range) is a scalar:
 *   S   (rows, keys)    = Q Kᵀ     a = Kᵀ (Dqk, 64)   b_c = q row c
 *   dP  (rows, keys)    = dO Vᵀ    a = Vᵀ (Dv, 64)    b_c = dout row c
 *   dVᵀ (Dv, keys)     += Wᵀ dO    a = the W tile     b_c = dout column c, down the tile's rows
 *   dKᵀ (Dqk, keys)    += dSᵀ Q    a = the dS tile    b_c = q column c
 * and for the fifth the lanes are features:
 *   dQ  (rows, Dqk)    += dS K     a = K (64, Dqk)    b_c = dS tile row c
 * Per block of 64 keys the item packs Kᵀ, Vᵀ and K once, then walks the tiles of BWD_QT query rows
 * of every head of its group that see the block (other rows are skipped whole: causal, window, key
 * length), dKᵀ and dVᵀ summed in its workspace. For each tile: S and dP of BWD_C rows × BWD_LW keys
 * at a time, turned into P (recomputed from lse and the row's shift, backward.h), W (P after
 * dropout) and dS = P (dP - D) in two tiles; then the three accumulating products over the tile's
 * rows.
 *
 * A weight of 0 must contribute nothing, even against a non-finite input (attn.h): the vector path
 * runs only where 0 times every input it meets is 0, so a tile with a row flagged by the D pass (no
 * finite lse, or a non-finite q or dout) or a block with a non-finite K or V goes through
 * attn_backward_exact_row instead, element by element, as does a row with no finite lse (a masked
 * row's uniform weights, or NaN) in every block it does not see.
 */

#if ATTN_VL == 16
#define BWD_V 4 /* key vectors per micro-tile: 4 x 6 accumulators + 4 operands + 1 broadcast of 32 zmm */
#else
#define BWD_V 2 /* 2 x 6 + 2 + 1 (+ 1 product without FMA) of 16 registers */
#endif
#define BWD_C 6 /* broadcast rows or columns per micro-tile */
#define BWD_LW (BWD_V * ATTN_VL)
#define BWD_KB ATTN_BACKWARD_KEY_BLOCK
/* Query rows per tile: its W and dS tiles, and the q and dout rows they meet, stay in L1. */
#ifndef BWD_QT
#define BWD_QT 24
#endif
_Static_assert(BWD_KB % BWD_LW == 0 && BWD_QT % BWD_C == 0, "whole micro-tiles per block and tile");

/* Floats per row of K packed row-major: dim_qk rounded up to whole vectors. */
static inline int64_t bwd_kpad(const attn_params *p) { return (p->dim_qk + ATTN_VL - 1) / ATTN_VL * ATTN_VL; }

/* Per thread: Kᵀ, dKᵀ, Vᵀ, dVᵀ and K of one block, the W and dS tiles, attn_backward_exact_row's scratch. */
static int64_t backward_workspace_floats(const attn_problem *pr) {
    const attn_params *p = &pr->p;
    return (int64_t)BWD_KB * (2 * p->dim_qk + 2 * p->dim_v + bwd_kpad(p) + 2 * BWD_QT + 2);
}

typedef struct bwd_ctx {
    const attn_backward_plan *plan;
    const attn_problem *pr;
    int64_t b, hk, stripe, j0, nk; /* the block: keys [j0, j0 + nk) */
    float *kt, *dkt, *vt, *dvt, *kr, *wt, *st, *scratch;
} bwd_ctx;

ATTN_INLINE void bwd_product(vf acc[BWD_V][BWD_C], const float *a, int64_t lda, const float *const *b, int64_t bt,
                             int64_t n, const int NV, const int NC) {
#pragma GCC unroll 2
    for (int64_t t = 0; t < n; t++) {
        vf av[BWD_V];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) av[v] = vload(a + t * lda + v * ATTN_VL);
#pragma GCC unroll 6
        for (int c = 0; c < NC; c++) {
            const vf bc = vsplat(b[c][t * bt]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[v][c] = vfma(av[v], bc, acc[v][c]);
        }
    }
}

/* Keys [j0, j0 + nk) of the item's K/V head as Kᵀ and Vᵀ (ld BWD_KB) and K (ld bwd_kpad), zero
 * past the last key and feature. Returns whether every value was finite. */
static int bwd_pack(const bwd_ctx *x) {
    const attn_params *p = &x->pr->p;
    const int64_t dq = p->dim_qk, dv = p->dim_v, kpad = bwd_kpad(p);
    const float *k = (const float *)p->k + x->b * p->k_stride[0] + x->hk * p->k_stride[1] + x->j0 * p->k_stride[2];
    const float *v = (const float *)p->v + x->b * p->v_stride[0] + x->hk * p->v_stride[1] + x->j0 * p->v_stride[2];
    float nonfinite = 0.0f; /* e - e is 0 for every finite e, NaN otherwise */
    for (int64_t j = 0; j < BWD_KB; j++) {
        const int in = j < x->nk; /* rows past the block are never addressed (their offsets may not exist) */
        const float *kj = in ? k + j * p->k_stride[2] : k, *vj = in ? v + j * p->v_stride[2] : v;
        for (int64_t c = 0; c < dq; c++) {
            const float e = in ? kj[c] : 0.0f;
            x->kt[c * BWD_KB + j] = x->kr[j * kpad + c] = e;
            nonfinite += e - e;
        }
        for (int64_t c = dq; c < kpad; c++) x->kr[j * kpad + c] = 0.0f;
        for (int64_t c = 0; c < dv; c++) {
            const float e = in ? vj[c] : 0.0f;
            x->vt[c * BWD_KB + j] = e;
            nonfinite += e - e;
        }
    }
    return nonfinite == 0.0f;
}

/* Rows [*ia, *ib) of batch b whose visible range meets keys [j0, j1): both ends of the range grow
 * with the row (attn_row_range), so each bound is a binary search. */
static void bwd_rows_seeing(const attn_problem *pr, int64_t b, int64_t j0, int64_t j1, int64_t *ia, int64_t *ib) {
    int64_t lo, hi, a = 0, z = pr->p.len_q;
    while (a < z) { /* the first row whose range ends past j0 */
        const int64_t m = a + (z - a) / 2;
        attn_row_range(pr, b, m, &lo, &hi);
        if (hi > j0) z = m; else a = m + 1;
    }
    *ia = a;
    z = pr->p.len_q;
    while (a < z) { /* the first row whose range starts at j1 or later */
        const int64_t m = a + (z - a) / 2;
        attn_row_range(pr, b, m, &lo, &hi);
        if (lo >= j1) z = m; else a = m + 1;
    }
    *ib = a;
}

/* Rows [r, r + BWD_C) of the tile of rows [i0, i0 + nr) of head h (rows past nr repeat the last,
 * never stored): S and dP, then P into the W tile and dS = P (dP - D) into the dS tile (with
 * dropout, dP itself: bwd_dropout finishes both). `range`: some row does not see the whole block. */
static void bwd_row_group(const bwd_ctx *x, int64_t h, int64_t i0, int64_t r, int64_t nr, int range) {
    const attn_problem *pr = x->pr;
    const attn_params *p = &pr->p;
    const attn_backward_params *bp = x->plan->bp;
    const int64_t bh = x->b * p->heads_q + h, nc = nr - r < BWD_C ? nr - r : BWD_C;
    const int biased = p->bias != NULL, dropout = pr->dropout_threshold != 0;
    const float *q[BWD_C], *dout[BWD_C];
    /* Per row: P = exp2(S - lse) in base-2 units (log2 e folded into the scale, as the forward's),
     * or exp2(((S - lse) - shift) log2 e) in natural units with a bias (which base 2 cannot hold:
     * fused_tile_template.h) or a shift (lse times log2 e, rounded, would lose what it restores). */
    float qscale[BWD_C], lse[BWD_C], shift[BWD_C], dd[BWD_C];
    int natural[BWD_C];
    int32_t lo[BWD_C], hi[BWD_C];
    for (int c = 0; c < BWD_C; c++) {
        const int64_t i = i0 + (r + c < nr ? r + c : nr - 1);
        int64_t a, z;
        q[c] = (const float *)p->q + x->b * p->q_stride[0] + h * p->q_stride[1] + i * p->q_stride[2];
        dout[c] = (const float *)bp->dout + x->b * bp->dout_stride[0] + h * bp->dout_stride[1] + i * bp->dout_stride[2];
        shift[c] = x->plan->lse_shift[bh * p->len_q + i];
        natural[c] = biased || shift[c] != 0.0f;
        qscale[c] = natural[c] ? p->scale : p->scale * FUSED_LOG2E;
        lse[c] = natural[c] ? p->lse[bh * p->len_q + i] : p->lse[bh * p->len_q + i] * FUSED_LOG2E;
        dd[c] = x->plan->d[bh * p->len_q + i];
        attn_row_range(pr, x->b, i, &a, &z);
        a -= x->j0; /* relative to the block, clamped into [0, BWD_KB] so they fit 32 bits */
        z = (z < x->j0 + x->nk ? z : x->j0 + x->nk) - x->j0;
        lo[c] = (int32_t)(a < 0 ? 0 : a > BWD_KB ? BWD_KB : a);
        hi[c] = (int32_t)(z < 0 ? 0 : z > BWD_KB ? BWD_KB : z);
    }
    vi lane;
    for (int l = 0; l < ATTN_VL; l++) lane[l] = l;
    for (int64_t g = 0; g < BWD_KB; g += BWD_LW) {
        float *w = x->wt + r * BWD_KB + g, *s = x->st + r * BWD_KB + g;
        vf acc[BWD_V][BWD_C], dp[BWD_V][BWD_C];
        for (int c = 0; c < BWD_C; c++)
            for (int v = 0; v < BWD_V; v++) acc[v][c] = dp[v][c] = vsplat(0.0f);
        bwd_product(acc, x->kt + g, BWD_KB, q, 1, p->dim_qk, BWD_V, BWD_C);
        for (int c = 0; c < BWD_C; c++)
            for (int v = 0; v < BWD_V; v++) acc[v][c] *= qscale[c];
        if (p->bias || p->mask) {
            for (int c = 0; c < nc; c++) {
                const attn_row_masks masks = attn_row_masks_at(pr, x->b, h, i0 + r + c);
                for (int v = 0; v < BWD_V; v++) vstore(w + c * BWD_KB + v * ATTN_VL, acc[v][c]);
                for (int64_t l = 0; l < BWD_LW && g + l < x->nk; l++)
                    w[c * BWD_KB + l] = attn_bias_mask(&masks, x->j0 + g + l, w[c * BWD_KB + l]);
                for (int v = 0; v < BWD_V; v++) acc[v][c] = vload(w + c * BWD_KB + v * ATTN_VL);
            }
        }
        for (int c = 0; c < nc; c++)
            for (int v = 0; v < BWD_V; v++) {
                vf t = acc[v][c] - vsplat(lse[c]) - vsplat(shift[c]);
                if (range) {
                    const vi j = lane + ((vi){0} + (int32_t)(g + v * ATTN_VL));
                    t = vselect((j < ((vi){0} + lo[c])) | (j >= ((vi){0} + hi[c])), vsplat(-INFINITY), t);
                }
                vstore(w + c * BWD_KB + v * ATTN_VL, vexp2(natural[c] ? t * FUSED_LOG2E : t));
            }
        bwd_product(dp, x->vt + g, BWD_KB, dout, 1, p->dim_v, BWD_V, BWD_C);
        for (int c = 0; c < nc; c++)
            for (int v = 0; v < BWD_V; v++) {
                const vf pw = vload(w + c * BWD_KB + v * ATTN_VL);
                const vf ds = dropout ? dp[v][c] : vselect(pw == vsplat(0.0f), vsplat(0.0f), pw * (dp[v][c] - dd[c]));
                vstore(s + c * BWD_KB + v * ATTN_VL, ds);
            }
    }
}

/* With dropout, the tile's W = dropout(P) and dS = P (dropout(dP) - D), element by element from
 * the keep decisions of the forward (attn_dropout), as backward_row does. */
static void bwd_dropout(const bwd_ctx *x, int64_t h, int64_t i0, int64_t nr) {
    const attn_problem *pr = x->pr;
    const int64_t bh = x->b * pr->p.heads_q + h;
    for (int64_t r = 0; r < nr; r++) {
        const uint64_t counter = attn_dropout_counter(pr, x->b, h, i0 + r) + (uint64_t)x->j0;
        const float d = x->plan->d[bh * pr->p.len_q + i0 + r];
        float *w = x->wt + r * BWD_KB, *s = x->st + r * BWD_KB;
        for (int64_t l = 0; l < BWD_KB; l++) {
            const float pw = w[l];
            if (pw == 0.0f) {
                s[l] = 0.0f;
                continue;
            }
            w[l] = attn_dropout(pr, counter + (uint64_t)l, pw);
            s[l] = pw * (attn_dropout(pr, counter + (uint64_t)l, s[l]) - d);
        }
    }
}

/* dt (NC rows of ld BWD_KB, transposed: feature, key) += tileᵀ · the NC columns at col over nr rows. */
ATTN_INLINE void bwd_kv_panel(float *dt, const float *tile, const float *col, int64_t row_stride, int64_t nr,
                              const int NC) {
    const float *b[BWD_C];
    for (int c = 0; c < NC; c++) b[c] = col + c;
    for (int64_t g = 0; g < BWD_KB; g += BWD_LW) {
        vf acc[BWD_V][BWD_C];
        for (int c = 0; c < NC; c++)
            for (int v = 0; v < BWD_V; v++) acc[v][c] = vload(dt + c * BWD_KB + g + v * ATTN_VL);
        bwd_product(acc, tile + g, BWD_KB, b, row_stride, nr, BWD_V, NC);
        for (int c = 0; c < NC; c++)
            for (int v = 0; v < BWD_V; v++) vstore(dt + c * BWD_KB + g + v * ATTN_VL, acc[v][c]);
    }
}

/* dVᵀ += Wᵀ dO or dKᵀ += dSᵀ Q for the tile: n features of the rows at row0 (stride row_stride). */
static void bwd_accumulate_kv(float *dt, const float *tile, const float *row0, int64_t row_stride, int64_t n,
                              int64_t nr) {
    for (int64_t c = 0; c < n; c += BWD_C) {
        float *d = dt + c * BWD_KB;
        switch (n - c < BWD_C ? n - c : BWD_C) {
        case 1: bwd_kv_panel(d, tile, row0 + c, row_stride, nr, 1); break;
        case 2: bwd_kv_panel(d, tile, row0 + c, row_stride, nr, 2); break;
        case 3: bwd_kv_panel(d, tile, row0 + c, row_stride, nr, 3); break;
        case 4: bwd_kv_panel(d, tile, row0 + c, row_stride, nr, 4); break;
        case 5: bwd_kv_panel(d, tile, row0 + c, row_stride, nr, 5); break;
        default: bwd_kv_panel(d, tile, row0 + c, row_stride, nr, BWD_C); break;
        }
    }
}

/* Rows [r, r + rows) of dq (ld) += the dS tile's rows · K, NV vectors of features from f. */
ATTN_INLINE void bwd_q_panel(float *dq, int64_t ld, const bwd_ctx *x, int64_t r, int64_t rows, int64_t f,
                             const int NV) {
    const int64_t kpad = bwd_kpad(&x->pr->p);
    const float *b[BWD_C];
    vf acc[BWD_V][BWD_C];
    for (int c = 0; c < BWD_C; c++) {
        b[c] = x->st + (r + (c < rows ? c : rows - 1)) * BWD_KB;
        for (int v = 0; v < NV; v++) acc[v][c] = c < rows ? vload(dq + (r + c) * ld + f + v * ATTN_VL) : vsplat(0.0f);
    }
    bwd_product(acc, x->kr + f, kpad, b, 1, x->nk, NV, BWD_C);
    for (int c = 0; c < rows; c++)
        for (int v = 0; v < NV; v++) vstore(dq + (r + c) * ld + f + v * ATTN_VL, acc[v][c]);
}

/* The tile's nr rows of dq (partial rows at dq, ld) += dS K. */
static void bwd_accumulate_q(const bwd_ctx *x, float *dq, int64_t ld, int64_t nr) {
    const int64_t kpad = bwd_kpad(&x->pr->p);
    for (int64_t r = 0; r < nr; r += BWD_C) {
        const int64_t rows = nr - r < BWD_C ? nr - r : BWD_C;
        for (int64_t f = 0; f < kpad; f += BWD_LW) {
            switch ((kpad - f) / ATTN_VL < BWD_V ? (kpad - f) / ATTN_VL : BWD_V) {
            case 1: bwd_q_panel(dq, ld, x, r, rows, f, 1); break;
#if BWD_V > 2
            case 2: bwd_q_panel(dq, ld, x, r, rows, f, 2); break;
            case 3: bwd_q_panel(dq, ld, x, r, rows, f, 3); break;
#endif
            default: bwd_q_panel(dq, ld, x, r, rows, f, BWD_V); break;
            }
        }
    }
}

/* dS of row i of head h for the block's keys into the plan's ds_out: row (of the dS tile), or 0. */
static void bwd_store_ds(const bwd_ctx *x, int64_t h, int64_t i, const float *row) {
    const int64_t *st = x->plan->ds_stride;
    float *out = x->plan->ds_out + x->b * st[0] + h * st[1] + i * st[2] + x->j0 * st[3];
    for (int64_t j = 0; j < x->nk; j++) out[j * st[3]] = row ? row[j] : 0.0f;
}

/* Head h's rows against the block: the tiles of rows that see it, and the rows without a finite
 * lse that do not (their weights, uniform or NaN, reach every key); with dbias, every row's dS. */
static void bwd_head(const bwd_ctx *x, int64_t h, int finite) {
    const attn_backward_plan *plan = x->plan;
    const attn_problem *pr = x->pr;
    const attn_params *p = &pr->p;
    const attn_backward_params *bp = plan->bp;
    const int64_t bh = x->b * p->heads_q + h, *sum_stride = plan->dq_sum_stride, ld = sum_stride[3];
    const uint8_t *flags = plan->row_flags + bh * p->len_q;
    float *dq = plan->dq_sum + x->stripe * sum_stride[0] + x->b * sum_stride[1] + h * sum_stride[2];
    int64_t ia, ib, lo, hi;
    bwd_rows_seeing(pr, x->b, x->j0, x->j0 + x->nk, &ia, &ib);
    if (ib < ia) ib = ia;
    if (plan->no_lse_rows[bh] || plan->ds_out)
        for (int64_t i = 0; i < p->len_q; i++) {
            if (i == ia) i = ib;
            if (i >= p->len_q) break;
            if (flags[i] & ATTN_BACKWARD_ROW_NO_LSE)
                attn_backward_exact_row(plan, x->b, h, i, x->j0, x->nk, x->dkt, x->dvt, BWD_KB, dq + i * ld, x->scratch);
            else if (plan->ds_out)
                bwd_store_ds(x, h, i, NULL);
        }
    const float *q = (const float *)p->q + x->b * p->q_stride[0] + h * p->q_stride[1];
    const float *dout = (const float *)bp->dout + x->b * bp->dout_stride[0] + h * bp->dout_stride[1];
    for (int64_t i0 = ia; i0 < ib; i0 += BWD_QT) {
        const int64_t nr = ib - i0 < BWD_QT ? ib - i0 : BWD_QT;
        int exact = !finite;
        for (int64_t r = 0; r < nr; r++) exact |= flags[i0 + r];
        if (exact) {
            for (int64_t r = 0; r < nr; r++)
                attn_backward_exact_row(plan, x->b, h, i0 + r, x->j0, x->nk, x->dkt, x->dvt, BWD_KB,
                                        dq + (i0 + r) * ld, x->scratch);
            continue;
        }
        int64_t first_hi, last_lo;
        attn_row_range(pr, x->b, i0, &lo, &first_hi);
        attn_row_range(pr, x->b, i0 + nr - 1, &last_lo, &hi);
        const int range = last_lo > x->j0 || first_hi < x->j0 + BWD_KB;
        for (int64_t r = 0; r < nr; r += BWD_C) bwd_row_group(x, h, i0, r, nr, range);
        if (pr->dropout_threshold) bwd_dropout(x, h, i0, nr);
        bwd_accumulate_kv(x->dvt, x->wt, dout + i0 * bp->dout_stride[2], bp->dout_stride[2], p->dim_v, nr);
        bwd_accumulate_kv(x->dkt, x->st, q + i0 * p->q_stride[2], p->q_stride[2], p->dim_qk, nr);
        bwd_accumulate_q(x, dq + i0 * ld, ld, nr);
        if (plan->ds_out)
            for (int64_t r = 0; r < nr; r++) bwd_store_ds(x, h, i0 + r, x->st + r * BWD_KB);
    }
}

/* The block's dk = scale dKᵀ and dv = dVᵀ, transposed into the caller's rows. */
static void bwd_store(const bwd_ctx *x) {
    const attn_params *p = &x->pr->p;
    const attn_backward_params *bp = x->plan->bp;
    float *dk = (float *)bp->dk + x->b * bp->dk_stride[0] + x->hk * bp->dk_stride[1] + x->j0 * bp->dk_stride[2];
    float *dv = (float *)bp->dv + x->b * bp->dv_stride[0] + x->hk * bp->dv_stride[1] + x->j0 * bp->dv_stride[2];
    for (int64_t j = 0; j < x->nk; j++) {
        for (int64_t c = 0; c < p->dim_qk; c++) dk[j * bp->dk_stride[2] + c] = p->scale * x->dkt[c * BWD_KB + j];
        for (int64_t c = 0; c < p->dim_v; c++) dv[j * bp->dv_stride[2] + c] = x->dvt[c * BWD_KB + j];
    }
}

/* One work item: the key blocks of stripe `stripe` of (b, hk), in order. */
static void backward_stripe(const attn_backward_plan *plan, int64_t b, int64_t hk, int64_t stripe, float *workspace) {
    const attn_problem *pr = plan->pr;
    const attn_params *p = &pr->p;
    bwd_ctx x = {plan, pr, b, hk, stripe, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    x.kt = workspace;
    x.dkt = x.kt + BWD_KB * p->dim_qk;
    x.vt = x.dkt + BWD_KB * p->dim_qk;
    x.dvt = x.vt + BWD_KB * p->dim_v;
    x.kr = x.dvt + BWD_KB * p->dim_v;
    x.wt = x.kr + BWD_KB * bwd_kpad(p);
    x.st = x.wt + BWD_KB * BWD_QT;
    x.scratch = x.st + BWD_KB * BWD_QT;
    for (int64_t kb = stripe; kb < plan->key_blocks; kb += plan->stripes) {
        x.j0 = kb * BWD_KB;
        x.nk = p->len_k - x.j0 < BWD_KB ? p->len_k - x.j0 : BWD_KB;
        const int finite = bwd_pack(&x);
        memset(x.dkt, 0, sizeof(float) * (size_t)(BWD_KB * p->dim_qk));
        memset(x.dvt, 0, sizeof(float) * (size_t)(BWD_KB * p->dim_v));
        for (int64_t h = hk * pr->group; h < (hk + 1) * pr->group; h++) bwd_head(&x, h, finite);
        bwd_store(&x);
    }
}
