/*
 * parallel.c: the one parallel loop every kernel uses. With OpenMP it is a dynamic-schedule loop;
 * without OpenMP (macOS's Apple clang, or a build without -fopenmp) the same contract is kept by a
 * persistent pool of POSIX threads pulling items from an atomic counter, so every build runs in
 * parallel.
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
#include <time.h>
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

/*
 * The pool: workers are created when a call first needs them and then kept between calls (creating
 * threads on every call cost tens of microseconds each, more than a short kernel call takes). A
 * call with T threads runs items on the caller (thread 0) and on workers 1 .. T-1, creating the ones
 * that do not exist yet; the pool only grows, and a later call with fewer threads leaves the extra
 * workers idle. When a worker cannot be created, the call runs on the caller and the workers that
 * exist.
 *
 * Between calls a worker first spins on the job counter for POOL_SPIN_NS, then parks on a
 * condition variable; the caller likewise spins for its workers to finish before it sleeps. A
 * decoder makes hundreds of short calls per token, and waking through the condition variable on
 * both sides cost each tens of microseconds: on 2 threads (Zen 4) a one-row product with an
 * 896 x 896 weight took 90 us (median) against 32 with OpenMP, and 33 with the spin; 8 rows by a
 * 384 x 1536 weight 99 us, 57 and 52. OpenMP runtimes do the same (GOMP_SPINCOUNT, KMP_BLOCKTIME).
 *
 * One call uses the pool at a time: calls from several caller threads queue on pool.call, each
 * then running with all its threads, so concurrent callers never oversubscribe the machine. Calls
 * from inside an item (a kernel called by a kernel) run serially on that thread, as with OpenMP.
 * fork() waits for a running call to finish, and the child starts with no workers.
 */

/* How long an idle worker, or a caller waiting for its workers, spins before it sleeps. */
#ifndef POOL_SPIN_NS
#define POOL_SPIN_NS 100000
#endif

static _Thread_local int inside_worker;

static struct {
    pthread_mutex_t call;   /* held by the caller for the whole of a call that uses the pool */
    pthread_mutex_t lock;   /* guards the fields below; generation and running are also read
                             * without it (atomically) by the spinning side */
    pthread_cond_t wake;    /* generation moved: a new job */
    pthread_cond_t done;    /* the last worker left the current job */
    int64_t generation;     /* jobs published so far */
    pool_job *job;          /* the current job */
    int job_threads;        /* its thread count, caller included */
    int64_t running;        /* workers of the current job that have not finished it */
    int parked;             /* workers asleep on wake */
    int caller_parked;      /* the caller is asleep on done */
    int workers;            /* workers created (only the caller holding `call` reads or writes it) */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          0, NULL, 0, 0, 0, 0, 0};

/* The generation each worker was created at: it takes part in later jobs only (a worker created for
 * a call must not read the job's generation after the call published it, and so miss the job). */
static int64_t start_generation[ATTN_MAX_THREADS];

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spins for at most POOL_SPIN_NS until (*value == target) == equal; returns whether that came. */
static int spin_until(const int64_t *value, int64_t target, int equal) {
    const int64_t deadline = now_ns() + POOL_SPIN_NS;
    for (;;) {
        for (int k = 0; k < 64; k++) {
            if ((__atomic_load_n(value, __ATOMIC_ACQUIRE) == target) == equal) return 1;
            spin_pause();
        }
        if (now_ns() > deadline) return 0;
    }
}

static void *worker_main(void *arg) {
    const int thread = (int)(intptr_t)arg;
    inside_worker = 1;
    pthread_mutex_lock(&pool.lock);
    int64_t seen = start_generation[thread];
    for (;;) {
        if (__atomic_load_n(&pool.generation, __ATOMIC_RELAXED) == seen) {
            pthread_mutex_unlock(&pool.lock);
            spin_until(&pool.generation, seen, 0);
            pthread_mutex_lock(&pool.lock);
            while (__atomic_load_n(&pool.generation, __ATOMIC_RELAXED) == seen) {
                pool.parked++;
                pthread_cond_wait(&pool.wake, &pool.lock);
                pool.parked--;
            }
        }
        seen = __atomic_load_n(&pool.generation, __ATOMIC_RELAXED);
        if (thread >= pool.job_threads) continue; /* a smaller call: stay idle */
        pool_job *job = pool.job;
        pthread_mutex_unlock(&pool.lock);
        run_items(job, thread);
        pthread_mutex_lock(&pool.lock);
        if (__atomic_sub_fetch(&pool.running, 1, __ATOMIC_RELEASE) == 0 && pool.caller_parked)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void pool_fork_prepare(void) {
    pthread_mutex_lock(&pool.call);
    pthread_mutex_lock(&pool.lock);
}
static void pool_fork_parent(void) {
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.call);
}
/* The child has only the thread that forked: the workers are gone, and the next call recreates them. */
static void pool_fork_child(void) {
    pool.workers = 0;
    pool.parked = 0;
    pool.caller_parked = 0;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.call);
}

/* Creates workers until there are `want`, or until creation fails. Called holding pool.call. */
static void pool_grow(int want) {
    static int atfork_registered;
    if (!atfork_registered) {
        atfork_registered = pthread_atfork(pool_fork_prepare, pool_fork_parent, pool_fork_child) == 0;
        if (!atfork_registered) return; /* without the handlers a forked child would wait forever */
    }
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.workers < want) {
        const int thread = pool.workers + 1;
        start_generation[thread] = __atomic_load_n(&pool.generation, __ATOMIC_RELAXED);
        pthread_t t;
        if (pthread_create(&t, &attr, worker_main, (void *)(intptr_t)thread) != 0) break;
        pool.workers++;
    }
    pthread_attr_destroy(&attr);
}

void attn_parallel_for(int64_t n_items, int num_threads, attn_task_fn fn, void *ctx) {
    if (num_threads > n_items) num_threads = (int)n_items;
    if (num_threads <= 1 || inside_worker) {
        for (int64_t item = 0; item < n_items; item++) fn(ctx, item, 0);
        return;
    }
    pool_job job = {fn, ctx, n_items, 0};
    pthread_mutex_lock(&pool.call);
    if (pool.workers < num_threads - 1) pool_grow(num_threads - 1);
    const int threads = pool.workers + 1 < num_threads ? pool.workers + 1 : num_threads;
    pthread_mutex_lock(&pool.lock);
    pool.job = &job;
    pool.job_threads = threads;
    __atomic_store_n(&pool.running, threads - 1, __ATOMIC_RELAXED);
    /* Release: a worker that sees the new generation while spinning sees the job (it then reads
     * the fields under the lock anyway). */
    __atomic_store_n(&pool.generation, pool.generation + 1, __ATOMIC_RELEASE);
    if (pool.parked) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    /* The caller is thread 0; meanwhile it counts as a worker, so kernels called from inside its
     * items run serially. */
    inside_worker = 1;
    run_items(&job, 0);
    inside_worker = 0;
    /* job lives on this stack: wait until every worker has left it (acquire: their items' writes
     * are then visible). */
    if (!spin_until(&pool.running, 0, 1)) {
        pthread_mutex_lock(&pool.lock);
        while (__atomic_load_n(&pool.running, __ATOMIC_ACQUIRE) > 0) {
            pool.caller_parked = 1;
            pthread_cond_wait(&pool.done, &pool.lock);
        }
        pool.caller_parked = 0;
        pthread_mutex_unlock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.call);
}

#endif
