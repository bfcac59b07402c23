/*
 * fuzz_attention.c: a libFuzzer target for the C attention API (attn_validate, attn_forward,
 * attn_forward_unfused and the two workspace queries; then attn_backward, attn_backward_unfused
 * and theirs, on the problem the forward ran).
 *
 * Each input is decoded into an attn_params: sizes (mostly small, sometimes zero, negative, powers of
 * two or raw 64-bit values), strides (contiguous, sequence-major, padded, broadcast, or raw), a
 * bool mask and an additive bias with their own stride patterns, key lengths, causal mode, windows,
 * scale, dropout, masked-row policy, lse, thread count, instruction set, and occasionally a NULL
 * pointer. The input's remaining bytes (then a generator seeded by them) give the data: values in
 * [-3.9, 3.9] and, in a quarter of the inputs, from a few byte values, NaN, +-inf, a subnormal or 1e30.
 *
 * The harness computes itself, with checked arithmetic, the memory the struct describes. When that
 * is small enough it allocates every tensor at exactly that size (so AddressSanitizer reports any
 * read or write outside it) and surrounds out and lse with guard zones. Then:
 *   - the workspace queries agree with attn_validate (same status, or OVERFLOW from one path's plan);
 *   - a call attn_validate rejects returns the same status and writes nothing;
 *   - an accepted call returns ATTN_OK (or ATTN_ERR_OUT_OF_MEMORY), writes every element of every
 *     output row and every lse entry, and nothing else: the guards, and the gaps between strided
 *     output rows, keep their sentinel; the inputs are unchanged;
 *   - the fused and unfused paths agree (within 1e-3 relative, NaN where NaN) when the data and
 *     parameters are tame (no special values, moderate scale);
 *   - the fused path gives the same bits with 1 and 2 threads;
 *   - after a fused forward with lse, the backward (fuzz_backward): both paths return the same
 *     status (NULL_POINTER when lse is NULL, as the input sometimes makes it), write every element
 *     of dq, dk, dv and the chosen dbias (dense, broadcast from (Lq, Lk), or one sum) and nothing
 *     around them, leave out, lse and dout alone, the fused one gives the same bits on another
 *     thread count, and the two agree within 2e-3 of the largest gradient on tame problems;
 *   - now and then, instead, the training kernels (fuzz_training_kernels): softmax and mean-pooling
 *     backward, cross-entropy and the optimiser step on chosen sizes, strides, targets and options
 *     write nothing when they reject a call, nothing outside their outputs, and the same bits on
 *     another thread count.
 * Any violation aborts with a message, which libFuzzer records as a crash.
 *
 * Built by `make fuzz` with clang -fsanitize=fuzzer,address,undefined. With -DFUZZ_STANDALONE it
 * has its own main instead (for compilers without libFuzzer): it replays the files and directories
 * given, then runs -runs=N inputs from a seeded generator (-seed=S), e.g.
 *   gcc -DFUZZ_STANDALONE -fsanitize=address,undefined -ICKernels/include Tests/Fuzz/fuzz_attention.c \
 *       $(ls CKernels/[a-z]*.c) -lm -lpthread -o fuzz_attention && ./fuzz_attention Tests/Fuzz/corpus/fuzz_attention -runs=10000
 */
#define _GNU_SOURCE

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attn.h"

/* Limits for the calls that actually run: per tensor, and for Lq x Lk per (b, h) of the unfused path. */
#define MAX_ELEMS ((int64_t)1 << 16)
#define MAX_SCORES ((int64_t)1 << 18)
#define GUARD 64

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#include <stdarg.h>
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_attention: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ---- reading the input ---- */

typedef struct reader {
    const uint8_t *p;
    size_t n, i;
    uint64_t rng; /* after the input runs out */
} reader;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint8_t rd_u8(reader *r) {
    if (r->i < r->n) return r->p[r->i++];
    r->rng += 0x9E3779B97F4A7C15ull;
    return (uint8_t)(mix64(r->rng) >> 56);
}
static uint64_t rd_u64(reader *r) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | rd_u8(r);
    return v;
}

/* A size: mostly 1..cap, sometimes 0 or negative, a power of two (+-1), or any 64-bit value. */
static int64_t rd_size(reader *r, int64_t cap) {
    const uint8_t t = rd_u8(r);
    if (t < 232) return 1 + (int64_t)(rd_u8(r) % cap);
    if (t < 240) {
        static const int64_t odd[] = {0, -1, INT64_MIN, -2, 0};
        return odd[t % 5];
    }
    if (t < 252) {
        const int64_t p = (int64_t)1 << (rd_u8(r) % 63);
        return p + (t % 3) - 1;
    }
    return (int64_t)rd_u64(r);
}

static int64_t mul_sat(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Strides {batch, head, position} of a (count0, count1, count2, inner) tensor, by layout mode. */
static void rd_strides3(reader *r, int64_t c1, int64_t c2, int64_t inner, int64_t st[3], int output, int *zeroed) {
    const uint8_t t = rd_u8(r);
    static const int structured[4] = {0, 1, 2, 5};
    const int mode = t < (output ? 240 : 224) ? (output ? t % 3 : structured[t % 4]) : 3 + t % 2;
    switch (mode) {
    case 0: /* (B, H, L, D) */
        st[2] = inner; st[1] = mul_sat(c2, inner); st[0] = mul_sat(c1, st[1]);
        break;
    case 1: /* (B, L, H, D) */
        st[1] = inner; st[2] = mul_sat(c1, inner); st[0] = mul_sat(c2, st[2]);
        break;
    case 2: { /* (B, H, L, D + pad) */
        const int64_t row = inner + rd_u8(r) % 5;
        st[2] = row; st[1] = mul_sat(c2, row); st[0] = mul_sat(c1, st[1]);
        break;
    }
    case 3: /* raw small, possibly negative or overlapping */
        for (int d = 0; d < 3; d++) st[d] = (int8_t)rd_u8(r);
        break;
    case 4: /* raw 64-bit */
        for (int d = 0; d < 3; d++) st[d] = (int64_t)rd_u64(r);
        break;
    default: { /* broadcast: (B, H, L, D) with some strides zero */
        const uint8_t z = rd_u8(r);
        st[2] = inner; st[1] = mul_sat(c2, inner); st[0] = mul_sat(c1, st[1]);
        for (int d = 0; d < 3; d++)
            if (z >> d & 1) st[d] = 0;
        *zeroed = 1;
        break;
    }
    }
}

/* Strides (b, h, i, j) of a mask or bias: full, (Lq, Lk), (Hq, Lq, Lk), (B, 1, 1, Lk), raw. */
static void rd_strides4(reader *r, int64_t Hq, int64_t Lq, int64_t Lk, int64_t st[4]) {
    const uint8_t t = rd_u8(r);
    memset(st, 0, 4 * sizeof st[0]);
    switch (t < 224 ? t % 4 : 4 + t % 2) {
    case 0: st[3] = 1; st[2] = Lk; st[1] = mul_sat(Lq, Lk); st[0] = mul_sat(Hq, st[1]); break;
    case 1: st[3] = 1; st[2] = Lk; break;
    case 2: st[3] = 1; st[2] = Lk; st[1] = mul_sat(Lq, Lk); break;
    case 3: st[3] = 1; st[0] = Lk; break;
    case 4: for (int d = 0; d < 4; d++) st[d] = (int8_t)rd_u8(r); break;
    default: for (int d = 0; d < 4; d++) st[d] = t & 64 ? (int64_t)rd_u64(r) : rd_u8(r) % 7; break;
    }
}

/* A data value: k/32 for k in [-125, 124]; when specials are on, a few byte values give special floats. */
static float rd_value(reader *r, int specials, int *wild) {
    const uint8_t b = rd_u8(r);
    if (b < 250 || !specials) return (float)((int)b % 250 - 125) / 32.0f;
    *wild = 1;
    static const float special[6] = {NAN, INFINITY, -INFINITY, 1e-40f, 1e30f, -0.0f};
    return special[b - 250];
}

/* ---- the memory a struct describes ---- */

/* One past the largest element offset: inner + sum (count - 1) * stride, or -1 when counts or
 * strides are out of range or the sum overflows. */
static int64_t extent(int rank, const int64_t *count, const int64_t *stride, int64_t inner) {
    if (inner < 1) return -1;
    int64_t e = inner;
    for (int d = 0; d < rank; d++) {
        if (count[d] < 1 || stride[d] < 0) return -1;
        int64_t span;
        if (__builtin_mul_overflow(count[d] - 1, stride[d], &span) || __builtin_add_overflow(e, span, &e)) return -1;
    }
    return e;
}

static const uint32_t SENTINEL = 0x7FC5A5A5u;
static void fill_sentinel(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) memcpy(&x[i], &SENTINEL, 4);
}
static int is_sentinel(const float *x) { return memcmp(x, &SENTINEL, 4) == 0; }

/* An output buffer: GUARD sentinels, the extent, GUARD sentinels. */
typedef struct guarded {
    float *base, *p;
    int64_t n;
} guarded;

static guarded guarded_new(int64_t n) {
    guarded g;
    g.n = n;
    g.base = malloc(sizeof(float) * (size_t)(n + 2 * GUARD));
    if (!g.base) fail("harness out of memory");
    g.p = g.base + GUARD;
    fill_sentinel(g.base, n + 2 * GUARD);
    return g;
}

static void guards_intact(const guarded *g, const char *what, const char *call) {
    for (int64_t i = 0; i < GUARD; i++) {
        if (!is_sentinel(g->base + i)) fail("%s wrote %lld elements before %s", call, (long long)(GUARD - i), what);
        if (!is_sentinel(g->p + g->n + i)) fail("%s wrote element %lld past the end of %s", call, (long long)i, what);
    }
}

/* ---- what the inputs reached (printed at exit when FUZZ_STATS=1) ---- */

static long g_stat[8];
enum { ST_INPUTS, ST_REJECTED, ST_ACCEPTED_UNRUNNABLE, ST_RAN, ST_COMPARED, ST_THREADS_COMPARED, ST_ROW_KERNEL, ST_BACKWARD_COMPARED };
static void print_stats(void) {
    fprintf(stderr,
            "fuzz_attention stats: %ld inputs; %ld rejected (same status from every call, nothing written); %ld accepted "
            "but too large to run; %ld run on both paths (%ld with Lq <= 16); %ld fused/unfused compared; %ld thread "
            "counts compared; %ld backward fused/unfused compared\n",
            g_stat[ST_INPUTS], g_stat[ST_REJECTED], g_stat[ST_ACCEPTED_UNRUNNABLE], g_stat[ST_RAN], g_stat[ST_ROW_KERNEL],
            g_stat[ST_COMPARED], g_stat[ST_THREADS_COMPARED], g_stat[ST_BACKWARD_COMPARED]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

/* ---- one input ---- */

typedef struct decoded {
    attn_params p;
    int null_params, wild, isa;
    int64_t q_ext, k_ext, v_ext, out_ext, mask_ext, bias_ext;
    int determinism; /* also compare 1 and 2 threads */
} decoded;

/* Tables whose first *_VALID entries are valid (and tame), the rest out of range. */
static const float scales[] = {0.0f, 0.0f, 1.0f, 0.125f, -0.5f, 3.0f, 1e-3f, NAN, INFINITY, -INFINITY, 1e30f};
#define SCALES_VALID 7
static const float probs[] = {0.0f, 0.0f, 0.0f, 0.1f, 0.5f, 0.9f, 0.999f, 0.99999994f, 1.0f, -0.1f, NAN};
#define PROBS_VALID 8
static const float biases[] = {0.0f, 0.5f, -0.5f, 2.0f, -2.0f, -INFINITY, -FLT_MAX, 1e4f, -1e4f, NAN, INFINITY};
static const int threads_table[] = {1, 1, 1, 1, 2, 2, 0, 3, -1, ATTN_MAX_THREADS + 1};
#define THREADS_VALID 8

/* ---- the backward pass, after a forward that ran ---- */

/* attn_backward and attn_backward_unfused on the forward problem p (out0 and lse0: what the fused
 * forward wrote, out.n and rows floats), with dout from the input, dense dq/dk/dv in guard zones
 * and, by the input's choice, a dbias dense, broadcast from (Lq, Lk) or summed to one element.
 * Checks: both return the same status (NULL_POINTER without lse), write every gradient element and
 * nothing else, leave their inputs alone, give the same bits on another thread count (fused) and
 * agree with each other on tame problems. */
static void fuzz_backward(attn_params p, reader *r, const float *out0, int64_t out_n, const float *lse0, int64_t rows,
                          int wild, int determinism, int specials) {
    const int64_t nq = p.batch * p.heads_q * p.len_q * p.dim_qk, nk = p.batch * p.heads_kv * p.len_k * p.dim_qk;
    const int64_t nv = p.batch * p.heads_kv * p.len_k * p.dim_v, scores = p.batch * p.heads_q * p.len_q * p.len_k;
    const uint8_t mode = rd_u8(r) % 4;
    const int64_t db_n = mode == 1 ? scores : mode == 2 ? p.len_q * p.len_k : mode == 3 ? 1 : 0;
    if (nq > MAX_ELEMS || nk > MAX_ELEMS || nv > MAX_ELEMS || db_n > MAX_ELEMS) return;
    float *out = malloc(sizeof(float) * (size_t)out_n), *lse = malloc(sizeof(float) * (size_t)rows);
    float *dout = malloc(sizeof(float) * (size_t)out_n), *dout0 = malloc(sizeof(float) * (size_t)out_n);
    if (!out || !lse || !dout || !dout0) fail("harness out of memory");
    memcpy(out, out0, sizeof(float) * (size_t)out_n);
    memcpy(lse, lse0, sizeof(float) * (size_t)rows);
    for (int64_t i = 0; i < out_n; i++) dout[i] = rd_value(r, specials, &wild);
    memcpy(dout0, dout, sizeof(float) * (size_t)out_n);
    attn_backward_params bp = attn_backward_params_default();
    p.out = out;
    p.lse = rd_u8(r) < 16 ? NULL : lse;
    bp.forward = p;
    bp.dout = dout;
    memcpy(bp.dout_stride, p.out_stride, sizeof bp.dout_stride);
    const int64_t dq_st[3] = {p.heads_q * p.len_q * p.dim_qk, p.len_q * p.dim_qk, p.dim_qk};
    const int64_t dk_st[3] = {p.heads_kv * p.len_k * p.dim_qk, p.len_k * p.dim_qk, p.dim_qk};
    const int64_t dv_st[3] = {p.heads_kv * p.len_k * p.dim_v, p.len_k * p.dim_v, p.dim_v};
    const int64_t db_st[4][4] = {{0}, {p.heads_q * p.len_q * p.len_k, p.len_q * p.len_k, p.len_k, 1}, {0, 0, p.len_k, 1}, {0}};
    memcpy(bp.dq_stride, dq_st, sizeof dq_st);
    memcpy(bp.dk_stride, dk_st, sizeof dk_st);
    memcpy(bp.dv_stride, dv_st, sizeof dv_st);
    memcpy(bp.dbias_stride, db_st[mode], sizeof bp.dbias_stride);
    guarded g[4] = {guarded_new(nq), guarded_new(nk), guarded_new(nv), guarded_new(db_n)};
    float *res[3][4] = {{0}};
    int ok[3] = {0, 0, 0};
    const int calls = determinism && p.num_threads >= 0 && p.num_threads <= ATTN_MAX_THREADS ? 3 : 2;
    attn_status first = ATTN_OK;
    for (int call = 0; call < calls; call++) {
        for (int t = 0; t < 4; t++) fill_sentinel(g[t].base, g[t].n + 2 * GUARD);
        bp.dq = g[0].p; bp.dk = g[1].p; bp.dv = g[2].p; bp.dbias = mode ? g[3].p : NULL;
        attn_backward_params bc = bp;
        if (call == 2) bc.forward.num_threads = p.num_threads == 1 ? 2 : 1;
        const char *name = call == 1 ? "attn_backward_unfused" : "attn_backward";
        size_t bytes = 0;
        const attn_status ws = call == 1 ? attn_backward_unfused_workspace(&bc, &bytes) : attn_backward_workspace(&bc, &bytes);
        const attn_status st = call == 1 ? attn_backward_unfused(&bc) : attn_backward(&bc);
        if (st != ws && st != ATTN_ERR_OUT_OF_MEMORY) fail("%s returned %d, its workspace query %d", name, st, ws);
        if (!p.lse && st != ATTN_ERR_NULL_POINTER) fail("%s without lse returned %d", name, st);
        if (call == 0) first = st;
        else if (st != first && st != ATTN_ERR_OUT_OF_MEMORY && first != ATTN_ERR_OUT_OF_MEMORY &&
                 st != ATTN_ERR_OVERFLOW && first != ATTN_ERR_OVERFLOW)
            fail("%s returned %d where attn_backward returned %d", name, st, first);
        static const char *names[4] = {"dq", "dk", "dv", "dbias"};
        for (int t = 0; t < 4; t++) {
            guards_intact(&g[t], names[t], name);
            for (int64_t i = 0; i < g[t].n; i++)
                if ((st == ATTN_OK) == is_sentinel(g[t].p + i))
                    fail("%s (status %d) %s %s[%lld]", name, st, st == ATTN_OK ? "left unwritten" : "wrote", names[t],
                         (long long)i);
        }
        if (memcmp(out, out0, sizeof(float) * (size_t)out_n) || memcmp(lse, lse0, sizeof(float) * (size_t)rows) ||
            memcmp(dout, dout0, sizeof(float) * (size_t)out_n))
            fail("%s modified out, lse or dout", name);
        if (st != ATTN_OK) continue;
        ok[call] = 1;
        for (int t = 0; t < 4; t++) {
            res[call][t] = malloc(sizeof(float) * (size_t)(g[t].n > 0 ? g[t].n : 1));
            if (!res[call][t]) fail("harness out of memory");
            memcpy(res[call][t], g[t].p, sizeof(float) * (size_t)g[t].n);
        }
    }
    if (ok[0] && ok[2])
        for (int t = 0; t < 4; t++)
            if (memcmp(res[0][t], res[2][t], sizeof(float) * (size_t)g[t].n) != 0)
                fail("attn_backward gives different bits with num_threads %d and %d", p.num_threads, p.num_threads == 1 ? 2 : 1);
    if (ok[0] && ok[1] && !wild) {
        const double keep = p.dropout_p > 0.0f ? 1.0 / (1.0 - (double)p.dropout_p) : 1.0;
        for (int t = 0; t < 4; t++) {
            double big = 0;
            for (int64_t i = 0; i < g[t].n; i++)
                if (isfinite(res[1][t][i])) big = fmax(big, fabs((double)res[1][t][i]));
            const double tol = 2e-3 * (1.0 + big) * keep;
            for (int64_t i = 0; i < g[t].n; i++) {
                const double a = res[0][t][i], b = res[1][t][i];
                if (!((isnan(a) && isnan(b)) || a == b || (isfinite(a) && isfinite(b) && fabs(a - b) <= tol)))
                    fail("backward: fused %.9g vs unfused %.9g at element %lld of gradient %d (tolerance %.3g)", a, b,
                         (long long)i, t, tol);
            }
        }
        g_stat[ST_BACKWARD_COMPARED]++;
    }
    for (int c = 0; c < 3; c++)
        for (int t = 0; t < 4; t++) free(res[c][t]);
    for (int t = 0; t < 4; t++) free(g[t].base);
    free(out); free(lse); free(dout); free(dout0);
}

/* ---- the training kernels around attention ---- */

/* attn_softmax_rows_backward, attn_mean_rows_backward, attn_cross_entropy and attn_optimizer_step on
 * fuzzer-chosen sizes, row strides, targets and options: a rejected call writes nothing; an accepted
 * one writes every element of its outputs' rows and nothing around them (guard zones), and gives
 * the same bits on another thread count. */
static void fuzz_training_kernels(reader *r, int specials) {
    int wild = 0;
    const int64_t rows = rd_size(r, 9), n = rd_size(r, 300), pad = rd_u8(r) % 3;
    const int64_t ld = rd_u8(r) < 8 ? n - 1 : n + pad;
    if (rows < 0 || n < 0 || ld < 0 || rows > 64 || n > 4096 || ld > 4096) return;
    const int64_t total = rows * (ld > n ? ld : n) + 1;
    float *x = malloc(sizeof(float) * (size_t)total), *y = malloc(sizeof(float) * (size_t)total);
    int64_t *targets = malloc(sizeof(int64_t) * (size_t)(rows + 1));
    if (!x || !y || !targets) fail("harness out of memory");
    for (int64_t i = 0; i < total; i++) x[i] = rd_value(r, specials, &wild), y[i] = fabsf(rd_value(r, specials, &wild)) / 8;
    for (int64_t i = 0; i < rows; i++) targets[i] = rd_u8(r) < 240 ? (n > 0 ? (int64_t)(rd_u8(r) % n) : 0) : (int64_t)(int8_t)rd_u8(r) - 100;
    const int threads = threads_table[rd_u8(r) % THREADS_VALID];
    guarded out[2] = {guarded_new(total), guarded_new(total)}, loss[2] = {guarded_new(rows + 1), guarded_new(rows + 1)};
    const uint8_t which = rd_u8(r) % 4, opt[5] = {rd_u8(r), rd_u8(r), rd_u8(r), rd_u8(r), rd_u8(r)};
    attn_status st[2];
    for (int call = 0; call < 2; call++) {
        const int t = call ? (threads == 1 ? 2 : 1) : threads;
        if (which == 0) {
            attn_softmax_rows_backward_params p = attn_softmax_rows_backward_params_default();
            p.rows = rows; p.n = n; p.dx = out[call].p; p.ld_dx = ld; p.y = y; p.ld_y = ld; p.dout = x; p.ld_dout = ld;
            p.num_threads = t;
            st[call] = attn_softmax_rows_backward(&p);
        } else if (which == 1) {
            attn_mean_rows_backward_params p = attn_mean_rows_backward_params_default();
            p.rows = rows; p.n = n; p.dx = out[call].p; p.ld_dx = ld; p.dout = x; p.num_threads = t;
            st[call] = attn_mean_rows_backward(&p);
        } else if (which == 2) {
            attn_cross_entropy_params p = attn_cross_entropy_params_default();
            p.rows = rows; p.classes = n; p.logits = x; p.ld_logits = ld; p.targets = targets;
            p.label_smoothing = (float)(opt[0] % 6) * 0.25f;
            p.reduction = (attn_loss_reduction)(opt[1] % 4);
            p.loss = loss[call].p; p.dlogits = out[call].p; p.ld_dlogits = ld; p.num_threads = t;
            st[call] = attn_cross_entropy(&p);
        } else {
            float *param = out[call].p, *m = loss[call].p; /* count = total - 1 parameters; moments of rows + 1 */
            attn_optimizer_step_params p = attn_optimizer_step_params_default();
            p.kind = (attn_optimizer)(opt[0] % 4);
            p.count = rows + 1 < total ? rows + 1 : total;
            memcpy(param, y, sizeof(float) * (size_t)p.count);
            p.param = param; p.grad = x; p.first_moment = m; p.second_moment = y; /* y as v: read and written */
            p.momentum_buffer = m; p.momentum = opt[1] & 1 ? 0.9f : 0.0f; p.nesterov = opt[2] < 16;
            p.step = (int64_t)(opt[3] % 4); p.num_threads = t;
            st[call] = call ? st[0] : attn_optimizer_step(&p); /* the state moves: compared across ISAs by the tests */
        }
        guards_intact(&out[call], "dx", "a training kernel");
        guards_intact(&loss[call], "loss", "a training kernel");
    }
    if (st[0] != st[1]) fail("training kernel %d: status %d, then %d on another thread count", which, st[0], st[1]);
    if (which < 3) {
        for (int64_t i = 0; i < out[0].n; i++) {
            const int s0 = is_sentinel(out[0].p + i);
            if (st[0] != ATTN_OK && !s0) fail("training kernel %d rejected the call (%d) but wrote", which, st[0]);
        }
        if (st[0] == ATTN_OK && memcmp(out[0].p, out[1].p, sizeof(float) * (size_t)out[0].n))
            fail("training kernel %d gives different bits on another thread count", which);
    }
    for (int c = 0; c < 2; c++) free(out[c].base), free(loss[c].base);
    free(x); free(y); free(targets);
}

static int run_input(const uint8_t *data, size_t size) {
    static int stats_registered;
    if (!stats_registered) {
        stats_registered = 1;
        const char *e = getenv("FUZZ_STATS");
        if (e && e[0] == '1') atexit(print_stats);
    }
    g_stat[ST_INPUTS]++;
    reader r = {data, size, 0, 0};
    uint64_t h = 0x6A09E667F3BCC909ull;
    for (size_t i = 0; i < size; i++) h = mix64(h ^ data[i]) + i;
    r.rng = h;

    attn_params p = attn_params_default();
    int wild = 0;
    p.batch = rd_size(&r, 3);
    p.heads_q = rd_size(&r, 4);
    {
        const uint8_t t = rd_u8(&r);
        if (t < 220 && p.heads_q >= 1 && p.heads_q <= 64) {
            int64_t divisors[64], nd = 0;
            for (int64_t d = 1; d <= p.heads_q; d++)
                if (p.heads_q % d == 0) divisors[nd++] = d;
            p.heads_kv = divisors[t % nd];
        } else {
            p.heads_kv = rd_size(&r, 4);
        }
    }
    p.len_q = rd_size(&r, 70);
    p.len_k = rd_size(&r, 140);
    p.dim_qk = rd_size(&r, 70);
    p.dim_v = rd_size(&r, 70);
    int zeroed = 0;
    rd_strides3(&r, p.heads_q, p.len_q, p.dim_qk, p.q_stride, 0, &zeroed);
    rd_strides3(&r, p.heads_kv, p.len_k, p.dim_qk, p.k_stride, 0, &zeroed);
    rd_strides3(&r, p.heads_kv, p.len_k, p.dim_v, p.v_stride, 0, &zeroed);
    rd_strides3(&r, p.heads_q, p.len_q, p.dim_v, p.out_stride, 1, &zeroed);

    const uint8_t opts = rd_u8(&r);
    const int has_mask = opts & 1, has_bias = opts >> 1 & 1, has_key_len = opts >> 2 & 1, has_lse = opts >> 3 & 1;
    const int determinism = opts >> 4 & 1;
    if (has_mask) rd_strides4(&r, p.heads_q, p.len_q, p.len_k, p.mask_stride);
    if (has_bias) rd_strides4(&r, p.heads_q, p.len_q, p.len_k, p.bias_stride);
    const uint8_t mask_density = rd_u8(&r);
    const float bias_a = biases[rd_u8(&r) % (sizeof biases / sizeof biases[0])];
    const float bias_b = biases[rd_u8(&r) % (sizeof biases / sizeof biases[0])];
    if (has_bias && (isnan(bias_a) || isnan(bias_b) || bias_a == INFINITY || bias_b == INFINITY)) wild = 1;

    {
        const uint8_t t = rd_u8(&r);
        p.causal = t < 240 ? (attn_causal)(t % 3) : t < 250 ? (attn_causal)3 : (attn_causal)(int)rd_u64(&r);
    }
    for (int w = 0; w < 2; w++) {
        const uint8_t t = rd_u8(&r);
        int64_t v = t < 128 ? -1 : t < 230 ? rd_u8(&r) % 80 : t < 240 ? -2 : (int64_t)rd_u64(&r);
        if (w == 0) p.window_left = v;
        else p.window_right = v;
    }
    {
        const uint8_t t = rd_u8(&r);
        if (t < 232) p.scale = scales[t % SCALES_VALID];
        else if (t < 250) p.scale = scales[SCALES_VALID + t % (sizeof scales / sizeof scales[0] - SCALES_VALID)];
        else {
            uint32_t bits = (uint32_t)rd_u64(&r);
            memcpy(&p.scale, &bits, 4);
        }
        if (!(fabsf(p.scale) <= 3.0f)) wild = 1;
    }
    {
        const uint8_t t = rd_u8(&r);
        p.dropout_p = t < 240 ? probs[t % PROBS_VALID] : probs[PROBS_VALID + t % (sizeof probs / sizeof probs[0] - PROBS_VALID)];
    }
    p.dropout_seed = rd_u64(&r);
    p.dropout_offset = rd_u8(&r) < 200 ? 0 : rd_u64(&r);
    {
        const uint8_t t = rd_u8(&r);
        p.masked_rows = t < 240 ? (attn_masked_rows)(t % 3) : t < 250 ? (attn_masked_rows)3 : (attn_masked_rows)(int)rd_u64(&r);
    }
    {
        const uint8_t t = rd_u8(&r);
        p.num_threads = threads_table[t < 240 ? t % THREADS_VALID : THREADS_VALID + t % 2];
    }
    const int isa = rd_u8(&r) % 4;
    const uint8_t nulls = rd_u8(&r);
    const int specials = rd_u8(&r) < 64;
    if (nulls == 0xF6) { /* now and then the training kernels instead */
        fuzz_training_kernels(&r, specials);
        return 0;
    }

    /* The memory the struct describes (-1: not addressable, so no call that would read it is made). */
    const int64_t qc[3] = {p.batch, p.heads_q, p.len_q}, kc[3] = {p.batch, p.heads_kv, p.len_k};
    const int64_t sc[4] = {p.batch, p.heads_q, p.len_q, p.len_k};
    const int64_t q_ext = extent(3, qc, p.q_stride, p.dim_qk), k_ext = extent(3, kc, p.k_stride, p.dim_qk);
    const int64_t v_ext = extent(3, kc, p.v_stride, p.dim_v), out_ext = extent(3, qc, p.out_stride, p.dim_v);
    const int64_t mask_ext = has_mask ? extent(4, sc, p.mask_stride, 1) : 0;
    const int64_t bias_ext = has_bias ? extent(4, sc, p.bias_stride, 1) : 0;
    int64_t rows = -1, scores_per_head = -1;
    if (p.batch >= 1 && p.heads_q >= 1 && p.len_q >= 1 && p.len_k >= 1) {
        if (__builtin_mul_overflow(p.batch, p.heads_q, &rows) || __builtin_mul_overflow(rows, p.len_q, &rows)) rows = -1;
        if (__builtin_mul_overflow(p.len_q, p.len_k, &scores_per_head)) scores_per_head = -1;
    }
    const int runnable = q_ext > 0 && q_ext <= MAX_ELEMS && k_ext > 0 && k_ext <= MAX_ELEMS && v_ext > 0 &&
                         v_ext <= MAX_ELEMS && out_ext > 0 && out_ext <= MAX_ELEMS && mask_ext >= 0 &&
                         mask_ext <= MAX_ELEMS && bias_ext >= 0 && bias_ext <= MAX_ELEMS && rows > 0 &&
                         rows <= MAX_ELEMS && scores_per_head > 0 && scores_per_head <= MAX_SCORES &&
                         p.dim_qk <= 4096 && p.dim_v <= 4096;

    /* Buffers: exact sizes when runnable; otherwise small stand-ins that must never be read. */
    const int64_t nq = runnable ? q_ext : 4, nk = runnable ? k_ext : 4, nv = runnable ? v_ext : 4;
    float *q = malloc(sizeof(float) * (size_t)nq), *k = malloc(sizeof(float) * (size_t)nk), *v = malloc(sizeof(float) * (size_t)nv);
    if (!q || !k || !v) fail("harness out of memory");
    for (int64_t i = 0; i < nq; i++) q[i] = rd_value(&r, specials, &wild);
    for (int64_t i = 0; i < nk; i++) k[i] = rd_value(&r, specials, &wild);
    for (int64_t i = 0; i < nv; i++) v[i] = rd_value(&r, specials, &wild);
    uint8_t *mask = NULL;
    float *bias = NULL;
    if (has_mask) {
        const int64_t n = runnable ? mask_ext : 4;
        mask = malloc((size_t)n);
        if (!mask) fail("harness out of memory");
        for (int64_t i = 0; i < n; i++) mask[i] = rd_u8(&r) < mask_density ? 0 : (uint8_t)(1 + rd_u8(&r) % 3);
    }
    if (has_bias) {
        const int64_t n = runnable ? bias_ext : 4;
        bias = malloc(sizeof(float) * (size_t)n);
        if (!bias) fail("harness out of memory");
        for (int64_t i = 0; i < n; i++) bias[i] = rd_u8(&r) & 1 ? bias_a : bias_b;
    }
    /* key_len is read during validation, for b < batch: it must always hold batch entries. */
    int64_t *key_len = NULL;
    if (has_key_len && p.batch >= 1 && p.batch <= 64) {
        key_len = malloc(sizeof(int64_t) * (size_t)p.batch);
        if (!key_len) fail("harness out of memory");
        for (int64_t b = 0; b < p.batch; b++) {
            const uint8_t t = rd_u8(&r);
            const int64_t lk = p.len_k > 0 && p.len_k < 1000000 ? p.len_k : 1000000;
            if (t < 240) {
                const int64_t lo = rd_u8(&r), hi = rd_u8(&r);
                key_len[b] = (lo | hi << 8) % (lk + 3) - 1;
            } else {
                key_len[b] = (int64_t)rd_u64(&r);
            }
        }
    }
    guarded out = guarded_new(runnable ? out_ext : 4);
    guarded lse = guarded_new(runnable ? rows : 4);
    p.q = q; p.k = k; p.v = v; p.out = out.p;
    p.mask = mask; p.bias = bias; p.key_len = key_len;
    p.lse = has_lse ? lse.p : NULL;
    if (nulls >= 0xF8) {
        switch (nulls & 3) {
        case 0: p.q = NULL; break;
        case 1: p.k = NULL; break;
        case 2: p.v = NULL; break;
        default: p.out = NULL; break;
        }
    }
    const int null_params = nulls == 0xF7;
    /* Now and then a struct_size no release declared (attn.h): rejected before any other field. */
    const uint8_t size_pick = rd_u8(&r);
    const int bad_size = size_pick >= 248;
    if (bad_size) {
        const size_t bad[8] = {0, 1, 8, sizeof p - 8, sizeof p + 8, sizeof p / 2, SIZE_MAX, sizeof p + 1};
        p.struct_size = bad[size_pick - 248];
    }
    const attn_isa initial = attn_get_isa();
    if (attn_isa_supported((attn_isa)isa)) attn_set_isa((attn_isa)isa);


    /* Validation and the workspace queries. */
    const attn_params *pp = null_params ? NULL : &p;
    const attn_status sv = attn_validate(pp);
    size_t wf = 0, wu = 0;
    const attn_status sf = attn_forward_workspace(pp, &wf), su = attn_forward_unfused_workspace(pp, &wu);
    if (null_params && sv != ATTN_ERR_NULL_POINTER) fail("attn_validate(NULL) = %d", sv);
    if (!null_params && bad_size && sv != ATTN_ERR_INVALID_ARGUMENT)
        fail("struct_size %zu: attn_validate %d, want invalid argument", p.struct_size, sv);
    /* attn_validate is exactly attn_forward's checks, so the fused query always agrees. The two paths
     * share every check on the parameters, but each sizes its own workspace: either may overflow
     * where the other does not (the unfused one grows with Lq x Lk, the fused row kernel's partial
     * results with B x Hq x Lq). So apart from OVERFLOW, the unfused query agrees too. */
    if (sf != sv) fail("validate %d but attn_forward_workspace %d", sv, sf);
    if (su != sv && !(su == ATTN_ERR_OVERFLOW && sv == ATTN_OK) && !(su == ATTN_OK && sv == ATTN_ERR_OVERFLOW))
        fail("validate %d but attn_forward_unfused_workspace %d", sv, su);
    if (attn_forward_workspace(pp, NULL) != ATTN_ERR_NULL_POINTER) fail("attn_forward_workspace(bytes NULL) not NULL_POINTER");

    if (sv != ATTN_OK) g_stat[ST_REJECTED]++;
    else if (!runnable) g_stat[ST_ACCEPTED_UNRUNNABLE]++;
    if (sv != ATTN_OK) {
        /* Rejected: each path returns its query's status and writes nothing (the stand-in buffers are
         * tiny, so a kernel reading them for a rejected call would also be caught by ASan). Where only
         * the fused workspace overflows, the unfused path would run a valid problem on memory that
         * does not exist (such inputs describe 2^57 heads or more), so it is not called. */
        for (int path = 0; path < 2; path++) {
            if (path && su == ATTN_OK) continue;
            const attn_status st = path ? attn_forward_unfused(pp) : attn_forward(pp);
            if (st != sv) fail("attn_validate %d but %s %d", sv, path ? "unfused" : "fused", st);
            for (int64_t i = 0; i < out.n; i++)
                if (!is_sentinel(out.p + i)) fail("a rejected call (status %d) wrote to out", sv);
            for (int64_t i = 0; i < lse.n; i++)
                if (!is_sentinel(lse.p + i)) fail("a rejected call (status %d) wrote to lse", sv);
        }
    } else if (runnable) {
        /* Accepted, and the memory exists: run both paths, check what they wrote. */
        uint8_t *described = calloc((size_t)out.n, 1);
        float *q0 = malloc(sizeof(float) * (size_t)nq), *k0 = malloc(sizeof(float) * (size_t)nk), *v0 = malloc(sizeof(float) * (size_t)nv);
        float *res[3] = {malloc(sizeof(float) * (size_t)out.n), malloc(sizeof(float) * (size_t)out.n), malloc(sizeof(float) * (size_t)out.n)};
        float *lres[3] = {malloc(sizeof(float) * (size_t)lse.n), malloc(sizeof(float) * (size_t)lse.n), malloc(sizeof(float) * (size_t)lse.n)};
        if (!described || !q0 || !k0 || !v0 || !res[0] || !res[1] || !res[2] || !lres[0] || !lres[1] || !lres[2])
            fail("harness out of memory");
        memcpy(q0, q, sizeof(float) * (size_t)nq);
        memcpy(k0, k, sizeof(float) * (size_t)nk);
        memcpy(v0, v, sizeof(float) * (size_t)nv);
        for (int64_t b = 0; b < p.batch; b++)
            for (int64_t hh = 0; hh < p.heads_q; hh++)
                for (int64_t i = 0; i < p.len_q; i++) {
                    const int64_t o = b * p.out_stride[0] + hh * p.out_stride[1] + i * p.out_stride[2];
                    for (int64_t c = 0; c < p.dim_v; c++) described[o + c] = 1;
                }
        const int calls = determinism && p.num_threads >= 0 && p.num_threads <= ATTN_MAX_THREADS ? 3 : 2;
        int ok[3] = {0, 0, 0};
        for (int call = 0; call < calls; call++) {
            fill_sentinel(out.base, out.n + 2 * GUARD);
            fill_sentinel(lse.base, lse.n + 2 * GUARD);
            attn_params pc = p;
            if (call == 2) pc.num_threads = p.num_threads == 1 ? 2 : 1;
            const char *name = call == 1 ? "attn_forward_unfused" : "attn_forward";
            const attn_status st = call == 1 ? attn_forward_unfused(&pc) : attn_forward(&pc);
            const attn_status want = call == 1 ? su : sf;
            if (want == ATTN_ERR_OVERFLOW) {
                if (st != ATTN_ERR_OVERFLOW) fail("%s returned %d where its workspace query said OVERFLOW", name, st);
                continue;
            }
            if (st == ATTN_ERR_OUT_OF_MEMORY) continue;
            if (st != ATTN_OK) fail("%s returned %d for a problem attn_validate accepted", name, st);
            ok[call] = 1;
            guards_intact(&out, "out", name);
            guards_intact(&lse, "lse", name);
            for (int64_t i = 0; i < out.n; i++) {
                const int s = is_sentinel(out.p + i);
                if (described[i] && s) fail("%s left out element %lld (an output row) unwritten", name, (long long)i);
                if (!described[i] && !s) fail("%s wrote out element %lld, between output rows", name, (long long)i);
            }
            if (p.lse)
                for (int64_t i = 0; i < lse.n; i++)
                    if (is_sentinel(lse.p + i)) fail("%s left lse[%lld] unwritten", name, (long long)i);
            if (!p.lse)
                for (int64_t i = 0; i < lse.n; i++)
                    if (!is_sentinel(lse.p + i)) fail("%s wrote lse although it is NULL", name);
            if (memcmp(q, q0, sizeof(float) * (size_t)nq) || memcmp(k, k0, sizeof(float) * (size_t)nk) ||
                memcmp(v, v0, sizeof(float) * (size_t)nv))
                fail("%s modified an input", name);
            memcpy(res[call], out.p, sizeof(float) * (size_t)out.n);
            memcpy(lres[call], lse.p, sizeof(float) * (size_t)lse.n);
        }
        if (ok[0] && ok[1]) {
            g_stat[ST_RAN]++;
            if (p.len_q <= 16) g_stat[ST_ROW_KERNEL]++;
        }
        /* The same bits for another thread count. */
        if (ok[0] && ok[2]) {
            g_stat[ST_THREADS_COMPARED]++;
            if (memcmp(res[0], res[2], sizeof(float) * (size_t)out.n) != 0 ||
                (p.lse && memcmp(lres[0], lres[2], sizeof(float) * (size_t)lse.n) != 0))
                fail("attn_forward gives different bits with num_threads %d and %d", p.num_threads,
                     p.num_threads == 1 ? 2 : 1);
        }
        /* Fused and unfused agree on tame problems. */
        if (ok[0] && ok[1] && !wild) {
            g_stat[ST_COMPARED]++;
            const double keep = p.dropout_p > 0.0f ? 1.0 / (1.0 - (double)p.dropout_p) : 1.0;
            double vmax = 0;
            for (int64_t i = 0; i < nv; i++) vmax = fmax(vmax, fabs((double)v[i]));
            const double tol = 1e-3 * (1.0 + vmax) * keep;
            for (int64_t i = 0; i < out.n; i++) {
                if (!described[i]) continue;
                const double a = res[0][i], b = res[1][i];
                const int same = (isnan(a) && isnan(b)) || a == b || (isfinite(a) && isfinite(b) && fabs(a - b) <= tol);
                if (!same)
                    fail("fused %.9g vs unfused %.9g at out element %lld (tolerance %.3g)", a, b, (long long)i, tol);
            }
            if (p.lse)
                for (int64_t i = 0; i < lse.n; i++) {
                    const double a = lres[0][i], b = lres[1][i];
                    const int same = (isnan(a) && isnan(b)) || a == b ||
                                     (isfinite(a) && isfinite(b) && fabs(a - b) <= 1e-3 * (1.0 + fabs(a)));
                    if (!same) fail("fused lse %.9g vs unfused %.9g at row %lld", a, b, (long long)i);
                }
        }
        if (ok[0] && p.lse && p.out_dtype == ATTN_DTYPE_F32) fuzz_backward(p, &r, res[0], out.n, lres[0], lse.n, wild, determinism, specials);
        free(described); free(q0); free(k0); free(v0);
        for (int c = 0; c < 3; c++) { free(res[c]); free(lres[c]); }
    }
    attn_set_isa(initial);
    free(q); free(k); free(v); free(mask); free(bias); free(key_len); free(out.base); free(lse.base);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return run_input(data, size); }

#ifdef FUZZ_STANDALONE
/* ---- a driver for compilers without libFuzzer: replay files, then seeded random inputs ---- */
#include <dirent.h>
#include <sys/stat.h>

static long g_runs;

static void run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    uint8_t buf[1 << 16];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    run_input(buf, n);
    g_runs++;
}

static void run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            run_file(p);
        }
    closedir(d);
}

int main(int argc, char **argv) {
    long runs = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "-runs=", 6) == 0) runs = atol(argv[i] + 6);
        else if (strncmp(argv[i], "-seed=", 6) == 0) seed = strtoull(argv[i] + 6, NULL, 0);
        else run_path(argv[i]);
    }
    const long replayed = g_runs;
    uint8_t buf[512];
    for (long n = 0; n < runs; n++) {
        seed = mix64(seed + 0x9E3779B97F4A7C15ull);
        const size_t len = (size_t)(seed % sizeof buf);
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(mix64(seed + i) >> 56);
        run_input(buf, len);
        g_runs++;
    }
    printf("fuzz_attention (standalone): %ld inputs replayed, %ld generated, no failure\n", replayed, g_runs - replayed);
    return 0;
}
#endif
