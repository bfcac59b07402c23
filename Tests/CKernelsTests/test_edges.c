/*
 * test_edges.c: the reliability edges of libattn (docs/RELIABILITY.md has the table this prints).
 *
 *   1. Allocation failure and overflow, each in a child process whose address space is limited
 *      with setrlimit(RLIMIT_AS) (what `ulimit -v` does): every allocating entry point reports
 *      ATTN_ERR_OUT_OF_MEMORY and writes nothing; sizes whose products overflow are rejected with
 *      ATTN_ERR_OVERFLOW before anything is allocated.
 *   2. Error statuses the other suites leave out: attn_forward_workspace and
 *      attn_forward_unfused_workspace (every status, and *bytes untouched on error).
 *   3. Threads: the thread count each call resolves to (per call, global, default), the same
 *      problems from 8 threads at once (bitwise equal to sequential calls), back-to-back calls
 *      cycling through thread counts (the pthread pool's idle workers rejoining), calls from inside
 *      an OpenMP parallel region (they run serially on the calling thread and give the same result).
 *   4. Numerical edges against a double-precision reference, on both paths and every instruction
 *      set this CPU has: logits of magnitude 1e4, all-equal scores, -inf and -FLT_MAX biases,
 *      scores that overflow float, NaN and +-inf in one row of Q, K or V (which outputs they reach,
 *      and that they reach no others), fully masked rows by every mechanism under every policy,
 *      D = 1 and D = 512, denormal inputs (with and without FTZ/DAZ, timed: a printed figure,
 *      not an assertion), and one query against 1,000,000 keys with bounded workspace and memory.
 *
 * Build and run (from the package root):
 *   cc -O2 -fopenmp -ICKernels/include Tests/CKernelsTests/test_edges.c build/libattn.a -lm -lpthread && ./a.out
 * The last line is "N passed, N failed"; the exit code is non-zero when anything failed.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define EDGES_X86 1
#endif

#include "attn.h"
#include "test_util.h"

/* Query rows that take the tile kernel on every ISA: more than the row kernel's limit, which is half
 * a micro-tile of 3 vectors (6, 12 or 24 rows for 4-, 8- and 16-float vectors). */
#define TILE_KERNEL_LQ 30

/* Floats per vector of the ISA in use. */
static int64_t attn_vector_floats_for_test(void) {
    const attn_isa isa = attn_get_isa();
    return isa == ATTN_ISA_AVX512 ? 16 : isa == ATTN_ISA_AVX2 ? 8 : 4;
}

#ifdef _OPENMP
/* The toolchain's clang ships no omp.h (see CKernels/parallel.c). */
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_in_parallel(void);
#endif

/* Sanitizers reserve terabytes of address space for their shadow memory, so RLIMIT_AS cannot be used
 * under them; their allocators return NULL (with allocator_may_return_null=1) for requests above
 * their maximum allocation size instead, which the huge-workspace test relies on. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGES_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define EDGES_TSAN 1
#endif
#if __has_feature(memory_sanitizer)
#define EDGES_MSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(EDGES_ASAN)
#define EDGES_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(EDGES_TSAN)
#define EDGES_TSAN 1
#endif
#if defined(EDGES_ASAN) || defined(EDGES_TSAN) || defined(EDGES_MSAN)
#define EDGES_SANITIZED 1
#endif
/* Address-space limits (RLIMIT_AS, read back through /proc) are used on Linux without a sanitizer,
 * and not under qemu-user (make test-arm64 defines EDGES_NO_RLIMIT), which does not apply them to
 * the guest's own mappings. */
#if defined(__linux__) && !defined(EDGES_SANITIZED) && !defined(EDGES_NO_RLIMIT)
#define EDGES_RLIMIT 1
#endif
#ifdef EDGES_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif
#ifdef EDGES_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "allocator_may_return_null=1"; }
#endif

#define SEED 0xED6E5ull
#define NISA 4


static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        printf("out of memory allocating %zu bytes for the test itself\n", n);
        exit(2);
    }
    return p;
}

static const uint32_t SENTINEL_BITS = 0x7FC5A5A5u; /* a quiet NaN with a recognisable payload */
static void fill_sentinel(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) memcpy(&x[i], &SENTINEL_BITS, 4);
}
static int all_sentinel(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&x[i], &SENTINEL_BITS, 4) != 0) return 0;
    return 1;
}
static int any_sentinel(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&x[i], &SENTINEL_BITS, 4) == 0) return 1;
    return 0;
}

static double ms_since(double t0) { return (tu_now() - t0) * 1e3; }

/* Peak resident set of this process, in bytes. */
static int64_t max_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)ru.ru_maxrss * 1024;
}

/* ============================================================================================== */
/* Problems in the contiguous (B, H, L, D) layout, and their double-precision reference            */

typedef struct prob {
    int64_t B, Hq, Hkv, Lq, Lk, Dqk, Dv;
    float *q, *k, *v;     /* contiguous (B, H, L, D) */
    uint8_t *mask;        /* (B, Hq, Lq, Lk) contiguous, or NULL */
    float *bias;          /* (B, Hq, Lq, Lk) contiguous, or NULL */
    int64_t *key_len;     /* (B,) or NULL */
    attn_causal causal;
    int64_t wl, wr;
    attn_masked_rows policy;
    float scale;          /* 0: 1/sqrt(Dqk) */
} prob;

static prob prob_new(int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t Dqk, int64_t Dv) {
    prob P;
    memset(&P, 0, sizeof P);
    P.B = B; P.Hq = Hq; P.Hkv = Hkv; P.Lq = Lq; P.Lk = Lk; P.Dqk = Dqk; P.Dv = Dv;
    P.q = xmalloc(sizeof(float) * (size_t)(B * Hq * Lq * Dqk));
    P.k = xmalloc(sizeof(float) * (size_t)(B * Hkv * Lk * Dqk));
    P.v = xmalloc(sizeof(float) * (size_t)(B * Hkv * Lk * Dv));
    P.wl = P.wr = -1;
    return P;
}

static int64_t n_q(const prob *P) { return P->B * P->Hq * P->Lq * P->Dqk; }
static int64_t n_k(const prob *P) { return P->B * P->Hkv * P->Lk * P->Dqk; }
static int64_t n_v(const prob *P) { return P->B * P->Hkv * P->Lk * P->Dv; }
static int64_t n_out(const prob *P) { return P->B * P->Hq * P->Lq * P->Dv; }
static int64_t n_rows(const prob *P) { return P->B * P->Hq * P->Lq; }
static int64_t n_scores(const prob *P) { return n_rows(P) * P->Lk; }

static void prob_add_mask(prob *P, uint8_t fill) {
    P->mask = xmalloc((size_t)n_scores(P));
    memset(P->mask, fill, (size_t)n_scores(P));
}
static void prob_add_bias(prob *P, float fill) {
    P->bias = xmalloc(sizeof(float) * (size_t)n_scores(P));
    for (int64_t i = 0; i < n_scores(P); i++) P->bias[i] = fill;
}
static void prob_free(prob *P) {
    free(P->q); free(P->k); free(P->v); free(P->mask); free(P->bias); free(P->key_len);
    memset(P, 0, sizeof *P);
}

static float *qat(const prob *P, int64_t b, int64_t h, int64_t i) { return P->q + ((b * P->Hq + h) * P->Lq + i) * P->Dqk; }
static float *kat(const prob *P, int64_t b, int64_t g, int64_t j) { return P->k + ((b * P->Hkv + g) * P->Lk + j) * P->Dqk; }
static float *vat(const prob *P, int64_t b, int64_t g, int64_t j) { return P->v + ((b * P->Hkv + g) * P->Lk + j) * P->Dv; }
static int64_t sidx(const prob *P, int64_t b, int64_t h, int64_t i, int64_t j) { return ((b * P->Hq + h) * P->Lq + i) * P->Lk + j; }

static attn_params prob_params(const prob *P, float *out, float *lse, int threads) {
    attn_params a = attn_params_default();
    a.batch = P->B; a.heads_q = P->Hq; a.heads_kv = P->Hkv; a.len_q = P->Lq; a.len_k = P->Lk;
    a.dim_qk = P->Dqk; a.dim_v = P->Dv;
    a.q = P->q; a.q_stride[0] = P->Hq * P->Lq * P->Dqk; a.q_stride[1] = P->Lq * P->Dqk; a.q_stride[2] = P->Dqk;
    a.k = P->k; a.k_stride[0] = P->Hkv * P->Lk * P->Dqk; a.k_stride[1] = P->Lk * P->Dqk; a.k_stride[2] = P->Dqk;
    a.v = P->v; a.v_stride[0] = P->Hkv * P->Lk * P->Dv; a.v_stride[1] = P->Lk * P->Dv; a.v_stride[2] = P->Dv;
    a.out = out; a.out_stride[0] = P->Hq * P->Lq * P->Dv; a.out_stride[1] = P->Lq * P->Dv; a.out_stride[2] = P->Dv;
    a.scale = P->scale;
    a.causal = P->causal;
    a.window_left = P->wl; a.window_right = P->wr;
    a.key_len = P->key_len;
    if (P->mask) {
        a.mask = P->mask;
        a.mask_stride[0] = P->Hq * P->Lq * P->Lk; a.mask_stride[1] = P->Lq * P->Lk; a.mask_stride[2] = P->Lk; a.mask_stride[3] = 1;
    }
    if (P->bias) {
        a.bias = P->bias;
        a.bias_stride[0] = P->Hq * P->Lq * P->Lk; a.bias_stride[1] = P->Lq * P->Lk; a.bias_stride[2] = P->Lk; a.bias_stride[3] = 1;
    }
    a.masked_rows = P->policy;
    a.lse = lse;
    a.num_threads = threads;
    return a;
}

/* Whether query (b, h, i) sees key j through causal, window, key length and the bool mask (attn.h). */
static int ref_visible(const prob *P, int64_t b, int64_t h, int64_t i, int64_t j) {
    if (P->key_len && j >= P->key_len[b]) return 0;
    const int64_t off = P->causal == ATTN_CAUSAL_TOP_LEFT ? 0 : P->Lk - P->Lq;
    const int64_t a = i + off;
    if (P->causal != ATTN_CAUSAL_NONE && j > a) return 0;
    if (P->wl >= 0 && j < a - P->wl) return 0;
    if (P->wr >= 0 && j > a + P->wr) return 0;
    if (P->mask && !P->mask[sidx(P, b, h, i, j)]) return 0;
    return 1;
}

/*
 * The reference in double with IEEE semantics throughout, so non-finite inputs give what the math
 * gives: a NaN score makes the row NaN; a row whose maximum score is +inf is NaN (inf - inf); a row
 * whose visible scores are all -inf (or that sees no key) is a masked row and gets the policy, with
 * lse -inf; a visible key of weight 0 still contributes 0 * v (NaN when v is NaN, as in P @ V).
 */
static void reference(const prob *P, double *out, double *lse) {
    const double scale = P->scale != 0.0f ? (double)P->scale : 1.0 / sqrt((double)P->Dqk);
    const int64_t group = P->Hq / P->Hkv;
    double *s = xmalloc(sizeof(double) * (size_t)P->Lk);
    for (int64_t b = 0; b < P->B; b++)
        for (int64_t h = 0; h < P->Hq; h++)
            for (int64_t i = 0; i < P->Lq; i++) {
                const int64_t g = h / group, row = (b * P->Hq + h) * P->Lq + i;
                const float *qi = qat(P, b, h, i);
                double *o = out + row * P->Dv;
                int any_nan = 0;
                double m = -INFINITY;
                for (int64_t j = 0; j < P->Lk; j++) {
                    if (!ref_visible(P, b, h, i, j)) { s[j] = NAN; continue; }
                    const float *kj = kat(P, b, g, j);
                    double dot = 0;
                    for (int64_t d = 0; d < P->Dqk; d++) dot += (double)qi[d] * (double)kj[d];
                    double x = scale * dot;
                    if (P->bias) x += (double)P->bias[sidx(P, b, h, i, j)];
                    s[j] = x;
                    if (isnan(x)) any_nan = 1;
                    else if (x > m) m = x;
                }
                if (any_nan || m == INFINITY) {
                    for (int64_t c = 0; c < P->Dv; c++) o[c] = NAN;
                    lse[row] = NAN;
                    continue;
                }
                if (m == -INFINITY) {
                    lse[row] = -INFINITY;
                    for (int64_t c = 0; c < P->Dv; c++) {
                        if (P->policy == ATTN_MASKED_ROWS_ZERO) o[c] = 0;
                        else if (P->policy == ATTN_MASKED_ROWS_NAN) o[c] = NAN;
                        else {
                            double sum = 0;
                            for (int64_t j = 0; j < P->Lk; j++) sum += vat(P, b, g, j)[c];
                            o[c] = sum / (double)P->Lk;
                        }
                    }
                    continue;
                }
                double sum = 0;
                for (int64_t c = 0; c < P->Dv; c++) o[c] = 0;
                for (int64_t j = 0; j < P->Lk; j++) {
                    if (!ref_visible(P, b, h, i, j)) continue;
                    const double w = exp(s[j] - m);
                    sum += w;
                    const float *vj = vat(P, b, g, j);
                    for (int64_t c = 0; c < P->Dv; c++) o[c] += w * (double)vj[c];
                }
                for (int64_t c = 0; c < P->Dv; c++) o[c] /= sum;
                lse[row] = m + log(sum);
            }
    free(s);
}

/* ---- running a problem on every instruction set and both paths ---- */

static const char *path_name[2] = {"fused", "unfused"};

typedef struct run_result {
    int runs, failures;
    double max_err, max_lse_err;
} run_result;

/* One call: out and lse allocated at their exact sizes (so ASan sees any write past them), filled
 * with the sentinel; on return every element must have been written. */
static attn_status run_once(const prob *P, int path, int threads, float *out, float *lse) {
    fill_sentinel(out, n_out(P));
    fill_sentinel(lse, n_rows(P));
    const attn_params a = prob_params(P, out, lse, threads);
    return path == 0 ? attn_forward(&a) : attn_forward_unfused(&a);
}

/*
 * Runs P on every supported ISA and both paths and compares out with ref (tu_compare: relative to
 * max(1, max |ref|), NaN and infinities must match in kind) and lse with lse_ref (per element).
 * rows_skip, when given, marks rows (b, h, i) whose outputs are not compared (documented as
 * implementation-defined by the caller).
 */
static run_result run_all(const char *name, const prob *P, const double *ref, const double *lse_ref, double tol,
                          double lse_tol, const uint8_t *rows_skip, int threads) {
    run_result rr = {0, 0, 0, 0};
    const attn_isa initial = attn_get_isa();
    float *out = xmalloc(sizeof(float) * (size_t)n_out(P));
    float *lse = xmalloc(sizeof(float) * (size_t)n_rows(P));
    float *out_c = NULL;
    double *ref_c = NULL;
    if (rows_skip) {
        out_c = xmalloc(sizeof(float) * (size_t)n_out(P));
        ref_c = xmalloc(sizeof(double) * (size_t)n_out(P));
    }
    for (int isa = 0; isa < NISA; isa++) {
        if (!attn_isa_supported((attn_isa)isa)) continue;
        attn_set_isa((attn_isa)isa);
        for (int path = 0; path < 2; path++) {
            attn_status st = run_once(P, path, threads, out, lse);
            rr.runs++;
            if (!TU_CHECK(st == ATTN_OK, "%s [%s/%s]: status %s", name, attn_isa_name((attn_isa)isa), path_name[path],
                          attn_status_string(st))) {
                rr.failures++;
                continue;
            }
            TU_CHECK(!any_sentinel(out, n_out(P)) && !any_sentinel(lse, n_rows(P)),
                     "%s [%s/%s]: some output or lse element was not written", name, attn_isa_name((attn_isa)isa),
                     path_name[path]);
            const float *got = out;
            const double *want = ref;
            int64_t n = n_out(P);
            if (rows_skip) {
                n = 0;
                for (int64_t r = 0; r < n_rows(P); r++)
                    if (!rows_skip[r])
                        for (int64_t c = 0; c < P->Dv; c++, n++) {
                            out_c[n] = out[r * P->Dv + c];
                            ref_c[n] = ref[r * P->Dv + c];
                        }
                got = out_c;
                want = ref_c;
            }
            tu_cmp c = tu_compare(got, want, (size_t)n, tol);
            tu_cmp cl = tu_compare_each(lse, lse_ref, (size_t)n_rows(P), lse_tol);
            if (c.max_err > rr.max_err) rr.max_err = c.max_err;
            if (cl.max_err > rr.max_lse_err) rr.max_lse_err = cl.max_err;
            if (!TU_CHECK(c.ok, "%s [%s/%s]: out[%zu] = %.9g, reference %.9g (error %.3g > tolerance %.3g; %zu bad)", name,
                          attn_isa_name((attn_isa)isa), path_name[path], c.worst, c.got_worst, c.ref_worst, c.max_err, c.tol,
                          c.n_bad))
                rr.failures++;
            if (!TU_CHECK(cl.ok, "%s [%s/%s]: lse[%zu] = %.9g, reference %.9g (%zu bad)", name, attn_isa_name((attn_isa)isa),
                          path_name[path], cl.worst, cl.got_worst, cl.ref_worst, cl.n_bad))
                rr.failures++;
        }
    }
    attn_set_isa(initial);
    free(out); free(lse); free(out_c); free(ref_c);
    return rr;
}

/* The behaviour table: one line per edge, as docs/RELIABILITY.md reproduces it. */
static void table_row(const char *edge, const char *yields, const run_result *rr) {
    if (rr)
        printf("EDGE | %-44s | %-70s | %d runs, max err %.1e, lse %.1e%s\n", edge, yields, rr->runs, rr->max_err,
               rr->max_lse_err, rr->failures ? ", FAILED" : "");
    else
        printf("EDGE | %-44s | %s\n", edge, yields);
    fflush(stdout);
}

/* Reference and comparison in one step, for problems with finite, well-conditioned data. */
static run_result check_against_reference(const char *name, const prob *P, double tol, int threads) {
    double *ref = xmalloc(sizeof(double) * (size_t)n_out(P));
    double *lse = xmalloc(sizeof(double) * (size_t)n_rows(P));
    reference(P, ref, lse);
    run_result rr = run_all(name, P, ref, lse, tol, 1e-5, NULL, threads);
    free(ref); free(lse);
    return rr;
}

static void fill_uniform(tu_rng *r, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = tu_rng_uniform(r, lo, hi);
}

/* A problem with q, k and v uniform in [-1, 1) from sub-stream `stream` of the suite's seed. */
static prob prob_random(int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t Dqk, int64_t Dv,
                        uint64_t stream) {
    prob P = prob_new(B, Hq, Hkv, Lq, Lk, Dqk, Dv);
    tu_rng r = tu_rng_derive(SEED, stream);
    fill_uniform(&r, P.q, n_q(&P), -1, 1);
    fill_uniform(&r, P.k, n_k(&P), -1, 1);
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    return P;
}

/* ============================================================================================== */
/* 1. Allocation failure and overflow, in child processes                                          */

/* The child's result: the status, plus 16 when anything was written to the output. */
#define CHILD_WROTE 16

typedef int (*child_fn)(void *ctx);

/* Current virtual size of this process in bytes (first field of /proc/self/statm), or -1. */
static int64_t vm_size_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = -1;
    if (fscanf(f, "%ld", &pages) != 1) pages = -1;
    fclose(f);
    return pages < 0 ? -1 : (int64_t)pages * (int64_t)sysconf(_SC_PAGESIZE);
}

/*
 * Runs fn(ctx) in a child process. With limit_slack >= 0 the child's address space is first
 * limited to its current size plus limit_slack bytes (RLIMIT_AS, as `ulimit -v` does) and glibc's
 * mmap threshold is pinned at 128 KiB so that large requests need new address space. Returns
 * fn's result, or -signal when the child died, or -1000 when it could not be started.
 */
static int run_in_child(child_fn fn, void *ctx, int64_t limit_slack) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1000;
    if (pid == 0) {
        alarm(60);
        if (limit_slack >= 0) {
#if defined(__GLIBC__)
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
            const int64_t vm = vm_size_bytes();
            if (vm < 0) _exit(100);
            struct rlimit rl;
            rl.rlim_cur = rl.rlim_max = (rlim_t)(vm + limit_slack);
            if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(101);
        }
        _exit(fn(ctx));
    }
    int wst = 0;
    if (waitpid(pid, &wst, 0) != pid) return -1000;
    if (WIFSIGNALED(wst)) return -WTERMSIG(wst);
    return WIFEXITED(wst) ? WEXITSTATUS(wst) : -1000;
}

typedef struct oom_ctx {
    attn_params p;
    attn_matmul_params mm;
    attn_rotary_params rot;
    float *guard;         /* the output to check afterwards */
    int64_t guard_n;
    int which;            /* 0 fused, 1 unfused, 2 matmul, 3 rotary, 4 unfused workspace query */
} oom_ctx;

static int oom_child(void *arg) {
    oom_ctx *c = arg;
    attn_status st;
    size_t bytes = 12345;
    switch (c->which) {
    case 0: st = attn_forward(&c->p); break;
    case 1: st = attn_forward_unfused(&c->p); break;
    case 2: st = attn_matmul(&c->mm); break;
    case 3: st = attn_rotary(&c->rot); break;
    default: st = attn_forward_unfused_workspace(&c->p, &bytes); break;
    }
    int wrote = c->guard ? !all_sentinel(c->guard, c->guard_n) : 0;
    if (c->which == 4) wrote = bytes != 12345;
    return (int)st + (wrote ? CHILD_WROTE : 0);
}

static const char *child_result_string(int r, char *buf, size_t n) {
    if (r <= -1000) snprintf(buf, n, "the child could not run");
    else if (r < 0) snprintf(buf, n, "the child died of signal %d", -r);
    else if (r >= 100) snprintf(buf, n, "the child could not set its limit (%d)", r);
    else snprintf(buf, n, "%s%s", attn_status_string((attn_status)(r & (CHILD_WROTE - 1))),
                  r & CHILD_WROTE ? ", and it wrote to its output" : "");
    return buf;
}

static void expect_child(const char *what, oom_ctx *c, int64_t slack, attn_status want) {
    char buf[128];
    const int r = run_in_child(oom_child, c, slack);
    TU_CHECK(r == (int)want, "%s: %s, want %s and nothing written", what, child_result_string(r, buf, sizeof buf),
             attn_status_string(want));
    printf("  %-66s -> %s\n", what, child_result_string(r, buf, sizeof buf));
}

/* Q, K and V of one row each, read through zero position strides: a problem of any length over
 * tiny inputs. */
static attn_params broadcast_params(const float *q, const float *k, const float *v, float *out, int64_t Lq, int64_t Lk,
                                    int64_t Dqk, int64_t Dv) {
    attn_params a = attn_params_default();
    a.batch = a.heads_q = a.heads_kv = 1;
    a.len_q = Lq; a.len_k = Lk; a.dim_qk = Dqk; a.dim_v = Dv;
    a.q = q; a.k = k; a.v = v; a.out = out;
    a.out_stride[0] = a.out_stride[1] = Lq * Dv;
    a.out_stride[2] = Dv;
    a.num_threads = 1; /* serial: no thread is started in a child of a forked process */
    return a;
}

/* The fused (tile kernel) workspace query for Lq = 30 queries of Dqk = 2^59 features, read through
 * zero strides: the Qᵀ tile alone needs more than Dqk floats, so the answer must be
 * ATTN_ERR_OVERFLOW (or, at the very least, a byte count of 4 x Dqk or more), on every ISA. */
static int fused_workspace_overflow_child(void *arg) {
    (void)arg;
    /* Under UBSan the overflow ends this child with a report on stderr; the parent reports it. */
    FILE *null = fopen("/dev/null", "w");
    if (null) dup2(fileno(null), 2);
    static float buf[TILE_KERNEL_LQ];
    const int64_t dqk = (int64_t)1 << 59;
    attn_params a = broadcast_params(buf, buf, buf, buf, TILE_KERNEL_LQ, 1, dqk, 1);
    int bad = 0;
    for (int isa = 0; isa < NISA; isa++) {
        if (attn_set_isa((attn_isa)isa) != ATTN_OK) continue;
        size_t bytes = 0;
        const attn_status st = attn_forward_workspace(&a, &bytes);
        if (!(st == ATTN_ERR_OVERFLOW || (st == ATTN_OK && (double)bytes >= 4.0 * (double)dqk))) {
            bad = 1;
            printf("  [%s] attn_forward_workspace(Lq = 30, dim_qk = 2^59, dim_v = 1): %s, %zu bytes\n",
                   attn_isa_name((attn_isa)isa), attn_status_string(st), bytes);
        }
    }
    fflush(stdout);
    return bad;
}

static void test_allocation_failure(void) {
    printf("-- allocation failure (child processes under RLIMIT_AS, as `ulimit -v`) and overflow\n");
    static float one[4] = {0.5f, -0.25f, 1.0f, 2.0f};
    oom_ctx c;

    /* Unfused: (Lq x Lk) scores of 2^20 x 2^20 floats = 4 TiB of workspace. Under a sanitizer the
     * request exceeds its allocator's maximum; otherwise the address space limit refuses it. */
    memset(&c, 0, sizeof c);
    const int64_t L = (int64_t)1 << 20;
    c.guard_n = L * 4;
    c.guard = xmalloc(sizeof(float) * (size_t)c.guard_n);
    fill_sentinel(c.guard, c.guard_n);
    c.p = broadcast_params(one, one, one, c.guard, L, L, 4, 4);
    c.which = 1;
#if defined(EDGES_SANITIZED)
    expect_child("attn_forward_unfused, 4 TiB workspace (sanitizer allocator)", &c, -1, ATTN_ERR_OUT_OF_MEMORY);
#elif !defined(EDGES_RLIMIT)
    printf("  (4 TiB workspace: skipped, no address-space limit on this platform)\n");
#else
    expect_child("attn_forward_unfused, 4 TiB workspace, RLIMIT_AS +64 MiB", &c, (int64_t)64 << 20, ATTN_ERR_OUT_OF_MEMORY);
#endif
    free(c.guard);

    /* Overflow before allocation: Lq x Lk = 2^61 scores = 2^63 bytes. OVERFLOW, not OUT_OF_MEMORY,
     * even with no address space to spare, and out (a small buffer, never to be touched) untouched. */
    memset(&c, 0, sizeof c);
    c.guard_n = 64;
    c.guard = xmalloc(sizeof(float) * 64);
    fill_sentinel(c.guard, 64);
    c.p = broadcast_params(one, one, one, c.guard, (int64_t)1 << 31, (int64_t)1 << 30, 1, 1);
    c.which = 1;
#ifdef EDGES_RLIMIT
    const int64_t tight = 256 << 10;
#endif
#ifndef EDGES_RLIMIT
    expect_child("attn_forward_unfused, Lq*Lk*4 bytes overflows", &c, -1, ATTN_ERR_OVERFLOW);
    c.which = 4;
    expect_child("attn_forward_unfused_workspace, Lq*Lk*4 bytes overflows", &c, -1, ATTN_ERR_OVERFLOW);
#else
    expect_child("attn_forward_unfused, Lq*Lk*4 bytes overflows, RLIMIT_AS +256 KiB", &c, tight, ATTN_ERR_OVERFLOW);
    c.which = 4;
    expect_child("attn_forward_unfused_workspace, same, RLIMIT_AS +256 KiB", &c, tight, ATTN_ERR_OVERFLOW);
#endif
    free(c.guard);

#ifdef EDGES_RLIMIT
    /* Fused, tile kernel (Lq = 30 queries, more than any ISA's row kernel takes): Dqk = 2^21 makes
     * the Qᵀ tiles of one thread 256-1024 MiB. */
    memset(&c, 0, sizeof c);
    const int64_t D = (int64_t)1 << 21;
    float *qd = xmalloc(sizeof(float) * (size_t)D);
    for (int64_t i = 0; i < D; i++) qd[i] = 0.001f;
    c.guard_n = TILE_KERNEL_LQ;
    c.guard = xmalloc(sizeof(float) * TILE_KERNEL_LQ);
    fill_sentinel(c.guard, TILE_KERNEL_LQ);
    c.p = broadcast_params(qd, qd, qd, c.guard, TILE_KERNEL_LQ, 1, D, 1);
    c.which = 0;
    expect_child("attn_forward (tile kernel), Dqk = 2^21: 256+ MiB workspace, RLIMIT_AS +64 MiB", &c, (int64_t)64 << 20,
                 ATTN_ERR_OUT_OF_MEMORY);
    free(c.guard);
    /* Fused, row kernel (one query): Dqk = Dv = 2^21, 24 MiB of workspace and partial results. */
    c.guard_n = D;
    c.guard = xmalloc(sizeof(float) * (size_t)D);
    fill_sentinel(c.guard, D);
    c.p = broadcast_params(qd, qd, qd, c.guard, 1, 1, D, D);
    expect_child("attn_forward (row kernel), Dqk = Dv = 2^21: 24 MiB workspace, RLIMIT_AS +8 MiB", &c, (int64_t)8 << 20,
                 ATTN_ERR_OUT_OF_MEMORY);
    free(c.guard);
    free(qd);

    /* Matrix multiply: its packing workspace (~1.3 MB per thread). */
    memset(&c, 0, sizeof c);
    static float a64[64 * 64], c64[64 * 64];
    for (int i = 0; i < 64 * 64; i++) a64[i] = 1.0f / (float)(i + 1);
    fill_sentinel(c64, 64 * 64);
    c.guard = c64;
    c.guard_n = 64 * 64;
    c.mm = attn_matmul_params_default();
    c.mm.m = c.mm.n = c.mm.k = 64;
    c.mm.a = c.mm.b = a64;
    c.mm.c = c64;
    c.mm.lda = c.mm.ldb = c.mm.ldc = 64;
    c.mm.num_threads = 1;
    c.which = 2;
    expect_child("attn_matmul, 1.3 MB packing workspace, RLIMIT_AS +256 KiB", &c, tight, ATTN_ERR_OUT_OF_MEMORY);

    /* Rotary: dim/2 doubles of frequencies plus a table of dim floats per thread. */
    memset(&c, 0, sizeof c);
    const int64_t dim = (int64_t)1 << 22;
    c.guard_n = dim;
    c.guard = xmalloc(sizeof(float) * (size_t)dim);
    fill_sentinel(c.guard, dim);
    c.rot = attn_rotary_params_default();
    c.rot.batch = c.rot.heads = c.rot.len = 1;
    c.rot.dim = dim;
    c.rot.x = c.guard;
    c.rot.x_stride[0] = c.rot.x_stride[1] = c.rot.x_stride[2] = dim;
    c.rot.theta = 10000.0f;
    c.rot.num_threads = 1;
    c.which = 3;
    expect_child("attn_rotary, 32 MiB workspace (dim = 2^22), RLIMIT_AS +1 MiB", &c, (int64_t)1 << 20,
                 ATTN_ERR_OUT_OF_MEMORY);
    free(c.guard);
#else
    printf("  (attn_forward, attn_matmul and attn_rotary under RLIMIT_AS: run on Linux without a sanitizer only;\n"
           "   a sanitizer's shadow memory already exceeds any address-space limit)\n");
#endif

    /* Dqk = 2^59 with zero strides: the rows fit, but (Dqk + Dv) x tile rows would overflow int64.
     * A regression test (found by fuzz_attention); in a child, since a signed overflow ends the
     * process under UBSan. */
    const int r = run_in_child(fused_workspace_overflow_child, NULL, -1);
    if (r == 0) tu_pass();
    else tu_fail("attn_forward_workspace (tile kernel, Lq = 30) with dim_qk = 2^59 must be ATTN_ERR_OVERFLOW");
}

/* ============================================================================================== */
/* 2. Error statuses of the workspace queries                                                      */

static void test_workspace_errors(void) {
    printf("-- error statuses of attn_forward_workspace and attn_forward_unfused_workspace\n");
    prob P = prob_random(2, 2, 1, 5, 7, 4, 3, 1);
    float *out = xmalloc(sizeof(float) * (size_t)n_out(&P));
    const int64_t big = (int64_t)1 << 62;
    typedef attn_status (*ws_fn)(const attn_params *, size_t *);
    static const ws_fn fns[2] = {attn_forward_workspace, attn_forward_unfused_workspace};
    static const char *names[2] = {"attn_forward_workspace", "attn_forward_unfused_workspace"};
    int paths = 0;
    for (int f = 0; f < 2; f++) {
        size_t bytes;
        attn_params a;
#define WS_EXPECT(what, params_ptr, bytes_ptr, want)                                                             \
    do {                                                                                                         \
        bytes = 777;                                                                                             \
        const attn_status st_ = fns[f]((params_ptr), (bytes_ptr));                                              \
        TU_CHECK(st_ == (want), "%s, %s: %s, want %s", names[f], (what), attn_status_string(st_),                \
                 attn_status_string(want));                                                                      \
        if ((want) != ATTN_OK) TU_CHECK(bytes == 777, "%s, %s: wrote *bytes on error", names[f], (what));        \
        else TU_CHECK(bytes > 0 && bytes != 777, "%s, %s: *bytes not set", names[f], (what));                    \
        if (f == 0 && strcmp((what), "bytes NULL") != 0)                                                         \
            TU_CHECK(attn_validate(params_ptr) == (want), "attn_validate, %s: %s, want %s", (what),              \
                     attn_status_string(attn_validate(params_ptr)), attn_status_string(want));                   \
        paths++;                                                                                                 \
    } while (0)
        a = prob_params(&P, out, NULL, 1);
        WS_EXPECT("valid", &a, &bytes, ATTN_OK);
        WS_EXPECT("params NULL", NULL, &bytes, ATTN_ERR_NULL_POINTER);
        WS_EXPECT("bytes NULL", &a, NULL, ATTN_ERR_NULL_POINTER);
        a = prob_params(&P, out, NULL, 1); a.q = NULL;
        WS_EXPECT("q NULL", &a, &bytes, ATTN_ERR_NULL_POINTER);
        a = prob_params(&P, out, NULL, 1); a.len_k = 0;
        WS_EXPECT("len_k 0", &a, &bytes, ATTN_ERR_INVALID_ARGUMENT);
        a = prob_params(&P, out, NULL, 1); a.heads_kv = 3;
        WS_EXPECT("heads_q % heads_kv != 0", &a, &bytes, ATTN_ERR_INVALID_ARGUMENT);
        a = prob_params(&P, out, NULL, 1); a.num_threads = -1;
        WS_EXPECT("num_threads -1", &a, &bytes, ATTN_ERR_INVALID_ARGUMENT);
        a = prob_params(&P, out, NULL, 1); a.dropout_p = 1.0f;
        WS_EXPECT("dropout_p 1", &a, &bytes, ATTN_ERR_INVALID_ARGUMENT);
        a = prob_params(&P, out, NULL, 1); a.k_stride[1] = -1;
        WS_EXPECT("k head stride -1", &a, &bytes, ATTN_ERR_INVALID_STRIDE);
        a = prob_params(&P, out, NULL, 1); a.out_stride[2] = 1;
        WS_EXPECT("out rows overlap", &a, &bytes, ATTN_ERR_INVALID_STRIDE);
        a = prob_params(&P, out, NULL, 1); a.q_stride[2] = big;
        WS_EXPECT("q position stride 2^62", &a, &bytes, ATTN_ERR_OVERFLOW);
        int64_t bad_len[2] = {7, 8};
        a = prob_params(&P, out, NULL, 1); a.key_len = bad_len;
        WS_EXPECT("key_len[1] > len_k", &a, &bytes, ATTN_ERR_INVALID_ARGUMENT);
        if (f == 1) {
            static float one[1] = {1.0f};
            a = broadcast_params(one, one, one, out, (int64_t)1 << 31, (int64_t)1 << 30, 1, 1);
            WS_EXPECT("Lq x Lk workspace bytes overflow", &a, &bytes, ATTN_ERR_OVERFLOW);
        }
#undef WS_EXPECT
    }
    printf("  %d error-path checks on the two workspace queries\n", paths);

    /* Head dimensions at the documented limit (2^46): rejected by every entry point before any
     * tensor is read (the buffers hold one float each, read through zero strides). */
    static float tiny[4];
    const int64_t limit = (int64_t)1 << 46;
    const int64_t dims[2][2] = {{limit, 1}, {1, limit}};
    for (int c = 0; c < 2; c++) {
        const attn_params a = broadcast_params(tiny, tiny, tiny, tiny, 1, 1, dims[c][0], dims[c][1]);
        size_t bytes = 777, ubytes = 777;
        const attn_status st[5] = {attn_validate(&a), attn_forward_workspace(&a, &bytes),
                                   attn_forward_unfused_workspace(&a, &ubytes), attn_forward(&a), attn_forward_unfused(&a)};
        static const char *fn[5] = {"attn_validate", "attn_forward_workspace", "attn_forward_unfused_workspace",
                                    "attn_forward", "attn_forward_unfused"};
        for (int f = 0; f < 5; f++)
            TU_CHECK(st[f] == ATTN_ERR_OVERFLOW, "%s, Dqk = %lld, Dv = %lld: %s, want overflow", fn[f],
                     (long long)dims[c][0], (long long)dims[c][1], attn_status_string(st[f]));
        TU_CHECK(bytes == 777 && ubytes == 777, "Dqk or Dv = 2^46: a workspace query wrote *bytes");
    }
    /* One below the limit is valid: validation and the workspace queries agree (nothing is run). */
    const attn_params below = broadcast_params(tiny, tiny, tiny, tiny, 1, 1, limit - 1, 1);
    size_t below_bytes = 0;
    TU_CHECK(attn_validate(&below) == ATTN_OK && attn_forward_workspace(&below, &below_bytes) == ATTN_OK &&
                 below_bytes >= (size_t)(limit - 1) * sizeof(float),
             "Dqk = 2^46 - 1: want valid, with a workspace of at least 4 x Dqk bytes (%zu)", below_bytes);

    /* B = 2^57 + 1 batches of Lq = 2 rows read through zero strides (found by fuzz_attention): the
     * parameters are valid, and the unfused path's workspace (one Lq x Lk block per thread) is small,
     * but the fused row kernel's partial results, B x Hq x Lq x (Dv + 2) floats, overflow. Each query
     * answers for its own path; validation is the fused path's. */
    attn_params many = broadcast_params(tiny, tiny, tiny, tiny, 2, 1, 7, 7);
    many.batch = ((int64_t)1 << 57) + 1;
    many.out_stride[0] = 2 * 7;
    size_t many_fused = 777, many_unfused = 0, one_unfused = 1;
    TU_CHECK(attn_validate(&many) == ATTN_ERR_OVERFLOW &&
                 attn_forward_workspace(&many, &many_fused) == ATTN_ERR_OVERFLOW && many_fused == 777,
             "B = 2^57 + 1, Lq = 2, Dv = 7: the fused row kernel's partials overflow; want OVERFLOW, *bytes untouched");
    const attn_status many_status = attn_forward_unfused_workspace(&many, &many_unfused);
    many.batch = 1;
    attn_forward_unfused_workspace(&many, &one_unfused);
    TU_CHECK(many_status == ATTN_OK && many_unfused == one_unfused,
             "B = 2^57 + 1, Lq = 2, Lk = 1: want OK and the unfused workspace of B = 1 (%zu), got %s and %zu bytes",
             one_unfused, attn_status_string(many_status), many_unfused);

    /* The fused workspace at a fixed thread count: the tile kernel's does not depend on Lq or Lk;
     * the row kernel's (few queries) grows with Lk only until each row has its largest number of key
     * chunks, then stays. The unfused one is threads x (Lq x Lk + 2 Lq + packing) floats. */
    static float one[64];
    size_t w_tile_1 = 0, w_tile_long = 0, w_row_1 = 0, w_row_long = 0, w_row_huge = 0, u_small = 0, u_long = 0;
    attn_params a = broadcast_params(one, one, one, out, 1, 1, 64, 64);
    attn_forward_workspace(&a, &w_row_1);
    attn_forward_unfused_workspace(&a, &u_small);
    a = broadcast_params(one, one, one, out, 1, 1000000, 64, 64);
    attn_forward_workspace(&a, &w_row_long);
    attn_forward_unfused_workspace(&a, &u_long);
    a = broadcast_params(one, one, one, out, 1, (int64_t)1 << 40, 64, 64);
    attn_forward_workspace(&a, &w_row_huge);
    a = broadcast_params(one, one, one, out, 1000, 1, 64, 64);
    attn_forward_workspace(&a, &w_tile_1);
    a = broadcast_params(one, one, one, out, 1000, 1000000, 64, 64);
    attn_forward_workspace(&a, &w_tile_long);
    TU_CHECK(w_tile_1 == w_tile_long, "fused tile-kernel workspace depends on Lk: %zu (Lk 1) vs %zu (Lk 1e6)", w_tile_1,
             w_tile_long);
    TU_CHECK(w_row_long == w_row_huge && w_row_long < (1 << 20),
             "fused row-kernel workspace not bounded in Lk: %zu (Lk 1e6) vs %zu (Lk 2^40)", w_row_long, w_row_huge);
    /* Unfused: one Lq x Lk score block per thread: 4 x (1e6 - 1) more bytes, to a cache line. */
    const double grow = (double)u_long - (double)u_small - 4.0 * (1000000 - 1);
    TU_CHECK(fabs(grow) <= 64, "unfused workspace grows by %zu bytes from Lk = 1 to 1e6, want 4 x 999999 (+-64)",
             u_long - u_small);
    printf("  workspace, 1 thread, D = 64: fused Lq = 1000: %zu bytes for Lk = 1 and 1e6; fused Lq = 1: %zu (Lk = 1), "
           "%zu (Lk = 1e6 and 2^40); unfused Lq = 1: %zu (Lk = 1) -> %zu (Lk = 1e6)\n",
           w_tile_1, w_row_1, w_row_long, u_small, u_long);
    free(out);
    prob_free(&P);
}

/* struct_size (attn.h): every entry point taking a parameter struct rejects a size no release
 * declared, before it reads any other field; the declared size works with the struct placed at the
 * very end of its allocation (so under ASan, reading past struct_size bytes would be caught). */
static void test_struct_size(void) {
    printf("-- struct_size: unknown sizes rejected, the struct read only as far as it says\n");
    prob P = prob_random(1, 2, 1, 5, 7, 4, 3, 5);
    float *out = xmalloc(sizeof(float) * (size_t)n_out(&P));
    float m[16] = {0}, x[16] = {0};
    /* A program built against 0.1.0 had no struct_size: its batch (here 2) lands in its place. */
    const size_t garbage[6] = {0, 2, sizeof(float), sizeof(attn_params) - 8, sizeof(attn_params) + 8, SIZE_MAX};
    for (int g = 0; g < 6; g++) {
        attn_params a = prob_params(&P, out, NULL, 1);
        a.struct_size = garbage[g];
        size_t bytes = 777, ubytes = 777;
        fill_sentinel(out, n_out(&P));
        const attn_status st[5] = {attn_validate(&a), attn_forward(&a), attn_forward_unfused(&a),
                                   attn_forward_workspace(&a, &bytes), attn_forward_unfused_workspace(&a, &ubytes)};
        for (int f = 0; f < 5; f++)
            TU_CHECK(st[f] == ATTN_ERR_INVALID_ARGUMENT, "attn_params.struct_size = %zu: entry point %d returned %s",
                     garbage[g], f, attn_status_string(st[f]));
        TU_CHECK(bytes == 777 && ubytes == 777 && all_sentinel(out, n_out(&P)),
                 "attn_params.struct_size = %zu: something was written", garbage[g]);
        /* Rejected before the pointers are looked at. */
        a.q = NULL;
        TU_CHECK(attn_validate(&a) == ATTN_ERR_INVALID_ARGUMENT, "struct_size %zu with q NULL: want invalid argument",
                 garbage[g]);

        attn_matmul_params mm = attn_matmul_params_default();
        mm.m = mm.n = mm.k = mm.lda = mm.ldb = mm.ldc = 4;
        mm.a = mm.b = m;
        mm.c = x;
        /* (- 4: sizeof(attn_matmul_params) - 8 is 0.2.0's size on LP64, which is accepted.) */
        mm.struct_size = garbage[g] == sizeof(attn_params) - 8 ? sizeof(attn_matmul_params) - 4 : garbage[g];
        TU_CHECK(attn_matmul(&mm) == ATTN_ERR_INVALID_ARGUMENT, "attn_matmul_params.struct_size = %zu: %s",
                 mm.struct_size, attn_status_string(attn_matmul(&mm)));
        attn_rotary_params rot = attn_rotary_params_default();
        rot.batch = rot.heads = rot.len = 1;
        rot.dim = 16;
        rot.x = x;
        /* (- 4: sizeof(attn_rotary_params) - 8 is 1.0.0's size, which is accepted.) */
        rot.struct_size = garbage[g] == sizeof(attn_params) - 8 ? sizeof(attn_rotary_params) - 4 : garbage[g];
        TU_CHECK(attn_rotary(&rot) == ATTN_ERR_INVALID_ARGUMENT, "attn_rotary_params.struct_size = %zu: %s",
                 rot.struct_size, attn_status_string(attn_rotary(&rot)));
    }
    /* The declared sizes, each struct at the end of a block of exactly that size. */
    attn_params *a = xmalloc(sizeof *a);
    *a = prob_params(&P, out, NULL, 1);
    TU_CHECK(a->struct_size == sizeof *a && attn_forward(a) == ATTN_OK, "attn_params_default: struct_size %zu, want %zu",
             a->struct_size, sizeof *a);
    attn_matmul_params *mm = xmalloc(sizeof *mm);
    *mm = attn_matmul_params_default();
    mm->m = mm->n = mm->k = mm->lda = mm->ldb = mm->ldc = 4;
    mm->a = mm->b = m;
    mm->c = x;
    TU_CHECK(mm->struct_size == sizeof *mm && attn_matmul(mm) == ATTN_OK, "attn_matmul_params_default: struct_size %zu",
             mm->struct_size);
    attn_rotary_params *rot = xmalloc(sizeof *rot);
    *rot = attn_rotary_params_default();
    rot->batch = rot->heads = rot->len = 1;
    rot->dim = 16;
    rot->x = x;
    TU_CHECK(rot->struct_size == sizeof *rot && rot->theta == 10000.0f && attn_rotary(rot) == ATTN_OK,
             "attn_rotary_params_default: struct_size %zu, theta %g", rot->struct_size, rot->theta);
    /* 0.2.0's attn_params (up to num_threads, padded to 8 bytes), at the end of a block of exactly
     * that size, tail padding full of garbage: it runs, with every dtype float32. */
    const size_t old_size = (offsetof(attn_params, num_threads) + sizeof(int) + 7) & ~(size_t)7;
    if (offsetof(attn_params, q_dtype) < old_size)
        tu_fail("attn_params: q_dtype at %zu, inside 0.2.0's %zu bytes", offsetof(attn_params, q_dtype), old_size);
    unsigned char *old = xmalloc(old_size);
    float *want = xmalloc(sizeof(float) * (size_t)n_out(&P));
    attn_forward(a);
    memcpy(want, out, sizeof(float) * (size_t)n_out(&P));
    memset(old, 0xA5, old_size);
    memcpy(old, a, offsetof(attn_params, num_threads) + sizeof(int));
    memcpy(old, &old_size, sizeof old_size);
    fill_sentinel(out, n_out(&P));
    TU_CHECK(attn_forward((const attn_params *)old) == ATTN_OK && memcmp(out, want, sizeof(float) * (size_t)n_out(&P)) == 0,
             "0.2.0's attn_params (struct_size %zu): not the float32 result", old_size);
    fill_sentinel(out, n_out(&P));
    TU_CHECK(attn_forward_unfused((const attn_params *)old) == ATTN_OK && !all_sentinel(out, n_out(&P)),
             "0.2.0's attn_params (struct_size %zu): unfused failed", old_size);
    /* The new fields are read at the current size: a dtype outside the enum is rejected. */
    a->v_dtype = (attn_dtype)3;
    TU_CHECK(attn_validate(a) == ATTN_ERR_INVALID_ARGUMENT, "v_dtype 3: want invalid argument");
    a->v_dtype = (attn_dtype)-1;
    TU_CHECK(attn_forward(a) == ATTN_ERR_INVALID_ARGUMENT, "v_dtype -1: want invalid argument");
    free(old);
    free(want);
    free(a);
    free(mm);
    free(rot);
    free(out);
    prob_free(&P);
}

/* The dense structs of 1.0.0: every size but their own rejected before anything is read or
 * written, their defaults working at the end of a block of exactly their size. */
static void test_struct_size_dense(void) {
    printf("-- struct_size of the dense structs: their own size only\n");
    float x[64], out[64], mean[4];
    for (int i = 0; i < 64; i++) x[i] = (float)(i % 7) - 3.0f;
    attn_layer_norm_params *ln = xmalloc(sizeof *ln);
    *ln = attn_layer_norm_params_default();
    ln->rows = 4; ln->n = 16; ln->out = out; ln->ld_out = 16; ln->x = x; ln->ld_x = 16; ln->mean = mean;
    attn_activate_params *act = xmalloc(sizeof *act);
    *act = attn_activate_params_default();
    act->count = 64; act->out = out; act->x = x;
    attn_gated_activate_params *ga = xmalloc(sizeof *ga);
    *ga = attn_gated_activate_params_default();
    ga->rows = 4; ga->width = 8; ga->out = out; ga->ld_out = 8; ga->x = x; ga->ld_x = 16;
    attn_softmax_rows_params *sm = xmalloc(sizeof *sm);
    *sm = attn_softmax_rows_params_default();
    sm->rows = 4; sm->n = 16; sm->x = out; sm->ld = 16;
    attn_mean_rows_params *mr = xmalloc(sizeof *mr);
    *mr = attn_mean_rows_params_default();
    mr->rows = 4; mr->n = 16; mr->out = mean; mr->x = x; mr->ld = 16;
    attn_reduce_rows_params *rr = xmalloc(sizeof *rr);
    *rr = attn_reduce_rows_params_default();
    rr->rows = 4; rr->n = 16; rr->out = mean; rr->x = x; rr->ld = 16;
    const size_t sizes[6] = {sizeof *ln, sizeof *act, sizeof *ga, sizeof *sm, sizeof *mr, sizeof *rr};
    size_t *struct_size[6] = {&ln->struct_size, &act->struct_size, &ga->struct_size, &sm->struct_size,
                              &mr->struct_size, &rr->struct_size};
    static const char *names[6] = {"attn_layer_norm", "attn_activate", "attn_gated_activate", "attn_softmax_rows",
                                   "attn_mean_rows", "attn_reduce_rows"};
    for (int f = 0; f < 6; f++) {
        const size_t garbage[6] = {0, 2, sizes[f] - 8, sizes[f] - 1, sizes[f] + 8, SIZE_MAX};
        for (int g = 0; g <= 6; g++) {
            *struct_size[f] = g < 6 ? garbage[g] : sizes[f];
            for (int i = 0; i < 64; i++) out[i] = 7.0f;
            for (int i = 0; i < 4; i++) mean[i] = 7.0f;
            const attn_status st = f == 0 ? attn_layer_norm(ln) : f == 1 ? attn_activate(act)
                                 : f == 2 ? attn_gated_activate(ga) : f == 3 ? attn_softmax_rows(sm)
                                 : f == 4 ? attn_mean_rows(mr) : attn_reduce_rows(rr);
            int clean = 1;
            for (int i = 0; i < 64; i++) clean &= out[i] == 7.0f;
            for (int i = 0; i < 4; i++) clean &= mean[i] == 7.0f;
            if (g < 6)
                TU_CHECK(st == ATTN_ERR_INVALID_ARGUMENT && clean, "%s struct_size %zu: %s, %s", names[f], garbage[g],
                         attn_status_string(st), clean ? "nothing written" : "something written");
            else
                TU_CHECK(st == ATTN_OK && *struct_size[f] == sizes[f], "%s_params_default: %s", names[f],
                         attn_status_string(st));
        }
    }
    TU_CHECK(attn_layer_norm(NULL) == ATTN_ERR_NULL_POINTER && attn_activate(NULL) == ATTN_ERR_NULL_POINTER &&
             attn_gated_activate(NULL) == ATTN_ERR_NULL_POINTER && attn_softmax_rows(NULL) == ATTN_ERR_NULL_POINTER &&
             attn_mean_rows(NULL) == ATTN_ERR_NULL_POINTER && attn_reduce_rows(NULL) == ATTN_ERR_NULL_POINTER,
             "a NULL dense params struct: want NULL_POINTER");
    free(ln);
    free(act);
    free(ga);
    free(sm);
    free(mr);
    free(rr);
}

/* An older attn_rotary_params layout, the current one's first `end` bytes, at the end of a block of
 * exactly its size (end rounded up to the alignment), tail padding full of garbage: the bits of the
 * current layout with the fields appended since at their defaults (the caller's `cur` has them so). */
static void expect_rotary_layout(const char *release, size_t end, size_t first_new_field, attn_rotary_params cur) {
    const size_t old_size = (end + _Alignof(attn_rotary_params) - 1) / _Alignof(attn_rotary_params) * _Alignof(attn_rotary_params);
    if (first_new_field < old_size)
        tu_fail("attn_rotary_params: a field appended after %s at %zu, inside its %zu bytes", release, first_new_field, old_size);
    float x[64], want[64], got[64];
    for (int i = 0; i < 64; i++) x[i] = (float)(i % 7) - 3.0f;
    memcpy(want, x, sizeof x);
    memcpy(got, x, sizeof x);
    cur.x = want;
    TU_CHECK(attn_rotary(&cur) == ATTN_OK, "attn_rotary, current layout");
    unsigned char *old = xmalloc(old_size);
    memset(old, 0xA5, old_size);
    cur.x = got;
    memcpy(old, &cur, end);
    memcpy(old, &old_size, sizeof old_size);
    TU_CHECK(attn_rotary((const attn_rotary_params *)old) == ATTN_OK && memcmp(got, want, sizeof got) == 0,
             "%s's attn_rotary_params (struct_size %zu): not the current layout's result", release, old_size);
    free(old);
}

/* Rotary's 0.3.0 layout ends at num_threads (positions NULL, double angles since), 1.0.0's at
 * angles (flags 0 since). */
static void test_struct_size_rotary_layouts(void) {
    printf("-- attn_rotary_params of 0.3.0 and 1.0.0: the fields appended since read at their defaults\n");
    attn_rotary_params cur = attn_rotary_params_default();
    cur.batch = 2; cur.heads = 2; cur.len = 2; cur.dim = 8;
    cur.x_stride[0] = 32; cur.x_stride[1] = 16; cur.x_stride[2] = 8;
    cur.position_offset = 3;
    expect_rotary_layout("0.3.0", offsetof(attn_rotary_params, num_threads) + sizeof(int),
                         offsetof(attn_rotary_params, positions), cur);
    expect_rotary_layout("1.0.0", offsetof(attn_rotary_params, angles) + sizeof(attn_rotary_angles),
                         offsetof(attn_rotary_params, flags), cur);
}

/* ============================================================================================== */
/* 3. Threads                                                                                      */

/* The thread count a call uses, seen through its workspace (threads x a per-thread size). */
static void test_thread_resolution(void) {
    printf("-- thread count: per call (num_threads), global (attn_set_num_threads), default\n");
    /* One micro-tile of queries (3 vectors' worth: 12, 24 or 48 by ISA, twice what the row kernel
     * takes) per head, 2 x 16 heads: 32 items of one tile for any thread count, so the per-thread
     * workspace does not change with it (items of several tiles would: fused.c makes items smaller
     * when there are more threads). */
    const int64_t one_tile = 3 * attn_vector_floats_for_test();
    prob P = prob_new(2, 16, 16, one_tile, 256, 32, 32);
    float *out = xmalloc(sizeof(float) * (size_t)n_out(&P));
    const int def = attn_get_num_threads();
    size_t one = 0, w = 0;
    attn_params a = prob_params(&P, out, NULL, 1);
    attn_forward_workspace(&a, &one);
    size_t uone = 0, uw = 0;
    attn_forward_unfused_workspace(&a, &uone);
    for (int t = 1; t <= 8; t++) {
        a.num_threads = t;
        attn_forward_workspace(&a, &w);
        attn_forward_unfused_workspace(&a, &uw);
        TU_CHECK(w == one * (size_t)t && uw == uone * (size_t)t, "num_threads = %d: workspace %zu / %zu, want %zu / %zu",
                 t, w, uw, one * (size_t)t, uone * (size_t)t);
    }
    /* The most threads this problem can use (its work items), seen with num_threads = ATTN_MAX_THREADS. */
    a.num_threads = ATTN_MAX_THREADS;
    attn_forward_workspace(&a, &w);
    const size_t items = w / one, want_default = (size_t)def < items ? (size_t)def : items;
    a.num_threads = 0;
    attn_forward_workspace(&a, &w);
    TU_CHECK(w == one * want_default, "num_threads = 0 by default: %zu, want %zu threads' worth", w, want_default);
    TU_CHECK(attn_set_num_threads(3) == ATTN_OK, "attn_set_num_threads(3)");
    attn_forward_workspace(&a, &w);
    TU_CHECK(w == one * 3, "num_threads = 0 after attn_set_num_threads(3): %zu, want %zu", w, one * 3);
    a.num_threads = 5;
    attn_forward_workspace(&a, &w);
    TU_CHECK(w == one * 5, "num_threads = 5 overrides the global 3: %zu, want %zu", w, one * 5);
    TU_CHECK(attn_set_num_threads(0) == ATTN_OK && attn_get_num_threads() == def, "attn_set_num_threads(0) restores %d", def);
    /* Never more threads than work items: one (b, h) and one micro-tile of queries. */
    prob S = prob_new(1, 1, 1, one_tile, 100, 32, 32);
    float *so = xmalloc(sizeof(float) * (size_t)n_out(&S));
    attn_params s = prob_params(&S, so, NULL, 1);
    size_t s1 = 0, s8 = 0;
    attn_forward_workspace(&s, &s1);
    s.num_threads = 8;
    attn_forward_workspace(&s, &s8);
    TU_CHECK(s1 == s8, "one work item but num_threads = 8: workspace %zu, want %zu (one thread)", s8, s1);
    printf("  per-thread fused workspace %zu bytes; threads used = min(num_threads or the global count or %d, items)\n",
           one, def);
    free(so); prob_free(&S);
    free(out); prob_free(&P);
}

/* ---- the same calls from 8 threads at once ---- */

#define CONC_THREADS 8
#define CONC_ITERS 3

typedef struct conc_shared {
    prob P;
    float *want_fused, *want_unfused, *want_mm, *want_ln, *want_sm;
    float *mm_a, *mm_b, *ln_x, *sm_x;
    int64_t mm_m, mm_n, mm_k, ln_rows, ln_n;
} conc_shared;

typedef struct conc_arg {
    conc_shared *s;
    int index;
    int mismatches, errors;
} conc_arg;

static void conc_compute(conc_shared *s, int threads, float *fused, float *unfused, float *mm, float *ln, float *sm,
                         int *errors) {
    attn_params a = prob_params(&s->P, fused, NULL, threads);
    *errors += attn_forward(&a) != ATTN_OK;
    a.out = unfused;
    *errors += attn_forward_unfused(&a) != ATTN_OK;
    attn_matmul_params m = attn_matmul_params_default();
    m.m = s->mm_m; m.n = s->mm_n; m.k = s->mm_k;
    m.a = s->mm_a; m.lda = s->mm_k;
    m.b = s->mm_b; m.ldb = s->mm_k; m.b_transposed = 1;
    m.c = mm; m.ldc = s->mm_n;
    m.num_threads = threads;
    *errors += attn_matmul(&m) != ATTN_OK;
    attn_layer_norm_params l = attn_layer_norm_params_default();
    l.rows = s->ln_rows; l.n = s->ln_n;
    l.out = ln; l.ld_out = s->ln_n;
    l.x = s->ln_x; l.ld_x = s->ln_n;
    l.num_threads = threads;
    *errors += attn_layer_norm(&l) != ATTN_OK;
    memcpy(sm, s->sm_x, sizeof(float) * (size_t)(s->ln_rows * s->ln_n));
    attn_softmax_rows_params sp = attn_softmax_rows_params_default();
    sp.rows = s->ln_rows; sp.n = s->ln_n;
    sp.x = sm; sp.ld = s->ln_n;
    sp.num_threads = threads;
    *errors += attn_softmax_rows(&sp) != ATTN_OK;
}

static void *conc_worker(void *p) {
    conc_arg *ca = p;
    conc_shared *s = ca->s;
    const int64_t no = n_out(&s->P), nm = s->mm_m * s->mm_n, nl = s->ln_rows * s->ln_n;
    float *f = xmalloc(sizeof(float) * (size_t)no), *u = xmalloc(sizeof(float) * (size_t)no);
    float *mm = xmalloc(sizeof(float) * (size_t)nm), *ln = xmalloc(sizeof(float) * (size_t)nl), *sm = xmalloc(sizeof(float) * (size_t)nl);
    for (int it = 0; it < CONC_ITERS; it++) {
        const int threads = (ca->index + it) % 3; /* 0 (global default), 1, 2 */
        conc_compute(s, threads, f, u, mm, ln, sm, &ca->errors);
        ca->mismatches += memcmp(f, s->want_fused, sizeof(float) * (size_t)no) != 0;
        ca->mismatches += memcmp(u, s->want_unfused, sizeof(float) * (size_t)no) != 0;
        ca->mismatches += memcmp(mm, s->want_mm, sizeof(float) * (size_t)nm) != 0;
        ca->mismatches += memcmp(ln, s->want_ln, sizeof(float) * (size_t)nl) != 0;
        ca->mismatches += memcmp(sm, s->want_sm, sizeof(float) * (size_t)nl) != 0;
    }
    free(f); free(u); free(mm); free(ln); free(sm);
    return NULL;
}

static void test_concurrent_calls(void) {
    printf("-- %d threads calling attention, matmul, layer norm and softmax at once (num_threads 0, 1, 2)\n",
           CONC_THREADS);
    conc_shared s;
    memset(&s, 0, sizeof s);
    s.P = prob_new(2, 4, 2, 70, 90, 32, 24);
    s.P.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    tu_rng r = tu_rng_derive(SEED, 30);
    fill_uniform(&r, s.P.q, n_q(&s.P), -1, 1);
    fill_uniform(&r, s.P.k, n_k(&s.P), -1, 1);
    fill_uniform(&r, s.P.v, n_v(&s.P), -1, 1);
    s.mm_m = 96; s.mm_n = 80; s.mm_k = 64;
    s.mm_a = xmalloc(sizeof(float) * (size_t)(s.mm_m * s.mm_k));
    s.mm_b = xmalloc(sizeof(float) * (size_t)(s.mm_n * s.mm_k));
    fill_uniform(&r, s.mm_a, s.mm_m * s.mm_k, -1, 1);
    fill_uniform(&r, s.mm_b, s.mm_n * s.mm_k, -1, 1);
    s.ln_rows = 50; s.ln_n = 700;
    s.ln_x = xmalloc(sizeof(float) * (size_t)(s.ln_rows * s.ln_n));
    s.sm_x = xmalloc(sizeof(float) * (size_t)(s.ln_rows * s.ln_n));
    fill_uniform(&r, s.ln_x, s.ln_rows * s.ln_n, -3, 3);
    fill_uniform(&r, s.sm_x, s.ln_rows * s.ln_n, -3, 3);
    const int64_t no = n_out(&s.P), nm = s.mm_m * s.mm_n, nl = s.ln_rows * s.ln_n;
    s.want_fused = xmalloc(sizeof(float) * (size_t)no);
    s.want_unfused = xmalloc(sizeof(float) * (size_t)no);
    s.want_mm = xmalloc(sizeof(float) * (size_t)nm);
    s.want_ln = xmalloc(sizeof(float) * (size_t)nl);
    s.want_sm = xmalloc(sizeof(float) * (size_t)nl);
    int errors = 0;
    conc_compute(&s, 1, s.want_fused, s.want_unfused, s.want_mm, s.want_ln, s.want_sm, &errors);
    TU_CHECK(errors == 0, "sequential reference calls failed (%d)", errors);

    pthread_t th[CONC_THREADS];
    conc_arg args[CONC_THREADS];
    int started = 0;
    for (int t = 0; t < CONC_THREADS; t++) {
        args[t] = (conc_arg){&s, t, 0, 0};
        if (pthread_create(&th[t], NULL, conc_worker, &args[t]) == 0) started++;
        else break;
    }
    TU_CHECK(started == CONC_THREADS, "started %d of %d threads", started, CONC_THREADS);
    int mismatches = 0;
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        mismatches += args[t].mismatches;
        errors += args[t].errors;
    }
    TU_CHECK(errors == 0, "concurrent calls returned %d errors", errors);
    TU_CHECK(mismatches == 0, "concurrent calls gave %d results different from the sequential ones", mismatches);
    printf("  %d threads x %d iterations x 5 kernels: %d mismatches, %d errors (bitwise comparison)\n", started,
           CONC_ITERS, mismatches, errors);
    free(s.want_fused); free(s.want_unfused); free(s.want_mm); free(s.want_ln); free(s.want_sm);
    free(s.mm_a); free(s.mm_b); free(s.ln_x); free(s.sm_x);
    prob_free(&s.P);
}

/* Back-to-back calls cycling through thread counts. In the pthread pool a worker that sits a call
 * out keeps spinning on the job counter or parks, and must rejoin the next call that needs it; a
 * 1-thread call of about half a millisecond in the cycle outlasts the spin, so both ways back are
 * taken. Every result must be the one-thread bits (the kernels' results never depend on it). */
static void test_thread_count_cycle(void) {
    static const int cycle[] = {2, 3, 1, 5, 8, 2, 1, 3, 2};
    enum { ROUNDS = 20, STEPS = (int)(sizeof cycle / sizeof cycle[0]) };
    printf("-- %d back-to-back calls cycling through 1, 2, 3, 5 and 8 threads\n", ROUNDS * STEPS);
    prob small = prob_random(1, 4, 4, 64, 64, 16, 16, 78), large = prob_random(1, 8, 8, 128, 128, 64, 64, 79);
    float *want_small = xmalloc(sizeof(float) * (size_t)n_out(&small));
    float *want_large = xmalloc(sizeof(float) * (size_t)n_out(&large));
    float *got_small = xmalloc(sizeof(float) * (size_t)n_out(&small));
    float *got_large = xmalloc(sizeof(float) * (size_t)n_out(&large));
    attn_params ws = prob_params(&small, want_small, NULL, 1), wl = prob_params(&large, want_large, NULL, 1);
    TU_CHECK(attn_forward(&ws) == ATTN_OK && attn_forward(&wl) == ATTN_OK, "one-thread reference calls failed");
    int mismatches = 0, errors = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int c = 0; c < STEPS; c++) {
            /* 1 thread: the long call; otherwise the short one on that many threads */
            const int large_call = cycle[c] == 1;
            const prob *P = large_call ? &large : &small;
            float *got = large_call ? got_large : got_small;
            const float *want = large_call ? want_large : want_small;
            attn_params a = prob_params(P, got, NULL, cycle[c]);
            errors += attn_forward(&a) != ATTN_OK;
            mismatches += memcmp(got, want, sizeof(float) * (size_t)n_out(P)) != 0;
        }
    TU_CHECK(errors == 0, "thread-count cycle: %d calls failed", errors);
    TU_CHECK(mismatches == 0, "thread-count cycle: %d results differ from one thread's", mismatches);
    free(want_small); free(want_large); free(got_small); free(got_large);
    prob_free(&small);
    prob_free(&large);
}

/* ---- calls from inside an OpenMP parallel region ---- */

static void test_nested_region(void) {
#ifdef _OPENMP
    printf("-- attn_forward called from inside an OpenMP parallel region (runs serially on each caller)\n");
    prob P = prob_new(2, 4, 4, 130, 150, 40, 24);
    P.causal = ATTN_CAUSAL_TOP_LEFT;
    tu_rng r = tu_rng_derive(SEED, 31);
    fill_uniform(&r, P.q, n_q(&P), -1, 1);
    fill_uniform(&r, P.k, n_k(&P), -1, 1);
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    const int64_t no = n_out(&P);
    float *want = xmalloc(sizeof(float) * (size_t)no);
    attn_params a = prob_params(&P, want, NULL, 2);
    TU_CHECK(attn_forward(&a) == ATTN_OK, "nested: the sequential call failed");
    float *got[4];
    for (int t = 0; t < 4; t++) got[t] = xmalloc(sizeof(float) * (size_t)no);
    int status[4] = {-1, -1, -1, -1}, team = 0, in_parallel[4] = {0};
#pragma omp parallel num_threads(2)
    {
        const int t = omp_get_thread_num();
        if (t == 0) team = omp_get_num_threads();
        in_parallel[t] = omp_in_parallel();
        for (int rep = 0; rep < 2; rep++) {
            attn_params b = prob_params(&P, got[2 * t + rep], NULL, rep == 0 ? 0 : 2);
            status[2 * t + rep] = attn_forward(&b);
        }
    }
    int mismatches = 0, calls = 0;
    for (int t = 0; t < 2 * team && t < 4; t++) {
        calls++;
        TU_CHECK(status[t] == ATTN_OK, "nested call %d: status %d", t, status[t]);
        mismatches += memcmp(got[t], want, sizeof(float) * (size_t)no) != 0;
    }
    TU_CHECK(mismatches == 0, "nested calls: %d results differ from the call outside the region", mismatches);
    printf("  team of %d (omp_in_parallel = %d): %d nested calls (num_threads 0 and 2), %d mismatches\n", team,
           in_parallel[0], calls, mismatches);
    for (int t = 0; t < 4; t++) free(got[t]);
    free(want);
    prob_free(&P);
#else
    printf("-- nested OpenMP region: not an OpenMP build (the pthread fallback runs each caller's own pool)\n");
#endif
}

#if !defined(_OPENMP) && !defined(EDGES_TSAN)
/* The pthread pool after fork(): the child has none of the parent's workers and must start its own
 * (a child that waited on the parent's would hang; alarm() turns that into a failure). */
static void test_pool_after_fork(void) {
    printf("-- pthread pool: a parallel call in a child forked after the workers exist\n");
    prob P = prob_random(1, 4, 4, 64, 64, 16, 16, 77);
    float *want = xmalloc(sizeof(float) * (size_t)n_out(&P)), *got = xmalloc(sizeof(float) * (size_t)n_out(&P));
    attn_params a = prob_params(&P, want, NULL, 3);
    attn_forward(&a); /* the parent's workers now exist */
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        a.out = got;
        const int ok = attn_forward(&a) == ATTN_OK && memcmp(got, want, sizeof(float) * (size_t)n_out(&P)) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    TU_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "a 3-thread call in a forked child did not finish with the parent's result (status 0x%x)", status);
    a.out = got; /* and the parent's pool still works */
    TU_CHECK(attn_forward(&a) == ATTN_OK && memcmp(got, want, sizeof(float) * (size_t)n_out(&P)) == 0,
             "the parent's call after fork differs");
    free(want);
    free(got);
    prob_free(&P);
}
#endif

/* ============================================================================================== */
/* 4. Numerical edges                                                                              */

static void test_large_logits(void) {
    printf("-- logits of magnitude 1e4\n");
    /* Exact: q = 50 x signs, k = 25 x signs, D = 8, scale 1: every score is a multiple of 2500 in
     * [-1e4, 1e4], exact in float, with exact ties at the top. */
    prob P = prob_new(1, 2, 1, 37, 203, 8, 16);
    P.scale = 1.0f;
    tu_rng r = tu_rng_derive(SEED, 40);
    for (int64_t i = 0; i < n_q(&P); i++) P.q[i] = tu_rng_chance(&r, 0.5) ? 50.0f : -50.0f;
    for (int64_t i = 0; i < n_k(&P); i++) P.k[i] = tu_rng_chance(&r, 0.5) ? 25.0f : -25.0f;
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    run_result rr = check_against_reference("logits 1e4, exact", &P, 1e-5, 2);
    table_row("logits up to +-1e4 (exact scores, ties)", "finite; equals the double reference (ties averaged)", &rr);
    /* The same shifted by a bias of -2e4: scores in [-3e4, -1e4], same weights. */
    prob_add_bias(&P, -20000.0f);
    rr = check_against_reference("logits 1e4 - 2e4 bias", &P, 1e-5, 2);
    table_row("logits in [-3e4, -1e4] (bias -2e4)", "finite; the same weights (the row maximum is subtracted)", &rr);
    prob_free(&P);

    /* Random float scores of magnitude ~1e4, rounded in float32 (about 1e4 x 2^-24 x sqrt(D) each):
     * the rows are nearly one-hot, so the output still agrees to 1e-5. */
    prob R = prob_new(1, 2, 2, 33, 150, 64, 32);
    R.scale = 1.0f;
    r = tu_rng_derive(SEED, 41);
    fill_uniform(&r, R.q, n_q(&R), -61, 61);
    fill_uniform(&r, R.k, n_k(&R), -61, 61);
    fill_uniform(&r, R.v, n_v(&R), -1, 1);
    rr = check_against_reference("logits ~1e4, random", &R, 1e-5, 2);
    table_row("logits ~1e4 (random floats, D = 64)", "finite; equals the double reference", &rr);
    prob_free(&R);

    /* Beyond float: q.k = 4 x 4e38 overflows to +inf (NaN row, inf - inf) or, all negative, to -inf
     * (every key masked: the masked-row policy). */
    prob O = prob_new(1, 1, 1, 3, 20, 4, 4);
    O.scale = 1.0f;
    for (int64_t i = 0; i < n_q(&O); i++) O.q[i] = 2e19f;
    for (int64_t i = 0; i < n_k(&O); i++) O.k[i] = 2e19f;
    for (int64_t i = 0; i < n_v(&O); i++) O.v[i] = 1.0f;
    float out[12], lse[3];
    int nan_rows = 0, masked_rows = 0, runs = 0;
    const attn_isa initial = attn_get_isa();
    for (int isa = 0; isa < NISA; isa++) {
        if (!attn_isa_supported((attn_isa)isa)) continue;
        attn_set_isa((attn_isa)isa);
        for (int path = 0; path < 2; path++) {
            for (int64_t i = 0; i < n_k(&O); i++) O.k[i] = 2e19f;
            runs++;
            TU_CHECK(run_once(&O, path, 1, out, lse) == ATTN_OK, "score overflow: status");
            int ok = 1;
            for (int i = 0; i < 12; i++) ok &= isnan(out[i]) != 0;
            for (int i = 0; i < 3; i++) ok &= isnan(lse[i]) != 0;
            nan_rows += ok;
            TU_CHECK(ok, "scores overflowing to +inf [%s/%s]: want NaN rows and NaN lse", attn_isa_name((attn_isa)isa),
                     path_name[path]);
            for (int64_t i = 0; i < n_k(&O); i++) O.k[i] = -2e19f;
            TU_CHECK(run_once(&O, path, 1, out, lse) == ATTN_OK, "score overflow: status");
            ok = 1;
            for (int i = 0; i < 12; i++) ok &= out[i] == 0.0f;
            for (int i = 0; i < 3; i++) ok &= lse[i] == -INFINITY;
            masked_rows += ok;
            TU_CHECK(ok, "scores overflowing to -inf [%s/%s]: want a masked row (zeros, lse -inf)",
                     attn_isa_name((attn_isa)isa), path_name[path]);
        }
    }
    attn_set_isa(initial);
    char line[160];
    snprintf(line, sizeof line, "+inf: NaN row, lse NaN (%d/%d runs); all -inf: masked-row policy (%d/%d)", nan_rows, runs,
             masked_rows, runs);
    table_row("scores beyond FLT_MAX (q.k = 1.6e39)", line, NULL);
    prob_free(&O);
}

static void test_equal_scores(void) {
    printf("-- all-equal scores\n");
    prob P = prob_new(1, 2, 1, 5, 1000, 16, 24);
    tu_rng r = tu_rng_derive(SEED, 42);
    fill_uniform(&r, P.q, n_q(&P), -1, 1);
    fill_uniform(&r, P.k, P.Dqk, -1, 1);
    for (int64_t j = 1; j < P.Lk; j++) memcpy(kat(&P, 0, 0, j), P.k, sizeof(float) * (size_t)P.Dqk);
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    run_result rr = check_against_reference("all-equal scores", &P, 1e-5, 2);
    table_row("all-equal scores (Lk = 1000)", "the mean of V; lse = score + ln Lk", &rr);
    /* And q = 0: every score exactly 0. */
    memset(P.q, 0, sizeof(float) * (size_t)n_q(&P));
    fill_uniform(&r, P.k, n_k(&P), -1, 1);
    rr = check_against_reference("q = 0", &P, 1e-5, 2);
    table_row("q = 0 (every score exactly 0)", "the mean of V; lse = ln Lk", &rr);
    prob_free(&P);
}

static void test_inf_bias(void) {
    printf("-- -inf and -FLT_MAX bias entries\n");
    prob P = prob_new(2, 2, 1, 20, 130, 16, 8);
    tu_rng r = tu_rng_derive(SEED, 43);
    fill_uniform(&r, P.q, n_q(&P), -1, 1);
    fill_uniform(&r, P.k, n_k(&P), -1, 1);
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    prob_add_bias(&P, 0);
    for (int64_t i = 0; i < n_scores(&P); i++) P.bias[i] = tu_rng_chance(&r, 0.3) ? -INFINITY : tu_rng_uniform(&r, -2, 2);
    for (int64_t j = 0; j < P.Lk; j++) P.bias[sidx(&P, 1, 0, 3, j)] = -INFINITY; /* a fully masked row */
    for (int pol = 0; pol < 3; pol++) {
        P.policy = (attn_masked_rows)pol;
        run_result rr = check_against_reference("-inf bias", &P, 1e-5, 2);
        static const char *yields[3] = {"-inf keys get weight 0; an all -inf row: zeros, lse -inf",
                                        "-inf keys get weight 0; an all -inf row: NaN, lse -inf",
                                        "-inf keys get weight 0; an all -inf row: mean of V, lse -inf"};
        char edge[64];
        snprintf(edge, sizeof edge, "-inf bias entries (30%%, one row all), policy %d", pol);
        table_row(edge, yields[pol], &rr);
    }
    /* -FLT_MAX (the Equinox/Flax mask value) on every key of a row: score + -FLT_MAX rounds to
     * -FLT_MAX for every key, so the weights are uniform: the mean of V (over the visible keys). And
     * -FLT_MAX on some keys only: those get weight exp(-FLT_MAX - max) = 0. */
    P.policy = ATTN_MASKED_ROWS_ZERO;
    for (int64_t i = 0; i < n_scores(&P); i++) P.bias[i] = tu_rng_chance(&r, 0.3) ? -FLT_MAX : tu_rng_uniform(&r, -2, 2);
    for (int64_t j = 0; j < P.Lk; j++) P.bias[sidx(&P, 1, 0, 3, j)] = -FLT_MAX;
    double *ref = xmalloc(sizeof(double) * (size_t)n_out(&P)), *lse = xmalloc(sizeof(double) * (size_t)n_rows(&P));
    reference(&P, ref, lse); /* in double, -FLT_MAX is not absorbed: fix the all -FLT_MAX row by hand */
    const int64_t row = (1 * P.Hq + 0) * P.Lq + 3;
    for (int64_t c = 0; c < P.Dv; c++) {
        double s = 0;
        for (int64_t j = 0; j < P.Lk; j++) s += vat(&P, 1, 0, j)[c];
        ref[row * P.Dv + c] = s / (double)P.Lk;
    }
    lse[row] = -FLT_MAX; /* m + ln(Lk) with m = -FLT_MAX: still -FLT_MAX in float */
    run_result rr = run_all("-FLT_MAX bias", &P, ref, lse, 1e-5, 1e-5, NULL, 2);
    table_row("-FLT_MAX bias (30%, one row all)", "those keys weight 0; the all -FLT_MAX row: uniform, mean of V", &rr);
    free(ref); free(lse);
    prob_free(&P);
}

/* Whether the row (b, h, i) sees key j of K/V head g (batch bj). */
static int row_sees(const prob *P, int64_t b, int64_t h, int64_t i, int64_t bj, int64_t g, int64_t j) {
    return b == bj && h / (P->Hq / P->Hkv) == g && ref_visible(P, b, h, i, j);
}

static void test_nonfinite_rows(void) {
    printf("-- NaN and +-inf in one row of Q, K or V: which outputs they reach\n");
    /* GQA (4 query heads on 2 K/V heads), causal top-left, so that some rows of the poisoned K/V head
     * see the poisoned key and some do not; a bool mask hides the key from one row that would see it. */
    prob P = prob_new(2, 4, 2, 100, 100, 16, 12);
    P.causal = ATTN_CAUSAL_TOP_LEFT;
    tu_rng r = tu_rng_derive(SEED, 44);
    fill_uniform(&r, P.q, n_q(&P), -1, 1);
    fill_uniform(&r, P.k, n_k(&P), -1, 1);
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    prob_add_mask(&P, 1);
    const int64_t pb = 1, ph = 2, pi = 70, pg = 1, pj = 50, pd = 3;
    P.mask[sidx(&P, pb, 2, 80, pj)] = 0; /* row 80 of head 2 would see key 50: masked instead */
    const int64_t no = n_out(&P), nr = n_rows(&P);
    float *clean[2][NISA];
    float *out = xmalloc(sizeof(float) * (size_t)no), *lse = xmalloc(sizeof(float) * (size_t)nr);
    const attn_isa initial = attn_get_isa();
    for (int isa = 0; isa < NISA; isa++)
        for (int path = 0; path < 2; path++) {
            clean[path][isa] = NULL;
            if (!attn_isa_supported((attn_isa)isa)) continue;
            attn_set_isa((attn_isa)isa);
            clean[path][isa] = xmalloc(sizeof(float) * (size_t)no);
            run_once(&P, path, 2, clean[path][isa], lse);
        }
    double *ref = xmalloc(sizeof(double) * (size_t)no), *ref_lse = xmalloc(sizeof(double) * (size_t)nr);
    uint8_t *skip = xmalloc((size_t)nr);
    static const float values[3] = {NAN, INFINITY, -INFINITY};
    static const char *value_names[3] = {"NaN", "+inf", "-inf"};
    static const char *site_names[3] = {"Q", "K", "V"};
    for (int site = 0; site < 3; site++)
        for (int vi = 0; vi < 3; vi++) {
            float *cell = site == 0 ? &qat(&P, pb, ph, pi)[pd] : site == 1 ? &kat(&P, pb, pg, pj)[pd] : &vat(&P, pb, pg, pj)[pd];
            const float saved = *cell;
            *cell = values[vi];
            reference(&P, ref, ref_lse);
            /* Rows the poison may reach: Q: its own row. K: rows that see the key. V: rows that see the
             * key; and rows of the same K/V head that do not see it are not compared (see below). */
            int64_t reach = 0, others = 0;
            memset(skip, 0, (size_t)nr);
            for (int64_t b = 0; b < P.B; b++)
                for (int64_t h = 0; h < P.Hq; h++)
                    for (int64_t i = 0; i < P.Lq; i++) {
                        const int64_t row = (b * P.Hq + h) * P.Lq + i;
                        const int reached = site == 0 ? (b == pb && h == ph && i == pi) : row_sees(&P, b, h, i, pb, pg, pj);
                        if (reached) reach++;
                        if (site == 2 && !reached && b == pb && h / (P.Hq / P.Hkv) == pg) skip[row] = 1, others++;
                    }
            char name[64];
            snprintf(name, sizeof name, "%s in one %s row", value_names[vi], site_names[site]);
            run_result rr = run_all(name, &P, ref, ref_lse, 1e-5, 1e-5, site == 2 ? skip : NULL, 2);
            /* Every row it cannot reach is bitwise what it was without the poison. */
            int64_t extra_fused = 0, extra_unfused = 0, leaks = 0;
            for (int isa = 0; isa < NISA; isa++)
                for (int path = 0; path < 2; path++) {
                    if (!clean[path][isa]) continue;
                    attn_set_isa((attn_isa)isa);
                    run_once(&P, path, 2, out, lse);
                    for (int64_t b = 0; b < P.B; b++)
                        for (int64_t h = 0; h < P.Hq; h++)
                            for (int64_t i = 0; i < P.Lq; i++) {
                                const int64_t row = (b * P.Hq + h) * P.Lq + i;
                                const int same_head = b == pb && h / (P.Hq / P.Hkv) == pg;
                                const int reached = site == 0 ? (b == pb && h == ph && i == pi)
                                                              : row_sees(&P, b, h, i, pb, pg, pj);
                                if (reached) continue;
                                const int differs = memcmp(out + row * P.Dv, clean[path][isa] + row * P.Dv,
                                                           sizeof(float) * (size_t)P.Dv) != 0;
                                if (site == 2 && same_head) {
                                    if (differs && isa == (int)initial) (*(path == 0 ? &extra_fused : &extra_unfused))++;
                                } else if (differs) {
                                    leaks++;
                                }
                            }
                }
            attn_set_isa(initial);
            TU_CHECK(leaks == 0, "%s: %lld rows that cannot reach the poisoned element changed", name, (long long)leaks);
            char yields[200];
            if (site == 0)
                snprintf(yields, sizeof yields, "its own row NaN (lse NaN); no other row changes");
            else if (site == 1)
                snprintf(yields, sizeof yields, "%s rows that see the key (%lld)%s; no other row changes",
                         vi == 0 ? "NaN in the" : "NaN or key ignored (+-inf score) in", (long long)reach,
                         vi == 0 ? "" : "");
            else
                snprintf(yields, sizeof yields, "%s in the %lld rows that see the key; same-head rows not seeing it: "
                         "%lld/%lld changed fused, %lld/%lld unfused (0*%s)", vi == 0 ? "NaN" : "inf or NaN",
                         (long long)reach, (long long)extra_fused, (long long)others, (long long)extra_unfused,
                         (long long)others, value_names[vi]);
            table_row(name, yields, &rr);
            *cell = saved;
        }
    for (int isa = 0; isa < NISA; isa++)
        for (int path = 0; path < 2; path++) free(clean[path][isa]);
    free(ref); free(ref_lse); free(skip); free(out); free(lse);
    prob_free(&P);
}

/* NaN scores on the row kernel (few queries: up to 6, 12, 24 rows on 4-, 8-, 16-float vectors) and
 * the tile kernel alike, for Lq = 1..30: a NaN in one query, in one key, or a bias row NaN on every
 * key must give that row NaN and lse NaN, as the unfused path and the reference do. The row kernel's
 * maximum ignores NaN, so a key chunk whose scores are all NaN reports maximum -inf and sum NaN;
 * its merge once took that for a fully masked row (zeros, lse -inf). Lk = 1100 splits each row into
 * up to 3 key chunks, so a NaN key is alone in a chunk with finite scores next to it. */
static void test_nan_short_rows(void) {
    printf("-- NaN in one query, one key or one bias row, Lq = 1..30 (row and tile kernels)\n");
    static const char *site_names[3] = {"q", "k", "bias"};
    static const int64_t key_counts[2] = {4, 1100};
    run_result total[3] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
    for (int site = 0; site < 3; site++)
        for (int lk = 0; lk < 2; lk++)
            for (int64_t lq = 1; lq <= TILE_KERNEL_LQ; lq++) {
                prob P = prob_random(1, 2, 1, lq, key_counts[lk], 8, 8, (uint64_t)(100 + site * 64 + lk * 32 + lq));
                const int64_t i = lq / 2, j = P.Lk - 1;
                if (site == 0) qat(&P, 0, 1, i)[0] = NAN;
                if (site == 1) kat(&P, 0, 0, j)[3] = NAN;
                if (site == 2) {
                    prob_add_bias(&P, 0.25f);
                    for (int64_t t = 0; t < P.Lk; t++) P.bias[sidx(&P, 0, 1, i, t)] = NAN;
                }
                double *ref = xmalloc(sizeof(double) * (size_t)n_out(&P));
                double *ref_lse = xmalloc(sizeof(double) * (size_t)n_rows(&P));
                reference(&P, ref, ref_lse);
                char name[80];
                snprintf(name, sizeof name, "NaN in %s, Lq = %lld, Lk = %lld", site_names[site], (long long)lq,
                         (long long)P.Lk);
                const run_result rr = run_all(name, &P, ref, ref_lse, 1e-5, 1e-5, NULL, 2);
                total[site].runs += rr.runs;
                total[site].failures += rr.failures;
                if (rr.max_err > total[site].max_err) total[site].max_err = rr.max_err;
                if (rr.max_lse_err > total[site].max_lse_err) total[site].max_lse_err = rr.max_lse_err;
                free(ref);
                free(ref_lse);
                prob_free(&P);
            }
    table_row("NaN in one query, Lq = 1..30", "its row NaN, lse NaN (row and tile kernels)", &total[0]);
    table_row("NaN in one key, Lq = 1..30", "NaN in every row that sees the key, lse NaN", &total[1]);
    table_row("bias row NaN on every key, Lq = 1..30", "that row NaN, lse NaN", &total[2]);
}

/* A stride of a dimension of size 1 is never used, so validation accepts any value for it; the
 * kernels must not compute with it either (the fuzzer found the decode kernel turning the key
 * position stride into bytes: signed overflow under UBSan). One key: the output is its value row. */
static void test_unused_huge_strides(void) {
    printf("-- strides of size-1 dimensions near INT64_MAX, every K/V type (row and tile kernels)\n");
    static const attn_dtype types[3] = {ATTN_DTYPE_F32, ATTN_DTYPE_F16, ATTN_DTYPE_BF16};
    static const char *type_names[3] = {"f32", "f16", "bf16"};
    enum { D = 8, LQ_TILE = 64 };
    float q[LQ_TILE * D], v_row[D], out[LQ_TILE * D];
    uint16_t k_half[D], v_half[D];
    float k_row[D];
    for (int d = 0; d < D; d++) {
        k_row[d] = 0.25f * (float)(d - 3);
        v_row[d] = 1.0f + 0.5f * (float)d; /* exact in f16 and bf16 */
    }
    for (int t = 0; t < LQ_TILE * D; t++) q[t] = 0.125f * (float)(t % 7);
    for (int ti = 0; ti < 3; ti++) {
        attn_convert(k_half, types[ti] == ATTN_DTYPE_F32 ? ATTN_DTYPE_F16 : types[ti], k_row, ATTN_DTYPE_F32, D);
        attn_convert(v_half, types[ti] == ATTN_DTYPE_F32 ? ATTN_DTYPE_F16 : types[ti], v_row, ATTN_DTYPE_F32, D);
        const void *k = types[ti] == ATTN_DTYPE_F32 ? (const void *)k_row : (const void *)k_half;
        const void *v = types[ti] == ATTN_DTYPE_F32 ? (const void *)v_row : (const void *)v_half;
        for (int64_t lq = 1; lq <= LQ_TILE; lq += LQ_TILE - 1) {
            attn_params a = attn_params_default();
            a.batch = a.heads_q = a.heads_kv = 1;
            a.len_q = lq;
            a.len_k = 1;
            a.dim_qk = a.dim_v = D;
            a.q = q;
            a.k = k;
            a.v = v;
            a.out = out;
            a.k_dtype = a.v_dtype = types[ti];
            const int64_t huge = INT64_MAX / 3;
            a.q_stride[0] = a.q_stride[1] = huge;
            a.q_stride[2] = D;
            a.k_stride[0] = a.k_stride[1] = a.k_stride[2] = huge;
            a.v_stride[0] = a.v_stride[1] = a.v_stride[2] = huge;
            a.out_stride[0] = a.out_stride[1] = huge;
            a.out_stride[2] = D;
            const attn_status st = attn_forward(&a);
            int same = st == ATTN_OK;
            for (int64_t t = 0; same && t < lq * D; t++) same = out[t] == v_row[t % D];
            TU_CHECK(same, "unused huge strides, %s K/V, Lq %lld: status %s or output not the value row",
                     type_names[ti], (long long)lq, attn_status_string(st));
        }
    }
}

/* The row NaN whatever dropout keeps: dropping the NaN weight must not turn the row finite. */
static void test_nan_with_dropout(void) {
    printf("-- NaN in one query under dropout\n");
    const attn_isa initial = attn_get_isa();
    for (int64_t lq = 1; lq <= TILE_KERNEL_LQ; lq += 29) {
        prob P = prob_random(1, 1, 1, lq, 4, 8, 8, (uint64_t)(300 + lq));
        qat(&P, 0, 0, 0)[0] = NAN;
        float *out = xmalloc(sizeof(float) * (size_t)n_out(&P)), *lse = xmalloc(sizeof(float) * (size_t)n_rows(&P));
        for (int isa = 0; isa < NISA; isa++) {
            if (!attn_isa_supported((attn_isa)isa)) continue;
            attn_set_isa((attn_isa)isa);
            for (int path = 0; path < 2; path++) {
                attn_params a = prob_params(&P, out, lse, 1);
                a.dropout_p = 0.9f; /* drops most weights, the NaN ones among them */
                const attn_status st = path == 0 ? attn_forward(&a) : attn_forward_unfused(&a);
                int nan_row = isnan(lse[0]) != 0;
                for (int64_t c = 0; c < P.Dv; c++) nan_row &= isnan(out[c]) != 0;
                TU_CHECK(st == ATTN_OK && nan_row, "NaN query, dropout 0.9, Lq = %lld [%s/%s]: want a NaN row, lse NaN",
                         (long long)lq, attn_isa_name((attn_isa)isa), path_name[path]);
            }
        }
        free(out);
        free(lse);
        prob_free(&P);
    }
    attn_set_isa(initial);
}

static void test_masked_rows(void) {
    printf("-- fully masked rows, by every mechanism, under every policy\n");
    /* key_len 0 (all of batch 0), a bool mask row of zeros, a bias row of -inf. */
    prob P = prob_new(2, 2, 1, 6, 9, 5, 7);
    tu_rng r = tu_rng_derive(SEED, 45);
    fill_uniform(&r, P.q, n_q(&P), -1, 1);
    fill_uniform(&r, P.k, n_k(&P), -1, 1);
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    P.key_len = xmalloc(sizeof(int64_t) * 2);
    P.key_len[0] = 0;
    P.key_len[1] = 9;
    prob_add_mask(&P, 1);
    prob_add_bias(&P, 0.25f);
    for (int64_t j = 0; j < P.Lk; j++) {
        P.mask[sidx(&P, 1, 0, 2, j)] = 0;
        P.bias[sidx(&P, 1, 1, 4, j)] = -INFINITY;
    }
    /* causal bottom-right and a 0-wide window with Lq > Lk: the first Lq - Lk rows see no key. */
    prob C = prob_new(1, 2, 2, 12, 9, 8, 3);
    fill_uniform(&r, C.q, n_q(&C), -1, 1);
    fill_uniform(&r, C.k, n_k(&C), -1, 1);
    fill_uniform(&r, C.v, n_v(&C), -1, 1);
    static const char *yields[3] = {"zeros; lse -inf", "NaN; lse -inf", "the mean of V over all Lk keys; lse -inf"};
    for (int pol = 0; pol < 3; pol++) {
        char edge[80];
        P.policy = C.policy = (attn_masked_rows)pol;
        run_result rr = check_against_reference("masked rows: key_len, mask, bias", &P, 1e-5, 2);
        snprintf(edge, sizeof edge, "masked rows (key_len 0, mask, -inf bias), policy %d", pol);
        table_row(edge, yields[pol], &rr);
        C.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
        C.wl = C.wr = -1;
        rr = check_against_reference("masked rows: causal bottom-right, Lq > Lk", &C, 1e-5, 2);
        snprintf(edge, sizeof edge, "masked rows (causal bottom-right, Lq > Lk), policy %d", pol);
        table_row(edge, yields[pol], &rr);
        C.causal = ATTN_CAUSAL_NONE;
        C.wl = C.wr = 0;
        rr = check_against_reference("masked rows: window 0, Lq > Lk", &C, 1e-5, 2);
        snprintf(edge, sizeof edge, "masked rows (window [0, 0], Lq > Lk), policy %d", pol);
        table_row(edge, yields[pol], &rr);
    }
    prob_free(&P);
    prob_free(&C);
}

static void test_dims(void) {
    printf("-- D = 1 and D = 512\n");
    static const int64_t dims[4][2] = {{1, 1}, {1, 512}, {512, 1}, {512, 512}};
    for (int d = 0; d < 4; d++) {
        prob P = prob_random(2, 2, 1, 33, 77, dims[d][0], dims[d][1], 46 + (uint64_t)d);
        P.key_len = xmalloc(sizeof(int64_t) * 2);
        P.key_len[0] = 77;
        P.key_len[1] = 40;
        char name[64];
        snprintf(name, sizeof name, "Dqk = %lld, Dv = %lld", (long long)dims[d][0], (long long)dims[d][1]);
        run_result rr = check_against_reference(name, &P, 1e-5, 2);
        P.causal = ATTN_CAUSAL_TOP_LEFT;
        run_result rc = check_against_reference(name, &P, 1e-5, 2);
        rr.runs += rc.runs;
        rr.failures += rc.failures;
        if (rc.max_err > rr.max_err) rr.max_err = rc.max_err;
        if (rc.max_lse_err > rr.max_lse_err) rr.max_lse_err = rc.max_lse_err;
        char edge[96];
        snprintf(edge, sizeof edge, "%s (key_len, +- causal)", name);
        table_row(edge, "equals the double reference", &rr);
        prob_free(&P);
    }
}

/* ---- denormals ---- */

#ifdef EDGES_X86
#define MXCSR_FTZ 0x8000u
#define MXCSR_DAZ 0x0040u
#endif

/* Best of `reps` times of one call, in ms. */
static double time_call(const prob *P, int path, float *out, float *lse, int reps) {
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        const double t0 = tu_now();
        run_once(P, path, 1, out, lse);
        const double t = ms_since(t0);
        if (t < best) best = t;
    }
    return best;
}

static void test_denormals(void) {
    printf("-- denormal inputs (timings: figures, not assertions)\n");
    prob P = prob_new(1, 2, 2, 512, 512, 64, 64);
    tu_rng r = tu_rng_derive(SEED, 50);
    const int64_t nq = n_q(&P), nk = n_k(&P), nv = n_v(&P);
    float *nq_ = xmalloc(sizeof(float) * (size_t)nq), *nk_ = xmalloc(sizeof(float) * (size_t)nk), *nv_ = xmalloc(sizeof(float) * (size_t)nv);
    fill_uniform(&r, nq_, nq, -1, 1);
    fill_uniform(&r, nk_, nk, -1, 1);
    fill_uniform(&r, nv_, nv, -1, 1);
    /* Denormal-heavy: every input a subnormal float (|x| < FLT_MIN = 1.18e-38). */
    float *dq = xmalloc(sizeof(float) * (size_t)nq), *dk = xmalloc(sizeof(float) * (size_t)nk), *dv = xmalloc(sizeof(float) * (size_t)nv);
    for (int64_t i = 0; i < nq; i++) dq[i] = nq_[i] * 1e-39f;
    for (int64_t i = 0; i < nk; i++) dk[i] = nk_[i] * 1e-39f;
    for (int64_t i = 0; i < nv; i++) dv[i] = nv_[i] * 1e-39f;
    int subnormal = 0;
    for (int64_t i = 0; i < nv; i++) subnormal += fpclassify(dv[i]) == FP_SUBNORMAL;
    float *out = xmalloc(sizeof(float) * (size_t)n_out(&P)), *lse = xmalloc(sizeof(float) * (size_t)n_rows(&P));

    /* Correctness: scores underflow to 0 (1e-78), so the weights are uniform and out is the mean of
     * V, itself subnormal; compared relative to max |ref|. */
    memcpy(P.q, dq, sizeof(float) * (size_t)nq);
    memcpy(P.k, dk, sizeof(float) * (size_t)nk);
    memcpy(P.v, dv, sizeof(float) * (size_t)nv);
    double *ref = xmalloc(sizeof(double) * (size_t)n_out(&P)), *ref_lse = xmalloc(sizeof(double) * (size_t)n_rows(&P));
    reference(&P, ref, ref_lse);
    const double mx = tu_max_abs_finite(ref, (size_t)n_out(&P));
    double worst = 0;
    const attn_isa initial = attn_get_isa();
    int runs = 0;
    for (int isa = 0; isa < NISA; isa++) {
        if (!attn_isa_supported((attn_isa)isa)) continue;
        attn_set_isa((attn_isa)isa);
        for (int path = 0; path < 2; path++) {
            runs++;
            TU_CHECK(run_once(&P, path, 1, out, lse) == ATTN_OK, "denormals: status");
            /* A NaN difference is kept (fmax would drop it), and the loop is not an fmax reduction,
             * which GCC 12's aarch64 vectoriser crashes on (internal compiler error). */
            double e = 0;
            for (int64_t i = 0; i < n_out(&P); i++) {
                const double d = fabs((double)out[i] - ref[i]);
                if (!(d <= e)) e = d;
            }
            e /= mx;
            if (!(e <= worst)) worst = e;
            TU_CHECK(e <= 1e-3, "denormal inputs [%s/%s]: error %.3g relative to max |ref| %.3g", attn_isa_name((attn_isa)isa),
                     path_name[path], e, mx);
        }
    }
    attn_set_isa(initial);
    char line[200];
    snprintf(line, sizeof line, "gradual underflow (IEEE): the mean of V, subnormal, within %.1e of max|ref| "
             "(%d runs; %d/%lld V subnormal)", worst, runs, subnormal, (long long)nv);
    table_row("denormal Q, K, V (default MXCSR)", line, NULL);

#ifdef EDGES_X86
    /* With FTZ and DAZ set by the caller on its thread (1 thread: no worker is involved), denormal
     * inputs read as zero: every output is exactly 0. The library neither sets nor clears them. */
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | MXCSR_FTZ | MXCSR_DAZ);
    int zero_runs = 0;
    for (int path = 0; path < 2; path++) {
        run_once(&P, path, 1, out, lse);
        int zero = 1;
        for (int64_t i = 0; i < n_out(&P); i++) zero &= out[i] == 0.0f;
        zero_runs += zero;
        TU_CHECK(zero, "denormal inputs under FTZ|DAZ [%s]: want exact zeros", path_name[path]);
    }
    const unsigned after = _mm_getcsr();
    _mm_setcsr(csr);
    TU_CHECK((after & (MXCSR_FTZ | MXCSR_DAZ)) == (MXCSR_FTZ | MXCSR_DAZ), "the library changed the caller's MXCSR");
    snprintf(line, sizeof line, "inputs read as 0: out exactly 0 (%d/2 paths); the library leaves MXCSR as it found it",
             zero_runs);
    table_row("denormal Q, K, V with the caller's FTZ|DAZ", line, NULL);
#endif

    /* Timings, 1 thread, best of 5, on the default ISA. */
    const int reps = 5;
    double t_norm[2], t_den[2], t_den_ftz[2] = {0, 0};
    for (int path = 0; path < 2; path++) {
        memcpy(P.q, nq_, sizeof(float) * (size_t)nq);
        memcpy(P.k, nk_, sizeof(float) * (size_t)nk);
        memcpy(P.v, nv_, sizeof(float) * (size_t)nv);
        t_norm[path] = time_call(&P, path, out, lse, reps);
        memcpy(P.q, dq, sizeof(float) * (size_t)nq);
        memcpy(P.k, dk, sizeof(float) * (size_t)nk);
        memcpy(P.v, dv, sizeof(float) * (size_t)nv);
        t_den[path] = time_call(&P, path, out, lse, reps);
#ifdef EDGES_X86
        _mm_setcsr(csr | MXCSR_FTZ | MXCSR_DAZ);
        t_den_ftz[path] = time_call(&P, path, out, lse, reps);
        _mm_setcsr(csr);
#endif
    }
    /* Denormal results from normal inputs: weights ~1e-10 times V ~1e-30 give products ~1e-40. */
    for (int64_t i = 0; i < nv; i++) P.v[i] = nv_[i] * 1e-30f;
    memcpy(P.q, nq_, sizeof(float) * (size_t)nq);
    memcpy(P.k, nk_, sizeof(float) * (size_t)nk);
    double t_den_products = time_call(&P, 0, out, lse, reps);
    printf("DENORMAL | %s, 1 thread, B=1 H=2 L=512 D=64, best of %d%s\n", attn_isa_name(initial), reps,
#ifdef EDGES_SANITIZED
           " (sanitizer build: timings not meaningful)"
#else
           ""
#endif
    );
    for (int path = 0; path < 2; path++)
        printf("DENORMAL | %-7s normal %.2f ms | denormal inputs %.2f ms (x%.2f) | denormal inputs + FTZ|DAZ %.2f ms (x%.2f)\n",
               path_name[path], t_norm[path], t_den[path], t_den[path] / t_norm[path], t_den_ftz[path],
               t_den_ftz[path] / t_norm[path]);
    printf("DENORMAL | fused, V ~1e-30 (subnormal products in P.V): %.2f ms (x%.2f)\n", t_den_products,
           t_den_products / t_norm[0]);
    free(nq_); free(nk_); free(nv_); free(dq); free(dk); free(dv); free(out); free(lse); free(ref); free(ref_lse);
    prob_free(&P);
}

/* ---- one query, a million keys ---- */

static void test_long_row(void) {
    const int64_t Lk = 1000000;
    printf("-- one query against Lk = %lld keys\n", (long long)Lk);
    prob P = prob_new(1, 1, 1, 1, Lk, 16, 16);
    tu_rng r = tu_rng_derive(SEED, 60);
    fill_uniform(&r, P.q, n_q(&P), -1, 1);
    fill_uniform(&r, P.k, n_k(&P), -2, 2);
    fill_uniform(&r, P.v, n_v(&P), -1, 1);
    float out[16], lse[1];

    /* Workspace: the fused one is the same for Lk = 1e6 as for Lk = 2^40 (independent of Lk), and
     * small; the unfused one holds the Lq x Lk row. */
    size_t w_long = 0, w_huge = 0, u_long = 0;
    attn_params a = prob_params(&P, out, lse, 2);
    attn_forward_workspace(&a, &w_long);
    attn_forward_unfused_workspace(&a, &u_long);
    a.len_k = (int64_t)1 << 40;
    a.k_stride[2] = a.v_stride[2] = 0; /* only for the size query: nothing is read */
    a.k_stride[0] = a.k_stride[1] = a.v_stride[0] = a.v_stride[1] = 0;
    attn_forward_workspace(&a, &w_huge);
    TU_CHECK(w_long == w_huge, "fused workspace for Lk = 1e6 (%zu bytes) differs from Lk = 2^40 (%zu)", w_long, w_huge);
    TU_CHECK(w_long < (1 << 20), "fused workspace for Lk = 1e6 is %zu bytes (want < 1 MiB)", w_long);

    /* Peak memory during the fused call: at most its workspace plus thread stacks. */
    const int64_t rss0 = max_rss_bytes();
    run_once(&P, 0, 2, out, lse);
    const int64_t rss_delta = max_rss_bytes() - rss0;
    TU_CHECK(rss_delta < (16 << 20), "peak RSS grew by %lld bytes during the fused Lk = 1e6 call", (long long)rss_delta);

    run_result rr = check_against_reference("Lk = 1e6", &P, 1e-5, 2);
    P.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    P.wl = 1000;
    run_result rw = check_against_reference("Lk = 1e6, causal bottom-right, window 1000", &P, 1e-5, 2);
    P.causal = ATTN_CAUSAL_NONE;
    P.wl = -1;
    P.key_len = xmalloc(sizeof(int64_t));
    P.key_len[0] = Lk - 1;
    run_result rk = check_against_reference("Lk = 1e6, key_len 999999", &P, 1e-5, 2);
    rr.runs += rw.runs + rk.runs;
    rr.failures += rw.failures + rk.failures;
    rr.max_err = fmax(rr.max_err, fmax(rw.max_err, rk.max_err));
    rr.max_lse_err = fmax(rr.max_lse_err, fmax(rw.max_lse_err, rk.max_lse_err));

    /* 30 queries (the tile kernel on every ISA, not the row kernel) against the same million keys. */
    prob T = prob_new(1, 1, 1, TILE_KERNEL_LQ, Lk, 16, 16);
    memcpy(T.k, P.k, sizeof(float) * (size_t)n_k(&P));
    memcpy(T.v, P.v, sizeof(float) * (size_t)n_v(&P));
    fill_uniform(&r, T.q, n_q(&T), -1, 1);
    T.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    run_result rt = check_against_reference("Lq = 30, Lk = 1e6, causal bottom-right", &T, 1e-5, 2);
    size_t w_tile = 0, w_tile_short = 0;
    attn_params at = prob_params(&T, NULL, NULL, 2);
    at.out = T.q; /* only for the size queries */
    attn_forward_workspace(&at, &w_tile);
    at.len_k = 64;
    attn_forward_workspace(&at, &w_tile_short);
    TU_CHECK(w_tile == w_tile_short, "tile-kernel workspace for Lk = 1e6 (%zu) differs from Lk = 64 (%zu)", w_tile,
             w_tile_short);
    prob_free(&T);
    rr.runs += rt.runs;
    rr.failures += rt.failures;
    rr.max_err = fmax(rr.max_err, rt.max_err);
    rr.max_lse_err = fmax(rr.max_lse_err, rt.max_lse_err);
    char line[200];
    snprintf(line, sizeof line, "correct; fused workspace %zu B (same for Lk 2^40), unfused %zu B; peak RSS +%lld KiB", w_long, u_long,
             (long long)(rss_delta >> 10));
    table_row("Lq = 1 and 30, Lk = 1,000,000, D = 16 (+causal/window/key_len)", line, &rr);
    prob_free(&P);
}

/* ============================================================================================== */

int main(int argc, char **argv) {
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else {
            printf("usage: %s [--quick]   (--quick: skip the million-key row and the timings)\n", argv[0]);
            return 2;
        }
    }
    const double t0 = tu_now();
#if defined(__GLIBC__)
    /* A fixed mmap threshold: large blocks always come from mmap and go back on free, so the heap
     * keeps no free megabytes that would let an allocation succeed under the address space limit. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    printf("test_edges: libattn %s, default ISA %s, %d threads by default%s\n", attn_version(), attn_isa_name(attn_get_isa()),
           attn_get_num_threads(),
#ifdef _OPENMP
           ", OpenMP build"
#else
           ", pthread build (no OpenMP)"
#endif
    );
    /* Child processes first, before any thread exists (fork and OpenMP runtimes do not mix). */
    test_allocation_failure();
    test_workspace_errors();
    test_struct_size();
    test_struct_size_dense();
    test_struct_size_rotary_layouts();
    test_thread_resolution();
    test_concurrent_calls();
    test_thread_count_cycle();
    test_nested_region();
#if !defined(_OPENMP) && !defined(EDGES_TSAN) /* TSan cannot start threads in a forked child */
    test_pool_after_fork();
#endif
    test_large_logits();
    test_equal_scores();
    test_inf_bias();
    test_nonfinite_rows();
    test_nan_short_rows();
    test_unused_huge_strides();
    test_nan_with_dropout();
    test_masked_rows();
    test_dims();
    if (!quick) {
        test_denormals();
        test_long_row();
    }
    printf("time %.1f s\n", tu_now() - t0);
    return tu_summary();
}
