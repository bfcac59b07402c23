/*
 * dense_backward.c: the backward kernels of the dense ops (attn.h, "Dense kernels"). So far the
 * matrix multiply's: dA and dB are attn_matmul calls (b_transposed, a_transposed), and d(bias) is
 * attn_sum_columns here. Each entry point validates everything before it writes anything; threads
 * split independent outputs (columns here), so results do not depend on the thread count.
 */
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
