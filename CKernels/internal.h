/*
 * internal.h: what the library's translation units share and users never see: the per-ISA kernel
 * table, the parallel loop, checked size arithmetic and aligned workspace allocation.
 */
#ifndef ATTN_INTERNAL_H
#define ATTN_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "attn.h"

/* ---- checked arithmetic: every size product goes through these before any allocation ---- */

/* *r = a * b; 0 on overflow (a, b >= 0). */
static inline int attn_mul_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static inline int attn_add_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_add_overflow(a, b, r);
}

/* ---- workspace: 64-byte aligned, NULL on failure or when bytes does not fit ---- */
void *attn_alloc(int64_t bytes);
void attn_free(void *p);

/* ---- threads ---- */

/* The thread count a call runs with: requested if > 0, else the global setting. */
int attn_resolve_threads(int requested);

/* Runs fn(ctx, item, thread) for item in [0, n_items) on up to num_threads threads, handing items
 * out dynamically in order (so put the heaviest items first). thread is in [0, num_threads) and
 * identifies per-thread workspace. Called from inside a parallel region it runs serially on the
 * caller's thread (thread 0 of that nest), never oversubscribing the machine. */
typedef void (*attn_task_fn)(void *ctx, int64_t item, int thread);
void attn_parallel_for(int64_t n_items, int num_threads, attn_task_fn fn, void *ctx);

/* ---- the per-ISA kernel table ---- */

/* A validated attention problem with its derived quantities, shared by the fused and unfused paths. */
typedef struct attn_problem {
    attn_params p;          /* with scale resolved */
    int64_t group;          /* heads_q / heads_kv */
    int64_t causal_off;     /* added to i to get the last visible key: 0 or Lk - Lq */
    int64_t window_off;     /* added to i to get the aligned position for the window */
    int has_causal, has_window_left, has_window_right;
    /* The windows clamped to Lq + Lk (a wider window hides nothing), so i + offset +/- window
     * cannot overflow. */
    int64_t window_left, window_right;
    uint32_t dropout_threshold;
    float dropout_scale;    /* 1 / (1 - p) */
} attn_problem;

/* Validates params and derives the problem; the single gate both attention paths go through. */
attn_status attn_problem_init(attn_problem *pr, const attn_params *params);

/* Writes row (b, h, i) of a query with no visible key, as params->masked_rows says. */
void attn_masked_row_fill(const attn_problem *pr, int64_t b, int64_t h, int64_t i, float *out_row);

/* Visible key range [lo, hi) of query row i from causal, window and key length (mask and bias come
 * on top, element by element). lo >= hi means no visible key from these three. */
static inline void attn_row_range(const attn_problem *pr, int64_t b, int64_t i, int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = pr->p.len_k;
    if (pr->p.key_len && pr->p.key_len[b] < h) h = pr->p.key_len[b];
    if (pr->has_causal && i + pr->causal_off + 1 < h) h = i + pr->causal_off + 1;
    if (pr->has_window_right && i + pr->window_off + pr->window_right + 1 < h)
        h = i + pr->window_off + pr->window_right + 1;
    if (pr->has_window_left && i + pr->window_off - pr->window_left > l)
        l = i + pr->window_off - pr->window_left;
    *lo = l;
    *hi = h;
}

typedef struct attn_fused_plan attn_fused_plan;
typedef struct attn_sgemm_args attn_sgemm_args;

typedef struct attn_kernels {
    attn_isa isa;
    int vector_floats;       /* floats per vector on this path */
    /* Fused attention: a work item is up to fused_max_tiles micro-tiles of fused_tile_queries query
     * rows each; the per-thread workspace for items of `tiles` micro-tiles; one item. */
    int64_t fused_tile_queries, fused_max_tiles;
    int64_t (*fused_workspace_floats)(const attn_problem *pr, int64_t tiles);
    void (*fused_item)(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles, float *workspace);
    /* Fused attention for few query rows (decoding): used when len_q <= fused_row_max_len_q, which
     * is where the tile kernel would leave most vector lanes empty. One query row against keys
     * [j0, j1), leaving {max, sum, unnormalised output} in partial for a log-sum-exp merge. */
    int64_t fused_row_max_len_q;
    int64_t (*fused_row_workspace_floats)(const attn_problem *pr);
    void (*fused_row_item)(const attn_problem *pr, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t j1,
                           float *workspace, float *partial);
    /* Matrix multiply (see sgemm.h and sgemm_kernel.h): single-threaded whole; or in steps, with
     * the blocking (MR rows per micro-panel, NR columns per panel, MC x KC blocks of A, KC x NC of B). */
    void (*sgemm_block)(const attn_sgemm_args *args, float *workspace);
    int64_t sgemm_mr, sgemm_nr, sgemm_mc, sgemm_kc, sgemm_nc;
    void (*sgemm_pack_b_block)(float *pack_b, const attn_sgemm_args *args, int64_t j0, int64_t p0, int64_t kc,
                               int64_t c0, int64_t c1);
    void (*sgemm_rows)(const attn_sgemm_args *args, const float *pack_b, int64_t j0, int64_t nc, int64_t p0,
                       int64_t kc, int64_t i0, int64_t mc, float *pack_a);
    /* In-place softmax of one row; reports the row's maximum and sum of exponentials. */
    void (*softmax_row)(float *x, int64_t n, float *row_max, float *row_sum);
    /* Dense kernels (dense_kernel.h), one row or contiguous range each: layer norm of one row (out
     * may equal x), an activation over a range (out may equal x), and a row's sum in double. */
    void (*layer_norm_row)(float *out, const float *x, int64_t n, const float *weight, const float *bias, float eps,
                           attn_variance variance);
    void (*activate)(float *out, const float *x, int64_t count, attn_activation kind);
    double (*sum_row)(const float *x, int64_t n);
} attn_kernels;

/* The table in use (first call detects the CPU and reads ATTN_ISA). */
const attn_kernels *attn_kernels_current(void);

extern const attn_kernels attn_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
#define ATTN_HAVE_X86_PATHS 1
extern const attn_kernels attn_kernels_avx2;
extern const attn_kernels attn_kernels_avx512;
#endif

#endif /* ATTN_INTERNAL_H */
