/*
 * test_optimizer.c: attn_optimizer_step against torch.optim (SGD plain, with momentum, dampening
 * and weight decay, Nesterov with maximize; Adam with L2 decay; AdamW with its defaults and with
 * amsgrad: five steps each from optimizer_fixtures.h, written by
 * Tests/Fixtures/generate_optimizer_fixtures.py) within 2 float ulps of the parameter (before or after the step), on
 * every instruction set; a double-precision re-derivation of the formulas over a long array
 * (several chunks) within 1e-6; thread counts 1..8 bitwise; non-finite gradients counted and
 * the step skipped (nothing written) or, without skip_nonfinite, applied as the math gives;
 * every error with nothing written.
 *
 * Run: build/tests/test_optimizer
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "test_util.h"
#include "optimizer_fixtures.h"

static double worst_torch, worst_double;

static attn_optimizer_step_params from_fixture(const optimizer_fixture *f, float *param, const float *grad, float *buf,
                                               float *m, float *v, float *vmax, int64_t step) {
    attn_optimizer_step_params p = attn_optimizer_step_params_default();
    p.kind = f->kind; p.count = OPTIMIZER_FIXTURE_N; p.param = param; p.grad = grad; p.step = step;
    p.lr = f->lr; p.weight_decay = f->weight_decay; p.momentum = f->momentum; p.dampening = f->dampening;
    p.nesterov = f->nesterov; p.maximize = f->maximize; p.beta1 = f->beta1; p.beta2 = f->beta2; p.eps = f->eps;
    p.momentum_buffer = f->kind == ATTN_OPTIMIZER_SGD && f->momentum != 0 ? buf : NULL;
    p.first_moment = m; p.second_moment = v; p.max_second_moment = f->amsgrad ? vmax : NULL;
    return p;
}

static void against_torch(const char *isa) {
    for (size_t k = 0; k < sizeof optimizer_fixtures / sizeof optimizer_fixtures[0]; k++) {
        const optimizer_fixture *f = &optimizer_fixtures[k];
        float param[OPTIMIZER_FIXTURE_N], buf[OPTIMIZER_FIXTURE_N] = {0}, m[OPTIMIZER_FIXTURE_N] = {0};
        float v[OPTIMIZER_FIXTURE_N] = {0}, vmax[OPTIMIZER_FIXTURE_N] = {0};
        memcpy(param, f->start, sizeof param);
        for (int s = 0; s < OPTIMIZER_FIXTURE_STEPS; s++) {
            float prev[OPTIMIZER_FIXTURE_N];
            memcpy(prev, param, sizeof prev);
            attn_optimizer_step_params p = from_fixture(f, param, f->grad[s], buf, m, v, vmax, s + 1);
            int64_t bad = -1;
            p.nonfinite = &bad;
            TU_CHECK(attn_optimizer_step(&p) == ATTN_OK && bad == 0, "%s %s step %d: status or count", isa, f->name, s + 1);
            for (int i = 0; i < OPTIMIZER_FIXTURE_N; i++) {
                /* An ulp of the larger of the parameter before and after (a small result of a
                 * subtraction is as exact as its operands). */
                const double want = f->after[s][i], ulp = 0x1p-23 * fmax(fmax(fabs(want), fabs(prev[i])), 1e-3);
                const double e = fabs(param[i] - want) / (2 * ulp);
                if (e > worst_torch) worst_torch = e;
                TU_CHECK(e <= 1, "%s %s step %d [%d]: %.9g, torch %.9g", isa, f->name, s + 1, i, param[i], want);
            }
        }
    }
}

/* The formulas of attn.h in double, one step over count elements. */
static void reference_step(const attn_optimizer_step_params *p, double *param, const float *grad, double *buf, double *m,
                           double *v, double *vmax) {
    for (int64_t i = 0; i < p->count; i++) {
        double g = (p->maximize ? -1.0 : 1.0) * grad[i];
        if (p->kind == ATTN_OPTIMIZER_SGD) {
            g += p->weight_decay * param[i];
            if (p->momentum != 0) {
                buf[i] = p->step == 1 ? g : p->momentum * buf[i] + (1.0 - p->dampening) * g;
                g = p->nesterov ? g + p->momentum * buf[i] : buf[i];
            }
            param[i] -= p->lr * g;
            continue;
        }
        if (p->kind == ATTN_OPTIMIZER_ADAMW) param[i] *= 1.0 - (double)p->lr * p->weight_decay;
        else g += p->weight_decay * param[i];
        m[i] = m[i] * p->beta1 + (1.0 - p->beta1) * g;
        v[i] = v[i] * p->beta2 + (1.0 - p->beta2) * g * g;
        const double second = vmax ? (vmax[i] = fmax(vmax[i], v[i])) : v[i];
        const double bc1 = 1.0 - pow(p->beta1, (double)p->step), bc2 = 1.0 - pow(p->beta2, (double)p->step);
        param[i] -= p->lr / bc1 * m[i] / (sqrt(second) / sqrt(bc2) + p->eps);
    }
}

/* Three steps of kind over n elements from a seeded start, on `threads` threads, into param (n);
 * with pd, the double formulas alongside. */
static void run_sequence(attn_optimizer kind, int64_t n, int threads, uint64_t seed, float *param, double *pd) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    float *grad = malloc(sizeof(float) * n), *st[4];
    double *sd[4];
    for (int k = 0; k < 4; k++) st[k] = calloc((size_t)n, sizeof(float)), sd[k] = calloc((size_t)n, sizeof(double));
    for (int64_t i = 0; i < n; i++) param[i] = tu_rng_uniform(&r, -1, 1);
    for (int64_t i = 0; pd && i < n; i++) pd[i] = param[i];
    attn_optimizer_step_params p = attn_optimizer_step_params_default();
    p.kind = kind; p.count = n; p.param = param; p.grad = grad; p.lr = 0.01f; p.weight_decay = 0.02f;
    p.momentum = kind == ATTN_OPTIMIZER_SGD ? 0.9f : 0.0f; p.momentum_buffer = st[0];
    p.first_moment = st[1]; p.second_moment = st[2];
    p.max_second_moment = kind == ATTN_OPTIMIZER_ADAM ? st[3] : NULL; /* amsgrad with Adam */
    p.num_threads = threads;
    for (int64_t step = 1; step <= 3; step++) {
        for (int64_t i = 0; i < n; i++) grad[i] = tu_rng_uniform(&r, -2, 2);
        p.step = step;
        TU_CHECK(attn_optimizer_step(&p) == ATTN_OK, "long array status");
        if (pd) reference_step(&p, pd, grad, sd[0], sd[1], sd[2], p.max_second_moment ? sd[3] : NULL);
    }
    for (int k = 0; k < 4; k++) free(st[k]), free(sd[k]);
    free(grad);
}

static void long_arrays(const char *isa) {
    const int64_t n = 3 * 16384 + 77; /* several chunks, and a partial one */
    float *param = malloc(sizeof(float) * n), *again = malloc(sizeof(float) * n);
    double *pd = malloc(sizeof(double) * n);
    static const attn_optimizer kinds[] = {ATTN_OPTIMIZER_SGD, ATTN_OPTIMIZER_ADAM, ATTN_OPTIMIZER_ADAMW};
    for (int k = 0; k < 3; k++) {
        run_sequence(kinds[k], n, 1, 77 + k, param, pd);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) { /* not fmax: gcc 12 for arm64 fails to vectorise that reduction (an ICE) */
            const double e = fabs(param[i] - pd[i]) / (1e-6 * (1 + fabs(pd[i])));
            if (e > worst) worst = e;
        }
        if (worst > worst_double) worst_double = worst;
        TU_CHECK(worst <= 1, "%s kind %d: %.3g of the tolerance against the double formulas", isa, (int)kinds[k], worst);
        for (int threads = 2; threads <= 8; threads++) {
            run_sequence(kinds[k], n, threads, 77 + k, again, NULL);
            TU_CHECK(!memcmp(again, param, sizeof(float) * n), "%s kind %d: %d threads differ", isa, (int)kinds[k], threads);
        }
    }
    free(param); free(again); free(pd);
}

/* A NaN and an infinity among the gradients: counted; skipped whole by default, applied (NaN
 * parameters where the math puts them) with skip_nonfinite 0. */
static void nonfinite_gradients(void) {
    enum { N = 40000 };
    float *param = malloc(sizeof(float) * N), *grad = malloc(sizeof(float) * N), *m = calloc(N, sizeof(float));
    float *v = calloc(N, sizeof(float)), *before = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) param[i] = before[i] = (float)(i % 9) * 0.1f, grad[i] = 0.5f;
    grad[17] = NAN;
    grad[N - 1] = -INFINITY;
    attn_optimizer_step_params p = attn_optimizer_step_params_default();
    p.count = N; p.param = param; p.grad = grad; p.first_moment = m; p.second_moment = v;
    int64_t bad = 0;
    p.nonfinite = &bad;
    int kept = attn_optimizer_step(&p) == ATTN_OK && bad == 2 && !memcmp(param, before, sizeof(float) * N);
    for (int i = 0; i < N; i++) kept &= m[i] == 0 && v[i] == 0;
    TU_CHECK(kept, "non-finite gradients: %lld counted, the step must be skipped whole", (long long)bad);
    p.skip_nonfinite = 0;
    TU_CHECK(attn_optimizer_step(&p) == ATTN_OK && bad == 2 && isnan(param[17]) && isfinite(param[16]) && param[16] != before[16],
             "skip_nonfinite 0: the step applied as the math gives");
    free(param); free(grad); free(m); free(v); free(before);
}

static void errors(void) {
    float param[4] = {1, 2, 3, 4}, grad[4] = {1, 1, 1, 1}, m[4] = {0}, v[4] = {0};
    attn_optimizer_step_params ok = attn_optimizer_step_params_default();
    ok.count = 4; ok.param = param; ok.grad = grad; ok.first_moment = m; ok.second_moment = v;
    struct { const char *what; attn_optimizer_step_params p; attn_status want; } c[12];
    int n = 0;
    c[n] = (__typeof__(c[0])){"NULL grad", ok, ATTN_ERR_NULL_POINTER}; c[n++].p.grad = NULL;
    c[n] = (__typeof__(c[0])){"Adam without its moments", ok, ATTN_ERR_NULL_POINTER}; c[n++].p.second_moment = NULL;
    c[n] = (__typeof__(c[0])){"SGD momentum without a buffer", ok, ATTN_ERR_NULL_POINTER};
    c[n].p.kind = ATTN_OPTIMIZER_SGD; c[n++].p.momentum = 0.9f;
    c[n] = (__typeof__(c[0])){"Nesterov without momentum", ok, ATTN_ERR_INVALID_ARGUMENT};
    c[n].p.kind = ATTN_OPTIMIZER_SGD; c[n++].p.nesterov = 1;
    c[n] = (__typeof__(c[0])){"step 0", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.step = 0;
    c[n] = (__typeof__(c[0])){"lr NaN", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.lr = NAN;
    c[n] = (__typeof__(c[0])){"beta2 1", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.beta2 = 1.0f;
    c[n] = (__typeof__(c[0])){"eps -1", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.eps = -1.0f;
    c[n] = (__typeof__(c[0])){"kind 7", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.kind = (attn_optimizer)7;
    c[n] = (__typeof__(c[0])){"count 0", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.count = 0;
    c[n] = (__typeof__(c[0])){"struct_size 3", ok, ATTN_ERR_INVALID_ARGUMENT}; c[n++].p.struct_size = 3;
    c[n] = (__typeof__(c[0])){"count overflowing", ok, ATTN_ERR_OVERFLOW}; c[n++].p.count = INT64_MAX;
    for (int i = 0; i < n; i++) {
        const attn_status st = attn_optimizer_step(&c[i].p);
        TU_CHECK(st == c[i].want, "%s: %s, want %s", c[i].what, attn_status_string(st), attn_status_string(c[i].want));
    }
    TU_CHECK(param[0] == 1 && param[3] == 4 && m[0] == 0 && v[0] == 0, "a rejected step wrote something");
    TU_CHECK(attn_optimizer_step(NULL) == ATTN_ERR_NULL_POINTER, "NULL params");
}

int main(void) {
    const attn_isa isas[] = {ATTN_ISA_SCALAR, ATTN_ISA_NEON, ATTN_ISA_AVX2, ATTN_ISA_AVX512};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (!attn_isa_supported(isas[i])) continue;
        attn_set_isa(isas[i]);
        against_torch(attn_isa_name(isas[i]));
        long_arrays(attn_isa_name(isas[i]));
    }
    nonfinite_gradients();
    errors();
    printf("test_optimizer: worst error / tolerance: against torch.optim %.3f (2 ulps), against the double formulas %.3f\n",
           worst_torch, worst_double);
    return tu_summary();
}
