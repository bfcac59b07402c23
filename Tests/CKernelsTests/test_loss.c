/*
 * test_loss.c: attn_cross_entropy against a double-precision reference written here as the cross
 * entropy of soft targets, -Σ_c q_c log softmax(x)_c with q = (1 - ε) onehot(t) + ε / C (torch's
 * label smoothing), its gradient softmax(x) - q; over random shapes (1 class, 1 row, padded rows),
 * every reduction, ignored rows (all of them: NaN for the mean, as torch), label smoothing, a
 * gradient scale, the gradient in place over the logits, a NaN row, a vocabulary-sized row; central
 * differences in double of the loss; thread counts 1..8 bitwise; on every ISA the CPU has; every
 * error with nothing written.
 *
 * Run: build/tests/test_loss [seed]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "test_util.h"

static double worst_loss, worst_grad, worst_fd;

/* The reference of row r: its loss (0 when ignored) and gradient (times factor) into g. */
static double reference_row(const float *x, int64_t classes, int64_t t, double eps, double factor, double *g) {
    double sum = 0, loss = 0;
    for (int64_t c = 0; c < classes; c++) sum += exp((double)x[c]);
    for (int64_t c = 0; c < classes; c++) {
        const double q = (c == t ? 1.0 - eps : 0.0) + eps / (double)classes, p = exp((double)x[c]) / sum;
        loss -= q * log(p);
        if (g) g[c] = (p - q) * factor;
    }
    return loss;
}

static attn_cross_entropy_params params(int64_t rows, int64_t classes, const float *x, int64_t ld, const int64_t *t,
                                        float eps, attn_loss_reduction red, float *loss, float *dx, int threads) {
    attn_cross_entropy_params p = attn_cross_entropy_params_default();
    p.rows = rows; p.classes = classes; p.logits = x; p.ld_logits = ld; p.targets = t; p.label_smoothing = eps;
    p.reduction = red; p.loss = loss; p.dlogits = dx; p.ld_dlogits = ld; p.num_threads = threads;
    return p;
}

static void random_cases(tu_rng *r) {
    static const float smoothing[] = {0.0f, 0.0f, 0.1f, 0.5f, 1.0f};
    for (int k = 0; k < 120; k++) {
        const int64_t rows = k == 0 ? 1 : tu_rng_range(r, 1, 40);
        const int64_t classes = k == 1 ? 1 : k == 2 ? 8197 : tu_rng_range(r, 1, 300);
        const int64_t ld = classes + tu_rng_range(r, 0, 3);
        const attn_loss_reduction red = (attn_loss_reduction)(k % 3);
        const float eps = TU_PICK(r, smoothing), scale = k % 4 == 3 ? 0.25f : 1.0f;
        const int ignore_all = k % 17 == 5;
        float *x = malloc(sizeof(float) * (size_t)(rows * ld)), *dx = malloc(sizeof(float) * (size_t)(rows * ld));
        float *loss = malloc(sizeof(float) * (size_t)rows), *dx2 = malloc(sizeof(float) * (size_t)(rows * ld));
        float *loss2 = malloc(sizeof(float) * (size_t)rows);
        int64_t *t = malloc(sizeof(int64_t) * (size_t)rows);
        double *g = malloc(sizeof(double) * (size_t)classes);
        for (int64_t i = 0; i < rows * ld; i++) x[i] = tu_rng_uniform(r, -5, 5), dx[i] = -7.0f;
        int64_t counted = 0;
        for (int64_t i = 0; i < rows; i++) {
            t[i] = ignore_all || tu_rng_chance(r, 0.15) ? -100 : tu_rng_range(r, 0, classes - 1);
            counted += t[i] != -100;
        }
        attn_cross_entropy_params p = params(rows, classes, x, ld, t, eps, red, loss, dx, 1);
        p.grad_scale = scale;
        TU_CHECK(attn_cross_entropy(&p) == ATTN_OK, "cross entropy status");
        const double factor = scale / (red == ATTN_LOSS_MEAN && counted ? (double)counted : 1.0);
        double total = 0, mag = 0;
        for (int64_t i = 0; i < rows; i++) {
            const int ignored = t[i] == -100;
            const double li = ignored ? 0.0 : reference_row(x + i * ld, classes, t[i], eps, factor, g);
            total += li;
            mag += fabs(li);
            if (red == ATTN_LOSS_NONE) {
                const double e = fabs(loss[i] - li) / (1e-6 * (1 + fabs(li)));
                if (e > worst_loss) worst_loss = e;
                TU_CHECK(e <= 1, "row %lld loss %g, reference %g", (long long)i, loss[i], li);
            }
            for (int64_t c = 0; c < classes; c++) {
                const double want = ignored ? 0.0 : g[c];
                const double e = fabs(dx[i * ld + c] - want) / (1e-6 * (fabs(factor) + fabs(want)));
                if (e > worst_grad) worst_grad = e;
                TU_CHECK(e <= 1, "rows %lld classes %lld eps %g: dlogits[%lld][%lld] %g, reference %g", (long long)rows,
                         (long long)classes, eps, (long long)i, (long long)c, dx[i * ld + c], want);
            }
            for (int64_t c = classes; c < ld; c++) TU_CHECK(dx[i * ld + c] == -7.0f, "a row gap of dlogits was written");
        }
        if (red != ATTN_LOSS_NONE) {
            if (red == ATTN_LOSS_MEAN && !counted) {
                TU_CHECK(isnan(loss[0]), "every row ignored: the mean is %g, torch gives NaN", loss[0]);
            } else {
                const double want = red == ATTN_LOSS_MEAN ? total / (double)counted : total;
                const double e = fabs(loss[0] - want) / (1e-6 * (1 + (red == ATTN_LOSS_MEAN ? mag / (double)counted : mag)));
                if (e > worst_loss) worst_loss = e;
                TU_CHECK(e <= 1, "reduction %d loss %g, reference %g", (int)red, loss[0], want);
            }
        }
        for (int threads = 2; threads <= 8; threads++) {
            attn_cross_entropy_params q = p;
            q.dlogits = dx2;
            q.loss = loss2;
            q.num_threads = threads;
            memcpy(dx2, dx, sizeof(float) * (size_t)(rows * ld));
            TU_CHECK(attn_cross_entropy(&q) == ATTN_OK && !memcmp(dx2, dx, sizeof(float) * (size_t)(rows * ld)) &&
                         !memcmp(loss2, loss, sizeof(float) * (size_t)(red == ATTN_LOSS_NONE ? rows : 1)),
                     "%d threads differ", threads);
        }
        /* In place: the gradient over the logits. */
        memcpy(dx2, x, sizeof(float) * (size_t)(rows * ld));
        attn_cross_entropy_params q = p;
        q.logits = dx2;
        q.dlogits = dx2;
        q.loss = loss2;
        int same = attn_cross_entropy(&q) == ATTN_OK;
        for (int64_t i = 0; i < rows; i++) same &= !memcmp(dx2 + i * ld, dx + i * ld, sizeof(float) * (size_t)classes);
        TU_CHECK(same, "the gradient in place over the logits differs");
        free(x); free(dx); free(dx2); free(loss); free(loss2); free(t); free(g);
    }
}

/* Central differences of the mean loss (with smoothing and an ignored row) in double. */
static void finite_differences(tu_rng *r) {
    enum { R = 3, C = 7 };
    float x[R * C], dx[R * C], loss;
    const int64_t t[R] = {2, -100, 6};
    for (int i = 0; i < R * C; i++) x[i] = tu_rng_uniform(r, -2, 2);
    attn_cross_entropy_params p = params(R, C, x, C, t, 0.2f, ATTN_LOSS_MEAN, &loss, dx, 1);
    attn_cross_entropy(&p);
    for (int i = 0; i < R * C; i++) {
        const int row = i / C;
        if (t[row] == -100) { TU_CHECK(dx[i] == 0.0f, "an ignored row has a gradient"); continue; }
        float xp[C], xm[C];
        memcpy(xp, x + row * C, sizeof xp);
        memcpy(xm, x + row * C, sizeof xm);
        /* A float step of 2^-10: exact in the logits, so the difference is of the double loss. */
        const double h = 0x1p-10;
        xp[i % C] += (float)h;
        xm[i % C] -= (float)h;
        const double fd = (reference_row(xp, C, t[row], 0.2, 1, NULL) - reference_row(xm, C, t[row], 0.2, 1, NULL)) / (2 * h) / 2;
        const double e = fabs(dx[i] - fd) / 1e-5;
        if (e > worst_fd) worst_fd = e;
        TU_CHECK(e <= 1, "finite difference [%d]: %g vs %g", i, dx[i], fd);
    }
}

static void special_values(void) {
    float x[6] = {1, NAN, 2, 0.5f, -1, 3}, loss[2], dx[6];
    const int64_t t[2] = {0, 2};
    attn_cross_entropy_params p = params(2, 3, x, 3, t, 0.0f, ATTN_LOSS_NONE, loss, dx, 1);
    TU_CHECK(attn_cross_entropy(&p) == ATTN_OK && isnan(loss[0]) && isnan(dx[0]) && isfinite(loss[1]) && isfinite(dx[3]),
             "a NaN logit: that row NaN, the other finite");
    /* +inf, and every logit -inf: NaN as the formula (inf - inf, 0 / 0), the whole row. */
    float y[6] = {1, INFINITY, 2, -INFINITY, -INFINITY, -INFINITY};
    p.logits = y;
    TU_CHECK(attn_cross_entropy(&p) == ATTN_OK && isnan(loss[0]) && isnan(loss[1]) && isnan(dx[0]) && isnan(dx[2]) &&
                 isnan(dx[5]),
             "an infinite row: loss %g %g, dlogits %g %g", loss[0], loss[1], dx[0], dx[5]);
    /* The loss alone (no dlogits) equals the loss with them; logits of 1e30 stay finite. */
    float z[6] = {1e30f, -1e30f, 0, 0.5f, -1, 3}, with[2], without[2];
    p = params(2, 3, z, 3, t, 0.1f, ATTN_LOSS_NONE, with, dx, 1);
    TU_CHECK(attn_cross_entropy(&p) == ATTN_OK, "status");
    p.loss = without; p.dlogits = NULL; p.num_threads = 2;
    TU_CHECK(attn_cross_entropy(&p) == ATTN_OK && without[0] == with[0] && without[1] == with[1] && isfinite(with[0]),
             "loss alone %g %g, with the gradient %g %g", without[0], without[1], with[0], with[1]);
}

static void errors(void) {
    float x[8] = {0}, loss[2] = {-5, -5}, dx[8];
    for (int i = 0; i < 8; i++) dx[i] = -5;
    int64_t t[2] = {1, 4};
    struct { const char *what; attn_cross_entropy_params p; attn_status want; } c[10];
    int n = 0;
    const attn_cross_entropy_params ok = params(2, 4, x, 4, t, 0, ATTN_LOSS_MEAN, loss, dx, 1);
    c[n++] = (__typeof__(c[0])){"a target past the classes", ok, ATTN_ERR_INVALID_ARGUMENT};
    c[n] = (__typeof__(c[0])){"NULL targets", ok, ATTN_ERR_NULL_POINTER}; c[n++].p.targets = NULL;
    c[n] = (__typeof__(c[0])){"NULL loss", ok, ATTN_ERR_NULL_POINTER}; c[n++].p.loss = NULL;
    c[n] = (__typeof__(c[0])){"label smoothing 1.5", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.label_smoothing = 1.5f;
    c[n] = (__typeof__(c[0])){"label smoothing NaN", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.label_smoothing = NAN;
    c[n] = (__typeof__(c[0])){"reduction 3", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.reduction = (attn_loss_reduction)3;
    c[n] = (__typeof__(c[0])){"classes 0", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.classes = 0;
    c[n] = (__typeof__(c[0])){"ld_logits < classes", ok, ATTN_ERR_INVALID_STRIDE}; c[n++].p.ld_logits = 3;
    c[n] = (__typeof__(c[0])){"struct_size 0", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.struct_size = 0;
    c[n] = (__typeof__(c[0])){"overflowing rows", ok, ATTN_ERR_OVERFLOW}; c[n].p.rows = INT64_MAX / 2; c[n++].p.ld_logits = 8;
    for (int i = 0; i < n; i++) {
        if (i == n - 1) t[1] = 1; /* the overflow case has valid targets in the part read */
        const attn_status st = attn_cross_entropy(&c[i].p);
        TU_CHECK(st == c[i].want, "%s: %s, want %s", c[i].what, attn_status_string(st), attn_status_string(c[i].want));
    }
    int kept = loss[0] == -5 && loss[1] == -5;
    for (int i = 0; i < 8; i++) kept &= dx[i] == -5;
    TU_CHECK(kept, "a rejected call wrote something");
    TU_CHECK(attn_cross_entropy(NULL) == ATTN_ERR_NULL_POINTER, "NULL params");
    const attn_cross_entropy_params d = attn_cross_entropy_params_default();
    TU_CHECK(d.ignore_index == -100 && d.grad_scale == 1.0f && d.reduction == ATTN_LOSS_MEAN && d.label_smoothing == 0,
             "defaults are torch's");
}

int main(int argc, char **argv) {
    uint64_t seed = 2121;
    if (argc > 1 && !tu_parse_u64(argv[1], &seed)) return 2;
    const attn_isa isas[] = {ATTN_ISA_SCALAR, ATTN_ISA_AVX2, ATTN_ISA_AVX512, ATTN_ISA_NEON};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (!attn_isa_supported(isas[i])) continue;
        TU_CHECK(attn_set_isa(isas[i]) == ATTN_OK, "set isa %s", attn_isa_name(isas[i]));
        tu_rng r = tu_rng_derive(seed, i);
        worst_loss = worst_grad = worst_fd = 0;
        random_cases(&r);
        finite_differences(&r);
        special_values();
        printf("test_loss %s: seed %llu; worst error / tolerance: loss %.3f, gradient %.3f, finite difference %.3f\n",
               attn_isa_name(isas[i]), (unsigned long long)seed, worst_loss, worst_grad, worst_fd);
    }
    errors();
    return tu_summary();
}
