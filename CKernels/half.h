/*
 * half.h: portable, bit-exact conversions between float32 and the two 16-bit formats of
 * attn_dtype (attn.h), for the scalar path and for tests. Header-only, static inline, integer
 * arithmetic only, so no result depends on the floating-point environment (rounding mode,
 * flush-to-zero). The x86 paths widen f16 with F16C and bf16 with a shift (simd_template.h), which
 * must give the same bits: Tests/CKernelsTests/test_matmul.c checks every pattern through each.
 *
 *   f16  (IEEE binary16): 1 sign, 5 exponent (bias 15), 10 fraction bits; subnormals below 2^-14.
 *   bf16 (bfloat16):      the top 16 bits of a float32: 1 sign, 8 exponent, 7 fraction bits.
 *
 * Widening (to float32) is exact for every number; an f16 NaN keeps its sign and payload and is
 * quieted, as VCVTPH2PS does; a bf16 NaN is kept as it is. Narrowing rounds to nearest, ties to
 * even, as VCVTPS2PH with rounding mode 0 and PyTorch's .half() / .bfloat16() do: values too large
 * become infinity (f16: from 65520 on), too small (signed) zero or a subnormal, and NaN a quiet NaN
 * with its sign and the top of its payload.
 */
#ifndef ATTN_HALF_H
#define ATTN_HALF_H

#include <stdint.h>
#include <string.h>

#include "attn.h"

static inline uint32_t attn_f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float attn_bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline float attn_bf16_to_f32(uint16_t h) { return attn_bits_f32((uint32_t)h << 16); }

static inline float attn_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, frac = h & 0x3FFu;
    if (exp == 0x1F) return attn_bits_f32(sign | 0x7F800000u | frac << 13 | (frac ? 0x400000u : 0)); /* inf, NaN */
    if (exp != 0) return attn_bits_f32(sign | (exp + 112) << 23 | frac << 13); /* 127 - 15 = 112 */
    if (frac == 0) return attn_bits_f32(sign);
    /* Subnormal frac * 2^-24: normalise, moving the leading one (bit 31 - clz) up to the implicit
     * bit 10; each step lowers the exponent of 2^-14 (biased 113) by one. */
    const uint32_t shift = (uint32_t)__builtin_clz(frac) - 21; /* 1 ..= 10 */
    return attn_bits_f32(sign | (113 - shift) << 23 | ((frac << shift) & 0x3FFu) << 13);
}

static inline uint16_t attn_f32_to_bf16(float x) {
    const uint32_t u = attn_f32_bits(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)(u >> 16 | 0x0040u); /* NaN: quiet it */
    /* Adding 0x7FFF plus the lowest kept bit rounds to nearest even; a carry out of the fraction
     * steps the exponent, up to infinity, which is right. */
    return (uint16_t)((u + 0x7FFFu + (u >> 16 & 1u)) >> 16);
}

static inline uint16_t attn_f32_to_f16(float x) {
    const uint32_t u = attn_f32_bits(x), sign = u >> 16 & 0x8000u, mag = u & 0x7FFFFFFFu;
    if (mag > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | (mag >> 13 & 0x3FFu)); /* NaN: quiet, top of payload */
    if (mag >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* >= 65520 rounds to infinity */
    if (mag >= 0x38800000u) { /* >= 2^-14: normal in f16 */
        /* Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even; a carry
         * runs into the exponent correctly. */
        const uint32_t r = mag - 0x38000000u;
        return (uint16_t)(sign | (r + 0x0FFFu + (r >> 13 & 1u)) >> 13);
    }
    if (mag < 0x33000000u) return (uint16_t)sign; /* below 2^-25: to zero (2^-25 itself ties to even 0) */
    /* Subnormal: the value in units of 2^-24, rounded to nearest even. Shift the 24-bit significand
     * (implicit bit restored) right by the exponent gap, keeping the dropped bits for rounding. */
    const uint32_t exp = mag >> 23, sig = (mag & 0x7FFFFFu) | 0x800000u, shift = 126 - exp; /* 14..24 */
    const uint32_t kept = sig >> shift, dropped = sig & ((1u << shift) - 1), half = 1u << (shift - 1);
    return (uint16_t)(sign | (kept + (dropped > half || (dropped == half && (kept & 1u)))));
}

/* The address of element i of an array of type t. */
static inline const void *attn_element(const void *p, attn_dtype t, int64_t i) {
    return (const char *)p + i * (t == ATTN_DTYPE_F32 ? 4 : 2);
}

#endif /* ATTN_HALF_H */
