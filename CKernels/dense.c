/*
 * dense.c: the dense entry points around attention: attn_layer_norm, attn_activate,
 * attn_gated_activate, attn_softmax_rows, attn_rotary, attn_mean_rows and attn_reduce_rows, and the
 * element-type conversions
 * (contracts in attn.h).
 *
 * Each validates everything before writing anything (pointers, then sizes and enums, then strides,
 * then overflow of every extent; for rotary then overlapping rows), reading the caller's parameter
 * struct first as its struct_size says (params.c), then splits the work into items
 * for attn_parallel_for: groups of whole rows, fixed-size ranges for activations, groups of positions
 * for rotary. The per-row work is the ISA's row kernels (dense_template.h, softmax_template.h). Items
 * depend on the shape only, never on the thread count, and no row or element is computed differently
 * by where an item starts, so results are bitwise the same for any thread count.
 */
#include <math.h>

#include "internal.h"

/* ---------------------------------------------------------------------------------------------- */
/* Layer norm                                                                                      */

typedef struct layer_norm_job {
    attn_layer_norm_params p;
    int64_t rows_per_item;
    const attn_kernels *kernels;
} layer_norm_job;

static void layer_norm_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const layer_norm_job *job = ctx;
    const attn_layer_norm_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        job->kernels->layer_norm_row(p->out + r * p->ld_out, p->x + r * p->ld_x, p->n, p->weight, p->bias, p->eps,
                                     p->variance, p->mean ? p->mean + r : NULL, p->rstd ? p->rstd + r : NULL);
}

attn_status attn_layer_norm(const attn_layer_norm_params *params) {
    attn_layer_norm_params p;
    const attn_status status = attn_read_layer_norm_params(&p, params);
    if (status != ATTN_OK) return status;
    if (!p.out || !p.x) return ATTN_ERR_NULL_POINTER;
    if (p.rows < 1 || p.n < 1 || !(p.eps >= 0.0f) || !isfinite(p.eps) || !attn_threads_ok(p.num_threads) ||
        (p.variance != ATTN_VARIANCE_TWO_PASS && p.variance != ATTN_VARIANCE_FAST && p.variance != ATTN_VARIANCE_RMS))
        return ATTN_ERR_INVALID_ARGUMENT;
    /* In place means the same rows: with another stride, rows of out would land on rows of x that
     * other threads have yet to read. */
    if (p.ld_out < p.n || p.ld_x < p.n || (p.out == p.x && p.ld_out != p.ld_x)) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p.rows, &p.ld_out, p.n, NULL) || !attn_extent_ok(1, &p.rows, &p.ld_x, p.n, NULL) ||
        !attn_extent_ok(0, NULL, NULL, p.rows, NULL))
        return ATTN_ERR_OVERFLOW;

    const layer_norm_job job = {p, attn_rows_per_item(p.n), attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(p.rows, job.rows_per_item), attn_resolve_threads(p.num_threads), layer_norm_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Activations                                                                                     */

typedef struct activate_job {
    attn_activate_params p;
    const attn_kernels *kernels;
} activate_job;

static void activate_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const activate_job *job = ctx;
    const int64_t j0 = item * DENSE_ITEM_FLOATS, count = job->p.count;
    const int64_t len = count - j0 < DENSE_ITEM_FLOATS ? count - j0 : DENSE_ITEM_FLOATS;
    job->kernels->activate(job->p.out + j0, job->p.x + j0, NULL, len, job->p.kind);
}

attn_status attn_activate(const attn_activate_params *params) {
    attn_activate_params p;
    const attn_status status = attn_read_activate_params(&p, params);
    if (status != ATTN_OK) return status;
    if (!p.out || !p.x) return ATTN_ERR_NULL_POINTER;
    if (p.count < 1 || !attn_activation_ok(p.kind) || !attn_threads_ok(p.num_threads)) return ATTN_ERR_INVALID_ARGUMENT;
    if (!attn_extent_ok(0, NULL, NULL, p.count, NULL)) return ATTN_ERR_OVERFLOW;
    const activate_job job = {p, attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(p.count, DENSE_ITEM_FLOATS), attn_resolve_threads(p.num_threads), activate_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Gated activations                                                                               */

typedef struct gated_job {
    attn_gated_activate_params p; /* x (rows, 2 width): gate, then the linear half */
    int64_t rows_per_item;
    const attn_kernels *kernels;
} gated_job;

static void gated_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const gated_job *job = ctx;
    const attn_gated_activate_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *gate = p->x + r * p->ld_x;
        job->kernels->activate(p->out + r * p->ld_out, gate, gate + p->width, p->width, p->kind);
    }
}

attn_status attn_gated_activate(const attn_gated_activate_params *params) {
    attn_gated_activate_params p;
    const attn_status status = attn_read_gated_activate_params(&p, params);
    if (status != ATTN_OK) return status;
    if (!p.out || !p.x) return ATTN_ERR_NULL_POINTER;
    if (p.rows < 1 || p.width < 1 || !attn_activation_ok(p.kind) || !attn_threads_ok(p.num_threads)) return ATTN_ERR_INVALID_ARGUMENT;
    int64_t both;
    if (!attn_mul_ok(p.width, 2, &both)) return ATTN_ERR_OVERFLOW;
    /* In place, as for layer norm: the same rows, each written over its own gate half. */
    if (p.ld_out < p.width || p.ld_x < both || (p.out == p.x && p.ld_out != p.ld_x)) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p.rows, &p.ld_out, p.width, NULL) || !attn_extent_ok(1, &p.rows, &p.ld_x, both, NULL))
        return ATTN_ERR_OVERFLOW;
    const gated_job job = {p, attn_rows_per_item(both), attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(p.rows, job.rows_per_item), attn_resolve_threads(p.num_threads), gated_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Row softmax                                                                                     */

typedef struct softmax_job {
    attn_softmax_rows_params p;
    int64_t rows_per_item;
    const attn_kernels *kernels;
} softmax_job;

static void softmax_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const softmax_job *job = ctx;
    const attn_softmax_rows_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        float *row = p->x + r * p->ld;
        float row_max, row_sum;
        job->kernels->softmax_row(row, row, p->n, 1.0f, 0.0f, &row_max, &row_sum);
        if (row_sum > 0.0f) continue;
        /* Sum 0: every entry was -inf, and the row holds zeros. Otherwise the sum is NaN (a NaN or
         * +inf entry) and, as in PyTorch, the whole row is NaN. */
        float fill;
        if (row_sum != 0.0f || p->masked_rows == ATTN_MASKED_ROWS_NAN) fill = NAN;
        else if (p->masked_rows == ATTN_MASKED_ROWS_MEAN) fill = 1.0f / (float)p->n;
        else continue;
        for (int64_t j = 0; j < p->n; j++) row[j] = fill;
    }
}

attn_status attn_softmax_rows(const attn_softmax_rows_params *params) {
    attn_softmax_rows_params p;
    const attn_status status = attn_read_softmax_rows_params(&p, params);
    if (status != ATTN_OK) return status;
    if (!p.x) return ATTN_ERR_NULL_POINTER;
    if (p.rows < 1 || p.n < 1 || !attn_threads_ok(p.num_threads) ||
        (p.masked_rows != ATTN_MASKED_ROWS_ZERO && p.masked_rows != ATTN_MASKED_ROWS_NAN &&
         p.masked_rows != ATTN_MASKED_ROWS_MEAN))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p.ld < p.n) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p.rows, &p.ld, p.n, NULL)) return ATTN_ERR_OVERFLOW;
    const softmax_job job = {p, attn_rows_per_item(p.n), attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(p.rows, job.rows_per_item), attn_resolve_threads(p.num_threads), softmax_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Row reductions                                                                                  */

typedef struct reduce_job {
    attn_reduce_rows_params p;
    int64_t rows_per_item;
    const attn_kernels *kernels;
} reduce_job;

static void reduce_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const reduce_job *job = ctx;
    const attn_reduce_rows_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *row = p->x + r * p->ld;
        if (p->op == ATTN_REDUCE_SUM || p->op == ATTN_REDUCE_MEAN) {
            const double sum = job->kernels->sum_row(row, p->n);
            p->out[r] = (float)(p->op == ATTN_REDUCE_SUM ? sum : sum / (double)p->n);
            continue;
        }
        const int64_t k = job->kernels->extremum_row(row, p->n, p->op == ATTN_REDUCE_MAX ? 1.0f : -1.0f);
        if (p->out) p->out[r] = row[k];
        if (p->indices) p->indices[r] = k;
    }
}

attn_status attn_reduce_rows(const attn_reduce_rows_params *params) {
    attn_reduce_rows_params p;
    const attn_status status = attn_read_reduce_rows_params(&p, params);
    if (status != ATTN_OK) return status;
    const int extremum = p.op == ATTN_REDUCE_MAX || p.op == ATTN_REDUCE_MIN;
    if (!p.x || (!p.out && (!extremum || !p.indices))) return ATTN_ERR_NULL_POINTER;
    if (p.rows < 1 || p.n < 1 || !attn_threads_ok(p.num_threads) ||
        (!extremum && p.op != ATTN_REDUCE_SUM && p.op != ATTN_REDUCE_MEAN) || (!extremum && p.indices))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p.ld < p.n) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p.rows, &p.ld, p.n, NULL) || !attn_extent_ok(0, NULL, NULL, p.rows, NULL) ||
        !attn_extent_bytes_ok(0, NULL, NULL, p.rows, (int64_t)sizeof(int64_t), NULL))
        return ATTN_ERR_OVERFLOW;
    const reduce_job job = {p, attn_rows_per_item(p.n), attn_kernels_current()};
    attn_parallel_for(attn_ceil_div(p.rows, job.rows_per_item), attn_resolve_threads(p.num_threads), reduce_task,
                      (void *)&job);
    return ATTN_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Mean of rows                                                                                    */

/* The mean of each row is attn_reduce_rows' ATTN_REDUCE_MEAN (the same checks, the same sums). */
attn_status attn_mean_rows(const attn_mean_rows_params *params) {
    attn_mean_rows_params p;
    const attn_status status = attn_read_mean_rows_params(&p, params);
    if (status != ATTN_OK) return status;
    attn_reduce_rows_params r = attn_reduce_rows_params_default();
    r.rows = p.rows; r.n = p.n; r.out = p.out; r.x = p.x; r.ld = p.ld;
    r.op = ATTN_REDUCE_MEAN; r.num_threads = p.num_threads;
    return attn_reduce_rows(&r);
}

/* ---------------------------------------------------------------------------------------------- */
/* Rotary positional embedding                                                                     */

/*
 * Work items are groups of positions (row indices l). An item computes the cos and sin of each
 * position's angles into its thread's table of dim floats and rotates that row in every (batch,
 * head) from there, recomputing the table only when sequence b starts elsewhere than sequence b - 1:
 * without per-sequence positions the trigonometry (in double, the expensive part for few heads) is
 * done once per (row index, frequency) per call, exactly as a precomputed len x dim/2 table would,
 * but the workspace is threads x dim floats whatever the length, and the table stays in L1. A table
 * depends only on its position, so results do not depend on how the rows are split.
 */
typedef struct rotary_job {
    attn_rotary_params p;
    int64_t half;              /* dim / 2 */
    int64_t positions_per_item;
    const double *freq;        /* (half,) theta^(-2i/dim); in float mode the float f_i, widened */
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

/* c (half,), s (half,): cos and sin of position's angles, in the job's angle precision; with
 * ATTN_ROTARY_INVERSE, the sine negated (the angle's opposite: sin is odd, so the same bits otherwise). */
static void rotary_table(const rotary_job *job, int64_t position, float *c, float *s) {
    const double sign = job->p.flags & ATTN_ROTARY_INVERSE ? -1.0 : 1.0;
    if (job->p.angles == ATTN_ROTARY_ANGLES_FLOAT) {
        const float p = (float)position;
        for (int64_t i = 0; i < job->half; i++) {
            const double angle = (double)(p * (float)job->freq[i]);
            c[i] = (float)cos(angle);
            s[i] = (float)(sign * sin(angle));
        }
        return;
    }
    for (int64_t i = 0; i < job->half; i++) {
        const double angle = (double)position * job->freq[i];
        c[i] = (float)cos(angle);
        s[i] = (float)(sign * sin(angle));
    }
}

static void rotary_task(void *ctx, int64_t item, int thread) {
    const rotary_job *job = ctx;
    const attn_rotary_params *p = &job->p;
    float *c = job->tables + (int64_t)thread * job->table_floats, *s = c + job->half;
    const int64_t l0 = item * job->positions_per_item;
    const int64_t l1 = p->len - l0 < job->positions_per_item ? p->len : l0 + job->positions_per_item;
    for (int64_t l = l0; l < l1; l++)
        for (int64_t b = 0; b < p->batch; b++) {
            const int64_t position = (p->positions ? p->positions[b] : p->position_offset) + l;
            if (b == 0 || (p->positions && p->positions[b] != p->positions[b - 1])) rotary_table(job, position, c, s);
            for (int64_t h = 0; h < p->heads; h++) {
                float *row = p->x + b * p->x_stride[0] + h * p->x_stride[1] + l * p->x_stride[2];
                if (p->pairing == ATTN_ROTARY_HALF) rotate_halves(row, row + job->half, job->half, c, s);
                else rotate_interleaved(row, job->half, c, s);
            }
        }
}

/* Everything attn_rotary checks before it allocates (its sizes, enums, strides, positions). */
static attn_status rotary_check(const attn_rotary_params *p) {
    if (!p->x) return ATTN_ERR_NULL_POINTER;
    if (p->batch < 1 || p->heads < 1 || p->len < 1 || p->dim < 1 || p->dim % 2 != 0 || !(p->theta > 0.0f) ||
        !isfinite(p->theta) || p->position_offset < 0 || !attn_threads_ok(p->num_threads) ||
        (p->pairing != ATTN_ROTARY_HALF && p->pairing != ATTN_ROTARY_INTERLEAVED) ||
        (p->angles != ATTN_ROTARY_ANGLES_DOUBLE && p->angles != ATTN_ROTARY_ANGLES_FLOAT) ||
        (p->flags & ~ATTN_ROTARY_INVERSE) != 0)
        return ATTN_ERR_INVALID_ARGUMENT;
    for (int64_t b = 0; p->positions && b < p->batch; b++)
        if (p->positions[b] < 0) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->x_stride[0] < 0 || p->x_stride[1] < 0 || p->x_stride[2] < 0) return ATTN_ERR_INVALID_STRIDE;
    const int64_t count[3] = {p->batch, p->heads, p->len};
    int64_t last_position;
    if (!attn_extent_ok(3, count, p->x_stride, p->dim, NULL) ||
        !attn_add_ok(p->position_offset, p->len - 1, &last_position))
        return ATTN_ERR_OVERFLOW;
    for (int64_t b = 0; p->positions && b < p->batch; b++)
        if (!attn_add_ok(p->positions[b], p->len - 1, &last_position)) return ATTN_ERR_OVERFLOW;
    if (!attn_rows_disjoint(3, count, p->x_stride, p->dim)) return ATTN_ERR_INVALID_STRIDE;
    return ATTN_OK;
}

attn_status attn_rotary(const attn_rotary_params *params) {
    attn_rotary_params p;
    attn_status status = attn_read_rotary_params(&p, params);
    if (status != ATTN_OK) return status;
    if ((status = rotary_check(&p)) != ATTN_OK) return status;

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
    for (int64_t i = 0; i < job.half; i++)
        freq[i] = p.angles == ATTN_ROTARY_ANGLES_FLOAT ? (double)(1.0f / powf(p.theta, (float)(2 * i) / (float)p.dim))
                                                       : pow((double)p.theta, -2.0 * (double)i / (double)p.dim);
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
