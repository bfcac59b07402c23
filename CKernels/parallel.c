/*
 * parallel.c: the one parallel loop every kernel uses. With OpenMP it is a dynamic-schedule loop;
 * without OpenMP (macOS's Apple clang, or a build without -fopenmp) the same contract is kept with
 * POSIX threads pulling items from an atomic counter, so every build runs in parallel.
 *
 * Nested calls (a kernel called from inside a parallel region, e.g. from a user's OpenMP loop or
 * from this library's own workers) run serially on the calling thread instead of multiplying the
 * thread count.
 */
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#ifdef _OPENMP
/* The toolchain's clang ships no omp.h, so the few runtime functions used are declared here. */
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_in_parallel(void);
#else
#include <pthread.h>
#endif

static int global_threads; /* 0: default */

attn_status attn_set_num_threads(int num_threads) {
    if (num_threads < 0 || num_threads > ATTN_MAX_THREADS) return ATTN_ERR_INVALID_ARGUMENT;
    __atomic_store_n(&global_threads, num_threads, __ATOMIC_RELAXED);
    return ATTN_OK;
}

static int default_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#endif
}

int attn_get_num_threads(void) {
    int n = __atomic_load_n(&global_threads, __ATOMIC_RELAXED);
    if (n <= 0) n = default_threads();
    return n < ATTN_MAX_THREADS ? n : ATTN_MAX_THREADS;
}

int attn_resolve_threads(int requested) {
    return requested > 0 ? requested : attn_get_num_threads();
}

/* The work-pulling loop both back ends run on each thread: items are claimed from one atomic
 * counter, which balances uneven items (causal attention) without a scheduler. OpenMP's own
 * dynamic schedule is not used because newer clang emits runtime calls (__kmpc_dispatch_deinit)
 * that the libomp of current distributions lacks. */
typedef struct pool_job {
    attn_task_fn fn;
    void *ctx;
    int64_t n_items;
    int64_t next; /* atomic */
} pool_job;

static void run_items(pool_job *job, int thread) {
    for (;;) {
        int64_t item = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (item >= job->n_items) break;
        job->fn(job->ctx, item, thread);
    }
}

#ifdef _OPENMP

void attn_parallel_for(int64_t n_items, int num_threads, attn_task_fn fn, void *ctx) {
    if (num_threads > n_items) num_threads = (int)n_items;
    if (num_threads <= 1 || omp_in_parallel()) {
        for (int64_t item = 0; item < n_items; item++) fn(ctx, item, 0);
        return;
    }
    pool_job job = {fn, ctx, n_items, 0};
#pragma omp parallel num_threads(num_threads)
    run_items(&job, omp_get_thread_num());
}

#else

static _Thread_local int inside_worker;

typedef struct pool_worker {
    pool_job *job;
    int thread;
} pool_worker;

static void *worker_main(void *arg) {
    pool_worker *w = arg;
    inside_worker = 1;
    run_items(w->job, w->thread);
    return NULL;
}

void attn_parallel_for(int64_t n_items, int num_threads, attn_task_fn fn, void *ctx) {
    if (num_threads > n_items) num_threads = (int)n_items;
    if (num_threads <= 1 || inside_worker) {
        for (int64_t item = 0; item < n_items; item++) fn(ctx, item, 0);
        return;
    }
    pool_job job = {fn, ctx, n_items, 0};
    pthread_t threads[ATTN_MAX_THREADS];
    pool_worker workers[ATTN_MAX_THREADS];
    int started = 0;
    for (int t = 1; t < num_threads; t++) {
        workers[t] = (pool_worker){&job, t};
        if (pthread_create(&threads[t], NULL, worker_main, &workers[t]) != 0) break;
        started = t;
    }
    /* If a thread could not be created the items still all run: the caller and the threads that
     * did start drain the counter between them. The caller marks itself as a worker meanwhile, so
     * kernels called from inside the items run serially. */
    inside_worker = 1;
    run_items(&job, 0);
    inside_worker = 0;
    for (int t = 1; t <= started; t++) pthread_join(threads[t], NULL);
}

#endif
