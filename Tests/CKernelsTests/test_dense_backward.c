/*
 * test_dense_backward.c: the dense backward kernels against double-precision references written
 * here (not derived from the float code), on every instruction set this CPU runs.
 *
 *   matmul grads  dA = dC·Bᵀ (attn_matmul, b_transposed flipped), dB = Aᵀ·dC (a_transposed) and,
 *                 for a weight stored (N, K), dBᵀ = dCᵀ·A; random shapes (1, odd, few rows and the
 *                 packed path), padded strides, accumulate; |error| <= 1e-5 (sum |a b| + |c|), the
 *                 bound of attn_matmul; a_transposed bitwise the call on an explicit transposed
 *                 copy; a central finite difference in double of sum(C ∘ dC) on small shapes; a
 *                 struct ending at flags reads a_transposed as 0
 *   sum columns   against a double sum, accumulate, n = 1, padded rows, a NaN reaching only its column
 *   layer norm    every variance mode, from the forward's saved mean and rstd: dx against the
 *                 explicit Jacobian of a double forward (its own statistics), dweight and dbias
 *                 accumulated against double sums, NULL weight / dweight / dbias, dx in place on dout,
 *                 padded rows, n = 1, a NaN row (NaN dx there, NaN dweight, dbias unaffected); central
 *                 differences in double of sum(y ∘ dout) in x, weight and bias
 *   activations   every kind, plain and gated (d gate and d up), accumulate or not, padded rows:
 *                 against derivatives written from the textbook forms (per element 1e-6), central
 *                 differences of the double forward, NaN inputs, finite limits at ±inf
 *   softmax rows  from a double softmax rounded to float: dx against y (dout - y·dout) in double
 *                 (1e-6 of the row's sum of |y dout| terms), accumulate, in place on dout, a zero
 *                 (masked) row, a NaN row; central differences in double of sum(dout ∘ softmax(x))
 *   mean rows     dx = dout / n exactly as double rounds it, accumulate, padded rows
 *   all           thread counts 1..8 bitwise equal; every error status, nothing written on error
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "test_util.h"

static const char *isa_name = "";
static double worst_da, worst_db, worst_dbt, worst_fd, worst_cols, worst_ln, worst_ln_fd, worst_act, worst_gated;
static double worst_softmax, worst_softmax_fd;

static float *alloc_floats(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }

/* C (m, n) [ldc] (+)= op(A)·B in float through attn_matmul; A given as stored. */
static attn_status matmul(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, int at, const float *b,
                          int64_t ldb, int bt, float *c, int64_t ldc, int acc, int threads) {
    attn_matmul_params p = attn_matmul_params_default();
    p.m = m; p.n = n; p.k = k;
    p.a = a; p.lda = lda; p.a_transposed = at;
    p.b = b; p.ldb = ldb; p.b_transposed = bt;
    p.c = c; p.ldc = ldc; p.accumulate = acc; p.num_threads = threads;
    return attn_matmul(&p);
}

/* got (rows, cols) [ld] against ref[r][c] = c0[r][c] + sum_t x(r, t) y(t, c), bound 1e-5 (sum |x y| + |c0|).
 * x(r, t) = x[r * xr + t * xt], y(t, c) = y[t * yr + c * yc]. Returns the worst error / bound. */
static double check_product(const float *got, int64_t ld, const float *c0, int64_t rows, int64_t cols, int64_t depth,
                            const float *x, int64_t xr, int64_t xt, const float *y, int64_t yr, int64_t yc) {
    double worst = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double s = c0 ? c0[r * ld + c] : 0.0, mag = c0 ? fabs(c0[r * ld + c]) : 0.0;
            for (int64_t t = 0; t < depth; t++) {
                const double v = (double)x[r * xr + t * xt] * (double)y[t * yr + c * yc];
                s += v;
                mag += fabs(v);
            }
            const double ratio = fabs((double)got[r * ld + c] - s) / (1e-5 * mag + 1e-30);
            if (!(ratio <= worst)) worst = ratio; /* NaN stays the worst */
        }
    return worst;
}

static void matmul_case(tu_rng *r, int64_t m, int64_t n, int64_t k) {
    /* Forward C (m, n) = A (m, k) · B, B stored (k, n) or, when bt, (n, k). */
    const int bt = (int)tu_rng_range(r, 0, 1), acc = (int)tu_rng_range(r, 0, 1);
    const int64_t lda = k + tu_rng_range(r, 0, 3), ldb = (bt ? k : n) + tu_rng_range(r, 0, 3);
    const int64_t ldc = n + tu_rng_range(r, 0, 3), ldda = k + tu_rng_range(r, 0, 2);
    const int64_t lddb = (bt ? k : n) + tu_rng_range(r, 0, 2);
    float *a = alloc_floats(m * lda), *b = alloc_floats((bt ? n : k) * ldb), *dc = alloc_floats(m * ldc);
    float *da = alloc_floats(m * ldda), *db = alloc_floats((bt ? n : k) * lddb);
    float *da0 = alloc_floats(m * ldda), *db0 = alloc_floats((bt ? n : k) * lddb);
    tu_fill_uniform(r, a, (size_t)(m * lda), -1, 1);
    tu_fill_uniform(r, b, (size_t)((bt ? n : k) * ldb), -1, 1);
    tu_fill_uniform(r, dc, (size_t)(m * ldc), -1, 1);
    tu_fill_uniform(r, da0, (size_t)(m * ldda), -1, 1);
    tu_fill_uniform(r, db0, (size_t)((bt ? n : k) * lddb), -1, 1);
    memcpy(da, da0, (size_t)(m * ldda) * sizeof(float));
    memcpy(db, db0, (size_t)((bt ? n : k) * lddb) * sizeof(float));
    char what[160];
    snprintf(what, sizeof what, "%s m=%lld n=%lld k=%lld bt=%d acc=%d", isa_name, (long long)m, (long long)n,
             (long long)k, bt, acc);

    /* dA (m, k) = dC (m, n) · Bᵀ: B (k, n) is Bᵀ's transposed layout, and B stored (n, k) is Bᵀ itself. */
    TU_CHECK(matmul(m, k, n, dc, ldc, 0, b, ldb, !bt, da, ldda, acc, 0) == ATTN_OK, "%s: dA status", what);
    const double ra = check_product(da, ldda, acc ? da0 : NULL, m, k, n, dc, ldc, 1, b, bt ? ldb : 1, bt ? 1 : ldb);
    TU_CHECK(ra <= 1.0, "%s: dA error / bound %.3g", what, ra);
    if (ra > worst_da) worst_da = ra;

    if (!bt) {
        /* dB (k, n) = Aᵀ · dC: a = A (m, k) read as Aᵀ's transposed layout. */
        TU_CHECK(matmul(k, n, m, a, lda, 1, dc, ldc, 0, db, lddb, acc, 0) == ATTN_OK, "%s: dB status", what);
        const double rb = check_product(db, lddb, acc ? db0 : NULL, k, n, m, a, 1, lda, dc, ldc, 1);
        TU_CHECK(rb <= 1.0, "%s: dB error / bound %.3g", what, rb);
        if (rb > worst_db) worst_db = rb;
    } else {
        /* The weight stored (n, k): dBᵀ (n, k) = dCᵀ · A. */
        TU_CHECK(matmul(n, k, m, dc, ldc, 1, a, lda, 0, db, lddb, acc, 0) == ATTN_OK, "%s: dBt status", what);
        const double rb = check_product(db, lddb, acc ? db0 : NULL, n, k, m, dc, 1, ldc, a, lda, 1);
        TU_CHECK(rb <= 1.0, "%s: dBt error / bound %.3g", what, rb);
        if (rb > worst_dbt) worst_dbt = rb;
    }

    /* a_transposed is the multiply of the transposed copy, bit for bit; and any thread count. */
    float *at = alloc_floats(k * m), *want = alloc_floats(k * n), *got = alloc_floats(k * n);
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++) at[p * m + i] = a[i * lda + p];
    TU_CHECK(matmul(k, n, m, at, m, 0, dc, ldc, 0, want, n, 0, 1) == ATTN_OK, "%s: copy status", what);
    int same = 1;
    for (int t = 1; t <= 8; t++) {
        memset(got, 0xff, (size_t)(k * n) * sizeof(float));
        same &= matmul(k, n, m, a, lda, 1, dc, ldc, 0, got, n, 0, t) == ATTN_OK &&
                memcmp(got, want, (size_t)(k * n) * sizeof(float)) == 0;
    }
    TU_CHECK(same, "%s: a_transposed not bitwise the copy's product for threads 1..8", what);
    /* With bf16 products (dC as bf16 bits), under each bf16 dot mode: pair words, their model and
     * the rounded A are packed from Aᵀ as from the copy. */
    uint16_t *dch = malloc((size_t)(m * ldc) * sizeof(uint16_t));
    TU_CHECK(attn_convert(dch, ATTN_DTYPE_BF16, dc, ATTN_DTYPE_F32, m * ldc) == ATTN_OK, "%s: convert", what);
    const attn_bf16_dot mode = attn_get_bf16_dot();
    const attn_bf16_dot modes[] = {ATTN_BF16_DOT_NATIVE, ATTN_BF16_DOT_EMULATED, ATTN_BF16_DOT_OFF};
    for (int d = 0; d < 3; d++) {
        if (attn_set_bf16_dot(modes[d]) != ATTN_OK) continue;
        attn_matmul_params q = attn_matmul_params_default();
        q.m = k; q.n = n; q.k = m; q.a = at; q.lda = m; q.b = dch; q.ldb = ldc; q.b_dtype = ATTN_DTYPE_BF16;
        q.flags = ATTN_MATMUL_BF16_PRODUCTS; q.c = want; q.ldc = n; q.num_threads = 1;
        TU_CHECK(attn_matmul(&q) == ATTN_OK, "%s: bf16 copy status", what);
        same = 1;
        for (int t = 1; t <= 4; t++) {
            memset(got, 0xff, (size_t)(k * n) * sizeof(float));
            q.a = a; q.lda = lda; q.a_transposed = 1; q.c = got; q.num_threads = t;
            same &= attn_matmul(&q) == ATTN_OK && memcmp(got, want, (size_t)(k * n) * sizeof(float)) == 0;
        }
        TU_CHECK(same, "%s: bf16 products (dot mode %d), a_transposed not bitwise the copy's product", what, (int)modes[d]);
    }
    attn_set_bf16_dot(mode);
    free(dch);
    free(at); free(want); free(got);
    free(a); free(b); free(dc); free(da); free(db); free(da0); free(db0);
}

/* Central differences in double of L = sum(C ∘ dC), C = A·B, against the kernels' dA and dB. */
static void matmul_finite_difference(tu_rng *r) {
    enum { M = 5, N = 3, K = 4 };
    float a[M * K], b[K * N], dc[M * N], da[M * K], db[K * N];
    tu_fill_uniform(r, a, M * K, -1, 1);
    tu_fill_uniform(r, b, K * N, -1, 1);
    tu_fill_uniform(r, dc, M * N, -1, 1);
    TU_CHECK(matmul(M, K, N, dc, N, 0, b, N, 1, da, K, 0, 0) == ATTN_OK, "fd dA status");
    TU_CHECK(matmul(K, N, M, a, K, 1, dc, N, 0, db, N, 0, 0) == ATTN_OK, "fd dB status");
    double av[M * K], bv[K * N];
    for (int i = 0; i < M * K; i++) av[i] = a[i];
    for (int i = 0; i < K * N; i++) bv[i] = b[i];
    const double h = 1e-4;
    for (int which = 0; which < 2; which++) {
        double *v = which ? bv : av;
        const float *g = which ? db : da;
        for (int e = 0; e < (which ? K * N : M * K); e++) {
            double loss[2];
            for (int s = 0; s < 2; s++) {
                const double keep = v[e];
                v[e] = keep + (s ? -h : h);
                double l = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double c = 0;
                        for (int p = 0; p < K; p++) c += av[i * K + p] * bv[p * N + j];
                        l += c * dc[i * N + j];
                    }
                loss[s] = l;
                v[e] = keep;
            }
            const double fd = (loss[0] - loss[1]) / (2 * h);
            const double ratio = fabs(fd - g[e]) / 1e-5;
            if (ratio > worst_fd) worst_fd = ratio;
            TU_CHECK(ratio <= 1.0, "%s: finite difference of d%c[%d]: %.9g, kernel %.9g", isa_name, which ? 'B' : 'A',
                     e, fd, (double)g[e]);
        }
    }
}

static attn_status sum_columns(float *out, const float *x, int64_t rows, int64_t n, int64_t ld, int acc, int threads) {
    attn_sum_columns_params p = attn_sum_columns_params_default();
    p.rows = rows; p.n = n; p.out = out; p.x = x; p.ld = ld; p.accumulate = acc; p.num_threads = threads;
    return attn_sum_columns(&p);
}

static void sum_columns_case(tu_rng *r, int64_t rows, int64_t n) {
    const int64_t ld = n + tu_rng_range(r, 0, 5);
    const int acc = (int)tu_rng_range(r, 0, 1);
    float *x = alloc_floats(rows * ld), *out = alloc_floats(n), *out0 = alloc_floats(n), *other = alloc_floats(n);
    tu_fill_uniform(r, x, (size_t)(rows * ld), -2, 2);
    tu_fill_uniform(r, out0, (size_t)n, -2, 2);
    const int64_t nan_col = n > 2 && tu_rng_chance(r, 0.3) ? tu_rng_range(r, 0, n - 1) : -1;
    if (nan_col >= 0) x[tu_rng_range(r, 0, rows - 1) * ld + nan_col] = NAN;
    memcpy(out, out0, (size_t)n * sizeof(float));
    TU_CHECK(sum_columns(out, x, rows, n, ld, acc, 0) == ATTN_OK, "sum_columns status");
    double *ref = malloc((size_t)n * sizeof(double));
    for (int64_t j = 0; j < n; j++) {
        double s = acc ? out0[j] : 0.0;
        for (int64_t i = 0; i < rows; i++) s += x[i * ld + j];
        ref[j] = s;
    }
    const tu_cmp c = tu_compare(out, ref, (size_t)n, 1e-6 * sqrt((double)rows + 1));
    TU_CHECK(c.ok, "%s sum_columns rows=%lld n=%lld ld=%lld acc=%d: error %.3g", isa_name, (long long)rows,
             (long long)n, (long long)ld, acc, c.max_err);
    const double scale = tu_max_abs_finite(ref, (size_t)n);
    const double ratio = c.max_err / (1e-6 * sqrt((double)rows + 1) * (scale > 1 ? scale : 1));
    if (ratio > worst_cols) worst_cols = ratio;
    int same = 1;
    for (int t = 1; t <= 8; t++) {
        memcpy(other, out0, (size_t)n * sizeof(float));
        same &= sum_columns(other, x, rows, n, ld, acc, t) == ATTN_OK &&
                memcmp(other, out, (size_t)n * sizeof(float)) == 0;
    }
    TU_CHECK(same, "%s sum_columns rows=%lld n=%lld: threads 1..8 not bitwise equal", isa_name, (long long)rows,
             (long long)n);
    free(x); free(out); free(out0); free(other); free(ref);
}

static void test_matmul_grads(tu_rng *r) {
    for (int i = 0; i < 60; i++) {
        const int big = i % 3 == 0;
        matmul_case(r, tu_rng_range(r, 1, big ? 150 : 33), tu_rng_range(r, 1, big ? 90 : 40),
                    tu_rng_range(r, 1, big ? 120 : 40));
    }
    matmul_case(r, 1, 1, 1);
    matmul_case(r, 200, 1, 3);
    matmul_finite_difference(r);
}

static void test_sum_columns(tu_rng *r) {
    for (int i = 0; i < 40; i++) sum_columns_case(r, tu_rng_range(r, 1, 300), tu_rng_range(r, 1, 700));
    sum_columns_case(r, 1, 1);
    sum_columns_case(r, 2000, 1);
    sum_columns_case(r, 300, 1500);
}

/* ---- row softmax and mean pooling backward ---------------------------------------------------- */

/* softmax of a double row into y (n,). */
static void softmax_double(const double *x, int64_t n, double *y) {
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) m = fmax(m, x[j]);
    for (int64_t j = 0; j < n; j++) sum += (y[j] = exp(x[j] - m));
    for (int64_t j = 0; j < n; j++) y[j] /= sum;
}

static attn_status softmax_backward(int64_t rows, int64_t n, float *dx, int64_t ld_dx, const float *y, int64_t ld_y,
                                    const float *dout, int64_t ld_dout, int accumulate, int threads) {
    attn_softmax_rows_backward_params p = attn_softmax_rows_backward_params_default();
    p.rows = rows; p.n = n; p.dx = dx; p.ld_dx = ld_dx; p.y = y; p.ld_y = ld_y; p.dout = dout; p.ld_dout = ld_dout;
    p.accumulate = accumulate; p.num_threads = threads;
    return attn_softmax_rows_backward(&p);
}

static void test_softmax_backward(tu_rng *r) {
    for (int t = 0; t < 40; t++) {
        const int64_t rows = tu_rng_range(r, 1, 6), n = t == 0 ? 1 : tu_rng_range(r, 1, 70), pad = tu_rng_range(r, 0, 3);
        const int64_t ld = n + pad, total = rows * ld;
        const int accumulate = t % 3 == 1, special = t % 5 == 4;
        float *y = alloc_floats(total), *dout = alloc_floats(total), *dx = alloc_floats(total), *dx0 = alloc_floats(total);
        double *xd = malloc(sizeof(double) * (size_t)n), *yd = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < total; i++) {
            dout[i] = tu_rng_uniform(r, -2, 2);
            dx[i] = dx0[i] = tu_rng_uniform(r, -1, 1);
            y[i] = 0.0f;
        }
        for (int64_t row = 0; row < rows; row++) {
            for (int64_t j = 0; j < n; j++) xd[j] = 3.0 * tu_rng_uniform(r, -1, 1);
            softmax_double(xd, n, yd);
            for (int64_t j = 0; j < n; j++) y[row * ld + j] = (float)yd[j];
        }
        if (special && rows > 1) { /* row 0: a masked row's zeros; row 1: NaN */
            for (int64_t j = 0; j < n; j++) y[j] = 0.0f;
            y[ld] = NAN;
        }
        TU_CHECK(softmax_backward(rows, n, dx, ld, y, ld, dout, ld, accumulate, 1) == ATTN_OK, "softmax backward status");
        for (int64_t row = 0; row < rows; row++) {
            double dot = 0, mag = 0;
            for (int64_t j = 0; j < n; j++) {
                dot += (double)y[row * ld + j] * dout[row * ld + j];
                mag += fabs((double)y[row * ld + j] * dout[row * ld + j]);
            }
            for (int64_t j = 0; j < n; j++) {
                const int64_t i = row * ld + j;
                const double want = (accumulate ? (double)dx0[i] : 0.0) + (double)y[i] * ((double)dout[i] - dot);
                if (isnan(want)) { TU_CHECK(isnan(dx[i]), "softmax backward: NaN row gave %g", dx[i]); continue; }
                const double tol = 1e-6 * (fabs(want) + fabs((double)y[i]) * (fabs((double)dout[i]) + mag) +
                                           (accumulate ? fabs((double)dx0[i]) : 0.0)) + 1e-30;
                const double e = fabs(dx[i] - want) / tol;
                if (e > worst_softmax) worst_softmax = e;
                TU_CHECK(e <= 1.0, "softmax backward rows %lld n %lld [%lld]: %g vs %g", (long long)rows, (long long)n,
                         (long long)i, dx[i], want);
            }
            for (int64_t j = n; j < ld; j++)
                TU_CHECK(dx[row * ld + j] == dx0[row * ld + j], "softmax backward wrote a row gap");
        }
        float *again = alloc_floats(total);
        for (int threads = 2; threads <= 8; threads++) {
            memcpy(again, dx0, sizeof(float) * (size_t)total);
            softmax_backward(rows, n, again, ld, y, ld, dout, ld, accumulate, threads);
            TU_CHECK(!memcmp(again, dx, sizeof(float) * (size_t)total), "softmax backward: %d threads differ", threads);
        }
        if (!accumulate) { /* in place on dout */
            memcpy(again, dout, sizeof(float) * (size_t)total);
            int same = softmax_backward(rows, n, again, ld, y, ld, again, ld, 0, 2) == ATTN_OK;
            for (int64_t row = 0; row < rows; row++)
                same &= !memcmp(again + row * ld, dx + row * ld, sizeof(float) * (size_t)n);
            TU_CHECK(same, "softmax backward in place differs");
        }
        free(again); free(y); free(dout); free(dx); free(dx0); free(xd); free(yd);
    }
    /* Central differences of sum(dout ∘ softmax(x)) in x, in double, against dx from y. */
    for (int64_t n = 1; n <= 9; n += 4) {
        double x[9], yd[9], yp[9], ym[9];
        float y[9], dout[9], dx[9];
        for (int64_t j = 0; j < n; j++) { x[j] = tu_rng_uniform(r, -2, 2); dout[j] = tu_rng_uniform(r, -1, 1); }
        softmax_double(x, n, yd);
        for (int64_t j = 0; j < n; j++) y[j] = (float)yd[j];
        softmax_backward(1, n, dx, n, y, n, dout, n, 0, 1);
        for (int64_t j = 0; j < n; j++) {
            const double h = 1e-5, keep = x[j];
            double lp = 0, lm = 0;
            x[j] = keep + h; softmax_double(x, n, yp);
            x[j] = keep - h; softmax_double(x, n, ym);
            x[j] = keep;
            for (int64_t k = 0; k < n; k++) { lp += dout[k] * yp[k]; lm += dout[k] * ym[k]; }
            const double fd = (lp - lm) / (2 * h), e = fabs(dx[j] - fd) / 1e-5;
            if (e > worst_softmax_fd) worst_softmax_fd = e;
            TU_CHECK(e <= 1.0, "softmax backward n %lld: dx[%lld] %g, finite difference %g", (long long)n, (long long)j, dx[j], fd);
        }
    }
}

static attn_status mean_backward(int64_t rows, int64_t n, float *dx, int64_t ld, const float *dout, int accumulate,
                                 int threads) {
    attn_mean_rows_backward_params p = attn_mean_rows_backward_params_default();
    p.rows = rows; p.n = n; p.dx = dx; p.ld_dx = ld; p.dout = dout; p.accumulate = accumulate; p.num_threads = threads;
    return attn_mean_rows_backward(&p);
}

static void test_mean_backward(tu_rng *r) {
    for (int t = 0; t < 20; t++) {
        const int64_t rows = tu_rng_range(r, 1, 300), n = tu_rng_range(r, 1, 90), ld = n + tu_rng_range(r, 0, 2);
        const int accumulate = t % 2;
        float *dx = alloc_floats(rows * ld), *dx0 = alloc_floats(rows * ld), *dout = alloc_floats(rows);
        for (int64_t i = 0; i < rows * ld; i++) dx[i] = dx0[i] = tu_rng_uniform(r, -1, 1);
        for (int64_t i = 0; i < rows; i++) dout[i] = tu_rng_uniform(r, -3, 3);
        TU_CHECK(mean_backward(rows, n, dx, ld, dout, accumulate, 1) == ATTN_OK, "mean backward status");
        int ok = 1;
        for (int64_t row = 0; row < rows; row++)
            for (int64_t j = 0; j < ld; j++) {
                const int64_t i = row * ld + j;
                const float want = j >= n ? dx0[i]
                                 : (float)((accumulate ? (double)dx0[i] : 0.0) + (double)dout[row] / (double)n);
                ok &= dx[i] == want;
            }
        TU_CHECK(ok, "mean backward rows %lld n %lld accumulate %d: not dout / n", (long long)rows, (long long)n, accumulate);
        float *again = alloc_floats(rows * ld);
        for (int threads = 2; threads <= 8; threads++) {
            memcpy(again, dx0, sizeof(float) * (size_t)(rows * ld));
            mean_backward(rows, n, again, ld, dout, accumulate, threads);
            TU_CHECK(!memcmp(again, dx, sizeof(float) * (size_t)(rows * ld)), "mean backward: %d threads differ", threads);
        }
        free(again); free(dx); free(dx0); free(dout);
    }
}

static void test_softmax_mean_backward_errors(void) {
    float y[16], dout[16], dx[16];
    for (int i = 0; i < 16; i++) { y[i] = 1.0f / 8; dout[i] = (float)i; dx[i] = -9.0f; }
    struct { const char *what; attn_status got, want; } c[] = {
        {"softmax NULL dx", softmax_backward(2, 8, NULL, 8, y, 8, dout, 8, 0, 1), ATTN_ERR_NULL_POINTER},
        {"softmax NULL y", softmax_backward(2, 8, dx, 8, NULL, 8, dout, 8, 0, 1), ATTN_ERR_NULL_POINTER},
        {"softmax rows 0", softmax_backward(0, 8, dx, 8, y, 8, dout, 8, 0, 1), ATTN_ERR_INVALID_ARGUMENT},
        {"softmax n -1", softmax_backward(2, -1, dx, 8, y, 8, dout, 8, 0, 1), ATTN_ERR_INVALID_ARGUMENT},
        {"softmax threads", softmax_backward(2, 8, dx, 8, y, 8, dout, 8, 0, ATTN_MAX_THREADS + 1), ATTN_ERR_INVALID_ARGUMENT},
        {"softmax ld_y < n", softmax_backward(2, 8, dx, 8, y, 7, dout, 8, 0, 1), ATTN_ERR_INVALID_STRIDE},
        {"softmax in place accumulating", softmax_backward(2, 8, dout, 8, y, 8, dout, 8, 1, 1), ATTN_ERR_INVALID_STRIDE},
        {"softmax overflow", softmax_backward(INT64_MAX / 4, 8, dx, INT64_MAX / 8, y, 8, dout, 8, 0, 1), ATTN_ERR_OVERFLOW},
        {"mean NULL dout", mean_backward(2, 8, dx, 8, NULL, 0, 1), ATTN_ERR_NULL_POINTER},
        {"mean n 0", mean_backward(2, 0, dx, 8, dout, 0, 1), ATTN_ERR_INVALID_ARGUMENT},
        {"mean ld < n", mean_backward(2, 8, dx, 4, dout, 0, 1), ATTN_ERR_INVALID_STRIDE},
        {"mean overflow", mean_backward(INT64_MAX / 4, 8, dx, INT64_MAX / 8, dout, 0, 1), ATTN_ERR_OVERFLOW},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        TU_CHECK(c[i].got == c[i].want, "%s: %s, want %s", c[i].what, attn_status_string(c[i].got), attn_status_string(c[i].want));
    int kept = 1;
    for (int i = 0; i < 16; i++) kept &= dx[i] == -9.0f && dout[i] == (float)i;
    TU_CHECK(kept, "a rejected softmax or mean backward wrote something");
    attn_softmax_rows_backward_params sp = attn_softmax_rows_backward_params_default();
    attn_mean_rows_backward_params mp = attn_mean_rows_backward_params_default();
    sp.struct_size = sizeof sp - 4;
    mp.struct_size = 0;
    TU_CHECK(attn_softmax_rows_backward(&sp) == ATTN_ERR_INVALID_ARGUMENT && attn_mean_rows_backward(&mp) == ATTN_ERR_INVALID_ARGUMENT,
             "a struct_size no release declared was accepted");
    TU_CHECK(attn_softmax_rows_backward(NULL) == ATTN_ERR_NULL_POINTER && attn_mean_rows_backward(NULL) == ATTN_ERR_NULL_POINTER,
             "NULL params");
}

static void test_errors(void) {
    float x[64], out[8], before[8];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    for (int i = 0; i < 8; i++) before[i] = out[i] = -7.0f;
    attn_sum_columns_params p = attn_sum_columns_params_default();
    p.rows = 4; p.n = 8; p.out = out; p.x = x; p.ld = 8;
    struct { const char *what; attn_status want; attn_sum_columns_params p; } cases[12];
    int n = 0;
    cases[n++] = (__typeof__(cases[0])){"NULL out", ATTN_ERR_NULL_POINTER, p};
    cases[n - 1].p.out = NULL;
    cases[n++] = (__typeof__(cases[0])){"NULL x", ATTN_ERR_NULL_POINTER, p};
    cases[n - 1].p.x = NULL;
    cases[n++] = (__typeof__(cases[0])){"rows 0", ATTN_ERR_INVALID_ARGUMENT, p};
    cases[n - 1].p.rows = 0;
    cases[n++] = (__typeof__(cases[0])){"n 0", ATTN_ERR_INVALID_ARGUMENT, p};
    cases[n - 1].p.n = 0;
    cases[n++] = (__typeof__(cases[0])){"threads -1", ATTN_ERR_INVALID_ARGUMENT, p};
    cases[n - 1].p.num_threads = -1;
    cases[n++] = (__typeof__(cases[0])){"threads huge", ATTN_ERR_INVALID_ARGUMENT, p};
    cases[n - 1].p.num_threads = 1 << 20;
    cases[n++] = (__typeof__(cases[0])){"ld < n", ATTN_ERR_INVALID_STRIDE, p};
    cases[n - 1].p.ld = 7;
    cases[n++] = (__typeof__(cases[0])){"overflow", ATTN_ERR_OVERFLOW, p};
    cases[n - 1].p.rows = INT64_MAX / 4;
    cases[n++] = (__typeof__(cases[0])){"struct_size", ATTN_ERR_INVALID_ARGUMENT, p};
    cases[n - 1].p.struct_size = 3;
    for (int i = 0; i < n; i++) {
        const attn_status s = attn_sum_columns(&cases[i].p);
        TU_CHECK(s == cases[i].want, "sum_columns %s: status %s", cases[i].what, attn_status_string(s));
        TU_CHECK(memcmp(out, before, sizeof out) == 0, "sum_columns %s: wrote on error", cases[i].what);
    }
    TU_CHECK(attn_sum_columns(NULL) == ATTN_ERR_NULL_POINTER, "sum_columns NULL params");

    /* attn_matmul with a_transposed: Aᵀ (K, M) needs lda >= M. */
    float c[16], cb[16];
    for (int i = 0; i < 16; i++) cb[i] = c[i] = -7.0f;
    TU_CHECK(matmul(4, 4, 4, x, 3, 1, x, 4, 0, c, 4, 0, 0) == ATTN_ERR_INVALID_STRIDE, "a_transposed lda < m");
    TU_CHECK(matmul(4, 4, 4, x, 4, 1, x, 3, 0, c, 4, 0, 0) == ATTN_ERR_INVALID_STRIDE, "a_transposed ldb < n");
    TU_CHECK(matmul(4, 4, 4, x, 4, 1, x, 4, 0, c, 3, 0, 0) == ATTN_ERR_INVALID_STRIDE, "a_transposed ldc < n");
    TU_CHECK(matmul(0, 4, 4, x, 4, 1, x, 4, 0, c, 4, 0, 0) == ATTN_ERR_INVALID_ARGUMENT, "a_transposed m 0");
    TU_CHECK(matmul(4, 4, 4, NULL, 4, 1, x, 4, 0, c, 4, 0, 0) == ATTN_ERR_NULL_POINTER, "a_transposed NULL a");
    TU_CHECK(matmul(4, 4, 4, x, 4, 1, x, 4, 0, c, 4, 0, -1) == ATTN_ERR_INVALID_ARGUMENT, "a_transposed threads");
    TU_CHECK(matmul(4, 4, INT64_MAX / 2, x, 4, 1, x, 4, 0, c, 4, 0, 0) == ATTN_ERR_OVERFLOW, "a_transposed overflow");
    attn_matmul_params q = attn_matmul_params_default();
    q.m = q.n = q.k = 4; q.a = x; q.lda = 4; q.a_transposed = 1; q.b = x; q.ldb = 4; q.c = c; q.ldc = 4;
    q.b_dtype = (attn_dtype)99;
    TU_CHECK(attn_matmul(&q) == ATTN_ERR_INVALID_ARGUMENT, "a_transposed bad b_dtype");
    TU_CHECK(memcmp(c, cb, sizeof c) == 0, "a_transposed: wrote on error");
    /* The multiply's own checks come before Aᵀ's copy is allocated (or Aᵀ read): with M = K = 2^20
     * (a 4 TiB copy) and an invalid ldc, b_dtype or flag, the status is that error, not
     * OUT_OF_MEMORY (found by fuzz_backward). */
    attn_matmul_params big = q;
    big.m = big.k = (int64_t)1 << 20; big.lda = big.m; big.b_dtype = ATTN_DTYPE_F32; big.num_threads = 1;
    big.ldc = 3;
    TU_CHECK(attn_matmul(&big) == ATTN_ERR_INVALID_STRIDE, "a_transposed 2^20 x 2^20, ldc < n: not INVALID_STRIDE");
    big.ldc = 4; big.b_dtype = (attn_dtype)9;
    TU_CHECK(attn_matmul(&big) == ATTN_ERR_INVALID_ARGUMENT, "a_transposed 2^20 x 2^20, bad b_dtype: not INVALID_ARGUMENT");
    big.b_dtype = ATTN_DTYPE_F32; big.flags = 2;
    TU_CHECK(attn_matmul(&big) == ATTN_ERR_INVALID_ARGUMENT, "a_transposed 2^20 x 2^20, unknown flag: not INVALID_ARGUMENT");
    TU_CHECK(memcmp(c, cb, sizeof c) == 0, "a_transposed 2^20 x 2^20: wrote on error");

    /* A struct ending at flags (the layout before a_transposed) reads a_transposed as 0. */
    const size_t old = (offsetof(attn_matmul_params, flags) + sizeof(uint64_t) + _Alignof(attn_matmul_params) - 1) /
                       _Alignof(attn_matmul_params) * _Alignof(attn_matmul_params);
    float want[16];
    TU_CHECK(matmul(4, 4, 4, x, 4, 0, x, 4, 0, want, 4, 0, 1) == ATTN_OK, "plain product");
    q.b_dtype = ATTN_DTYPE_F32; q.num_threads = 1; q.struct_size = old;
    TU_CHECK(attn_matmul(&q) == ATTN_OK && memcmp(c, want, sizeof c) == 0,
             "a struct of %zu bytes (ending at flags) reads a_transposed as 0", old);
}

/* The double forward: row (n,) -> y (n,), and x̂ and s = rstd of its own statistics. */
static void ln_forward_double(const double *x, int64_t n, const double *w, const double *b, double eps, int rms,
                              double *y, double *xhat, double *s_out) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < n; j++) mean += x[j];
    mean = rms ? 0.0 : mean / (double)n;
    for (int64_t j = 0; j < n; j++) var += (x[j] - mean) * (x[j] - mean);
    const double s = 1.0 / sqrt(var / (double)n + eps);
    for (int64_t j = 0; j < n; j++) {
        xhat[j] = (x[j] - mean) * s;
        if (y) y[j] = xhat[j] * (w ? w[j] : 1.0) + (b ? b[j] : 0.0);
    }
    *s_out = s;
}

static attn_status ln_backward(const attn_layer_norm_backward_params *base, int threads) {
    attn_layer_norm_backward_params p = *base;
    p.num_threads = threads;
    return attn_layer_norm_backward(&p);
}

static void layer_norm_case(tu_rng *r, int64_t rows, int64_t n, attn_variance mode) {
    const int rms = mode == ATTN_VARIANCE_RMS, has_w = tu_rng_chance(r, 0.8), has_dw = tu_rng_chance(r, 0.8);
    const int has_db = tu_rng_chance(r, 0.8), nan_row = rows > 1 && tu_rng_chance(r, 0.3);
    const int inplace = tu_rng_chance(r, 0.25);
    const int64_t ld_x = n + tu_rng_range(r, 0, 3), ld_d = n + tu_rng_range(r, 0, 3);
    const int64_t ld_dx = inplace ? ld_d : n + tu_rng_range(r, 0, 3);
    const float eps = 1e-5f;
    float *x = alloc_floats(rows * ld_x), *y = alloc_floats(rows * ld_x), *dout = alloc_floats(rows * ld_d);
    float *dx = alloc_floats(rows * (ld_dx > ld_d ? ld_dx : ld_d)), *w = alloc_floats(n), *b = alloc_floats(n);
    float *mean = alloc_floats(rows), *rstd = alloc_floats(rows);
    float *dw = alloc_floats(n), *db = alloc_floats(n), *dw0 = alloc_floats(n), *db0 = alloc_floats(n);
    float *dx2 = alloc_floats(rows * ld_dx), *dw2 = alloc_floats(n), *db2 = alloc_floats(n);
    tu_fill_uniform(r, x, (size_t)(rows * ld_x), -2, 2);
    const float shift = tu_rng_uniform(r, -3, 3);
    for (int64_t i = 0; i < rows * ld_x; i++) x[i] += shift;
    tu_fill_uniform(r, dout, (size_t)(rows * ld_d), -1, 1);
    tu_fill_uniform(r, w, (size_t)n, 0.5f, 1.5f);
    tu_fill_uniform(r, b, (size_t)n, -1, 1);
    tu_fill_uniform(r, dw0, (size_t)n, -1, 1);
    tu_fill_uniform(r, db0, (size_t)n, -1, 1);
    const int64_t bad = nan_row ? tu_rng_range(r, 0, rows - 1) : -1;
    if (bad >= 0) x[bad * ld_x + tu_rng_range(r, 0, n - 1)] = NAN;
    attn_layer_norm_params f = attn_layer_norm_params_default();
    f.rows = rows; f.n = n; f.out = y; f.ld_out = ld_x; f.x = x; f.ld_x = ld_x; f.weight = has_w ? w : NULL;
    f.bias = b; f.eps = eps; f.variance = mode; f.mean = mean; f.rstd = rstd;
    TU_CHECK(attn_layer_norm(&f) == ATTN_OK, "layer norm forward");

    attn_layer_norm_backward_params p = attn_layer_norm_backward_params_default();
    p.rows = rows; p.n = n; p.dx = inplace ? (float *)dout : dx; p.ld_dx = ld_dx; p.dout = dout; p.ld_dout = ld_d;
    p.x = x; p.ld_x = ld_x; p.mean = rms ? NULL : mean; p.rstd = rstd; p.weight = has_w ? w : NULL;
    p.dweight = has_dw ? dw : NULL; p.dbias = has_db ? db : NULL; p.variance = mode;
    float *dout_copy = alloc_floats(rows * ld_d);
    memcpy(dout_copy, dout, (size_t)(rows * ld_d) * sizeof(float));

    /* References from dout before the call (it may be overwritten). */
    double *ref_dx = malloc((size_t)(rows * n) * sizeof(double)), *ref_dw = malloc((size_t)n * sizeof(double));
    double *ref_db = malloc((size_t)n * sizeof(double)), *xr = malloc((size_t)n * sizeof(double));
    double *xh = malloc((size_t)n * sizeof(double)), *wd = malloc((size_t)n * sizeof(double));
    for (int64_t j = 0; j < n; j++) {
        ref_dw[j] = dw0[j];
        ref_db[j] = db0[j];
        wd[j] = has_w ? w[j] : 1.0;
    }
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < n; j++) xr[j] = x[i * ld_x + j];
        double s;
        ln_forward_double(xr, n, NULL, NULL, eps, rms, NULL, xh, &s);
        /* dx_k = sum_j dout_j w_j d x̂_j / d x_k, the Jacobian written out. */
        for (int64_t k = 0; k < n; k++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++) {
                const double jac = rms ? s * (j == k) - xr[j] * xr[k] * s * s * s / (double)n
                                       : s * ((j == k) - 1.0 / (double)n) - xh[j] * xh[k] * s / (double)n;
                acc += dout[i * ld_d + j] * wd[j] * jac;
            }
            ref_dx[i * n + k] = acc;
        }
        for (int64_t j = 0; j < n; j++) {
            ref_dw[j] += dout[i * ld_d + j] * xh[j];
            ref_db[j] += dout[i * ld_d + j];
        }
    }
    memcpy(dw, dw0, (size_t)n * sizeof(float));
    memcpy(db, db0, (size_t)n * sizeof(float));
    TU_CHECK(ln_backward(&p, 0) == ATTN_OK, "layer norm backward status");
    char what[160];
    snprintf(what, sizeof what, "%s layer norm backward mode %d rows=%lld n=%lld w=%d dw=%d db=%d in place %d nan %d",
             isa_name, (int)mode, (long long)rows, (long long)n, has_w, has_dw, has_db, inplace, nan_row);
    const float *got = p.dx;
    float *packed = alloc_floats(rows * n);
    for (int64_t i = 0; i < rows; i++) memcpy(packed + i * n, got + i * ld_dx, (size_t)n * sizeof(float));
    const double tol = 1e-5;
    tu_cmp c = tu_compare(packed, ref_dx, (size_t)(rows * n), tol);
    TU_CHECK(c.ok, "%s: dx error %.3g", what, c.max_err);
    double scale = tu_max_abs_finite(ref_dx, (size_t)(rows * n));
    double ratio = c.max_err / (tol * (scale > 1 ? scale : 1));
    if (ratio > worst_ln) worst_ln = ratio;
    const double tol_sum = 1e-5 * sqrt((double)rows + 1);
    if (has_dw) {
        c = tu_compare(dw, ref_dw, (size_t)n, tol_sum);
        TU_CHECK(c.ok, "%s: dweight error %.3g", what, c.max_err);
        scale = tu_max_abs_finite(ref_dw, (size_t)n);
        ratio = c.max_err / (tol_sum * (scale > 1 ? scale : 1));
        if (ratio > worst_ln) worst_ln = ratio;
    }
    if (has_db) {
        c = tu_compare(db, ref_db, (size_t)n, tol_sum);
        TU_CHECK(c.ok, "%s: dbias error %.3g", what, c.max_err);
    }
    /* Any thread count: the same bits. */
    int same = 1;
    for (int t = 1; t <= 8; t++) {
        attn_layer_norm_backward_params q = p;
        if (inplace) memcpy(dout, dout_copy, (size_t)(rows * ld_d) * sizeof(float));
        q.dx = inplace ? (float *)dout : dx2;
        q.dweight = has_dw ? dw2 : NULL;
        q.dbias = has_db ? db2 : NULL;
        memcpy(dw2, dw0, (size_t)n * sizeof(float));
        memcpy(db2, db0, (size_t)n * sizeof(float));
        same &= ln_backward(&q, t) == ATTN_OK;
        for (int64_t i = 0; i < rows; i++)
            same &= memcmp(q.dx + i * ld_dx, packed + i * n, (size_t)n * sizeof(float)) == 0;
        same &= (!has_dw || memcmp(dw2, dw, (size_t)n * sizeof(float)) == 0) &&
                (!has_db || memcmp(db2, db, (size_t)n * sizeof(float)) == 0);
    }
    TU_CHECK(same, "%s: threads 1..8 not bitwise equal", what);
    free(x); free(y); free(dout); free(dx); free(w); free(b); free(mean); free(rstd); free(dw); free(db);
    free(dw0); free(db0); free(dx2); free(dw2); free(db2); free(dout_copy); free(ref_dx); free(ref_dw);
    free(ref_db); free(xr); free(xh); free(wd); free(packed);
}

/* Central differences in double of L = sum(y ∘ dout) for one small row block, in x, weight, bias. */
static void layer_norm_finite_difference(tu_rng *r, attn_variance mode) {
    enum { R = 3, N = 5 };
    const int rms = mode == ATTN_VARIANCE_RMS;
    float x[R * N], dout[R * N], w[N], b[N], y[R * N], mean[R], rstd[R], dx[R * N], dw[N], db[N];
    tu_fill_uniform(r, x, R * N, -2, 2);
    tu_fill_uniform(r, dout, R * N, -1, 1);
    tu_fill_uniform(r, w, N, 0.5f, 1.5f);
    tu_fill_uniform(r, b, N, -1, 1);
    memset(dw, 0, sizeof dw);
    memset(db, 0, sizeof db);
    attn_layer_norm_params f = attn_layer_norm_params_default();
    f.rows = R; f.n = N; f.out = y; f.ld_out = N; f.x = x; f.ld_x = N; f.weight = w; f.bias = b; f.variance = mode;
    f.mean = mean; f.rstd = rstd;
    TU_CHECK(attn_layer_norm(&f) == ATTN_OK, "fd forward");
    attn_layer_norm_backward_params p = attn_layer_norm_backward_params_default();
    p.rows = R; p.n = N; p.dx = dx; p.ld_dx = N; p.dout = dout; p.ld_dout = N; p.x = x; p.ld_x = N;
    p.mean = mean; p.rstd = rstd; p.weight = w; p.dweight = dw; p.dbias = db; p.variance = mode;
    TU_CHECK(attn_layer_norm_backward(&p) == ATTN_OK, "fd backward");
    double xv[R * N], wv[N], bv[N];
    for (int i = 0; i < R * N; i++) xv[i] = x[i];
    for (int i = 0; i < N; i++) { wv[i] = w[i]; bv[i] = b[i]; }
    const double h = 1e-5;
    for (int which = 0; which < 3; which++) {
        double *v = which == 0 ? xv : which == 1 ? wv : bv;
        const float *g = which == 0 ? dx : which == 1 ? dw : db;
        for (int e = 0; e < (which ? N : R * N); e++) {
            double loss[2];
            for (int s = 0; s < 2; s++) {
                const double keep = v[e];
                v[e] = keep + (s ? -h : h);
                double l = 0, yr[N], xh[N], sd;
                for (int i = 0; i < R; i++) {
                    ln_forward_double(xv + i * N, N, wv, bv, 1e-5, rms, yr, xh, &sd);
                    for (int j = 0; j < N; j++) l += yr[j] * dout[i * N + j];
                }
                loss[s] = l;
                v[e] = keep;
            }
            const double fd = (loss[0] - loss[1]) / (2 * h), ratio = fabs(fd - g[e]) / 1e-4;
            if (ratio > worst_ln_fd) worst_ln_fd = ratio;
            TU_CHECK(ratio <= 1.0, "%s: layer norm mode %d finite difference of %s[%d]: %.9g, kernel %.9g", isa_name,
                     (int)mode, which == 0 ? "dx" : which == 1 ? "dweight" : "dbias", e, fd, (double)g[e]);
        }
    }
}

static void test_layer_norm_backward(tu_rng *r) {
    const attn_variance modes[] = {ATTN_VARIANCE_TWO_PASS, ATTN_VARIANCE_FAST, ATTN_VARIANCE_RMS};
    for (int m = 0; m < 3; m++) {
        for (int i = 0; i < 20; i++) layer_norm_case(r, tu_rng_range(r, 1, 40), tu_rng_range(r, 1, 130), modes[m]);
        layer_norm_case(r, 1, 1, modes[m]);
        layer_norm_case(r, 3000, 7, modes[m]);
        layer_norm_case(r, 5, 600, modes[m]);
        layer_norm_finite_difference(r, modes[m]);
    }
}

static void test_layer_norm_backward_errors(void) {
    float x[32], dout[32], mean[4], rstd[4], dx[32], dw[8], before[32];
    for (int i = 0; i < 32; i++) { x[i] = (float)i; dout[i] = 1; before[i] = dx[i] = -7.0f; }
    for (int i = 0; i < 4; i++) { mean[i] = 0; rstd[i] = 1; }
    for (int i = 0; i < 8; i++) dw[i] = -7.0f;
    attn_layer_norm_backward_params p = attn_layer_norm_backward_params_default();
    p.rows = 4; p.n = 8; p.dx = dx; p.ld_dx = 8; p.dout = dout; p.ld_dout = 8; p.x = x; p.ld_x = 8;
    p.mean = mean; p.rstd = rstd; p.dweight = dw;
    struct { const char *what; attn_status want; attn_layer_norm_backward_params p; } cases[16];
    int n = 0;
#define LN_CASE(name, status, field, value) \
    (cases[n].what = name, cases[n].want = status, cases[n].p = p, cases[n].p.field = value, n++)
    LN_CASE("NULL dx", ATTN_ERR_NULL_POINTER, dx, NULL);
    LN_CASE("NULL dout", ATTN_ERR_NULL_POINTER, dout, NULL);
    LN_CASE("NULL x", ATTN_ERR_NULL_POINTER, x, NULL);
    LN_CASE("NULL mean", ATTN_ERR_NULL_POINTER, mean, NULL);
    LN_CASE("NULL rstd", ATTN_ERR_NULL_POINTER, rstd, NULL);
    LN_CASE("rows 0", ATTN_ERR_INVALID_ARGUMENT, rows, 0);
    LN_CASE("n -1", ATTN_ERR_INVALID_ARGUMENT, n, -1);
    LN_CASE("variance", ATTN_ERR_INVALID_ARGUMENT, variance, (attn_variance)7);
    LN_CASE("threads", ATTN_ERR_INVALID_ARGUMENT, num_threads, -2);
    LN_CASE("ld_dx", ATTN_ERR_INVALID_STRIDE, ld_dx, 7);
    LN_CASE("ld_dout", ATTN_ERR_INVALID_STRIDE, ld_dout, 7);
    LN_CASE("ld_x", ATTN_ERR_INVALID_STRIDE, ld_x, 7);
    LN_CASE("in place with another stride", ATTN_ERR_INVALID_STRIDE, dx, (float *)dout);
    LN_CASE("overflow", ATTN_ERR_OVERFLOW, rows, INT64_MAX / 8);
    LN_CASE("struct_size", ATTN_ERR_INVALID_ARGUMENT, struct_size, 5);
#undef LN_CASE
    cases[12].p.ld_dx = 9;
    for (int i = 0; i < n; i++) {
        const attn_status s = attn_layer_norm_backward(&cases[i].p);
        TU_CHECK(s == cases[i].want, "layer norm backward %s: status %s", cases[i].what, attn_status_string(s));
        TU_CHECK(memcmp(dx, before, sizeof dx) == 0 && memcmp(dw, before, sizeof dw) == 0,
                 "layer norm backward %s: wrote on error", cases[i].what);
    }
    TU_CHECK(attn_layer_norm_backward(NULL) == ATTN_ERR_NULL_POINTER, "layer norm backward NULL params");
    p.variance = ATTN_VARIANCE_RMS;
    p.mean = NULL;
    TU_CHECK(attn_layer_norm_backward(&p) == ATTN_OK, "RMS needs no mean");
}

/* The derivative of each activation, written from the textbook forms (not the kernel's). */
static double act_ref(attn_activation kind, double x, double *value) {
    const double pi = 3.14159265358979323846;
    double v, d;
    switch (kind) {
    case ATTN_ACTIVATION_RELU: v = x > 0 ? x : 0; d = x > 0 ? 1 : 0; break;
    case ATTN_ACTIVATION_GELU: {
        const double cdf = 0.5 * (1 + erf(x / sqrt(2.0)));
        v = x * cdf;
        d = cdf + x * exp(-x * x / 2) / sqrt(2 * pi);
        break;
    }
    case ATTN_ACTIVATION_GELU_TANH: {
        const double u = sqrt(2 / pi) * (x + 0.044715 * x * x * x), sech = 1 / cosh(u);
        v = 0.5 * x * (1 + tanh(u));
        d = 0.5 * (1 + tanh(u)) + 0.5 * x * sech * sech * sqrt(2 / pi) * (1 + 3 * 0.044715 * x * x);
        break;
    }
    case ATTN_ACTIVATION_SIGMOID: v = 1 / (1 + exp(-x)); d = exp(-x) / ((1 + exp(-x)) * (1 + exp(-x))); break;
    case ATTN_ACTIVATION_SILU: {
        const double s = 1 / (1 + exp(-x));
        v = x * s;
        d = s + x * exp(-x) / ((1 + exp(-x)) * (1 + exp(-x)));
        break;
    }
    case ATTN_ACTIVATION_TANH: v = tanh(x); d = 1 / (cosh(x) * cosh(x)); break;
    default: v = x; d = 1; break;
    }
    if (value) *value = v;
    return d;
}

static void activation_cases(tu_rng *r, attn_activation kind) {
    const int64_t count = tu_rng_range(r, 1, 40000);
    const int acc = (int)tu_rng_range(r, 0, 1);
    float *x = alloc_floats(count), *dout = alloc_floats(count), *dx = alloc_floats(count), *dx0 = alloc_floats(count);
    float *other = alloc_floats(count);
    double *ref = malloc((size_t)count * sizeof(double));
    for (int64_t i = 0; i < count; i++) x[i] = tu_rng_uniform(r, -12, 12);
    tu_fill_uniform(r, dout, (size_t)count, -2, 2);
    tu_fill_uniform(r, dx0, (size_t)count, -1, 1);
    if (count > 3) { x[0] = 0.0f; x[1] = NAN; }
    for (int64_t i = 0; i < count; i++) {
        const double d = isnan(x[i]) ? NAN : act_ref(kind, x[i], NULL);
        ref[i] = (acc ? dx0[i] : 0.0) + d * dout[i];
    }
    memcpy(dx, dx0, (size_t)count * sizeof(float));
    attn_activate_backward_params p = attn_activate_backward_params_default();
    p.count = count; p.dx = dx; p.dout = dout; p.x = x; p.kind = kind; p.accumulate = acc;
    TU_CHECK(attn_activate_backward(&p) == ATTN_OK, "activate backward status");
    /* 1e-6 of the terms' magnitude, |dx0| + |slope · dout| (at least 1): the slope of sigmoid and
     * silu is formed from a float sigmoid, so a sum that cancels is not held to its own size. */
    double worst = 0;
    for (int64_t i = 0; i < count; i++) {
        if (isnan(ref[i])) { TU_CHECK(isnan(dx[i]), "%s activate backward kind %d: NaN gave %g", isa_name, (int)kind, dx[i]); continue; }
        const double term = ref[i] - (acc ? dx0[i] : 0.0), magnitude = fabs(term) + (acc ? fabs((double)dx0[i]) : 0.0);
        const double e = fabs(dx[i] - ref[i]) / (1e-6 * (magnitude > 1 ? magnitude : 1));
        if (e > worst) worst = e;
    }
    TU_CHECK(worst <= 1.0, "%s activate backward kind %d count %lld acc %d: error / tolerance %.3g", isa_name, (int)kind,
             (long long)count, acc, worst);
    if (worst > worst_act) worst_act = worst;
    int same = 1;
    for (int t = 1; t <= 8; t++) {
        memcpy(other, dx0, (size_t)count * sizeof(float));
        p.dx = other; p.num_threads = t;
        same &= attn_activate_backward(&p) == ATTN_OK && memcmp(other, dx, (size_t)count * sizeof(float)) == 0;
    }
    TU_CHECK(same, "%s activate backward kind %d: threads 1..8 not bitwise equal", isa_name, (int)kind);
    /* Central differences of the double forward at a few points away from relu's kink. */
    for (int i = 0; i < 20; i++) {
        const double xv = tu_rng_uniform(r, -5, 5), h = 1e-6;
        if (fabs(xv) < 1e-3) continue;
        double up, down;
        act_ref(kind, xv + h, &up);
        act_ref(kind, xv - h, &down);
        float xf = (float)xv, one = 1.0f, got;
        attn_activate_backward_params q = attn_activate_backward_params_default();
        q.count = 1; q.dx = &got; q.dout = &one; q.x = &xf; q.kind = kind;
        double upf, downf;
        act_ref(kind, (double)xf + h, &upf);
        act_ref(kind, (double)xf - h, &downf);
        (void)up; (void)down;
        const double fd = (upf - downf) / (2 * h);
        TU_CHECK(attn_activate_backward(&q) == ATTN_OK && fabs(got - fd) <= 1e-5 * (1 + fabs(fd)),
                 "%s activation %d finite difference at %.6g: %.9g, kernel %.9g", isa_name, (int)kind, (double)xf, fd,
                 (double)got);
    }
    /* The limits at ±inf: finite (the derivative's limit), as the header says. */
    const float inf[2] = {INFINITY, -INFINITY}, ones[2] = {1, 1};
    float lim[2];
    p = attn_activate_backward_params_default();
    p.count = 2; p.dx = lim; p.dout = ones; p.x = inf; p.kind = kind;
    TU_CHECK(attn_activate_backward(&p) == ATTN_OK && isfinite(lim[0]) && isfinite(lim[1]),
             "%s activation %d at ±inf: %g %g", isa_name, (int)kind, lim[0], lim[1]);
    free(x); free(dout); free(dx); free(dx0); free(other); free(ref);
}

static void gated_case(tu_rng *r, attn_activation kind) {
    const int64_t rows = tu_rng_range(r, 1, 30), width = tu_rng_range(r, 1, 300);
    const int acc = (int)tu_rng_range(r, 0, 1);
    const int64_t ld_x = 2 * width + tu_rng_range(r, 0, 3), ld_dx = 2 * width + tu_rng_range(r, 0, 3);
    const int64_t ld_d = width + tu_rng_range(r, 0, 3);
    float *x = alloc_floats(rows * ld_x), *dout = alloc_floats(rows * ld_d), *dx = alloc_floats(rows * ld_dx);
    float *dx0 = alloc_floats(rows * ld_dx), *other = alloc_floats(rows * ld_dx), *packed = alloc_floats(rows * 2 * width);
    double *ref = malloc((size_t)(rows * 2 * width) * sizeof(double));
    tu_fill_uniform(r, x, (size_t)(rows * ld_x), -6, 6);
    tu_fill_uniform(r, dout, (size_t)(rows * ld_d), -2, 2);
    tu_fill_uniform(r, dx0, (size_t)(rows * ld_dx), -1, 1);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < width; c++) {
            double v;
            const double d = act_ref(kind, x[i * ld_x + c], &v), up = x[i * ld_x + width + c], g = dout[i * ld_d + c];
            ref[i * 2 * width + c] = (acc ? dx0[i * ld_dx + c] : 0.0) + d * up * g;
            ref[i * 2 * width + width + c] = (acc ? dx0[i * ld_dx + width + c] : 0.0) + v * g;
        }
    memcpy(dx, dx0, (size_t)(rows * ld_dx) * sizeof(float));
    attn_gated_activate_backward_params p = attn_gated_activate_backward_params_default();
    p.rows = rows; p.width = width; p.dx = dx; p.ld_dx = ld_dx; p.dout = dout; p.ld_dout = ld_d; p.x = x;
    p.ld_x = ld_x; p.kind = kind; p.accumulate = acc;
    TU_CHECK(attn_gated_activate_backward(&p) == ATTN_OK, "gated backward status");
    for (int64_t i = 0; i < rows; i++) memcpy(packed + i * 2 * width, dx + i * ld_dx, (size_t)(2 * width) * sizeof(float));
    tu_cmp c = tu_compare_each(packed, ref, (size_t)(rows * 2 * width), 1e-6);
    TU_CHECK(c.ok, "%s gated backward kind %d rows %lld width %lld acc %d: error %.3g", isa_name, (int)kind,
             (long long)rows, (long long)width, acc, c.max_err);
    if (c.max_err / 1e-6 > worst_gated) worst_gated = c.max_err / 1e-6;
    int same = 1;
    for (int t = 1; t <= 8; t++) {
        memcpy(other, dx0, (size_t)(rows * ld_dx) * sizeof(float));
        p.dx = other; p.num_threads = t;
        same &= attn_gated_activate_backward(&p) == ATTN_OK;
        for (int64_t i = 0; i < rows; i++)
            same &= memcmp(other + i * ld_dx, dx + i * ld_dx, (size_t)(2 * width) * sizeof(float)) == 0;
    }
    TU_CHECK(same, "%s gated backward kind %d: threads 1..8 not bitwise equal", isa_name, (int)kind);
    free(x); free(dout); free(dx); free(dx0); free(other); free(packed); free(ref);
}

static void test_activation_backward(tu_rng *r) {
    for (int k = ATTN_ACTIVATION_IDENTITY; k <= ATTN_ACTIVATION_TANH; k++)
        for (int i = 0; i < 4; i++) {
            activation_cases(r, (attn_activation)k);
            gated_case(r, (attn_activation)k);
        }
}

static void test_activation_backward_errors(void) {
    float x[8] = {0}, dout[8] = {0}, dx[8], before[8];
    for (int i = 0; i < 8; i++) before[i] = dx[i] = -7.0f;
    attn_activate_backward_params p = attn_activate_backward_params_default();
    p.count = 8; p.dx = dx; p.dout = dout; p.x = x;
    attn_activate_backward_params q;
    q = p; q.dx = NULL; TU_CHECK(attn_activate_backward(&q) == ATTN_ERR_NULL_POINTER, "activate backward NULL dx");
    q = p; q.x = NULL; TU_CHECK(attn_activate_backward(&q) == ATTN_ERR_NULL_POINTER, "activate backward NULL x");
    q = p; q.count = 0; TU_CHECK(attn_activate_backward(&q) == ATTN_ERR_INVALID_ARGUMENT, "activate backward count 0");
    q = p; q.kind = (attn_activation)9; TU_CHECK(attn_activate_backward(&q) == ATTN_ERR_INVALID_ARGUMENT, "kind");
    q = p; q.num_threads = -1; TU_CHECK(attn_activate_backward(&q) == ATTN_ERR_INVALID_ARGUMENT, "threads");
    q = p; q.count = INT64_MAX / 2; TU_CHECK(attn_activate_backward(&q) == ATTN_ERR_OVERFLOW, "overflow");
    q = p; q.struct_size = 1; TU_CHECK(attn_activate_backward(&q) == ATTN_ERR_INVALID_ARGUMENT, "struct_size");
    TU_CHECK(attn_activate_backward(NULL) == ATTN_ERR_NULL_POINTER, "activate backward NULL params");
    TU_CHECK(memcmp(dx, before, sizeof dx) == 0, "activate backward wrote on error");
    attn_gated_activate_backward_params g = attn_gated_activate_backward_params_default();
    g.rows = 2; g.width = 2; g.dx = dx; g.ld_dx = 4; g.dout = dout; g.ld_dout = 2; g.x = x; g.ld_x = 4;
    attn_gated_activate_backward_params h;
    h = g; h.dout = NULL; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_NULL_POINTER, "gated NULL dout");
    h = g; h.width = 0; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_INVALID_ARGUMENT, "gated width 0");
    h = g; h.kind = (attn_activation)-1; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_INVALID_ARGUMENT, "gated kind");
    h = g; h.ld_dx = 3; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_INVALID_STRIDE, "gated ld_dx");
    h = g; h.ld_x = 3; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_INVALID_STRIDE, "gated ld_x");
    h = g; h.ld_dout = 1; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_INVALID_STRIDE, "gated ld_dout");
    h = g; h.width = INT64_MAX / 2 + 1; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_OVERFLOW, "gated overflow");
    h = g; h.rows = INT64_MAX / 8; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_OVERFLOW, "gated rows overflow");
    h = g; h.struct_size = 2; TU_CHECK(attn_gated_activate_backward(&h) == ATTN_ERR_INVALID_ARGUMENT, "gated size");
    TU_CHECK(memcmp(dx, before, sizeof dx) == 0, "gated backward wrote on error");
}

int main(int argc, char **argv) {
    uint64_t seed = 0x5EEDBAC4ull;
    if (argc > 1 && !tu_parse_u64(argv[1], &seed)) {
        printf("usage: %s [seed]\n", argv[0]);
        return 2;
    }
    printf("seed %llu\n", (unsigned long long)seed);
    const double t0 = tu_now();
    test_errors();
    test_layer_norm_backward_errors();
    test_activation_backward_errors();
    test_softmax_mean_backward_errors();
    const attn_isa isas[] = {ATTN_ISA_SCALAR, ATTN_ISA_NEON, ATTN_ISA_AVX2, ATTN_ISA_AVX512};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (!attn_isa_supported(isas[i])) continue;
        TU_CHECK(attn_set_isa(isas[i]) == ATTN_OK, "set isa %s", attn_isa_name(isas[i]));
        isa_name = attn_isa_name(isas[i]);
        printf("isa %s\n", isa_name);
        tu_rng r = tu_rng_derive(seed, i);
        test_matmul_grads(&r);
        test_sum_columns(&r);
        test_layer_norm_backward(&r);
        test_activation_backward(&r);
        test_softmax_backward(&r);
        test_mean_backward(&r);
        /* a_transposed over several depth blocks and row blocks of the packed path (A read as Aᵀ as
         * it is packed): last, so the random cases above keep their streams. */
        matmul_case(&r, 700, 37, 333);
        printf("  worst error / tolerance: dA %.3f, dB %.3f, dB (weight transposed) %.3f, finite difference %.3f, "
               "sum_columns %.3f, layer norm %.3f (finite difference %.3f)\n", worst_da, worst_db, worst_dbt,
               worst_fd, worst_cols, worst_ln, worst_ln_fd);
        printf("  worst error / tolerance: activation backward %.3f, gated %.3f, softmax backward %.3f "
               "(finite difference %.3f)\n", worst_act, worst_gated, worst_softmax, worst_softmax_fd);
        worst_da = worst_db = worst_dbt = worst_fd = worst_cols = worst_ln = worst_ln_fd = worst_act = worst_gated = worst_softmax = worst_softmax_fd = 0;
    }
    printf("%.1f s\n", tu_now() - t0);
    return tu_summary();
}
