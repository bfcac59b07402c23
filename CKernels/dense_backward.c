/*
 * dense_backward.c: the backward kernels of the dense ops (attn.h, "Dense kernels"): the matrix
 * multiply's (dA and dB are attn_matmul calls with b_transposed / a_transposed; d(bias) is
 * attn_sum_columns here), layer norm's, the activations' (plain and gated, each element's
 * derivative in double), the row softmax's and mean pooling's. (Rotary's is attn_rotary itself,
 * with ATTN_ROTARY_INVERSE.) Each entry point validates everything before it writes anything; threads
 * split independent outputs (rows, columns or element ranges fixed by the shape), so results do not
 * depend on the thread count. Scalar C for now: the sums are in double.
 */
#include <math.h>
#include <string.h>
#include <stdint.h>

#include "internal.h"

/* Columns per item: a double accumulator row that stays in L1. */
#define SUM_COLUMNS_BLOCK 256
/* A thread is not given fewer elements than this to add. */
#define SUM_COLUMNS_MIN_THREAD_ELEMS 65536

typedef struct sum_columns_job {
    attn_sum_columns_params p; /* validated */
} sum_columns_job;

static void sum_columns_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const attn_sum_columns_params *p = &((const sum_columns_job *)ctx)->p;
    const int64_t j0 = item * SUM_COLUMNS_BLOCK, w = p->n - j0 < SUM_COLUMNS_BLOCK ? p->n - j0 : SUM_COLUMNS_BLOCK;
    double acc[SUM_COLUMNS_BLOCK];
    for (int64_t j = 0; j < w; j++) acc[j] = p->accumulate ? (double)p->out[j0 + j] : 0.0;
    for (int64_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * p->ld + j0;          /* x[r, j0 .. j0 + w) */
        for (int64_t j = 0; j < w; j++) acc[j] += (double)x[j];
    }
    for (int64_t j = 0; j < w; j++) p->out[j0 + j] = (float)acc[j];
}

attn_status attn_sum_columns(const attn_sum_columns_params *params) {
    sum_columns_job job;
    const attn_status status = attn_read_sum_columns_params(&job.p, params);
    if (status != ATTN_OK) return status;
    const attn_sum_columns_params *p = &job.p;
    if (!p->out || !p->x) return ATTN_ERR_NULL_POINTER;
    if (p->rows < 1 || p->n < 1) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->num_threads < 0 || p->num_threads > ATTN_MAX_THREADS) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->ld < p->n) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p->rows, &p->ld, p->n, NULL) || !attn_extent_ok(0, NULL, NULL, p->n, NULL))
        return ATTN_ERR_OVERFLOW;
    const int64_t items = attn_ceil_div(p->n, SUM_COLUMNS_BLOCK);
    int64_t threads = attn_resolve_threads(p->num_threads);
    const double per_thread = (double)p->rows * (double)p->n / SUM_COLUMNS_MIN_THREAD_ELEMS;
    if ((double)threads > per_thread) threads = per_thread < 1.0 ? 1 : (int64_t)per_thread;
    if (threads > items) threads = items;
    attn_parallel_for(items, (int)threads, sum_columns_task, &job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Layer norm backward                                                                             */

typedef struct layer_norm_backward_job {
    attn_layer_norm_backward_params p; /* validated */
    int64_t rows_per_item;
} layer_norm_backward_job;

/* x̂ of row r at column j. */
static inline double ln_xhat(const attn_layer_norm_backward_params *p, int64_t r, int64_t j) {
    const double mean = p->variance == ATTN_VARIANCE_RMS ? 0.0 : (double)p->mean[r];
    return ((double)p->x[r * p->ld_x + j] - mean) * (double)p->rstd[r];
}

/* dx of rows [r0, r1): two passes over each row, the sums in double. */
static void layer_norm_backward_rows(void *ctx, int64_t item, int thread) {
    (void)thread;
    const layer_norm_backward_job *job = ctx;
    const attn_layer_norm_backward_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *dout = p->dout + r * p->ld_dout;   /* (n,) */
        double sum_g = 0, sum_gx = 0;
        for (int64_t j = 0; j < p->n; j++) {
            const double g = (double)dout[j] * (p->weight ? (double)p->weight[j] : 1.0);
            sum_g += g;
            sum_gx += g * ln_xhat(p, r, j);
        }
        const double mean_g = p->variance == ATTN_VARIANCE_RMS ? 0.0 : sum_g / (double)p->n;
        const double mean_gx = sum_gx / (double)p->n, rstd = p->rstd[r];
        float *dx = p->dx + r * p->ld_dx;               /* (n,); may be dout itself */
        for (int64_t j = 0; j < p->n; j++) {
            const double g = (double)dout[j] * (p->weight ? (double)p->weight[j] : 1.0);
            dx[j] = (float)(rstd * (g - mean_g - ln_xhat(p, r, j) * mean_gx));
        }
    }
}

/* dweight and dbias of columns [item·SUM_COLUMNS_BLOCK, ...), each summed in row order. */
static void layer_norm_backward_columns(void *ctx, int64_t item, int thread) {
    (void)thread;
    const attn_layer_norm_backward_params *p = &((const layer_norm_backward_job *)ctx)->p;
    const int64_t j0 = item * SUM_COLUMNS_BLOCK, w = p->n - j0 < SUM_COLUMNS_BLOCK ? p->n - j0 : SUM_COLUMNS_BLOCK;
    double dw[SUM_COLUMNS_BLOCK], db[SUM_COLUMNS_BLOCK];
    for (int64_t j = 0; j < w; j++) {
        dw[j] = p->dweight ? (double)p->dweight[j0 + j] : 0.0;
        db[j] = p->dbias ? (double)p->dbias[j0 + j] : 0.0;
    }
    for (int64_t r = 0; r < p->rows; r++) {
        const float *dout = p->dout + r * p->ld_dout + j0;
        for (int64_t j = 0; j < w; j++) {
            if (p->dweight) dw[j] += (double)dout[j] * ln_xhat(p, r, j0 + j);
            db[j] += (double)dout[j];
        }
    }
    for (int64_t j = 0; j < w; j++) {
        if (p->dweight) p->dweight[j0 + j] = (float)dw[j];
        if (p->dbias) p->dbias[j0 + j] = (float)db[j];
    }
}

attn_status attn_layer_norm_backward(const attn_layer_norm_backward_params *params) {
    layer_norm_backward_job job;
    const attn_status status = attn_read_layer_norm_backward_params(&job.p, params);
    if (status != ATTN_OK) return status;
    const attn_layer_norm_backward_params *p = &job.p;
    const int rms = p->variance == ATTN_VARIANCE_RMS;
    if (!p->dx || !p->dout || !p->x || !p->rstd || (!rms && !p->mean)) return ATTN_ERR_NULL_POINTER;
    if (p->rows < 1 || p->n < 1 || !attn_threads_ok(p->num_threads) ||
        (p->variance != ATTN_VARIANCE_TWO_PASS && p->variance != ATTN_VARIANCE_FAST && !rms))
        return ATTN_ERR_INVALID_ARGUMENT;
    /* In place on dout only with the same rows (the weight pass reads dout before dx is written). */
    if (p->ld_dx < p->n || p->ld_dout < p->n || p->ld_x < p->n || (p->dx == p->dout && p->ld_dx != p->ld_dout))
        return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p->rows, &p->ld_dx, p->n, NULL) || !attn_extent_ok(1, &p->rows, &p->ld_dout, p->n, NULL) ||
        !attn_extent_ok(1, &p->rows, &p->ld_x, p->n, NULL) || !attn_extent_ok(0, NULL, NULL, p->rows, NULL))
        return ATTN_ERR_OVERFLOW;
    const int threads = attn_resolve_threads(p->num_threads);
    if (p->dweight || p->dbias)
        attn_parallel_for(attn_ceil_div(p->n, SUM_COLUMNS_BLOCK), threads, layer_norm_backward_columns, &job);
    job.rows_per_item = attn_rows_per_item(p->n);
    attn_parallel_for(attn_ceil_div(p->rows, job.rows_per_item), threads, layer_norm_backward_rows, &job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Activation backward                                                                             */

/* kind(x) in double into *value and kind'(x) into *slope (the contracts in attn.h). sigmoid and
 * silu take s = sigmoid(x) from the caller, which forms it in float with the ISA's vector kernel
 * (the exponential is what costs; the rest stays in double). */
static void activation_double(attn_activation kind, double x, double s, double *value, double *slope) {
    const double sqrt_2_pi = 0.79788456080286535588, c3 = 0.044715;
    double t;
    switch (kind) {
    case ATTN_ACTIVATION_RELU: *value = x > 0 ? x : 0.0; *slope = x > 0 ? 1.0 : isnan(x) ? x : 0.0; break;
    case ATTN_ACTIVATION_GELU:
        *value = 0.5 * x * erfc(-x * 0.70710678118654752440);
        *slope = 0.5 * erfc(-x * 0.70710678118654752440) + x * 0.39894228040143267794 * exp(-0.5 * x * x);
        break;
    case ATTN_ACTIVATION_GELU_TANH:
        t = tanh(sqrt_2_pi * (x + c3 * x * x * x));
        *value = 0.5 * x * (1.0 + t);
        *slope = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * sqrt_2_pi * (1.0 + 3.0 * c3 * x * x);
        break;
    case ATTN_ACTIVATION_SIGMOID: *value = s; *slope = s * (1.0 - s); break;
    case ATTN_ACTIVATION_SILU: *value = x * s; *slope = s * (1.0 + x * (1.0 - s)); break;
    case ATTN_ACTIVATION_TANH: t = tanh(x); *value = t; *slope = 1.0 - t * t; break;
    default: *value = x; *slope = isnan(x) ? x : 1.0; break;
    }
    if (isinf(x)) { /* the limits, where the formulas above form 0 · inf */
        const int flat = kind == ATTN_ACTIVATION_SIGMOID || kind == ATTN_ACTIVATION_TANH;
        *slope = flat || (x < 0 && kind != ATTN_ACTIVATION_IDENTITY) ? 0.0 : 1.0;
        if (x < 0 && (kind == ATTN_ACTIVATION_GELU || kind == ATTN_ACTIVATION_GELU_TANH || kind == ATTN_ACTIVATION_SILU))
            *value = -0.0;
    }
}

/* The sigmoids activation_double needs, SIGMOID_CHUNK elements at a time through the ISA's
 * activation kernel; other kinds need none. */
enum { SIGMOID_CHUNK = 256 };

static void sigmoid_chunk(const attn_kernels *kernels, attn_activation kind, float *s, const float *x, int64_t n) {
    if (kind == ATTN_ACTIVATION_SIGMOID || kind == ATTN_ACTIVATION_SILU) kernels->activate(s, x, NULL, n, ATTN_ACTIVATION_SIGMOID);
}

/* relu's backward, dx = [x > 0] · dout (x itself where it is NaN), exact in float: the same values
 * as the double path. The choice is made on the bits, as integer selects the compiler vectorises:
 * float comparisons would be branches (they may trap), and random signs defeat prediction. dx may
 * be dout itself; with accumulate, dx + d is rounded once, as the double sum rounds it. */
static float relu_slope_times(float x, float g) {
    const float zero = 0.0f * g; /* ±0, or NaN for an infinite or NaN g, as 0 · g in double */
    uint32_t xb, gb, zb, db;
    memcpy(&xb, &x, 4), memcpy(&gb, &g, 4), memcpy(&zb, &zero, 4);
    const uint32_t nan = -(uint32_t)((xb & 0x7fffffffu) > 0x7f800000u);
    const uint32_t positive = -(uint32_t)((int32_t)xb > 0) & ~nan;
    db = (xb & nan) | (gb & positive) | (zb & ~(nan | positive));
    float d;
    memcpy(&d, &db, 4);
    return d;
}

static void relu_backward(float *dx, const float *dout, const float *x, int64_t n, int accumulate) {
    if (accumulate)
        for (int64_t i = 0; i < n; i++) dx[i] += relu_slope_times(x[i], dout[i]);
    else
        for (int64_t i = 0; i < n; i++) dx[i] = relu_slope_times(x[i], dout[i]);
}

static void activate_backward_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const attn_activate_backward_params *p = ctx;
    const int64_t i0 = item * DENSE_ITEM_FLOATS, i1 = p->count - i0 < DENSE_ITEM_FLOATS ? p->count : i0 + DENSE_ITEM_FLOATS;
    if (p->kind == ATTN_ACTIVATION_RELU) { /* slope 1 or 0: exact in float, the same bits as below */
        relu_backward(p->dx + i0, p->dout + i0, p->x + i0, i1 - i0, p->accumulate);
        return;
    }
    const attn_kernels *kernels = attn_kernels_current();
    float s[SIGMOID_CHUNK];
    for (int64_t c0 = i0; c0 < i1; c0 += SIGMOID_CHUNK) {
        const int64_t n = i1 - c0 < SIGMOID_CHUNK ? i1 - c0 : SIGMOID_CHUNK;
        sigmoid_chunk(kernels, p->kind, s, p->x + c0, n);
        for (int64_t i = c0; i < c0 + n; i++) {
            double value, slope;
            activation_double(p->kind, (double)p->x[i], s[i - c0], &value, &slope);
            const double d = slope * (double)p->dout[i];
            p->dx[i] = p->accumulate ? (float)((double)p->dx[i] + d) : (float)d;
        }
    }
}

attn_status attn_activate_backward(const attn_activate_backward_params *params) {
    attn_activate_backward_params p;
    const attn_status status = attn_read_activate_backward_params(&p, params);
    if (status != ATTN_OK) return status;
    if (!p.dx || !p.dout || !p.x) return ATTN_ERR_NULL_POINTER;
    if (p.count < 1 || !attn_activation_ok(p.kind) || !attn_threads_ok(p.num_threads)) return ATTN_ERR_INVALID_ARGUMENT;
    if (!attn_extent_ok(0, NULL, NULL, p.count, NULL)) return ATTN_ERR_OVERFLOW;
    attn_parallel_for(attn_ceil_div(p.count, DENSE_ITEM_FLOATS), attn_resolve_threads(p.num_threads),
                      activate_backward_task, &p);
    return ATTN_OK;
}

typedef struct gated_backward_job {
    attn_gated_activate_backward_params p; /* validated */
    const attn_kernels *kernels;
    int64_t rows_per_item;
} gated_backward_job;

static void gated_backward_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const gated_backward_job *job = ctx;
    const attn_gated_activate_backward_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    float s[SIGMOID_CHUNK];
    for (int64_t r = r0; r < r1; r++) {
        const float *x = p->x + r * p->ld_x, *dout = p->dout + r * p->ld_dout;   /* (2 width,), (width,) */
        float *dx = p->dx + r * p->ld_dx;                                        /* (2 width,) */
        for (int64_t c0 = 0; c0 < p->width; c0 += SIGMOID_CHUNK) {
            const int64_t n = p->width - c0 < SIGMOID_CHUNK ? p->width - c0 : SIGMOID_CHUNK;
            sigmoid_chunk(job->kernels, p->kind, s, x + c0, n);
            for (int64_t c = c0; c < c0 + n; c++) {
                double value, slope;
                activation_double(p->kind, (double)x[c], s[c - c0], &value, &slope);
                const double dgate = slope * (double)x[p->width + c] * (double)dout[c], dup = value * (double)dout[c];
                dx[c] = p->accumulate ? (float)((double)dx[c] + dgate) : (float)dgate;
                dx[p->width + c] = p->accumulate ? (float)((double)dx[p->width + c] + dup) : (float)dup;
            }
        }
    }
}

attn_status attn_gated_activate_backward(const attn_gated_activate_backward_params *params) {
    gated_backward_job job;
    const attn_status status = attn_read_gated_activate_backward_params(&job.p, params);
    if (status != ATTN_OK) return status;
    const attn_gated_activate_backward_params *p = &job.p;
    if (!p->dx || !p->dout || !p->x) return ATTN_ERR_NULL_POINTER;
    if (p->rows < 1 || p->width < 1 || !attn_activation_ok(p->kind) || !attn_threads_ok(p->num_threads))
        return ATTN_ERR_INVALID_ARGUMENT;
    int64_t full;
    if (!attn_mul_ok(p->width, 2, &full)) return ATTN_ERR_OVERFLOW;
    if (p->ld_dx < full || p->ld_x < full || p->ld_dout < p->width) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p->rows, &p->ld_dx, full, NULL) || !attn_extent_ok(1, &p->rows, &p->ld_x, full, NULL) ||
        !attn_extent_ok(1, &p->rows, &p->ld_dout, p->width, NULL))
        return ATTN_ERR_OVERFLOW;
    job.rows_per_item = attn_rows_per_item(full);
    job.kernels = attn_kernels_current();
    attn_parallel_for(attn_ceil_div(p->rows, job.rows_per_item), attn_resolve_threads(p->num_threads),
                      gated_backward_task, &job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Row softmax and mean pooling backward                                                           */

typedef struct softmax_backward_job {
    attn_softmax_rows_backward_params p; /* validated */
    int64_t rows_per_item;
} softmax_backward_job;

static void softmax_backward_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const softmax_backward_job *job = ctx;
    const attn_softmax_rows_backward_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *y = p->y + r * p->ld_y, *dout = p->dout + r * p->ld_dout;   /* (n,) */
        float *dx = p->dx + r * p->ld_dx;                                         /* (n,); may be dout */
        double dot = 0;
        for (int64_t j = 0; j < p->n; j++) dot += (double)y[j] * (double)dout[j];
        for (int64_t j = 0; j < p->n; j++) {
            const double g = (double)y[j] * ((double)dout[j] - dot);
            dx[j] = p->accumulate ? (float)((double)dx[j] + g) : (float)g;
        }
    }
}

attn_status attn_softmax_rows_backward(const attn_softmax_rows_backward_params *params) {
    softmax_backward_job job;
    const attn_status status = attn_read_softmax_rows_backward_params(&job.p, params);
    if (status != ATTN_OK) return status;
    const attn_softmax_rows_backward_params *p = &job.p;
    if (!p->dx || !p->y || !p->dout) return ATTN_ERR_NULL_POINTER;
    if (p->rows < 1 || p->n < 1 || !attn_threads_ok(p->num_threads)) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->ld_dx < p->n || p->ld_y < p->n || p->ld_dout < p->n) return ATTN_ERR_INVALID_STRIDE;
    if (p->dx == p->dout && (p->ld_dx != p->ld_dout || p->accumulate)) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p->rows, &p->ld_dx, p->n, NULL) || !attn_extent_ok(1, &p->rows, &p->ld_y, p->n, NULL) ||
        !attn_extent_ok(1, &p->rows, &p->ld_dout, p->n, NULL))
        return ATTN_ERR_OVERFLOW;
    job.rows_per_item = attn_rows_per_item(p->n);
    attn_parallel_for(attn_ceil_div(p->rows, job.rows_per_item), attn_resolve_threads(p->num_threads),
                      softmax_backward_task, &job);
    return ATTN_OK;
}

typedef struct mean_backward_job {
    attn_mean_rows_backward_params p; /* validated */
    int64_t rows_per_item;
} mean_backward_job;

static void mean_backward_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const mean_backward_job *job = ctx;
    const attn_mean_rows_backward_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const double g = (double)p->dout[r] / (double)p->n;
        float *dx = p->dx + r * p->ld_dx;                                          /* (n,) */
        for (int64_t j = 0; j < p->n; j++) dx[j] = p->accumulate ? (float)((double)dx[j] + g) : (float)g;
    }
}

attn_status attn_mean_rows_backward(const attn_mean_rows_backward_params *params) {
    mean_backward_job job;
    const attn_status status = attn_read_mean_rows_backward_params(&job.p, params);
    if (status != ATTN_OK) return status;
    const attn_mean_rows_backward_params *p = &job.p;
    if (!p->dx || !p->dout) return ATTN_ERR_NULL_POINTER;
    if (p->rows < 1 || p->n < 1 || !attn_threads_ok(p->num_threads)) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->ld_dx < p->n) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p->rows, &p->ld_dx, p->n, NULL) || !attn_extent_ok(0, NULL, NULL, p->rows, NULL))
        return ATTN_ERR_OVERFLOW;
    job.rows_per_item = attn_rows_per_item(p->n);
    attn_parallel_for(attn_ceil_div(p->rows, job.rows_per_item), attn_resolve_threads(p->num_threads),
                      mean_backward_task, &job);
    return ATTN_OK;
}
