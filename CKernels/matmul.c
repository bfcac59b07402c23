/*
 * matmul.c: attn_matmul, the public matrix multiply. It validates; then a product of few rows
 * (M <= the ISA's sgemm_few_rows_max) is computed straight from B, each thread a share of the
 * columns (sgemm_template.h); any other runs the ISA's packed sgemm the way multithreaded BLAS do: for each KC x NC block of B, all threads first pack a share of it
 * into one shared buffer, then each multiplies its own blocks of rows of A by it (packing those
 * into its own buffer). B is packed once, not once per thread, and rows are dealt out in equal
 * shares. Every element of C is summed in the same order whatever the thread count
 * (sgemm_template.h), so the result does not depend on it. ATTN_MATMUL_BF16_PRODUCTS picks the
 * packed path's form (sgemm.h): bf16 pair words on VDPBF16PS or its model, or A rounded.
 */
#include <stdint.h>

#include "internal.h"
#include "sgemm.h"

/* A thread is not given less than this many multiply-adds (about 7 µs on one AVX2 core): smaller
 * shares cost more in thread hand-off than they save. */
#define MATMUL_MIN_THREAD_MACS 262144.0

typedef struct matmul_job {
    attn_matmul_params whole;     /* validated */
    const attn_kernels *kernels;
    sgemm_form form;              /* packed path: how products are formed (sgemm.h) */
    void (*multiply)(const attn_matmul_params *args, const float *pack_b, int64_t j0, int64_t nc, int64_t p0,
                     int64_t kc, int64_t i0, int64_t mc, float *pack_a, sgemm_form form); /* sgemm_rows for it */
    float *pack_b;                 /* shared: the current KC x NC block of B */
    float *pack_a;                 /* per thread: ATTN_SGEMM_PACK_A_FLOATS each */
    int64_t j0, nc, p0, kc;        /* the current block of B: columns [j0, j0 + nc), depth [p0, p0 + kc) */
    int64_t pack_cols;             /* columns of B each packing item packs (a multiple of NR), or of C
                                    * each few-row item computes (a multiple of sgemm_few_cols) */
    int64_t rows;                  /* rows of A and C per compute item (a multiple of MR, <= MC) */
} matmul_job;

static void few_rows_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const matmul_job *job = ctx;
    const int64_t j0 = item * job->pack_cols, n = job->whole.n;
    job->kernels->sgemm_few_rows(&job->whole, j0, n - j0 < job->pack_cols ? n : j0 + job->pack_cols);
}

static void pack_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const matmul_job *job = ctx;
    const int64_t c0 = item * job->pack_cols;
    const int64_t c1 = c0 + job->pack_cols < job->nc ? c0 + job->pack_cols : job->nc;
    job->kernels->sgemm_pack_b_block(job->pack_b, &job->whole, job->j0, job->p0, job->kc, c0, c1,
                                     job->form == SGEMM_PAIRS);
}

static void rows_task(void *ctx, int64_t item, int thread) {
    const matmul_job *job = ctx;
    const int64_t i0 = item * job->rows, m = job->whole.m;
    job->multiply(&job->whole, job->pack_b, job->j0, job->nc, job->p0, job->kc, i0,
                  m - i0 < job->rows ? m - i0 : job->rows, job->pack_a + (int64_t)thread * ATTN_SGEMM_PACK_A_FLOATS,
                  job->form);
}

/* a_transposed: a holds Aᵀ (K, M); rows [item·TRANSPOSE_ROWS, ...) of A are copied out. */
#define TRANSPOSE_ROWS 64

typedef struct transpose_job {
    const float *at; int64_t ld;   /* Aᵀ (K, M) */
    float *a; int64_t m, k;        /* A (M, K), contiguous */
} transpose_job;

/* In tiles of TRANSPOSE_ROWS depths, so that the rows being written (TRANSPOSE_ROWS of them, one
 * tile wide) stay in L1 while the tile is read: walking the whole depth for each row group would
 * write each line of A one float at a time from far apart. */
static void transpose_task(void *ctx, int64_t item, int thread) {
    (void)thread;
    const transpose_job *job = ctx;
    const int64_t i0 = item * TRANSPOSE_ROWS, i1 = i0 + TRANSPOSE_ROWS < job->m ? i0 + TRANSPOSE_ROWS : job->m;
    const float *restrict at = job->at;
    float *restrict a = job->a;
    const int64_t k = job->k, ld = job->ld;
    for (int64_t p0 = 0; p0 < k; p0 += TRANSPOSE_ROWS) {
        const int64_t p1 = p0 + TRANSPOSE_ROWS < k ? p0 + TRANSPOSE_ROWS : k;
        for (int64_t i = i0; i < i1; i++)
            for (int64_t p = p0; p < p1; p++) a[i * k + p] = at[p * ld + i];
    }
}

static attn_status matmul_check(const attn_matmul_params *p);
static attn_status matmul_run(attn_matmul_params p);

attn_status attn_matmul(const attn_matmul_params *params) {
    attn_matmul_params p;
    const attn_status status = attn_read_matmul_params(&p, params);
    if (status != ATTN_OK) return status;
    if (!p.a_transposed) return matmul_run(p);
    /* The packed path reads Aᵀ as it packs A (the same panels, so the same bits, bf16 products
     * included); the few-rows path reads A in place, so it multiplies a copy of A. */
    if (p.m > attn_kernels_current()->sgemm_few_rows_max) return matmul_run(p);
    /* Validated as the multiply of the copy would be, with Aᵀ's own extent checked here. */
    if (!p.a || !p.b || !p.c) return ATTN_ERR_NULL_POINTER;
    if (p.m < 1 || p.n < 1 || p.k < 1) return ATTN_ERR_INVALID_ARGUMENT;
    if (p.num_threads < 0 || p.num_threads > ATTN_MAX_THREADS) return ATTN_ERR_INVALID_ARGUMENT;
    if (p.lda < p.m) return ATTN_ERR_INVALID_STRIDE;
    int64_t floats, bytes;
    if (!attn_extent_ok(1, &p.k, &p.lda, p.m, NULL) || !attn_mul_ok(p.m, p.k, &floats) ||
        !attn_mul_ok(floats, (int64_t)sizeof(float), &bytes))
        return ATTN_ERR_OVERFLOW;
    /* The multiply's own checks (B, C, bias, types, flags) before the copy is allocated or Aᵀ read,
     * with Aᵀ standing in for the copy (only its pointer is looked at). */
    attn_matmul_params copy = p;
    copy.a_transposed = 0;
    copy.lda = p.k;
    const attn_status valid = matmul_check(&copy);
    if (valid != ATTN_OK) return valid;
    copy.a = NULL;
    float *a = attn_alloc(bytes);
    if (!a) return ATTN_ERR_OUT_OF_MEMORY;
    transpose_job job = {.at = p.a, .ld = p.lda, .a = a, .m = p.m, .k = p.k};
    attn_parallel_for(attn_ceil_div(p.m, TRANSPOSE_ROWS), attn_resolve_threads(p.num_threads), transpose_task, &job);
    copy.a = a;
    const attn_status result = matmul_run(copy);
    attn_free(a);
    return result;
}

/* Everything matmul_run checks before it allocates or reads anything. */
static attn_status matmul_check(const attn_matmul_params *p) {
    if (!p->a || !p->b || !p->c) return ATTN_ERR_NULL_POINTER;
    if (p->m < 1 || p->n < 1 || p->k < 1) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->num_threads < 0 || p->num_threads > ATTN_MAX_THREADS) return ATTN_ERR_INVALID_ARGUMENT;
    if (p->b_dtype != ATTN_DTYPE_F32 && p->b_dtype != ATTN_DTYPE_F16 && p->b_dtype != ATTN_DTYPE_BF16)
        return ATTN_ERR_INVALID_ARGUMENT;
    if ((p->flags & ~(uint64_t)ATTN_MATMUL_BF16_PRODUCTS) ||
        ((p->flags & ATTN_MATMUL_BF16_PRODUCTS) && p->b_dtype != ATTN_DTYPE_BF16))
        return ATTN_ERR_INVALID_ARGUMENT;
    const int64_t b_rows = p->b_transposed ? p->n : p->k, b_cols = p->b_transposed ? p->k : p->n;
    const int64_t a_rows = p->a_transposed ? p->k : p->m, a_cols = p->a_transposed ? p->m : p->k;
    if (p->lda < a_cols || p->ldb < b_cols || p->ldc < p->n) return ATTN_ERR_INVALID_STRIDE;
    if (!attn_extent_ok(1, &a_rows, &p->lda, a_cols, NULL) || !attn_extent_ok(1, &b_rows, &p->ldb, b_cols, NULL) ||
        !attn_extent_ok(1, &p->m, &p->ldc, p->n, NULL))
        return ATTN_ERR_OVERFLOW;
    return ATTN_OK;
}

static attn_status matmul_run(attn_matmul_params p) {
    const attn_status status = matmul_check(&p);
    if (status != ATTN_OK) return status;

    const attn_kernels *kernels = attn_kernels_current();
    const int64_t mr = kernels->sgemm_mr, mc = kernels->sgemm_mc, nr = kernels->sgemm_nr;
    /* Threads: as asked, but none with less than the minimum share. */
    int64_t threads = attn_resolve_threads(p.num_threads);
    const double per_thread = (double)p.m * (double)p.n * (double)p.k / MATMUL_MIN_THREAD_MACS;
    if ((double)threads > per_thread) threads = per_thread < 1.0 ? 1 : (int64_t)per_thread;

    if (p.m <= kernels->sgemm_few_rows_max) {
        /* Few rows: equal shares of the columns, whole blocks of sgemm_few_cols, no workspace. */
        const int64_t few = kernels->sgemm_few_cols;
        if (threads > attn_ceil_div(p.n, few)) threads = attn_ceil_div(p.n, few);
        matmul_job job = {.whole = p, .kernels = kernels};
        job.pack_cols = attn_ceil_div(attn_ceil_div(p.n, threads), few) * few;
        attn_parallel_for(attn_ceil_div(p.n, job.pack_cols), (int)threads, few_rows_task, &job);
        return ATTN_OK;
    }
    /* The packed path: no more threads than MR panels. */
    if (threads > attn_ceil_div(p.m, mr)) threads = attn_ceil_div(p.m, mr);
    /* Row items: as few as blocks of MC rows allow, rounded up to a multiple of the threads, so that
     * each thread gets the same number of rows. */
    int64_t items = attn_ceil_div(p.m, mc);
    items = attn_ceil_div(items, threads) * threads;
    const int64_t rows = attn_ceil_div(attn_ceil_div(p.m, items), mr) * mr;

    int64_t floats, bytes;
    if (!attn_mul_ok(threads, ATTN_SGEMM_PACK_A_FLOATS, &floats) ||
        !attn_add_ok(floats, ATTN_SGEMM_PACK_B_FLOATS, &floats) ||
        !attn_mul_ok(floats, (int64_t)sizeof(float), &bytes))
        return ATTN_ERR_OVERFLOW;
    float *workspace = attn_alloc(bytes);
    if (!workspace) return ATTN_ERR_OUT_OF_MEMORY;

    matmul_job job = {
        .whole = p,
        .kernels = kernels,
        .form = SGEMM_F32,
        .multiply = kernels->sgemm_rows,
        .pack_b = workspace,
        .pack_a = workspace + ATTN_SGEMM_PACK_B_FLOATS,
        .rows = rows,
    };
    if (p.flags & ATTN_MATMUL_BF16_PRODUCTS) {
        /* As attention's tile kernel: pairs on the instruction where the table has it, on its model
         * when asked; otherwise A rounded and the products widened. */
        const attn_bf16_dot mode = attn_bf16_dot_current();
        if (mode == ATTN_BF16_DOT_NATIVE && kernels->sgemm_rows_bf16_native) {
            job.form = SGEMM_PAIRS;
            job.multiply = kernels->sgemm_rows_bf16_native;
        } else {
            job.form = mode == ATTN_BF16_DOT_EMULATED ? SGEMM_PAIRS : SGEMM_ROUNDED_A;
        }
    }
    /* Pair words hold two depth steps: the same bytes of packed A and B cover twice the depth. */
    const int64_t depth = job.form == SGEMM_PAIRS ? 2 * kernels->sgemm_kc : kernels->sgemm_kc;
    for (job.j0 = 0; job.j0 < p.n; job.j0 += kernels->sgemm_nc) {
        job.nc = p.n - job.j0 < kernels->sgemm_nc ? p.n - job.j0 : kernels->sgemm_nc;
        const int64_t panels = attn_ceil_div(job.nc, nr);
        job.pack_cols = attn_ceil_div(panels, threads) * nr;
        for (job.p0 = 0; job.p0 < p.k; job.p0 += depth) {
            job.kc = p.k - job.p0 < depth ? p.k - job.p0 : depth;
            attn_parallel_for(attn_ceil_div(job.nc, job.pack_cols), (int)threads, pack_task, &job);
            attn_parallel_for(attn_ceil_div(p.m, rows), (int)threads, rows_task, &job);
        }
    }
    attn_free(workspace);
    return ATTN_OK;
}
