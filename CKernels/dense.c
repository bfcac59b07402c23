/*
 * dense.c: the dense entry points around attention: attn_layer_norm, attn_activate,
 * attn_gated_activate, attn_softmax_rows, attn_rotary and attn_mean_rows, and the element-type conversions
 * (contracts in attn.h).
 *
 * Each validates everything before writing anything (pointers, then sizes and enums, then strides,
 * then overflow of every extent; for rotary then overlapping rows), then splits the work into items
 * for attn_parallel_for: groups of whole rows, fixed-size ranges for activations, groups of positions
 * for rotary. The per-row work is the ISA's row kernels (dense_template.h, softmax_template.h). Items
 * depend on the shape only, never on the thread count, and no row or element is computed differently
 * by where an item starts, so results are bitwise the same for any thread count.
 */
#include <math.h>

#include "internal.h"

/* Items hold at least this many floats (from a few microseconds of work for relu to tens for gelu):
 * below that another thread costs more to start than it saves, so small calls form one item and run
 * on the caller's thread.
 * A multiple of every ISA's vector width, so activation ranges split on whole vectors. */
#define DENSE_ITEM_FLOATS 16384

static int threads_ok(int num_threads) { return num_threads >= 0 && num_threads <= ATTN_MAX_THREADS; }

/* Rows per item for rows of n floats (the items for `rows` rows: attn_ceil_div(rows, that)). */
static int64_t rows_per_item(int64_t n) { return n >= DENSE_ITEM_FLOATS ? 1 : DENSE_ITEM_FLOATS / n; }

/* The rows [*r0, *r1) of work item `item` when items hold per_item of `rows` rows (the last fewer). */
static void item_rows(int64_t item, int64_t per_item, int64_t rows, int64_t *r0, int64_t *r1) {
    *r0 = item * per_item;
    *r1 = rows - *r0 < per_item ? rows : *r0 + per_item;
}

/* ---------------------------------------------------------------------------------------------- */
/* Layer norm                                                                                      */

typedef struct layer_norm_job {
    float *out;         /* (rows, n), row stride ld_out */
    const float *x;     /* (rows, n), row stride ld_x */
    int64_t ld_out, ld_x, rows, n, rows_per_item;
    const float *weight, *bias; /* (n,) or NULL */
    float eps;
    attn_variance variance;
    const attn_kernels *kernels;
} layer_norm_job;

static void layer_norm_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const layer_norm_job *job = ctx;
    int64_t r0, r1;
    item_rows(item, job->rows_per_item, job->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        job->kernels->layer_norm_row(job->out + r * job->ld_out, job->x + r * job->ld_x, job->n, job->weight, job->bias,
                                     job->eps, job->variance);
}

attn_status attn_layer_norm(float *out, int64_t ld_out, const float *x, int64_t ld_x, int64_t rows, int64_t n,
                            const float *weight, const float *bias, float eps, attn_variance variance, int num_threads) {
    if (!out || !x) return ATTN_ERR_NULL_POINTER;
    if (rows < 1 || n < 1 || !(eps >= 0.0f) || !isfinite(eps) || !threads_ok(num_threads) ||
        (variance != ATTN_VARIANCE_TWO_PASS && variance != ATTN_VARIANCE_FAST && variance != ATTN_VARIANCE_RMS))
        return ATTN_ERR_INVALID_ARGUMENT;
    /* In place means the same rows: with another stride, rows of out would land on rows of x that
     * other threads have yet to read. */
    if (ld_out < n || ld_x < n || (out == x && ld_out != ld_x)) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &rows, &ld_out, n, NULL) || !attn_extent_ok(1, &rows, &ld_x, n, NULL))
        return ATTN_ERR_OVERFLOW;

    const layer_norm_job job = {out, x, ld_out, ld_x, rows, n, rows_per_item(n), weight, bias, eps, variance,
                                attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(rows, job.rows_per_item), attn_resolve_threads(num_threads), layer_norm_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Activations                                                                                     */

typedef struct activate_job {
    float *out;     /* (count,) */
    const float *x; /* (count,) */
    int64_t count;
    attn_activation kind;
    const attn_kernels *kernels;
} activate_job;

static void activate_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const activate_job *job = ctx;
    const int64_t j0 = item * DENSE_ITEM_FLOATS;
    const int64_t len = job->count - j0 < DENSE_ITEM_FLOATS ? job->count - j0 : DENSE_ITEM_FLOATS;
    job->kernels->activate(job->out + j0, job->x + j0, NULL, len, job->kind);
}

attn_status attn_activate(float *out, const float *x, int64_t count, attn_activation kind, int num_threads) {
    if (!out || !x) return ATTN_ERR_NULL_POINTER;
    if (count < 1 || (int)kind < (int)ATTN_ACTIVATION_IDENTITY || (int)kind > (int)ATTN_ACTIVATION_TANH ||
        !threads_ok(num_threads))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (!attn_extent_ok(0, NULL, NULL, count, NULL)) return ATTN_ERR_OVERFLOW;
    const activate_job job = {out, x, count, kind, attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(count, DENSE_ITEM_FLOATS), attn_resolve_threads(num_threads), activate_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Gated activations                                                                               */

typedef struct gated_job {
    float *out;     /* (rows, width), row stride ld_out */
    const float *x; /* (rows, 2 width): gate, then the linear half; row stride ld_x */
    int64_t ld_out, ld_x, rows, width, rows_per_item;
    attn_activation kind;
    const attn_kernels *kernels;
} gated_job;

static void gated_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const gated_job *job = ctx;
    int64_t r0, r1;
    item_rows(item, job->rows_per_item, job->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *gate = job->x + r * job->ld_x;
        job->kernels->activate(job->out + r * job->ld_out, gate, gate + job->width, job->width, job->kind);
    }
}

attn_status attn_gated_activate(float *out, int64_t ld_out, const float *x, int64_t ld_x, int64_t rows, int64_t width,
                                attn_activation kind, int num_threads) {
    if (!out || !x) return ATTN_ERR_NULL_POINTER;
    if (rows < 1 || width < 1 || (int)kind < (int)ATTN_ACTIVATION_IDENTITY || (int)kind > (int)ATTN_ACTIVATION_TANH ||
        !threads_ok(num_threads))
        return ATTN_ERR_INVALID_ARGUMENT;
    int64_t both;
    if (!attn_mul_ok(width, 2, &both)) return ATTN_ERR_OVERFLOW;
    /* In place, as for layer norm: the same rows, each written over its own gate half. */
    if (ld_out < width || ld_x < both || (out == x && ld_out != ld_x)) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &rows, &ld_out, width, NULL) || !attn_extent_ok(1, &rows, &ld_x, both, NULL))
        return ATTN_ERR_OVERFLOW;
    const gated_job job = {out, x, ld_out, ld_x, rows, width, rows_per_item(both), kind, attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(rows, job.rows_per_item), attn_resolve_threads(num_threads), gated_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Row softmax                                                                                     */

typedef struct softmax_job {
    float *x; /* (rows, n), row stride ld */
    int64_t ld, rows, n, rows_per_item;
    attn_masked_rows masked_rows;
    const attn_kernels *kernels;
} softmax_job;

static void softmax_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const softmax_job *job = ctx;
    int64_t r0, r1;
    item_rows(item, job->rows_per_item, job->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        float *row = job->x + r * job->ld;
        float row_max, row_sum;
        job->kernels->softmax_row(row, job->n, &row_max, &row_sum);
        if (row_sum > 0.0f) continue;
        /* Sum 0: every entry was -inf, and the row holds zeros. Otherwise the sum is NaN (a NaN or
         * +inf entry) and, as in PyTorch, the whole row is NaN. */
        float fill;
        if (row_sum != 0.0f || job->masked_rows == ATTN_MASKED_ROWS_NAN) fill = NAN;
        else if (job->masked_rows == ATTN_MASKED_ROWS_MEAN) fill = 1.0f / (float)job->n;
        else continue;
        for (int64_t j = 0; j < job->n; j++) row[j] = fill;
    }
}

attn_status attn_softmax_rows(float *x, int64_t ld, int64_t rows, int64_t n, attn_masked_rows masked_rows,
                              int num_threads) {
    if (!x) return ATTN_ERR_NULL_POINTER;
    if (rows < 1 || n < 1 || !threads_ok(num_threads) ||
        (masked_rows != ATTN_MASKED_ROWS_ZERO && masked_rows != ATTN_MASKED_ROWS_NAN &&
         masked_rows != ATTN_MASKED_ROWS_MEAN))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (ld < n) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &rows, &ld, n, NULL)) return ATTN_ERR_OVERFLOW;
    const softmax_job job = {x, ld, rows, n, rows_per_item(n), masked_rows, attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(rows, job.rows_per_item), attn_resolve_threads(num_threads), softmax_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Mean of rows                                                                                    */

typedef struct mean_job {
    float *out;     /* (rows,) */
    const float *x; /* (rows, n), row stride ld */
    int64_t ld, rows, n, rows_per_item;
    const attn_kernels *kernels;
} mean_job;

static void mean_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const mean_job *job = ctx;
    int64_t r0, r1;
    item_rows(item, job->rows_per_item, job->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        job->out[r] = (float)(job->kernels->sum_row(job->x + r * job->ld, job->n) / (double)job->n);
}

attn_status attn_mean_rows(float *out, const float *x, int64_t ld, int64_t rows, int64_t n, int num_threads) {
    if (!out || !x) return ATTN_ERR_NULL_POINTER;
    if (rows < 1 || n < 1 || !threads_ok(num_threads)) return ATTN_ERR_INVALID_ARGUMENT;
    if (ld < n) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &rows, &ld, n, NULL) || !attn_extent_ok(0, NULL, NULL, rows, NULL))
        return ATTN_ERR_OVERFLOW;
    const mean_job job = {out, x, ld, rows, n, rows_per_item(n), attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(rows, job.rows_per_item), attn_resolve_threads(num_threads), mean_task, (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Rotary positional embedding                                                                     */

/*
 * Work items are groups of positions. An item computes the cos and sin of each of its positions'
 * angles once, into its thread's table of dim floats, and rotates that position's row in every
 * (batch, head) from there: the trigonometry (in double, the expensive part for few heads) is done
 * once per (position, frequency) per call, exactly as a precomputed len x dim/2 table would, but the
 * workspace is threads x dim floats whatever the length, and the table stays in L1 while it is used.
 */
typedef struct rotary_job {
    attn_rotary_params p;
    int64_t half;              /* dim / 2 */
    int64_t positions_per_item;
    const double *freq;        /* (half,) theta^(-2i/dim) */
    float *tables;             /* per thread: cos (half,) then sin (half,) */
    int64_t table_floats;      /* per thread, whole cache lines */
} rotary_job;

/* (a, b) -> (a cos - b sin, b cos + a sin) for the pairs (lo[i], hi[i]) and, interleaved, (x[2i], x[2i+1]). */
static void rotate_halves(float *restrict lo, float *restrict hi, int64_t half, const float *restrict c,
                          const float *restrict s) {
    for (int64_t i = 0; i < half; i++) {
        const float a = lo[i], b = hi[i];
        lo[i] = a * c[i] - b * s[i];
        hi[i] = b * c[i] + a * s[i];
    }
}

static void rotate_interleaved(float *restrict x, int64_t half, const float *restrict c, const float *restrict s) {
    for (int64_t i = 0; i < half; i++) {
        const float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c[i] - b * s[i];
        x[2 * i + 1] = b * c[i] + a * s[i];
    }
}

static void rotary_task(void *ctx, int64_t item, int thread) {
    const rotary_job *job = ctx;
    const attn_rotary_params *p = &job->p;
    float *c = job->tables + (int64_t)thread * job->table_floats, *s = c + job->half;
    const int64_t l0 = item * job->positions_per_item;
    const int64_t l1 = p->len - l0 < job->positions_per_item ? p->len : l0 + job->positions_per_item;
    for (int64_t l = l0; l < l1; l++) {
        const double position = (double)(p->position_offset + l);
        for (int64_t i = 0; i < job->half; i++) {
            const double angle = position * job->freq[i];
            c[i] = (float)cos(angle);
            s[i] = (float)sin(angle);
        }
        for (int64_t b = 0; b < p->batch; b++)
            for (int64_t h = 0; h < p->heads; h++) {
                float *row = p->x + b * p->x_stride[0] + h * p->x_stride[1] + l * p->x_stride[2];
                if (p->pairing == ATTN_ROTARY_HALF) rotate_halves(row, row + job->half, job->half, c, s);
                else rotate_interleaved(row, job->half, c, s);
            }
    }
}

attn_status attn_rotary(const attn_rotary_params *params) {
    attn_rotary_params p;
    const attn_status status = attn_read_rotary_params(&p, params);
    if (status != ATTN_OK) return status;
    if (!p.x) return ATTN_ERR_NULL_POINTER;
    if (p.batch < 1 || p.heads < 1 || p.len < 1 || p.dim < 1 || p.dim % 2 != 0 || !(p.theta > 0.0f) ||
        !isfinite(p.theta) || p.position_offset < 0 || !threads_ok(p.num_threads) ||
        (p.pairing != ATTN_ROTARY_HALF && p.pairing != ATTN_ROTARY_INTERLEAVED))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p.x_stride[0] < 0 || p.x_stride[1] < 0 || p.x_stride[2] < 0) return ATTN_ERR_INVALID_STRIDE;
    const int64_t count[3] = {p.batch, p.heads, p.len};
    int64_t last_position;
    if (!attn_extent_ok(3, count, p.x_stride, p.dim, NULL) ||
        !attn_add_ok(p.position_offset, p.len - 1, &last_position))
        return ATTN_ERR_OVERFLOW;
    if (!attn_rows_disjoint(3, count, p.x_stride, p.dim)) return ATTN_ERR_INVALID_STRIDE;

    rotary_job job = {.p = p, .half = p.dim / 2};
    /* Positions per item: enough rows (batch x heads of them per position) to fill an item. */
    int64_t position_floats;
    job.positions_per_item = 1;
    if (attn_mul_ok(p.batch, p.heads, &position_floats) && attn_mul_ok(position_floats, p.dim, &position_floats) &&
        position_floats < DENSE_ITEM_FLOATS)
        job.positions_per_item = DENSE_ITEM_FLOATS / position_floats;
    const int64_t items = attn_ceil_div(p.len, job.positions_per_item);
    int threads = attn_resolve_threads(p.num_threads);
    if (threads > items) threads = (int)items;

    /* Workspace: the frequencies, then one table per thread, each on whole cache lines. */
    const int64_t freq_bytes = ((job.half * (int64_t)sizeof(double)) + 63) & ~(int64_t)63;
    job.table_floats = (p.dim + 15) & ~(int64_t)15;
    int64_t bytes;
    if (!attn_mul_ok(job.table_floats, threads, &bytes) || !attn_mul_ok(bytes, (int64_t)sizeof(float), &bytes) ||
        !attn_add_ok(bytes, freq_bytes, &bytes))
        return ATTN_ERR_OVERFLOW;
    char *workspace = attn_alloc(bytes);
    if (!workspace) return ATTN_ERR_OUT_OF_MEMORY;
    double *freq = (double *)workspace;
    for (int64_t i = 0; i < job.half; i++) freq[i] = pow((double)p.theta, -2.0 * (double)i / (double)p.dim);
    job.freq = freq;
    job.tables = (float *)(workspace + freq_bytes);
    attn_parallel_for(items, threads, rotary_task, &job);
    attn_free(workspace);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Element types                                                                                   */

size_t attn_dtype_size(attn_dtype dtype) {
    switch (dtype) {
    case ATTN_DTYPE_F32: return 4;
    case ATTN_DTYPE_F16:
    case ATTN_DTYPE_BF16: return 2;
    }
    return 0;
}

attn_status attn_convert(void *dst, attn_dtype dst_dtype, const void *src, attn_dtype src_dtype, int64_t count) {
    if (!dst || !src) return ATTN_ERR_NULL_POINTER;
    const int64_t dst_size = (int64_t)attn_dtype_size(dst_dtype), src_size = (int64_t)attn_dtype_size(src_dtype);
    if (count < 0 || !dst_size || !src_size) return ATTN_ERR_INVALID_ARGUMENT;
    if (count == 0) return ATTN_OK;
    if (!attn_extent_bytes_ok(0, NULL, NULL, count, dst_size, NULL) ||
        !attn_extent_bytes_ok(0, NULL, NULL, count, src_size, NULL))
        return ATTN_ERR_OVERFLOW;
    attn_kernels_current()->convert_row(dst, dst_dtype, src, src_dtype, count);
    return ATTN_OK;
}
