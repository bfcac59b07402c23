/*
 * attn_bench.c: what fusion buys, measured. `make bench` runs it.
 *
 * First it measures this machine's limits: the FMA peak (an unrolled loop of independent vector
 * FMAs on the instruction set the library uses) and the memory bandwidth (a vector sum over 1 GiB),
 * for each thread count. Then, for each shape of the standard table (B = 1, H = 8, fp32), it times
 * the fused kernel and the unfused path alternately (fused, unfused, fused, ...) after a warm-up and
 * prints one row as soon as the shape is done: medians, speed-up, GFLOP/s, % of peak and each
 * path's extra memory (its workspace, from attn_forward_workspace). A sample of a call shorter than
 * 10 ms is the mean of enough back-to-back calls to last that long (SAMPLE_SECONDS).
 *
 * GFLOP/s counts 4·B·H·Lq·Lk·D for attention, half of that when causal. Then the dense matrix
 * multiply the modules use (attn_matmul, square M = N = K, 2·N³ FLOPs), and last, decoding (one
 * query against a 4096-key cache, with float32, f16 and bf16 K/V, alternating) compared with the
 * memory bandwidth a plain sum of the same K and V bytes reaches in the same rounds, and bf16
 * prefill (q, k and v all bf16, the fused kernel, timed alternately with the same problem in float32
 * and with bf16 widened to float: attn_bf16_dot OFF). The first line names the CPU (Linux:
 * /proc/cpuinfo). Between the table and the matrix multiply, the backward table (--backward
 * lengths, B = 1, H = 8, fp32): attn_forward, then attn_backward against attn_backward_unfused (the
 * plain-loop reference, timed up to --unfused-backward-max, 1024 by default), with each path's
 * workspace; GFLOP/s counts 10·B·H·Lq·Lk·D for the backward's five products, half when causal.
 *
 *   attn_bench [--quick] [--lengths 256,1024] [--dims 64,128] [--causal 0,1] [--threads 1,2]
 *              [--reps N] [--format table|csv|json] [--no-unfused] [--no-decode]
 *              [--matmul 512,1024] [--no-matmul] [--no-attention]
 *              [--prefill-bf16 4096] [--no-prefill-bf16]
 *              [--dtype f32|f16|bf16]  (q, k, v and out of the table's problems; the data rounded)
 *              [--no-machine]   (skip measuring the peak and bandwidth; % of peak is then NaN)
 *              [--backward 512,1024,2048,4096] [--no-backward] [--unfused-backward-max 1024]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn.h"
#include "vector_sum.h"

#define MAX_LIST 16

typedef struct options {
    int lengths[MAX_LIST], n_lengths;
    int dims[MAX_LIST], n_dims;
    int causal[MAX_LIST], n_causal;
    int threads[MAX_LIST], n_threads;
    int reps; /* 0: adaptive */
    int unfused;
    int decode;
    int matmul[MAX_LIST], n_matmul; /* attn_matmul sizes */
    int prefill[MAX_LIST], n_prefill; /* bf16 prefill lengths (dims and causal from the table's lists) */
    int backward[MAX_LIST], n_backward; /* backward table lengths (dims, causal, threads as the table's) */
    int unfused_backward_max; /* the unfused backward (plain loops) only up to this length */
    int machine; /* measure the FMA peak and bandwidth first */
    attn_dtype dtype; /* of q, k, v and out in the table (--dtype) */
    const char *format;
} options;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int parse_list(const char *s, int *out) {
    int n = 0;
    while (*s && n < MAX_LIST) {
        out[n++] = atoi(s);
        const char *comma = strchr(s, ',');
        if (!comma) break;
        s = comma + 1;
    }
    return n;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), compare_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- machine limits ---- */

/* Twelve independent FMA chains per thread: enough to cover the FMA latency on every current core. */
#define PEAK_CHAINS 12
#define PEAK_KERNEL(name, attributes, width)                                                        \
    attributes static float name(long iters) {                                                      \
        typedef float vec __attribute__((vector_size(width * 4)));                                  \
        vec acc[PEAK_CHAINS], mul, add;                                                             \
        for (int l = 0; l < width; l++) mul[l] = 0.999999f, add[l] = 1e-7f;                         \
        for (int c = 0; c < PEAK_CHAINS; c++)                                                       \
            for (int l = 0; l < width; l++) acc[c][l] = (float)c;                                   \
        for (long i = 0; i < iters; i++) {                                                          \
            _Pragma("GCC unroll 12") for (int c = 0; c < PEAK_CHAINS; c++) acc[c] = acc[c] * mul + add; \
        }                                                                                           \
        float s = 0;                                                                                \
        for (int c = 0; c < PEAK_CHAINS; c++) s += acc[c][0];                                       \
        return s;                                                                                   \
    }

#if defined(__x86_64__)
PEAK_KERNEL(peak_avx512, __attribute__((target("avx512f,fma"))), 16)
PEAK_KERNEL(peak_avx2, __attribute__((target("avx2,fma"))), 8)
#endif
PEAK_KERNEL(peak_base, , 4)

static volatile float sink;

/* GFLOP/s of `threads` threads each running the FMA loop of the ISA the library uses: the best of
 * `reps` runs of `iters` iterations (20M: about 40 ms on one AVX2 core). */
static double measure_peak(int threads, long iters, int reps) {
    int width = 4;
    double best = 0;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now_seconds();
#pragma omp parallel num_threads(threads)
        {
            float s;
            switch (attn_get_isa()) {
#if defined(__x86_64__)
            case ATTN_ISA_AVX512: s = peak_avx512(iters); width = 16; break;
            case ATTN_ISA_AVX2: s = peak_avx2(iters); width = 8; break;
#endif
            default: s = peak_base(iters); width = 4; break;
            }
            sink = s;
        }
        double t = now_seconds() - t0;
        double gflops = 2.0 * PEAK_CHAINS * width * (double)iters * threads / t * 1e-9;
        if (gflops > best) best = gflops;
    }
    return best;
}

/* GB/s of a parallel sum over 1 GiB (read bandwidth, what attention's K/V streaming needs). */
static double measure_bandwidth(int threads) {
    const size_t n = (size_t)1 << 28, chunk = n / 64;
    float *x = malloc(n * sizeof(float));
    if (!x) return 0;
#pragma omp parallel for num_threads(threads)
    for (long i = 0; i < (long)n; i++) x[i] = 1.0f;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_seconds();
        float total = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : total)
        for (long c = 0; c < 64; c++) total += vector_sum(x + (size_t)c * chunk, chunk);
        double t = now_seconds() - t0;
        sink = total;
        double gbs = (double)(n * sizeof(float)) / t * 1e-9;
        if (gbs > best) best = gbs;
    }
    free(x);
    return best;
}

/* ---- attention problems ---- */

typedef struct problem {
    attn_params p;
    float *q, *k, *v, *out;
    void *half[3]; /* q, k, v as the table's half type (--dtype), else NULL */
} problem;

static int problem_make(problem *pb, int len, int dim, int causal, int threads) {
    const int heads = 8;
    const size_t n = (size_t)heads * len * dim;
    pb->q = malloc(n * sizeof(float));
    pb->k = malloc(n * sizeof(float));
    pb->v = malloc(n * sizeof(float));
    pb->out = malloc(n * sizeof(float));
    if (!pb->q || !pb->k || !pb->v || !pb->out) return 0;
    unsigned s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        pb->q[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        pb->k[i] = (float)((s * 7u) >> 8) / 16777216.0f - 0.5f;
        pb->v[i] = (float)((s * 13u) >> 8) / 16777216.0f - 0.5f;
    }
    attn_params p = attn_params_default();
    p.batch = 1;
    p.heads_q = p.heads_kv = heads;
    p.len_q = p.len_k = len;
    p.dim_qk = p.dim_v = dim;
    const int64_t stride[3] = {(int64_t)heads * len * dim, (int64_t)len * dim, dim};
    memcpy(p.q_stride, stride, sizeof stride);
    memcpy(p.k_stride, stride, sizeof stride);
    memcpy(p.v_stride, stride, sizeof stride);
    memcpy(p.out_stride, stride, sizeof stride);
    p.q = pb->q;
    p.k = pb->k;
    p.v = pb->v;
    p.out = pb->out;
    p.causal = causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
    p.num_threads = threads;
    pb->p = p;
    pb->half[0] = pb->half[1] = pb->half[2] = NULL;
    return 1;
}

/* The problem's q, k, v and out as `dtype` (q, k and v rounded; out into the float buffer). */
static int problem_retype(problem *pb, attn_dtype dtype) {
    if (dtype == ATTN_DTYPE_F32) return 1;
    const int64_t n = pb->p.heads_q * pb->p.len_q * pb->p.dim_qk;
    const float *src[3] = {pb->q, pb->k, pb->v};
    for (int t = 0; t < 3; t++) {
        pb->half[t] = malloc((size_t)n * 2);
        if (!pb->half[t]) return 0;
        attn_convert(pb->half[t], dtype, src[t], ATTN_DTYPE_F32, n);
    }
    pb->p.q = pb->half[0];
    pb->p.k = pb->half[1];
    pb->p.v = pb->half[2];
    pb->p.q_dtype = pb->p.k_dtype = pb->p.v_dtype = pb->p.out_dtype = dtype;
    return 1;
}

static void problem_free(problem *pb) {
    for (int t = 0; t < 3; t++) free(pb->half[t]);
    free(pb->q);
    free(pb->k);
    free(pb->v);
    free(pb->out);
}

/* The mean time of `calls` back-to-back calls. */
static double time_calls(attn_status (*fn)(const attn_params *), const attn_params *p, int calls) {
    double t0 = now_seconds();
    for (int c = 0; c < calls; c++) {
        attn_status st = fn(p);
        if (st != ATTN_OK) {
            fprintf(stderr, "attn_bench: %s\n", attn_status_string(st));
            exit(1);
        }
    }
    return (now_seconds() - t0) / calls;
}

static double time_call(attn_status (*fn)(const attn_params *), const attn_params *p) { return time_calls(fn, p, 1); }

/* A table sample is at least this long: shorter calls are timed as a batch of back-to-back calls.
 * A lone call of a millisecond or less runs in the wake of whatever came before it (here, the peak
 * measurement): on a Zen 4, L = 256, D = 64, causal, 1 thread, the call right after 4 ms of FMAs, 4 ms
 * of scalar work or 4 ms asleep ran at 0.64-0.90x its back-to-back speed, on a clock 4-7 % slower
 * (a dependent-add probe), so one-call samples measured those transitions more than the kernel. */
#define SAMPLE_SECONDS 0.01

static int calls_per_sample(double call_seconds) {
    return call_seconds < SAMPLE_SECONDS ? (int)ceil(SAMPLE_SECONDS / call_seconds) : 1;
}

/*
 * Decoding: one query per head against a cache of `len` keys (32 heads, D = 128), which is bound
 * by reading K and V (issue 12: half-precision caches). For each round, in turn for float32, f16
 * and bf16 K/V: the kernel, then a plain vector sum over the same K and V bytes on the same
 * threads. Each type's row gives the median times, the median per round of the sum's time over the
 * kernel's (the share of that bandwidth the kernel reaches) and, for half types, the median per
 * round of the kernel's time over the float32 kernel's: ratios taken within a round, because this
 * machine's speed drifts between rounds. Returns 0, or 1 when out of memory.
 */
static int bench_decode(int threads, int reps) {
    enum { types = 3 };
    const int heads = 32, len = 4096, dim = 128;
    const size_t n = (size_t)heads * len * dim;
    void *k[types] = {0}, *v[types] = {0};
    float *kf = malloc(n * sizeof(float));
    float *q = malloc((size_t)heads * dim * sizeof(float)), *out = malloc((size_t)heads * dim * sizeof(float));
    int ok = kf && q && out;
    for (int t = 0; t < types && ok; t++) {
        k[t] = malloc(n * attn_dtype_size((attn_dtype)t));
        v[t] = malloc(n * attn_dtype_size((attn_dtype)t));
        ok = k[t] && v[t];
    }
    if (ok) {
        for (size_t i = 0; i < n; i++) kf[i] = (float)(i % 13) * 0.01f;
        for (int t = 0; t < types; t++) {
            attn_convert(k[t], (attn_dtype)t, kf, ATTN_DTYPE_F32, (int64_t)n);
            attn_convert(v[t], (attn_dtype)t, kf, ATTN_DTYPE_F32, (int64_t)n);
        }
        for (int i = 0; i < heads * dim; i++) q[i] = (float)(i % 7) * 0.01f;
    }
    free(kf);
    if (!ok) {
        for (int t = 0; t < types; t++) free(k[t]), free(v[t]);
        free(q);
        free(out);
        return 1;
    }
    attn_params p = attn_params_default();
    p.batch = 1;
    p.heads_q = p.heads_kv = heads;
    p.len_q = 1;
    p.len_k = len;
    p.dim_qk = p.dim_v = dim;
    const int64_t qs[3] = {(int64_t)heads * dim, dim, dim}, ks[3] = {(int64_t)n, (int64_t)len * dim, dim};
    memcpy(p.q_stride, qs, sizeof qs);
    memcpy(p.out_stride, qs, sizeof qs);
    memcpy(p.k_stride, ks, sizeof ks);
    memcpy(p.v_stride, ks, sizeof ks);
    p.q = q;
    p.out = out;
    p.num_threads = threads;
    if (reps > 64) reps = 64;
    double tk[types][64], ts[types][64], share[types][64], vs_f32[types][64];
    for (int r = -1; r < reps; r++) /* round -1: warm-up */
        for (int t = 0; t < types; t++) {
            p.k = k[t];
            p.v = v[t];
            p.k_dtype = p.v_dtype = (attn_dtype)t;
            const double kernel = time_call(attn_forward, &p);
            const size_t chunk = n * attn_dtype_size((attn_dtype)t) / sizeof(float) / 64; /* same bytes, as floats */
            const double t0 = now_seconds();
            float total = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : total)
            for (long c = 0; c < 128; c++)
                total += vector_sum((const float *)(c < 64 ? k[t] : v[t]) + (size_t)(c % 64) * chunk, chunk);
            const double sum = now_seconds() - t0;
            sink = total;
            if (r < 0) continue;
            tk[t][r] = kernel;
            ts[t][r] = sum;
            share[t][r] = sum / kernel;
            vs_f32[t][r] = kernel / tk[0][r];
        }
    static const char *names[types] = {"f32", "f16", "bf16"};
    for (int t = 0; t < types; t++) {
        const double gb = 2.0 * (double)(n * attn_dtype_size((attn_dtype)t)) * 1e-9;
        const double kernel_ms = 1e3 * median(tk[t], reps), sum_ms = 1e3 * median(ts[t], reps);
        printf("# decode (1 query, %d cached keys, %d heads, D = %d, %s K/V, %d thread(s)): fused %.2f ms = %.1f GB/s; "
               "vector sum of the same K and V %.2f ms = %.1f GB/s; %.0f%% of that bandwidth",
               len, heads, dim, names[t], threads, kernel_ms, gb / (kernel_ms * 1e-3), sum_ms, gb / (sum_ms * 1e-3),
               100.0 * median(share[t], reps));
        if (t) printf("; %.2fx the f32 K/V time", median(vs_f32[t], reps));
        printf("\n");
    }
    fflush(stdout);
    for (int t = 0; t < types; t++) free(k[t]), free(v[t]);
    free(q);
    free(out);
    return 0;
}

/* The CPU's model name ("unknown" where /proc/cpuinfo has none), into buf. */
static const char *cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return buf;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon) continue;
        snprintf(buf, n, "%s", colon + 2);
        buf[strcspn(buf, "\n")] = 0;
        break;
    }
    fclose(f);
    return buf;
}

/* bf16 prefill: the same problem (B = 1, H = 8, the table's data) as float32, as bf16 (q, k and v
 * rounded; the default attn_bf16_dot) and as bf16 widened (attn_bf16_dot OFF), timed alternately
 * after a warm-up; medians. One line. */
static void bench_prefill_bf16(int len, int dim, int causal, int threads, int reps) {
    problem pb;
    if (!problem_make(&pb, len, dim, causal, threads)) {
        fprintf(stderr, "attn_bench: out of memory\n");
        exit(1);
    }
    const size_t n = (size_t)8 * len * dim;
    void *half[3] = {malloc(2 * n), malloc(2 * n), malloc(2 * n)};
    if (!half[0] || !half[1] || !half[2]) {
        fprintf(stderr, "attn_bench: out of memory\n");
        exit(1);
    }
    attn_convert(half[0], ATTN_DTYPE_BF16, pb.q, ATTN_DTYPE_F32, (int64_t)n);
    attn_convert(half[1], ATTN_DTYPE_BF16, pb.k, ATTN_DTYPE_F32, (int64_t)n);
    attn_convert(half[2], ATTN_DTYPE_BF16, pb.v, ATTN_DTYPE_F32, (int64_t)n);
    attn_params bf = pb.p;
    bf.q = half[0];
    bf.k = half[1];
    bf.v = half[2];
    bf.q_dtype = bf.k_dtype = bf.v_dtype = ATTN_DTYPE_BF16;
    const attn_bf16_dot dot = attn_get_bf16_dot();
    double t[3][64];
    for (int r = -1; r < reps && r < 64; r++) /* r = -1: warm-up */
        for (int c = 0; c < 3; c++) {
            attn_set_bf16_dot(c == 2 ? ATTN_BF16_DOT_OFF : dot);
            const double s = time_call(attn_forward, c ? &bf : &pb.p);
            if (r >= 0) t[c][r] = s;
        }
    attn_set_bf16_dot(dot);
    const double flops = 4.0 * 8 * (double)len * len * dim * (causal ? 0.5 : 1.0);
    double ms[3];
    for (int c = 0; c < 3; c++) ms[c] = 1e3 * median(t[c], reps < 64 ? reps : 64);
    printf("# bf16 prefill L = %d, D = %d, causal %s, %d thread(s): f32 %.1f ms (%.1f GFLOP/s); bf16 %.1f ms "
           "(%.1f GFLOP/s, %.2fx f32; bf16 dot %s); bf16 widened %.1f ms (%.1f GFLOP/s, %.2fx f32)\n",
           len, dim, causal ? "yes" : "no", threads, ms[0], flops / ms[0] * 1e-6, ms[1], flops / ms[1] * 1e-6,
           ms[0] / ms[1], attn_bf16_dot_name(dot), ms[2], flops / ms[2] * 1e-6, ms[0] / ms[2]);
    fflush(stdout);
    for (int c = 0; c < 3; c++) free(half[c]);
    problem_free(&pb);
}

/* One row of the backward table: attn_forward (out and lse), attn_backward (a sample of
 * calls_per_sample calls) and, when `unfused`, attn_backward_unfused, alternating after a warm-up;
 * medians; the share of the peak run by run as the forward table does. The backward counts 10·B·H·Lq·Lk·D FLOPs (five products), half causal. */
typedef struct backward_row {
    double forward_ms, backward_ms, unfused_ms, gflops, pct, fused_mb, unfused_mb;
} backward_row;

static backward_row bench_backward(int len, int dim, int causal, int threads, int reps, int machine, int unfused) {
    problem pb;
    const size_t n = (size_t)8 * len * dim;
    float *dout = malloc(n * sizeof(float)), *dq = malloc(n * sizeof(float)), *dk = malloc(n * sizeof(float));
    float *dv = malloc(n * sizeof(float)), *lse = malloc((size_t)8 * len * sizeof(float));
    if (!problem_make(&pb, len, dim, causal, threads) || !dout || !dq || !dk || !dv || !lse) {
        fprintf(stderr, "attn_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) dout[i] = (float)(i % 11) * 0.02f - 0.1f;
    pb.p.lse = lse;
    attn_backward_params bp = attn_backward_params_default();
    bp.forward = pb.p;
    bp.dout = dout;
    bp.dq = dq;
    bp.dk = dk;
    bp.dv = dv;
    memcpy(bp.dout_stride, pb.p.out_stride, sizeof bp.dout_stride);
    memcpy(bp.dq_stride, pb.p.q_stride, sizeof bp.dq_stride);
    memcpy(bp.dk_stride, pb.p.k_stride, sizeof bp.dk_stride);
    memcpy(bp.dv_stride, pb.p.v_stride, sizeof bp.dv_stride);
    size_t fused_mem = 0, unfused_mem = 0;
    attn_backward_workspace(&bp, &fused_mem);
    attn_backward_unfused_workspace(&bp, &unfused_mem);
    const double flops = 10.0 * 8 * (double)len * len * dim * (causal ? 0.5 : 1.0);
    double tf[64], tb[64], tu[64], share[64];
    if (reps > 64) reps = 64;
    int calls = 1;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up, which sizes the samples (calls_per_sample) */
        const double f = time_call(attn_forward, &pb.p);
        double t0 = now_seconds();
        attn_status st = ATTN_OK;
        for (int c = 0; c < calls && st == ATTN_OK; c++) st = attn_backward(&bp);
        const double b = (now_seconds() - t0) / calls;
        if (r < 0) calls = calls_per_sample(b);
        const double pk = machine && r >= 0 ? measure_peak(threads, 2000000, 2) : NAN;
        double u = NAN;
        if (unfused && st == ATTN_OK) {
            t0 = now_seconds();
            st = attn_backward_unfused(&bp);
            u = now_seconds() - t0;
        }
        if (st != ATTN_OK) {
            fprintf(stderr, "attn_bench: attn_backward: %s\n", attn_status_string(st));
            exit(1);
        }
        if (r < 0) continue;
        tf[r] = f;
        tb[r] = b;
        tu[r] = u;
        share[r] = flops / b * 1e-9 / pk;
    }
    backward_row row;
    row.forward_ms = 1e3 * median(tf, reps);
    row.backward_ms = 1e3 * median(tb, reps);
    row.unfused_ms = unfused ? 1e3 * median(tu, reps) : NAN;
    row.gflops = flops / (row.backward_ms * 1e-3) * 1e-9;
    row.pct = machine ? 100.0 * median(share, reps) : NAN;
    row.fused_mb = (double)fused_mem / 1048576.0;
    row.unfused_mb = (double)unfused_mem / 1048576.0;
    free(dout), free(dq), free(dk), free(dv), free(lse);
    problem_free(&pb);
    return row;
}

/* attn_matmul, C (n, n) = A (n, n) · B (n, n): the median of `reps` calls after a warm-up, and in
 * *pct (when `machine`) the median share of the float32 FMA peak measured right after each call.
 * bf16: B stored as bf16 and multiplied with ATTN_MATMUL_BF16_PRODUCTS (A rounded to bf16; pairs on
 * VDPBF16PS where attn_bf16_dot is native). */
static double bench_matmul(int n, int threads, int reps, int machine, int bf16, double *pct) {
    const size_t count = (size_t)n * (size_t)n;
    float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float)), *c = malloc(count * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "attn_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < count; i++) {
        a[i] = (float)(i % 17) * 0.01f - 0.08f;
        b[i] = (float)(i % 13) * 0.01f - 0.06f;
    }
    uint16_t *b16 = bf16 ? malloc(count * sizeof(uint16_t)) : NULL;
    if (b16) attn_convert(b16, ATTN_DTYPE_BF16, b, ATTN_DTYPE_F32, (int64_t)count);
    attn_matmul_params p = attn_matmul_params_default();
    p.m = p.n = p.k = n;
    p.a = a;
    p.b = b16 ? (const void *)b16 : b;
    p.b_dtype = b16 ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32;
    p.flags = b16 ? ATTN_MATMUL_BF16_PRODUCTS : 0;
    p.c = c;
    p.lda = p.ldb = p.ldc = n;
    p.num_threads = threads;
    const double flops = 2.0 * (double)n * n * n;
    double t[64], share[64];
    for (int r = -1; r < reps && r < 64; r++) {
        const double t0 = now_seconds();
        const attn_status st = attn_matmul(&p);
        if (st != ATTN_OK) {
            fprintf(stderr, "attn_bench: attn_matmul: %s\n", attn_status_string(st));
            exit(1);
        }
        if (r < 0) continue;
        t[r] = now_seconds() - t0;
        share[r] = machine ? flops / t[r] * 1e-9 / measure_peak(threads, 2000000, 2) : NAN;
    }
    free(a);
    free(b);
    free(b16);
    free(c);
    *pct = 100.0 * median(share, reps < 64 ? reps : 64);
    return 1e3 * median(t, reps < 64 ? reps : 64);
}

int main(int argc, char **argv) {
    options o = {.lengths = {256, 1024, 4096, 8192}, .n_lengths = 4, .dims = {64, 128}, .n_dims = 2,
                 .causal = {0, 1}, .n_causal = 2, .threads = {1, 2}, .n_threads = 2, .reps = 0,
                 .unfused = 1, .decode = 1, .matmul = {512, 1024, 2048, 4096}, .n_matmul = 4, .machine = 1,
                 .prefill = {4096}, .n_prefill = 1, .backward = {512, 1024, 2048, 4096}, .n_backward = 4,
                 .unfused_backward_max = 1024, .dtype = ATTN_DTYPE_F32, .format = "table"};
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = a + 1 < argc ? argv[a + 1] : "";
        if (!strcmp(arg, "--quick")) {
            o.n_lengths = parse_list("256,1024,4096", o.lengths);
            o.n_dims = parse_list("64", o.dims);
            o.n_threads = parse_list("2", o.threads);
            o.n_matmul = parse_list("1024", o.matmul);
            o.n_prefill = parse_list("1024", o.prefill);
            o.n_backward = parse_list("1024", o.backward);
            o.reps = 3;
        } else if (!strcmp(arg, "--lengths")) o.n_lengths = parse_list(val, o.lengths), a++;
        else if (!strcmp(arg, "--dims")) o.n_dims = parse_list(val, o.dims), a++;
        else if (!strcmp(arg, "--causal")) o.n_causal = parse_list(val, o.causal), a++;
        else if (!strcmp(arg, "--threads")) o.n_threads = parse_list(val, o.threads), a++;
        else if (!strcmp(arg, "--reps")) o.reps = atoi(val), a++;
        else if (!strcmp(arg, "--format")) o.format = val, a++;
        else if (!strcmp(arg, "--no-unfused")) o.unfused = 0;
        else if (!strcmp(arg, "--no-decode")) o.decode = 0;
        else if (!strcmp(arg, "--no-machine")) o.machine = 0;
        else if (!strcmp(arg, "--matmul")) o.n_matmul = parse_list(val, o.matmul), a++;
        else if (!strcmp(arg, "--no-matmul")) o.n_matmul = 0;
        else if (!strcmp(arg, "--prefill-bf16")) o.n_prefill = parse_list(val, o.prefill), a++;
        else if (!strcmp(arg, "--no-prefill-bf16")) o.n_prefill = 0;
        else if (!strcmp(arg, "--dtype") && (!strcmp(val, "f32") || !strcmp(val, "f16") || !strcmp(val, "bf16")))
            o.dtype = !strcmp(val, "f16") ? ATTN_DTYPE_F16 : !strcmp(val, "bf16") ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32, a++;
        else if (!strcmp(arg, "--no-attention")) o.n_lengths = o.n_backward = 0;
        else if (!strcmp(arg, "--backward")) o.n_backward = parse_list(val, o.backward), a++;
        else if (!strcmp(arg, "--no-backward")) o.n_backward = 0;
        else if (!strcmp(arg, "--unfused-backward-max")) o.unfused_backward_max = atoi(val), a++;
        else {
            fprintf(stderr, "usage: %s [--quick] [--lengths L,..] [--dims D,..] [--causal 0,1] [--threads T,..]\n"
                            "          [--reps N] [--format table|csv|json] [--no-unfused] [--no-decode]\n"
                            "          [--matmul N,..] [--no-matmul] [--no-attention] [--no-machine]\n"
                            "          [--prefill-bf16 L,..] [--no-prefill-bf16] [--dtype f32|f16|bf16]\n"
                            "          [--backward L,..] [--no-backward] [--unfused-backward-max L]\n", argv[0]);
            return 2;
        }
    }
    const int csv = !strcmp(o.format, "csv"), json = !strcmp(o.format, "json");

    char model[256];
    if (!csv && !json)
        printf("# cpu: %s; isa %s; bf16 dot product %s (AVX512_BF16 %s)\n", cpu_model(model, sizeof model),
               attn_isa_name(attn_get_isa()), attn_bf16_dot_name(attn_get_bf16_dot()),
               attn_bf16_dot_supported(ATTN_BF16_DOT_NATIVE) ? "yes" : "no");
    double peak[MAX_LIST], bandwidth[MAX_LIST];
    for (int t = 0; t < o.n_threads; t++) {
        peak[t] = bandwidth[t] = NAN;
        if (!o.machine) continue;
        peak[t] = measure_peak(o.threads[t], 20000000, 3);
        bandwidth[t] = measure_bandwidth(o.threads[t]);
        if (!csv && !json)
            printf("# machine: %d thread(s): FMA peak %.1f GFLOP/s, read bandwidth %.1f GB/s (isa %s)\n",
                   o.threads[t], peak[t], bandwidth[t], attn_isa_name(attn_get_isa()));
    }
    static const char *dtype_names[3] = {"f32", "f16", "bf16"};
    if (csv) printf("length,dim,causal,threads,fused_ms,unfused_ms,speedup,gflops,peak_percent,fused_mem_mb,unfused_mem_mb,peak_gflops,bandwidth_gbs\n");
    else if (json)
        printf("{\"isa\": \"%s\", \"bf16_dot\": \"%s\", \"dtype\": \"%s\", \"batch\": 1, \"heads\": 8, \"rows\": [\n",
               attn_isa_name(attn_get_isa()), attn_bf16_dot_name(attn_get_bf16_dot()), dtype_names[o.dtype]);
    else if (o.n_lengths) {
        if (o.dtype != ATTN_DTYPE_F32) printf("# q, k, v and out: %s\n", dtype_names[o.dtype]);
        printf("%6s %4s %6s %7s %10s %11s %8s %8s %7s %11s %12s\n", "L", "D", "causal", "threads", "fused ms",
               "unfused ms", "speedup", "GFLOP/s", "% peak", "fused MB", "unfused MB");
    }
    fflush(stdout);

    int first = 1;
    for (int li = 0; li < o.n_lengths; li++)
        for (int di = 0; di < o.n_dims; di++)
            for (int ci = 0; ci < o.n_causal; ci++)
                for (int ti = 0; ti < o.n_threads; ti++) {
                    const int len = o.lengths[li], dim = o.dims[di], causal = o.causal[ci], threads = o.threads[ti];
                    problem pb;
                    if (!problem_make(&pb, len, dim, causal, threads) || !problem_retype(&pb, o.dtype)) {
                        fprintf(stderr, "attn_bench: out of memory\n");
                        return 1;
                    }
                    size_t fused_mem = 0, unfused_mem = 0;
                    attn_forward_workspace(&pb.p, &fused_mem);
                    attn_forward_unfused_workspace(&pb.p, &unfused_mem);
                    /* Warm-up, then one call of each path that sizes the samples (calls_per_sample)
                     * and the repetitions: about 1 s per path, 3 to 9 samples. */
                    time_call(attn_forward, &pb.p);
                    if (o.unfused) time_call(attn_forward_unfused, &pb.p);
                    const double warm = time_call(attn_forward, &pb.p);
                    const int calls = calls_per_sample(warm);
                    const int unfused_calls = o.unfused ? calls_per_sample(time_call(attn_forward_unfused, &pb.p)) : 0;
                    int reps = o.reps ? o.reps : (int)(1.0 / (warm * calls));
                    if (!o.reps) reps = reps < 3 ? 3 : reps > 9 ? 9 : reps;
                    /* The share of the peak is taken run by run against a short peak measurement
                     * right after each fused run (the median of those ratios): on a shared machine
                     * whose speed drifts, that compares the kernel with what the cores could do
                     * at that moment, not with a peak measured minutes earlier. */
                    const double flops = 4.0 * 8 * (double)len * len * dim * (causal ? 0.5 : 1.0);
                    double tf[64], tu[64], share[64];
                    for (int r = 0; r < reps && r < 64; r++) {
                        tf[r] = time_calls(attn_forward, &pb.p, calls);
                        share[r] = o.machine ? flops / tf[r] * 1e-9 / measure_peak(threads, 2000000, 2) : NAN;
                        if (o.unfused) tu[r] = time_calls(attn_forward_unfused, &pb.p, unfused_calls);
                    }
                    const double fused_ms = 1e3 * median(tf, reps);
                    const double unfused_ms = o.unfused ? 1e3 * median(tu, reps) : NAN;
                    const double gflops = flops / (fused_ms * 1e-3) * 1e-9;
                    const double pct = o.machine ? 100.0 * median(share, reps) : NAN;
                    const double fmb = (double)fused_mem / 1048576.0, umb = (double)unfused_mem / 1048576.0;
                    if (csv)
                        printf("%d,%d,%d,%d,%.3f,%.3f,%.2f,%.1f,%.1f,%.3f,%.1f,%.1f,%.1f\n", len, dim, causal, threads,
                               fused_ms, unfused_ms, unfused_ms / fused_ms, gflops, pct, fmb, umb, peak[ti], bandwidth[ti]);
                    else if (json)
                        /* JSON has no NaN: a value not measured (--no-unfused, --no-machine) is -1. */
                        printf("%s  {\"length\": %d, \"dim\": %d, \"causal\": %d, \"threads\": %d, \"fused_ms\": %.3f, "
                               "\"unfused_ms\": %.3f, \"gflops\": %.1f, \"peak_gflops\": %.1f, \"fused_mem_mb\": %.3f, "
                               "\"unfused_mem_mb\": %.1f}", first ? "" : ",\n", len, dim, causal, threads, fused_ms,
                               o.unfused ? unfused_ms : -1.0, gflops, isnan(peak[ti]) ? -1.0 : peak[ti], fmb, umb);
                    else
                        printf("%6d %4d %6s %7d %10.2f %11.2f %7.2fx %8.1f %6.1f%% %11.2f %12.1f\n", len, dim,
                               causal ? "yes" : "no", threads, fused_ms, unfused_ms, unfused_ms / fused_ms, gflops, pct,
                               fmb, umb);
                    fflush(stdout);
                    first = 0;
                    problem_free(&pb);
                }
    /* The backward: one row (table, csv) or object (json) per shape, float32 only. */
    if (json) printf("\n], \"backward\": [\n");
    else if (csv && o.n_backward)
        printf("backward_length,dim,causal,threads,forward_ms,backward_ms,unfused_backward_ms,speedup,gflops,"
               "peak_percent,fused_mem_mb,unfused_mem_mb\n");
    else if (o.n_backward)
        printf("# backward (B = 1, H = 8, f32): attn_backward against attn_backward_unfused; GFLOP/s counts 10 B H L^2 D"
               " (half causal)\n%6s %4s %6s %7s %9s %9s %11s %8s %8s %7s %9s %11s\n", "L", "D", "causal", "threads",
               "fwd ms", "bwd ms", "unfused ms", "speedup", "GFLOP/s", "% peak", "bwd MB", "unfused MB");
    first = 1;
    for (int li = 0; li < o.n_backward; li++)
        for (int di = 0; di < o.n_dims; di++)
            for (int ci = 0; ci < o.n_causal; ci++)
                for (int ti = 0; ti < o.n_threads; ti++) {
                    const int len = o.backward[li], dim = o.dims[di], causal = o.causal[ci], threads = o.threads[ti];
                    const int unfused = o.unfused && len <= o.unfused_backward_max;
                    const backward_row b = bench_backward(len, dim, causal, threads, o.reps ? o.reps : len <= 1024 ? 7 : 3,
                                                          o.machine, unfused);
                    if (json)
                        printf("%s  {\"length\": %d, \"dim\": %d, \"causal\": %d, \"threads\": %d, \"forward_ms\": %.3f, "
                               "\"backward_ms\": %.3f, \"unfused_backward_ms\": %.3f, \"gflops\": %.1f, "
                               "\"fused_mem_mb\": %.3f, \"unfused_mem_mb\": %.1f}", first ? "" : ",\n", len, dim, causal,
                               threads, b.forward_ms, b.backward_ms, unfused ? b.unfused_ms : -1.0, b.gflops, b.fused_mb,
                               b.unfused_mb);
                    else if (csv)
                        printf("%d,%d,%d,%d,%.3f,%.3f,%.3f,%.2f,%.1f,%.1f,%.3f,%.3f\n", len, dim, causal, threads,
                               b.forward_ms, b.backward_ms, b.unfused_ms, b.unfused_ms / b.backward_ms, b.gflops, b.pct,
                               b.fused_mb, b.unfused_mb);
                    else
                    {
                        char u[32] = "-", x[32] = "-";
                        if (unfused) {
                            snprintf(u, sizeof u, "%.2f", b.unfused_ms);
                            snprintf(x, sizeof x, "%.2fx", b.unfused_ms / b.backward_ms);
                        }
                        printf("%6d %4d %6s %7d %9.2f %9.2f %11s %8s %8.1f %6.1f%% %9.2f %11.2f\n", len, dim,
                               causal ? "yes" : "no", threads, b.forward_ms, b.backward_ms, u, x, b.gflops, b.pct,
                               b.fused_mb, b.unfused_mb);
                    }
                    fflush(stdout);
                    first = 0;
                }
    /* The dense matrix multiply: one line (table), row (csv) or object (json) per size and threads. */
    if (json) printf("\n], \"matmul\": [\n");
    else if (csv && o.n_matmul) printf("matmul_n,threads,ms,gflops,peak_percent\n");
    first = 1;
    for (int mi = 0; mi < o.n_matmul; mi++)
        for (int ti = 0; ti < o.n_threads; ti++) {
            const int n = o.matmul[mi], threads = o.threads[ti];
            const int reps = o.reps ? o.reps : n <= 1024 ? 9 : n <= 2048 ? 5 : 3;
            double pct;
            const double ms = bench_matmul(n, threads, reps, o.machine, 0, &pct);
            const double gflops = 2.0 * (double)n * n * n / (ms * 1e-3) * 1e-9;
            if (json)
                printf("%s  {\"n\": %d, \"threads\": %d, \"ms\": %.3f, \"gflops\": %.1f}", first ? "" : ",\n", n,
                       threads, ms, gflops);
            else if (csv)
                printf("%d,%d,%.3f,%.1f,%.1f\n", n, threads, ms, gflops, pct);
            else
            {
                printf("# matmul M = N = K = %d, %d thread(s): %.2f ms, %.1f GFLOP/s, %.1f%% of peak\n", n, threads,
                       ms, gflops, pct);
                /* The same with bf16 weights and bf16 products (a Llama projection's prefill). */
                double pct16;
                const double ms16 = bench_matmul(n, threads, reps, o.machine, 1, &pct16);
                printf("# matmul M = N = K = %d, %d thread(s), bf16 weights and products (bf16 dot %s): %.2f ms, "
                       "%.1f GFLOP/s, %.1f%% of the f32 peak, %.2fx f32\n",
                       n, threads, attn_bf16_dot_name(attn_get_bf16_dot()), ms16,
                       2.0 * (double)n * n * n / (ms16 * 1e-3) * 1e-9, pct16, ms / ms16);
            }
            fflush(stdout);
            first = 0;
        }
    if (json) printf("\n]}\n");
    if (o.decode && !csv && !json)
        for (int t = 0; t < o.n_threads; t++)
            if (bench_decode(o.threads[t], o.reps ? o.reps : 15)) {
                fprintf(stderr, "attn_bench: out of memory\n");
                return 1;
            }
    if (!csv && !json)
        for (int li = 0; li < o.n_prefill; li++)
            for (int di = 0; di < o.n_dims; di++)
                for (int ci = 0; ci < o.n_causal; ci++)
                    for (int t = 0; t < o.n_threads; t++)
                        bench_prefill_bf16(o.prefill[li], o.dims[di], o.causal[ci], o.threads[t], o.reps ? o.reps : 3);
    return 0;
}
