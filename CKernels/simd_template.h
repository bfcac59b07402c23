/*
 * simd_template.h: the one vector abstraction every kernel is written against.
 *
 * The kernels are written once, with GCC/Clang vector extensions, and compiled once per instruction
 * set: a file such as kernels_avx2.c defines ATTN_VL (floats per vector) and ATTN_SUFFIX, switches
 * the code generation target with a pragma, then includes this header and the kernel templates.
 * vector_size(64) under AVX-512 becomes zmm registers, vector_size(32) under AVX2 becomes ymm, and
 * vector_size(16) on the baseline target becomes SSE2 or NEON, so no intrinsics and no per-ISA
 * copies of the kernels exist.
 *
 * Everything here is static inline: it must be inlined into code compiled for the same target.
 */
#ifndef ATTN_SIMD_H
#define ATTN_SIMD_H

#include <stdint.h>
#include <string.h>

#include "half.h"

#ifndef ATTN_VL
#error "define ATTN_VL (floats per vector) before including simd_template.h"
#endif

#define ATTN_INLINE static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(ATTN_VL * 4)));
typedef int32_t vi __attribute__((vector_size(ATTN_VL * 4)));
/* Same vectors at 4-byte alignment and allowed to alias float: unaligned loads and stores. */
typedef float vf_unaligned __attribute__((vector_size(ATTN_VL * 4), aligned(4), may_alias));

ATTN_INLINE vf vload(const float *p) { return *(const vf_unaligned *)p; }
ATTN_INLINE void vstore(float *p, vf x) { *(vf_unaligned *)p = x; }
/* A braced list of the same value, which every compiler turns into one broadcast. (Not
 * (vf){0} + x: that is a real addition, since 0 + -0 is +0, and costs an add and a shuffle; and a
 * lane-by-lane loop gets vectorised at -O3 into insert sequences.) */
#if ATTN_VL == 4
#define ATTN_SPLAT(x) (vf){x, x, x, x}
#elif ATTN_VL == 8
#define ATTN_SPLAT(x) (vf){x, x, x, x, x, x, x, x}
#elif ATTN_VL == 16
#define ATTN_SPLAT(x) (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}
#else
#error "ATTN_VL must be 4, 8 or 16"
#endif
ATTN_INLINE vf vsplat(float x) { return ATTN_SPLAT(x); }

/* The first n (< ATTN_VL) floats of p, zeros after: reads only n floats. */
ATTN_INLINE vf vload_partial(const float *p, int n) {
    float tmp[ATTN_VL] = {0};
    memcpy(tmp, p, (size_t)n * sizeof(float));
    return vload(tmp);
}
ATTN_INLINE void vstore_partial(float *p, vf x, int n) {
    float tmp[ATTN_VL];
    vstore(tmp, x);
    memcpy(p, tmp, (size_t)n * sizeof(float));
}

/* c + a*b, fused where the target has FMA (the build passes -ffp-contract=fast). */
ATTN_INLINE vf vfma(vf a, vf b, vf c) { return c + a * b; }

/* Lanes where mask is all ones take a, the others b. */
ATTN_INLINE vf vselect(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

/* Lane-wise maximum; a NaN in b is ignored, a NaN in a is kept (so a running maximum started from
 * -inf and updated as vmax(x, m) keeps NaN scores visible downstream). That is exactly x86's
 * MAXPS with the operands swapped (MAXPS b, a = b > a ? b : a): one instruction instead of a
 * compare and a blend, where the translation unit says it may use it (ATTN_X86_MAXPS, or
 * ATTN_X86_AVX512F for zmm vectors). */
#if defined(ATTN_X86_AVX512F) && ATTN_VL == 16
ATTN_INLINE vf vmax(vf a, vf b) { return (vf)_mm512_max_ps((__m512)b, (__m512)a); }
#elif defined(ATTN_X86_MAXPS) && ATTN_VL == 8
ATTN_INLINE vf vmax(vf a, vf b) { return __builtin_ia32_maxps256(b, a); }
#elif defined(ATTN_X86_MAXPS) && ATTN_VL == 4
ATTN_INLINE vf vmax(vf a, vf b) { return __builtin_ia32_maxps(b, a); }
#else
ATTN_INLINE vf vmax(vf a, vf b) { return vselect(a < b, b, a); }
#endif

/* Interleaves the low (vzip_lo) or high (vzip_hi) halves of a and b: a0 b0 a1 b1 ... */
#if ATTN_VL == 4
#define ATTN_ZIP_LO 0, 4, 1, 5
#define ATTN_ZIP_HI 2, 6, 3, 7
#elif ATTN_VL == 8
#define ATTN_ZIP_LO 0, 8, 1, 9, 2, 10, 3, 11
#define ATTN_ZIP_HI 4, 12, 5, 13, 6, 14, 7, 15
#else
#define ATTN_ZIP_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define ATTN_ZIP_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#endif
#if defined(__clang__) || __GNUC__ >= 12
ATTN_INLINE vf vzip_lo(vf a, vf b) { return __builtin_shufflevector(a, b, ATTN_ZIP_LO); }
ATTN_INLINE vf vzip_hi(vf a, vf b) { return __builtin_shufflevector(a, b, ATTN_ZIP_HI); }
#else
ATTN_INLINE vf vzip_lo(vf a, vf b) { return __builtin_shuffle(a, b, (vi){ATTN_ZIP_LO}); }
ATTN_INLINE vf vzip_hi(vf a, vf b) { return __builtin_shuffle(a, b, (vi){ATTN_ZIP_HI}); }
#endif

/* Transposes n rows of ATTN_VL floats (n a power of two, 2 <= n <= ATTN_VL) in place by log2(n)
 * rounds of interleaving: afterwards r[i] holds columns i·ATTN_VL/n onwards, ATTN_VL/n of them,
 * each as its n row values in row order. Used to pack K (rows of keys) and A (rows of a matrix). */
ATTN_INLINE void vtranspose_rows(vf *r, int n) {
    for (int width = 1; width < n; width *= 2) {
        vf t[16];
        for (int i = 0; i < n / 2; i++) {
            t[2 * i] = vzip_lo(r[i], r[i + n / 2]);
            t[2 * i + 1] = vzip_hi(r[i], r[i + n / 2]);
        }
        for (int i = 0; i < n; i++) r[i] = t[i];
    }
}

/* The lane sums of n vectors x[0 .. n) (n a power of two <= ATTN_VL; x is overwritten), all in one
 * vector: lane vhsum_lane(c) holds the sum of x[c]. Pairs are interleaved and added (vzip) until one
 * vector is left, which is folded onto itself until each lane holds a whole sum: log2(ATTN_VL)
 * rounds of two shuffles and an add for all n, where one vector at a time takes that many each.
 * Used by the few-row matrix products and the row (decode) kernel's scores. */
ATTN_INLINE vf vhsums(vf *x, const int n) {
    for (int left = n; left > 1; left /= 2)
        for (int i = 0; i < left / 2; i++) x[i] = vzip_lo(x[2 * i], x[2 * i + 1]) + vzip_hi(x[2 * i], x[2 * i + 1]);
    vf s = x[0];
    for (int w = n; w < ATTN_VL; w *= 2) s = vzip_lo(s, s) + vzip_hi(s, s);
    return s;
}

/* Where vhsums leaves the sum of x[c]: c with its log2(ATTN_VL) bits reversed (so, an involution,
 * x[vhsum_lane(j)] ends in lane j). */
ATTN_INLINE int vhsum_lane(int c) {
    /* Bit by bit without a loop: callers index register arrays with it inside unrolled loops, and
     * GCC left the loop form unfolded there, which put those arrays on the stack. */
    return (c & 1 ? ATTN_VL / 2 : 0) | (c & 2 ? ATTN_VL / 4 : 0) | (c & 4 ? ATTN_VL / 8 : 0) | (c & 8 ? ATTN_VL / 16 : 0);
}

ATTN_INLINE int vany(vi mask) {
    int32_t lanes[ATTN_VL];
    memcpy(lanes, &mask, sizeof lanes);
    int32_t any = 0;
    for (int l = 0; l < ATTN_VL; l++) any |= lanes[l];
    return any != 0;
}

/*
 * 2^x, lane-wise. x is split as n + f with n = round(x) and f in [-0.5, 0.5]; 2^f comes from a
 * degree-6 polynomial fitted for least maximum relative error on [-0.5, 0.5] (2e-9 in exact
 * arithmetic, 8e-8 = about 1 ulp evaluated in float; one FMA less than the degree-7 Taylor series
 * of the same accuracy) and is multiplied by 2^n. Inputs that round to -127 or below (and -inf) give
 * exactly 0 (2^-127 is subnormal: flushing keeps masked and far-below-maximum scores cheap and exact
 * zeros); p · 2^n for n >= -126 is rounded once, so a product that lands below 2^-126 is rounded to
 * a subnormal. NaN stays NaN. Valid for x <= 127, which the softmax guarantees (x = score - running
 * max <= 0).
 */
ATTN_INLINE vf vexp2_poly(vf f) {
    vf p = vsplat(1.534574112156406e-04f);
    p = vfma(p, f, vsplat(1.3399904128164053e-03f));
    p = vfma(p, f, vsplat(9.618489071726799e-03f));
    p = vfma(p, f, vsplat(5.550329014658928e-02f));
    p = vfma(p, f, vsplat(2.4022646248340607e-01f));
    p = vfma(p, f, vsplat(6.931471824645996e-01f));
    return vfma(p, f, vsplat(1.0f));
}

#if defined(ATTN_X86_AVX512F) && ATTN_VL == 16
/* The same bits in 11 instructions instead of 14: VRNDSCALEPS rounds to nearest even as the magic
 * constant below does, and VSCALEFPS forms p · 2^n with the one rounding of the multiply by the
 * exponent field, its mask zeroing n = -127 (NaN compares unequal and stays NaN). */
ATTN_INLINE vf vexp2(vf x) {
    x = vmax(x, vsplat(-127.0f));
    const vf n = (vf)_mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __mmask16 normal = _mm512_cmp_ps_mask((__m512)n, _mm512_set1_ps(-127.0f), _CMP_NEQ_UQ);
    return (vf)_mm512_maskz_scalef_ps(normal, (__m512)vexp2_poly(x - n), (__m512)n);
}
#else
ATTN_INLINE vf vexp2(vf x) {
    x = vmax(x, vsplat(-127.0f));
    const vf round_magic = vsplat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    const vf n = (x + round_magic) - round_magic;
    const vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return vexp2_poly(x - n) * (vf)e;
}
#endif

/* ---- element types: every kernel loads and stores q, k, v and out through these ---- */

typedef uint32_t vu __attribute__((vector_size(ATTN_VL * 4)));
typedef uint16_t vu16_unaligned __attribute__((vector_size(ATTN_VL * 2), aligned(2), may_alias));

/* ATTN_VL f16 values at p, widened exactly. x86 paths define ATTN_F16C as the lanes one
 * VCVTPH2PS converts (16 with AVX-512, 8 with AVX2, whose ymm halves also serve the emulated
 * AVX-512 build); elsewhere the portable conversion runs lane by lane. */
ATTN_INLINE vf vload_f16(const uint16_t *p) {
#if defined(ATTN_F16C) && ATTN_F16C == 16
    return (vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#elif defined(ATTN_F16C)
    vf r;
    for (int k = 0; k < ATTN_VL / 8; k++) {
        const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8 * k)));
        memcpy((float *)&r + 8 * k, &x, sizeof x);
    }
    return r;
#else
    float t[ATTN_VL];
    for (int l = 0; l < ATTN_VL; l++) t[l] = attn_f16_to_f32(p[l]);
    return vload(t);
#endif
}

/* x rounded to f16 (nearest even) into ATTN_VL values at p. */
ATTN_INLINE void vstore_f16(uint16_t *p, vf x) {
#if defined(ATTN_F16C) && ATTN_F16C == 16
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(ATTN_F16C)
    for (int k = 0; k < ATTN_VL / 8; k++) {
        __m256 y;
        memcpy(&y, (const float *)&x + 8 * k, sizeof y);
        _mm_storeu_si128((__m128i *)(p + 8 * k), _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
#else
    float t[ATTN_VL];
    vstore(t, x);
    for (int l = 0; l < ATTN_VL; l++) p[l] = attn_f32_to_f16(t[l]);
#endif
}

/* bf16 is the upper half of a float: widening is a zero extension and a shift on every ISA. */
ATTN_INLINE vf vload_bf16(const uint16_t *p) {
#if defined(ATTN_F16C) && ATTN_F16C == 16
    /* GCC splits a 16-lane convertvector into two halves and an insert; one VPMOVZXWD does it
     * (bf16 weights were no faster than f32 before this, measured with the paired mmk mode). */
    return (vf)_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16);
#else
    return (vf)(__builtin_convertvector(*(const vu16_unaligned *)p, vu) << 16);
#endif
}

/* Each lane of x rounded to bf16 (nearest even; NaN quieted, as attn_f32_to_bf16), its bits in the
 * lane's low half. */
ATTN_INLINE vu vbf16_bits(vf x) {
    const vu u = (vu)x;
    const vu rounded = (u + 0x7fff + ((u >> 16) & 1)) >> 16;
    const vi nan = (vi)((u & 0x7fffffff) > 0x7f800000);
    return (vu)vselect(nan, (vf)((u >> 16) | 0x40), (vf)rounded);
}

/* x rounded to bf16 into ATTN_VL values at p. */
ATTN_INLINE void vstore_bf16(uint16_t *p, vf x) {
    *(vu16_unaligned *)p = __builtin_convertvector(vbf16_bits(x), __typeof__(*(vu16_unaligned *)p));
}

/* x rounded to bf16 and widened back: the float each lane's bf16 stands for. */
ATTN_INLINE vf vround_bf16(vf x) { return (vf)(vbf16_bits(x) << 16); }

/* ---- bf16 pairs: the products of the tile kernel when q, k and v are all bf16 ----
 *
 * A pair word is two bf16 values in one 32-bit lane, the first in the low half (as two consecutive
 * bf16 elements load on a little-endian CPU). vdot_bf16 is one VDPBF16PS: for each lane,
 *   acc += hi(a)·hi(b), rounded to float; then acc += lo(a)·lo(b), rounded to float;
 * each step with its inputs' subnormals read as zero (DAZ) and a subnormal result flushed to zero
 * (FTZ), round to nearest even whatever MXCSR says. That is the order and the rounding this
 * instruction performs on Zen 4 (measured against this model, bit for bit, on 2·10^7 random
 * operands, subnormals included) and what Intel's pseudo-code says. Each product of two bf16 values
 * is exact in float (8-bit significands) unless it leaves float's exponent range.
 * ATTN_BF16_DOT_NATIVE (kernels_avx512bf16.c only) uses the instruction; every other translation
 * unit gets the portable model below, which computes each step in double (the product exact, the
 * sum of two float-precision values rounded twice, to double then to float, which gives the
 * correctly rounded float sum) and so returns the instruction's bits; NaN payloads may differ. */
#if defined(ATTN_BF16_DOT_NATIVE)
ATTN_INLINE vf vdot_bf16(vf acc, vf a, vf b) {
    return (vf)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b);
}
#else
typedef double vdw __attribute__((vector_size(ATTN_VL * 8))); /* ATTN_VL doubles */
/* x with its subnormal lanes replaced by zeros of the same sign (DAZ and FTZ alike). */
ATTN_INLINE vf vflush_subnormal(vf x) {
    const vu u = (vu)x;
    const vu tiny = (vu)((u & 0x7f800000) == 0);
    return (vf)((tiny & u & 0x80000000) | (~tiny & u));
}
/* acc + x·y rounded to float, then flushed, with acc, x and y already flushed. */
ATTN_INLINE vf vdot_bf16_step(vf acc, vf x, vf y) {
    const vdw sum = __builtin_convertvector(acc, vdw) + __builtin_convertvector(x, vdw) * __builtin_convertvector(y, vdw);
    return vflush_subnormal(__builtin_convertvector(sum, vf));
}
ATTN_INLINE vf vdot_bf16(vf acc, vf a, vf b) {
    const vu ua = (vu)a, ub = (vu)b;
    acc = vflush_subnormal(acc);
    acc = vdot_bf16_step(acc, vflush_subnormal((vf)(ua & 0xffff0000)), vflush_subnormal((vf)(ub & 0xffff0000)));
    return vdot_bf16_step(acc, vflush_subnormal((vf)(ua << 16)), vflush_subnormal((vf)(ub << 16)));
}
#endif

/* The pair words (lo, hi) of two float vectors, each rounded to bf16 (nearest even; NaN stays a
 * NaN unless its payload is all ones). */
ATTN_INLINE vf vbf16_pairs(vf lo, vf hi) {
    const vu l = (vu)lo, h = (vu)hi;
    return (vf)(((l + 0x7fff + ((l >> 16) & 1)) >> 16) | ((h + 0x7fff + ((h >> 16) & 1)) & 0xffff0000));
}

/* The 2·ATTN_VL floats x0 then x1 (consecutive elements of a row) rounded to bf16 and paired as they
 * would lie in memory: lane w holds elements 2w (low half) and 2w + 1. The even and odd lanes of
 * the two vectors are gathered by one shuffle each. */
#if ATTN_VL == 4
#define ATTN_EVEN 0, 2, 4, 6
#define ATTN_ODD 1, 3, 5, 7
#elif ATTN_VL == 8
#define ATTN_EVEN 0, 2, 4, 6, 8, 10, 12, 14
#define ATTN_ODD 1, 3, 5, 7, 9, 11, 13, 15
#else
#define ATTN_EVEN 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define ATTN_ODD 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#endif
ATTN_INLINE vf vbf16_pair_words(vf x0, vf x1) {
    const vu b0 = vbf16_bits(x0), b1 = vbf16_bits(x1);
#if defined(__clang__) || __GNUC__ >= 12
    const vu even = __builtin_shufflevector(b0, b1, ATTN_EVEN), odd = __builtin_shufflevector(b0, b1, ATTN_ODD);
#else
    const vu even = __builtin_shuffle(b0, b1, (vu){ATTN_EVEN}), odd = __builtin_shuffle(b0, b1, (vu){ATTN_ODD});
#endif
    return (vf)(even | odd << 16);
}

/* ATTN_VL elements of type t from element i of p, as floats; with t constant after inlining, one
 * load and at most one conversion. */
ATTN_INLINE vf vload_full(const void *p, int64_t i, attn_dtype t) {
    if (t == ATTN_DTYPE_F16) return vload_f16((const uint16_t *)p + i);
    if (t == ATTN_DTYPE_BF16) return vload_bf16((const uint16_t *)p + i);
    return vload((const float *)p + i);
}

ATTN_INLINE void vstore_full(void *p, int64_t i, attn_dtype t, vf x) {
    if (t == ATTN_DTYPE_F16)
        vstore_f16((uint16_t *)p + i, x);
    else if (t == ATTN_DTYPE_BF16)
        vstore_bf16((uint16_t *)p + i, x);
    else
        vstore((float *)p + i, x);
}

/* As vload_full, for n (1 ..= ATTN_VL) elements: lanes from n on are 0, and nothing past the n
 * elements is read. */
ATTN_INLINE vf vload_as(const void *p, int64_t i, attn_dtype t, int n) {
    if (n == ATTN_VL) return vload_full(p, i, t);
    if (t == ATTN_DTYPE_F32) return vload_partial((const float *)p + i, n);
    uint16_t h[ATTN_VL] = {0};
    memcpy(h, (const uint16_t *)p + i, (size_t)n * sizeof *h);
    return t == ATTN_DTYPE_F16 ? vload_f16(h) : vload_bf16(h);
}

/* The first n (1 ..= ATTN_VL) lanes of x stored as type t at element i of p; nothing else written. */
ATTN_INLINE void vstore_as(void *p, int64_t i, attn_dtype t, vf x, int n) {
    if (n == ATTN_VL) {
        vstore_full(p, i, t, x);
    } else if (t == ATTN_DTYPE_F32) {
        vstore_partial((float *)p + i, x, n);
    } else {
        uint16_t h[ATTN_VL];
        if (t == ATTN_DTYPE_F16)
            vstore_f16(h, x);
        else
            vstore_bf16(h, x);
        memcpy((uint16_t *)p + i, h, (size_t)n * sizeof *h);
    }
}

/* n elements from type st to type dt (a half-to-half conversion goes through float, which is exact
 * on the way in). The one row conversion of every path: packing K and V, loading Q, storing out,
 * the unfused path's copies, attn_convert. */
static void vconvert_row(void *dst, attn_dtype dt, const void *src, attn_dtype st, int64_t n) {
    int64_t i = 0;
    for (; i + ATTN_VL <= n; i += ATTN_VL) vstore_as(dst, i, dt, vload_as(src, i, st, ATTN_VL), ATTN_VL);
    if (i < n) vstore_as(dst, i, dt, vload_as(src, i, st, (int)(n - i)), (int)(n - i));
}

/* n elements from element i of a tensor of type t, as floats: in place for float32, else converted
 * into buf (n floats). */
ATTN_INLINE const float *vrow_f32(const void *p, attn_dtype t, int64_t i, int64_t n, float *buf) {
    if (t == ATTN_DTYPE_F32) return (const float *)p + i;
    vconvert_row(buf, ATTN_DTYPE_F32, attn_element(p, t, i), t, n);
    return buf;
}

#endif /* ATTN_SIMD_H */
