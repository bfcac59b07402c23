/*
 * fused_tile_template.h: the fused attention kernel, compiled once per ISA through kernel_table_template.h.
 *
 * Layout idea: lanes are queries. A micro-tile holds QT = ATTN_Q_VECS x ATTN_VL query rows, and
 * every per-row quantity (score, running maximum, running sum, output column) is a vector whose
 * lanes are those rows. Then
 *   - scores  Sᵀ[j][lanes]  += K[j][d]  * Qᵀ[d][lanes]   (one broadcast of packed K per element)
 *   - output  Oᵀ[c][lanes]  += V[j][c]  * Pᵀ[j][lanes]   (one broadcast of packed V per element)
 * are the same register-blocked outer product (outer_tile), and the online softmax is purely
 * lane-wise (no horizontal reductions, ever). Q is transposed once per work item, with the scale
 * folded in, and Oᵀ once at the end.
 *
 * A work item is up to FUSED_MAX_TILES micro-tiles of one (batch, head). It walks the keys in
 * blocks of FUSED_KEY_BLOCK. Each block of K and V is first packed into ATTN_NK-wide panels
 * (fused_pack), so both products read one sequential stream whatever the caller's strides, and all
 * micro-tiles of the item share the packed block from L2. Read in place, V was walked down column strips whose
 * rows, 256 B or more apart, fell into a few L1 sets and were evicted before the next strip reused
 * their lines (P·V ran 22 % slower than Q·Kᵀ at D = 64 for the same FMAs; a (B, L, H·D) layout
 * puts every row in the same set), and K's ATTN_NK short row streams, restarted every few hundred
 * cycles, stalled on L2 (Q·Kᵀ then ran 30 % slower than P·V on packed V).
 * Scores are in base-2 units: log2 e is folded into the scale of Q, so every exponent is
 * exp2(s - m) with no multiply per score. With an additive bias they stay in natural units and
 * exponents take exp2((s - m)·log2 e): a bias of -FLT_MAX (the Equinox/Flax mask value) must stay
 * finite and give the same log-sum-exp as the unfused path, which no base-2 score can represent.
 * Per micro-tile and key block:
 *   1. Sᵀ = Qᵀ·Kᵀ over only the keys this tile can see (causal, window and key length bound the
 *      block; blocks outside every row's range are never touched), then element-wise masks only
 *      where needed: the range test on boundary blocks, the bool mask and bias when given;
 *   2. block maximum; if any row's maximum moved, alpha = exp2(m_old - m_new) rescales l and O
 *      (folded into loading O); otherwise nothing is rescaled;
 *   3. P = exp2(S - m), l += P (before dropout), dropout on P, O += P·V.
 * At the end O is divided by l once, transposed into out, and lse = m + ln l (m in natural units).
 *
 * bf16 pairs (fused_item_run's `pairs`, when q, k and v are all bf16 and attn_bf16_dot says so):
 * both products take two bf16 values per 32-bit lane and one vdot_bf16 (VDPBF16PS, or its portable
 * model) per step, so each step covers two features (Q·Kᵀ) or two keys (P·V) with nothing widened:
 *   Qᵀ[w][lanes] = (Q[lane][2w], Q[lane][2w+1])   unscaled: the scale multiplies the scores instead
 *   kp[g][w][c]  = (K[j][2w], K[j][2w+1])          the K rows' own words, transposed as floats are
 *   vp[g][t][c]  = (V[2t][col], V[2t+1][col])      two rows interleaved
 *   Pᵀ[t][lanes] = (P[lane][2t], P[lane][2t+1])    P rounded to bf16, in place in the score tile
 * An odd feature count pads the last word with a zero; a key past the tile's range never enters P·V
 * (its half of the last word is masked off), so a non-finite V there cannot turn 0·V into NaN. The
 * sum l takes P before rounding, so the weights are rounded, not renormalised: out moves by at most
 * half a bf16 ulp of each weight, 2^-9 · max|v| (attn.h). Everything else (masks, softmax, dropout,
 * the row ends) is the same code for both.
 */

#define FUSED_QT (ATTN_VL * ATTN_Q_VECS) /* queries per micro-tile */
#define QT FUSED_QT
/* Tiling, measured on Zen3 (AVX2) at L = 1024-8192, D = 64-128, side by side: up to 32 micro-tiles
 * of queries share each packed block of 128 keys, so the cost of bringing a K/V block in from L3
 * and packing it is spread over 768 queries. Before packing, 4 x 64 ran at 57-59 GFLOP/s and
 * 8 x 128 at 65-70; with packing, 16 tiles beat 8 by about 5 %, and once the score accumulators
 * stayed in registers, 32 beat 16 by 1.5-4 % at L >= 2048 (neutral at 1024; 24 in between).
 * Key blocks of 256 were 1 % slower. fused.c uses fewer tiles per item when there would
 * otherwise be too few items to keep every thread busy. Both can be overridden at build time
 * (-DFUSED_MAX_TILES=..., -DFUSED_KEY_BLOCK=...) for tuning. */
#ifndef FUSED_MAX_TILES
#define FUSED_MAX_TILES 32  /* micro-tiles per work item, sharing each K/V block */
#endif
#ifndef FUSED_KEY_BLOCK
#define FUSED_KEY_BLOCK 128 /* keys per block; a multiple of every ISA's ATTN_NK */
#endif

/* Blocks crossing a row's visible range taken one vector of rows at a time
 * (fused_tile_block_by_vector): with 16-float vectors (AVX-512: 8 accumulators and 32 registers),
 * causal L = 256 ran 1.04-1.07x faster than whole tiles on 1 thread (Zen 4, paired); with 8-float
 * ones (AVX2: 4 accumulators, too few to hide the FMA latency) 0.81-0.83x, so not there. */
#ifndef FUSED_DIAGONAL_BY_VECTOR
#define FUSED_DIAGONAL_BY_VECTOR (ATTN_VL == 16)
#endif

static const float FUSED_LOG2E = 1.44269504088896340736f;
static const float FUSED_LN2 = 0.69314718055994530942f;

/* dim_v rounded up to whole ATTN_NK-wide panels. */
static inline int64_t fused_dv_panels(const attn_params *p) { return (p->dim_v + ATTN_NK - 1) / ATTN_NK * ATTN_NK; }

/* Floats in the conversion buffer: ATTN_NK rows of K (packed together) or one row of Q, V or out,
 * widened from (or to be rounded to) half precision. */
static inline int64_t fused_conv_floats(const attn_params *p) {
    return ATTN_NK * (p->dim_qk > p->dim_v ? p->dim_qk : p->dim_v);
}

/* Per-thread workspace, in floats: Qᵀ and Oᵀ for each micro-tile, one score tile, the running
 * maximum and sum of each micro-tile's rows, the packed blocks of K and V, and the conversion
 * buffer. bf16 pairs need at most as much (half the words, and padding to whole words). */
static inline int64_t fused_workspace_floats(const attn_problem *pr, int64_t tiles) {
    return tiles * QT * (pr->p.dim_qk + pr->p.dim_v)                         /* Qᵀ, Oᵀ */
         + (int64_t)FUSED_KEY_BLOCK * QT                                     /* Sᵀ / Pᵀ */
         + 2 * tiles * QT                                                    /* m, l */
         + (int64_t)FUSED_KEY_BLOCK * (pr->p.dim_qk + fused_dv_panels(&pr->p)) /* packed K, V */
         + fused_conv_floats(&pr->p);
}

/*
 * acc[v][c] (+)= sum over t < nt of a[t*QT + v*VL + lane] * b[t*ATTN_NK + c]
 * a is a (nt, QT) tile and b an (nt, ATTN_NK) packed panel of K or V, both in the workspace.
 */
/* With pairs, a and b hold bf16 pair words (see the top) and each step is one vdot_bf16. */
ATTN_INLINE void outer_tile(vf acc[ATTN_Q_VECS][ATTN_NK], const float *a, const float *b, int64_t nt, const int pairs,
                            const int NV) {
    /* Unrolled by 4: 8-12 % faster on Zen3 (AVX2) than by 1 or 2, measured side by side. */
#pragma GCC unroll 4
    for (int64_t t = 0; t < nt; t++, a += QT, b += ATTN_NK) {
        vf av[ATTN_Q_VECS];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) av[v] = vload(a + v * ATTN_VL);
#pragma GCC unroll 16
        for (int c = 0; c < ATTN_NK; c++) {
            vf bc = vsplat(b[c]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[v][c] = pairs ? vdot_bf16(acc[v][c], av[v], bc) : vfma(av[v], bc, acc[v][c]);
        }
    }
}

/* 32-bit words holding n bf16 values two by two. */
ATTN_INLINE int64_t fused_words(int64_t n) { return (n + 1) / 2; }

/* The pair word of elements e and e + 1 (0 when e + 1 = n) of a bf16 row of n elements, as float bits. */
ATTN_INLINE float fused_word(const uint16_t *row, int64_t e, int64_t n) {
    return attn_bits_f32(row[e] | (e + 1 < n ? (uint32_t)row[e + 1] << 16 : 0));
}

/* The factor of Q·Kᵀ: base-2 scores unless biased. */
ATTN_INLINE float fused_qscale(const attn_params *p) { return p->bias ? p->scale : p->scale * FUSED_LOG2E; }

/* The state of one work item, shared by its steps. */
typedef struct fused_item_ctx {
    const attn_problem *pr;
    int64_t b, h, i0;      /* batch, query head, first query row of the item */
    int64_t tiles;         /* micro-tiles actually holding rows */
    int64_t k0, v0;        /* element offsets of this (b, h)'s K and V heads */
    int64_t j0, nkb;       /* the packed block: keys [j0, j0 + nkb) */
    float *qt, *ot, *st, *mrow, *lrow, *kp, *vp;
    float *conv;           /* rows widened from half precision, or out's row before rounding */
} fused_item_ctx;

/*
 * Packs keys [j0, j0 + nkb) into ATTN_NK-wide panels, zero-padded:
 *   kp[g][d][c] = K[j0 + g·NK + c][d]   (panel g: NK keys, walked along d by Q·Kᵀ)
 *   vp[g][t][c] = V[j0 + t][g·NK + c]   (panel g: NK columns, walked along t by P·V)
 * Padding keys score 0 and padding columns accumulate 0; neither is ever stored. K is transposed
 * NK rows by ATTN_VL features at a time (vtranspose_rows). Half-precision rows are widened as they
 * are packed, so the products only ever see floats.
 */
static inline void fused_pack_floats(fused_item_ctx *x, int64_t j0, int64_t nkb) {
    const attn_params *p = &x->pr->p;
    const int64_t dq = p->dim_qk, ks = p->k_stride[2];
    const int64_t dv = p->dim_v, vs = p->v_stride[2], full = dv / ATTN_NK, panels = fused_dv_panels(p) / ATTN_NK;
    x->j0 = j0;
    x->nkb = nkb;
    for (int64_t g = 0; g * ATTN_NK < nkb; g++) {
        const int64_t n = nkb - g * ATTN_NK < ATTN_NK ? nkb - g * ATTN_NK : ATTN_NK;
        const float *rows[ATTN_NK];
        for (int c = 0; c < ATTN_NK; c++)
            rows[c] = c < n ? vrow_f32(p->k, p->k_dtype, x->k0 + (j0 + g * ATTN_NK + c) * ks, dq, x->conv + c * dq)
                            : NULL;
        float *dst = x->kp + g * ATTN_NK * dq;
        int64_t d = 0;
        for (; d + ATTN_VL <= dq; d += ATTN_VL) {
            vf r[ATTN_NK];
            for (int c = 0; c < ATTN_NK; c++) r[c] = rows[c] ? vload(rows[c] + d) : vsplat(0.0f);
            vtranspose_rows(r, ATTN_NK);
            for (int c = 0; c < ATTN_NK; c++) vstore(dst + d * ATTN_NK + c * ATTN_VL, r[c]);
        }
        for (; d < dq; d++)
            for (int c = 0; c < ATTN_NK; c++) dst[d * ATTN_NK + c] = rows[c] ? rows[c][d] : 0.0f;
    }
    for (int64_t t = 0; t < nkb; t++) {
        const float *row = vrow_f32(p->v, p->v_dtype, x->v0 + (j0 + t) * vs, dv, x->conv);
        float *dst = x->vp + t * ATTN_NK;
        for (int64_t g = 0; g < full; g++, row += ATTN_NK, dst += nkb * ATTN_NK)
            memcpy(dst, row, sizeof(float) * ATTN_NK);
        if (full < panels) {
            const int64_t n = dv - full * ATTN_NK;
            for (int c = 0; c < ATTN_NK; c++) dst[c] = c < n ? row[c] : 0.0f;
        }
    }
}

/* fused_pack_floats for bf16 pairs: the words of ATTN_NK rows of K transposed as floats would be,
 *   kp[g][w][c] = (K[j0 + g·NK + c][2w], ...[2w + 1]),
 * and rows 2t and 2t + 1 of V interleaved, vp[g][t][c] = (V[j0 + 2t][g·NK + c], V[j0 + 2t + 1][...]),
 * with zero halves past the last feature, key or column. */
static inline void fused_pack_pairs(fused_item_ctx *x, int64_t j0, int64_t nkb) {
    const attn_params *p = &x->pr->p;
    const int64_t dq = p->dim_qk, ks = p->k_stride[2], words = fused_words(dq), full = dq / 2;
    const int64_t dv = p->dim_v, vs = p->v_stride[2], pairs = fused_words(nkb), dvp = fused_dv_panels(p);
    const uint16_t *k = p->k, *v = p->v;
    x->j0 = j0;
    x->nkb = nkb;
    for (int64_t g = 0; g * ATTN_NK < nkb; g++) {
        const int64_t n = nkb - g * ATTN_NK < ATTN_NK ? nkb - g * ATTN_NK : ATTN_NK;
        const uint16_t *rows[ATTN_NK];
        for (int c = 0; c < ATTN_NK; c++) rows[c] = c < n ? k + x->k0 + (j0 + g * ATTN_NK + c) * ks : NULL;
        float *dst = x->kp + g * ATTN_NK * words;
        int64_t w = 0;
        for (; w + ATTN_VL <= full; w += ATTN_VL) {
            vf r[ATTN_NK];
            for (int c = 0; c < ATTN_NK; c++) {
                r[c] = vsplat(0.0f);
                if (rows[c]) memcpy(&r[c], rows[c] + 2 * w, sizeof r[c]);
            }
            vtranspose_rows(r, ATTN_NK);
            for (int c = 0; c < ATTN_NK; c++) vstore(dst + w * ATTN_NK + c * ATTN_VL, r[c]);
        }
        for (; w < words; w++)
            for (int c = 0; c < ATTN_NK; c++) dst[w * ATTN_NK + c] = rows[c] ? fused_word(rows[c], 2 * w, dq) : 0.0f;
    }
    for (int64_t t = 0; t < pairs; t++) {
        const uint16_t *r0 = v + x->v0 + (j0 + 2 * t) * vs, *r1 = 2 * t + 1 < nkb ? r0 + vs : NULL;
        float *dst = x->vp + t * ATTN_NK; /* panel g at dst + g·pairs·NK */
        int64_t c = 0;
        for (; c + ATTN_VL <= dv; c += ATTN_VL) {
            const vu lo = __builtin_convertvector(*(const vu16_unaligned *)(r0 + c), vu);
            const vu hi = r1 ? __builtin_convertvector(*(const vu16_unaligned *)(r1 + c), vu) << 16 : (vu){0};
            const vu word = lo | hi;
            for (int q = 0; q < ATTN_VL / ATTN_NK; q++)
                memcpy(dst + (c / ATTN_NK + q) * pairs * ATTN_NK, (const uint32_t *)&word + q * ATTN_NK,
                       sizeof(float) * ATTN_NK);
        }
        for (; c < dvp; c++)
            dst[c / ATTN_NK * pairs * ATTN_NK + c % ATTN_NK] =
                c >= dv ? 0.0f : attn_bits_f32(r0[c] | (r1 ? (uint32_t)r1[c] << 16 : 0));
    }
}

/* Sᵀ columns [0, n) of one panel of keys: qt · panel kp over `steps` features (pair words with
 * pairs, then times qscale), stored at s, their maximum into bmax. */
ATTN_INLINE void fused_scores_panel(float *s, const float *qt, const float *kp, int64_t steps, int n,
                                    vf bmax[ATTN_Q_VECS], const int pairs, float qscale, const int NV) {
    vf acc[ATTN_Q_VECS][ATTN_NK];
    for (int v = 0; v < NV; v++)
        for (int c = 0; c < ATTN_NK; c++) acc[v][c] = vsplat(0.0f);
    outer_tile(acc, qt, kp, steps, pairs, NV);
    for (int c = 0; c < n; c++)
        for (int v = 0; v < NV; v++) {
            if (pairs) acc[v][c] *= qscale;
            vstore(s + c * QT + v * ATTN_VL, acc[v][c]);
            bmax[v] = vmax(bmax[v], acc[v][c]);
        }
}

/* Sᵀ[j - j0][lanes] for keys [j0, j1) of micro-tile u (j0 on a panel boundary of the packed
 * block): the scaled scores, and their maximum per lane in bmax (NaN scores ignored). Whole panels
 * get a constant column count, so their accumulators stay in registers (a variable count kept
 * them in memory: 1-3 % of the whole kernel); only the last panel may be partial. */
ATTN_INLINE void fused_scores(const fused_item_ctx *x, int64_t u, int64_t j0, int64_t j1, vf bmax[ATTN_Q_VECS],
                              const int pairs, const int NV) {
    const int64_t dq = x->pr->p.dim_qk, steps = pairs ? fused_words(dq) : dq;
    const float *qt = x->qt + u * QT * dq;
    const float qscale = fused_qscale(&x->pr->p);
    for (int v = 0; v < NV; v++) bmax[v] = vsplat(-INFINITY);
    int64_t j = j0;
    for (; j + ATTN_NK <= j1; j += ATTN_NK)
        fused_scores_panel(x->st + (j - j0) * QT, qt, x->kp + (j - x->j0) * steps, steps, ATTN_NK, bmax, pairs, qscale, NV);
    if (j < j1)
        fused_scores_panel(x->st + (j - j0) * QT, qt, x->kp + (j - x->j0) * steps, steps, (int)(j1 - j), bmax, pairs,
                           qscale, NV);
}

/* Element-wise masks on Sᵀ for keys [j0, j1) of micro-tile u with rows [r0, r0 + rows):
 * the causal/window/key-length range (only when the block crosses some row's boundary), then the
 * bias and the bool mask when given. Lanes past the last row are left alone (never written out). */
static void fused_mask(const fused_item_ctx *x, int64_t r0, int64_t rows, int64_t j0, int64_t j1, int range) {
    const attn_problem *pr = x->pr;
    const attn_params *p = &pr->p;
    const float neg_inf = -INFINITY;
    if (range) {
        /* Per-lane bounds relative to j0, clamped into [0, block + 1] so they fit 32 bits. */
        int32_t lo[QT], hi[QT];
        for (int l = 0; l < QT; l++) {
            int64_t a = 0, z = 0;
            if (l < rows) attn_row_range(pr, x->b, r0 + l, &a, &z);
            a -= j0;
            z -= j0;
            lo[l] = (int32_t)(a < 0 ? 0 : a > FUSED_KEY_BLOCK + 1 ? FUSED_KEY_BLOCK + 1 : a);
            hi[l] = (int32_t)(z < 0 ? 0 : z > FUSED_KEY_BLOCK + 1 ? FUSED_KEY_BLOCK + 1 : z);
        }
        /* Only the vectors holding rows (fused_tile_block's nv), and only the keys some row does
         * not see: ranges are monotone in the row, so every row sees [lo(last), hi(first)) and only
         * [0, lo(last)) and [hi(first), j1 - j0) are tested. Across the causal diagonal that is the
         * last vector's width of keys, not the block's (the whole block was 2 % of the time at
         * L = 256). */
        const int nv = (int)((rows + ATTN_VL - 1) / ATTN_VL);
        vi lov[ATTN_Q_VECS], hiv[ATTN_Q_VECS];
        const int32_t seen_lo = lo[rows - 1], seen_hi = hi[0];
        for (int v = 0; v < nv; v++) {
            memcpy(&lov[v], lo + v * ATTN_VL, sizeof(vi));
            memcpy(&hiv[v], hi + v * ATTN_VL, sizeof(vi));
        }
        const int64_t n = j1 - j0;
        const int64_t from[2] = {0, seen_hi > seen_lo ? seen_hi : seen_lo}, to[2] = {seen_lo < n ? seen_lo : n, n};
        for (int part = 0; part < 2; part++)
            for (int64_t j = from[part]; j < to[part]; j++) {
                vi jv = (vi){0} + (int32_t)j;
                for (int v = 0; v < nv; v++) {
                    float *s = x->st + j * QT + v * ATTN_VL;
                    vi outside = (jv < lov[v]) | (jv >= hiv[v]);
                    vstore(s, vselect(outside, vsplat(neg_inf), vload(s)));
                }
            }
    }
    if (p->bias || p->mask) {
        for (int64_t l = 0; l < rows; l++) {
            const attn_row_masks masks = attn_row_masks_at(pr, x->b, x->h, r0 + l);
            for (int64_t j = j0; j < j1; j++) x->st[(j - j0) * QT + l] = attn_bias_mask(&masks, j, x->st[(j - j0) * QT + l]);
        }
    }
}

/* Pᵀ = exp2((Sᵀ - m)·unit) in place for nk keys, and the sums of each row into sum. One vector of
 * rows at a time, so its maximum, its sum and the exponent's constants stay in registers (all three
 * at once spilled the sums on AVX2). Inlined with unit 1 (base-2 scores, no multiply) or log2 e. */
ATTN_INLINE void fused_exponents(float *st, int64_t nk, const vf m_use[ATTN_Q_VECS], float unit,
                                 vf sum[ATTN_Q_VECS], int nv) {
    for (int v = 0; v < nv; v++) {
        float *s = st + v * ATTN_VL;
        for (int64_t j = 0; j < nk; j++, s += QT) {
            vf e = vexp2((vload(s) - m_use[v]) * unit);
            sum[v] += e;
            vstore(s, e);
        }
    }
}

/* Online softmax step for micro-tile u over nk scores whose maximum is bmax (NULL: scan for it,
 * as masking changed the scores): updates m and l, turns Sᵀ into Pᵀ in place, and returns alpha
 * (the factor O must be rescaled by) through *alpha, or 0 when no row's maximum moved, in which
 * case O is left as it is. */
static int fused_softmax(const fused_item_ctx *x, int64_t u, int64_t nk, const vf *bmax, vf alpha[ATTN_Q_VECS],
                         int nv) {
    const attn_params *p = &x->pr->p;
    float *mrow = x->mrow + u * QT, *lrow = x->lrow + u * QT;
    vf m_old[ATTN_Q_VECS], m_new[ATTN_Q_VECS], m_use[ATTN_Q_VECS], sum[ATTN_Q_VECS];
    for (int v = 0; v < nv; v++) m_new[v] = m_old[v] = vload(mrow + v * ATTN_VL);
    if (bmax) {
        for (int v = 0; v < nv; v++) m_new[v] = vmax(m_new[v], bmax[v]);
    } else {
        for (int64_t j = 0; j < nk; j++)
            for (int v = 0; v < nv; v++) m_new[v] = vmax(m_new[v], vload(x->st + j * QT + v * ATTN_VL));
    }
    int moved = 0;
    for (int v = 0; v < nv; v++) {
        moved |= vany(m_new[v] != m_old[v]);
        /* A row with nothing visible yet keeps m = -inf; exponents then use 0 so exp2(-inf - 0) = 0
         * instead of exp2(-inf + inf) = NaN. */
        m_use[v] = vselect(m_new[v] == vsplat(-INFINITY), vsplat(0.0f), m_new[v]);
        sum[v] = vsplat(0.0f);
    }
    if (p->bias)
        fused_exponents(x->st, nk, m_use, FUSED_LOG2E, sum, nv);
    else
        fused_exponents(x->st, nk, m_use, 1.0f, sum, nv);
    for (int v = 0; v < nv; v++) {
        const vf l = vload(lrow + v * ATTN_VL);
        /* One expression either way: whether l·alpha + sum is fused must not depend on how the
         * compiler inlined this function (the bf16 entry points must agree bit for bit). */
        if (moved) alpha[v] = vexp2((m_old[v] - m_use[v]) * (p->bias ? FUSED_LOG2E : 1.0f));
        vstore(lrow + v * ATTN_VL, moved ? vfma(l, alpha[v], sum[v]) : l + sum[v]);
        vstore(mrow + v * ATTN_VL, m_new[v]);
    }
    return moved;
}

/* Dropout on Pᵀ for keys [j0, j1) of rows [r0, r0 + rows): after the row sum took the undropped
 * weights, as the softmax-then-dropout order of every reference requires. */
static void fused_dropout(const fused_item_ctx *x, int64_t r0, int64_t rows, int64_t j0, int64_t j1) {
    for (int64_t l = 0; l < rows; l++) {
        const uint64_t counter = attn_dropout_counter(x->pr, x->b, x->h, r0 + l);
        for (int64_t j = j0; j < j1; j++) {
            float *s = x->st + (j - j0) * QT + l;
            *s = attn_dropout(x->pr, counter + (uint64_t)j, *s);
        }
    }
}

/* Pᵀ as bf16 pair words, in place: word row t from rows 2t and 2t + 1 of the nk rows of Sᵀ (a zero
 * half when 2t + 1 = nk). Row t is written after rows 2t and 2t + 1 were read, and nothing later
 * reads a row below 2t + 2. */
ATTN_INLINE void fused_pair_weights(float *st, int64_t nk, const int NV) {
    for (int64_t t = 0; t < fused_words(nk); t++)
        for (int v = 0; v < NV; v++) {
            const vf lo = vload(st + 2 * t * QT + v * ATTN_VL);
            const vf hi = 2 * t + 1 < nk ? vload(st + (2 * t + 1) * QT + v * ATTN_VL) : vsplat(0.0f);
            vstore(st + t * QT + v * ATTN_VL, vbf16_pairs(lo, hi));
        }
}

/* Oᵀ rows [0, n) of one panel of output columns, at ot: alpha·Oᵀ (when rescale) + pt · panel vp
 * over nk keys (pairs: nk / 2 words, then the lone last key of an odd nk with the other half of
 * its V word masked off). */
ATTN_INLINE void fused_accumulate_panel(float *ot, const float *pt, const float *vp, int64_t nk, int n, int rescale,
                                        const vf alpha[ATTN_Q_VECS], const int pairs, const int NV) {
    vf acc[ATTN_Q_VECS][ATTN_NK];
    for (int c = 0; c < ATTN_NK; c++)
        for (int v = 0; v < NV; v++) {
            vf o = c < n ? vload(ot + c * QT + v * ATTN_VL) : vsplat(0.0f);
            acc[v][c] = rescale ? o * alpha[v] : o;
        }
    outer_tile(acc, pt, vp, pairs ? nk / 2 : nk, pairs, NV);
    if (pairs && (nk & 1)) {
        const float *a = pt + nk / 2 * QT, *b = vp + nk / 2 * ATTN_NK;
        for (int c = 0; c < ATTN_NK; c++) {
            const vf bc = vsplat(attn_bits_f32(attn_f32_bits(b[c]) & 0xffff));
            for (int v = 0; v < NV; v++) acc[v][c] = vdot_bf16(acc[v][c], vload(a + v * ATTN_VL), bc);
        }
    }
    for (int c = 0; c < n; c++)
        for (int v = 0; v < NV; v++) vstore(ot + c * QT + v * ATTN_VL, acc[v][c]);
}

/* Oᵀ (dim_v, QT) of micro-tile u = alpha·Oᵀ (when rescale) + Pᵀ-weighted sum of V rows [j0, j1)
 * of the packed block. As in fused_scores, whole panels get a constant column count. */
ATTN_INLINE void fused_accumulate(const fused_item_ctx *x, int64_t u, int64_t j0, int64_t j1, int rescale,
                                  const vf alpha[ATTN_Q_VECS], const int pairs, const int NV) {
    const int64_t dv = x->pr->p.dim_v;
    float *ot = x->ot + u * QT * dv;
    /* j0 - x->j0 is a multiple of ATTN_NK, so even: a word boundary of the packed block. */
    const float *panel = x->vp + (pairs ? (j0 - x->j0) / 2 : j0 - x->j0) * ATTN_NK;
    const int64_t stride = (pairs ? fused_words(x->nkb) : x->nkb) * ATTN_NK;
    if (pairs) fused_pair_weights(x->st, j1 - j0, NV);
    int64_t c0 = 0;
    for (; c0 + ATTN_NK <= dv; c0 += ATTN_NK, panel += stride)
        fused_accumulate_panel(ot + c0 * QT, x->st, panel, j1 - j0, ATTN_NK, rescale, alpha, pairs, NV);
    if (c0 < dv)
        fused_accumulate_panel(ot + c0 * QT, x->st, panel, j1 - j0, (int)(dv - c0), rescale, alpha, pairs, NV);
}

/* Qᵀ of micro-tile u from float32 q, scaled, zero past the last row: ATTN_VL rows by ATTN_VL
 * features at a time, transposed in registers (one store per vector where the row-by-row loop
 * stored every element alone: 5 % of the time at L = 256, D = 64). */
static void fused_load_floats(const fused_item_ctx *x, int64_t u) {
    const attn_params *p = &x->pr->p;
    const int64_t dq = p->dim_qk, full = dq / ATTN_VL * ATTN_VL;
    const float qscale = fused_qscale(p);
    const float *q = (const float *)p->q + x->b * p->q_stride[0] + x->h * p->q_stride[1];
    float *qt = x->qt + u * QT * dq;
    for (int v = 0; v < ATTN_Q_VECS; v++) {
        const float *rows[ATTN_VL];
        for (int l = 0; l < ATTN_VL; l++) {
            const int64_t i = x->i0 + u * QT + v * ATTN_VL + l;
            rows[l] = i < p->len_q ? q + i * p->q_stride[2] : NULL;
        }
        for (int64_t d = 0; d < full; d += ATTN_VL) {
            vf r[ATTN_VL];
            for (int l = 0; l < ATTN_VL; l++) r[l] = rows[l] ? vload(rows[l] + d) * qscale : vsplat(0.0f);
            vtranspose_rows(r, ATTN_VL);
            for (int c = 0; c < ATTN_VL; c++) vstore(qt + (d + c) * QT + v * ATTN_VL, r[c]);
        }
        for (int64_t d = full; d < dq; d++)
            for (int l = 0; l < ATTN_VL; l++) qt[d * QT + v * ATTN_VL + l] = rows[l] ? rows[l][d] * qscale : 0.0f;
    }
}

/* Qᵀ tiles (scaled; with pairs, bf16 pair words unscaled), zero past the last row, and the running
 * state. */
ATTN_INLINE void fused_load(const fused_item_ctx *x, const int pairs) {
    const attn_params *p = &x->pr->p;
    const int64_t dq = p->dim_qk, dv = p->dim_v, words = fused_words(dq);
    const float qscale = fused_qscale(p);
    const int64_t q0 = x->b * p->q_stride[0] + x->h * p->q_stride[1];
    for (int64_t u = 0; u < x->tiles; u++) {
        float *qt = x->qt + u * QT * dq;
        if (!pairs && p->q_dtype == ATTN_DTYPE_F32)
            fused_load_floats(x, u);
        else
            for (int l = 0; l < QT; l++) {
                const int64_t i = x->i0 + u * QT + l;
                if (pairs && i < p->len_q) {
                    const uint16_t *qi = (const uint16_t *)p->q + q0 + i * p->q_stride[2];
                    for (int64_t w = 0; w < words; w++) qt[w * QT + l] = fused_word(qi, 2 * w, dq);
                } else if (i < p->len_q) {
                    const float *qi = vrow_f32(p->q, p->q_dtype, q0 + i * p->q_stride[2], dq, x->conv);
                    for (int64_t d = 0; d < dq; d++) qt[d * QT + l] = qi[d] * qscale;
                } else {
                    for (int64_t d = 0; d < dq; d++) qt[d * QT + l] = 0.0f;
                }
            }
        memset(x->ot + u * QT * dv, 0, sizeof(float) * (size_t)(QT * dv));
        for (int l = 0; l < QT; l++) {
            x->mrow[u * QT + l] = -INFINITY;
            x->lrow[u * QT + l] = 0.0f;
        }
    }
}

/* fused_store for float32 out, micro-tile u: ATTN_VL rows by ATTN_VL columns of Oᵀ at a time,
 * transposed in registers (vtranspose_rows) and stored a vector per row, each times its 1 / l. */
static void fused_store_floats(const fused_item_ctx *x, int64_t u) {
    const attn_problem *pr = x->pr;
    const attn_params *p = &pr->p;
    const int64_t dv = p->dim_v, full = dv / ATTN_VL * ATTN_VL;
    float *out = (float *)p->out + x->b * p->out_stride[0] + x->h * p->out_stride[1];
    const float *ot = x->ot + u * QT * dv;
    for (int v = 0; v < ATTN_Q_VECS && x->i0 + u * QT + v * ATTN_VL < p->len_q; v++) {
        float *rows[ATTN_VL], inv[ATTN_VL];
        for (int l = 0; l < ATTN_VL; l++) {
            const int64_t i = x->i0 + u * QT + v * ATTN_VL + l;
            const float sum = x->lrow[u * QT + v * ATTN_VL + l], m = x->mrow[u * QT + v * ATTN_VL + l];
            rows[l] = NULL;
            inv[l] = 0.0f;
            if (i < p->len_q && attn_row_finish(pr, x->b, x->h, i, p->bias ? m : m * FUSED_LN2, sum,
                                                out + i * p->out_stride[2])) {
                rows[l] = out + i * p->out_stride[2];
                inv[l] = 1.0f / sum;
            }
        }
        for (int64_t c = 0; c < full; c += ATTN_VL) {
            vf r[ATTN_VL];
            for (int k = 0; k < ATTN_VL; k++) r[k] = vload(ot + (c + k) * QT + v * ATTN_VL);
            vtranspose_rows(r, ATTN_VL);
            for (int l = 0; l < ATTN_VL; l++)
                if (rows[l]) vstore(rows[l] + c, r[l] * inv[l]);
        }
        for (int64_t c = full; c < dv; c++)
            for (int l = 0; l < ATTN_VL; l++)
                if (rows[l]) rows[l][c] = ot[c * QT + v * ATTN_VL + l] * inv[l];
    }
}

/* out rows (and lse) from Oᵀ / l; rows that saw no key, or a NaN score, are written by the finish.
 * A half-precision row is formed in floats (in conv) and rounded once. */
static void fused_store(const fused_item_ctx *x) {
    const attn_problem *pr = x->pr;
    const attn_params *p = &pr->p;
    const int64_t dv = p->dim_v;
    const int64_t out0 = x->b * p->out_stride[0] + x->h * p->out_stride[1];
    for (int64_t u = 0; u < x->tiles; u++) {
        const float *ot = x->ot + u * QT * dv;
        if (p->out_dtype == ATTN_DTYPE_F32) {
            fused_store_floats(x, u);
            continue;
        }
        for (int l = 0; l < QT; l++) {
            const int64_t i = x->i0 + u * QT + l;
            if (i >= p->len_q) break;
            void *dst = (void *)attn_element(p->out, p->out_dtype, out0 + i * p->out_stride[2]);
            float *oi = x->conv;
            const float sum = x->lrow[u * QT + l], m = x->mrow[u * QT + l];
            if (attn_row_finish(pr, x->b, x->h, i, p->bias ? m : m * FUSED_LN2, sum, oi)) {
                const float inv = 1.0f / sum;
                for (int64_t c = 0; c < dv; c++) oi[c] = ot[c * QT + l] * inv;
            }
            vconvert_row(dst, p->out_dtype, oi, ATTN_DTYPE_F32, dv);
        }
    }
}

/* Keys [a, z) of the packed block for micro-tile u (rows [r0, r0 + rows)), computed on its first NV
 * vectors of rows (those holding rows; the rest are padding): scores, masks where needed (range:
 * the block crosses some row's visible range), the online softmax, dropout, and O += P·V. */
ATTN_INLINE void fused_tile_block(fused_item_ctx *x, int64_t u, int64_t r0, int64_t rows, int64_t a, int64_t z,
                                  int range, const int pairs, const int NV) {
    const attn_problem *pr = x->pr;
    const int masked = range || pr->p.bias || pr->p.mask;
    vf alpha[ATTN_Q_VECS] = {0}, bmax[ATTN_Q_VECS];
    fused_scores(x, u, a, z, bmax, pairs, NV);
    if (masked) fused_mask(x, r0, rows, a, z, range);
    const int rescale = fused_softmax(x, u, z - a, masked ? NULL : bmax, alpha, NV);
    if (pr->dropout_threshold) fused_dropout(x, r0, rows, a, z);
    fused_accumulate(x, u, a, z, rescale, alpha, pairs, NV);
}

/* A block that crosses some row's visible range (the causal diagonal, a window's edge, a key
 * length), one vector of rows at a time, each on only its own keys: the rows of a vector see far
 * fewer keys past the diagonal than the tile's last row (at L = 256, causal, a sixth of the tile's
 * work was above the diagonal). Each vector is a tile of its own for fused_tile_block: the
 * context's lane-indexed arrays start at its first lane. Rows and blocks are those of a fixed grid,
 * so how the work is split never depends on the thread count. */
ATTN_INLINE void fused_tile_block_by_vector(const fused_item_ctx *x, int64_t u, int64_t r0, int64_t rows, int64_t j0,
                                            int64_t j1, int nv, const int pairs) {
    const attn_problem *pr = x->pr;
    for (int v = 0; v < nv; v++) {
        const int64_t rv = r0 + v * ATTN_VL, n = rows - v * ATTN_VL < ATTN_VL ? rows - v * ATTN_VL : ATTN_VL;
        int64_t lo_first, hi_first, lo_last, hi_last;
        attn_row_range(pr, x->b, rv, &lo_first, &hi_first);
        attn_row_range(pr, x->b, rv + n - 1, &lo_last, &hi_last);
        const int64_t first = j0 > lo_first ? j0 : lo_first, z = j1 < hi_last ? j1 : hi_last;
        if (first >= z) continue;
        const int64_t a = j0 + (first - j0) / ATTN_NK * ATTN_NK;
        fused_item_ctx y = *x;
        y.qt += v * ATTN_VL;
        y.ot += v * ATTN_VL;
        y.st += v * ATTN_VL;
        y.mrow += v * ATTN_VL;
        y.lrow += v * ATTN_VL;
        fused_tile_block(&y, u, rv, n, a, z, a < lo_last || z > hi_first, pairs, 1);
    }
}

/* One work item; the entry points (kernel_table_template.h, kernels_avx512bf16.c) pass pairs as a
 * constant, so each gets its own products and packing and no per-step test. */
ATTN_INLINE void fused_item_run(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles,
                                float *workspace, const int pairs) {
    const attn_params *p = &pr->p;
    const int64_t dq = p->dim_qk, dv = p->dim_v;
    fused_item_ctx x;
    x.pr = pr;
    x.b = b;
    x.h = h;
    x.i0 = i0;
    x.tiles = (p->len_q - i0 + QT - 1) / QT;
    if (x.tiles > tiles) x.tiles = tiles;
    const int64_t hk = h / pr->group;
    x.k0 = b * p->k_stride[0] + hk * p->k_stride[1];
    x.v0 = b * p->v_stride[0] + hk * p->v_stride[1];
    x.qt = workspace;
    x.ot = x.qt + tiles * QT * dq;
    x.st = x.ot + tiles * QT * dv;
    x.mrow = x.st + FUSED_KEY_BLOCK * QT;
    x.lrow = x.mrow + tiles * QT;
    x.kp = x.lrow + tiles * QT;
    x.vp = x.kp + FUSED_KEY_BLOCK * dq;
    x.conv = x.vp + FUSED_KEY_BLOCK * fused_dv_panels(p);
    fused_load(&x, pairs);

    /* Visible ranges are monotone in the row, so a tile's keys span [lo(first), hi(last)) and every
     * row of it sees all of [lo(last), hi(first)) (before mask and bias). */
    int64_t tile_lo[FUSED_MAX_TILES], tile_hi[FUSED_MAX_TILES], full_lo[FUSED_MAX_TILES], full_hi[FUSED_MAX_TILES];
    int64_t item_lo = p->len_k, item_hi = 0;
    for (int64_t u = 0; u < x.tiles; u++) {
        const int64_t first = i0 + u * QT;
        const int64_t last = (first + QT < p->len_q ? first + QT : p->len_q) - 1;
        attn_row_range(pr, b, first, &tile_lo[u], &full_hi[u]);
        attn_row_range(pr, b, last, &full_lo[u], &tile_hi[u]);
        if (tile_lo[u] < item_lo) item_lo = tile_lo[u];
        if (tile_hi[u] > item_hi) item_hi = tile_hi[u];
    }
    /* Key blocks lie on a grid of FUSED_KEY_BLOCK from key 0, whatever tiles share the item: each
     * tile's keys then fall into the same blocks, in the same order, however fused.c groups tiles
     * into items, so the grouping (which depends on the thread count) never changes a result. */
    item_lo = item_lo / FUSED_KEY_BLOCK * FUSED_KEY_BLOCK;

    for (int64_t j0 = item_lo; j0 < item_hi; j0 += FUSED_KEY_BLOCK) {
        const int64_t j1 = j0 + FUSED_KEY_BLOCK < item_hi ? j0 + FUSED_KEY_BLOCK : item_hi;
        if (pairs)
            fused_pack_pairs(&x, j0, j1 - j0);
        else
            fused_pack_floats(&x, j0, j1 - j0);
        for (int64_t u = 0; u < x.tiles; u++) {
            /* Clamp the block to this tile's keys: blocks past the diagonal or outside the window
             * cost nothing, and the diagonal block is computed at its exact width. The start is
             * rounded down to a panel boundary; the few keys that adds are masked by the range. */
            const int64_t first = j0 > tile_lo[u] ? j0 : tile_lo[u];
            const int64_t z = j1 < tile_hi[u] ? j1 : tile_hi[u];
            if (first >= z) continue;
            const int64_t a = j0 + (first - j0) / ATTN_NK * ATTN_NK;
            const int64_t r0 = i0 + u * QT;
            const int64_t rows = p->len_q - r0 < QT ? p->len_q - r0 : QT;
            const int range = a < full_lo[u] || z > full_hi[u];
            /* The last tile computes only the vectors that hold rows: at L = 256 its 16 rows in a
             * 48-row tile were a ninth of all the work. Lanes are independent, so this never
             * changes a row's result. */
            const int nv = (int)((rows + ATTN_VL - 1) / ATTN_VL);
            if (FUSED_DIAGONAL_BY_VECTOR && range && nv > 1)
                fused_tile_block_by_vector(&x, u, r0, rows, j0, j1, nv, pairs);
            else if (nv == 1)
                fused_tile_block(&x, u, r0, rows, a, z, range, pairs, 1);
            else if (nv == 2 && ATTN_Q_VECS > 2)
                fused_tile_block(&x, u, r0, rows, a, z, range, pairs, 2);
            else
                fused_tile_block(&x, u, r0, rows, a, z, range, pairs, ATTN_Q_VECS);
        }
    }
    fused_store(&x);
}

#undef QT
