/*
 * matmul.c: attn_matmul, the public matrix multiply. It validates, splits C into tiles of rows x
 * columns, and runs the ISA's single-threaded packed sgemm_block on each tile in parallel, each
 * thread with its own packing workspace. Every element of C is summed in the same order whatever the
 * tiling (sgemm_kernel.h), so the result does not depend on the thread count.
 */
#include <stdint.h>

#include "internal.h"
#include "sgemm.h"

/* Tile edges are multiples of these, so that tiles split into whole register tiles on every ISA
 * (MR = 4, 6 or 12 rows; NR = 8, 16 or 32 columns) and only the matrix's own edges are ragged. */
#define MATMUL_ROW_ALIGN 24
#define MATMUL_COL_ALIGN 64
/* A tile is not split below this many multiply-adds (about 7 µs on one AVX2 core): smaller pieces
 * cost more in thread hand-off than they save. */
#define MATMUL_MIN_TILE_MACS 262144.0
/* Tiles per thread. Each tile packs its own panels of A and B, and packing is already ~10 % of the
 * time of a 512 x 512 x 512 tile; two tiles per thread, for dynamic balance, measured no faster
 * on two cores, even while other jobs shared them. */
#define MATMUL_TILES_PER_THREAD 1

typedef struct matmul_job {
    attn_sgemm_args whole;
    int64_t tile_m, tile_n, tiles_n;
    void (*sgemm_block)(const attn_sgemm_args *args, float *workspace);
    float *workspace; /* threads x ATTN_SGEMM_WORKSPACE_FLOATS */
} matmul_job;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Half of x rounded up to a multiple of align; x itself when that would not make it smaller. */
static int64_t half_aligned(int64_t x, int64_t align) {
    int64_t h = ceil_div(ceil_div(x, 2), align) * align;
    return h < x ? h : x;
}

static void matmul_tile(void *ctx, int64_t item, int thread) {
    const matmul_job *job = ctx;
    const attn_sgemm_args *w = &job->whole;
    const int64_t i0 = (item / job->tiles_n) * job->tile_m;
    const int64_t j0 = (item % job->tiles_n) * job->tile_n;
    attn_sgemm_args t = *w;
    t.m = w->m - i0 < job->tile_m ? w->m - i0 : job->tile_m;
    t.n = w->n - j0 < job->tile_n ? w->n - j0 : job->tile_n;
    t.a = w->a + i0 * w->lda;
    t.b = w->b_transposed ? w->b + j0 * w->ldb : w->b + j0;
    t.c = w->c + i0 * w->ldc + j0;
    t.bias = w->bias ? w->bias + j0 : NULL;
    job->sgemm_block(&t, job->workspace + (int64_t)thread * ATTN_SGEMM_WORKSPACE_FLOATS);
}

/* rows x cols floats at row stride ld span (rows - 1) * ld + cols elements; that, in bytes, must fit
 * int64_t and size_t. */
static int extent_ok(int64_t rows, int64_t cols, int64_t ld) {
    int64_t elems, bytes;
    return attn_mul_ok(rows - 1, ld, &elems) && attn_add_ok(elems, cols, &elems) &&
           attn_mul_ok(elems, (int64_t)sizeof(float), &bytes) && (uint64_t)bytes <= (uint64_t)SIZE_MAX;
}

attn_status attn_matmul(const attn_matmul_params *params) {
    if (!params || !params->a || !params->b || !params->c) return ATTN_ERR_NULL_POINTER;
    const attn_matmul_params p = *params;
    if (p.m < 1 || p.n < 1 || p.k < 1) return ATTN_ERR_INVALID_ARGUMENT;
    if (p.num_threads < 0 || p.num_threads > ATTN_MAX_THREADS) return ATTN_ERR_INVALID_ARGUMENT;
    const int64_t b_rows = p.b_transposed ? p.n : p.k, b_cols = p.b_transposed ? p.k : p.n;
    if (p.lda < p.k || p.ldb < b_cols || p.ldc < p.n) return ATTN_ERR_INVALID_STRIDE;
    if (!extent_ok(p.m, p.k, p.lda) || !extent_ok(b_rows, b_cols, p.ldb) || !extent_ok(p.m, p.n, p.ldc))
        return ATTN_ERR_OVERFLOW;

    /* Halve the longer side of the tile until there are enough tiles for the threads: square-ish
     * tiles pack the least (k x (rows + columns) floats per tile), and tiles stay above the minimum. */
    const int threads = attn_resolve_threads(p.num_threads);
    int64_t tile_m = p.m, tile_n = p.n;
    while (ceil_div(p.m, tile_m) * ceil_div(p.n, tile_n) < (int64_t)threads * MATMUL_TILES_PER_THREAD) {
        const int64_t half_m = half_aligned(tile_m, MATMUL_ROW_ALIGN);
        const int64_t half_n = half_aligned(tile_n, MATMUL_COL_ALIGN);
        const int can_m = half_m < tile_m, can_n = half_n < tile_n;
        if (!can_m && !can_n) break;
        const int split_m = can_m && (!can_n || tile_m >= tile_n);
        const double macs = (double)(split_m ? half_m : tile_m) * (double)(split_m ? tile_n : half_n) * (double)p.k;
        if (macs < MATMUL_MIN_TILE_MACS) break;
        if (split_m) tile_m = half_m;
        else tile_n = half_n;
    }
    const int64_t tiles_n = ceil_div(p.n, tile_n);
    const int64_t n_items = ceil_div(p.m, tile_m) * tiles_n;
    const int used = n_items < threads ? (int)n_items : threads;

    int64_t floats, bytes;
    if (!attn_mul_ok(used, ATTN_SGEMM_WORKSPACE_FLOATS, &floats) ||
        !attn_mul_ok(floats, (int64_t)sizeof(float), &bytes))
        return ATTN_ERR_OVERFLOW;
    float *workspace = attn_alloc(bytes);
    if (!workspace) return ATTN_ERR_OUT_OF_MEMORY;

    matmul_job job = {
        .whole = {p.m, p.n, p.k, p.a, p.lda, p.b, p.ldb, p.b_transposed, p.c, p.ldc, p.bias, p.accumulate},
        .tile_m = tile_m,
        .tile_n = tile_n,
        .tiles_n = tiles_n,
        .sgemm_block = attn_kernels_current()->sgemm_block,
        .workspace = workspace,
    };
    attn_parallel_for(n_items, used, matmul_tile, &job);
    attn_free(workspace);
    return ATTN_OK;
}
