/*
 * test_dense.c: the dense kernels (attn_layer_norm, attn_activate, attn_gated_activate,
 * attn_softmax_rows, attn_rotary, attn_mean_rows, attn_reduce_rows) against double-precision references, on every
 * instruction set this CPU runs.
 *
 *   layer norm   random shapes (1, odd, rows of thousands), every variance mode (RMS too), NULL weight/bias,
 *                in place, padded rows, means far larger than the spread, constant rows;
 *                |y - ref| <= 1e-6 (1 + |x̂ w| + |b|), far inside the 2e-5 the float32 references
 *                of PyTorch, Equinox and Flax need; the saved mean and rstd (each optional) against
 *                the double statistics, rows of length 1, NaN and infinite rows in every mode, and
 *                out bitwise the same with or without them
 *   activations  a dense sweep of [-10, 10], random floats of every magnitude, and the specials
 *                (±0, ±inf, NaN, ±FLT_MAX, subnormals), in ulp of the double result: relu exact,
 *                tanh 3, sigmoid 4, silu 5, gelu 8, gelu_tanh 4 + 3 |v (1 - sigmoid v)| (its
 *                condition number: rounding v = 2u to float alone costs that much); each value's
 *                result is the same wherever it sits in the range, and in place
 *   gated        every activation of the gate half times the linear half: bitwise attn_activate's
 *                value times it, widths around the vector edges, padded rows, in place
 *   softmax      random rows with -inf entries, all -inf rows under each masked-rows policy, NaN and
 *                +inf entries (whole row NaN)
 *   rotary       both pairings, offsets and per-sequence start positions, several theta, (B, H, L, D)
 *                and (B, L, H, D) layouts with dim < D: double angles against a direct double
 *                implementation (Equinox's half split), float angles against the serial float
 *                formula of transformers (within the rounding of the rotation itself); positions all
 *                equal to the offset give the bits of no positions; the tail and the gaps between
 *                rows are untouched
 *   mean rows    against a double sum
 *   reductions   sum and mean against a double sum; max and min exactly (index and bits of the value)
 *                against a first-occurrence scan, rows with NaN (first NaN's index), ±inf, ties,
 *                signed zeros, rows of one special value, n = 1 and odd sizes; indices alone (out NULL)
 * plus 1 vs 2 threads bitwise identical for every function, and every error status with nothing
 * written. Padded row gaps hold a sentinel, so writes outside the rows are caught.
 *
 * Usage: test_dense [seed]. Last line: "N passed, N failed"; exit status non-zero on any failure.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "test_util.h"

/* The entry points with their fields as positional arguments, in the order of the parameter
 * structs, so that each case reads as one call. */
static attn_status layer_norm_stats(float *out, int64_t ld_out, const float *x, int64_t ld_x, int64_t rows, int64_t n,
                                    const float *weight, const float *bias, float eps, attn_variance variance,
                                    int num_threads, float *mean, float *rstd) {
    attn_layer_norm_params p = attn_layer_norm_params_default();
    p.rows = rows; p.n = n;
    p.out = out; p.ld_out = ld_out;
    p.x = x; p.ld_x = ld_x;
    p.weight = weight; p.bias = bias;
    p.eps = eps; p.variance = variance;
    p.mean = mean; p.rstd = rstd;
    p.num_threads = num_threads;
    return attn_layer_norm(&p);
}

static attn_status layer_norm(float *out, int64_t ld_out, const float *x, int64_t ld_x, int64_t rows, int64_t n,
                              const float *weight, const float *bias, float eps, attn_variance variance, int num_threads) {
    return layer_norm_stats(out, ld_out, x, ld_x, rows, n, weight, bias, eps, variance, num_threads, NULL, NULL);
}

static attn_status activate(float *out, const float *x, int64_t count, attn_activation kind, int num_threads) {
    attn_activate_params p = attn_activate_params_default();
    p.count = count;
    p.out = out; p.x = x;
    p.kind = kind;
    p.num_threads = num_threads;
    return attn_activate(&p);
}

static attn_status gated_activate(float *out, int64_t ld_out, const float *x, int64_t ld_x, int64_t rows, int64_t width,
                                  attn_activation kind, int num_threads) {
    attn_gated_activate_params p = attn_gated_activate_params_default();
    p.rows = rows; p.width = width;
    p.out = out; p.ld_out = ld_out;
    p.x = x; p.ld_x = ld_x;
    p.kind = kind;
    p.num_threads = num_threads;
    return attn_gated_activate(&p);
}

static attn_status softmax_rows(float *x, int64_t ld, int64_t rows, int64_t n, attn_masked_rows masked_rows,
                                int num_threads) {
    attn_softmax_rows_params p = attn_softmax_rows_params_default();
    p.rows = rows; p.n = n;
    p.x = x; p.ld = ld;
    p.masked_rows = masked_rows;
    p.num_threads = num_threads;
    return attn_softmax_rows(&p);
}

static attn_status mean_rows(float *out, const float *x, int64_t ld, int64_t rows, int64_t n, int num_threads) {
    attn_mean_rows_params p = attn_mean_rows_params_default();
    p.rows = rows; p.n = n;
    p.out = out;
    p.x = x; p.ld = ld;
    p.num_threads = num_threads;
    return attn_mean_rows(&p);
}

static attn_status reduce_rows(float *out, int64_t *indices, const float *x, int64_t ld, int64_t rows, int64_t n,
                               attn_reduction op, int num_threads) {
    attn_reduce_rows_params p = attn_reduce_rows_params_default();
    p.rows = rows; p.n = n;
    p.out = out; p.indices = indices;
    p.x = x; p.ld = ld;
    p.op = op;
    p.num_threads = num_threads;
    return attn_reduce_rows(&p);
}

static const float SENTINEL = 1234.5f;
static const char *isa_name = "";
/* Worst error seen per function on the current ISA, as a fraction of its tolerance (printed). */
static double worst_ln, worst_ln_stats, worst_softmax, worst_rope, worst_rope_float, worst_mean, worst_reduce,
    worst_act[7];

static void note_worst(double *slot, double value) {
    if (!(value <= *slot)) *slot = value;
}

static float *alloc_floats(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

static void fill(float *x, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) x[i] = v;
}

/* A size from 1 to max, often tiny or at a vector edge. */
static int64_t rand_size(tu_rng *r, int64_t max) {
    static const int64_t edges[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65};
    switch (tu_rng_range(r, 0, 2)) {
    case 0: return tu_rng_range(r, 1, 8);
    case 1: return TU_PICK(r, edges);
    default: return tu_rng_range(r, 1, max);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Layer norm                                                                                      */

typedef struct ln_case {
    int64_t rows, n, ld_x, ld_out;
    int has_weight, has_bias, in_place, constant_rows;
    float offset, spread, eps;
    attn_variance variance;
} ln_case;

/* The saved statistics (mean, rstd) of x0 against a double reference: the mean (0 for RMS) within
 * half a float ulp and the double sum's rounding, rstd = 1/sqrt(var + eps) within 3e-7 relative
 * (rounded once from double, with the fast variance's few bits of cancellation); out bitwise the
 * normalised rows without statistics (`want`, ld_want), on 1 and 2 threads, NULL for either
 * statistic alone, and nothing written past `rows` entries. */
static void check_layer_norm_stats(const ln_case *c, const float *x0, const float *w, const float *b, const float *want,
                                   int64_t ld_want, int64_t len_want, const char *what) {
    const int64_t len_x = (c->rows - 1) * c->ld_x + c->n;
    float *x = alloc_floats(len_x), *out = alloc_floats(len_want), *mean = alloc_floats(c->rows + 1);
    float *rstd = alloc_floats(c->rows + 1), *mean2 = alloc_floats(c->rows + 1), *rstd2 = alloc_floats(c->rows + 1);
    memcpy(x, x0, (size_t)len_x * sizeof(float));
    double worst_mean = 0, worst_rstd = 0;
    for (int threads = 1; threads <= 2; threads++) {
        float *m = threads == 1 ? mean : mean2, *rs = threads == 1 ? rstd : rstd2;
        fill(m, c->rows + 1, SENTINEL);
        fill(rs, c->rows + 1, SENTINEL);
        fill(out, len_want, SENTINEL);
        for (int64_t i = 0; c->in_place && i < len_want; i++) out[i] = x0[i];
        const float *src = c->in_place ? out : x;
        attn_status st = layer_norm_stats(out, ld_want, src, c->in_place ? ld_want : c->ld_x, c->rows, c->n, w, b,
                                          c->eps, c->variance, threads, m, rs);
        int same = st == ATTN_OK;
        for (int64_t i = 0; i < c->rows; i++)
            same &= memcmp(out + i * ld_want, want + i * ld_want, (size_t)c->n * sizeof(float)) == 0;
        TU_CHECK(same, "%s, with mean and rstd on %d threads: status %s or out differs", what,
                 threads, attn_status_string(st));
        TU_CHECK(m[c->rows] == SENTINEL && rs[c->rows] == SENTINEL, "%s: wrote past mean or rstd", what);
    }
    TU_CHECK(memcmp(mean, mean2, (size_t)c->rows * sizeof(float)) == 0 &&
             memcmp(rstd, rstd2, (size_t)c->rows * sizeof(float)) == 0, "%s: mean or rstd differ on 2 threads", what);
    for (int64_t i = 0; i < c->rows; i++) {
        const float *xi = x0 + i * c->ld_x;
        double sum = 0, mag = 0, var = 0;
        for (int64_t j = 0; j < c->n; j++) sum += xi[j], mag += fabs(xi[j]);
        const double ref_mean = c->variance == ATTN_VARIANCE_RMS ? 0.0 : sum / (double)c->n;
        for (int64_t j = 0; j < c->n; j++) var += ((double)xi[j] - ref_mean) * ((double)xi[j] - ref_mean);
        const double ref_rstd = 1.0 / sqrt(var / (double)c->n + (double)c->eps);
        const double tol_mean = 0x1p-24 * fabs(ref_mean) * 1.001 + 1e-14 * mag / (double)c->n + 1e-300;
        const double e_mean = fabs(mean[i] - ref_mean) / tol_mean;
        const double e_rstd = isinf(ref_rstd) ? (isinf(rstd[i]) ? 0 : INFINITY)
                                              : fabs(rstd[i] - ref_rstd) / (3e-7 * ref_rstd);
        if (!(e_mean <= worst_mean)) worst_mean = e_mean;
        if (!(e_rstd <= worst_rstd)) worst_rstd = e_rstd;
    }
    TU_CHECK(worst_mean <= 1.0 && worst_rstd <= 1.0, "%s: mean error %.3g, rstd error %.3g of tolerance", what,
             worst_mean, worst_rstd);
    note_worst(&worst_ln_stats, fmax(worst_mean, worst_rstd));
    /* Either statistic alone: the same values. */
    fill(mean2, c->rows + 1, SENTINEL);
    attn_status st = layer_norm_stats(out, ld_want, x, c->ld_x, c->rows, c->n, w, b, c->eps, c->variance, 1, mean2, NULL);
    fill(rstd2, c->rows + 1, SENTINEL);
    attn_status st2 = layer_norm_stats(out, ld_want, x, c->ld_x, c->rows, c->n, w, b, c->eps, c->variance, 1, NULL, rstd2);
    TU_CHECK(st == ATTN_OK && st2 == ATTN_OK && memcmp(mean, mean2, (size_t)c->rows * sizeof(float)) == 0 &&
             memcmp(rstd, rstd2, (size_t)c->rows * sizeof(float)) == 0, "%s: mean or rstd alone differ", what);
    free(x), free(out), free(mean), free(rstd), free(mean2), free(rstd2);
}

static void layer_norm_case(tu_rng *r, const ln_case *c) {
    const int64_t len_x = (c->rows - 1) * c->ld_x + c->n, len_out = (c->rows - 1) * c->ld_out + c->n;
    float *x = alloc_floats(len_x), *x0 = alloc_floats(len_x), *out = alloc_floats(len_out);
    float *out2 = alloc_floats(len_out);
    float *w = c->has_weight ? alloc_floats(c->n) : NULL, *b = c->has_bias ? alloc_floats(c->n) : NULL;
    fill(x, len_x, SENTINEL);
    for (int64_t i = 0; i < c->rows; i++)
        for (int64_t j = 0; j < c->n; j++)
            x[i * c->ld_x + j] = c->constant_rows ? c->offset : c->offset + c->spread * tu_rng_uniform(r, -1, 1);
    for (int64_t j = 0; w && j < c->n; j++) w[j] = tu_rng_uniform(r, 0.5f, 1.5f);
    for (int64_t j = 0; b && j < c->n; j++) b[j] = tu_rng_uniform(r, -1, 1);
    memcpy(x0, x, (size_t)len_x * sizeof(float));
    fill(out, len_out, SENTINEL);

    char what[256];
    snprintf(what, sizeof what, "%s layer_norm rows=%lld n=%lld ld_x=%lld ld_out=%lld w=%d b=%d in_place=%d var=%d "
             "offset=%g spread=%g eps=%g const=%d", isa_name, (long long)c->rows, (long long)c->n,
             (long long)c->ld_x, (long long)c->ld_out, c->has_weight, c->has_bias, c->in_place, (int)c->variance,
             c->offset, c->spread, c->eps, c->constant_rows);

    float *dst = c->in_place ? x : out;
    const int64_t ld_dst = c->in_place ? c->ld_x : c->ld_out, len_dst = c->in_place ? len_x : len_out;
    attn_status st = layer_norm(dst, ld_dst, x, c->ld_x, c->rows, c->n, w, b, c->eps, c->variance, 1);
    TU_CHECK(st == ATTN_OK, "%s: status %s", what, attn_status_string(st));

    double worst = 0;
    int gaps_ok = 1;
    for (int64_t i = 0; i < c->rows; i++) {
        const float *xi = x0 + i * c->ld_x;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < c->n; j++) mean += xi[j];
        mean = c->variance == ATTN_VARIANCE_RMS ? 0.0 : mean / (double)c->n;
        for (int64_t j = 0; j < c->n; j++) var += ((double)xi[j] - mean) * ((double)xi[j] - mean);
        var /= (double)c->n;
        const double rstd = 1.0 / sqrt(var + (double)c->eps);
        for (int64_t j = 0; j < ld_dst && i * ld_dst + j < len_dst; j++) {
            const float got = dst[i * ld_dst + j];
            if (j >= c->n) {
                gaps_ok &= c->in_place ? got == x0[i * ld_dst + j] : got == SENTINEL;
                continue;
            }
            const double xhat = ((double)xi[j] - mean) * rstd, wj = w ? w[j] : 1.0, bj = b ? b[j] : 0.0;
            const double ref = xhat * wj + bj;
            double err;
            if (isnan(ref)) err = isnan(got) ? 0 : INFINITY;
            else err = fabs(got - ref) / (1e-6 * (1 + fabs(xhat * wj) + fabs(bj)));
            if (!(err <= worst)) worst = err;
        }
    }
    TU_CHECK(worst <= 1.0, "%s: error %.3g of tolerance", what, worst);
    note_worst(&worst_ln, worst);
    TU_CHECK(gaps_ok, "%s: wrote outside the rows", what);
    if (!c->in_place) TU_CHECK(memcmp(x, x0, (size_t)len_x * sizeof(float)) == 0, "%s: modified x", what);

    /* Two threads, bitwise the same as one. */
    if (!c->in_place) {
        fill(out2, len_out, SENTINEL);
        st = layer_norm(out2, c->ld_out, x, c->ld_x, c->rows, c->n, w, b, c->eps, c->variance, 2);
        TU_CHECK(st == ATTN_OK && memcmp(out, out2, (size_t)len_out * sizeof(float)) == 0,
                 "%s: 2 threads differ from 1", what);
    }
    check_layer_norm_stats(c, x0, w, b, dst, ld_dst, len_dst, what);
    free(x);
    free(x0);
    free(out);
    free(out2);
    free(w);
    free(b);
}

static void test_layer_norm(tu_rng *r) {
    for (int k = 0; k < 120; k++) {
        ln_case c;
        c.rows = rand_size(r, 40);
        c.n = tu_rng_chance(r, 0.2) ? tu_rng_range(r, 1000, 5000) : rand_size(r, 300);
        c.ld_x = c.n + (tu_rng_chance(r, 0.5) ? tu_rng_range(r, 1, 9) : 0);
        c.ld_out = c.n + (tu_rng_chance(r, 0.5) ? tu_rng_range(r, 1, 9) : 0);
        c.has_weight = tu_rng_chance(r, 0.7);
        c.has_bias = tu_rng_chance(r, 0.7);
        c.in_place = tu_rng_chance(r, 0.25);
        c.constant_rows = 0;
        static const float offsets[] = {0.0f, 0.5f, -3.0f, 100.0f, -1000.0f, 30000.0f};
        static const float spreads[] = {1.0f, 0.01f, 10.0f, 1e-3f};
        c.offset = TU_PICK(r, offsets);
        c.spread = TU_PICK(r, spreads);
        /* A spread below the offset's float resolution leaves too few distinct values to normalise. */
        if (c.spread < fabsf(c.offset) * 1e-4f) c.spread = fabsf(c.offset) * 1e-4f;
        static const float epss[] = {1e-5f, 1e-6f, 0.0f, 0.1f};
        c.eps = TU_PICK(r, epss);
        c.variance = (attn_variance)tu_rng_range(r, ATTN_VARIANCE_TWO_PASS, ATTN_VARIANCE_RMS);
        layer_norm_case(r, &c);
    }
    /* Constant rows: x̂ = 0, so y = bias; with eps = 0, 0 * inf = NaN as in the float references. */
    static const ln_case fixed[] = {
        {3, 17, 17, 17, 1, 1, 0, 1, 2.5f, 0, 1e-5f, ATTN_VARIANCE_TWO_PASS},
        {3, 17, 17, 17, 1, 1, 0, 1, 2.5f, 0, 1e-5f, ATTN_VARIANCE_FAST},
        {2, 9, 12, 9, 1, 1, 0, 1, -7.0f, 0, 0.0f, ATTN_VARIANCE_TWO_PASS},
        {1, 1, 1, 1, 1, 1, 0, 0, 1.0f, 1.0f, 1e-5f, ATTN_VARIANCE_TWO_PASS},
        {1, 1, 1, 1, 0, 1, 1, 0, 1.0f, 1.0f, 1e-5f, ATTN_VARIANCE_FAST},
        /* Many rows of several items each: the thread split. */
        {200, 700, 703, 701, 1, 1, 0, 0, 1.0f, 2.0f, 1e-5f, ATTN_VARIANCE_TWO_PASS},
        {5, 40000, 40000, 40001, 1, 0, 0, 0, -2.0f, 3.0f, 1e-5f, ATTN_VARIANCE_FAST},
        /* RMS: a constant row normalises to ±1 (times the weight); zeros with eps 0 are 0 · inf. */
        {3, 17, 17, 17, 1, 1, 0, 1, -2.5f, 0, 1e-5f, ATTN_VARIANCE_RMS},
        {2, 9, 12, 9, 1, 0, 1, 1, 0.0f, 0, 0.0f, ATTN_VARIANCE_RMS},
        {200, 700, 703, 701, 1, 0, 0, 0, 1.0f, 2.0f, 1e-6f, ATTN_VARIANCE_RMS},
        /* Rows of one element: variance 0, so rstd 1/sqrt(eps) (inf for eps 0), in every mode. */
        {7, 1, 1, 3, 1, 1, 0, 0, 1.0f, 5.0f, 1e-5f, ATTN_VARIANCE_TWO_PASS},
        {7, 1, 2, 1, 0, 0, 0, 0, -1.0f, 5.0f, 0.0f, ATTN_VARIANCE_FAST},
        {7, 1, 1, 1, 1, 0, 1, 0, 3.0f, 5.0f, 1e-5f, ATTN_VARIANCE_RMS},
    };
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) layer_norm_case(r, &fixed[k]);

    /* A NaN or infinity anywhere in a row makes the whole row NaN (the mean is NaN or inf), and
     * leaves the other rows alone. */
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < 3; k++) {
            float x[2][19], y[2][19];
            for (int j = 0; j < 19; j++) x[0][j] = x[1][j] = tu_rng_uniform(r, -1, 1);
            x[0][k * 9] = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
            attn_status st = layer_norm(&y[0][0], 19, &x[0][0], 19, 2, 19, NULL, NULL, 1e-5f, (attn_variance)v, 1);
            int nan_row = 1, finite_row = 1;
            for (int j = 0; j < 19; j++) {
                nan_row &= isnan(y[0][j]);
                finite_row &= isfinite(y[1][j]);
            }
            TU_CHECK(st == ATTN_OK && nan_row && finite_row, "%s layer_norm variance=%d: row with %g at %d", isa_name, v,
                     x[0][k * 9], k * 9);
        }
    /* The statistics of rows with a NaN or an infinity (lengths 1, 19 and 40), in every mode: rstd
     * NaN (RMS: NaN with a NaN, 0 with an infinity), a mean that is not finite (RMS: 0); the finite
     * row beside them keeps finite statistics. */
    for (int v = 0; v < 3; v++)
        for (int k = 0; k < 3; k++)
            for (int len = 0; len < 3; len++) {
                const int64_t n = len == 0 ? 1 : len == 1 ? 19 : 40;
                /* Two rows of n, one after the other (row stride n). */
                float x[2 * 40], y[2 * 40], mean[2], rstd[2];
                for (int j = 0; j < n; j++) x[j] = x[n + j] = tu_rng_uniform(r, -1, 1);
                const float special = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
                x[n == 1 ? 0 : 7 * k] = special;
                const attn_status st = layer_norm_stats(y, n, x, n, 2, n, NULL, NULL, 1e-5f, (attn_variance)v, 1, mean, rstd);
                const int rms = v == ATTN_VARIANCE_RMS;
                const int rstd_ok = rms && k > 0 ? rstd[0] == 0.0f : isnan(rstd[0]);
                const int mean_ok = rms ? mean[0] == 0.0f : !isfinite(mean[0]);
                TU_CHECK(st == ATTN_OK && rstd_ok && mean_ok && isfinite(mean[1]) && isfinite(rstd[1]),
                         "%s layer_norm variance=%d n=%lld with %g: mean %g, rstd %g (other row %g, %g)", isa_name, v,
                         (long long)n, special, mean[0], rstd[0], mean[1], rstd[1]);
            }
    /* RMS: a NaN makes its row NaN; an infinity gives rsqrt(inf) = 0, so NaN in its place (inf · 0)
     * and signed zeros elsewhere; the other row is untouched by either. */
    for (int k = 0; k < 2; k++) {
        float x[2][19], y[2][19];
        for (int j = 0; j < 19; j++) x[0][j] = x[1][j] = tu_rng_uniform(r, -1, 1);
        x[0][5] = k == 0 ? NAN : -INFINITY;
        attn_status st = layer_norm(&y[0][0], 19, &x[0][0], 19, 2, 19, NULL, NULL, 1e-5f, ATTN_VARIANCE_RMS, 1);
        int first_ok = 1, finite_row = 1;
        for (int j = 0; j < 19; j++) {
            first_ok &= k == 0 || j == 5 ? isnan(y[0][j]) : y[0][j] == 0.0f;
            finite_row &= isfinite(y[1][j]);
        }
        TU_CHECK(st == ATTN_OK && first_ok && finite_row, "%s rms norm: row with %g", isa_name, x[0][5]);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Activations                                                                                     */

static const char *act_names[] = {"identity", "relu", "gelu", "gelu_tanh", "sigmoid", "silu", "tanh"};

static double ref_act(attn_activation kind, double x) {
    const double c = sqrt(2.0 / M_PI);
    switch (kind) {
    case ATTN_ACTIVATION_IDENTITY: return x;
    case ATTN_ACTIVATION_RELU: return x < 0 ? 0.0 : x;
    case ATTN_ACTIVATION_GELU: return 0.5 * x * erfc(-x * M_SQRT1_2);
    case ATTN_ACTIVATION_GELU_TANH: return x / (1.0 + exp(-2.0 * c * (x + 0.044715 * x * x * x)));
    case ATTN_ACTIVATION_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case ATTN_ACTIVATION_SILU: return x / (1.0 + exp(-x));
    case ATTN_ACTIVATION_TANH: return tanh(x);
    }
    return NAN;
}

/* Allowed error in ulp at x. */
static double act_bound(attn_activation kind, double x) {
    switch (kind) {
    case ATTN_ACTIVATION_IDENTITY:
    case ATTN_ACTIVATION_RELU: return 0;
    case ATTN_ACTIVATION_TANH: return 3;
    case ATTN_ACTIVATION_SIGMOID: return 4;
    case ATTN_ACTIVATION_SILU: return 5;
    case ATTN_ACTIVATION_GELU: return 8;
    case ATTN_ACTIVATION_GELU_TANH: {
        const double v = 2.0 * sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
        const double cond = isfinite(v) ? fabs(v) / (1.0 + exp(v)) : 0.0;
        return 4 + 3 * cond;
    }
    }
    return 0;
}

/* |got - ref| in units of the float ulp at ref (2^-149 for subnormal ref); NaN wants NaN and an
 * infinity the same infinity. */
static double ulp_error(float got, double ref) {
    if (isnan(ref)) return isnan(got) ? 0 : INFINITY;
    if (isinf(ref) || isinf(got)) return (double)got == ref ? 0 : INFINITY;
    double a = fabs(ref), ulp = 0x1p-149;
    if (a >= 0x1p-126) {
        int e;
        frexp(a, &e);
        ulp = ldexp(1.0, e - 24);
    }
    return fabs((double)got - ref) / ulp;
}

/* Runs `kind` over x[0..n) and checks every value against its bound (a bound of 0 wants exact
 * results); then 2 threads, in place, and the range shifted by one must give the same bits. */
static void check_activation(attn_activation kind, const float *x, int64_t n, const char *range) {
    float *y = alloc_floats(n), *y2 = alloc_floats(n), *inplace = alloc_floats(n);
    attn_status st = activate(y, x, n, kind, 1);
    TU_CHECK(st == ATTN_OK, "%s %s %s: status %s", isa_name, act_names[kind], range, attn_status_string(st));
    double worst_ratio = 0, worst_ulp = 0;
    int64_t worst_at = 0;
    for (int64_t i = 0; i < n; i++) {
        const double ref = ref_act(kind, x[i]);
        const double e = ulp_error(y[i], ref), bound = act_bound(kind, x[i]);
        const double ratio = bound > 0 ? e / bound : (e == 0 ? 0 : INFINITY);
        if (!(ratio <= worst_ratio)) {
            worst_ratio = ratio;
            worst_ulp = e;
            worst_at = i;
        }
    }
    TU_CHECK(worst_ratio <= 1.0, "%s %s %s: %.3g ulp at x=%.9g (got %.9g, want %.9g)", isa_name, act_names[kind],
             range, worst_ulp, x[worst_at], y[worst_at], ref_act(kind, x[worst_at]));
    note_worst(&worst_act[kind], worst_ratio);

    /* Two threads, in place, and shifted by one element: all bitwise the same. */
    st = activate(y2, x, n, kind, 2);
    TU_CHECK(st == ATTN_OK && memcmp(y, y2, (size_t)n * sizeof(float)) == 0, "%s %s %s: 2 threads differ",
             isa_name, act_names[kind], range);
    memcpy(inplace, x, (size_t)n * sizeof(float));
    st = activate(inplace, inplace, n, kind, 0);
    TU_CHECK(st == ATTN_OK && memcmp(y, inplace, (size_t)n * sizeof(float)) == 0, "%s %s %s: in place differs",
             isa_name, act_names[kind], range);
    if (n > 1) {
        st = activate(y2, x + 1, n - 1, kind, 1);
        TU_CHECK(st == ATTN_OK && memcmp(y + 1, y2, (size_t)(n - 1) * sizeof(float)) == 0,
                 "%s %s %s: result depends on the position in the range", isa_name, act_names[kind], range);
    }
    free(y);
    free(y2);
    free(inplace);
}

static void test_activations(tu_rng *r) {
    const int64_t n_sweep = 400003;
    float *sweep = alloc_floats(n_sweep), *wide = alloc_floats(n_sweep);
    for (int64_t i = 0; i < n_sweep; i++) sweep[i] = (float)(-10.0 + 20.0 * (double)i / (double)(n_sweep - 1));
    /* Random bit patterns: every magnitude from subnormal to FLT_MAX, both signs, no NaN. */
    for (int64_t i = 0; i < n_sweep; i++) {
        uint32_t bits;
        float v;
        do {
            bits = (uint32_t)tu_rng_u64(r);
            memcpy(&v, &bits, sizeof v);
        } while (!isfinite(v));
        wide[i] = v;
    }
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
                              1e-45f, -1e-45f, 1e-40f, -1e-40f, 1e-20f, -1e-20f, 0.5f, -0.5f, 0.625f, -0.625f,
                              0.70710677f, -0.70710677f, 1.0f, -1.0f, 9.0f, -9.0f, 14.0f, -14.0f, 15.0f, -15.0f,
                              20.0f, -20.0f, 44.0f, -44.0f, 87.0f, -87.0f, 89.0f, -89.0f, 100.0f, -100.0f, 104.0f,
                              -104.0f, 110.0f, -110.0f, 1e4f, -1e4f, 1e13f, -1e13f, 1e20f, -1e20f, 1e30f, -1e30f};
    const int64_t n_specials = (int64_t)(sizeof specials / sizeof specials[0]);
    for (int kind = ATTN_ACTIVATION_IDENTITY; kind <= ATTN_ACTIVATION_TANH; kind++) {
        check_activation((attn_activation)kind, sweep, n_sweep, "[-10,10]");
        check_activation((attn_activation)kind, wide, n_sweep, "random");
        check_activation((attn_activation)kind, specials, n_specials, "specials");
        for (int64_t n = 1; n <= 35; n += 2)
            check_activation((attn_activation)kind, sweep + n * 10007 % (n_sweep - n), n, "short");
    }
    /* Signs of zero and the limits. */
    float y[4];
    const float z[4] = {0.0f, -0.0f, INFINITY, -INFINITY};
    activate(y, z, 4, ATTN_ACTIVATION_TANH, 1);
    TU_CHECK(y[0] == 0 && !signbit(y[0]) && y[1] == 0 && signbit(y[1]) && y[2] == 1 && y[3] == -1,
             "%s tanh(±0, ±inf) = %g %g %g %g", isa_name, y[0], y[1], y[2], y[3]);
    activate(y, z, 4, ATTN_ACTIVATION_SIGMOID, 1);
    TU_CHECK(y[0] == 0.5f && y[1] == 0.5f && y[2] == 1 && y[3] == 0, "%s sigmoid(±0, ±inf) = %g %g %g %g", isa_name,
             y[0], y[1], y[2], y[3]);
    for (int kind = ATTN_ACTIVATION_GELU; kind <= ATTN_ACTIVATION_SILU; kind++) {
        if (kind == ATTN_ACTIVATION_SIGMOID) continue;
        activate(y, z, 4, (attn_activation)kind, 1);
        TU_CHECK(y[0] == 0 && y[1] == 0 && y[2] == INFINITY && isnan(y[3]), "%s %s(±0, ±inf) = %g %g %g %g",
                 isa_name, act_names[kind], y[0], y[1], y[2], y[3]);
    }
    free(sweep);
    free(wide);
}

/* Gated activations: each element is exactly attn_activate's value of the gate times the linear
 * half, rounded once (so the activations' accuracy above carries over); rows with padded strides
 * (the gaps keep their sentinel), widths around the vector edges, 2 threads and in place bitwise
 * the same. */
static void test_gated_activations(tu_rng *r) {
    static const int64_t widths[] = {1, 2, 7, 15, 16, 17, 31, 33, 100, 1000, 4864};
    for (int kind = ATTN_ACTIVATION_IDENTITY; kind <= ATTN_ACTIVATION_TANH; kind++) {
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
            const int64_t width = widths[w], rows = 1 + (int64_t)(tu_rng_u64(r) % 9);
            const int64_t ld_x = 2 * width + (int64_t)(tu_rng_u64(r) % 3), ld_out = width + (int64_t)(tu_rng_u64(r) % 3);
            float *x = alloc_floats(rows * ld_x), *out = alloc_floats(rows * ld_out), *two = alloc_floats(rows * ld_out);
            float *act = alloc_floats(width);
            for (int64_t i = 0; i < rows * ld_x; i++) x[i] = tu_rng_uniform(r, -8.0f, 8.0f);
            fill(out, rows * ld_out, SENTINEL);
            fill(two, rows * ld_out, SENTINEL);
            attn_status st = gated_activate(out, ld_out, x, ld_x, rows, width, (attn_activation)kind, 1);
            attn_status st2 = gated_activate(two, ld_out, x, ld_x, rows, width, (attn_activation)kind, 2);
            int wrong = 0, gaps = 0;
            for (int64_t row = 0; row < rows; row++) {
                activate(act, x + row * ld_x, width, (attn_activation)kind, 1);
                for (int64_t c = 0; c < ld_out; c++) {
                    const float got = out[row * ld_out + c];
                    if (c >= width) {
                        gaps += got != SENTINEL;
                        continue;
                    }
                    const float want = act[c] * x[row * ld_x + width + c];
                    wrong += memcmp(&got, &want, sizeof got) != 0;
                }
            }
            TU_CHECK(st == ATTN_OK && st2 == ATTN_OK && wrong == 0 && gaps == 0,
                     "%s gated %s, %lld rows of %lld: status %s, %d values not act(gate) * up, %d gaps written",
                     isa_name, act_names[kind], (long long)rows, (long long)width, attn_status_string(st), wrong, gaps);
            TU_CHECK(memcmp(out, two, (size_t)(rows * ld_out) * sizeof(float)) == 0, "%s gated %s width %lld: 2 threads differ",
                     isa_name, act_names[kind], (long long)width);
            /* In place: each row's gate half becomes the result, the linear half stays. */
            float *in_place = alloc_floats(rows * ld_x);
            memcpy(in_place, x, (size_t)(rows * ld_x) * sizeof(float));
            st = gated_activate(in_place, ld_x, in_place, ld_x, rows, width, (attn_activation)kind, 0);
            int same = st == ATTN_OK;
            for (int64_t row = 0; row < rows; row++)
                same &= memcmp(in_place + row * ld_x, out + row * ld_out, (size_t)width * sizeof(float)) == 0 &&
                        memcmp(in_place + row * ld_x + width, x + row * ld_x + width,
                               (size_t)(ld_x - width) * sizeof(float)) == 0;
            TU_CHECK(same, "%s gated %s width %lld: in place differs", isa_name, act_names[kind], (long long)width);
            free(x), free(out), free(two), free(act), free(in_place);
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Softmax rows                                                                                    */

static void softmax_case(tu_rng *r, int64_t rows, int64_t n, int64_t ld, attn_masked_rows policy) {
    const int64_t len = (rows - 1) * ld + n;
    float *x = alloc_floats(len), *x0 = alloc_floats(len), *x2 = alloc_floats(len);
    fill(x, len, SENTINEL);
    const float scale = tu_rng_chance(r, 0.5) ? 1.0f : 30.0f;
    /* Row kinds: 0 plain, 1 with -inf entries, 2 all -inf, 3 with a NaN, 4 with +inf. */
    int *kind = malloc((size_t)rows * sizeof(int));
    for (int64_t i = 0; i < rows; i++) {
        const double u = tu_rng_double(r);
        kind[i] = u < 0.45 ? 0 : u < 0.8 ? 1 : u < 0.9 ? 2 : u < 0.95 ? 3 : 4;
        float *xi = x + i * ld;
        for (int64_t j = 0; j < n; j++) {
            xi[j] = scale * tu_rng_uniform(r, -1, 1);
            if ((kind[i] == 1 && tu_rng_chance(r, 0.4)) || kind[i] == 2) xi[j] = -INFINITY;
        }
        if (kind[i] == 3) xi[tu_rng_range(r, 0, n - 1)] = NAN;
        if (kind[i] == 4) xi[tu_rng_range(r, 0, n - 1)] = INFINITY;
        int all_masked = 1;
        for (int64_t j = 0; j < n; j++) all_masked &= xi[j] == -INFINITY;
        if (all_masked) kind[i] = 2;
    }
    memcpy(x0, x, (size_t)len * sizeof(float));
    memcpy(x2, x, (size_t)len * sizeof(float));

    char what[200];
    snprintf(what, sizeof what, "%s softmax rows=%lld n=%lld ld=%lld policy=%d", isa_name, (long long)rows,
             (long long)n, (long long)ld, (int)policy);
    attn_status st = softmax_rows(x, ld, rows, n, policy, 1);
    TU_CHECK(st == ATTN_OK, "%s: status %s", what, attn_status_string(st));
    double worst = 0;
    int gaps_ok = 1, special_ok = 1;
    for (int64_t i = 0; i < rows; i++) {
        const float *in = x0 + i * ld, *got = x + i * ld;
        for (int64_t j = n; j < ld && i * ld + j < len; j++) gaps_ok &= got[j] == SENTINEL;
        if (kind[i] >= 2) {
            const float want = kind[i] == 2 && policy == ATTN_MASKED_ROWS_ZERO   ? 0.0f
                               : kind[i] == 2 && policy == ATTN_MASKED_ROWS_MEAN ? 1.0f / (float)n
                                                                                : NAN;
            for (int64_t j = 0; j < n; j++) special_ok &= isnan(want) ? isnan(got[j]) : got[j] == want;
            continue;
        }
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; j++) mx = in[j] > mx ? in[j] : mx;
        for (int64_t j = 0; j < n; j++) sum += exp((double)in[j] - mx);
        for (int64_t j = 0; j < n; j++) {
            if (in[j] == -INFINITY) {
                special_ok &= got[j] == 0.0f;
                continue;
            }
            const double ref = exp((double)in[j] - mx) / sum;
            /* x - max and (x - max) log2e are rounded to float: relative error ~|x - max| 2^-23. */
            const double tol = (2e-6 + 2e-7 * fabs((double)in[j] - mx)) * ref + 1e-37;
            const double err = fabs(got[j] - ref) / tol;
            if (!(err <= worst)) worst = err;
        }
    }
    TU_CHECK(worst <= 1.0, "%s: error %.3g of tolerance", what, worst);
    note_worst(&worst_softmax, worst);
    TU_CHECK(special_ok, "%s: -inf entries, or fully masked / NaN / +inf rows, wrong", what);
    TU_CHECK(gaps_ok, "%s: wrote outside the rows", what);
    st = softmax_rows(x2, ld, rows, n, policy, 2);
    TU_CHECK(st == ATTN_OK && memcmp(x, x2, (size_t)len * sizeof(float)) == 0, "%s: 2 threads differ", what);
    free(kind);
    free(x);
    free(x0);
    free(x2);
}

static void test_softmax(tu_rng *r) {
    for (int k = 0; k < 60; k++) {
        const int64_t n = tu_rng_chance(r, 0.1) ? tu_rng_range(r, 1000, 4000) : rand_size(r, 200);
        const int64_t ld = n + (tu_rng_chance(r, 0.5) ? tu_rng_range(r, 1, 9) : 0);
        softmax_case(r, rand_size(r, 50), n, ld, (attn_masked_rows)(k % 3));
    }
    for (int policy = 0; policy < 3; policy++) {
        softmax_case(r, 1, 1, 1, (attn_masked_rows)policy);
        softmax_case(r, 300, 129, 133, (attn_masked_rows)policy);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Rotary                                                                                          */

typedef struct rope_case {
    int64_t batch, heads, len, dim, d; /* d: the full feature count, dim <= d */
    int seq_major;                     /* (B, L, H, D) rather than (B, H, L, D) */
    int64_t pad;                       /* extra elements after each row */
    float theta;
    int64_t offset;
    attn_rotary_pairing pairing;
    const int64_t *positions;          /* (batch,) per-sequence starts, or NULL (offset for all) */
    attn_rotary_angles angles;
} rope_case;

/* The cos and sin of position's angle i in float precision, written out as transformers computes
 * them (inv_freq = 1 / theta^(arange(0, dim, 2) / dim) in float32, angle = float(p) * inv_freq),
 * cos and sin in double rounded to float: what Llama's rotary embedding did in Swift. */
static void float_angle(float theta, int64_t dim, int64_t i, int64_t position, float *c, float *s) {
    const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)dim);
    const float angle = (float)position * inv_freq;
    *c = (float)cos((double)angle);
    *s = (float)sin((double)angle);
}

/* Checks x (rotated) against x0 (before) for every row: the double reference (Equinox's formula,
 * angles in double) within 3e-7 (|a| + |b|) for double angles; for float angles the serial float
 * formula's cos and sin, the rotation itself rounded in float at most once per product and once
 * for the sum (with or without a fused multiply-add), so within 2^-24 (|a c| + |b s| + |result|)
 * of the same rotation in double. Returns the worst error as a fraction of the tolerance. */
static double rotary_error(const rope_case *c, const int64_t *stride, const float *x0, const float *x, int *untouched,
                           int inverse) {
    const int64_t half = c->dim / 2, row = c->d + c->pad;
    double worst = 0;
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t h = 0; h < c->heads; h++)
            for (int64_t l = 0; l < c->len; l++) {
                const int64_t at = b * stride[0] + h * stride[1] + l * stride[2];
                const float *in = x0 + at, *got = x + at;
                for (int64_t j = c->dim; j < row; j++) *untouched &= memcmp(&got[j], &in[j], sizeof(float)) == 0;
                const int64_t position = (c->positions ? c->positions[b] : c->offset) + l;
                for (int64_t i = 0; i < half; i++) {
                    const int64_t ia = c->pairing == ATTN_ROTARY_HALF ? i : 2 * i;
                    const int64_t ib = c->pairing == ATTN_ROTARY_HALF ? i + half : 2 * i + 1;
                    const double a = in[ia], bb = in[ib];
                    double cs, sn, tol_a, tol_b;
                    if (c->angles == ATTN_ROTARY_ANGLES_FLOAT) {
                        float fc, fs;
                        float_angle(c->theta, c->dim, i, position, &fc, &fs);
                        cs = fc, sn = fs;
                    } else {
                        /* Equinox: x * cos + rotate_half(x) * sin, with 1 / theta^(2i/dim). */
                        const double angle = (double)position * pow((double)c->theta, -2.0 * (double)i / (double)c->dim);
                        cs = cos(angle), sn = sin(angle);
                    }
                    if (inverse) sn = -sn; /* the rotation by -angle: its transpose, the backward pass */
                    const double ra = a * cs - bb * sn, rb = bb * cs + a * sn;
                    if (c->angles == ATTN_ROTARY_ANGLES_FLOAT) {
                        tol_a = 0x1p-24 * (fabs(a * cs) + fabs(bb * sn) + fabs(ra)) + 1e-40;
                        tol_b = 0x1p-24 * (fabs(bb * cs) + fabs(a * sn) + fabs(rb)) + 1e-40;
                    } else {
                        tol_a = tol_b = 3e-7 * (fabs(a) + fabs(bb)) + 1e-30;
                    }
                    const double e = fmax(fabs(got[ia] - ra) / tol_a, fabs(got[ib] - rb) / tol_b);
                    if (!(e <= worst)) worst = e;
                }
            }
    return worst;
}

static void rotary_case(tu_rng *r, const rope_case *c) {
    const int64_t row = c->d + c->pad;
    int64_t stride[3];
    if (c->seq_major) {
        stride[1] = row;
        stride[2] = c->heads * row;
        stride[0] = c->len * stride[2];
    } else {
        stride[2] = row;
        stride[1] = c->len * row;
        stride[0] = c->heads * stride[1];
    }
    const int64_t total = c->batch * c->heads * c->len * row;
    float *x = alloc_floats(total), *x0 = alloc_floats(total), *x2 = alloc_floats(total);
    for (int64_t i = 0; i < total; i++) x[i] = (i % row) < c->d ? tu_rng_uniform(r, -2, 2) : SENTINEL;
    memcpy(x0, x, (size_t)total * sizeof(float));
    memcpy(x2, x, (size_t)total * sizeof(float));

    char what[320];
    snprintf(what, sizeof what, "%s rotary B=%lld H=%lld L=%lld dim=%lld D=%lld seq_major=%d pad=%lld theta=%g "
             "offset=%lld pairing=%d positions=%s%lld angles=%d", isa_name, (long long)c->batch, (long long)c->heads,
             (long long)c->len, (long long)c->dim, (long long)c->d, c->seq_major, (long long)c->pad, c->theta,
             (long long)c->offset, (int)c->pairing, c->positions ? "[0]=" : "none ",
             (long long)(c->positions ? c->positions[0] : 0), (int)c->angles);
    attn_rotary_params p = attn_rotary_params_default();
    p.batch = c->batch; p.heads = c->heads; p.len = c->len; p.dim = c->dim;
    p.x = x; p.x_stride[0] = stride[0]; p.x_stride[1] = stride[1]; p.x_stride[2] = stride[2];
    p.theta = c->theta; p.position_offset = c->offset; p.pairing = c->pairing; p.num_threads = 1;
    p.positions = c->positions; p.angles = c->angles;
    attn_status st = attn_rotary(&p);
    TU_CHECK(st == ATTN_OK, "%s: status %s", what, attn_status_string(st));

    int untouched = 1;
    const double worst = rotary_error(c, stride, x0, x, &untouched, 0);
    TU_CHECK(worst <= 1.0, "%s: error %.3g of tolerance", what, worst);
    note_worst(c->angles == ATTN_ROTARY_ANGLES_FLOAT ? &worst_rope_float : &worst_rope, worst);
    TU_CHECK(untouched, "%s: features past dim or row gaps changed", what);
    /* inverse: the gradient of the input, dout rotated by -angle (the transpose), against the same
     * reference; and undoing the forward. */
    {
        float *g = alloc_floats(total), *back = alloc_floats(total);
        memcpy(g, x0, (size_t)total * sizeof(float));
        memcpy(back, x, (size_t)total * sizeof(float));
        attn_rotary_params inv = p;
        inv.flags = ATTN_ROTARY_INVERSE;
        inv.x = g;
        st = attn_rotary(&inv);
        int kept = 1;
        const double e = rotary_error(c, stride, x0, g, &kept, 1);
        TU_CHECK(st == ATTN_OK && e <= 1.0 && kept, "%s: inverse (the backward) error %.3g of tolerance", what, e);
        note_worst(c->angles == ATTN_ROTARY_ANGLES_FLOAT ? &worst_rope_float : &worst_rope, e);
        inv.x = back;
        st = attn_rotary(&inv);
        double undo = 0;
        for (int64_t i = 0; i < total; i++)
            if ((i % row) < c->dim) undo = fmax(undo, fabs((double)back[i] - (double)x0[i]));
        TU_CHECK(st == ATTN_OK && undo <= 2e-6, "%s: the inverse does not undo the rotation (%.3g)", what, undo);
        inv.flags = ATTN_ROTARY_INVERSE << 1;
        TU_CHECK(attn_rotary(&inv) == ATTN_ERR_INVALID_ARGUMENT, "%s: an unknown flag was accepted", what);
        free(g);
        free(back);
    }
    p.x = x2;
    p.num_threads = 2;
    st = attn_rotary(&p);
    TU_CHECK(st == ATTN_OK && memcmp(x, x2, (size_t)total * sizeof(float)) == 0, "%s: 2 threads differ", what);
    /* Per-sequence positions all equal to the offset: the bits of positions NULL. */
    if (!c->positions) {
        int64_t *same = malloc((size_t)c->batch * sizeof(int64_t));
        for (int64_t b = 0; b < c->batch; b++) same[b] = c->offset;
        memcpy(x2, x0, (size_t)total * sizeof(float));
        p.positions = same;
        p.position_offset = 0;
        st = attn_rotary(&p);
        TU_CHECK(st == ATTN_OK && memcmp(x, x2, (size_t)total * sizeof(float)) == 0,
                 "%s: positions all %lld differ from position_offset %lld", what, (long long)c->offset,
                 (long long)c->offset);
        free(same);
    }
    free(x);
    free(x0);
    free(x2);
}

static void test_rotary(tu_rng *r) {
    static const float thetas[] = {10000.0f, 100.0f, 500.0f, 1.5f, 1e6f, 500000.0f};
    static const int64_t offsets[] = {0, 0, 1, 5, 1000, 1000000};
    int64_t starts[3];
    for (int k = 0; k < 160; k++) {
        rope_case c;
        c.batch = tu_rng_range(r, 1, 3);
        c.heads = tu_rng_range(r, 1, 4);
        c.len = tu_rng_range(r, 1, 20);
        c.dim = 2 * tu_rng_range(r, 1, tu_rng_chance(r, 0.3) ? 64 : 8);
        c.d = c.dim + (tu_rng_chance(r, 0.5) ? tu_rng_range(r, 1, 5) : 0);
        c.seq_major = tu_rng_chance(r, 0.5);
        c.pad = tu_rng_chance(r, 0.3) ? tu_rng_range(r, 1, 3) : 0;
        c.theta = TU_PICK(r, thetas);
        c.offset = TU_PICK(r, offsets);
        c.pairing = tu_rng_chance(r, 0.5) ? ATTN_ROTARY_INTERLEAVED : ATTN_ROTARY_HALF;
        c.angles = k % 2 ? ATTN_ROTARY_ANGLES_FLOAT : ATTN_ROTARY_ANGLES_DOUBLE;
        /* Per-sequence starts half the time: different, or repeated (a table reused across b). */
        c.positions = NULL;
        if (tu_rng_chance(r, 0.5)) {
            for (int64_t b = 0; b < c.batch; b++) starts[b] = b > 0 && tu_rng_chance(r, 0.3) ? starts[b - 1] : TU_PICK(r, offsets);
            c.positions = starts;
        }
        rotary_case(r, &c);
    }
    /* Large enough for several work items (the thread split), both pairings, both angle modes;
     * sequences at decoding starts far apart (float angles at 100000 differ from double ones by far
     * more than the tolerance, so each mode is told from the other). */
    static const int64_t decode[3] = {100000, 3, 100000};
    const rope_case big[] = {
        {2, 8, 300, 64, 64, 1, 0, 10000.0f, 7, ATTN_ROTARY_HALF, NULL, ATTN_ROTARY_ANGLES_DOUBLE},
        {1, 3, 500, 32, 40, 0, 1, 10000.0f, 0, ATTN_ROTARY_INTERLEAVED, NULL, ATTN_ROTARY_ANGLES_DOUBLE},
        {1, 1, 1, 2, 2, 0, 0, 10000.0f, 0, ATTN_ROTARY_HALF, NULL, ATTN_ROTARY_ANGLES_DOUBLE},
        {2, 8, 300, 64, 64, 1, 0, 500000.0f, 7, ATTN_ROTARY_HALF, NULL, ATTN_ROTARY_ANGLES_FLOAT},
        {3, 4, 200, 128, 128, 1, 0, 10000.0f, 0, ATTN_ROTARY_HALF, decode, ATTN_ROTARY_ANGLES_FLOAT},
        {3, 4, 200, 128, 128, 0, 2, 10000.0f, 0, ATTN_ROTARY_HALF, decode, ATTN_ROTARY_ANGLES_DOUBLE},
        {3, 2, 1, 64, 64, 1, 0, 10000.0f, 0, ATTN_ROTARY_INTERLEAVED, decode, ATTN_ROTARY_ANGLES_FLOAT},
    };
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) rotary_case(r, &big[k]);
}

/* ---------------------------------------------------------------------------------------------- */
/* Mean of rows                                                                                    */

static void mean_case(tu_rng *r, int64_t rows, int64_t n, int64_t ld, float offset) {
    const int64_t len = (rows - 1) * ld + n;
    float *x = alloc_floats(len), *out = alloc_floats(rows + 1), *out2 = alloc_floats(rows + 1);
    for (int64_t i = 0; i < len; i++) x[i] = offset + tu_rng_uniform(r, -1, 1);
    fill(out, rows + 1, SENTINEL);
    char what[160];
    snprintf(what, sizeof what, "%s mean_rows rows=%lld n=%lld ld=%lld offset=%g", isa_name, (long long)rows,
             (long long)n, (long long)ld, offset);
    attn_status st = mean_rows(out, x, ld, rows, n, 1);
    TU_CHECK(st == ATTN_OK, "%s: status %s", what, attn_status_string(st));
    double worst = 0;
    for (int64_t i = 0; i < rows; i++) {
        double s = 0, mag = 0;
        for (int64_t j = 0; j < n; j++) {
            s += x[i * ld + j];
            mag += fabs(x[i * ld + j]);
        }
        const double ref = s / (double)n;
        const double tol = 0x1p-24 * fabs(ref) * 1.001 + 1e-14 * mag / (double)n + 1e-300;
        const double e = fabs(out[i] - ref) / tol;
        if (!(e <= worst)) worst = e;
    }
    TU_CHECK(worst <= 1.0, "%s: error %.3g of tolerance", what, worst);
    note_worst(&worst_mean, worst);
    TU_CHECK(out[rows] == SENTINEL, "%s: wrote past out", what);
    st = mean_rows(out2, x, ld, rows, n, 2);
    TU_CHECK(st == ATTN_OK && memcmp(out, out2, (size_t)rows * sizeof(float)) == 0, "%s: 2 threads differ", what);
    free(x);
    free(out);
    free(out2);
}

static void test_mean_rows(tu_rng *r) {
    static const float offsets[] = {0.0f, 3.0f, -100.0f};
    for (int k = 0; k < 40; k++) {
        const int64_t n = tu_rng_chance(r, 0.2) ? tu_rng_range(r, 1000, 20000) : rand_size(r, 300);
        mean_case(r, rand_size(r, 60), n, n + (tu_rng_chance(r, 0.5) ? tu_rng_range(r, 1, 9) : 0), TU_PICK(r, offsets));
    }
    mean_case(r, 1000, 49, 53, 0.5f);
}

/* ---------------------------------------------------------------------------------------------- */
/* Row reductions                                                                                  */

static const char *reduce_names[4] = {"sum", "mean", "max", "min"};

/* Row r of x (n floats): uniform values, and with some chance a special: NaN, +inf, -inf (one or
 * several), a tie of the row's extremum, signed zeros, or a whole row of one special value. */
static void reduce_fill_row(tu_rng *r, float *row, int64_t n) {
    for (int64_t j = 0; j < n; j++) row[j] = tu_rng_uniform(r, -2, 2);
    static const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 2.5f, -2.5f};
    switch (tu_rng_range(r, 0, 5)) {
    case 0:
    case 1: break;
    case 2: /* one to three specials anywhere (two 2.5s are a tie of the maximum) */
        for (int k = (int)tu_rng_range(r, 1, 3); k > 0; k--) row[tu_rng_range(r, 0, n - 1)] = TU_PICK(r, specials);
        break;
    case 3: /* signed zeros only: max and min are a zero, the first one */
        for (int64_t j = 0; j < n; j++) row[j] = tu_rng_chance(r, 0.5) ? 0.0f : -0.0f;
        break;
    case 4: { /* one special value everywhere */
        const float v = TU_PICK(r, specials);
        for (int64_t j = 0; j < n; j++) row[j] = v;
        break;
    }
    default: /* NaN near the end and an infinity before it: the NaN's index wins */
        row[n - 1] = NAN;
        row[0] = INFINITY;
        break;
    }
}

/* The reference of one row: sum in double, then the first index of the extremum (first NaN). */
static void reduce_reference(const float *row, int64_t n, attn_reduction op, double *value, int64_t *index,
                             double *magnitude) {
    double s = 0, mag = 0;
    for (int64_t j = 0; j < n; j++) {
        s += row[j];
        mag += fabs(row[j]);
    }
    *magnitude = mag;
    *index = -1;
    if (op == ATTN_REDUCE_SUM || op == ATTN_REDUCE_MEAN) {
        *value = op == ATTN_REDUCE_SUM ? s : s / (double)n;
        return;
    }
    int64_t best = 0;
    for (int64_t j = 0; j < n; j++) {
        if (row[j] != row[j]) {
            best = j;
            break;
        }
        if (op == ATTN_REDUCE_MAX ? row[j] > row[best] : row[j] < row[best]) best = j;
    }
    *index = best;
    *value = row[best];
}

static void reduce_case(tu_rng *r, int64_t rows, int64_t n, int64_t ld, attn_reduction op) {
    const int64_t len = (rows - 1) * ld + n;
    float *x = alloc_floats(len), *out = alloc_floats(rows + 1), *out2 = alloc_floats(rows + 1);
    int64_t *idx = malloc((size_t)(rows + 1) * sizeof *idx), *idx2 = malloc((size_t)(rows + 1) * sizeof *idx2);
    fill(x, len, SENTINEL);
    for (int64_t i = 0; i < rows; i++) reduce_fill_row(r, x + i * ld, n);
    fill(out, rows + 1, SENTINEL);
    const int extremum = op == ATTN_REDUCE_MAX || op == ATTN_REDUCE_MIN;
    for (int64_t i = 0; i <= rows; i++) idx[i] = -7;
    char what[160];
    snprintf(what, sizeof what, "%s reduce_rows %s rows=%lld n=%lld ld=%lld", isa_name, reduce_names[op],
             (long long)rows, (long long)n, (long long)ld);
    attn_status st = reduce_rows(out, extremum ? idx : NULL, x, ld, rows, n, op, 1);
    TU_CHECK(st == ATTN_OK, "%s: status %s", what, attn_status_string(st));
    double worst = 0;
    int64_t wrong = 0;
    for (int64_t i = 0; i < rows; i++) {
        double ref, mag;
        int64_t ref_index;
        reduce_reference(x + i * ld, n, op, &ref, &ref_index, &mag);
        if (extremum) {
            /* Exact: the index, and the value bit for bit (x[index], signed zeros and NaN included). */
            wrong += idx[i] != ref_index || memcmp(&out[i], &x[i * ld + ref_index], sizeof(float)) != 0;
        } else if (isnan(ref) || isinf(ref)) {
            wrong += isnan(ref) ? !isnan(out[i]) : out[i] != ref;
        } else {
            const double tol = 0x1p-24 * fabs(ref) * 1.001 + 1e-14 * mag / (op == ATTN_REDUCE_MEAN ? (double)n : 1) + 1e-300;
            const double e = fabs(out[i] - ref) / tol;
            if (!(e <= worst)) worst = e;
        }
    }
    TU_CHECK(wrong == 0, "%s: %lld rows differ from the reference", what, (long long)wrong);
    TU_CHECK(worst <= 1.0, "%s: error %.3g of tolerance", what, worst);
    note_worst(&worst_reduce, worst);
    TU_CHECK(out[rows] == SENTINEL && idx[rows] == -7, "%s: wrote past out", what);
    /* Two threads give the same bits; an extremum's indices alone (out NULL) are the same indices. */
    st = reduce_rows(out2, extremum ? idx2 : NULL, x, ld, rows, n, op, 2);
    TU_CHECK(st == ATTN_OK && memcmp(out, out2, (size_t)rows * sizeof(float)) == 0 &&
             (!extremum || memcmp(idx, idx2, (size_t)rows * sizeof *idx) == 0), "%s: 2 threads differ", what);
    if (extremum) {
        for (int64_t i = 0; i < rows; i++) idx2[i] = -7;
        st = reduce_rows(NULL, idx2, x, ld, rows, n, op, 0);
        TU_CHECK(st == ATTN_OK && memcmp(idx, idx2, (size_t)rows * sizeof *idx) == 0, "%s: indices alone differ", what);
    }
    free(x);
    free(out);
    free(out2);
    free(idx);
    free(idx2);
}

static void test_reduce_rows(tu_rng *r) {
    for (int op = ATTN_REDUCE_SUM; op <= ATTN_REDUCE_MIN; op++) {
        for (int k = 0; k < 40; k++) {
            const int64_t n = tu_rng_chance(r, 0.15) ? tu_rng_range(r, 1000, 20000) : rand_size(r, 300);
            reduce_case(r, rand_size(r, 60), n, n + (tu_rng_chance(r, 0.5) ? tu_rng_range(r, 1, 9) : 0),
                        (attn_reduction)op);
        }
        reduce_case(r, 1, 1, 1, (attn_reduction)op);
        reduce_case(r, 1000, 49, 53, (attn_reduction)op);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Error statuses                                                                                  */

/* Checks a status, and that the guarded buffer still holds its sentinel (nothing written). */
#define EXPECT_STATUS(call, want, buf, len, name)                                                      \
    do {                                                                                               \
        fill((buf), (len), SENTINEL);                                                                  \
        const attn_status got_ = (call);                                                               \
        int clean_ = 1;                                                                                \
        for (int64_t i_ = 0; i_ < (len); i_++) clean_ &= (buf)[i_] == SENTINEL;                        \
        TU_CHECK(got_ == (want), "%s: status %s, want %s", (name), attn_status_string(got_),           \
                 attn_status_string(want));                                                            \
        if ((want) != ATTN_OK) TU_CHECK(clean_, "%s: wrote on error", (name));                         \
    } while (0)

static void test_errors(void) {
    float x[64], out[64], w[8];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    for (int i = 0; i < 8; i++) w[i] = 1.0f;
    const int64_t big = INT64_MAX / 2;

    /* layer norm: out (4 rows of 8), x (4 rows of 8) */
#define LN(o, ldo, xx, ldx, rows, n, eps, var, thr) layer_norm(o, ldo, xx, ldx, rows, n, w, w, eps, var, thr)
    EXPECT_STATUS(LN(NULL, 8, x, 8, 4, 8, 1e-5f, ATTN_VARIANCE_TWO_PASS, 1), ATTN_ERR_NULL_POINTER, out, 32, "ln out NULL");
    EXPECT_STATUS(LN(out, 8, NULL, 8, 4, 8, 1e-5f, ATTN_VARIANCE_TWO_PASS, 1), ATTN_ERR_NULL_POINTER, out, 32, "ln x NULL");
    EXPECT_STATUS(LN(out, 8, x, 8, 0, 8, 1e-5f, ATTN_VARIANCE_TWO_PASS, 1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln rows 0");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, -1, 1e-5f, ATTN_VARIANCE_TWO_PASS, 1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln n -1");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, -1e-5f, ATTN_VARIANCE_TWO_PASS, 1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln eps < 0");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, NAN, ATTN_VARIANCE_TWO_PASS, 1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln eps NaN");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, INFINITY, ATTN_VARIANCE_TWO_PASS, 1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln eps inf");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, 1e-5f, (attn_variance)3, 1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln variance 3");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, 1e-5f, (attn_variance)-1, 1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln variance -1");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, -1), ATTN_ERR_INVALID_ARGUMENT, out, 32, "ln threads -1");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, ATTN_MAX_THREADS + 1), ATTN_ERR_INVALID_ARGUMENT, out,
                  32, "ln threads > max");
    EXPECT_STATUS(LN(out, 8, x, 7, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, 1), ATTN_ERR_INVALID_STRIDE, out, 32, "ln ld_x < n");
    EXPECT_STATUS(LN(out, 7, x, 8, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, 1), ATTN_ERR_INVALID_STRIDE, out, 32, "ln ld_out < n");
    EXPECT_STATUS(LN(out, -8, x, 8, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, 1), ATTN_ERR_INVALID_STRIDE, out, 32, "ln ld_out < 0");
    EXPECT_STATUS(LN(out, 8, out, 9, 3, 8, 1e-5f, ATTN_VARIANCE_FAST, 1), ATTN_ERR_INVALID_STRIDE, out, 32,
                  "ln in place with another stride");
    EXPECT_STATUS(LN(out, 8, x, big, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, 1), ATTN_ERR_OVERFLOW, out, 32, "ln x extent");
    EXPECT_STATUS(LN(out, big, x, 8, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, 1), ATTN_ERR_OVERFLOW, out, 32, "ln out extent");
    EXPECT_STATUS(LN(out, 8, x, 8, 4, 8, 1e-5f, ATTN_VARIANCE_FAST, 1), ATTN_OK, out, 32, "ln valid");
    EXPECT_STATUS(layer_norm(out, 8, x, 8, 4, 8, NULL, NULL, 0.0f, ATTN_VARIANCE_FAST, 0), ATTN_OK, out, 32,
                  "ln valid, no weight or bias, eps 0");
#undef LN

    /* activations */
    EXPECT_STATUS(activate(NULL, x, 8, ATTN_ACTIVATION_GELU, 1), ATTN_ERR_NULL_POINTER, out, 64, "act out NULL");
    EXPECT_STATUS(activate(out, NULL, 8, ATTN_ACTIVATION_GELU, 1), ATTN_ERR_NULL_POINTER, out, 64, "act x NULL");
    EXPECT_STATUS(activate(out, x, 0, ATTN_ACTIVATION_GELU, 1), ATTN_ERR_INVALID_ARGUMENT, out, 64, "act count 0");
    EXPECT_STATUS(activate(out, x, -3, ATTN_ACTIVATION_GELU, 1), ATTN_ERR_INVALID_ARGUMENT, out, 64, "act count -3");
    EXPECT_STATUS(activate(out, x, 8, (attn_activation)-1, 1), ATTN_ERR_INVALID_ARGUMENT, out, 64, "act kind -1");
    EXPECT_STATUS(activate(out, x, 8, (attn_activation)7, 1), ATTN_ERR_INVALID_ARGUMENT, out, 64, "act kind 7");
    EXPECT_STATUS(activate(out, x, 8, ATTN_ACTIVATION_GELU, -2), ATTN_ERR_INVALID_ARGUMENT, out, 64, "act threads -2");
    EXPECT_STATUS(activate(out, x, INT64_MAX / 2, ATTN_ACTIVATION_GELU, 1), ATTN_ERR_OVERFLOW, out, 64,
                  "act count overflows");
    EXPECT_STATUS(activate(out, x, 64, ATTN_ACTIVATION_SILU, 1), ATTN_OK, out, 64, "act valid");

    /* gated activations: x (4 rows of 2 x 8), out (4 rows of 8) */
#define GA(o, ldo, xx, ldx, rows, width, kind, thr) gated_activate(o, ldo, xx, ldx, rows, width, kind, thr)
    EXPECT_STATUS(GA(NULL, 8, x, 16, 4, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_NULL_POINTER, out, 64, "gated out NULL");
    EXPECT_STATUS(GA(out, 8, NULL, 16, 4, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_NULL_POINTER, out, 64, "gated x NULL");
    EXPECT_STATUS(GA(out, 8, x, 16, 0, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_INVALID_ARGUMENT, out, 64, "gated rows 0");
    EXPECT_STATUS(GA(out, 8, x, 16, 4, 0, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_INVALID_ARGUMENT, out, 64, "gated width 0");
    EXPECT_STATUS(GA(out, 8, x, 16, 4, 8, (attn_activation)7, 1), ATTN_ERR_INVALID_ARGUMENT, out, 64, "gated kind 7");
    EXPECT_STATUS(GA(out, 8, x, 16, 4, 8, ATTN_ACTIVATION_SILU, -1), ATTN_ERR_INVALID_ARGUMENT, out, 64,
                  "gated threads -1");
    EXPECT_STATUS(GA(out, 8, x, 15, 4, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_INVALID_STRIDE, out, 64,
                  "gated ld_x < 2 width");
    EXPECT_STATUS(GA(out, 7, x, 16, 4, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_INVALID_STRIDE, out, 64,
                  "gated ld_out < width");
    EXPECT_STATUS(GA(out, 16, out, 17, 3, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_INVALID_STRIDE, out, 64,
                  "gated in place with another stride");
    EXPECT_STATUS(GA(out, 8, x, 16, 4, big + 1, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_OVERFLOW, out, 64,
                  "gated 2 width overflows");
    EXPECT_STATUS(GA(out, 8, x, big, 4, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_OVERFLOW, out, 64, "gated x extent");
    EXPECT_STATUS(GA(out, big, x, 16, 4, 8, ATTN_ACTIVATION_SILU, 1), ATTN_ERR_OVERFLOW, out, 64, "gated out extent");
    EXPECT_STATUS(GA(out, 8, x, 16, 4, 8, ATTN_ACTIVATION_SILU, 1), ATTN_OK, out, 64, "gated valid");
#undef GA

    /* softmax: in place, so the guarded buffer is x itself */
    float s[64];
#define SM(xx, ld, rows, n, pol, thr) softmax_rows(xx, ld, rows, n, pol, thr)
    EXPECT_STATUS(SM(NULL, 8, 4, 8, ATTN_MASKED_ROWS_ZERO, 1), ATTN_ERR_NULL_POINTER, s, 32, "softmax x NULL");
    EXPECT_STATUS(SM(s, 8, 0, 8, ATTN_MASKED_ROWS_ZERO, 1), ATTN_ERR_INVALID_ARGUMENT, s, 32, "softmax rows 0");
    EXPECT_STATUS(SM(s, 8, 4, 0, ATTN_MASKED_ROWS_ZERO, 1), ATTN_ERR_INVALID_ARGUMENT, s, 32, "softmax n 0");
    EXPECT_STATUS(SM(s, 8, 4, 8, (attn_masked_rows)3, 1), ATTN_ERR_INVALID_ARGUMENT, s, 32, "softmax policy 3");
    EXPECT_STATUS(SM(s, 8, 4, 8, ATTN_MASKED_ROWS_ZERO, -1), ATTN_ERR_INVALID_ARGUMENT, s, 32, "softmax threads -1");
    EXPECT_STATUS(SM(s, 7, 4, 8, ATTN_MASKED_ROWS_ZERO, 1), ATTN_ERR_INVALID_STRIDE, s, 32, "softmax ld < n");
    EXPECT_STATUS(SM(s, -8, 4, 8, ATTN_MASKED_ROWS_ZERO, 1), ATTN_ERR_INVALID_STRIDE, s, 32, "softmax ld < 0");
    EXPECT_STATUS(SM(s, big, 4, 8, ATTN_MASKED_ROWS_ZERO, 1), ATTN_ERR_OVERFLOW, s, 32, "softmax extent");
    EXPECT_STATUS(SM(s, 8, 4, 8, ATTN_MASKED_ROWS_MEAN, 1), ATTN_OK, s, 32, "softmax valid");
#undef SM

    /* mean rows */
    EXPECT_STATUS(mean_rows(NULL, x, 8, 4, 8, 1), ATTN_ERR_NULL_POINTER, out, 8, "mean out NULL");
    EXPECT_STATUS(mean_rows(out, NULL, 8, 4, 8, 1), ATTN_ERR_NULL_POINTER, out, 8, "mean x NULL");
    EXPECT_STATUS(mean_rows(out, x, 8, -4, 8, 1), ATTN_ERR_INVALID_ARGUMENT, out, 8, "mean rows -4");
    EXPECT_STATUS(mean_rows(out, x, 8, 4, 0, 1), ATTN_ERR_INVALID_ARGUMENT, out, 8, "mean n 0");
    EXPECT_STATUS(mean_rows(out, x, 8, 4, 8, ATTN_MAX_THREADS + 1), ATTN_ERR_INVALID_ARGUMENT, out, 8,
                  "mean threads > max");
    EXPECT_STATUS(mean_rows(out, x, 4, 4, 8, 1), ATTN_ERR_INVALID_STRIDE, out, 8, "mean ld < n");
    EXPECT_STATUS(mean_rows(out, x, big, 4, 8, 1), ATTN_ERR_OVERFLOW, out, 8, "mean extent");
    EXPECT_STATUS(mean_rows(out, x, 0, INT64_MAX / 2, 1, 1), ATTN_ERR_INVALID_STRIDE, out, 8, "mean ld 0 < n");
    EXPECT_STATUS(mean_rows(out, x, 1, INT64_MAX / 2, 1, 1), ATTN_ERR_OVERFLOW, out, 8, "mean rows overflow");
    EXPECT_STATUS(mean_rows(out, x, 8, 4, 8, 1), ATTN_OK, out, 8, "mean valid");

    /* row reductions */
    int64_t ix[8];
    EXPECT_STATUS(reduce_rows(out, NULL, NULL, 8, 4, 8, ATTN_REDUCE_SUM, 1), ATTN_ERR_NULL_POINTER, out, 8,
                  "reduce x NULL");
    EXPECT_STATUS(reduce_rows(NULL, NULL, x, 8, 4, 8, ATTN_REDUCE_MAX, 1), ATTN_ERR_NULL_POINTER, out, 8,
                  "reduce max out and indices NULL");
    EXPECT_STATUS(reduce_rows(NULL, ix, x, 8, 4, 8, ATTN_REDUCE_SUM, 1), ATTN_ERR_NULL_POINTER, out, 8,
                  "reduce sum out NULL");
    EXPECT_STATUS(reduce_rows(out, ix, x, 8, 4, 8, ATTN_REDUCE_MEAN, 1), ATTN_ERR_INVALID_ARGUMENT, out, 8,
                  "reduce mean with indices");
    EXPECT_STATUS(reduce_rows(out, NULL, x, 8, 4, 8, (attn_reduction)4, 1), ATTN_ERR_INVALID_ARGUMENT, out, 8,
                  "reduce op 4");
    EXPECT_STATUS(reduce_rows(out, NULL, x, 8, 4, 8, (attn_reduction)-1, 1), ATTN_ERR_INVALID_ARGUMENT, out, 8,
                  "reduce op -1");
    EXPECT_STATUS(reduce_rows(out, NULL, x, 8, 0, 8, ATTN_REDUCE_SUM, 1), ATTN_ERR_INVALID_ARGUMENT, out, 8,
                  "reduce rows 0");
    EXPECT_STATUS(reduce_rows(out, NULL, x, 8, 4, 0, ATTN_REDUCE_SUM, 1), ATTN_ERR_INVALID_ARGUMENT, out, 8,
                  "reduce n 0");
    EXPECT_STATUS(reduce_rows(out, NULL, x, 8, 4, 8, ATTN_REDUCE_SUM, -1), ATTN_ERR_INVALID_ARGUMENT, out, 8,
                  "reduce threads -1");
    EXPECT_STATUS(reduce_rows(out, NULL, x, 7, 4, 8, ATTN_REDUCE_SUM, 1), ATTN_ERR_INVALID_STRIDE, out, 8,
                  "reduce ld < n");
    EXPECT_STATUS(reduce_rows(out, NULL, x, big, 4, 8, ATTN_REDUCE_SUM, 1), ATTN_ERR_OVERFLOW, out, 8,
                  "reduce extent");
    EXPECT_STATUS(reduce_rows(out, ix, x, 1, INT64_MAX / 4, 1, ATTN_REDUCE_MAX, 1), ATTN_ERR_OVERFLOW, out, 8,
                  "reduce indices overflow");
    EXPECT_STATUS(reduce_rows(out, ix, x, 8, 4, 8, ATTN_REDUCE_MIN, 1), ATTN_OK, out, 8, "reduce valid");
    TU_CHECK(attn_reduce_rows(NULL) == ATTN_ERR_NULL_POINTER, "reduce params NULL");

    /* rotary: x is (1, 2, 4, 8) contiguous, modified in place, so it is the guarded buffer */
    float q[64];
    attn_rotary_params ok = attn_rotary_params_default();
    ok.batch = 1; ok.heads = 2; ok.len = 4; ok.dim = 8;
    ok.x = q; ok.x_stride[0] = 64; ok.x_stride[1] = 32; ok.x_stride[2] = 8;
    ok.num_threads = 1;
    struct {
        const char *name;
        attn_rotary_params p;
        attn_status want;
    } cases[] = {
        {"rope x NULL", ok, ATTN_ERR_NULL_POINTER},
        {"rope batch 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope heads -1", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope len 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope dim 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope dim odd", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope theta 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope theta < 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope theta NaN", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope theta inf", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope offset < 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope pairing 2", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope threads -1", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope stride < 0", ok, ATTN_ERR_INVALID_STRIDE},
        {"rope rows overlap (position stride < dim)", ok, ATTN_ERR_INVALID_STRIDE},
        {"rope rows overlap (head stride 0)", ok, ATTN_ERR_INVALID_STRIDE},
        {"rope extent overflows", ok, ATTN_ERR_OVERFLOW},
        {"rope offset + len overflows", ok, ATTN_ERR_OVERFLOW},
        {"rope valid", ok, ATTN_OK},
        {"rope valid, (B, L, H, D)", ok, ATTN_OK},
        {"rope valid, len 1 with any position stride", ok, ATTN_OK},
        {"rope angles 2", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope positions[0] < 0", ok, ATTN_ERR_INVALID_ARGUMENT},
        {"rope positions[0] + len overflows", ok, ATTN_ERR_OVERFLOW},
        {"rope valid, positions", ok, ATTN_OK},
    };
    static const int64_t negative[1] = {-1}, huge[1] = {INT64_MAX - 2}, fine[1] = {1000};
    cases[0].p.x = NULL;
    cases[1].p.batch = 0;
    cases[2].p.heads = -1;
    cases[3].p.len = 0;
    cases[4].p.dim = 0;
    cases[5].p.dim = 7;
    cases[6].p.theta = 0.0f;
    cases[7].p.theta = -10.0f;
    cases[8].p.theta = NAN;
    cases[9].p.theta = INFINITY;
    cases[10].p.position_offset = -1;
    cases[11].p.pairing = (attn_rotary_pairing)2;
    cases[12].p.num_threads = -1;
    cases[13].p.x_stride[0] = -1;
    cases[14].p.x_stride[2] = 6;
    cases[15].p.x_stride[1] = 0;
    cases[16].p.x_stride[2] = big;
    cases[17].p.position_offset = INT64_MAX - 2;
    cases[19].p.x_stride[1] = 8;
    cases[19].p.x_stride[2] = 16;
    cases[20].p.len = 1;
    cases[20].p.x_stride[2] = 0;
    cases[21].p.angles = (attn_rotary_angles)2;
    cases[22].p.positions = negative;
    cases[23].p.positions = huge;
    cases[24].p.positions = fine;
    cases[24].p.angles = ATTN_ROTARY_ANGLES_FLOAT;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        EXPECT_STATUS(attn_rotary(&cases[k].p), cases[k].want, q, 64, cases[k].name);
    EXPECT_STATUS(attn_rotary(NULL), ATTN_ERR_NULL_POINTER, q, 64, "rope params NULL");
#undef EXPECT_STATUS
}

int main(int argc, char **argv) {
    uint64_t seed = 0x5EED0DE5ull;
    if (argc > 1 && !tu_parse_u64(argv[1], &seed)) {
        printf("usage: %s [seed]\n", argv[0]);
        return 2;
    }
    printf("seed %llu\n", (unsigned long long)seed);
    const double t0 = tu_now();
    test_errors();
    const attn_isa isas[] = {ATTN_ISA_SCALAR, ATTN_ISA_NEON, ATTN_ISA_AVX2, ATTN_ISA_AVX512};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (!attn_isa_supported(isas[i])) continue;
        TU_CHECK(attn_set_isa(isas[i]) == ATTN_OK, "set isa %s", attn_isa_name(isas[i]));
        isa_name = attn_isa_name(isas[i]);
        printf("isa %s\n", isa_name);
        tu_rng r = tu_rng_derive(seed, i);
        test_layer_norm(&r);
        test_activations(&r);
        test_gated_activations(&r);
        test_softmax(&r);
        test_rotary(&r);
        test_mean_rows(&r);
        test_reduce_rows(&r);
        printf("  worst error / tolerance: layer_norm %.3f (mean, rstd %.3f), softmax %.3f, rotary %.3f (float "
               "angles %.3f), mean_rows %.3f, reduce_rows (sums) %.3f\n", worst_ln, worst_ln_stats, worst_softmax,
               worst_rope, worst_rope_float, worst_mean, worst_reduce);
        printf("  worst error / bound:");
        for (int k = 0; k < 7; k++) printf(" %s %.3f", act_names[k], worst_act[k]);
        printf("\n");
        worst_ln = worst_softmax = worst_rope = worst_mean = worst_reduce = 0;
        memset(worst_act, 0, sizeof worst_act);
    }
    printf("%.1f s\n", tu_now() - t0);
    return tu_summary();
}
