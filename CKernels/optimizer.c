/*
 * optimizer.c: attn_optimizer_step, one SGD, Adam or AdamW step over a flat parameter array in
 * place (attn.h). Validates, computes the step's scalars in double as torch does in Python, counts
 * the non-finite gradients first (and, when asked, stops there), then runs the ISA's element loop
 * (optimizer_template.h) over fixed chunks in parallel.
 */
#include <math.h>
#include <stdint.h>

#include "internal.h"

typedef struct optimizer_job {
    attn_optimizer_step_params p; /* validated */
    attn_optimizer_scalars s;
    const attn_kernels *kernels;
    int64_t *chunk_nonfinite;     /* per chunk, for the count */
} optimizer_job;

static int64_t chunk_end(const optimizer_job *job, int64_t item) {
    const int64_t end = (item + 1) * DENSE_ITEM_FLOATS;
    return end < job->p.count ? end : job->p.count;
}

static void count_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    optimizer_job *job = ctx;
    const int64_t i0 = item * DENSE_ITEM_FLOATS;
    job->chunk_nonfinite[item] = job->kernels->count_nonfinite(job->p.grad + i0, chunk_end(job, item) - i0);
}

static void step_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const optimizer_job *job = ctx;
    job->kernels->optimizer_range(&job->p, &job->s, item * DENSE_ITEM_FLOATS, chunk_end(job, item));
}

static int nonnegative(float x) { return isfinite(x) && x >= 0.0f; }

static attn_status optimizer_check(const attn_optimizer_step_params *p) {
    if (!p->param || !p->grad) return ATTN_ERR_NULL_POINTER;
    if (p->kind == ATTN_OPTIMIZER_SGD && p->momentum != 0.0f && !p->momentum_buffer) return ATTN_ERR_NULL_POINTER;
    if (p->kind != ATTN_OPTIMIZER_SGD && (!p->first_moment || !p->second_moment)) return ATTN_ERR_NULL_POINTER;
    if (p->kind != ATTN_OPTIMIZER_SGD && p->kind != ATTN_OPTIMIZER_ADAM && p->kind != ATTN_OPTIMIZER_ADAMW)
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p->count < 1 || p->step < 1 || !nonnegative(p->lr) || !nonnegative(p->weight_decay) || !attn_threads_ok(p->num_threads))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p->kind == ATTN_OPTIMIZER_SGD &&
        (!nonnegative(p->momentum) || !isfinite(p->dampening) || (p->nesterov && (p->momentum <= 0.0f || p->dampening != 0.0f))))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (p->kind != ATTN_OPTIMIZER_SGD &&
        (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f) || !nonnegative(p->eps)))
        return ATTN_ERR_INVALID_ARGUMENT;
    if (!attn_extent_ok(0, NULL, NULL, p->count, NULL)) return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

/* The scalars, in double as torch computes them in Python, then rounded to float. */
static attn_optimizer_scalars optimizer_scalars(const attn_optimizer_step_params *p) {
    attn_optimizer_scalars s = {0};
    s.lr = p->lr;
    s.weight_decay = p->kind == ATTN_OPTIMIZER_ADAMW ? 0.0f : p->weight_decay;
    s.momentum = p->momentum;
    s.one_minus_dampening = (float)(1.0 - (double)p->dampening);
    s.decay = (float)(1.0 - (double)p->lr * (double)p->weight_decay);
    s.beta1_complement = (float)(1.0 - (double)p->beta1);
    s.beta2 = p->beta2;
    s.beta2_complement = (float)(1.0 - (double)p->beta2);
    s.step_size = (float)((double)p->lr / (1.0 - pow((double)p->beta1, (double)p->step)));
    s.bias2_sqrt = (float)sqrt(1.0 - pow((double)p->beta2, (double)p->step));
    s.eps = p->eps;
    return s;
}

attn_status attn_optimizer_step(const attn_optimizer_step_params *params) {
    optimizer_job job;
    attn_status status = attn_read_optimizer_step_params(&job.p, params);
    if (status != ATTN_OK) return status;
    if ((status = optimizer_check(&job.p)) != ATTN_OK) return status;
    const attn_optimizer_step_params *p = &job.p;
    job.s = optimizer_scalars(p);
    job.kernels = attn_kernels_current();
    const int64_t chunks = attn_ceil_div(p->count, DENSE_ITEM_FLOATS);
    int threads = attn_resolve_threads(p->num_threads);
    if (threads > chunks) threads = (int)chunks;
    if (p->nonfinite || p->skip_nonfinite) {
        job.chunk_nonfinite = attn_alloc(chunks * (int64_t)sizeof(int64_t));
        if (!job.chunk_nonfinite) return ATTN_ERR_OUT_OF_MEMORY;
        attn_parallel_for(chunks, threads, count_task, &job);
        int64_t bad = 0;
        for (int64_t c = 0; c < chunks; c++) bad += job.chunk_nonfinite[c];
        attn_free(job.chunk_nonfinite);
        if (p->nonfinite) *p->nonfinite = bad;
        if (bad && p->skip_nonfinite) return ATTN_OK;
    }
    attn_parallel_for(chunks, threads, step_task, &job);
    return ATTN_OK;
}
