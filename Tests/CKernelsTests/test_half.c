/*
 * test_half.c: the element-type conversions (attn_convert, the same code every attention path uses)
 * against test_util.h's double-arithmetic reference of attn.h's rules, on every instruction set this
 * CPU has: all 65536 f16 and bf16 patterns to float; back to half, every half value, every midpoint
 * between neighbours (ties to even) and the floats either side of it, float subnormals, overflow,
 * infinities, NaN payloads, and a million random float patterns; lengths 1..67 at odd offsets
 * (vector tails) with nothing written past the end; and the argument checks.
 *
 * Run: ./test_half; the last line is "N passed, N failed".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "test_util.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The float attn.h promises for half pattern h of type t: exact, NaN quieted for f16, bf16 shifted. */
static uint32_t want_widened(uint16_t h, int t) {
    if (t == ATTN_DTYPE_BF16) return (uint32_t)h << 16;
    const double v = tu_half_value(h, t);
    if (isnan(v)) return (uint32_t)(h & 0x8000) << 16 | 0x7fc00000 | (uint32_t)(h & 0x3ff) << 13;
    return bits_of((float)v);
}

static void check_widening(const char *isa, int t) {
    static uint16_t h[65536];
    static float got[65536];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    TU_CHECK(attn_convert(got, ATTN_DTYPE_F32, h, (attn_dtype)t, 65536) == ATTN_OK, "%s: convert failed", isa);
    long bad = 0;
    for (int i = 0; i < 65536; i++)
        if (bits_of(got[i]) != want_widened((uint16_t)i, t) && bad++ < 5)
            tu_fail("%s: %s 0x%04x -> f32 0x%08x, want 0x%08x", isa, t == 1 ? "f16" : "bf16", i, bits_of(got[i]),
                    want_widened((uint16_t)i, t));
    if (!bad) tu_pass();
}

/* Floats that probe rounding to type t: every half value, the midpoints between neighbours and the
 * floats just beside them, float subnormals, overflow, NaN payloads, random patterns. */
static float *rounding_inputs(int t, size_t *n) {
    const size_t cap = 65536 * 4 + 64 + 1000000;
    float *x = malloc(cap * sizeof *x);
    if (!x) exit(2);
    size_t k = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        const double v = tu_half_value((uint16_t)i, t), next = tu_half_value((uint16_t)(i + 1), t);
        x[k++] = (float)v;
        if (!isfinite(v) || !isfinite(next) || ((i + 1) & 0x7fff) == 0) continue;
        const float mid = (float)((v + next) / 2); /* exact: halves have few bits */
        x[k++] = mid;
        x[k++] = nextafterf(mid, -INFINITY);
        x[k++] = nextafterf(mid, INFINITY);
    }
    const uint32_t special[] = {0x00000001, 0x00400000, 0x007fffff, 0x80000001, 0x33000000, 0x33000001, 0x32ffffff,
                                0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff,
                                0xff7fffff, 0x7f800000, 0xff800000, 0x7f800001, 0x7fbfffff, 0xffc00001, 0x7fc00000,
                                0x7f802000, 0x7f800040, 0xff80ffff, 0x387fe000, 0x387ff000, 0x38800000, 0xb87ff000};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) x[k++] = float_of(special[i]);
    tu_rng r;
    tu_rng_seed(&r, 0x4A1Fu + (uint64_t)t);
    for (int i = 0; i < 1000000; i++) x[k++] = float_of((uint32_t)tu_rng_u64(&r));
    *n = k;
    return x;
}

static void check_rounding(const char *isa, int t) {
    size_t n;
    float *x = rounding_inputs(t, &n);
    uint16_t *got = malloc(n * sizeof *got);
    if (!got) exit(2);
    TU_CHECK(attn_convert(got, (attn_dtype)t, x, ATTN_DTYPE_F32, (int64_t)n) == ATTN_OK, "%s: convert failed", isa);
    long bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t want = tu_half_round(x[i], t);
        if (got[i] != want && bad++ < 5)
            tu_fail("%s: f32 0x%08x (%.9g) -> %s 0x%04x, want 0x%04x", isa, bits_of(x[i]), (double)x[i],
                    t == 1 ? "f16" : "bf16", got[i], want);
    }
    if (!bad) tu_pass();
    free(got);
    free(x);
}

/* Every length 1..67 from an odd offset, each pair of types: the elements converted as one by one,
 * and the element after the last untouched. */
static void check_tails(const char *isa) {
    float src32[80], dst32[80];
    uint16_t src16[80], dst16[80];
    tu_rng r;
    tu_rng_seed(&r, 7);
    for (int i = 0; i < 80; i++) {
        src32[i] = tu_rng_uniform(&r, -300.0f, 300.0f);
        src16[i] = tu_half_round(src32[i], ATTN_DTYPE_F16);
    }
    for (int st = 0; st < 3; st++)
        for (int dt = 0; dt < 3; dt++)
            for (int n = 1; n <= 67; n++) {
                const void *src = st == 0 ? (const void *)(src32 + 3) : (const void *)(src16 + 3);
                void *dst = dt == 0 ? (void *)(dst32 + 1) : (void *)(dst16 + 1);
                memset(dst32, 0x5A, sizeof dst32);
                memset(dst16, 0x5A, sizeof dst16);
                attn_status s = attn_convert(dst, (attn_dtype)dt, src, (attn_dtype)st, n);
                int ok = s == ATTN_OK;
                for (int i = 0; i < n && ok; i++) {
                    const float v = st == 0 ? src32[3 + i] : (st == 1 ? (float)tu_half_value(src16[3 + i], 1)
                                                                      : float_of((uint32_t)src16[3 + i] << 16));
                    if (dt == 0) ok = bits_of(dst32[1 + i]) == bits_of(v);
                    else ok = dst16[1 + i] == tu_half_round(v, dt);
                }
                ok = ok && (dt == 0 ? bits_of(dst32[1 + n]) == 0x5A5A5A5Au && bits_of(dst32[0]) == 0x5A5A5A5Au
                                    : dst16[1 + n] == 0x5A5A && dst16[0] == 0x5A5A);
                TU_CHECK(ok, "%s: %d -> %d, %d elements: wrong, or written outside", isa, st, dt, n);
            }
}

static void check_arguments(void) {
    float f[4] = {0};
    uint16_t h[4] = {0};
    TU_CHECK(attn_convert(NULL, ATTN_DTYPE_F32, h, ATTN_DTYPE_F16, 4) == ATTN_ERR_NULL_POINTER, "dst NULL");
    TU_CHECK(attn_convert(f, ATTN_DTYPE_F32, NULL, ATTN_DTYPE_F16, 4) == ATTN_ERR_NULL_POINTER, "src NULL");
    TU_CHECK(attn_convert(f, (attn_dtype)3, h, ATTN_DTYPE_F16, 4) == ATTN_ERR_INVALID_ARGUMENT, "dst dtype 3");
    TU_CHECK(attn_convert(f, ATTN_DTYPE_F32, h, (attn_dtype)-1, 4) == ATTN_ERR_INVALID_ARGUMENT, "src dtype -1");
    TU_CHECK(attn_convert(f, ATTN_DTYPE_F32, h, ATTN_DTYPE_F16, -1) == ATTN_ERR_INVALID_ARGUMENT, "count -1");
    TU_CHECK(attn_convert(f, ATTN_DTYPE_F32, h, ATTN_DTYPE_F16, 0) == ATTN_OK, "count 0");
    TU_CHECK(attn_convert(f, ATTN_DTYPE_F32, h, ATTN_DTYPE_F16, INT64_MAX / 2) == ATTN_ERR_OVERFLOW, "count 2^62");
    TU_CHECK(attn_dtype_size(ATTN_DTYPE_F32) == 4 && attn_dtype_size(ATTN_DTYPE_F16) == 2 &&
                 attn_dtype_size(ATTN_DTYPE_BF16) == 2 && attn_dtype_size((attn_dtype)3) == 0,
             "attn_dtype_size");
}

int main(void) {
    check_arguments();
    for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_AVX512; isa++) {
        if (attn_set_isa((attn_isa)isa) != ATTN_OK) continue;
        const char *name = attn_isa_name((attn_isa)isa);
        printf("-- conversions on %s\n", name);
        for (int t = ATTN_DTYPE_F16; t <= ATTN_DTYPE_BF16; t++) {
            check_widening(name, t);
            check_rounding(name, t);
        }
        check_tails(name);
    }
    return tu_summary();
}
