/*
 * test_matmul.c: attn_matmul against a double-precision reference, on every instruction set this
 * CPU runs, over randomized shapes (1 and odd sizes, both B layouts, bias, accumulate, padded
 * strides, float32, f16 and bf16 weights; bf16 products under every attn_bf16_dot mode, the
 * instruction bitwise equal to its model), with 1, 2 and 3 threads bitwise identical, plus every
 * error status. Few-row products (M up to the few-row threshold + 2) get their own random shapes,
 * since they take another path. The 16-bit conversions (CKernels/half.h) are checked over all
 * 65536 patterns, and every ISA's in-register widening against them, bitwise, through attn_matmul.
 *
 * Tolerance per element: |c - ref| <= 1e-5 * (sum_k |a||b| + |bias| + |c0|) + 1e-30, where c0 is
 * the accumulated-into value and b the weights as stored (16-bit weights widened exactly), which
 * the reference sums in double. Each matrix sits in its own exact-size allocation and the gaps of
 * padded rows of C hold a sentinel, so reads past the ends show up under AddressSanitizer and
 * writes outside C show up here.
 *
 * Standalone: cc -O2 -fopenmp -ffp-contract=fast -ICKernels/include -ICKernels CKernels/status.c \
 *   CKernels/isa.c CKernels/parallel.c CKernels/params.c CKernels/matmul.c CKernels/kernels_*.c \
 *   Tests/CKernelsTests/test_matmul.c -lm -o /tmp/test_matmul
 * Last line: "N passed, N failed"; exit status non-zero on any failure.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "../../CKernels/half.h"

/* attn_matmul's few-row threshold (sgemm_template.h's SGEMM_FEW_ROWS). */
#define FEW_ROWS 32

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int64_t rng_int(int64_t lo, int64_t hi) { return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1)); }
static float rng_float(void) { return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

static const float SENTINEL = 1234.5f;

typedef struct shape {
    int64_t m, n, k, lda, ldb, ldc;
    int b_transposed, has_bias, accumulate;
    attn_dtype dtype;
    uint64_t flags; /* ATTN_MATMUL_BF16_PRODUCTS: the reference rounds A to bf16 */
} shape;

/* The attn_bf16_dot mode the bf16-product shapes run under, for the messages. */
static const char *products_name = "";

static const char *dtype_name(attn_dtype dt) { return dt == ATTN_DTYPE_F16 ? "f16" : dt == ATTN_DTYPE_BF16 ? "bf16" : "f32"; }

/* A size from 1 to max, often tiny or just around the register and cache block edges. */
static int64_t rng_size(int64_t max) {
    static const int64_t edges[] = {1, 2, 3, 5, 6, 7, 11, 12, 13, 15, 16, 17, 31, 32, 33, 143, 144, 145, 255, 256, 257};
    switch (rng_int(0, 2)) {
    case 0: return rng_int(1, 8);
    case 1: return edges[rng_int(0, sizeof edges / sizeof edges[0] - 1)];
    default: return rng_int(1, max);
    }
}

/* Runs one shape with each thread count; checks values, the sentinel gaps and bitwise agreement. */
static void run_shape(const shape *s, const char *isa) {
    const int64_t b_rows = s->b_transposed ? s->n : s->k, b_cols = s->b_transposed ? s->k : s->n;
    const int64_t a_len = (s->m - 1) * s->lda + s->k, b_len = (b_rows - 1) * s->ldb + b_cols;
    const int64_t c_len = (s->m - 1) * s->ldc + s->n;
    float *a = malloc(a_len * sizeof(float)), *b = malloc(b_len * sizeof(float));
    float *bias = s->has_bias ? malloc(s->n * sizeof(float)) : NULL;
    float *c0 = malloc(c_len * sizeof(float)), *c1 = malloc(c_len * sizeof(float));
    float *ct = malloc(c_len * sizeof(float));
    for (int64_t i = 0; i < a_len; i++) a[i] = rng_float();
    for (int64_t i = 0; i < b_len; i++) b[i] = rng_float();
    /* With bf16 products the reference multiplies A rounded to bf16 (attn.h), the kernel A itself. */
    float *ra = malloc(a_len * sizeof(float));
    for (int64_t i = 0; i < a_len; i++)
        ra[i] = s->flags & ATTN_MATMUL_BF16_PRODUCTS ? attn_bf16_to_f32(attn_f32_to_bf16(a[i])) : a[i];
    /* 16-bit weights: b rounded to the dtype, and b itself replaced by the widened values, which
     * the reference uses. */
    uint16_t *bh = s->dtype == ATTN_DTYPE_F32 ? NULL : malloc(b_len * sizeof(uint16_t));
    for (int64_t i = 0; bh && i < b_len; i++) {
        bh[i] = s->dtype == ATTN_DTYPE_F16 ? attn_f32_to_f16(b[i]) : attn_f32_to_bf16(b[i]);
        b[i] = s->dtype == ATTN_DTYPE_F16 ? attn_f16_to_f32(bh[i]) : attn_bf16_to_f32(bh[i]);
    }
    for (int64_t j = 0; bias && j < s->n; j++) bias[j] = rng_float();
    for (int64_t i = 0; i < c_len; i++) c0[i] = SENTINEL;
    for (int64_t i = 0; i < s->m; i++)
        for (int64_t j = 0; j < s->n; j++) c0[i * s->ldc + j] = rng_float();

    char what[256];
    snprintf(what, sizeof what, "%s m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld bt=%d bias=%d acc=%d %s%s%s", isa,
             (long long)s->m, (long long)s->n, (long long)s->k, (long long)s->lda, (long long)s->ldb,
             (long long)s->ldc, s->b_transposed, s->has_bias, s->accumulate, dtype_name(s->dtype),
             s->flags ? " bf16 products " : "", s->flags ? products_name : "");

    static const int thread_counts[] = {1, 2, 3};
    for (int t = 0; t < 3; t++) {
        float *c = t == 0 ? c1 : ct;
        memcpy(c, c0, c_len * sizeof(float));
        attn_matmul_params p = attn_matmul_params_default();
        p.m = s->m; p.n = s->n; p.k = s->k;
        p.a = a; p.lda = s->lda;
        p.b = bh ? (const void *)bh : b; p.ldb = s->ldb; p.b_transposed = s->b_transposed; p.b_dtype = s->dtype;
        p.c = c; p.ldc = s->ldc;
        p.bias = bias; p.accumulate = s->accumulate; p.num_threads = thread_counts[t];
        p.flags = s->flags;
        attn_status st = attn_matmul(&p);
        if (st != ATTN_OK) {
            char msg[320];
            snprintf(msg, sizeof msg, "%s threads=%d: status %s", what, thread_counts[t], attn_status_string(st));
            check(0, msg);
            continue;
        }
        if (t > 0) {
            char msg[320];
            snprintf(msg, sizeof msg, "%s: threads=%d differs bitwise from 1 thread", what, thread_counts[t]);
            check(memcmp(c, c1, c_len * sizeof(float)) == 0, msg);
        }
    }

    double worst = 0.0; /* largest error as a fraction of its tolerance */
    int gaps_ok = 1;
    for (int64_t i = 0; i < s->m; i++) {
        for (int64_t j = 0; j < s->ldc && i * s->ldc + j < c_len; j++) {
            const float got = c1[i * s->ldc + j];
            if (j >= s->n) {
                gaps_ok &= got == SENTINEL;
                continue;
            }
            double ref = 0.0, mag = 1e-30;
            for (int64_t q = 0; q < s->k; q++) {
                const double bv = s->b_transposed ? b[j * s->ldb + q] : b[q * s->ldb + j];
                ref += (double)ra[i * s->lda + q] * bv;
                mag += fabs((double)ra[i * s->lda + q] * bv);
            }
            if (bias) {
                ref += bias[j];
                mag += fabs(bias[j]);
            }
            if (s->accumulate) {
                ref += c0[i * s->ldc + j];
                mag += fabs(c0[i * s->ldc + j]);
            }
            const double err = fabs((double)got - ref) / (1e-5 * mag);
            if (!(err <= worst)) worst = err; /* NaN counts as worst */
        }
    }
    char msg[320];
    snprintf(msg, sizeof msg, "%s: error %.3g of tolerance", what, worst);
    check(worst <= 1.0, msg);
    snprintf(msg, sizeof msg, "%s: wrote outside C", what);
    check(gaps_ok, msg);
    free(a);
    free(ra);
    free(b);
    free(bh);
    free(bias);
    free(c0);
    free(c1);
    free(ct);
}

/* Random shapes, both layouts, bias, accumulate, padded strides, every dtype. few: the few-row
 * path, M from 1 to just past the threshold (so both paths and the switch between them run), K and
 * N odd as often as not and K longer; else sizes up to 300, often at the block edges. */
static void random_shapes(const char *isa, int count, int few, uint64_t flags) {
    for (int i = 0; i < count; i++) {
        shape s = {.flags = flags};
        s.m = few ? rng_int(1, FEW_ROWS + 2) : rng_size(300);
        s.n = few ? rng_size(300) | (int64_t)rng_int(0, 1) : rng_size(300);
        s.k = few ? rng_size(700) | (int64_t)rng_int(0, 1) : rng_size(300);
        s.b_transposed = (int)rng_int(0, 1);
        s.has_bias = (int)rng_int(0, 1);
        s.accumulate = (int)rng_int(0, 1);
        s.dtype = flags ? ATTN_DTYPE_BF16 : (attn_dtype)rng_int(0, 2);
        const int padded = (int)rng_int(0, 1);
        s.lda = s.k + (padded ? rng_int(1, 9) : 0);
        s.ldb = (s.b_transposed ? s.k : s.n) + (padded ? rng_int(1, 9) : 0);
        s.ldc = s.n + (padded ? rng_int(1, 9) : 0);
        run_shape(&s, isa);
    }
}

/* Shapes that cross every cache block: several k blocks (KC = 256), m past MC, n past NC = 1024. */
static void large_shapes(const char *isa) {
    static const shape shapes[] = {
        {300, 1100, 600, 601, 1103, 1101, 0, 1, 1, ATTN_DTYPE_F32, 0},
        {301, 1037, 513, 513, 513, 1037, 1, 1, 0, ATTN_DTYPE_F32, 0},
        {1, 2100, 300, 300, 2100, 2100, 0, 0, 1, ATTN_DTYPE_F32, 0},
        {700, 3, 777, 780, 777, 5, 1, 1, 1, ATTN_DTYPE_F32, 0},
        {577, 65, 1, 1, 65, 65, 0, 1, 0, ATTN_DTYPE_F32, 0},
        {300, 1100, 600, 601, 1103, 1101, 0, 1, 1, ATTN_DTYPE_F16, 0},
        {301, 1037, 513, 513, 513, 1037, 1, 1, 0, ATTN_DTYPE_BF16, 0},
        {1, 4864, 896, 896, 896, 4864, 1, 0, 0, ATTN_DTYPE_BF16, 0},
        {5, 1536, 384, 384, 1536, 1536, 0, 1, 1, ATTN_DTYPE_F16, 0},
        {16, 384, 1536, 1536, 1536, 384, 1, 1, 0, ATTN_DTYPE_F32, 0},
        /* few rows with Bᵀ over 1 MB (few_dot prefetches the next block of B rows), N not a
         * multiple of the block, every type */
        {3, 4867, 300, 300, 301, 4870, 1, 1, 1, ATTN_DTYPE_F32, 0},
        {7, 2051, 517, 517, 520, 2051, 1, 0, 1, ATTN_DTYPE_F16, 0},
        {2, 1001, 600, 600, 600, 1001, 1, 1, 0, ATTN_DTYPE_BF16, 0},
        /* few rows with B (K, N) over 1 MB (few_axpy prefetches 32 rows ahead), K past and short of that */
        {5, 2001, 300, 300, 2003, 2001, 0, 1, 0, ATTN_DTYPE_BF16, 0},
        {1, 40000, 20, 20, 40001, 40000, 0, 0, 1, ATTN_DTYPE_F16, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) run_shape(&shapes[i], isa);
}

static void error_statuses(void) {
    float a[64], b[64], c[64], bias[8];
    for (int i = 0; i < 64; i++) a[i] = b[i] = 1.0f;
    for (int i = 0; i < 8; i++) bias[i] = 1.0f;
    attn_matmul_params ok = attn_matmul_params_default();
    ok.m = ok.n = ok.k = 4;
    ok.a = a; ok.b = b; ok.c = c;
    ok.lda = ok.ldb = ok.ldc = 4;
    ok.bias = bias;
    struct {
        const char *name;
        attn_matmul_params p;
        attn_status want;
    } cases[] = {
        {"a NULL", ok, ATTN_ERR_NULL_POINTER},
        {"b NULL", ok, ATTN_ERR_NULL_POINTER},
        {"c NULL", ok, ATTN_ERR_NULL_POINTER},
        {"m 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"n -1", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"k 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"num_threads -1", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"num_threads > max", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"lda < k", ok, ATTN_ERR_INVALID_STRIDE},
        {"lda negative", ok, ATTN_ERR_INVALID_STRIDE},
        {"ldb < n", ok, ATTN_ERR_INVALID_STRIDE},
        {"ldb < k transposed", ok, ATTN_ERR_INVALID_STRIDE},
        {"ldc < n", ok, ATTN_ERR_INVALID_STRIDE},
        {"ldc negative", ok, ATTN_ERR_INVALID_STRIDE},
        {"a extent overflows", ok, ATTN_ERR_OVERFLOW},
        {"b extent overflows", ok, ATTN_ERR_OVERFLOW},
        {"c extent overflows", ok, ATTN_ERR_OVERFLOW},
        {"bytes overflow", ok, ATTN_ERR_OVERFLOW},
        {"b_dtype 3", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"bf16 products with float32 B", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"bf16 products with f16 B", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"an unknown flag", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"valid", ok, ATTN_OK},
    };
    cases[0].p.a = NULL;
    cases[1].p.b = NULL;
    cases[2].p.c = NULL;
    cases[3].p.m = 0;
    cases[4].p.n = -1;
    cases[5].p.k = 0;
    cases[6].p.num_threads = -1;
    cases[7].p.num_threads = ATTN_MAX_THREADS + 1;
    cases[8].p.lda = 3;
    cases[9].p.lda = -4;
    cases[10].p.ldb = 3;
    cases[11].p.b_transposed = 1, cases[11].p.n = 2, cases[11].p.k = 5, cases[11].p.lda = 5, cases[11].p.ldb = 4;
    cases[12].p.ldc = 3;
    cases[13].p.ldc = -4;
    cases[14].p.m = INT64_C(1) << 40, cases[14].p.lda = INT64_C(1) << 30;
    cases[15].p.k = INT64_C(1) << 40, cases[15].p.lda = INT64_C(1) << 40, cases[15].p.ldb = INT64_C(1) << 30;
    cases[16].p.m = INT64_C(1) << 40, cases[16].p.ldc = INT64_C(1) << 30;
    cases[17].p.m = INT64_C(1) << 31, cases[17].p.lda = INT64_C(1) << 31, cases[17].p.ldc = INT64_C(1) << 31;
    cases[18].p.b_dtype = (attn_dtype)3;
    cases[19].p.flags = ATTN_MATMUL_BF16_PRODUCTS;
    cases[20].p.flags = ATTN_MATMUL_BF16_PRODUCTS, cases[20].p.b_dtype = ATTN_DTYPE_F16;
    cases[21].p.flags = 2, cases[21].p.b_dtype = ATTN_DTYPE_BF16;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int j = 0; j < 64; j++) c[j] = SENTINEL;
        attn_status st = attn_matmul(&cases[i].p);
        int untouched = 1;
        for (int j = 0; j < 64; j++) untouched &= c[j] == SENTINEL;
        char msg[160];
        snprintf(msg, sizeof msg, "error case '%s': got %s, want %s", cases[i].name, attn_status_string(st),
                 attn_status_string(cases[i].want));
        check(st == cases[i].want, msg);
        if (cases[i].want != ATTN_OK) {
            snprintf(msg, sizeof msg, "error case '%s' wrote to C", cases[i].name);
            check(untouched, msg);
        }
    }
    check(attn_matmul(NULL) == ATTN_ERR_NULL_POINTER, "params NULL");
}

/* Every 16-bit pattern: widening against the definition (and against _Float16 where the compiler
 * has it), narrowing the widened value back gives the pattern (NaN: a quiet NaN of the same sign),
 * and narrowing rounds to nearest even: between two neighbours, the midpoint goes to the even one
 * and the floats just either side of it to the nearer one. */
static void conversions(void) {
    int f16_bad = 0, bf16_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const int sign = h >> 15, e = (h >> 10) & 31, f = h & 1023;
        const double want = (sign ? -1.0 : 1.0) * (e == 0 ? ldexp(f, -24) : e < 31 ? ldexp(1024 + f, e - 25) : INFINITY);
        const float w16 = attn_f16_to_f32((uint16_t)h), wb = attn_bf16_to_f32((uint16_t)h);
        if (e == 31 && f) /* NaN: quieted, payload and sign kept */
            f16_bad += attn_f32_bits(w16) != ((uint32_t)sign << 31 | 0x7FC00000u | (uint32_t)f << 13) ||
                       attn_f32_to_f16(w16) != (h | 0x200);
        else f16_bad += (double)w16 != want || !!signbit(w16) != sign || attn_f32_to_f16(w16) != h;
#ifdef __FLT16_MAX__
        _Float16 x;
        memcpy(&x, &h, sizeof x);
        f16_bad += !(e == 31 && f) && attn_f32_bits((float)x) != attn_f32_bits(w16);
#endif
        if (isnan(wb)) bf16_bad += attn_f32_to_bf16(wb) != (h | 0x40) || attn_f32_bits(wb) != h << 16;
        else bf16_bad += attn_f32_bits(wb) != h << 16 || attn_f32_to_bf16(wb) != h;
        /* h and h + 1 both finite, same sign: their midpoint is exact in float32. */
        const uint16_t h1 = (uint16_t)(h + 1), even = (h & 1) ? h1 : (uint16_t)h;
        if ((h & 0x7FFF) < 0x7BFF) {
            const float lo = w16, hi = attn_f16_to_f32(h1), mid = (float)(((double)lo + hi) / 2);
            const float toward_lo = nextafterf(mid, lo), toward_hi = nextafterf(mid, hi);
            f16_bad += attn_f32_to_f16(mid) != even || attn_f32_to_f16(toward_lo) != h || attn_f32_to_f16(toward_hi) != h1;
        }
        if ((h & 0x7FFF) < 0x7F7F) {
            const float lo = wb, hi = attn_bf16_to_f32(h1), mid = (float)(((double)lo + hi) / 2);
            const float toward_lo = nextafterf(mid, lo), toward_hi = nextafterf(mid, hi);
            bf16_bad += attn_f32_to_bf16(mid) != even || attn_f32_to_bf16(toward_lo) != h || attn_f32_to_bf16(toward_hi) != h1;
        }
    }
    /* Past the largest finite value: f16 overflows at 65520 (the midpoint to 2^16), bf16 carries to infinity. */
    f16_bad += attn_f32_to_f16(65519.99f) != 0x7BFF || attn_f32_to_f16(65520.0f) != 0x7C00 ||
               attn_f32_to_f16(-1e30f) != 0xFC00 || attn_f32_to_f16(INFINITY) != 0x7C00;
    bf16_bad += attn_f32_to_bf16(3.4028235e38f) != 0x7F80 || attn_f32_to_bf16(-INFINITY) != 0xFF80;
    char msg[96];
    snprintf(msg, sizeof msg, "f16 conversions: %d wrong", f16_bad);
    check(f16_bad == 0, msg);
    snprintf(msg, sizeof msg, "bf16 conversions: %d wrong", bf16_bad);
    check(bf16_bad == 0, msg);
}

/* Each ISA's widening inside attn_matmul, bitwise: B holds all 65536 patterns as one row (or, Bᵀ,
 * one column) multiplied by a = 1, on the few-row path (M = 1) and the packed path (M = 20): every
 * C element must be the widened weight, NaN payloads included (+0 for -0, as 0 + 1 * -0 is). */
static void widening_bitwise(const char *isa) {
    const int64_t n = 65536, rows[2] = {1, 20};
    uint16_t *bh = malloc(n * sizeof(uint16_t));
    float *a = malloc(20 * sizeof(float)), *c = malloc(20 * n * sizeof(float));
    for (int64_t j = 0; j < n; j++) bh[j] = (uint16_t)j;
    for (int i = 0; i < 20; i++) a[i] = 1.0f;
    for (int dt = ATTN_DTYPE_F16; dt <= ATTN_DTYPE_BF16; dt++)
        for (int t = 0; t < 2; t++)
            for (int r = 0; r < 2; r++) {
                attn_matmul_params p = attn_matmul_params_default();
                p.m = rows[r]; p.n = n; p.k = 1;
                p.a = a; p.lda = 1;
                p.b = bh; p.ldb = t ? 1 : n; p.b_transposed = t; p.b_dtype = (attn_dtype)dt;
                p.c = c; p.ldc = n;
                p.num_threads = 2;
                int bad = attn_matmul(&p) != ATTN_OK;
                for (int64_t i = 0; i < p.m * n && !bad; i++) {
                    const float want = dt == ATTN_DTYPE_F16 ? attn_f16_to_f32(bh[i % n]) : attn_bf16_to_f32(bh[i % n]);
                    /* (A bf16 signalling NaN widens as it is; the multiply-add quiets it.) */
                    const uint32_t bits = attn_f32_bits(want) | (isnan(want) ? 0x400000u : 0);
                    bad += want == 0.0f ? c[i] != 0.0f : attn_f32_bits(c[i]) != bits;
                }
                char msg[128];
                snprintf(msg, sizeof msg, "%s: %s weights widened wrongly, M = %lld, transposed %d", isa,
                         dtype_name((attn_dtype)dt), (long long)p.m, t);
                check(!bad, msg);
            }
    free(bh);
    free(a);
    free(c);
}

/* ATTN_MATMUL_BF16_PRODUCTS under each attn_bf16_dot mode this CPU has: random shapes on both paths,
 * and shapes at the edges of pair words (odd K, K = 1 and 2) and of the pairs' depth blocks (twice
 * KC = 256: K = 511, 512, 513, 1025), few rows and just past them. Then, on the avx512 instruction
 * set (the only one NATIVE changes), the instruction against its model, bitwise (attn.h promises
 * the same bits), on the packed path. */
static void bf16_products(const char *isa) {
    static const shape edges[] = {
        {33, 40, 1, 1, 40, 40, 1, 1, 0, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {40, 33, 2, 2, 33, 33, 0, 0, 1, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {37, 65, 511, 513, 511, 65, 1, 1, 1, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {45, 31, 512, 512, 31, 33, 0, 1, 0, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {300, 1100, 513, 515, 513, 1101, 1, 0, 1, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {64, 1030, 1025, 1025, 1031, 1030, 0, 1, 0, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {32, 300, 513, 513, 513, 300, 1, 1, 0, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {33, 300, 513, 513, 513, 300, 1, 1, 0, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
        {1, 2001, 300, 300, 2003, 2001, 0, 1, 0, ATTN_DTYPE_BF16, ATTN_MATMUL_BF16_PRODUCTS},
    };
    const attn_bf16_dot initial = attn_get_bf16_dot();
    for (int mode = ATTN_BF16_DOT_OFF; mode <= ATTN_BF16_DOT_EMULATED; mode++) {
        if (attn_set_bf16_dot((attn_bf16_dot)mode) != ATTN_OK) continue;
        products_name = attn_bf16_dot_name((attn_bf16_dot)mode);
        random_shapes(isa, 16, 0, ATTN_MATMUL_BF16_PRODUCTS);
        random_shapes(isa, 12, 1, ATTN_MATMUL_BF16_PRODUCTS);
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
            const shape *e = &edges[i];
            /* The model costs some hundred times the instruction: its large shapes are the bitwise check's. */
            if (mode != ATTN_BF16_DOT_EMULATED || e->m * e->n * e->k < 4000000) run_shape(e, isa);
        }
    }
    if (attn_bf16_dot_supported(ATTN_BF16_DOT_NATIVE) && attn_get_isa() == ATTN_ISA_AVX512) {
        int differ = 0;
        for (int i = 0; i < 6; i++) {
            const int64_t m = 33 + rng_int(0, 100), n = rng_size(300), k = rng_int(1, 1100), bt = rng_int(0, 1);
            float *a = malloc(m * k * sizeof(float)), *c[2] = {malloc(m * n * sizeof(float)), malloc(m * n * sizeof(float))};
            uint16_t *b = malloc(n * k * sizeof(uint16_t));
            for (int64_t e = 0; e < m * k; e++) a[e] = rng_float();
            for (int64_t e = 0; e < n * k; e++) b[e] = attn_f32_to_bf16(rng_float());
            for (int v = 0; v < 2; v++) {
                attn_set_bf16_dot(v ? ATTN_BF16_DOT_EMULATED : ATTN_BF16_DOT_NATIVE);
                attn_matmul_params p = attn_matmul_params_default();
                p.m = m; p.n = n; p.k = k; p.a = a; p.lda = k; p.b = b; p.ldb = bt ? k : n; p.b_transposed = (int)bt;
                p.b_dtype = ATTN_DTYPE_BF16; p.c = c[v]; p.ldc = n; p.flags = ATTN_MATMUL_BF16_PRODUCTS;
                differ += attn_matmul(&p) != ATTN_OK;
            }
            differ += memcmp(c[0], c[1], m * n * sizeof(float)) != 0;
            free(a), free(b), free(c[0]), free(c[1]);
        }
        char msg[160];
        snprintf(msg, sizeof msg, "%s: bf16 products on VDPBF16PS and on its model: %d of 6 shapes differ", isa, differ);
        check(differ == 0, msg);
    }
    attn_set_bf16_dot(initial);
    products_name = "";
}

/* A struct of 0.2.0's size (before b_dtype), ending its allocation: accepted, B read as float32. */
static void struct_0_2_0(void) {
    const size_t size = offsetof(attn_matmul_params, b_dtype); /* 0.2.0's sizeof on the usual ABIs */
    float a[4] = {1, 2, 3, 4}, b[4] = {0.5f, -1, 2, 4}, c[4];
    attn_matmul_params p = attn_matmul_params_default();
    p.m = p.n = p.k = p.lda = p.ldb = p.ldc = 2;
    p.a = a; p.b = b; p.c = c;
    p.struct_size = size;
    unsigned char *block = malloc(size);
    memcpy(block, &p, size);
    const attn_status st = attn_matmul((const attn_matmul_params *)block);
    check(st == ATTN_OK && c[0] == 4.5f && c[1] == 7 && c[2] == 9.5f && c[3] == 13,
          "a 0.2.0-sized attn_matmul_params runs with float32 weights");
    free(block);
}

/* A struct that ends at b_dtype (before flags), ending its allocation, its tail padding garbage:
 * accepted with no flags, so A is not rounded (1 + 2^-10 would round to 1 in bf16). */
static void struct_before_flags(void) {
    const size_t end = offsetof(attn_matmul_params, b_dtype) + sizeof(attn_dtype);
    const size_t size = (end + _Alignof(attn_matmul_params) - 1) / _Alignof(attn_matmul_params) * _Alignof(attn_matmul_params);
    float a[1] = {1.0f + 0x1p-10f}, c[1];
    const uint16_t b[1] = {attn_f32_to_bf16(1.0f)};
    attn_matmul_params p = attn_matmul_params_default();
    p.m = p.n = p.k = p.lda = p.ldb = p.ldc = 1;
    p.a = a; p.b = b; p.c = c; p.b_dtype = ATTN_DTYPE_BF16;
    p.struct_size = size;
    unsigned char *block = malloc(size);
    memcpy(block, &p, size);
    memset(block + end, 0xff, size - end);
    const attn_status st = attn_matmul((const attn_matmul_params *)block);
    check(st == ATTN_OK && c[0] == 1.0f + 0x1p-10f, "an attn_matmul_params ending at b_dtype runs without bf16 products");
    free(block);
}

int main(void) {
    error_statuses();
    conversions();
    struct_0_2_0();
    struct_before_flags();
    for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_AVX512; isa++) {
        if (!attn_isa_supported((attn_isa)isa)) continue;
        if (attn_set_isa((attn_isa)isa) != ATTN_OK) {
            check(0, "attn_set_isa of a supported ISA");
            continue;
        }
        const char *name = attn_isa_name((attn_isa)isa);
        const int before = failed;
        random_shapes(name, 150, 0, 0);
        random_shapes(name, 200, 1, 0);
        large_shapes(name);
        widening_bitwise(name);
        bf16_products(name);
        printf("%s: %s\n", name, failed == before ? "ok" : "FAILURES");
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
