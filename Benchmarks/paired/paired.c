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
 *   paired ROUNDS mmk M K N THREADS BT       attn_matmul, C (M, N) = A (M, K) · B, B stored (K, N), or
 *                                            (N, K) when BT is 1 (a Linear layer's weight)
 *
 * In mm and mmk modes, PAIRED_DTYPES=f32,bf16,f16 times each build with each weight type (b_dtype;
 * the weights are the same values rounded), as that many contenders: "name/bf16" and so on. Every
 * build must then know b_dtype. In attn mode the same list gives q, k and v that type (out stays
 * f32), and "bf16w" is bf16 with the build's attn_set_bf16_dot(ATTN_BF16_DOT_OFF) around each call
 * (every product widened to float; builds without attn_bf16_dot just run bf16). For example:
 *   PAIRED_DTYPES=f32,bf16,bf16w compare.sh "attn 4096 128 0 2" 7 base
 * In matmul modes "bf16p" is bf16 weights with ATTN_MATMUL_BF16_PRODUCTS (A rounded, products on
 * bf16 pairs; every build must then know attn_matmul_params.flags):
 *   PAIRED_DTYPES=f32,bf16,bf16p compare.sh "mmk 512 896 4864 2 1" 9
 *
 * In mm mode, PAIRED_CBLAS=path/to/libopenblas.so adds that library's cblas_sgemm as one more
 * contender (PAIRED_CBLAS_SGEMM names the symbol when it is prefixed or suffixed, as in numpy's
 * bundled OpenBLAS; PAIRED_CBLAS_ILP64=1 when its integers are 64-bit). Its thread count comes from
 * OPENBLAS_NUM_THREADS, which compare.sh sets to THREADS.
 *
 * In decode mode, PAIRED_SUM=1 adds, as the first contender, "vsum": the plain vector sum over the
 * same K and V bytes on the same threads that attn_bench's decode rows compare against, so each
 * build's "speed relative to vsum" is the share of that bandwidth it reaches, per round.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn.h"
#include "../vector_sum.h"
#include "../../CKernels/half.h"

#define X(name)                                                                   \
    attn_status name##_attn_forward(const attn_params *);                         \
    attn_status name##_attn_matmul(const attn_matmul_params *);                   \
    attn_params name##_attn_params_default(void);                                 \
    attn_matmul_params name##_attn_matmul_params_default(void);                   \
    __attribute__((weak)) attn_status name##_attn_set_bf16_dot(attn_bf16_dot);   \
    __attribute__((weak)) attn_bf16_dot name##_attn_get_bf16_dot(void);
VARIANT_LIST
#undef X

typedef struct variant {
    const char *name;
    attn_dtype dtype; /* of B, in matmul modes; of q, k and v in attn mode */
    int widen;        /* attn mode, bf16: with attn_bf16_dot OFF */
    int products;     /* matmul modes, bf16: with ATTN_MATMUL_BF16_PRODUCTS */
    attn_status (*forward)(const attn_params *);
    attn_status (*matmul)(const attn_matmul_params *);
    attn_params (*params_default)(void);
    attn_matmul_params (*matmul_params_default)(void);
    attn_status (*set_bf16_dot)(attn_bf16_dot); /* NULL in builds before it */
    attn_bf16_dot (*get_bf16_dot)(void);
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

#define X(build)                                                                                            \
    {.name = #build, .forward = build##_attn_forward, .matmul = build##_attn_matmul,                          \
     .params_default = build##_attn_params_default, .matmul_params_default = build##_attn_matmul_params_default, \
     .set_bf16_dot = build##_attn_set_bf16_dot, .get_bf16_dot = build##_attn_get_bf16_dot},
static const variant builds[] = {VARIANT_LIST {.name = "cblas", .matmul = cblas_matmul}};
#undef X
#define N_BUILDS ((int)(sizeof builds / sizeof builds[0]) - 1) /* cblas not counted */
#define MAX_CONTENDERS 16
static variant variants[MAX_CONTENDERS];
static int n_variants;
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

/* The builds, each once per type in PAIRED_DTYPES (matmul and attn modes), as the contenders. */
static int make_contenders(int typed) {
    const char *list = typed && getenv("PAIRED_DTYPES") ? getenv("PAIRED_DTYPES") : "f32";
    static const char *names[5] = {"f32", "f16", "bf16", "bf16w", "bf16p"};
    static char labels[MAX_CONTENDERS][64];
    for (int b = 0; b < N_BUILDS; b++) {
        char copy[64];
        snprintf(copy, sizeof copy, "%s", list);
        for (char *save = NULL, *d = strtok_r(copy, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
            int dt = 0;
            while (dt < 5 && strcmp(d, names[dt])) dt++;
            if (dt == 5 || (dt == 3 && typed != 2) || (dt == 4 && typed != 1) || n_variants == MAX_CONTENDERS)
                return 0;
            variant v = builds[b];
            v.dtype = dt >= 3 ? ATTN_DTYPE_BF16 : (attn_dtype)dt;
            v.widen = dt == 3;
            v.products = dt == 4;
            if (strcmp(list, "f32")) {
                snprintf(labels[n_variants], sizeof labels[0], "%s/%s", builds[b].name, d);
                v.name = labels[n_variants];
            }
            variants[n_variants++] = v;
        }
    }
    return 1;
}

static volatile float sum_sink;

/* The "vsum" contender of decode mode: every byte of K and V read once, in 128 chunks shared by
 * the call's threads, as attn_bench does. */
static attn_status sum_forward(const attn_params *p) {
    const size_t bytes = (size_t)(p->batch * p->heads_kv * p->len_k * p->dim_qk) * (p->k_dtype == ATTN_DTYPE_F32 ? 4 : 2);
    const size_t chunk = bytes / sizeof(float) / 64;
    float total = 0;
#pragma omp parallel for num_threads(p->num_threads) reduction(+ : total)
    for (long c = 0; c < 128; c++)
        total += vector_sum((const float *)(c < 64 ? p->k : p->v) + (size_t)(c % 64) * chunk, chunk);
    sum_sink = total;
    return ATTN_OK;
}

/* One attention call of contender v: its q, k, v type swapped in (decode mode: as they are). */
static attn_status run_attn(const variant *v, attn_params *p, const void *qkv[3][3]) {
    if (qkv[0][0]) {
        p->q_dtype = p->k_dtype = p->v_dtype = v->dtype;
        p->q = qkv[v->dtype][0];
        p->k = qkv[v->dtype][1];
        p->v = qkv[v->dtype][2];
    }
    const attn_bf16_dot was = v->widen && v->get_bf16_dot ? v->get_bf16_dot() : ATTN_BF16_DOT_OFF;
    if (v->widen && v->set_bf16_dot) v->set_bf16_dot(ATTN_BF16_DOT_OFF);
    const attn_status status = v->forward(p);
    if (v->widen && v->set_bf16_dot) v->set_bf16_dot(was);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 5 || (strcmp(argv[2], "attn") && strcmp(argv[2], "mm") && strcmp(argv[2], "mmk") &&
                     strcmp(argv[2], "decode"))) {
        fprintf(stderr, "usage: %s ROUNDS attn L D CAUSAL THREADS | ROUNDS mm N THREADS | ROUNDS mmk M K N THREADS BT"
                        " | ROUNDS decode DTYPE THREADS\n",
                argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]);
    if (rounds < 1) rounds = 1;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    const int is_mm = !strcmp(argv[2], "mm") || !strcmp(argv[2], "mmk");
    if (!make_contenders(is_mm ? 1 : !strcmp(argv[2], "attn") ? 2 : 0)) {
        fprintf(stderr, "PAIRED_DTYPES: a list of f32, f16, bf16 (attn: also bf16w; matmul: also bf16p) (at most %d contenders)\n",
                MAX_CONTENDERS);
        return 2;
    }
    if (!strcmp(argv[2], "decode") && getenv("PAIRED_SUM") && atoi(getenv("PAIRED_SUM"))) {
        if (n_variants == MAX_CONTENDERS) return 2;
        memmove(variants + 1, variants, sizeof(variant) * (size_t)n_variants++);
        variants[0] = (variant){.name = "vsum", .forward = sum_forward, .params_default = builds[0].params_default};
    }
    attn_params p;
    attn_matmul_params mp;
    uint16_t *b16[3] = {NULL, NULL, NULL}; /* B as f16 and bf16 bits, by dtype */
    const void *qkv[3][3] = {{NULL}};      /* attn: q, k, v by dtype */
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
        p.q = qkv[0][0] = random_floats(n, 1);
        p.k = qkv[0][1] = random_floats(n, 2);
        p.v = qkv[0][2] = random_floats(n, 3);
        p.out = random_floats(n, 4);
        for (int dt = ATTN_DTYPE_F16; dt <= ATTN_DTYPE_BF16; dt++)
            for (int t = 0; t < 3; t++) {
                uint16_t *h = malloc(sizeof(uint16_t) * n);
                if (!h) return 1;
                for (size_t i = 0; i < n; i++) {
                    const float x = ((const float *)qkv[0][t])[i];
                    h[i] = dt == ATTN_DTYPE_F16 ? attn_f32_to_f16(x) : attn_f32_to_bf16(x);
                }
                qkv[dt][t] = h;
            }
        p.causal = atoi(argv[5]) ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
        p.num_threads = atoi(argv[6]);
        flops = 4.0 * (double)heads * (double)len * (double)len * (double)dim * (atoi(argv[5]) ? 0.5 : 1.0);
    } else if (is_mm && (argv[2][2] == 0 || argc >= 8)) {
        const int general = argv[2][2] == 'k';
        const int64_t m = atoi(argv[3]), k = general ? atoi(argv[4]) : m, n = general ? atoi(argv[5]) : m;
        const int bt = general && atoi(argv[7]);
        mp = variants[0].matmul_params_default();
        mp.m = m; mp.n = n; mp.k = k;
        mp.a = random_floats((size_t)(m * k), 1);
        float *b = random_floats((size_t)(k * n), 2);
        mp.b = b;
        mp.c = random_floats((size_t)(m * n), 3);
        mp.lda = k;
        mp.ldb = bt ? k : n;
        mp.b_transposed = bt;
        mp.ldc = n;
        mp.num_threads = atoi(argv[general ? 6 : 4]);
        for (int dt = ATTN_DTYPE_F16; dt <= ATTN_DTYPE_BF16; dt++) {
            b16[dt] = malloc(sizeof(uint16_t) * (size_t)(k * n));
            if (!b16[dt]) return 1;
            for (int64_t i = 0; i < k * n; i++)
                b16[dt][i] = dt == ATTN_DTYPE_F16 ? attn_f32_to_f16(b[i]) : attn_f32_to_bf16(b[i]);
        }
        flops = 2.0 * (double)m * (double)n * (double)k;
    } else {
        fprintf(stderr, "usage: %s ROUNDS attn L D CAUSAL THREADS\n", argv[0]);
        return 2;
    }
    const char *cblas_path = getenv("PAIRED_CBLAS");
    if (!strcmp(argv[2], "mm") && cblas_path && *cblas_path) {
        const char *symbol = getenv("PAIRED_CBLAS_SGEMM");
        void *lib = dlopen(cblas_path, RTLD_NOW | RTLD_LOCAL);
        cblas_sgemm = lib ? dlsym(lib, symbol && *symbol ? symbol : "cblas_sgemm") : NULL;
        if (!cblas_sgemm) {
            fprintf(stderr, "PAIRED_CBLAS: %s\n", dlerror());
            return 2;
        }
        cblas_ilp64 = getenv("PAIRED_CBLAS_ILP64") && atoi(getenv("PAIRED_CBLAS_ILP64"));
        if (n_variants == MAX_CONTENDERS) return 2;
        variants[n_variants++] = builds[N_BUILDS];
    }
    /* One call of contender v on the shared problem (its weight type swapped in). */
    const void *b32 = is_mm ? mp.b : NULL;
#define RUN(v) (is_mm ? (mp.b_dtype = variants[v].dtype, mp.b = mp.b_dtype ? (const void *)b16[mp.b_dtype] : b32, \
                         mp.flags = variants[v].products ? ATTN_MATMUL_BF16_PRODUCTS : 0, variants[v].matmul(&mp)) \
                      : run_attn(&variants[v], &p, qkv))

    static double seconds[MAX_CONTENDERS][MAX_ROUNDS], ratio[MAX_CONTENDERS][MAX_ROUNDS];
    for (int v = 0; v < n_variants; v++) { /* warm-up */
        if (RUN(v)) return 1;
    }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n_variants; i++) {
            const int v = (i + r) % n_variants; /* rotate who goes first */
            const double t0 = now_seconds();
            if (RUN(v)) return 1;
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
