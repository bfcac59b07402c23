/*
 * fused.c: attn_forward, the fused kernel's entry point. Validates, chooses between the two
 * kernels, sizes the workspace, orders the work items so the heaviest go first, and runs them in
 * parallel. The kernels themselves are fused_tile_template.h (tiles of queries) and fused_row_template.h
 * (single query rows, for decoding), compiled once per ISA.
 *
 * Decoding (few query rows) uses the row kernel with the keys split into chunks, so that even one
 * query of one head keeps every thread busy; the chunks' partial results are merged by log-sum-exp.
 * How many chunks depends only on the problem's sizes, never on the thread count, so results are
 * the same bits for any number of threads.
 */
#include <math.h>
#include <string.h>

#include "half.h"
#include "problem.h"

/* Key chunks for the row kernel: enough items for every thread of a large machine, but never
 * chunks so short that merging costs more than it saves. */
#define ROW_TARGET_ITEMS 32
#define ROW_MIN_KEYS_PER_CHUNK 512
/* Tile kernel: the fewest work items per thread before items are made smaller than the kernel's
 * largest. With 4, dynamic pulling keeps the threads within a fraction of an item of each other
 * (causal items are handed out heaviest first); more, smaller items cost more packing. At L = 256
 * (8 heads) 4 per thread measured 3-4 % faster than the 16 items in all used before. */
#ifndef TILE_ITEMS_PER_THREAD
#define TILE_ITEMS_PER_THREAD 4
#endif

typedef struct fused_run {
    const attn_problem *pr;
    const attn_kernels *kernels;
    /* The tile kernel's item: the table's, or its bf16-pair variant (fused_tile_kernel). */
    void (*tile_item)(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles, float *workspace);
    int rows_path;            /* the row kernel instead of the tile kernel */
    int64_t tiles, tile_queries, query_blocks; /* micro-tiles per item, queries per item */
    int64_t key_chunks;       /* row kernel: chunks per query row */
    int64_t items;
    int threads;
    float *workspace;
    int64_t workspace_floats; /* per thread, rounded to whole cache lines */
    float *partials;          /* row kernel: (B*Hq*Lq, chunks, 2 + Dv) */
    int64_t partial_floats;   /* in all */
} fused_run;

/* Tile items are (query block, batch, head) with the query block varying slowest and, under causal
 * masking, counted from the end: the last blocks see the most keys, so handing them out first lets
 * the dynamic schedule fill in with the light ones and both threads finish together. */
static void tile_task(void *ctx, int64_t item, int thread) {
    const fused_run *run = ctx;
    const attn_params *p = &run->pr->p;
    const int64_t heads = p->batch * p->heads_q;
    int64_t qb = item / heads;
    if (run->pr->has_causal) qb = run->query_blocks - 1 - qb;
    const int64_t bh = item % heads;
    run->tile_item(run->pr, bh / p->heads_q, bh % p->heads_q, qb * run->tile_queries, run->tiles,
                   run->workspace + thread * run->workspace_floats);
}

/* Row items are (row, chunk): chunk c of row (b, h, i) covers its own share of the row's visible keys. */
static void row_task(void *ctx, int64_t item, int thread) {
    const fused_run *run = ctx;
    const attn_problem *pr = run->pr;
    const attn_params *p = &pr->p;
    const int64_t row = item / run->key_chunks, chunk = item % run->key_chunks;
    const int64_t i = row % p->len_q, bh = row / p->len_q, b = bh / p->heads_q, h = bh % p->heads_q;
    int64_t lo, hi;
    attn_row_range(pr, b, i, &lo, &hi);
    const int64_t visible = hi > lo ? hi - lo : 0;
    const int64_t j0 = lo + visible * chunk / run->key_chunks, j1 = lo + visible * (chunk + 1) / run->key_chunks;
    run->kernels->fused_row_item(pr, b, h, i, j0, j1, run->workspace + thread * run->workspace_floats,
                                 run->partials + item * (2 + p->dim_v));
}

/* Combines a row's chunks: out = sum_c exp(m_c - M) o_c / sum_c exp(m_c - M) l_c with M = max m_c.
 * Every chunk takes part, so a NaN score poisons the row even where it left its chunk's maximum at
 * -inf (the row kernel's maximum ignores NaN, so a chunk whose scores are all NaN reports m = -inf
 * and l = NaN); a chunk with no visible key has l = 0 and o = 0 and adds nothing. A half-precision
 * row is formed in floats in thread 0's workspace (free again, and at least dim_v floats) and
 * rounded once. */
static void merge_rows(const fused_run *run) {
    const attn_problem *pr = run->pr;
    const attn_params *p = &pr->p;
    const int64_t dv = p->dim_v, rows = p->batch * p->heads_q * p->len_q;
    for (int64_t row = 0; row < rows; row++) {
        const int64_t i = row % p->len_q, bh = row / p->len_q, b = bh / p->heads_q, h = bh % p->heads_q;
        const float *part = run->partials + row * run->key_chunks * (2 + dv);
        float m = -INFINITY;
        for (int64_t c = 0; c < run->key_chunks; c++) {
            const float mc = part[c * (2 + dv)];
            m = mc > m ? mc : m;
        }
        const float m_use = m == -INFINITY ? 0.0f : m; /* as in the kernels: exp(-inf - 0) = 0, not NaN */
        void *dst = (void *)attn_element(p->out, p->out_dtype,
                                         b * p->out_stride[0] + h * p->out_stride[1] + i * p->out_stride[2]);
        float *out = p->out_dtype == ATTN_DTYPE_F32 ? dst : run->workspace;
        float sum = 0.0f;
        for (int64_t d = 0; d < dv; d++) out[d] = 0.0f;
        for (int64_t c = 0; c < run->key_chunks; c++) {
            const float *pc = part + c * (2 + dv);
            const float w = expf(pc[0] - m_use);
            sum += w * pc[1];
            for (int64_t d = 0; d < dv; d++) out[d] += w * pc[2 + d];
        }
        if (attn_row_finish(pr, b, h, i, m, sum, out)) {
            const float inv = 1.0f / sum;
            for (int64_t d = 0; d < dv; d++) out[d] *= inv;
        }
        if (out != dst) run->kernels->convert_row(dst, p->out_dtype, out, ATTN_DTYPE_F32, dv);
    }
}

/* The tile kernel's item for this problem: on bf16 pairs when q, k and v are all bf16 and
 * attn_bf16_dot says so (NATIVE only where the table has the instruction: the avx512 one), else
 * with every input widened to float. */
static void (*fused_tile_kernel(const attn_kernels *kernels, const attn_params *p))(const attn_problem *, int64_t,
                                                                                    int64_t, int64_t, int64_t, float *) {
    if (p->q_dtype != ATTN_DTYPE_BF16 || p->k_dtype != ATTN_DTYPE_BF16 || p->v_dtype != ATTN_DTYPE_BF16)
        return kernels->fused_item;
    switch (attn_bf16_dot_current()) {
    case ATTN_BF16_DOT_NATIVE: return kernels->fused_item_bf16_native ? kernels->fused_item_bf16_native : kernels->fused_item;
    case ATTN_BF16_DOT_EMULATED: return kernels->fused_item_bf16_model;
    default: return kernels->fused_item;
    }
}

/* Plans a validated problem: which kernel, the items, the threads and the workspace. */
static attn_status fused_plan(fused_run *run, const attn_problem *pr, int64_t *bytes) {
    const attn_params *p = &pr->p;
    memset(run, 0, sizeof *run);
    run->pr = pr;
    run->kernels = attn_kernels_current();
    run->tile_item = fused_tile_kernel(run->kernels, p);
    run->rows_path = p->len_q <= run->kernels->fused_row_max_len_q;
    run->threads = attn_resolve_threads(p->num_threads);
    int64_t floats;
    if (run->rows_path) {
        const int64_t rows = p->batch * p->heads_q * p->len_q; /* fits: validated */
        const int64_t chunks = attn_ceil_div(ROW_TARGET_ITEMS, rows);
        const int64_t most = attn_ceil_div(p->len_k, ROW_MIN_KEYS_PER_CHUNK);
        run->key_chunks = chunks < most ? chunks : most;
        if (!attn_mul_ok(rows, run->key_chunks, &run->items) ||
            !attn_mul_ok(run->items, 2 + p->dim_v, &run->partial_floats))
            return ATTN_ERR_OVERFLOW;
        run->workspace_floats = (run->kernels->fused_row_workspace_floats(pr) + 15) & ~(int64_t)15;
    } else {
        /* As few items per (b, h) as the kernel's largest item allows (each packed K/V block then
         * serves the most queries), but at least TILE_ITEMS_PER_THREAD per thread in all, so the
         * threads can share the work; the micro-tiles are then dealt out evenly. How queries are
         * grouped into items never changes a result (fused_tile_template.h walks keys in blocks on a
         * fixed grid), so the outputs are bitwise the same for every thread count. */
        const int64_t qt = run->kernels->fused_tile_queries, heads = p->batch * p->heads_q;
        const int64_t micro = attn_ceil_div(p->len_q, qt), most = run->kernels->fused_max_tiles;
        int64_t per_head = attn_ceil_div(TILE_ITEMS_PER_THREAD * (int64_t)run->threads, heads);
        if (per_head < attn_ceil_div(micro, most)) per_head = attn_ceil_div(micro, most);
        const int64_t tiles = attn_ceil_div(micro, per_head);
        run->tiles = tiles;
        run->tile_queries = qt * tiles;
        run->query_blocks = attn_ceil_div(p->len_q, run->tile_queries);
        run->items = run->query_blocks * heads;
        run->workspace_floats = (run->kernels->fused_workspace_floats(pr, tiles) + 15) & ~(int64_t)15;
    }
    if (run->threads > run->items) run->threads = (int)run->items;
    if (!attn_mul_ok(run->workspace_floats, run->threads, &floats) ||
        !attn_add_ok(floats, run->partial_floats, &floats) || !attn_mul_ok(floats, sizeof(float), bytes))
        return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

/* Validates params into *pr and plans it into *run: everything attn_forward checks before it
 * allocates, shared by attn_validate and the workspace query so they report exactly that. */
static attn_status fused_prepare(const attn_params *params, attn_problem *pr, fused_run *run, int64_t *bytes) {
    const attn_status status = attn_problem_init(pr, params);
    return status == ATTN_OK ? fused_plan(run, pr, bytes) : status;
}

attn_status attn_validate(const attn_params *params) {
    attn_problem pr;
    fused_run run;
    int64_t bytes;
    return fused_prepare(params, &pr, &run, &bytes);
}

attn_status attn_forward_workspace(const attn_params *params, size_t *bytes) {
    if (!bytes) return ATTN_ERR_NULL_POINTER;
    attn_problem pr;
    fused_run run;
    int64_t total;
    const attn_status status = fused_prepare(params, &pr, &run, &total);
    if (status == ATTN_OK) *bytes = (size_t)total;
    return status;
}

attn_status attn_forward(const attn_params *params) {
    attn_problem pr;
    fused_run run;
    int64_t bytes;
    const attn_status status = fused_prepare(params, &pr, &run, &bytes);
    if (status != ATTN_OK) return status;
    run.workspace = attn_alloc(bytes);
    if (!run.workspace) return ATTN_ERR_OUT_OF_MEMORY;
    if (run.rows_path) {
        run.partials = run.workspace + run.workspace_floats * run.threads;
        attn_parallel_for(run.items, run.threads, row_task, &run);
        merge_rows(&run);
    } else {
        attn_parallel_for(run.items, run.threads, tile_task, &run);
    }
    attn_free(run.workspace);
    return ATTN_OK;
}
