/*
 * internal.h: what the library's translation units share and users never see: the per-ISA kernel
 * table, the parallel loop, checked size arithmetic and aligned workspace allocation.
 */
#ifndef ATTN_INTERNAL_H
#define ATTN_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "attn.h"
#include "sgemm.h"

/* ---- checked arithmetic: every size product goes through these before any allocation ---- */

/* *r = a * b; 0 on overflow (a, b >= 0). */
static inline int attn_mul_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static inline int attn_add_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_add_overflow(a, b, r);
}

/* a / b rounded up, for a >= 0 and b > 0 (never overflows, unlike (a + b - 1) / b). */
static inline int64_t attn_ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

/* One past the largest element offset of a tensor with `rank` dimensions of counts >= 1 and strides
 * >= 0 around a contiguous innermost run of `inner` elements of elem_size bytes, into *extent (when
 * not NULL); 0 when that, or its size in bytes, does not fit int64_t and size_t (the kernels form
 * byte addresses). A matrix of rows x cols at row stride ld is rank 1: count {rows}, stride {ld},
 * inner cols. */
static inline int attn_extent_bytes_ok(int rank, const int64_t *count, const int64_t *stride, int64_t inner,
                                       int64_t elem_size, int64_t *extent) {
    int64_t e = inner, bytes;
    for (int d = 0; d < rank; d++) {
        int64_t span;
        if (!attn_mul_ok(count[d] - 1, stride[d], &span) || !attn_add_ok(e, span, &e)) return 0;
    }
    if (!attn_mul_ok(e, elem_size, &bytes) || (uint64_t)bytes > (uint64_t)SIZE_MAX) return 0;
    if (extent) *extent = e;
    return 1;
}

/* attn_extent_bytes_ok for floats. */
static inline int attn_extent_ok(int rank, const int64_t *count, const int64_t *stride, int64_t inner,
                                 int64_t *extent) {
    return attn_extent_bytes_ok(rank, count, stride, inner, (int64_t)sizeof(float), extent);
}

/* Rows of `inner` elements at {count, stride} (rank <= 4) never share an element: ordered by stride,
 * each dimension must step past everything the smaller ones span. (Sufficient, and exact for every
 * layout made by transposing a contiguous tensor.) Call after attn_extent_ok accepted the same. */
static inline int attn_rows_disjoint(int rank, const int64_t *count, const int64_t *stride, int64_t inner) {
    int used[4] = {0};
    int64_t span = inner;
    for (int step = 0; step < rank; step++) {
        int best = -1;
        for (int d = 0; d < rank; d++)
            if (!used[d] && count[d] > 1 && (best < 0 || stride[d] < stride[best])) best = d;
        if (best < 0) break;
        used[best] = 1;
        if (stride[best] < span) return 0;
        span = (count[best] - 1) * stride[best] + span; /* no overflow: the extent was checked */
    }
    return 1;
}

/* ---- the parameter structs (params.c) ---- */

/* *out = *in read as in->struct_size says (attn.h): ATTN_ERR_NULL_POINTER for in NULL,
 * ATTN_ERR_INVALID_ARGUMENT for a size that is no released layout's; fields the caller's layout
 * lacks take their defaults. */
attn_status attn_read_params(attn_params *out, const attn_params *in);
attn_status attn_read_matmul_params(attn_matmul_params *out, const attn_matmul_params *in);
attn_status attn_read_sum_columns_params(attn_sum_columns_params *out, const attn_sum_columns_params *in);
attn_status attn_read_layer_norm_backward_params(attn_layer_norm_backward_params *out,
                                                 const attn_layer_norm_backward_params *in);
attn_status attn_read_activate_backward_params(attn_activate_backward_params *out,
                                               const attn_activate_backward_params *in);
attn_status attn_read_gated_activate_backward_params(attn_gated_activate_backward_params *out,
                                                     const attn_gated_activate_backward_params *in);
attn_status attn_read_softmax_rows_backward_params(attn_softmax_rows_backward_params *out,
                                                   const attn_softmax_rows_backward_params *in);
attn_status attn_read_mean_rows_backward_params(attn_mean_rows_backward_params *out,
                                                const attn_mean_rows_backward_params *in);
attn_status attn_read_cross_entropy_params(attn_cross_entropy_params *out, const attn_cross_entropy_params *in);
attn_status attn_read_optimizer_step_params(attn_optimizer_step_params *out, const attn_optimizer_step_params *in);
attn_status attn_read_rotary_params(attn_rotary_params *out, const attn_rotary_params *in);
attn_status attn_read_layer_norm_params(attn_layer_norm_params *out, const attn_layer_norm_params *in);
attn_status attn_read_activate_params(attn_activate_params *out, const attn_activate_params *in);
attn_status attn_read_gated_activate_params(attn_gated_activate_params *out, const attn_gated_activate_params *in);
attn_status attn_read_softmax_rows_params(attn_softmax_rows_params *out, const attn_softmax_rows_params *in);
attn_status attn_read_mean_rows_params(attn_mean_rows_params *out, const attn_mean_rows_params *in);
attn_status attn_read_reduce_rows_params(attn_reduce_rows_params *out, const attn_reduce_rows_params *in);
attn_status attn_read_backward_params(attn_backward_params *out, const attn_backward_params *in);

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

/* ---- the dense kernels' work items (dense.c, dense_backward.c) ---- */


/* Items hold at least this many floats (from a few microseconds of work for relu to tens for gelu):
 * below that another thread costs more to start than it saves, so small calls form one item and run
 * on the caller's thread.
 * A multiple of every ISA's vector width, so activation ranges split on whole vectors. */
#define DENSE_ITEM_FLOATS 16384

static inline int attn_threads_ok(int num_threads) { return num_threads >= 0 && num_threads <= ATTN_MAX_THREADS; }

static inline int attn_activation_ok(attn_activation kind) {
    return (int)kind >= (int)ATTN_ACTIVATION_IDENTITY && (int)kind <= (int)ATTN_ACTIVATION_TANH;
}

/* Rows per item for rows of n floats (the items for `rows` rows: attn_ceil_div(rows, that)). */
static inline int64_t attn_rows_per_item(int64_t n) { return n >= DENSE_ITEM_FLOATS ? 1 : DENSE_ITEM_FLOATS / n; }

/* The rows [*r0, *r1) of work item `item` when items hold per_item of `rows` rows (the last fewer). */
static inline void attn_item_rows(int64_t item, int64_t per_item, int64_t rows, int64_t *r0, int64_t *r1) {
    *r0 = item * per_item;
    *r1 = rows - *r0 < per_item ? rows : *r0 + per_item;
}

/* ---- the per-ISA kernel table ---- */

typedef struct attn_problem attn_problem; /* problem.h */
typedef struct attn_backward_plan attn_backward_plan; /* backward.h */

/* The scalars of one optimiser step, in float as the element loops use them (optimizer.c). */
typedef struct attn_optimizer_scalars {
    float lr, weight_decay, momentum, one_minus_dampening, decay; /* decay: AdamW's 1 - lr·wd */
    float beta1_complement, beta2, beta2_complement, step_size, bias2_sqrt, eps;
} attn_optimizer_scalars;

typedef struct attn_kernels {
    attn_isa isa;
    int vector_floats;       /* floats per vector on this path */
    /* Fused attention: a work item is up to fused_max_tiles micro-tiles of fused_tile_queries query
     * rows each; the per-thread workspace for items of `tiles` micro-tiles; one item. */
    int64_t fused_tile_queries, fused_max_tiles;
    int64_t (*fused_workspace_floats)(const attn_problem *pr, int64_t tiles);
    void (*fused_item)(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles, float *workspace);
    /* The same with q, k and v all bf16 and both products on bf16 pairs (fused_tile_template.h): with
     * the portable model of VDPBF16PS (every table), and with the instruction itself (the AVX-512
     * table of a build that has it, else NULL). attn_bf16_dot chooses; same workspace and tiling. */
    void (*fused_item_bf16_model)(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles,
                                  float *workspace);
    void (*fused_item_bf16_native)(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles,
                                   float *workspace);
    /* Fused attention for few query rows (decoding): used when len_q <= fused_row_max_len_q, which
     * is where the tile kernel would leave most vector lanes empty. One query row against keys
     * [j0, j1), leaving {max, sum, unnormalised output} in partial for a log-sum-exp merge. */
    int64_t fused_row_max_len_q;
    int64_t (*fused_row_workspace_floats)(const attn_problem *pr);
    void (*fused_row_item)(const attn_problem *pr, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t j1,
                           float *workspace, float *partial);
    /* Matrix multiply (see sgemm.h and sgemm_template.h): single-threaded whole; or in steps, with
     * the blocking (MR rows per micro-panel, NR columns per panel, MC x KC blocks of A, KC x NC of B). */
    void (*sgemm_block)(const attn_matmul_params *args, float *workspace);
    int64_t sgemm_mr, sgemm_nr, sgemm_mc, sgemm_kc, sgemm_nc;
    void (*sgemm_pack_b_block)(float *pack_b, const attn_matmul_params *args, int64_t j0, int64_t p0, int64_t kc,
                               int64_t c0, int64_t c1, int pairs);
    void (*sgemm_rows)(const attn_matmul_params *args, const float *pack_b, int64_t j0, int64_t nc, int64_t p0,
                       int64_t kc, int64_t i0, int64_t mc, float *pack_a, sgemm_form form);
    /* sgemm_rows for SGEMM_PAIRS on VDPBF16PS itself: as fused_item_bf16_native, NULL but in the
     * AVX-512 table of a build that has the instruction. */
    void (*sgemm_rows_bf16_native)(const attn_matmul_params *args, const float *pack_b, int64_t j0, int64_t nc,
                                   int64_t p0, int64_t kc, int64_t i0, int64_t mc, float *pack_a, sgemm_form form);
    /* Matrix multiply of at most sgemm_few_rows_max rows straight from B, no packing: columns
     * [j0, j1) of C, j0 a multiple of sgemm_few_cols. */
    int64_t sgemm_few_rows_max, sgemm_few_cols;
    void (*sgemm_few_rows)(const attn_matmul_params *args, int64_t j0, int64_t j1);
    /* out = scale * softmax(x) + offset over one row (out may equal x); reports the row's maximum and
     * sum of exponentials (softmax_template.h). */
    void (*softmax_row)(float *out, const float *x, int64_t n, float scale, float offset, float *row_max,
                        float *row_sum);
    /* Dense kernels (dense_template.h), one row or contiguous range each: layer norm of one row (out
     * may equal x; its mean and rstd into *mean and *rstd when not NULL), an activation over a
     * range, times a second range unless that is NULL (out may equal x), a row's sum in double, and
     * the index of a row's first largest element of sign * x (sign 1: max, -1: min), or of its first
     * NaN. */
    void (*layer_norm_row)(float *out, const float *x, int64_t n, const float *weight, const float *bias, float eps,
                           attn_variance variance, float *mean, float *rstd);
    void (*activate)(float *out, const float *x, const float *times, int64_t count, attn_activation kind);
    double (*sum_row)(const float *x, int64_t n);
    int64_t (*extremum_row)(const float *x, int64_t n, float sign);
    /* n elements from type st at src to type dt at dst (simd_template.h's vconvert_row). */
    void (*convert_row)(void *dst, attn_dtype dt, const void *src, attn_dtype st, int64_t n);
    /* The fused attention backward (backward.h, backward_tile_template.h): the per-thread workspace,
     * and one work item, the key blocks of one stripe of (b, K/V head hk). */
    int64_t (*backward_workspace_floats)(const attn_problem *pr);
    void (*backward_stripe)(const attn_backward_plan *plan, int64_t b, int64_t hk, int64_t stripe, float *workspace);
    /* One optimiser step over elements [i0, i1) (optimizer_template.h), with the step's scalars. */
    void (*optimizer_range)(const attn_optimizer_step_params *p, const attn_optimizer_scalars *s, int64_t i0, int64_t i1);
    /* The non-finite elements of x[0..n). */
    int64_t (*count_nonfinite)(const float *x, int64_t n);
} attn_kernels;

/* The table in use (first call detects the CPU and reads ATTN_ISA). */
const attn_kernels *attn_kernels_current(void);

/* How bf16 products are formed now (first call detects the CPU and reads ATTN_BF16_DOT). */
attn_bf16_dot attn_bf16_dot_current(void);

extern const attn_kernels attn_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
#define ATTN_HAVE_X86_PATHS 1
extern const attn_kernels attn_kernels_avx2;
extern const attn_kernels attn_kernels_avx512;
#endif

/* VDPBF16PS (AVX512_BF16) is compiled where the compiler has its intrinsic (GCC 10, clang 9, Apple
 * clang 12 on) and the AVX-512 kernels are real (not the AVX2 stand-in of ATTN_EMULATE_AVX512):
 * the AVX-512 tile kernel and packed matrix multiply on bf16 pairs, kernels_avx512bf16.c. */
#if defined(ATTN_HAVE_X86_PATHS) && !defined(ATTN_EMULATE_AVX512) && \
    ((defined(__clang__) && __clang_major__ >= (defined(__apple_build_version__) ? 12 : 9)) || \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define ATTN_HAVE_BF16_DOT 1
void attn_fused_item_avx512_bf16_native(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles,
                                        float *workspace);
void attn_sgemm_rows_avx512_bf16_native(const attn_matmul_params *args, const float *pack_b, int64_t j0, int64_t nc,
                                        int64_t p0, int64_t kc, int64_t i0, int64_t mc, float *pack_a, sgemm_form form);
#endif

#endif /* ATTN_INTERNAL_H */
