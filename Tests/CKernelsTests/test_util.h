/*
 * test_util.h: the small pieces every C test of libattn shares: a seeded random generator, the
 * pass/fail counters with the final "N passed, N failed" line, tolerance comparison of float results
 * against a double-precision reference, and a wall clock.
 *
 * Header-only (everything is static), meant for one translation unit per test executable.
 *
 *   tu_rng r; tu_rng_seed(&r, seed);        float x = tu_rng_uniform(&r, -1, 1);
 *   TU_CHECK(cond, "what failed: %d", v);   counts a pass or prints a FAIL line and counts a failure
 *   tu_cmp c = tu_compare(got, ref, n, 1e-5);  c.ok, c.max_err, c.worst ... (tu_compare_each: per element)
 *   return tu_summary();                    prints "N passed, N failed", returns the exit code
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define TU_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TU_UNUSED __attribute__((unused))
#else
#define TU_PRINTF(a, b)
#define TU_UNUSED
#endif

/* ---- random numbers: splitmix64, fully determined by the seed on every platform ---- */

typedef struct tu_rng {
    uint64_t state;
} tu_rng;

static inline uint64_t tu_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void tu_rng_seed(tu_rng *r, uint64_t seed) { r->state = seed; }

/* A generator for sub-stream `index` of `seed` (e.g. one per test case, so a case can be rerun alone). */
static inline tu_rng tu_rng_derive(uint64_t seed, uint64_t index) {
    tu_rng r;
    r.state = tu_mix64(seed ^ tu_mix64(index + 0x632BE59BD9B4E019ull));
    return r;
}

static inline uint64_t tu_rng_u64(tu_rng *r) {
    r->state += 0x9E3779B97F4A7C15ull;
    return tu_mix64(r->state);
}

/* Uniform in [0, 1). */
static inline double tu_rng_double(tu_rng *r) { return (double)(tu_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Uniform in [lo, hi). */
static inline float tu_rng_uniform(tu_rng *r, float lo, float hi) {
    return (float)(lo + (hi - (double)lo) * tu_rng_double(r));
}

/* Uniform integer in [lo, hi] (inclusive; hi >= lo). */
static inline int64_t tu_rng_range(tu_rng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    if (span == 0) return (int64_t)tu_rng_u64(r);
    return lo + (int64_t)(tu_rng_u64(r) % span);
}

/* 1 with probability p. */
static inline int tu_rng_chance(tu_rng *r, double p) { return tu_rng_double(r) < p; }

/* One element of an array: TU_PICK(&rng, array). */
#define TU_PICK(r, arr) ((arr)[tu_rng_range((r), 0, (int64_t)(sizeof(arr) / sizeof((arr)[0])) - 1)])

static inline void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = tu_rng_uniform(r, lo, hi);
}

/* ---- pass / fail counters ---- */

static long tu_passed_count TU_UNUSED;
static long tu_failed_count TU_UNUSED;
static long tu_fail_lines_max TU_UNUSED = 500; /* FAIL lines printed; later failures are only counted */

static inline void tu_pass(void) { tu_passed_count++; }

/* Counts a failure and prints "FAIL: <message>" (up to tu_fail_lines_max lines). */
static inline TU_PRINTF(1, 2) void tu_fail(const char *fmt, ...) {
    tu_failed_count++;
    if (tu_failed_count > tu_fail_lines_max) return;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* Counts a pass when cond holds, else a failure with the printf-style message. Evaluates to cond. */
#define TU_CHECK(cond, ...) ((cond) ? (tu_pass(), 1) : (tu_fail(__VA_ARGS__), 0))

/* Prints the last line, "N passed, N failed", and returns the process exit code. */
static inline int tu_summary(void) {
    if (tu_failed_count > tu_fail_lines_max)
        printf("(%ld more FAIL lines not printed)\n", tu_failed_count - tu_fail_lines_max);
    printf("%ld passed, %ld failed\n", tu_passed_count, tu_failed_count);
    fflush(stdout);
    return tu_failed_count == 0 ? 0 : 1;
}

/* ---- comparison against a double-precision reference ---- */

/* Largest |x| over the finite values (0 when there are none). */
static inline double tu_max_abs_finite(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

typedef struct tu_cmp {
    int ok;           /* every element within tolerance */
    size_t n_bad;     /* elements out of tolerance */
    size_t worst;     /* index of the largest error relative to its tolerance (the first one on ties) */
    double max_err;   /* largest |got - ref| (INFINITY for a kind mismatch: NaN, inf or finite) */
    double scale;     /* max(1, max |ref|) */
    double tol;       /* rel * scale */
    double got_worst, ref_worst;
} tu_cmp;

/* Shared by tu_compare and tu_compare_each: per_element selects the tolerance's scale. */
static inline tu_cmp tu_compare_impl(const float *got, const double *ref, size_t n, double rel, int per_element) {
    tu_cmp c;
    memset(&c, 0, sizeof c);
    c.scale = per_element ? 1 : tu_max_abs_finite(ref, n);
    if (c.scale < 1) c.scale = 1;
    c.tol = rel * c.scale;
    c.ok = 1;
    double worst_ratio = -1;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], err;
        double tol = per_element ? rel * (fabs(r) > 1 && isfinite(r) ? fabs(r) : 1) : c.tol;
        if (isnan(r)) err = isnan(g) ? 0 : INFINITY;
        else if (isinf(r)) err = (g == r) ? 0 : INFINITY;
        else err = isfinite(g) ? fabs(g - r) : INFINITY;
        if (err > tol) {
            c.ok = 0;
            c.n_bad++;
        }
        double ratio = err / tol;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            c.worst = i;
            c.got_worst = g;
            c.ref_worst = r;
            if (per_element) c.tol = tol;
        }
        if (per_element ? err / (tol / rel) > c.max_err : err > c.max_err) c.max_err = per_element ? err / (tol / rel) : err;
    }
    return c;
}

/*
 * |got - ref| <= rel * max(1, max |ref|) for finite ref, the scale being that of the whole output;
 * a NaN ref wants a NaN, an infinite ref the same infinity, and a finite ref a finite value.
 * worst is the element with the largest error; max_err that error.
 */
static inline tu_cmp tu_compare(const float *got, const double *ref, size_t n, double rel) {
    return tu_compare_impl(got, ref, n, rel, 0);
}

/*
 * The same with a tolerance per element: |got - ref| <= rel * max(1, |ref|) (for values that are
 * independent of one another, such as log-sum-exps). max_err is then the largest
 * |got - ref| / max(1, |ref|), scale is 1, and tol the tolerance of the worst element.
 */
static inline tu_cmp tu_compare_each(const float *got, const double *ref, size_t n, double rel) {
    return tu_compare_impl(got, ref, n, rel, 1);
}

/* ---- half precision, re-implemented from attn.h's description with double arithmetic ---- */

/* Formats by attn_dtype value: 1 = f16 (5 exponent, 10 mantissa bits), 2 = bf16 (8, 7). */
static inline int tu_half_mbits(int t) { return t == 1 ? 10 : 7; }
static inline int tu_half_ebits(int t) { return t == 1 ? 5 : 8; }

/* The value of bit pattern h of half type t (NaN for every NaN pattern). */
static inline double tu_half_value(uint16_t h, int t) {
    const int mb = tu_half_mbits(t), eb = tu_half_ebits(t), bias = (1 << (eb - 1)) - 1;
    const int e = (h >> mb) & ((1 << eb) - 1), m = h & ((1 << mb) - 1);
    const double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == (1 << eb) - 1) return m ? NAN : s * INFINITY;
    if (e == 0) return s * ldexp(m, 1 - bias - mb);
    return s * ldexp(m + (1 << mb), e - bias - mb);
}

/* x rounded to nearest (ties to even) in half type t, as a bit pattern; beyond the largest finite
 * value after rounding: infinity; NaN: sign, the payload's top bits, the quiet bit set. */
static inline uint16_t tu_half_round(float x, int t) {
    const int mb = tu_half_mbits(t), eb = tu_half_ebits(t), bias = (1 << (eb - 1)) - 1;
    const uint16_t inf = (uint16_t)(((1 << eb) - 1) << mb);
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if (isnan(x)) return (uint16_t)(sign | inf | 1u << (mb - 1) | (u & 0x7fffff) >> (23 - mb));
    if (isinf(x)) return sign | inf;
    const double a = fabs((double)x);
    if (a == 0) return sign;
    int e;
    frexp(a, &e);
    int ue = e - 1 < 1 - bias ? 1 - bias : e - 1;        /* the exponent of a's ulp; subnormals share the lowest */
    const double v = rint(a / ldexp(1, ue - mb)) * ldexp(1, ue - mb); /* a / ulp is exact; rint rounds to even */
    if (v > ldexp((1 << (mb + 1)) - 1, (1 << eb) - 2 - bias - mb)) return sign | inf;
    if (v == 0) return sign;
    frexp(v, &e);
    ue = e - 1;
    if (ue < 1 - bias) return (uint16_t)(sign | (uint16_t)(v / ldexp(1, 1 - bias - mb)));
    return (uint16_t)(sign | (ue + bias) << mb | (uint16_t)(v / ldexp(1, ue - mb) - (1 << mb)));
}

/* x rounded to type t (0 = float32: x itself) and back, as the kernels see a stored input. */
static inline float tu_round_to(float x, int t) { return t == 0 ? x : (float)tu_half_value(tu_half_round(x, t), t); }

/* ---- misc ---- */

static inline double tu_now(void) {
#if defined(CLOCK_MONOTONIC) && !defined(_WIN32)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* Parses a seed given as decimal or 0x-hex; returns 0 (and leaves *out) when it is not a number. */
static inline int tu_parse_u64(const char *s, uint64_t *out) {
    char *end = NULL;
    if (!s || !*s) return 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (!end || *end) return 0;
    *out = (uint64_t)v;
    return 1;
}

#endif /* TEST_UTIL_H */
