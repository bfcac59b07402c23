/*
 * fused_kernel.h: the fused attention kernel, compiled once per ISA through kernel_table.h.
 *
 * Layout idea: lanes are queries. A micro-tile holds QT = ATTN_Q_VECS x ATTN_VL query rows, and
 * every per-row quantity (score, running maximum, running sum, output column) is a vector whose
 * lanes are those rows. Then
 *   - scores  Sᵀ[j][lanes]  += K[j][d]  * Qᵀ[d][lanes]   (K read in place, one broadcast per element)
 *   - output  Oᵀ[c][lanes]  += V[j][c]  * Pᵀ[j][lanes]   (V read in place, one broadcast per element)
 * are the same register-blocked outer product (outer_tile), the online softmax is purely
 * lane-wise (no horizontal reductions, ever), and neither K nor V is ever transposed or packed:
 * only Q is transposed (once per work item, with the scale folded in) and Oᵀ once at the end.
 *
 * A work item is FUSED_TILES micro-tiles of one (batch, head). It walks the keys in blocks of
 * FUSED_KEY_BLOCK; each block of K and V is used by all its micro-tiles while it is in L1/L2.
 * Scores stay in natural units (so a bias of -FLT_MAX, the Equinox/Flax mask value, stays finite,
 * exactly as on the unfused path); exp(x) is taken as exp2(x·log2 e), one multiply per score.
 * Per micro-tile and key block:
 *   1. Sᵀ = Qᵀ·Kᵀ over only the keys this tile can see (causal, window and key length bound the
 *      block; blocks outside every row's range are never touched), then element-wise masks only
 *      where needed: the range test on boundary blocks, the bool mask and bias when given;
 *   2. block maximum; if any row's maximum moved, alpha = exp2(m_old - m_new) rescales l and O
 *      (folded into loading O); otherwise nothing is rescaled;
 *   3. P = exp2(S - m), l += P (before dropout), dropout on P, O += P·V.
 * At the end O is divided by l once, transposed into out, and lse = m + ln l.
 */

#define QT (ATTN_VL * ATTN_Q_VECS) /* queries per micro-tile */
/* Tiling, measured on Zen3 (AVX2) at L = 1024-4096, D = 64-128, one thread: 8 micro-tiles of
 * queries share each block of 128 keys, so every K/V block brought in from L3 serves 192 queries
 * (8 x 24) from L2; 4 x 64 ran at 57-59 GFLOP/s, 8 x 128 at 65-70, 12-16 x 128-256 no better.
 * Both can be overridden at build time (-DFUSED_TILES=..., -DFUSED_KEY_BLOCK=...) for tuning. */
#ifndef FUSED_TILES
#define FUSED_TILES 8       /* micro-tiles per work item, sharing each K/V block */
#endif
#ifndef FUSED_KEY_BLOCK
#define FUSED_KEY_BLOCK 128 /* keys per block; a multiple of every ISA's ATTN_NK */
#endif

static const float FUSED_LOG2E = 1.44269504088896340736f;

static int64_t fused_tile_queries(void) { return (int64_t)QT * FUSED_TILES; }

/* Per-thread workspace, in floats: Qᵀ and Oᵀ for each micro-tile, one score tile, and the running
 * maximum and sum of each micro-tile's rows. */
static int64_t fused_workspace_floats(const attn_problem *pr) {
    return (int64_t)FUSED_TILES * QT * (pr->p.dim_qk + pr->p.dim_v) /* Qᵀ, Oᵀ */
         + (int64_t)FUSED_KEY_BLOCK * QT                            /* Sᵀ / Pᵀ */
         + 2 * (int64_t)FUSED_TILES * QT;                           /* m, l */
}

/*
 * acc[v][c] (+)= sum over t < nt of a[t*QT + v*VL + lane] * b[c][t*b_step]
 * a is a (nt, QT) tile in the workspace; b[c] are ATTN_NK row pointers into K or V (the caller
 * repeats the last valid pointer for a partial tile, whose results it then ignores).
 */
ATTN_INLINE void outer_tile(vf acc[ATTN_Q_VECS][ATTN_NK], const float *a, const float *const b[ATTN_NK],
                            int64_t b_step, int64_t nt) {
    int64_t off = 0;
    for (int64_t t = 0; t < nt; t++, a += QT, off += b_step) {
        vf av[ATTN_Q_VECS];
#pragma GCC unroll 4
        for (int v = 0; v < ATTN_Q_VECS; v++) av[v] = vload(a + v * ATTN_VL);
#pragma GCC unroll 16
        for (int c = 0; c < ATTN_NK; c++) {
            vf bc = vsplat(b[c][off]);
#pragma GCC unroll 4
            for (int v = 0; v < ATTN_Q_VECS; v++) acc[v][c] = vfma(av[v], bc, acc[v][c]);
        }
    }
}

/* The state of one work item, shared by its steps. */
typedef struct fused_item_ctx {
    const attn_problem *pr;
    int64_t b, h, i0;      /* batch, query head, first query row of the item */
    int64_t tiles;         /* micro-tiles actually holding rows (<= FUSED_TILES) */
    const float *k, *v;    /* this (b, h)'s K and V heads */
    float *qt, *ot, *st, *mrow, *lrow;
} fused_item_ctx;

/* Sᵀ[j - j0][lanes] for keys [j0, j1) of micro-tile u: the scaled scores. */
static void fused_scores(const fused_item_ctx *x, int64_t u, int64_t j0, int64_t j1) {
    const attn_params *p = &x->pr->p;
    const float *qt = x->qt + u * QT * p->dim_qk;
    const int64_t ks = p->k_stride[2];
    for (int64_t j = j0; j < j1; j += ATTN_NK) {
        const int64_t n = j1 - j < ATTN_NK ? j1 - j : ATTN_NK;
        const float *rows[ATTN_NK];
        for (int c = 0; c < ATTN_NK; c++) rows[c] = x->k + (j + (c < n ? c : n - 1)) * ks;
        vf acc[ATTN_Q_VECS][ATTN_NK];
        for (int v = 0; v < ATTN_Q_VECS; v++)
            for (int c = 0; c < ATTN_NK; c++) acc[v][c] = vsplat(0.0f);
        outer_tile(acc, qt, rows, 1, p->dim_qk);
        float *s = x->st + (j - j0) * QT;
        for (int c = 0; c < n; c++)
            for (int v = 0; v < ATTN_Q_VECS; v++) vstore(s + c * QT + v * ATTN_VL, acc[v][c]);
    }
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
        vi lov[ATTN_Q_VECS], hiv[ATTN_Q_VECS];
        for (int v = 0; v < ATTN_Q_VECS; v++) {
            memcpy(&lov[v], lo + v * ATTN_VL, sizeof(vi));
            memcpy(&hiv[v], hi + v * ATTN_VL, sizeof(vi));
        }
        for (int64_t j = 0; j < j1 - j0; j++) {
            vi jv = (vi){0} + (int32_t)j;
            for (int v = 0; v < ATTN_Q_VECS; v++) {
                float *s = x->st + j * QT + v * ATTN_VL;
                vi outside = (jv < lov[v]) | (jv >= hiv[v]);
                vstore(s, vselect(outside, vsplat(neg_inf), vload(s)));
            }
        }
    }
    if (p->bias) {
        const float *bias = p->bias + x->b * p->bias_stride[0] + x->h * p->bias_stride[1] + r0 * p->bias_stride[2];
        for (int64_t l = 0; l < rows; l++) {
            const float *br = bias + l * p->bias_stride[2];
            for (int64_t j = j0; j < j1; j++) x->st[(j - j0) * QT + l] += br[j * p->bias_stride[3]];
        }
    }
    if (p->mask) {
        const uint8_t *mask = p->mask + x->b * p->mask_stride[0] + x->h * p->mask_stride[1] + r0 * p->mask_stride[2];
        for (int64_t l = 0; l < rows; l++) {
            const uint8_t *mr = mask + l * p->mask_stride[2];
            for (int64_t j = j0; j < j1; j++)
                if (!mr[j * p->mask_stride[3]]) x->st[(j - j0) * QT + l] = neg_inf;
        }
    }
}

/* Online softmax step for micro-tile u over nk scores: updates m and l, turns Sᵀ into Pᵀ in place,
 * and returns alpha (the factor O must be rescaled by) through *alpha, or 0 when no row's maximum
 * moved, in which case O is left as it is. */
static int fused_softmax(const fused_item_ctx *x, int64_t u, int64_t nk, vf alpha[ATTN_Q_VECS]) {
    float *mrow = x->mrow + u * QT, *lrow = x->lrow + u * QT;
    vf m_old[ATTN_Q_VECS], m_new[ATTN_Q_VECS], m_use[ATTN_Q_VECS], sum[ATTN_Q_VECS];
    for (int v = 0; v < ATTN_Q_VECS; v++) m_new[v] = m_old[v] = vload(mrow + v * ATTN_VL);
    for (int64_t j = 0; j < nk; j++)
        for (int v = 0; v < ATTN_Q_VECS; v++) m_new[v] = vmax(m_new[v], vload(x->st + j * QT + v * ATTN_VL));
    int moved = 0;
    for (int v = 0; v < ATTN_Q_VECS; v++) {
        moved |= vany(m_new[v] != m_old[v]);
        /* A row with nothing visible yet keeps m = -inf; exponents then use 0 so exp2(-inf - 0) = 0
         * instead of exp2(-inf + inf) = NaN. */
        m_use[v] = vselect(m_new[v] == vsplat(-INFINITY), vsplat(0.0f), m_new[v]);
        sum[v] = vsplat(0.0f);
    }
    for (int64_t j = 0; j < nk; j++)
        for (int v = 0; v < ATTN_Q_VECS; v++) {
            float *s = x->st + j * QT + v * ATTN_VL;
            vf e = vexp2((vload(s) - m_use[v]) * FUSED_LOG2E);
            sum[v] += e;
            vstore(s, e);
        }
    for (int v = 0; v < ATTN_Q_VECS; v++) {
        vf l = vload(lrow + v * ATTN_VL);
        if (moved) {
            alpha[v] = vexp2((m_old[v] - m_use[v]) * FUSED_LOG2E);
            l *= alpha[v];
        }
        vstore(lrow + v * ATTN_VL, l + sum[v]);
        vstore(mrow + v * ATTN_VL, m_new[v]);
    }
    return moved;
}

/* Dropout on Pᵀ for keys [j0, j1) of rows [r0, r0 + rows): after the row sum took the undropped
 * weights, as the softmax-then-dropout order of every reference requires. */
static void fused_dropout(const fused_item_ctx *x, int64_t r0, int64_t rows, int64_t j0, int64_t j1) {
    const attn_problem *pr = x->pr;
    const attn_params *p = &pr->p;
    for (int64_t l = 0; l < rows; l++) {
        const uint64_t base = p->dropout_offset +
            (uint64_t)((x->b * p->heads_q + x->h) * p->len_q + r0 + l) * (uint64_t)p->len_k;
        for (int64_t j = j0; j < j1; j++) {
            float *s = x->st + (j - j0) * QT + l;
            *s = attn_dropout_bits(p->dropout_seed, base + (uint64_t)j) >= pr->dropout_threshold ? *s * pr->dropout_scale : 0.0f;
        }
    }
}

/* Oᵀ (dim_v, QT) of micro-tile u = alpha·Oᵀ (when rescale) + Pᵀ-weighted sum of V rows [j0, j1). */
static void fused_accumulate(const fused_item_ctx *x, int64_t u, int64_t j0, int64_t j1, int rescale,
                             const vf alpha[ATTN_Q_VECS]) {
    const attn_params *p = &x->pr->p;
    const int64_t dv = p->dim_v, vs = p->v_stride[2];
    float *ot = x->ot + u * QT * dv;
    const float *vrow = x->v + j0 * vs;
    for (int64_t c0 = 0; c0 < dv; c0 += ATTN_NK) {
        const int64_t n = dv - c0 < ATTN_NK ? dv - c0 : ATTN_NK;
        const float *cols[ATTN_NK];
        for (int c = 0; c < ATTN_NK; c++) cols[c] = vrow + c0 + (c < n ? c : n - 1);
        vf acc[ATTN_Q_VECS][ATTN_NK];
        for (int c = 0; c < ATTN_NK; c++)
            for (int v = 0; v < ATTN_Q_VECS; v++) {
                vf o = c < n ? vload(ot + (c0 + c) * QT + v * ATTN_VL) : vsplat(0.0f);
                acc[v][c] = rescale ? o * alpha[v] : o;
            }
        outer_tile(acc, x->st, cols, vs, j1 - j0);
        for (int c = 0; c < n; c++)
            for (int v = 0; v < ATTN_Q_VECS; v++) vstore(ot + (c0 + c) * QT + v * ATTN_VL, acc[v][c]);
    }
}

/* Qᵀ tiles (scaled, zero past the last row) and the running state. */
static void fused_load(const fused_item_ctx *x) {
    const attn_params *p = &x->pr->p;
    const int64_t dq = p->dim_qk, dv = p->dim_v;
    const float qscale = p->scale;
    const float *q = p->q + x->b * p->q_stride[0] + x->h * p->q_stride[1];
    for (int64_t u = 0; u < x->tiles; u++) {
        float *qt = x->qt + u * QT * dq;
        for (int l = 0; l < QT; l++) {
            const int64_t i = x->i0 + u * QT + l;
            const float *qi = q + i * p->q_stride[2];
            if (i < p->len_q)
                for (int64_t d = 0; d < dq; d++) qt[d * QT + l] = qi[d] * qscale;
            else
                for (int64_t d = 0; d < dq; d++) qt[d * QT + l] = 0.0f;
        }
        memset(x->ot + u * QT * dv, 0, sizeof(float) * (size_t)(QT * dv));
        for (int l = 0; l < QT; l++) {
            x->mrow[u * QT + l] = -INFINITY;
            x->lrow[u * QT + l] = 0.0f;
        }
    }
}

/* out rows (and lse) from Oᵀ / l; rows that saw no key get the masked-row policy. */
static void fused_store(const fused_item_ctx *x) {
    const attn_problem *pr = x->pr;
    const attn_params *p = &pr->p;
    const int64_t dv = p->dim_v;
    float *out = p->out + x->b * p->out_stride[0] + x->h * p->out_stride[1];
    for (int64_t u = 0; u < x->tiles; u++) {
        const float *ot = x->ot + u * QT * dv;
        for (int l = 0; l < QT; l++) {
            const int64_t i = x->i0 + u * QT + l;
            if (i >= p->len_q) break;
            float *oi = out + i * p->out_stride[2];
            const float sum = x->lrow[u * QT + l], m = x->mrow[u * QT + l];
            if (sum == 0.0f) {
                attn_masked_row_fill(pr, x->b, x->h, i, oi);
            } else {
                const float inv = 1.0f / sum;
                for (int64_t c = 0; c < dv; c++) oi[c] = ot[c * QT + l] * inv;
            }
            if (p->lse) {
                float *lse = p->lse + (x->b * p->heads_q + x->h) * p->len_q + i;
                *lse = sum == 0.0f ? -INFINITY : m + logf(sum);
            }
        }
    }
}

static void fused_item(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, float *workspace) {
    const attn_params *p = &pr->p;
    const int64_t dq = p->dim_qk, dv = p->dim_v;
    fused_item_ctx x;
    x.pr = pr;
    x.b = b;
    x.h = h;
    x.i0 = i0;
    x.tiles = (p->len_q - i0 + QT - 1) / QT;
    if (x.tiles > FUSED_TILES) x.tiles = FUSED_TILES;
    const int64_t hk = h / pr->group;
    x.k = p->k + b * p->k_stride[0] + hk * p->k_stride[1];
    x.v = p->v + b * p->v_stride[0] + hk * p->v_stride[1];
    x.qt = workspace;
    x.ot = x.qt + FUSED_TILES * QT * dq;
    x.st = x.ot + FUSED_TILES * QT * dv;
    x.mrow = x.st + FUSED_KEY_BLOCK * QT;
    x.lrow = x.mrow + FUSED_TILES * QT;
    fused_load(&x);

    /* Visible ranges are monotone in the row, so a tile's keys span [lo(first), hi(last)) and every
     * row of it sees all of [lo(last), hi(first)) (before mask and bias). */
    int64_t tile_lo[FUSED_TILES], tile_hi[FUSED_TILES], full_lo[FUSED_TILES], full_hi[FUSED_TILES];
    int64_t item_lo = p->len_k, item_hi = 0;
    for (int64_t u = 0; u < x.tiles; u++) {
        const int64_t first = i0 + u * QT;
        const int64_t last = (first + QT < p->len_q ? first + QT : p->len_q) - 1;
        attn_row_range(pr, b, first, &tile_lo[u], &full_hi[u]);
        attn_row_range(pr, b, last, &full_lo[u], &tile_hi[u]);
        if (tile_lo[u] < item_lo) item_lo = tile_lo[u];
        if (tile_hi[u] > item_hi) item_hi = tile_hi[u];
    }

    vf alpha[ATTN_Q_VECS] = {0};
    for (int64_t j0 = item_lo; j0 < item_hi; j0 += FUSED_KEY_BLOCK) {
        const int64_t j1 = j0 + FUSED_KEY_BLOCK < item_hi ? j0 + FUSED_KEY_BLOCK : item_hi;
        for (int64_t u = 0; u < x.tiles; u++) {
            /* Clamp the block to this tile's keys: blocks past the diagonal or outside the window
             * cost nothing, and the diagonal block is computed at its exact width. */
            const int64_t a = j0 > tile_lo[u] ? j0 : tile_lo[u];
            const int64_t z = j1 < tile_hi[u] ? j1 : tile_hi[u];
            if (a >= z) continue;
            const int64_t r0 = i0 + u * QT;
            const int64_t rows = p->len_q - r0 < QT ? p->len_q - r0 : QT;
            const int range = a < full_lo[u] || z > full_hi[u];
            fused_scores(&x, u, a, z);
            if (range || p->bias || p->mask) fused_mask(&x, r0, rows, a, z, range);
            const int rescale = fused_softmax(&x, u, z - a, alpha);
            if (pr->dropout_threshold) fused_dropout(&x, r0, rows, a, z);
            fused_accumulate(&x, u, a, z, rescale, alpha);
        }
    }
    fused_store(&x);
}

#undef QT
