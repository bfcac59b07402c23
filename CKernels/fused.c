/*
 * fused.c: attn_forward, the fused kernel's entry point. Validates, sizes the per-thread
 * workspace, orders the work items so the heaviest go first, and runs them in parallel. The tiles
 * themselves are in fused_kernel.h, compiled once per ISA.
 */
#include "internal.h"

typedef struct fused_run {
    const attn_problem *pr;
    const attn_kernels *kernels;
    int64_t tile_queries, query_blocks;
    float *workspace;
    int64_t workspace_floats; /* per thread */
} fused_run;

/* Items are (query block, batch, head) with the query block varying slowest and, under causal
 * masking, counted from the end: the last blocks see the most keys, so handing them out first lets
 * the dynamic schedule fill in with the light ones and both threads finish together. */
static void fused_task(void *ctx, int64_t item, int thread) {
    const fused_run *run = ctx;
    const attn_params *p = &run->pr->p;
    const int64_t heads = p->batch * p->heads_q;
    int64_t qb = item / heads;
    if (run->pr->has_causal) qb = run->query_blocks - 1 - qb;
    const int64_t bh = item % heads;
    run->kernels->fused_item(run->pr, bh / p->heads_q, bh % p->heads_q, qb * run->tile_queries,
                             run->workspace + thread * run->workspace_floats);
}

/* Fills run for a validated problem: tiling, item count, threads and workspace size in floats. */
static attn_status fused_plan(fused_run *run, const attn_problem *pr, int64_t *items, int *threads, int64_t *floats) {
    run->pr = pr;
    run->kernels = attn_kernels_current();
    run->tile_queries = run->kernels->fused_tile_queries();
    run->query_blocks = (pr->p.len_q + run->tile_queries - 1) / run->tile_queries;
    /* Rounded to whole cache lines so no two threads' workspaces share one. */
    run->workspace_floats = (run->kernels->fused_workspace_floats(pr) + 15) & ~(int64_t)15;
    *items = run->query_blocks * pr->p.batch * pr->p.heads_q;
    *threads = attn_resolve_threads(pr->p.num_threads);
    if (*threads > *items) *threads = (int)*items;
    if (!attn_mul_ok(run->workspace_floats, *threads, floats)) return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

attn_status attn_forward_workspace(const attn_params *params, size_t *bytes) {
    if (!bytes) return ATTN_ERR_NULL_POINTER;
    attn_problem pr;
    fused_run run;
    int64_t items, floats;
    int threads;
    attn_status status = attn_problem_init(&pr, params);
    if (status == ATTN_OK) status = fused_plan(&run, &pr, &items, &threads, &floats);
    if (status == ATTN_OK && !attn_mul_ok(floats, sizeof(float), &floats)) status = ATTN_ERR_OVERFLOW;
    if (status == ATTN_OK) *bytes = (size_t)floats;
    return status;
}

attn_status attn_forward(const attn_params *params) {
    attn_problem pr;
    fused_run run;
    int64_t items, floats;
    int threads;
    attn_status status = attn_problem_init(&pr, params);
    if (status == ATTN_OK) status = fused_plan(&run, &pr, &items, &threads, &floats);
    if (status == ATTN_OK && !attn_mul_ok(floats, sizeof(float), &floats)) status = ATTN_ERR_OVERFLOW;
    if (status != ATTN_OK) return status;
    run.workspace = attn_alloc(floats);
    if (!run.workspace) return ATTN_ERR_OUT_OF_MEMORY;
    attn_parallel_for(items, threads, fused_task, &run);
    attn_free(run.workspace);
    return ATTN_OK;
}
