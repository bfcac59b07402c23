/*
 * sgemm_template.h: the single-threaded packed matrix multiply, a template included once per ISA by
 * kernel_table_template.h (after simd_template.h, with ATTN_VL defined). It defines sgemm_block (see sgemm.h):
 *
 *   C (m, n) = A (m, k) · B (k, n) (+ bias)   or   C += A·B (+ bias)
 *
 * Goto/BLIS blocking. For each block of NC columns and KC depth, B is packed into micro-panels of
 * NR columns (KC x NR each, read by the micro-kernel from L1); for each block of MC rows, A is packed
 * into micro-panels of MR rows (MC x KC in all, kept in L2). The micro-kernel holds an MR x NR tile of
 * C in registers and runs over KC with one broadcast of A and NR/ATTN_VL vector loads of B per step.
 *
 * With bf16 products (SGEMM_PAIRS, sgemm.h) the same loops run on pair words: A rounded to bf16
 * and B's bf16 elements packed two depth steps to a 32-bit lane, each micro-kernel step one
 * vdot_bf16 (VDPBF16PS, or its model) instead of one multiply-add, for twice the depth per step.
 *
 * Edges cost no special arithmetic: packing pads short panels with zeros, every tile runs the same
 * full micro-kernel and only the store is clipped. So each element of C gets exactly the same
 * operations whether it sits in a full or an edge tile, and its sum order depends only on the KC
 * blocking of k: the result is bitwise the same however attn_matmul splits C among threads.
 */
#include "sgemm.h"

/*
 * Register blocking: an MR x NR tile of C, NR = SGEMM_NV vectors, lives in registers; and cache
 * blocking, for a core with 32 KB of L1d and 512 KB or more of L2 (Zen3: 512 KB). A KC x NR panel of
 * B (16 KB with AVX2) stays in L1 while the micro-kernel streams the MR x KC panels of the MC x KC
 * block of A (144 KB with AVX2) out of L2; the KC x NC block of B (1 MB) comes from L3, each NR-wide
 * panel reused by all MC / MR panels of A. KC also fixes every sum's order (see above).
 */
#if ATTN_VL == 16
/* AVX-512, 32 zmm: 12 x 2 accumulators + 2 B vectors + 1 broadcast = 27. */
#define SGEMM_MR 12
#define SGEMM_NV 2
#define SGEMM_MC 288 /* 288 KB of A: AVX-512 cores have 1 MB or more of L2 */
#elif ATTN_VL == 8
/* AVX2, 16 ymm: 6 x 2 accumulators + 2 B vectors + 1 broadcast = 15. */
#define SGEMM_MR 6
#define SGEMM_NV 2
#define SGEMM_MC 144
#else
/* 4-float vectors, 16 xmm on SSE2 (no FMA: one more register for the product): 4 x 2 + 2 + 1 + 1.
 * Measured on Zen3: 4 x 8 runs at the SSE2 peak; 6 x 8, 4 x 12 and 8 x 4 are slower. */
#define SGEMM_MR 4
#define SGEMM_NV 2
#define SGEMM_MC 144
#endif
#define SGEMM_NR (SGEMM_NV * ATTN_VL)
#define SGEMM_KC 256
#define SGEMM_NC 1024

_Static_assert(SGEMM_MC % SGEMM_MR == 0 && SGEMM_NC % SGEMM_NR == 0, "blocks hold whole micro-panels");
_Static_assert(SGEMM_MC * SGEMM_KC <= ATTN_SGEMM_PACK_A_FLOATS && SGEMM_KC * SGEMM_NC <= ATTN_SGEMM_PACK_B_FLOATS,
               "packed A and B blocks fit the workspace");

static inline int64_t sgemm_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* Element i of B (type t) as a float. */
ATTN_INLINE float sgemm_load(const void *b, attn_dtype t, int64_t i) {
    if (t == ATTN_DTYPE_F16) return attn_f16_to_f32(((const uint16_t *)b)[i]);
    if (t == ATTN_DTYPE_BF16) return attn_bf16_to_f32(((const uint16_t *)b)[i]);
    return ((const float *)b)[i];
}

/* MR rounded up to a power of two: the rows a vector transpose handles at once. */
#define SGEMM_MR_POW2 (SGEMM_MR <= 4 ? 4 : SGEMM_MR <= 8 ? 8 : 16)
_Static_assert(SGEMM_MR == SGEMM_MR_POW2 || SGEMM_MR_POW2 == ATTN_VL,
               "a padded transpose leaves one depth step per vector");

/* Depth steps of a packed block of kc depth: kc floats, or pair words. */
ATTN_INLINE int64_t sgemm_steps(int64_t kc, sgemm_form form) { return form == SGEMM_PAIRS ? (kc + 1) / 2 : kc; }

/* Element p of an A row as packed by form: as is, rounded to bf16, or (pairs) the pair word of
 * elements p and p + 1 (zero past kc). */
ATTN_INLINE float sgemm_a_scalar(const float *row, int64_t p, int64_t kc, sgemm_form form) {
    if (form == SGEMM_F32) return row[p];
    if (form == SGEMM_ROUNDED_A) return attn_bf16_to_f32(attn_f32_to_bf16(row[p]));
    const uint32_t word = attn_f32_to_bf16(row[p]) | (p + 1 < kc ? (uint32_t)attn_f32_to_bf16(row[p + 1]) << 16 : 0);
    float f;
    memcpy(&f, &word, sizeof f);
    return f;
}

/* Packs A rows [0, mc) x depth [0, kc) into micro-panels of MR rows, each of steps =
 * sgemm_steps(kc, form) depth steps (floats, or pair words): panel i holds
 * dst[i*MR*steps + t*MR + r] = step t of row i*MR + r (sgemm_a_scalar), zero rows past mc. Full
 * panels go ATTN_VL steps at a time: the MR row vectors (padded with zero rows to a power of two)
 * are transposed (vtranspose_rows) into vectors holding the rows of one or more steps, stored in
 * order. When MR is not a power of two each store also writes SGEMM_MR_POW2 - MR padding floats
 * past its step, which the next store (or the next panel, or the workspace's slack) overwrites. */
ATTN_INLINE void sgemm_pack_a(float *restrict dst, const float *restrict a, int64_t lda, int64_t mc, int64_t kc,
                              sgemm_form form) {
    const int64_t steps = sgemm_steps(kc, form), per = form == SGEMM_PAIRS ? 2 : 1; /* depth per step */
    for (int64_t i0 = 0; i0 < mc; i0 += SGEMM_MR) {
        const int64_t rows = sgemm_min(SGEMM_MR, mc - i0);
        const float *src = a + i0 * lda;
        int64_t t = 0;
        if (rows == SGEMM_MR) {
            for (; (t + ATTN_VL) * per <= kc; t += ATTN_VL) {
                vf r[SGEMM_MR_POW2];
                for (int i = 0; i < SGEMM_MR_POW2; i++) {
                    const float *x = src + i * lda + t * per;
                    r[i] = i >= SGEMM_MR             ? vsplat(0.0f)
                         : form == SGEMM_PAIRS       ? vbf16_pair_words(vload(x), vload(x + ATTN_VL))
                         : form == SGEMM_ROUNDED_A   ? vround_bf16(vload(x))
                                                     : vload(x);
                }
                vtranspose_rows(r, SGEMM_MR_POW2);
                /* r[v] holds steps t + v*s .. t + v*s + s - 1 (s = VL / POW2), POW2 rows each. */
                for (int v = 0; v < SGEMM_MR_POW2; v++)
                    vstore(dst + (t + v * (ATTN_VL / SGEMM_MR_POW2)) * SGEMM_MR, r[v]);
            }
        }
        for (; t < steps; t++)
            for (int r = 0; r < SGEMM_MR; r++)
                dst[t * SGEMM_MR + r] = r < rows ? sgemm_a_scalar(src + r * lda, t * per, kc, form) : 0.0f;
        dst += SGEMM_MR * steps;
    }
}

/* sgemm_pack_a from Aᵀ: step t of row r is at[t*lda + r] (pairs: the words of depths 2t and
 * 2t + 1), so each step of a panel is MR consecutive floats of one or two rows of Aᵀ, converted as
 * sgemm_a_scalar converts them: no transposition (a weight gradient's xᵀ·dy), and the same packed
 * bits as packing the transposed copy. f32 is copied straight; bf16 forms convert a step's rows a
 * vector at a time into a buffer (up to SGEMM_MC rows), then copy each panel's MR from it. */
ATTN_INLINE void sgemm_pack_a_transposed(float *restrict dst, const float *restrict at, int64_t lda, int64_t mc,
                                         int64_t kc, sgemm_form form) {
    const int64_t steps = sgemm_steps(kc, form);
    if (form == SGEMM_F32) {
        for (int64_t i0 = 0; i0 < mc; i0 += SGEMM_MR, dst += SGEMM_MR * kc) {
            const int64_t rows = sgemm_min(SGEMM_MR, mc - i0);
            for (int64_t t = 0; t < kc; t++)
                for (int r = 0; r < SGEMM_MR; r++) dst[t * SGEMM_MR + r] = r < rows ? at[t * lda + i0 + r] : 0.0f;
        }
        return;
    }
    float words[SGEMM_MC];
    for (int64_t c0 = 0; c0 < mc; c0 += SGEMM_MC) { /* SGEMM_MC is a multiple of MR: whole panels */
        const int64_t n = sgemm_min(SGEMM_MC, mc - c0);
        float *chunk = dst + (c0 / SGEMM_MR) * SGEMM_MR * steps;
        for (int64_t t = 0; t < steps; t++) {
            const float *lo = at + (form == SGEMM_PAIRS ? 2 * t : t) * lda + c0;
            const float *hi = form == SGEMM_PAIRS && 2 * t + 1 < kc ? lo + lda : NULL;
            int64_t j = 0;
            for (; j + ATTN_VL <= n; j += ATTN_VL) {
                const vf x = vload(lo + j);
                vstore(words + j, form == SGEMM_ROUNDED_A ? vround_bf16(x)
                                  : (vf)(vbf16_bits(x) | (hi ? vbf16_bits(vload(hi + j)) << 16 : (vu){0})));
            }
            for (; j < n; j++) {
                const uint32_t word = form == SGEMM_ROUNDED_A ? (uint32_t)attn_f32_to_bf16(lo[j]) << 16
                                    : attn_f32_to_bf16(lo[j]) | (hi ? (uint32_t)attn_f32_to_bf16(hi[j]) << 16 : 0);
                memcpy(words + j, &word, sizeof word);
            }
            for (int64_t i0 = 0; i0 < n; i0 += SGEMM_MR) {
                const int64_t rows = sgemm_min(SGEMM_MR, n - i0);
                float *out = chunk + (i0 / SGEMM_MR) * SGEMM_MR * steps + t * SGEMM_MR;
                memcpy(out, words + i0, (size_t)rows * sizeof(float));
                for (int64_t r = rows; r < SGEMM_MR; r++) out[r] = 0.0f;
            }
        }
    }
}

/* Packs B depth [0, kc) x columns [0, nc) into micro-panels of NR columns: panel j holds
 * dst[j*NR*kc + p*NR + c] = B(p, j*NR + c) as float32, zero columns past nc. B(p, c) is element
 * p*ldb + c of b (elements of type dt), or c*ldb + p when b holds Bᵀ. Both walk the rows of b
 * sequentially, which the hardware prefetcher follows; walking down a column panel of a row-major B
 * would touch a new line and page per step. Inlined with dt a constant (sgemm_pack_b_block), so
 * each dtype gets its own loop. */
ATTN_INLINE void sgemm_pack_b(float *restrict dst, const void *restrict b, int64_t ldb, int transposed, int64_t kc,
                              int64_t nc, attn_dtype dt) {
    const int64_t full = nc / SGEMM_NR * SGEMM_NR, tail = nc - full;
    if (!transposed) {
        for (int64_t p = 0; p < kc; p++) {
            const void *src = attn_element(b, dt, p * ldb);
            float *d = dst + p * SGEMM_NR;
            for (int64_t j0 = 0; j0 < full; j0 += SGEMM_NR, d += SGEMM_NR * kc) {
#pragma GCC unroll 4
                for (int v = 0; v < SGEMM_NV; v++) vstore(d + v * ATTN_VL, vload_full(src, j0 + v * ATTN_VL, dt));
            }
            if (tail) {
                for (int v = 0; v < SGEMM_NV; v++) {
                    const int64_t w = tail - v * ATTN_VL;
                    vstore(d + v * ATTN_VL, w > 0 ? vload_as(src, full + v * ATTN_VL, dt, (int)sgemm_min(w, ATTN_VL)) : vsplat(0.0f));
                }
            }
        }
        return;
    }
    /* Bᵀ: each column of a panel is a contiguous row of b; gather across the NR rows so the
     * panel is written sequentially (as for A). */
    for (int64_t j0 = 0; j0 < nc; j0 += SGEMM_NR, dst += SGEMM_NR * kc) {
        const int64_t cols = sgemm_min(SGEMM_NR, nc - j0);
        const void *src = attn_element(b, dt, j0 * ldb);
        if (cols == SGEMM_NR) {
            for (int64_t p = 0; p < kc; p++) {
#pragma GCC unroll 32
                for (int c = 0; c < SGEMM_NR; c++) dst[p * SGEMM_NR + c] = sgemm_load(src, dt, c * ldb + p);
            }
        } else {
            for (int64_t p = 0; p < kc; p++)
                for (int c = 0; c < SGEMM_NR; c++) dst[p * SGEMM_NR + c] = c < cols ? sgemm_load(src, dt, c * ldb + p) : 0.0f;
        }
    }
}

/* sgemm_pack_b for SGEMM_PAIRS, B bf16: panel j holds dst[j*NR*steps + t*NR + c] = the pair word of
 * B(2t, j*NR + c) (low half) and B(2t + 1, j*NR + c) (zero past kc), zero columns past nc. With Bᵀ
 * a word is 32 bits of a row of b: ATTN_VL rows at a time are read a vector of words each and
 * transposed (vtranspose_rows), so a panel is written sequentially; without, two rows of b give a
 * vector of words, the first's halves in the low halves. */
static inline void sgemm_pack_b_pairs(float *restrict dst, const uint16_t *restrict b, int64_t ldb, int transposed,
                                      int64_t kc, int64_t nc) {
    const int64_t steps = (kc + 1) / 2;
    if (!transposed) {
        for (int64_t t = 0; t < steps; t++) {
            const uint16_t *lo = b + 2 * t * ldb, *hi = 2 * t + 1 < kc ? lo + ldb : NULL;
            float *d = dst + t * SGEMM_NR;
            for (int64_t j0 = 0; j0 < nc; j0 += SGEMM_NR, d += SGEMM_NR * steps) {
                for (int v = 0; v < SGEMM_NV; v++) {
                    const int64_t j = j0 + v * ATTN_VL, w = sgemm_min(nc - j, ATTN_VL);
                    const vu l = w <= 0 ? (vu)vsplat(0.0f) : (vu)vload_as(lo, j, ATTN_DTYPE_BF16, (int)w);
                    const vu h = w <= 0 || !hi ? (vu)vsplat(0.0f) : (vu)vload_as(hi, j, ATTN_DTYPE_BF16, (int)w);
                    vstore(d + v * ATTN_VL, (vf)(l >> 16 | h));
                }
            }
        }
        return;
    }
    for (int64_t j0 = 0; j0 < nc; j0 += SGEMM_NR, dst += SGEMM_NR * steps) {
        for (int g = 0; g < SGEMM_NV; g++) {
            const int64_t c0 = j0 + g * ATTN_VL, cols = sgemm_min(ATTN_VL, nc - c0);
            float *d = dst + g * ATTN_VL;
            int64_t t = 0;
            if (cols > 0)
                for (; 2 * (t + ATTN_VL) <= kc; t += ATTN_VL) {
                    vf r[ATTN_VL];
                    for (int c = 0; c < ATTN_VL; c++)
                        if (c < cols) memcpy(&r[c], b + (c0 + c) * ldb + 2 * t, sizeof r[c]); /* 2-byte aligned */
                        else r[c] = vsplat(0.0f);
                    vtranspose_rows(r, ATTN_VL);
                    for (int v = 0; v < ATTN_VL; v++) vstore(d + (t + v) * SGEMM_NR, r[v]);
                }
            for (; t < steps; t++)
                for (int c = 0; c < ATTN_VL; c++) {
                    uint32_t word = 0;
                    if (c < cols) {
                        const uint16_t *row = b + (c0 + c) * ldb;
                        word = row[2 * t] | (2 * t + 1 < kc ? (uint32_t)row[2 * t + 1] << 16 : 0);
                    }
                    memcpy(d + t * SGEMM_NR + c, &word, sizeof word);
                }
        }
    }
}

/* x holds the sums for w <= ATTN_VL consecutive elements of a row of C: c = x (+ bias), or with
 * add_c, c += x (+ bias). Every path of the matrix multiply stores through this, so each element
 * gets the same last operations. bias points at the first of the w columns, or is NULL. */
ATTN_INLINE void sgemm_store(float *c, vf x, int w, const float *bias, int add_c) {
    if (w == ATTN_VL) {
        if (bias) x += vload(bias);
        if (add_c) x = vload(c) + x;
        vstore(c, x);
        return;
    }
    if (bias) x += vload_partial(bias, w);
    if (add_c) x = vload_partial(c, w) + x;
    vstore_partial(c, x, w);
}

/*
 * One MR x NR tile: acc = Ap (MR, steps) · Bp (steps, NR) from packed panels (with pairs, each step
 * a pair word and one vdot_bf16), then stored into the
 * mr x nr corner of c (row stride ldc) as c = acc (+ bias) or c += acc (+ bias). bias points at the
 * tile's first column, or is NULL; add_c says whether c already holds a partial sum.
 */
ATTN_INLINE void sgemm_micro(int64_t steps, const float *restrict ap, const float *restrict bp, float *restrict c,
                             int64_t ldc, int64_t mr, int64_t nr, const float *restrict bias, int add_c, const int pairs) {
    /* C's tile is needed only after the k loop: start fetching its lines now, so the store does
     * not wait on L3 or memory. */
#pragma GCC unroll 16
    for (int r = 0; r < SGEMM_MR; r++) {
        if (r < mr) {
#pragma GCC unroll 4
            for (int f = 0; f < SGEMM_NR; f += 16) __builtin_prefetch(c + r * ldc + f, 1);
            __builtin_prefetch(c + r * ldc + SGEMM_NR - 1, 1);
        }
    }
    vf acc[SGEMM_MR][SGEMM_NV];
#pragma GCC unroll 16
    for (int r = 0; r < SGEMM_MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < SGEMM_NV; v++) acc[r][v] = vsplat(0.0f);

    /* Unrolled by 4: 10-13 % faster on Zen3 (AVX2) than not unrolled, measured side by side. */
#pragma GCC unroll 4
    for (int64_t p = 0; p < steps; p++) {
        vf bv[SGEMM_NV];
#pragma GCC unroll 4
        for (int v = 0; v < SGEMM_NV; v++) bv[v] = vload(bp + v * ATTN_VL);
#pragma GCC unroll 16
        for (int r = 0; r < SGEMM_MR; r++) {
            const vf av = vsplat(ap[r]);
#pragma GCC unroll 4
            for (int v = 0; v < SGEMM_NV; v++)
                acc[r][v] = pairs ? vdot_bf16(acc[r][v], av, bv[v]) : vfma(av, bv[v], acc[r][v]);
        }
        ap += SGEMM_MR;
        bp += SGEMM_NR;
    }

    if (mr == SGEMM_MR && nr == SGEMM_NR) {
#pragma GCC unroll 16
        for (int r = 0; r < SGEMM_MR; r++) {
#pragma GCC unroll 4
            for (int v = 0; v < SGEMM_NV; v++)
                sgemm_store(c + r * ldc + v * ATTN_VL, acc[r][v], ATTN_VL, bias ? bias + v * ATTN_VL : NULL, add_c);
        }
        return;
    }
    /* Edge tile: the same sums, stored clipped to mr rows and nr columns. The loops are unrolled
     * like the ones above so that acc is only ever indexed by constants: one index known only at
     * run time puts the whole array on the stack (clang then zeroes it with memset and reloads it
     * for every tile: 1.3 % of a Llama prefill). */
#pragma GCC unroll 16
    for (int r = 0; r < SGEMM_MR; r++) {
        if (r >= mr) break;
#pragma GCC unroll 4
        for (int v = 0; v < SGEMM_NV; v++)
            if (v * ATTN_VL < nr)
                sgemm_store(c + r * ldc + v * ATTN_VL, acc[r][v], (int)sgemm_min(ATTN_VL, nr - v * ATTN_VL),
                            bias ? bias + v * ATTN_VL : NULL, add_c);
    }
}

/* Packs columns [c0, c1) (c0 a multiple of NR) of the block of B at depth [p0, p0 + kc) and columns
 * j0 into pack_b, at the place sgemm_rows reads them: threads can each pack a share of one block.
 * pairs (SGEMM_PAIRS, B bf16): as pair words. */
static inline void sgemm_pack_b_block(float *pack_b, const attn_matmul_params *args, int64_t j0, int64_t p0, int64_t kc,
                                      int64_t c0, int64_t c1, int pairs) {
    const int64_t col = j0 + c0, ldb = args->ldb, t = args->b_transposed;
    const attn_dtype dt = args->b_dtype;
    const void *b = attn_element(args->b, dt, t ? col * ldb + p0 : p0 * ldb + col);
    if (pairs) {
        sgemm_pack_b_pairs(pack_b + c0 * ((kc + 1) / 2), b, ldb, (int)t, kc, c1 - c0);
        return;
    }
    switch (dt) {
    case ATTN_DTYPE_F16: sgemm_pack_b(pack_b + c0 * kc, b, ldb, t, kc, c1 - c0, ATTN_DTYPE_F16); break;
    case ATTN_DTYPE_BF16: sgemm_pack_b(pack_b + c0 * kc, b, ldb, t, kc, c1 - c0, ATTN_DTYPE_BF16); break;
    default: sgemm_pack_b(pack_b + c0 * kc, b, ldb, t, kc, c1 - c0, ATTN_DTYPE_F32); break;
    }
}

/* C rows [i0, i0 + mc) (mc <= SGEMM_MC), columns [j0, j0 + nc), += or = A's rows at depth
 * [p0, p0 + kc) times the packed block of B (packed for the same form): packs those rows of A into
 * pack_a, then runs the micro-kernel over every NR panel (each kept in L1) and MR panel (streamed
 * from L2). Inlined with form a constant: sgemm_rows (the table's, widened or rounded A, or pairs
 * on the portable VDPBF16PS) and kernels_avx512bf16.c's pairs on the instruction. */
ATTN_INLINE void sgemm_rows_as(const attn_matmul_params *args, const float *pack_b, int64_t j0, int64_t nc, int64_t p0,
                               int64_t kc, int64_t i0, int64_t mc, float *pack_a, sgemm_form form) {
    /* The first k block writes (or adds to) C with the bias; later blocks add to it. */
    const int add_c = p0 > 0 || args->accumulate;
    const float *bias = p0 == 0 ? args->bias : NULL;
    const int64_t steps = sgemm_steps(kc, form);
    if (args->a_transposed)
        sgemm_pack_a_transposed(pack_a, args->a + p0 * args->lda + i0, args->lda, mc, kc, form);
    else
        sgemm_pack_a(pack_a, args->a + i0 * args->lda + p0, args->lda, mc, kc, form);
    for (int64_t jr = 0; jr < nc; jr += SGEMM_NR) {
        const float *bp = pack_b + jr * steps;
        const float *bias_r = bias ? bias + j0 + jr : NULL;
        for (int64_t ir = 0; ir < mc; ir += SGEMM_MR) {
            float *c = args->c + (i0 + ir) * args->ldc + j0 + jr;
            sgemm_micro(steps, pack_a + ir * steps, bp, c, args->ldc, sgemm_min(SGEMM_MR, mc - ir),
                        sgemm_min(SGEMM_NR, nc - jr), bias_r, add_c, form == SGEMM_PAIRS);
        }
    }
}

static inline void sgemm_rows(const attn_matmul_params *args, const float *pack_b, int64_t j0, int64_t nc, int64_t p0,
                              int64_t kc, int64_t i0, int64_t mc, float *pack_a, sgemm_form form) {
    switch (form) {
    case SGEMM_PAIRS: sgemm_rows_as(args, pack_b, j0, nc, p0, kc, i0, mc, pack_a, SGEMM_PAIRS); break;
    case SGEMM_ROUNDED_A: sgemm_rows_as(args, pack_b, j0, nc, p0, kc, i0, mc, pack_a, SGEMM_ROUNDED_A); break;
    default: sgemm_rows_as(args, pack_b, j0, nc, p0, kc, i0, mc, pack_a, SGEMM_F32); break;
    }
}

static inline void sgemm_block(const attn_matmul_params *args, float *workspace) {
    float *pack_a = workspace, *pack_b = workspace + ATTN_SGEMM_PACK_A_FLOATS;
    for (int64_t j0 = 0; j0 < args->n; j0 += SGEMM_NC) {
        const int64_t nc = sgemm_min(SGEMM_NC, args->n - j0);
        for (int64_t p0 = 0; p0 < args->k; p0 += SGEMM_KC) {
            const int64_t kc = sgemm_min(SGEMM_KC, args->k - p0);
            sgemm_pack_b_block(pack_b, args, j0, p0, kc, 0, nc, 0);
            for (int64_t i0 = 0; i0 < args->m; i0 += SGEMM_MC)
                sgemm_rows_as(args, pack_b, j0, nc, p0, kc, i0, sgemm_min(SGEMM_MC, args->m - i0), pack_a, SGEMM_F32);
        }
    }
}

/*
 * Few rows (M <= SGEMM_FEW_ROWS: a few short sentences, or one decoding step): C straight from B,
 * read once and in place. Packing all of B for a handful of rows costs more than the product, and
 * streaming it once is all a product this small can do: it is bound by the bytes of B. attn_matmul
 * gives each thread a share of the columns (a multiple of SGEMM_FEW_COLS).
 * Rows of A go in groups of 4, 2 and 1 (M = 7: 4 + 2 + 1), each with as many accumulators as the
 * registers hold (FEW_ACC), so M = 1 still has independent sums in flight:
 *   B stored (N, K) (b_transposed): each element is a dot product of an A row and a B row, over K
 *     in vectors, FEW_ACC / rows B rows at a time; a block of FEW_DOT_COLS B rows stays in L1 while
 *     every group of A rows passes over it.
 *   B stored (K, N): a row of C accumulates a[p] * B[p, :] over p, in vectors along N,
 *     FEW_ACC / rows vectors wide (at most FEW_AXPY_NV); a panel of B stays in L2 for every group.
 * A 16-bit B is widened in registers, so it is read at half the bytes. Each element's operations
 * depend only on its row and column, never on the grouping or the thread split.
 */
#if ATTN_VL == 16
#define FEW_ACC 16 /* accumulators: half of the 32 zmm registers */
#else
#define FEW_ACC 8 /* of 16 ymm or xmm registers */
#endif
#define FEW_DOT_COLS 8
#define FEW_AXPY_NV 4
#define SGEMM_FEW_COLS (FEW_AXPY_NV * ATTN_VL)
/* The threshold, measured on Zen 4 (AVX-512) against the packed path, K x N = 384 x 1536,
 * 1536 x 384 and 896 x 896, both layouts (Benchmarks/paired, mmk mode): this path takes 0.1-0.5 of
 * the time at M = 1-8; at M = 32, 0.66-0.85 on one thread (except Bᵀ with K = 384: 1.15) and
 * 0.43-0.72 on two. Overridable (-DSGEMM_FEW_ROWS=0 turns the path off) to time the two paths. */
#ifndef SGEMM_FEW_ROWS
#define SGEMM_FEW_ROWS 32
#endif
_Static_assert(SGEMM_FEW_COLS % FEW_DOT_COLS == 0, "column shares hold whole blocks of B rows");

#define FEW_PREFETCH_MIN_BYTES (1 << 20) /* B larger than this is prefetched (few_dot, few_axpy) */
#ifndef FEW_AXPY_AHEAD
#define FEW_AXPY_AHEAD 32 /* rows; 8, 16 and 32 measured, 32 best (paired mmk, M = 1, B (K, N), 896 x 4864 and 4864 x 896) */
#endif

static inline int few_min(int a, int b) { return a < b ? a : b; }

/* One step of the dot products of few_dot at depth p: w == ATTN_VL, or the last w (< ATTN_VL). */
ATTN_INLINE void few_dot_step(vf acc[4][FEW_DOT_COLS], const float *const *a, const void *const *b, int64_t p, int w,
                              const int MB, const int NB, attn_dtype dt, const int round_a) {
    vf av[4];
#pragma GCC unroll 4
    for (int r = 0; r < MB; r++) {
        av[r] = w == ATTN_VL ? vload(a[r] + p) : vload_partial(a[r] + p, w);
        if (round_a) av[r] = vround_bf16(av[r]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < NB; c++) {
        const vf bv = vload_as(b[c], p, dt, w);
#pragma GCC unroll 4
        for (int r = 0; r < MB; r++) acc[r][c] = vfma(av[r], bv, acc[r][c]);
    }
}

/* Rows [i, i + MB) of C at columns [j, j + nb), nb <= NB, with B stored (N, K). Columns past nb
 * repeat the last B row (computed, not stored). */
ATTN_INLINE void few_dot(const attn_matmul_params *args, int64_t i, int64_t j, int nb, const int MB, const int NB,
                         attn_dtype dt, const int round_a) {
    const float *a[4];
    const void *b[FEW_DOT_COLS];
    vf acc[4][FEW_DOT_COLS];
#pragma GCC unroll 4
    for (int r = 0; r < MB; r++) a[r] = args->a + (i + r) * args->lda;
#pragma GCC unroll 8
    for (int c = 0; c < NB; c++) b[c] = attn_element(args->b, dt, (j + few_min(c, nb - 1)) * args->ldb);
#pragma GCC unroll 4
    for (int r = 0; r < MB; r++)
#pragma GCC unroll 8
        for (int c = 0; c < NB; c++) acc[r][c] = vsplat(0.0f);
    /* When B is larger than a core's L2 (so it comes from memory), the first group of A rows asks
     * the next block's B rows into L2 as it goes, a line per row per 64 bytes of depth: more lines
     * in flight than the hardware prefetcher keeps, which one core needs to approach the memory
     * bandwidth. Measured (paired mmk, M = 1, 1 thread, Zen 4): K x N = 896 x 4864, 4864 x 896,
     * 896 x 32000: f32 1.1-1.3x, f16/bf16 1.3-2x faster; with B in L2 (896 x 128) 0.8x, hence
     * the size test. */
    const char *next[FEW_DOT_COLS];
    const int64_t size = (int64_t)attn_dtype_size(dt);
    const int64_t ahead = i == 0 && args->n * args->k * size > FEW_PREFETCH_MIN_BYTES ? args->n - (j + NB) : 0;
    const int prefetch_rows = ahead < NB ? (int)ahead : NB;
    for (int c = 0; c < prefetch_rows; c++) next[c] = (const char *)attn_element(args->b, dt, (j + NB + c) * args->ldb);
    int64_t p = 0;
    if (prefetch_rows > 0)
        for (; p + ATTN_VL <= args->k; p += ATTN_VL) {
            if (((p * size) & 63) == 0)
                for (int c = 0; c < prefetch_rows; c++) __builtin_prefetch(next[c] + p * size, 0, 2);
            few_dot_step(acc, a, b, p, ATTN_VL, MB, NB, dt, round_a);
        }
    for (; p + ATTN_VL <= args->k; p += ATTN_VL) few_dot_step(acc, a, b, p, ATTN_VL, MB, NB, dt, round_a);
    if (p < args->k) few_dot_step(acc, a, b, p, (int)(args->k - p), MB, NB, dt, round_a);
    for (int r = 0; r < MB; r++) {
        float sums[FEW_DOT_COLS + ATTN_VL];
        for (int c0 = 0; c0 < NB; c0 += ATTN_VL) {
            const int group = few_min(NB - c0, ATTN_VL);
            float t[ATTN_VL];
            vstore(t, vhsums(&acc[r][c0], group));
            for (int c = 0; c < group; c++) sums[c0 + c] = t[vhsum_lane(c)];
        }
        float *cp = args->c + (i + r) * args->ldc + j;
        for (int c = 0; c < nb; c += ATTN_VL)
            sgemm_store(cp + c, vload_partial(sums + c, few_min(ATTN_VL, nb - c)), few_min(ATTN_VL, nb - c),
                        args->bias ? args->bias + j + c : NULL, args->accumulate);
    }
}

/* Rows [i, i + MB) of C at columns [j, j + w), w <= NV vectors, with B stored (K, N); FULL says
 * w is all NV vectors, so no load is clipped. */
ATTN_INLINE void few_axpy(const attn_matmul_params *args, int64_t i, int64_t j, int w, const int MB, const int NV,
                          const int FULL, attn_dtype dt, const int round_a) {
    const float *a[4];
    vf acc[4][FEW_AXPY_NV];
#pragma GCC unroll 4
    for (int r = 0; r < MB; r++) {
        a[r] = args->a + (i + r) * args->lda;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = vsplat(0.0f);
    }
    /* B from memory (as in few_dot): the first group of A rows asks the panel's row FEW_AXPY_AHEAD
     * rows further down into L2, each row's slice being too short for the hardware prefetcher. */
    const int64_t size = (int64_t)attn_dtype_size(dt);
    const int64_t last = i == 0 && args->n * args->k * size > FEW_PREFETCH_MIN_BYTES ? args->k - FEW_AXPY_AHEAD : 0;
    for (int64_t p = 0; p < args->k; p++) {
        const void *src = attn_element(args->b, dt, p * args->ldb + j);
        if (p < last)
            for (int64_t off = 0; off < w * size; off += 64)
                __builtin_prefetch((const char *)src + FEW_AXPY_AHEAD * args->ldb * size + off, 0, 2);
        vf bv[FEW_AXPY_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const int wv = w - v * ATTN_VL;
            bv[v] = FULL || wv >= ATTN_VL ? vload_full(src, v * ATTN_VL, dt)
                  : wv > 0                ? vload_as(src, v * ATTN_VL, dt, wv)
                                          : vsplat(0.0f);
        }
#pragma GCC unroll 4
        for (int r = 0; r < MB; r++) {
            const vf av = vsplat(round_a ? attn_bf16_to_f32(attn_f32_to_bf16(a[r][p])) : a[r][p]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = vfma(av, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < MB; r++)
        for (int v = 0; v < NV && v * ATTN_VL < w; v++)
            sgemm_store(args->c + (i + r) * args->ldc + j + v * ATTN_VL, acc[r][v], few_min(ATTN_VL, w - v * ATTN_VL),
                        args->bias ? args->bias + j + v * ATTN_VL : NULL, args->accumulate);
}

/* Rows [i, i + MB) of C at columns [j, j + cols), cols <= SGEMM_FEW_COLS, in either layout; round_a
 * (ATTN_MATMUL_BF16_PRODUCTS) rounds A to bf16 as it is read. */
ATTN_INLINE void few_rows_block(const attn_matmul_params *args, int64_t i, int64_t j, int cols, const int MB,
                                attn_dtype dt, const int round_a) {
    if (args->b_transposed) {
        const int NB = few_min(FEW_ACC / MB, FEW_DOT_COLS);
        for (int c = 0; c < cols; c += NB) few_dot(args, i, j + c, few_min(NB, cols - c), MB, NB, dt, round_a);
        return;
    }
    const int NV = few_min(FEW_ACC / MB, FEW_AXPY_NV), width = NV * ATTN_VL;
    int c = 0;
    for (; c + width <= cols; c += width) few_axpy(args, i, j + c, width, MB, NV, 1, dt, round_a);
    if (c < cols) few_axpy(args, i, j + c, cols - c, MB, NV, 0, dt, round_a);
}

ATTN_INLINE void few_rows_as(const attn_matmul_params *args, int64_t j0, int64_t j1, attn_dtype dt, const int round_a) {
    /* Bᵀ: blocks of FEW_DOT_COLS B rows (kept in L1); B: panels of SGEMM_FEW_COLS columns (in L2). */
    const int64_t block = args->b_transposed ? FEW_DOT_COLS : SGEMM_FEW_COLS;
    for (int64_t j = j0; j < j1; j += block) {
        const int cols = (int)sgemm_min(block, j1 - j);
        for (int64_t i = 0, rows; i < args->m; i += rows) {
            rows = args->m - i >= 4 ? 4 : args->m - i >= 2 ? 2 : 1;
            if (rows == 4) few_rows_block(args, i, j, cols, 4, dt, round_a);
            else if (rows == 2) few_rows_block(args, i, j, cols, 2, dt, round_a);
            else few_rows_block(args, i, j, cols, 1, dt, round_a);
        }
    }
}

/* C columns [j0, j1) of every row (M <= SGEMM_FEW_ROWS), straight from B. */
static inline void sgemm_few_rows(const attn_matmul_params *args, int64_t j0, int64_t j1) {
    switch (args->b_dtype) {
    case ATTN_DTYPE_F16: few_rows_as(args, j0, j1, ATTN_DTYPE_F16, 0); break;
    case ATTN_DTYPE_BF16:
        if (args->flags & ATTN_MATMUL_BF16_PRODUCTS) few_rows_as(args, j0, j1, ATTN_DTYPE_BF16, 1);
        else few_rows_as(args, j0, j1, ATTN_DTYPE_BF16, 0);
        break;
    default: few_rows_as(args, j0, j1, ATTN_DTYPE_F32, 0); break;
    }
}
