/*
 * loss.c: attn_cross_entropy, the loss over rows of logits and its gradient in one pass (attn.h).
 * Each row in double: its maximum, log-sum-exp and mean, its loss, then its gradient; the rows are
 * split into fixed blocks whose losses are summed in block order, so the total does not depend on
 * the thread count. Scalar C for now.
 */
#include <math.h>
#include <stdint.h>

#include "internal.h"

typedef struct cross_entropy_job {
    attn_cross_entropy_params p; /* validated */
    int64_t rows_per_item;
    double grad_factor;          /* grad_scale, over the counted rows for MEAN */
    double *block_loss;          /* one sum per item */
} cross_entropy_job;

/* Row r's loss, and its gradient times factor into drow when not NULL. */
static double cross_entropy_row(const attn_cross_entropy_params *p, int64_t r, double factor, float *drow) {
    const float *x = p->logits + r * p->ld_logits;
    const int64_t t = p->targets[r], n = p->classes;
    if (t == p->ignore_index) {
        for (int64_t c = 0; drow && c < n; c++) drow[c] = 0.0f;
        return 0.0;
    }
    double m = -INFINITY, sum = 0, total = 0;
    for (int64_t c = 0; c < n; c++)
        if (!((double)x[c] <= m)) m = x[c]; /* a NaN is kept */
    for (int64_t c = 0; c < n; c++) {
        sum += exp((double)x[c] - m);
        total += x[c];
    }
    const double lse = m + log(sum), eps = p->label_smoothing;
    const double loss = (1.0 - eps) * (lse - (double)x[t]) + eps * (lse - total / (double)n);
    for (int64_t c = 0; drow && c < n; c++) {
        const double g = exp((double)x[c] - lse) - (c == t ? 1.0 - eps : 0.0) - eps / (double)n;
        drow[c] = (float)(g * factor);
    }
    return loss;
}

static void cross_entropy_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const cross_entropy_job *job = ctx;
    const attn_cross_entropy_params *p = &job->p;
    int64_t r0, r1;
    attn_item_rows(item, job->rows_per_item, p->rows, &r0, &r1);
    double sum = 0;
    for (int64_t r = r0; r < r1; r++) {
        const double loss = cross_entropy_row(p, r, job->grad_factor, p->dlogits ? p->dlogits + r * p->ld_dlogits : NULL);
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
    job.block_loss = attn_alloc(bytes);
    if (!job.block_loss) return ATTN_ERR_OUT_OF_MEMORY;
    /* MEAN with every row ignored: 0 / 0, as torch; the gradients are then 0 · NaN for no row. */
    job.grad_factor = (double)p->grad_scale / (p->reduction == ATTN_LOSS_MEAN && counted > 0 ? (double)counted : 1.0);
    int threads = attn_resolve_threads(p->num_threads);
    if (threads > items) threads = (int)items;
    attn_parallel_for(items, threads, cross_entropy_task, &job);
    if (p->reduction != ATTN_LOSS_NONE) {
        double total = 0;
        for (int64_t i = 0; i < items; i++) total += job.block_loss[i];
        p->loss[0] = (float)(p->reduction == ATTN_LOSS_MEAN ? total / (double)counted : total);
    }
    attn_free(job.block_loss);
    return ATTN_OK;
}
