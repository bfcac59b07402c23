/*
 * loss.c: attn_cross_entropy, the loss over rows of logits and its gradient in one pass (attn.h).
 * Each row through the ISA's softmax kernel: its maximum and sum of exponentials in float (vector
 * exponentials), the log-sum-exp, mean and loss from them in double, and the gradient written in
 * the same pass as the normalisation (softmax · factor - eps · factor / n, then the target's
 * 1 - eps). A row holding a NaN or an infinity gets loss and gradient NaN, as the exact formula
 * gives. The rows are split into fixed blocks whose losses are summed in block order, so the total
 * does not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>

#include "internal.h"

typedef struct cross_entropy_job {
    attn_cross_entropy_params p; /* validated */
    const attn_kernels *kernels;
    int64_t rows_per_item;
    double grad_factor;          /* grad_scale, over the counted rows for MEAN */
    double *block_loss;          /* one sum per item */
    float *scratch;              /* without dlogits: one row per thread for the exponentials */
} cross_entropy_job;

/* Row r's loss, and its gradient times factor into drow (which may be the row itself) or, when
 * drow is NULL, the exponentials into scratch. */
static double cross_entropy_row(const cross_entropy_job *job, int64_t r, float *drow, float *scratch) {
    const attn_cross_entropy_params *p = &job->p;
    const float *x = p->logits + r * p->ld_logits;
    const int64_t t = p->targets[r], n = p->classes;
    if (t == p->ignore_index) {
        for (int64_t c = 0; drow && c < n; c++) drow[c] = 0.0f;
        return 0.0;
    }
    const double eps = p->label_smoothing, factor = job->grad_factor;
    /* Read before an in-place gradient overwrites the row. */
    const double xt = x[t], total = eps > 0 ? job->kernels->sum_row(x, n) : 0.0;
    float row_max, row_sum;
    job->kernels->softmax_row(drow ? drow : scratch, x, n, (float)factor, (float)(-eps * factor / (double)n),
                              &row_max, &row_sum);
    if (!(row_sum > 0.0f) || !isfinite(row_sum)) {
        for (int64_t c = 0; drow && c < n; c++) drow[c] = NAN;
        return NAN;
    }
    if (drow) drow[t] -= (float)((1.0 - eps) * factor);
    const double lse = (double)row_max + log((double)row_sum);
    return (1.0 - eps) * (lse - xt) + eps * (lse - total / (double)n);
}

static void cross_entropy_task(void *ctx, int64_t item, int thread) {
    const cross_entropy_job *job = ctx;
    const attn_cross_entropy_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    double sum = 0;
    for (int64_t r = r0; r < r1; r++) {
        float *drow = p->dlogits ? p->dlogits + r * p->ld_dlogits : NULL;
        const double loss = cross_entropy_row(job, r, drow, drow ? NULL : job->scratch + (int64_t)thread * p->classes);
        if (p->reduction == ATTN_LOSS_NONE) p->loss[r] = (float)loss;
        else sum += loss;
    }
    job->block_loss[item] = sum;
}

/* Checks everything but the targets; *counted: the rows not ignored, after checking the targets. */
static attn_status cross_entropy_check(const attn_cross_entropy_params *p, int64_t *counted) {
    if (!p->logits || !p->targets || !p->loss) return ATTN_ERR_NULL_POINTER;
    if (p->rows < 1 || p->classes < 1 || !attn_threads_ok(p->num_threads) || !(p->label_smoothing >= 0.0f) ||
        !(p->label_smoothing <= 1.0f) || !isfinite(p->grad_scale) ||
        (p->reduction != ATTN_LOSS_MEAN && p->reduction != ATTN_LOSS_SUM && p->reduction != ATTN_LOSS_NONE))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p->ld_logits < p->classes || (p->dlogits && p->ld_dlogits < p->classes)) return ATTN_ERR_INVALID_STRIDE;
    if (p->dlogits && (const float *)p->dlogits == p->logits && p->ld_dlogits != p->ld_logits) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &p->rows, &p->ld_logits, p->classes, NULL) || !attn_extent_ok(0, NULL, NULL, p->rows, NULL) ||
        (p->dlogits && !attn_extent_ok(1, &p->rows, &p->ld_dlogits, p->classes, NULL)))
        return ATTN_ERR_OVERFLOW;
    *counted = 0;
    for (int64_t r = 0; r < p->rows; r++) {
        const int64_t t = p->targets[r];
        if (t == p->ignore_index) continue;
        if (t < 0 || t >= p->classes) return ATTN_ERR_INVALID_ARGUMENT;
        ++*counted;
    }
    return ATTN_OK;
}

attn_status attn_cross_entropy(const attn_cross_entropy_params *params) {
    cross_entropy_job job;
    attn_status status = attn_read_cross_entropy_params(&job.p, params);
    if (status != ATTN_OK) return status;
    const attn_cross_entropy_params *p = &job.p;
    int64_t counted;
    if ((status = cross_entropy_check(p, &counted)) != ATTN_OK) return status;
    job.rows_per_item = attn_rows_per_item(p->classes);
    const int64_t items = attn_ceil_div(p->rows, job.rows_per_item);
    int64_t bytes;
    if (!attn_mul_ok(items, (int64_t)sizeof(double), &bytes)) return ATTN_ERR_OVERFLOW;
    int threads = attn_resolve_threads(p->num_threads);
    if (threads > items) threads = (int)items;
    int64_t scratch_bytes = 0;
    if (!p->dlogits && (!attn_mul_ok(threads, p->classes, &scratch_bytes) ||
                        !attn_mul_ok(scratch_bytes, (int64_t)sizeof(float), &scratch_bytes)))
        return ATTN_ERR_OVERFLOW;
    job.block_loss = attn_alloc(bytes);
    job.scratch = scratch_bytes ? attn_alloc(scratch_bytes) : NULL;
    if (!job.block_loss || (scratch_bytes && !job.scratch)) {
        attn_free(job.block_loss);
        attn_free(job.scratch);
        return ATTN_ERR_OUT_OF_MEMORY;
    }
    job.kernels = attn_kernels_current();
    /* MEAN with every row ignored: 0 / 0, as torch; the gradients are then 0 · NaN for no row. */
    job.grad_factor = (double)p->grad_scale / (p->reduction == ATTN_LOSS_MEAN && counted > 0 ? (double)counted : 1.0);
    attn_parallel_for(items, threads, cross_entropy_task, &job);
    if (p->reduction != ATTN_LOSS_NONE) {
        double total = 0;
        for (int64_t i = 0; i < items; i++) total += job.block_loss[i];
        p->loss[0] = (float)(p->reduction == ATTN_LOSS_MEAN ? total / (double)counted : total);
    }
    attn_free(job.block_loss);
    attn_free(job.scratch);
    return ATTN_OK;
}
