/*
 * paired.c: times two or more builds of libattn side by side in one process, call by call, and
 * reports the median of the per-round speed ratios against the first. On a shared machine whose
 * speed drifts from minute to minute, separate runs of two builds cannot be compared; alternating
 * their calls in one process can. Built by compare.sh, which defines VARIANT_LIST: X(name) for
 * every build, each linked in with its public symbols renamed name_attn_... (build_variant.sh).
 *
 *   paired ROUNDS attn L D CAUSAL THREADS    B = 1, H = 8 attention, (B, H, L, D) layout
 *   paired ROUNDS mm N THREADS               attn_matmul, C (N, N) = A · B
 *   paired ROUNDS decode DTYPE THREADS       1 query per head over 4096 cached keys, 32 heads,
 *                                            D = 128, K/V of attn_dtype DTYPE (0 f32, 1 f16, 2 bf16);
 *                                            reported in GB/s of K and V read
 *
 * In mm mode, PAIRED_CBLAS=path/to/libopenblas.so adds that library's cblas_sgemm as one more
 * contender (PAIRED_CBLAS_SGEMM names the symbol when it is prefixed or suffixed, as in numpy's
 * bundled OpenBLAS; PAIRED_CBLAS_ILP64=1 when its integers are 64-bit). Its thread count comes from
 * OPENBLAS_NUM_THREADS, which compare.sh sets to THREADS.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn.h"

#define X(name)                                                    \
    attn_status name##_attn_forward(const attn_params *);          \
    attn_status name##_attn_matmul(const attn_matmul_params *);    \
    attn_params name##_attn_params_default(void);                  \
    attn_matmul_params name##_attn_matmul_params_default(void);
VARIANT_LIST
#undef X

typedef struct variant {
    const char *name;
    attn_status (*forward)(const attn_params *);
    attn_status (*matmul)(const attn_matmul_params *);
    attn_params (*params_default)(void);
    attn_matmul_params (*matmul_params_default)(void);
} variant;

/* cblas_sgemm with 32- or 64-bit integers; enums are ints: 101 row-major, 111 no transpose. */
typedef void (*sgemm32_fn)(int, int, int, int32_t, int32_t, int32_t, float, const float *, int32_t,
                           const float *, int32_t, float, float *, int32_t);
typedef void (*sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float *, int64_t,
                           const float *, int64_t, float, float *, int64_t);
static void *cblas_sgemm;
static int cblas_ilp64;

static attn_status cblas_matmul(const attn_matmul_params *p) {
    if (cblas_ilp64)
        ((sgemm64_fn)cblas_sgemm)(101, 111, 111, p->m, p->n, p->k, 1.0f, p->a, p->lda, p->b, p->ldb, 0.0f, p->c,
                                  p->ldc);
    else
        ((sgemm32_fn)cblas_sgemm)(101, 111, 111, (int32_t)p->m, (int32_t)p->n, (int32_t)p->k, 1.0f, p->a,
                                  (int32_t)p->lda, p->b, (int32_t)p->ldb, 0.0f, p->c, (int32_t)p->ldc);
    return ATTN_OK;
}

#define X(name) {#name, name##_attn_forward, name##_attn_matmul, name##_attn_params_default, name##_attn_matmul_params_default},
static variant variants[] = {VARIANT_LIST {"cblas", NULL, cblas_matmul, NULL, NULL}};
#undef X
static int n_variants = (int)(sizeof variants / sizeof variants[0]) - 1; /* cblas counts once loaded */
#define MAX_ROUNDS 1000

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double *t = malloc(sizeof(double) * (size_t)n);
    memcpy(t, v, sizeof(double) * (size_t)n);
    qsort(t, (size_t)n, sizeof(double), compare_double);
    const double m = t[n / 2];
    free(t);
    return m;
}

static float *random_floats(size_t n, unsigned seed) {
    float *x = malloc(n * sizeof(float));
    if (!x) exit(1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

int main(int argc, char **argv) {
    if (argc < 5 || (strcmp(argv[2], "attn") && strcmp(argv[2], "mm") && strcmp(argv[2], "decode"))) {
        fprintf(stderr, "usage: %s ROUNDS attn L D CAUSAL THREADS | ROUNDS mm N THREADS | ROUNDS decode DTYPE THREADS\n",
                argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]);
    if (rounds < 1) rounds = 1;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    const int is_mm = !strcmp(argv[2], "mm");
    attn_params p;
    attn_matmul_params mp;
    double flops;
    const char *unit = "GFLOP/s";
    if (!strcmp(argv[2], "decode")) {
        /* K and V converted by the first build; every build reads the same stored bytes. */
        const int64_t heads = 32, len = 4096, dim = 128;
        const attn_dtype dtype = (attn_dtype)atoi(argv[3]);
        const size_t n = (size_t)(heads * len * dim), size = dtype == ATTN_DTYPE_F32 ? 4 : 2;
        p = variants[0].params_default();
        p.batch = 1;
        p.heads_q = p.heads_kv = heads;
        p.len_q = 1;
        p.len_k = len;
        p.dim_qk = p.dim_v = dim;
        const int64_t qs[3] = {heads * dim, dim, dim}, ks[3] = {heads * len * dim, len * dim, dim};
        memcpy(p.q_stride, qs, sizeof qs);
        memcpy(p.out_stride, qs, sizeof qs);
        memcpy(p.k_stride, ks, sizeof ks);
        memcpy(p.v_stride, ks, sizeof ks);
        float *kv = random_floats(2 * n, 2);
        void *k = malloc(n * size), *v = malloc(n * size);
        if (!k || !v) return 1;
        for (size_t i = 0; i < n; i++) {
            const float x[2] = {kv[i], kv[n + i]};
            uint32_t u[2];
            memcpy(u, x, sizeof u);
            /* bf16 by truncation and f16 by a scale into its normal range: any stored values do */
            for (int t = 0; t < 2; t++) {
                uint16_t h = dtype == ATTN_DTYPE_BF16 ? (uint16_t)(u[t] >> 16)
                                                      : (uint16_t)(0x3800 + (int)((x[t] + 0.5f) * 1023.0f));
                if (dtype == ATTN_DTYPE_F32) memcpy((float *)(t ? v : k) + i, &x[t], 4);
                else memcpy((uint16_t *)(t ? v : k) + i, &h, 2);
            }
        }
        free(kv);
        p.q = random_floats((size_t)(heads * dim), 1);
        p.k = k;
        p.v = v;
        p.out = random_floats((size_t)(heads * dim), 4);
        p.k_dtype = p.v_dtype = dtype;
        p.num_threads = atoi(argv[4]);
        flops = 2.0 * (double)n * (double)size;
        unit = "GB/s";
    } else if (!is_mm && argc >= 7) {
        const int64_t len = atoi(argv[3]), dim = atoi(argv[4]), heads = 8;
        const size_t n = (size_t)(heads * len * dim);
        /* Every build shares one struct: all must be of one layout (attn.h's struct_size rule). */
        p = variants[0].params_default();
        p.batch = 1;
        p.heads_q = p.heads_kv = heads;
        p.len_q = p.len_k = len;
        p.dim_qk = p.dim_v = dim;
        const int64_t stride[3] = {heads * len * dim, len * dim, dim};
        memcpy(p.q_stride, stride, sizeof stride);
        memcpy(p.k_stride, stride, sizeof stride);
        memcpy(p.v_stride, stride, sizeof stride);
        memcpy(p.out_stride, stride, sizeof stride);
        p.q = random_floats(n, 1);
        p.k = random_floats(n, 2);
        p.v = random_floats(n, 3);
        p.out = random_floats(n, 4);
        p.causal = atoi(argv[5]) ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
        p.num_threads = atoi(argv[6]);
        flops = 4.0 * (double)heads * (double)len * (double)len * (double)dim * (atoi(argv[5]) ? 0.5 : 1.0);
    } else if (is_mm) {
        const int64_t n = atoi(argv[3]);
        mp = variants[0].matmul_params_default();
        mp.m = mp.n = mp.k = n;
        mp.a = random_floats((size_t)(n * n), 1);
        mp.b = random_floats((size_t)(n * n), 2);
        mp.c = random_floats((size_t)(n * n), 3);
        mp.lda = mp.ldb = mp.ldc = n;
        mp.num_threads = atoi(argv[4]);
        flops = 2.0 * (double)n * (double)n * (double)n;
    } else {
        fprintf(stderr, "usage: %s ROUNDS attn L D CAUSAL THREADS\n", argv[0]);
        return 2;
    }
    const char *cblas_path = getenv("PAIRED_CBLAS");
    if (is_mm && cblas_path && *cblas_path) {
        const char *symbol = getenv("PAIRED_CBLAS_SGEMM");
        void *lib = dlopen(cblas_path, RTLD_NOW | RTLD_LOCAL);
        cblas_sgemm = lib ? dlsym(lib, symbol && *symbol ? symbol : "cblas_sgemm") : NULL;
        if (!cblas_sgemm) {
            fprintf(stderr, "PAIRED_CBLAS: %s\n", dlerror());
            return 2;
        }
        cblas_ilp64 = getenv("PAIRED_CBLAS_ILP64") && atoi(getenv("PAIRED_CBLAS_ILP64"));
        n_variants++;
    }

    static double seconds[16][MAX_ROUNDS], ratio[16][MAX_ROUNDS];
    if (n_variants > 16) return 2;
    for (int v = 0; v < n_variants; v++) { /* warm-up */
        if (is_mm ? variants[v].matmul(&mp) : variants[v].forward(&p)) return 1;
    }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n_variants; i++) {
            const int v = (i + r) % n_variants; /* rotate who goes first */
            const double t0 = now_seconds();
            if (is_mm ? variants[v].matmul(&mp) : variants[v].forward(&p)) return 1;
            seconds[v][r] = now_seconds() - t0;
        }
    for (int v = 0; v < n_variants; v++) {
        double best = seconds[v][0];
        for (int r = 0; r < rounds; r++) {
            ratio[v][r] = seconds[0][r] / seconds[v][r];
            if (seconds[v][r] < best) best = seconds[v][r];
        }
        printf("%-12s best %7.1f %s  median %7.1f %s  speed relative to %s: median %.3f\n", variants[v].name,
               flops / best * 1e-9, unit, flops / median(seconds[v], rounds) * 1e-9, unit, variants[0].name,
               median(ratio[v], rounds));
    }
    return 0;
}
