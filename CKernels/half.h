/*
 * half.h: the portable, bit-exact conversions between float and the half-precision element types
 * (attn.h's attn_dtype). Integer arithmetic only, so the result never depends on the floating-point
 * environment (rounding mode, flush-to-zero). The scalar/NEON kernels convert with these, lane by
 * lane; the x86 kernels use F16C for f16 (simd_template.h) and must give the same bits, which
 * Tests/CKernelsTests/test_half.c checks for every pattern.
 */
#ifndef ATTN_HALF_H
#define ATTN_HALF_H

#include <stdint.h>
#include <string.h>

#include "attn.h"

static inline uint32_t attn_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float attn_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* binary16 -> binary32, exact; NaN keeps sign and payload and is quieted (as VCVTPH2PS). */
static inline float attn_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f;
    uint32_t m = h & 0x3ff;
    if (e == 0x1f) return attn_bits_f32(sign | 0x7f800000 | m << 13 | (m ? 0x400000 : 0));
    if (e) return attn_bits_f32(sign | (e + 112) << 23 | m << 13); /* rebias 15 -> 127 */
    if (!m) return attn_bits_f32(sign);
    /* Subnormal m·2^-24: shift the leading one up to bit 10 (the implicit bit), lowering the
     * exponent of 2^-14 (biased 113) once per shift. */
    uint32_t ef = 113;
    while (!(m & 0x400)) {
        m <<= 1;
        ef--;
    }
    return attn_bits_f32(sign | ef << 23 | (m & 0x3ff) << 13);
}

/* binary32 -> binary16, rounded to nearest even; NaN keeps sign and the payload's top 10 bits,
 * quieted (as VCVTPS2PH); beyond 65504 (from the halfway point 65520 on) is infinity. */
static inline uint16_t attn_f32_to_f16(float f) {
    const uint32_t u = attn_f32_bits(f), sign = (u >> 16) & 0x8000, a = u & 0x7fffffff;
    if (a > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00);
    if (a >= 0x38800000) { /* normal in f16 (>= 2^-14): rebias, round away 13 mantissa bits */
        const uint32_t r = a - ((uint32_t)112 << 23);
        return (uint16_t)(sign | (r + 0xfff + ((r >> 13) & 1)) >> 13); /* a carry bumps the exponent */
    }
    /* Subnormal or zero in f16: the multiple of 2^-24 nearest to (1.m)·2^(e-150) is the significand
     * shifted right by 126 - e, rounded by the bits shifted out. Below 2^-25 that is 0 (the tie
     * 2^-25 itself rounds to the even 0). */
    const uint32_t e = a >> 23;
    if (e < 102) return (uint16_t)sign;
    const uint32_t sig = (a & 0x7fffff) | 0x800000, shift = 126 - e; /* 14 ..= 24 */
    const uint32_t r = sig >> shift, rest = sig & ((1u << shift) - 1), half = 1u << (shift - 1);
    return (uint16_t)(sign | (r + (rest > half || (rest == half && (r & 1)))));
}

/* bfloat16 -> binary32: the upper half of the bits, exact (NaN included, unchanged). */
static inline float attn_bf16_to_f32(uint16_t h) { return attn_bits_f32((uint32_t)h << 16); }

/* binary32 -> bfloat16, rounded to nearest even; NaN keeps sign and the payload's top 7 bits,
 * quieted (truncating alone could turn a NaN into infinity). */
static inline uint16_t attn_f32_to_bf16(float f) {
    const uint32_t u = attn_f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* The address of element i of a tensor of type t. */
static inline const void *attn_element(const void *p, attn_dtype t, int64_t i) {
    return (const char *)p + i * (t == ATTN_DTYPE_F32 ? 4 : 2);
}

/* Element i of a tensor of type t, as float (problem.c's scalar paths; the kernels load vectors). */
static inline float attn_load_f32(const void *p, attn_dtype t, int64_t i) {
    if (t == ATTN_DTYPE_F16) return attn_f16_to_f32(((const uint16_t *)p)[i]);
    if (t == ATTN_DTYPE_BF16) return attn_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

#endif /* ATTN_HALF_H */
