/*
 * test_attention.c: tests of attn_forward (fused) and attn_forward_unfused against an independent
 * double-precision reference of the semantics documented in attn.h.
 *
 * Every case runs on both paths, on every instruction set this CPU supports, with 1 and 2 threads
 * (which must agree bitwise). Cases whose q, k and v are all bf16 also run the fused path on bf16
 * pairs (attn_bf16_dot): with VDPBF16PS where the CPU has it (the avx512 instruction set) and with
 * its portable model on every instruction set, within attn.h's tolerance for that path, and the two
 * must agree bit for bit (NaN payloads aside); the plain fused path then runs with the dot product
 * off. Outputs must be within 1e-5 * max(1, max |ref|) of the reference
 * (float32 out; attn.h's tolerances for half-precision out, tol_for). Cases with half-precision
 * q, k, v or out store those tensors rounded (test_util.h's reference rounding) and the reference
 * computes from the rounded values;
 * output padding, the lse guards and the inputs must be left alone. Then the error statuses (each
 * call run in a child process, so a validation bug cannot take the suite down), the small API
 * functions and the dropout hash.
 *
 * Build (from the package root), against the library or its sources:
 *   cc -O2 -fopenmp -ICKernels/include Tests/CKernelsTests/test_attention.c build/libattn.a -lm
 *   cc -O2 -fopenmp -ffp-contract=fast -ICKernels/include -ICKernels $(ls CKernels/[a-z]*.c) \
 *      Tests/CKernelsTests/test_attention.c -lm
 * Run:
 *   ./a.out [--seed N] [--random N] [--case N] [--quiet] [--verbose]
 *     --seed N    the seed of all generated data and of the random cases (printed at start)
 *     --random N  how many random cases after the directed ones (default 400)
 *     --case N    run only case N (as printed in a FAIL line) and skip the other sections
 *     --verbose   print every case's largest error; --quiet: less output
 * The last line is "N passed, N failed"; the exit code is non-zero when anything failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "test_util.h"

#if defined(__unix__) || defined(__APPLE__)
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#define HAVE_FORK 1
#else
#define HAVE_FORK 0
#endif

#define TOL_REL 1e-5
#define MAXB 8
#define LSE_GUARD 16
#define DEFAULT_SEED 0x5EED2024ull
#define DEFAULT_RANDOM_CASES 400

static uint64_t g_seed = DEFAULT_SEED;
static int g_quiet, g_verbose;

/* ============================================================================================== */
/* The dropout hash and threshold, re-implemented from the formulas in attn.h                      */

static uint32_t ref_dropout_bits(uint64_t seed, uint64_t counter) {
    uint64_t state = seed + (counter + 1) * 0x9E3779B97F4A7C15ull; /* wraps mod 2^64 */
    uint64_t z = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

static uint32_t ref_dropout_threshold(float p) { return (uint32_t)((double)p * 4294967296.0); }

/* ============================================================================================== */
/* Test cases                                                                                       */

/* Layouts of q, k, v (all) and out (the first four). */
enum {
    LAYOUT_BHLD,    /* contiguous (B, H, L, D) */
    LAYOUT_BLHD,    /* projected activations (B, L, H*D): {L*H*D, D, H*D} */
    LAYOUT_PADDED,  /* (B, H, L, D) with padding after every row, head and batch */
    LAYOUT_LBHD,    /* sequence-first (L, B, H*D): {H*D, D, B*H*D} */
    LAYOUT_BCAST_B, /* batch stride 0 (inputs only) */
    LAYOUT_BCAST_H, /* head stride 0 (inputs only) */
    NLAYOUT
};
#define NLAYOUT_OUT 4
static const char *layout_name[NLAYOUT] = {"bhld", "blhd", "padded", "lbhd", "bcast_b", "bcast_h"};

/* Mask and bias layouts over (b, h, i, j). */
enum {
    PAT_NONE,
    PAT_LQ_LK,       /* (Lq, Lk): {0, 0, Lk, 1} */
    PAT_HQ_LQ_LK,    /* (Hq, Lq, Lk) */
    PAT_B_1_1_LK,    /* (B, 1, 1, Lk): key padding */
    PAT_B_HQ_LQ_LK,  /* (B, Hq, Lq, Lk) */
    PAT_PADDED,      /* (B, Hq, Lq, Lk) with padded rows and heads */
    PAT_ROW,         /* (B, Hq, Lq, 1): j stride 0 */
    PAT_LK,          /* (Lk,): every stride but j is 0 */
    PAT_TRANSPOSED,  /* (Lk, Lq) storage: {0, 0, 1, Lq} */
    PAT_SCALAR,      /* all strides 0 */
    PAT_B_1_LQ_LK,   /* (B, 1, Lq, Lk) */
    NPAT
};
static const char *pat_name[NPAT] = {"none", "(Lq,Lk)", "(Hq,Lq,Lk)", "(B,1,1,Lk)", "(B,Hq,Lq,Lk)", "padded",
                                     "(B,Hq,Lq,1)", "(Lk)", "transposed", "scalar", "(B,1,Lq,Lk)"};

static const char *causal_name(int c) {
    return c == ATTN_CAUSAL_NONE ? "none" : c == ATTN_CAUSAL_TOP_LEFT ? "top_left" : c == ATTN_CAUSAL_BOTTOM_RIGHT ? "bottom_right" : "?";
}
static const char *policy_name(int p) {
    return p == ATTN_MASKED_ROWS_ZERO ? "zero" : p == ATTN_MASKED_ROWS_NAN ? "nan" : p == ATTN_MASKED_ROWS_MEAN ? "mean" : "?";
}

typedef struct tcase {
    const char *group;
    int random;                 /* parameters drawn from the case's generator at run time */
    int64_t B, Hq, Hkv, Lq, Lk, Dqk, Dv;
    float scale;
    int causal;
    int64_t wl, wr;
    int use_key_len;
    int64_t key_len[MAXB];
    int mask_pat;
    double mask_zero, mask_rows;  /* fraction of zero entries; of logical rows set entirely to 0 */
    int bias_pat;
    double bias_ninf, bias_rows;  /* fraction of -inf entries; of logical rows set entirely to -inf */
    int bias_flt_max;             /* use -FLT_MAX (finite: it does not mask) instead of -inf for those */
    int lay_q, lay_k, lay_v, lay_out;
    float p;
    uint64_t dseed, doff;
    int policy;
    int want_lse;
    int v_identity;             /* V[j][d] = (d == j), Dv == Lk: the output shows the weights */
    int threads_default;        /* also run with num_threads = 0 */
    double check_keep_rate;     /* > 0: check the kept fraction of the dropout (with v_identity) */
    float qk_amp;               /* q and k uniform in [-qk_amp, qk_amp] */
    int dt_q, dt_k, dt_v, dt_out; /* attn_dtype of each tensor */
} tcase;

/* attn.h's tolerance for out of type t, relative to max(1, max|ref|): float32's, plus half an ulp. */
static double tol_for(int t) { return t == ATTN_DTYPE_F16 ? 5e-4 : t == ATTN_DTYPE_BF16 ? 4e-3 : TOL_REL; }
/* attn.h's addition on the bf16 dot-product path: P rounded to bf16, 2^-9 · max|v| (v is within
 * [-1, 1] here, so within 2^-9 · max(1, max|ref|)). */
#define BF16_DOT_TOL (1.0 / 512)
static const char *dtype_name(int t) { return t == ATTN_DTYPE_F16 ? "f16" : t == ATTN_DTYPE_BF16 ? "bf16" : "f32"; }

static tcase *g_cases;
static int g_ndirected, g_cap;

static tcase base_case(const char *group, int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t Dqk,
                       int64_t Dv) {
    tcase c;
    memset(&c, 0, sizeof c);
    c.group = group;
    c.B = B; c.Hq = Hq; c.Hkv = Hkv; c.Lq = Lq; c.Lk = Lk; c.Dqk = Dqk; c.Dv = Dv;
    c.wl = c.wr = -1;
    c.want_lse = 1;
    c.qk_amp = 1.0f;
    c.dseed = 1234;
    return c;
}

static tcase *add_case(tcase c) {
    if (g_ndirected == g_cap) {
        g_cap = g_cap ? 2 * g_cap : 256;
        g_cases = realloc(g_cases, (size_t)g_cap * sizeof *g_cases);
        if (!g_cases) { printf("out of memory\n"); exit(2); }
    }
    g_cases[g_ndirected] = c;
    return &g_cases[g_ndirected++];
}

static tcase *add(const char *group, int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t Dqk, int64_t Dv) {
    return add_case(base_case(group, B, Hq, Hkv, Lq, Lk, Dqk, Dv));
}

static void build_directed_cases(void) {
    static const int64_t dims[] = {1, 3, 8, 17, 64, 80, 128, 256};
    int pol = 0; /* cycles the masked-row policy through cases where it matters */
    tcase *c;

    /* ---- sizes of 1 and odd sizes ---- */
    add("sizes", 1, 1, 1, 1, 1, 1, 1);
    c = add("sizes", 1, 1, 1, 1, 1, 1, 1); c->causal = ATTN_CAUSAL_TOP_LEFT;
    c = add("sizes", 1, 1, 1, 1, 1, 1, 1); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    add("sizes", 2, 3, 3, 1, 5, 3, 7);
    add("sizes", 3, 1, 1, 5, 1, 8, 8);
    add("sizes", 1, 3, 1, 7, 9, 5, 3);
    add("sizes", 3, 5, 5, 3, 3, 1, 1);
    add("sizes", 1, 1, 1, 1, 300, 17, 9);
    add("sizes", 1, 1, 1, 300, 1, 9, 17);

    /* ---- head dimensions ---- */
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        add("dims", 2, 2, 1, 13, 19, dims[i], dims[i]);
        c = add("dims", 1, 2, 2, 21, 10, dims[i], dims[i]); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->policy = pol++ % 3;
    }
    static const int64_t dpairs[][2] = {{64, 17}, {17, 64}, {3, 128}, {128, 3}, {256, 8}, {8, 256}, {80, 1}, {1, 80}, {256, 80},
                                        {512, 33}, {33, 320}};
    for (size_t i = 0; i < sizeof dpairs / sizeof dpairs[0]; i++) {
        add("dims", 1, 2, 1, 11, 23, dpairs[i][0], dpairs[i][1]);
        c = add("dims", 2, 1, 1, 9, 9, dpairs[i][0], dpairs[i][1]); c->causal = ATTN_CAUSAL_TOP_LEFT;
    }

    /* ---- Lq != Lk both ways ---- */
    static const int64_t lens[][2] = {{1, 37}, {37, 1}, {5, 64}, {64, 5}, {100, 33}, {33, 100}, {2, 2}, {16, 16}, {17, 15}, {15, 17}};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        add("lengths", 2, 2, 2, lens[i][0], lens[i][1], 16, 24);
        c = add("lengths", 1, 3, 1, lens[i][0], lens[i][1], 24, 16); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->policy = pol++ % 3;
    }

    /* ---- grouped-query and multi-query attention ---- */
    static const int64_t heads[][2] = {{8, 2}, {6, 3}, {4, 1}, {5, 5}, {6, 1}, {6, 2}, {8, 4}};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        add("gqa", 2, heads[i][0], heads[i][1], 9, 14, 16, 16);
        c = add("gqa", 2, heads[i][0], heads[i][1], 14, 9, 16, 8);
        c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->lay_q = c->lay_k = c->lay_v = c->lay_out = LAYOUT_BLHD; c->policy = pol++ % 3;
        c = add("gqa", 1, heads[i][0], heads[i][1], 10, 10, 8, 8);
        c->mask_pat = PAT_HQ_LQ_LK; c->mask_zero = 0.3; c->bias_pat = PAT_B_HQ_LQ_LK;
    }

    /* ---- causal alignments ---- */
    static const int64_t clens[][2] = {{7, 7}, {5, 12}, {12, 5}, {1, 9}, {9, 1}, {33, 65}, {65, 33}};
    for (int causal = ATTN_CAUSAL_NONE; causal <= ATTN_CAUSAL_BOTTOM_RIGHT; causal++)
        for (size_t i = 0; i < sizeof clens / sizeof clens[0]; i++) {
            c = add("causal", 2, 2, 1, clens[i][0], clens[i][1], 8, 8);
            c->causal = causal; c->policy = pol++ % 3;
        }

    /* ---- sliding windows, with and without causal ---- */
    static const int64_t wins[][2] = {{3, -1}, {-1, 2}, {4, 4}, {0, 0}, {0, -1}, {-1, 0}, {2, 5}, {50, 50}, {1, 1}};
    static const int64_t wlens[][2] = {{17, 33}, {33, 17}, {20, 20}};
    for (int causal = ATTN_CAUSAL_NONE; causal <= ATTN_CAUSAL_BOTTOM_RIGHT; causal++)
        for (size_t w = 0; w < sizeof wins / sizeof wins[0]; w++)
            for (size_t l = 0; l < sizeof wlens / sizeof wlens[0]; l++) {
                c = add("window", 1, 2, 1, wlens[l][0], wlens[l][1], 8, 5);
                c->causal = causal; c->wl = wins[w][0]; c->wr = wins[w][1]; c->policy = pol++ % 3;
            }

    /* ---- key lengths ---- */
    for (int causal = ATTN_CAUSAL_NONE; causal <= ATTN_CAUSAL_BOTTOM_RIGHT; causal++)
        for (int policy = 0; policy < 3; policy++) {
            c = add("key_len", 4, 2, 2, 6, 11, 8, 8);
            c->causal = causal; c->policy = policy; c->use_key_len = 1;
            c->key_len[0] = 0; c->key_len[1] = 11; c->key_len[2] = 1; c->key_len[3] = 6;
        }
    c = add("key_len", 3, 2, 1, 40, 70, 16, 16); c->use_key_len = 1;
    c->key_len[0] = 70; c->key_len[1] = 70; c->key_len[2] = 70;
    c = add("key_len", 3, 2, 1, 40, 70, 16, 16); c->use_key_len = 1; c->causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    c->key_len[0] = 33; c->key_len[1] = 0; c->key_len[2] = 69; c->policy = ATTN_MASKED_ROWS_MEAN;

    /* ---- boolean masks and additive biases, every broadcast pattern ---- */
    for (int pat = 1; pat < NPAT; pat++) {
        c = add("mask", 2, 4, 2, 7, 13, 8, 8);
        c->mask_pat = pat; c->mask_zero = 0.4; c->mask_rows = 0.15; c->policy = pol++ % 3;
        c = add("mask", 2, 2, 1, 40, 70, 16, 8);
        c->mask_pat = pat; c->mask_zero = 0.5; c->mask_rows = 0.05; c->causal = ATTN_CAUSAL_TOP_LEFT; c->policy = pol++ % 3;
        c = add("bias", 2, 4, 2, 7, 13, 8, 8);
        c->bias_pat = pat; c->bias_ninf = 0.2; c->bias_rows = 0.1; c->policy = pol++ % 3;
        c = add("bias", 2, 2, 1, 40, 70, 16, 8);
        c->bias_pat = pat; c->bias_ninf = 0.0; c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->policy = pol++ % 3;
        c = add("mask+bias", 2, 4, 2, 9, 17, 8, 8);
        c->mask_pat = pat; c->mask_zero = 0.3; c->bias_pat = 1 + (pat + 4) % (NPAT - 1); c->bias_ninf = 0.1;
        c->mask_rows = 0.05; c->bias_rows = 0.05; c->policy = pol++ % 3; c->wl = 6;
    }

    /* A bias of -FLT_MAX is finite: it does not mask, so a row of only -FLT_MAX is uniform over its
     * visible keys (the Flax/Equinox convention), not a fully masked row. */
    for (int policy = 0; policy < 3; policy++) {
        c = add("bias_flt_max", 2, 2, 1, 9, 13, 8, 8);
        c->bias_pat = PAT_B_HQ_LQ_LK; c->bias_flt_max = 1; c->bias_ninf = 0.3; c->bias_rows = 0.4; c->policy = policy;
        c = add("bias_flt_max", 1, 2, 2, 70, 70, 16, 16);
        c->bias_pat = PAT_LQ_LK; c->bias_flt_max = 1; c->bias_rows = 0.3; c->policy = policy; c->causal = ATTN_CAUSAL_TOP_LEFT;
        c->use_key_len = 1; c->key_len[0] = 50;
    }

    /* ---- windows at the extremes of int64 (unbounded in effect; no overflow allowed) ---- */
    static const int64_t xwins[][2] = {{INT64_MAX, INT64_MAX}, {INT64_MAX, -1}, {-1, INT64_MAX}, {(int64_t)1 << 62, 0},
                                       {0, INT64_MAX - 1}, {INT64_MAX, 2}};
    for (int causal = ATTN_CAUSAL_NONE; causal <= ATTN_CAUSAL_BOTTOM_RIGHT; causal++)
        for (size_t w = 0; w < sizeof xwins / sizeof xwins[0]; w++)
            for (int swap = 0; swap < 2; swap++) {
                c = add("window_max", 1, 1, 1, swap ? 29 : 70, swap ? 70 : 29, 8, 8);
                c->causal = causal; c->wl = xwins[w][0]; c->wr = xwins[w][1]; c->policy = pol++ % 3;
            }

    /* ---- strides: non-contiguous and broadcast inputs, interleaved and padded outputs ---- */
    for (int lay = 0; lay < NLAYOUT; lay++) {
        c = add("strides", 2, 4, 2, 9, 12, 17, 8);
        c->lay_q = c->lay_k = c->lay_v = lay; c->lay_out = lay % NLAYOUT_OUT;
        c = add("strides", 3, 2, 2, 12, 9, 8, 17);
        c->lay_q = lay; c->lay_k = (lay + 1) % NLAYOUT; c->lay_v = (lay + 2) % NLAYOUT; c->lay_out = (lay + 3) % NLAYOUT_OUT;
        c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->policy = pol++ % 3;
    }
    for (int lay = 0; lay < NLAYOUT_OUT; lay++) {
        c = add("strides", 2, 3, 1, 33, 40, 64, 80);
        c->lay_q = LAYOUT_PADDED; c->lay_k = LAYOUT_BLHD; c->lay_v = LAYOUT_LBHD; c->lay_out = lay;
    }

    /* ---- fully masked rows under each policy, by each mechanism, with and without dropout ---- */
    for (int mech = 0; mech < 6; mech++)
        for (int policy = 0; policy < 3; policy++)
            for (int drop = 0; drop < 2; drop++) {
                c = add("masked_rows", 2, 2, 1, 10, 4, 8, 6);
                c->policy = policy;
                if (drop) { c->p = 0.3f; c->dseed = 77 + (uint64_t)mech; c->doff = 5; }
                switch (mech) {
                case 0: c->use_key_len = 1; c->key_len[0] = 0; c->key_len[1] = 3; break;
                case 1: c->mask_pat = PAT_B_HQ_LQ_LK; c->mask_zero = 0.2; c->mask_rows = 0.5; break;
                case 2: c->bias_pat = PAT_HQ_LQ_LK; c->bias_ninf = 0.2; c->bias_rows = 0.5; break;
                case 3: c->wl = 0; c->wr = 0; break;                         /* a = i - 6: rows i < 6 see nothing */
                case 4: c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; break;         /* rows i < Lq - Lk see nothing */
                case 5: c->causal = ATTN_CAUSAL_TOP_LEFT; c->wl = 2; c->wr = -1; c->use_key_len = 1;
                        c->key_len[0] = 2; c->key_len[1] = 4; break;         /* rows i > key_len + wl see nothing */
                }
            }
    /* The MEAN policy over all Lk keys even when key_len is short, with the weights visible. */
    for (int drop = 0; drop < 2; drop++) {
        c = add("masked_rows", 2, 2, 2, 3, 9, 4, 9);
        c->policy = ATTN_MASKED_ROWS_MEAN; c->use_key_len = 1; c->key_len[0] = 0; c->key_len[1] = 0;
        c->v_identity = 1;
        if (drop) { c->p = 0.5f; c->dseed = 99; }
    }

    /* ---- scales ---- */
    static const float scales[] = {0.0f, 0.125f, 1.0f, -0.3f, 0.01f, 2.0f, 1e-6f};
    for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++) {
        c = add("scale", 1, 2, 1, 20, 20, 32, 16);
        c->scale = scales[i];
        c = add("scale", 1, 1, 1, 5, 30, 256, 8);
        c->scale = scales[i] == 2.0f ? 0.5f : scales[i]; c->causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    }

    /* ---- dropout: V = identity exposes every weight, so the kept pattern is compared exactly ---- */
    static const float ps[] = {0.1f, 0.5f, 0.9f};
    static const uint64_t offsets[] = {0, 12345, UINT64_MAX - 50};
    for (size_t pi = 0; pi < 3; pi++)
        for (int causal = 0; causal < 3; causal += 2)
            for (size_t oi = 0; oi < 3; oi++) {
                c = add("dropout", 2, 4, 2, 11, 19, 8, 19);
                c->v_identity = 1; c->p = ps[pi]; c->causal = causal; c->dseed = 1000 + 7 * oi + pi; c->doff = offsets[oi];
                c->policy = pol++ % 3; c->qk_amp = 0.5f;
                if (oi == 1) { c->mask_pat = PAT_B_1_1_LK; c->mask_zero = 0.2; c->bias_pat = PAT_LQ_LK; c->bias_ninf = 0.1; }
                if (oi == 2) { c->wl = 3; c->wr = 2; c->use_key_len = 1; c->key_len[0] = 19; c->key_len[1] = 7; }
            }
    c = add("dropout", 1, 2, 1, 70, 70, 16, 70); c->v_identity = 1; c->p = 0.2f; c->dseed = 5; c->causal = 1;
    c = add("dropout", 2, 2, 1, 30, 50, 64, 40); c->p = 0.25f; c->dseed = 6; c->doff = 3; c->bias_pat = PAT_B_HQ_LQ_LK;
    c = add("dropout", 1, 2, 2, 9, 9, 8, 8); c->p = 0.0f; c->dseed = 7; c->doff = 99;            /* p = 0: no dropout */
    c = add("dropout", 1, 1, 1, 9, 9, 8, 9); c->v_identity = 1; c->p = 1e-9f; c->dseed = 8;     /* threshold 4 */
    c = add("dropout", 1, 1, 1, 9, 9, 8, 9); c->v_identity = 1; c->p = 0.999f; c->dseed = 9;
    /* The kept fraction over a large problem. */
    c = add("dropout_rate", 2, 4, 2, 128, 128, 8, 128); c->v_identity = 1; c->p = 0.3f; c->dseed = 4242;
    c->check_keep_rate = 1; c->qk_amp = 0.5f;
    c = add("dropout_rate", 1, 4, 1, 128, 128, 8, 128); c->v_identity = 1; c->p = 0.8f; c->dseed = 77; c->doff = 1u << 20;
    c->check_keep_rate = 1; c->qk_amp = 0.5f;

    /* ---- larger problems: several blocks of queries and keys, causal block skipping ---- */
    for (int causal = 0; causal < 3; causal++) {
        c = add("large", 1, 2, 1, 300, 300, 64, 64); c->causal = causal; c->threads_default = 1;
    }
    c = add("large", 1, 2, 1, 300, 300, 64, 64); c->causal = ATTN_CAUSAL_TOP_LEFT; c->wl = 64; c->wr = 0; c->threads_default = 1;
    c = add("large", 1, 2, 2, 300, 300, 64, 64); c->wl = 32; c->wr = 32; c->threads_default = 1;
    c = add("large", 1, 2, 1, 300, 257, 64, 64); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->policy = ATTN_MASKED_ROWS_NAN;
    c = add("large", 2, 2, 1, 257, 300, 64, 48); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->mask_pat = PAT_B_1_1_LK;
    c->mask_zero = 0.1; c->bias_pat = PAT_LQ_LK; c->bias_ninf = 0.05;
    c = add("large", 1, 4, 2, 130, 300, 128, 128); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->lay_q = c->lay_out = LAYOUT_BLHD;
    c = add("large", 1, 1, 1, 200, 260, 256, 256); c->scale = 0.05f;
    c = add("large", 1, 2, 1, 300, 300, 80, 80); c->p = 0.1f; c->dseed = 31337; c->causal = 1; c->threads_default = 1;
    c = add("large", 2, 2, 2, 64, 513, 32, 32); c->use_key_len = 1; c->key_len[0] = 513; c->key_len[1] = 200;

    /* ---- one (b, h) with thousands of query rows: items of the kernel's most micro-tiles, whose
     * tiles see different key ranges where the causal diagonal or a window crosses the item ---- */
    c = add("long", 1, 1, 1, 6000, 400, 16, 16); c->causal = ATTN_CAUSAL_TOP_LEFT;
    c = add("long", 1, 1, 1, 6000, 6100, 8, 8); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->wl = 200;
    c = add("long", 1, 1, 1, 5000, 700, 24, 20); c->wl = 100; c->wr = 50; c->mask_pat = PAT_LQ_LK;
    c->mask_zero = 0.1; c->bias_pat = PAT_LQ_LK; c->bias_ninf = 0.05;
    c = add("long", 1, 1, 1, 5000, 300, 8, 8); c->causal = ATTN_CAUSAL_TOP_LEFT; c->use_key_len = 1; c->key_len[0] = 250;
    c->policy = ATTN_MASKED_ROWS_MEAN; c->want_lse = 1;

    /* ---- decoding: few query rows and long key ranges, where the keys are split into chunks
     * merged by log-sum-exp (chunks never depend on the thread count) ---- */
    add("decode", 1, 1, 1, 1, 5000, 64, 64);
    c = add("decode", 1, 2, 1, 2, 3001, 17, 33); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->threads_default = 1;
    c = add("decode", 2, 1, 1, 1, 2048, 128, 128); c->use_key_len = 1; c->key_len[0] = 1500; c->key_len[1] = 0;
    c->policy = ATTN_MASKED_ROWS_MEAN;
    c = add("decode", 1, 1, 1, 1, 4000, 8, 8); c->wl = 700; c->causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    c = add("decode", 1, 2, 2, 3, 2500, 16, 16); c->mask_pat = PAT_B_1_1_LK; c->mask_zero = 0.5;
    c->bias_pat = PAT_LQ_LK; c->bias_ninf = 0.2;
    c = add("decode", 1, 1, 1, 1, 3000, 8, 8); c->p = 0.3f; c->dseed = 99; c->doff = 7;
    c = add("decode", 1, 3, 1, 4, 1111, 80, 80); c->causal = ATTN_CAUSAL_TOP_LEFT; c->policy = ATTN_MASKED_ROWS_NAN;
    /* The row kernel's groups and slices: key counts around its groups of one vector of keys (the
     * last group partial, its missing keys reading the last one's row again) and its blocks (16 keys)
     * (and a second chunk past 512), query and value widths that take every register slice of the
     * scores and the weighted sum (8 or 4, then 4, 2, 1 vectors and a partial one), every K and V type. */
    static const int64_t row_lens[] = {1, 15, 16, 17, 63, 64, 65, 1025};
    static const int64_t row_dims[][2] = {{200, 200}, {130, 72}, {5, 3}, {48, 112}, {16, 17}, {33, 129}, {256, 250},
                                          {112, 48}, {129, 16}};
    const int n_row_dims = (int)(sizeof row_dims / sizeof row_dims[0]);
    for (int t = 0; t < 3; t++)
        for (int li = 0; li < 8; li++) {
            const int64_t *d = row_dims[(3 * t + li) % n_row_dims];
            c = add("row_groups", 1, 2, 1, 1 + li % 3, row_lens[li], d[0], d[1]);
            c->dt_k = t; c->dt_v = (t + li) % 3; c->causal = li % 2 ? ATTN_CAUSAL_BOTTOM_RIGHT : ATTN_CAUSAL_NONE;
        }

    /* The tile kernel's last micro-tile, computed on only the vectors that hold rows: query counts
     * whose last tile has one row, one vector, a row more, two vectors, ... on tiles of 48, 24 and
     * 12 rows (AVX-512, AVX2, portable), causal and not, with a mask, dropout and bf16 pairs. */
    static const int64_t tile_lens[] = {49, 56, 57, 63, 64, 65, 72, 80, 81, 95, 96, 97};
    for (int li = 0; li < 12; li++) {
        c = add("tile_vectors", 1, 2, 1, tile_lens[li], 40 + 23 * li, 16 + 8 * (li % 4), 24 + 7 * (li % 3));
        c->causal = li % 3;
        if (li % 4 == 1) { c->mask_pat = PAT_LQ_LK; c->mask_zero = 0.3; }
        if (li % 4 == 3) c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
        if (li % 5 == 2) { c->p = 0.2f; c->dseed = 77; }
    }

    /* ---- element types: every combination of q, k/v and out types, and k and v apart, on the tile
     * path (odd sizes, Lq != Lk), the row path (decode) and with every masking feature ---- */
    for (int kv = 0; kv < 3; kv++)
        for (int q = 0; q < 3; q++)
            for (int o = 0; o < 3; o++) {
                c = add("dtypes", 2, 4, 2, 37, 53, 17, 24); c->causal = (q + o) % 3;
                c->dt_q = q; c->dt_k = c->dt_v = kv; c->dt_out = o; c->lay_q = c->lay_k = c->lay_v = c->lay_out = (kv + o) % 4;
                c = add("dtypes", 1, 4, 1, 1, 1500, 64, 64); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT;
                c->dt_q = q; c->dt_k = c->dt_v = kv; c->dt_out = o; c->lay_k = c->lay_v = LAYOUT_BLHD;
                c = add("dtypes", 2, 2, 1, 70, 45, 8, 13); c->wl = 9; c->wr = 4; c->use_key_len = 1;
                c->key_len[0] = 40; c->key_len[1] = 0; c->policy = pol++ % 3; c->mask_pat = PAT_B_1_1_LK; c->mask_zero = 0.2;
                c->bias_pat = PAT_LQ_LK; c->bias_ninf = 0.1; c->p = 0.2f; c->dseed = 11;
                c->dt_q = q; c->dt_k = c->dt_v = kv; c->dt_out = o;
            }
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 3; v++) {
            c = add("dtypes", 1, 2, 1, 3, 700, 40, 33); c->dt_k = k; c->dt_v = v; c->causal = ATTN_CAUSAL_BOTTOM_RIGHT;
            c = add("dtypes", 1, 2, 2, 100, 130, 33, 40); c->dt_k = k; c->dt_v = v; c->dt_q = v; c->dt_out = k;
            c->policy = ATTN_MASKED_ROWS_MEAN; c->use_key_len = 1; c->key_len[0] = 0;
        }
    c = add("dtypes", 1, 2, 1, 1, 300, 128, 128); c->dt_k = c->dt_v = ATTN_DTYPE_F16; c->v_identity = 0; c->p = 0.5f;
    c = add("dtypes", 1, 1, 1, 9, 9, 8, 9); c->v_identity = 1; c->p = 0.3f; c->dseed = 3;
    c->dt_q = c->dt_k = c->dt_v = c->dt_out = ATTN_DTYPE_BF16;

    /* ---- bf16 q, k and v: the tile kernel on bf16 pairs (odd feature and key counts pad a word;
     * Lq above every ISA's row-path limit), with every masking feature, both causal alignments with
     * block skipping, GQA, and out of each type ---- */
    static const int64_t pair_dims[][2] = {{1, 1}, {3, 5}, {17, 24}, {33, 31}, {64, 64}, {80, 47}, {128, 128}, {130, 9}};
    for (int d = 0; d < 8; d++) {
        c = add("bf16dot", 2, 4, 2, 61 + 10 * d, 45 + 37 * d, pair_dims[d][0], pair_dims[d][1]);
        c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16; c->dt_out = d % 3; c->causal = d % 3;
        c->threads_default = d == 3; c->lay_k = d % NLAYOUT; c->lay_out = d % NLAYOUT_OUT;
    }
    c = add("bf16dot", 1, 2, 1, 300, 257, 64, 33); c->causal = ATTN_CAUSAL_TOP_LEFT; c->wl = 70; c->wr = 3;
    c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
    c = add("bf16dot", 2, 3, 3, 130, 70, 40, 40); c->causal = ATTN_CAUSAL_BOTTOM_RIGHT; c->use_key_len = 1;
    c->key_len[0] = 33; c->key_len[1] = 0; c->policy = ATTN_MASKED_ROWS_MEAN;
    c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
    c = add("bf16dot", 1, 2, 2, 97, 129, 24, 20); c->mask_pat = PAT_B_HQ_LQ_LK; c->mask_zero = 0.5; c->mask_rows = 0.1;
    c->bias_pat = PAT_LQ_LK; c->bias_ninf = 0.1; c->policy = ATTN_MASKED_ROWS_NAN; c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
    c = add("bf16dot", 1, 2, 1, 70, 70, 16, 70); c->v_identity = 1; c->p = 0.3f; c->dseed = 5; c->causal = ATTN_CAUSAL_TOP_LEFT;
    c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
    c = add("bf16dot", 1, 1, 1, 50, 300, 8, 8); c->bias_pat = PAT_LQ_LK; c->bias_ninf = 0.3; c->bias_flt_max = 1;
    c->policy = ATTN_MASKED_ROWS_MEAN; c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
    c = add("bf16dot", 1, 2, 1, 200, 200, 48, 48); c->qk_amp = 3.0f; c->scale = 0.5f;
    c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
}

static const int64_t rand_lens[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 65, 97};
static const int64_t rand_dims[] = {1, 3, 8, 17, 64, 80, 128, 256, 2, 5, 16, 32};
/* Explicit scales: multiples of 1/sqrt(Dqk) (negative = absolute values). Scores stay O(1): with q and k
 * uniform in [-1, 1] the standard deviation of q.k/sqrt(Dqk) is 1/3, and much larger scores lose
 * float32 precision to the rounding of the scores themselves, not to the kernels. */
static const double rand_scales[] = {0.5, 2.0, 3.0, -0.05, -0.125, -1.0 /* means +1/sqrt */};
static const float rand_ps[] = {0.1f, 0.3f, 0.5f, 0.9f};
static const double rand_fracs[] = {0.1, 0.5, 0.9};

static void random_case(tcase *c, tu_rng *r) {
    static const int64_t hkv[] = {1, 1, 2, 3};
    /* One draw per statement: the order of function arguments is unspecified. */
    int64_t B = tu_rng_range(r, 1, 3);
    int64_t Hkv = TU_PICK(r, hkv);
    int64_t Lq = TU_PICK(r, rand_lens);
    int64_t Lk = TU_PICK(r, rand_lens);
    int64_t Dqk = TU_PICK(r, rand_dims);
    *c = base_case("random", B, 0, Hkv, Lq, Lk, Dqk, 0);
    c->random = 1;
    c->Hq = c->Hkv * tu_rng_range(r, 1, 4);
    c->Dv = tu_rng_chance(r, 0.5) ? c->Dqk : TU_PICK(r, rand_dims);
    while (c->B * c->Hq * c->Lq * c->Lk * (c->Dqk + c->Dv) > 1500000) {
        if (c->Lq >= c->Lk && c->Lq > 1) c->Lq = (c->Lq + 1) / 2;
        else if (c->Lk > 1) c->Lk = (c->Lk + 1) / 2;
        else if (c->B > 1) c->B--;
        else break;
    }
    if (tu_rng_chance(r, 0.4)) c->scale = 0.0f;
    else {
        double f = TU_PICK(r, rand_scales);
        if (f == -1.0) c->scale = (float)(1.0 / sqrt((double)c->Dqk));     /* the default, given explicitly */
        else if (f < 0) c->scale = (float)-f;
        else c->scale = (float)((tu_rng_chance(r, 0.2) ? -f : f) / sqrt((double)c->Dqk));
    }
    c->causal = (int)tu_rng_range(r, 0, 2);
    int64_t wmax = (c->Lq > c->Lk ? c->Lq : c->Lk) + 1;
    switch (tu_rng_range(r, 0, 5)) {
    case 0: c->wl = tu_rng_range(r, 0, wmax); break;
    case 1: c->wr = tu_rng_range(r, 0, wmax); break;
    case 2: c->wl = tu_rng_range(r, 0, wmax); c->wr = tu_rng_range(r, 0, wmax); break;
    default: break;
    }
    if (tu_rng_chance(r, 0.3)) {
        c->use_key_len = 1;
        for (int64_t b = 0; b < c->B; b++) {
            int64_t kind = tu_rng_range(r, 0, 3);
            c->key_len[b] = kind == 0 ? 0 : kind == 1 ? c->Lk : tu_rng_range(r, 0, c->Lk);
        }
    }
    if (tu_rng_chance(r, 0.3)) {
        c->mask_pat = (int)tu_rng_range(r, 1, NPAT - 1);
        c->mask_zero = TU_PICK(r, rand_fracs);
        c->mask_rows = tu_rng_chance(r, 0.3) ? 0.1 : 0.0;
    }
    if (tu_rng_chance(r, 0.3)) {
        c->bias_pat = (int)tu_rng_range(r, 1, NPAT - 1);
        c->bias_ninf = tu_rng_chance(r, 0.5) ? 0.0 : TU_PICK(r, rand_fracs);
        c->bias_rows = tu_rng_chance(r, 0.3) ? 0.1 : 0.0;
    }
    if (tu_rng_chance(r, 0.5)) {
        c->lay_q = (int)tu_rng_range(r, 0, NLAYOUT - 1);
        c->lay_k = (int)tu_rng_range(r, 0, NLAYOUT - 1);
        c->lay_v = (int)tu_rng_range(r, 0, NLAYOUT - 1);
        c->lay_out = (int)tu_rng_range(r, 0, NLAYOUT_OUT - 1);
    }
    if (tu_rng_chance(r, 0.25)) {
        c->p = TU_PICK(r, rand_ps);
        c->dseed = tu_rng_u64(r);
        c->doff = tu_rng_chance(r, 0.5) ? 0 : tu_rng_u64(r);
        if (c->Dv == c->Lk && c->Dv > 1) c->v_identity = 1;
    }
    c->policy = (int)tu_rng_range(r, 0, 2);
    c->want_lse = tu_rng_chance(r, 0.7);
    if (tu_rng_chance(r, 0.4)) {
        c->dt_q = (int)tu_rng_range(r, 0, 2);
        c->dt_k = (int)tu_rng_range(r, 0, 2);
        c->dt_v = tu_rng_chance(r, 0.5) ? c->dt_k : (int)tu_rng_range(r, 0, 2);
        c->dt_out = (int)tu_rng_range(r, 0, 2);
    } else if (tu_rng_chance(r, 0.2)) { /* the bf16 dot-product path */
        c->dt_q = c->dt_k = c->dt_v = ATTN_DTYPE_BF16;
        c->dt_out = (int)tu_rng_range(r, 0, 2);
    }
}

static void describe(const tcase *c, char *buf, size_t n) {
    char kl[MAXB * 24 + 8] = "none";
    if (c->use_key_len) {
        size_t o = 0;
        o += (size_t)snprintf(kl + o, sizeof kl - o, "[");
        for (int64_t b = 0; b < c->B; b++)
            o += (size_t)snprintf(kl + o, sizeof kl - o, "%s%lld", b ? "," : "", (long long)c->key_len[b]);
        snprintf(kl + o, sizeof kl - o, "]");
    }
    snprintf(buf, n,
             "B=%lld Hq=%lld Hkv=%lld Lq=%lld Lk=%lld Dqk=%lld Dv=%lld scale=%.9g causal=%s window=(%lld,%lld) "
             "key_len=%s mask=%s(zero=%.2f,rows=%.2f) bias=%s(%s=%.2f,rows=%.2f) layout q/k/v/out=%s/%s/%s/%s "
             "dropout=(p=%.9g,seed=%llu,offset=%llu) masked_rows=%s lse=%d v_identity=%d dtypes q/k/v/out=%s/%s/%s/%s",
             (long long)c->B, (long long)c->Hq, (long long)c->Hkv, (long long)c->Lq, (long long)c->Lk, (long long)c->Dqk,
             (long long)c->Dv, (double)c->scale, causal_name(c->causal), (long long)c->wl, (long long)c->wr, kl,
             pat_name[c->mask_pat], c->mask_zero, c->mask_rows, pat_name[c->bias_pat], c->bias_flt_max ? "-FLT_MAX" : "-inf", c->bias_ninf, c->bias_rows,
             layout_name[c->lay_q], layout_name[c->lay_k], layout_name[c->lay_v], layout_name[c->lay_out], (double)c->p,
             (unsigned long long)c->dseed, (unsigned long long)c->doff, policy_name(c->policy), c->want_lse, c->v_identity,
             dtype_name(c->dt_q), dtype_name(c->dt_k), dtype_name(c->dt_v), dtype_name(c->dt_out));
}

/* ============================================================================================== */
/* Tensors                                                                                          */

typedef struct tensor {
    float *alloc;    /* misalignment + extent floats */
    float *p;        /* element (0, 0, 0, 0) */
    int64_t st[3];
    int64_t extent;  /* floats from p that the layout spans */
    int64_t dims[4]; /* B, H, L, D */
    uint16_t *half;  /* for a half-precision type: the extent as stored (padding included) */
} tensor;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { printf("out of memory\n"); exit(2); }
    return p;
}

static const uint32_t SENTINEL_BITS = 0x7FC5A5A5u; /* a quiet NaN with a recognisable payload */

static void fill_sentinel(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) memcpy(&x[i], &SENTINEL_BITS, 4);
}
static const uint16_t HALF_SENTINEL = 0x7E5A; /* the same for a half-precision out (no kernel's NaN) */
static int is_sentinel(const float *x) {
    uint32_t u;
    memcpy(&u, x, 4);
    return u == SENTINEL_BITS;
}

/* Strides of a layout; the tensor is over-allocated by a random 0..3 floats of misalignment. */
static tensor make_tensor(int layout, int64_t B, int64_t H, int64_t L, int64_t D, tu_rng *r) {
    tensor t;
    memset(&t, 0, sizeof t);
    t.dims[0] = B; t.dims[1] = H; t.dims[2] = L; t.dims[3] = D;
    switch (layout) {
    case LAYOUT_BHLD: t.st[2] = D; t.st[1] = L * D; t.st[0] = H * L * D; break;
    case LAYOUT_BLHD: t.st[2] = H * D; t.st[1] = D; t.st[0] = L * H * D; break;
    case LAYOUT_PADDED:
        t.st[2] = D + tu_rng_range(r, 1, 5);
        t.st[1] = L * t.st[2] + tu_rng_range(r, 0, 7);
        t.st[0] = H * t.st[1] + tu_rng_range(r, 0, 7);
        break;
    case LAYOUT_LBHD: t.st[2] = B * H * D; t.st[1] = D; t.st[0] = H * D; break;
    case LAYOUT_BCAST_B: t.st[2] = D; t.st[1] = L * D; t.st[0] = 0; break;
    case LAYOUT_BCAST_H: t.st[2] = D; t.st[1] = 0; t.st[0] = L * D; break;
    }
    t.extent = (B - 1) * t.st[0] + (H - 1) * t.st[1] + (L - 1) * t.st[2] + D;
    int64_t mis = tu_rng_range(r, 0, 3);
    t.alloc = xmalloc((size_t)(t.extent + mis) * sizeof(float));
    t.p = t.alloc + mis;
    return t;
}

static inline float *tat(const tensor *t, int64_t b, int64_t h, int64_t l) { return t->p + b * t->st[0] + h * t->st[1] + l * t->st[2]; }

/* Random values in the logical elements; NaN everywhere else (padding must never reach a result). */
static void fill_tensor(tensor *t, tu_rng *r, float amp) {
    for (int64_t i = 0; i < t->extent; i++) t->p[i] = NAN;
    for (int64_t b = 0; b < t->dims[0]; b++)
        for (int64_t h = 0; h < t->dims[1]; h++)
            for (int64_t l = 0; l < t->dims[2]; l++) {
                float *row = tat(t, b, h, l);
                for (int64_t d = 0; d < t->dims[3]; d++) row[d] = tu_rng_uniform(r, -amp, amp);
            }
}

/* Mask or bias strides of a pattern; returns the extent in elements. */
static int64_t pattern_strides(int pat, int64_t B, int64_t Hq, int64_t Lq, int64_t Lk, tu_rng *r, int64_t st[4]) {
    st[0] = st[1] = st[2] = st[3] = 0;
    switch (pat) {
    case PAT_LQ_LK: st[2] = Lk; st[3] = 1; break;
    case PAT_HQ_LQ_LK: st[1] = Lq * Lk; st[2] = Lk; st[3] = 1; break;
    case PAT_B_1_1_LK: st[0] = Lk; st[3] = 1; break;
    case PAT_B_HQ_LQ_LK: st[0] = Hq * Lq * Lk; st[1] = Lq * Lk; st[2] = Lk; st[3] = 1; break;
    case PAT_PADDED:
        st[3] = 1; st[2] = Lk + tu_rng_range(r, 1, 9); st[1] = Lq * st[2] + tu_rng_range(r, 0, 5);
        st[0] = Hq * st[1] + tu_rng_range(r, 0, 5);
        break;
    case PAT_ROW: st[0] = Hq * Lq; st[1] = Lq; st[2] = 1; st[3] = 0; break;
    case PAT_LK: st[3] = 1; break;
    case PAT_TRANSPOSED: st[2] = 1; st[3] = Lq; break;
    case PAT_SCALAR: break;
    case PAT_B_1_LQ_LK: st[0] = Lq * Lk; st[2] = Lk; st[3] = 1; break;
    }
    return (B - 1) * st[0] + (Hq - 1) * st[1] + (Lq - 1) * st[2] + (Lk - 1) * st[3] + 1;
}

/* ============================================================================================== */
/* The reference: a direct double-precision evaluation of the documented semantics                  */

typedef struct problem {
    tcase c;
    tensor q, k, v;
    uint8_t *mask_alloc, *mask;
    int64_t mask_st[4], mask_extent;
    float *bias_alloc, *bias;
    int64_t bias_st[4], bias_extent;
    int64_t *key_len;
} problem;

static int ref_visible(const problem *P, int64_t b, int64_t h, int64_t i, int64_t j) {
    const tcase *c = &P->c;
    if (c->causal == ATTN_CAUSAL_TOP_LEFT && !(j <= i)) return 0;
    if (c->causal == ATTN_CAUSAL_BOTTOM_RIGHT && !(j <= i + (c->Lk - c->Lq))) return 0;
    int64_t off = c->causal == ATTN_CAUSAL_TOP_LEFT ? 0 : c->Lk - c->Lq;
    int64_t a = i + off; /* |a - j| is small, so these never overflow for windows up to INT64_MAX */
    if (c->wl >= 0 && a - j > c->wl) return 0;  /* j < a - window_left */
    if (c->wr >= 0 && j - a > c->wr) return 0;  /* j > a + window_right */
    if (P->key_len && j >= P->key_len[b]) return 0;
    if (P->mask && P->mask[b * P->mask_st[0] + h * P->mask_st[1] + i * P->mask_st[2] + j * P->mask_st[3]] == 0) return 0;
    return 1;
}

/* Dropout multiplier of weight (b, h, i, j): 0 or 1/(1-p), or 1 without dropout. */
static double ref_dropout(const tcase *c, int64_t b, int64_t h, int64_t i, int64_t j) {
    if (!(c->p > 0)) return 1.0;
    uint64_t counter = c->doff + (((uint64_t)b * (uint64_t)c->Hq + (uint64_t)h) * (uint64_t)c->Lq + (uint64_t)i) * (uint64_t)c->Lk + (uint64_t)j;
    return ref_dropout_bits(c->dseed, counter) >= ref_dropout_threshold(c->p) ? 1.0 / (1.0 - (double)c->p) : 0.0;
}

/* out (B, Hq, Lq, Dv) and lse (B, Hq, Lq); row_empty[(b*Hq + h)*Lq + i] = no visible key. */
static void reference(const problem *P, double *out, double *lse, uint8_t *row_empty) {
    const tcase *c = &P->c;
    double scale = c->scale == 0.0f ? 1.0 / sqrt((double)c->Dqk) : (double)c->scale;
    int64_t group = c->Hq / c->Hkv;
    double *s = xmalloc((size_t)c->Lk * sizeof(double));
    uint8_t *vis = xmalloc((size_t)c->Lk);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Lq; i++) {
                int64_t kh = h / group, row = (b * c->Hq + h) * c->Lq + i;
                const float *qr = tat(&P->q, b, h, i);
                double m = -INFINITY;
                int any = 0;
                for (int64_t j = 0; j < c->Lk; j++) {
                    vis[j] = (uint8_t)ref_visible(P, b, h, i, j);
                    if (!vis[j]) continue;
                    const float *kr = tat(&P->k, b, kh, j);
                    double dot = 0;
                    for (int64_t d = 0; d < c->Dqk; d++) dot += (double)qr[d] * (double)kr[d];
                    s[j] = scale * dot;
                    if (P->bias) s[j] += P->bias[b * P->bias_st[0] + h * P->bias_st[1] + i * P->bias_st[2] + j * P->bias_st[3]];
                    if (s[j] == -INFINITY) { vis[j] = 0; continue; }
                    any = 1;
                    if (s[j] > m) m = s[j];
                }
                double *o = out + row * c->Dv;
                for (int64_t d = 0; d < c->Dv; d++) o[d] = 0;
                row_empty[row] = (uint8_t)!any;
                if (!any) {
                    lse[row] = -INFINITY;
                    if (c->policy == ATTN_MASKED_ROWS_NAN) {
                        for (int64_t d = 0; d < c->Dv; d++) o[d] = NAN;
                    } else if (c->policy == ATTN_MASKED_ROWS_MEAN) {
                        for (int64_t j = 0; j < c->Lk; j++) {
                            double w = ref_dropout(c, b, h, i, j) / (double)c->Lk;
                            const float *vr = tat(&P->v, b, kh, j);
                            for (int64_t d = 0; d < c->Dv; d++) o[d] += w * vr[d];
                        }
                    }
                    continue;
                }
                double sum = 0;
                for (int64_t j = 0; j < c->Lk; j++)
                    if (vis[j]) sum += exp(s[j] - m);
                lse[row] = m + log(sum);
                for (int64_t j = 0; j < c->Lk; j++) {
                    if (!vis[j]) continue;
                    double w = exp(s[j] - m) / sum * ref_dropout(c, b, h, i, j);
                    if (w == 0) continue;
                    const float *vr = tat(&P->v, b, kh, j);
                    for (int64_t d = 0; d < c->Dv; d++) o[d] += w * vr[d];
                }
            }
    free(s);
    free(vis);
}

/* ============================================================================================== */
/* Running a case                                                                                   */

#define NISA 4
#define NPATH 4
#define NGROUP_MAX 32
typedef struct group_stat {
    const char *name;
    int cases;
    double err[NISA][NPATH], lse_err[NISA][NPATH]; /* largest |out - ref| / max(1, max |ref|), per ISA and path */
    int ran[NISA][NPATH];
} group_stat;
static group_stat g_groups[NGROUP_MAX];
static int g_ngroups;
static int g_isa_ran[NISA];
static long g_cases_run, g_kernel_calls;

static group_stat *group_for(const char *name) {
    for (int i = 0; i < g_ngroups; i++)
        if (strcmp(g_groups[i].name, name) == 0) return &g_groups[i];
    if (g_ngroups == NGROUP_MAX) return &g_groups[NGROUP_MAX - 1];
    g_groups[g_ngroups].name = name;
    return &g_groups[g_ngroups++];
}

/* fused: attn_forward with attn_bf16_dot off; bf16dot and bf16emu: attn_forward with it NATIVE (avx512
 * only) and EMULATED, for cases whose q, k and v are all bf16. */
static const char *path_name[NPATH] = {"fused", "unfused", "bf16dot", "bf16emu"};
static const attn_bf16_dot path_dot[NPATH] = {ATTN_BF16_DOT_OFF, ATTN_BF16_DOT_OFF, ATTN_BF16_DOT_NATIVE,
                                              ATTN_BF16_DOT_EMULATED};

/* Equal bits, or both NaN. */
static int same_value(float a, float b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

/* A tensor of half type t: its values rounded in place (the reference then sees what the kernels
 * do) and the stored copy made. Float32: nothing to do. */
static void store_as(tensor *t, int dt) {
    if (dt == ATTN_DTYPE_F32) return;
    t->half = xmalloc((size_t)t->extent * sizeof *t->half);
    for (int64_t e = 0; e < t->extent; e++) {
        t->half[e] = tu_half_round(t->p[e], dt);
        t->p[e] = tu_round_to(t->p[e], dt);
    }
}

static void generate(problem *P, tu_rng *r) {
    tcase *c = &P->c;
    P->q = make_tensor(c->lay_q, c->B, c->Hq, c->Lq, c->Dqk, r);
    P->k = make_tensor(c->lay_k, c->B, c->Hkv, c->Lk, c->Dqk, r);
    P->v = make_tensor(c->lay_v, c->B, c->Hkv, c->Lk, c->Dv, r);
    fill_tensor(&P->q, r, c->qk_amp);
    fill_tensor(&P->k, r, c->qk_amp);
    fill_tensor(&P->v, r, 1.0f);
    if (c->v_identity) {
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t h = 0; h < c->Hkv; h++)
                for (int64_t j = 0; j < c->Lk; j++)
                    for (int64_t d = 0; d < c->Dv; d++) tat(&P->v, b, h, j)[d] = d == j ? 1.0f : 0.0f;
    }
    store_as(&P->q, c->dt_q);
    store_as(&P->k, c->dt_k);
    store_as(&P->v, c->dt_v);
    P->mask = NULL; P->mask_alloc = NULL;
    if (c->mask_pat != PAT_NONE) {
        P->mask_extent = pattern_strides(c->mask_pat, c->B, c->Hq, c->Lq, c->Lk, r, P->mask_st);
        int64_t mis = tu_rng_range(r, 0, 3);
        P->mask_alloc = xmalloc((size_t)(P->mask_extent + mis));
        P->mask = P->mask_alloc + mis;
        static const uint8_t nonzero[] = {1, 1, 2, 255, 128};
        for (int64_t e = 0; e < P->mask_extent; e++) P->mask[e] = tu_rng_chance(r, c->mask_zero) ? 0 : TU_PICK(r, nonzero);
        if (c->mask_rows > 0)
            for (int64_t b = 0; b < c->B; b++)
                for (int64_t h = 0; h < c->Hq; h++)
                    for (int64_t i = 0; i < c->Lq; i++)
                        if (tu_rng_chance(r, c->mask_rows))
                            for (int64_t j = 0; j < c->Lk; j++)
                                P->mask[b * P->mask_st[0] + h * P->mask_st[1] + i * P->mask_st[2] + j * P->mask_st[3]] = 0;
    }
    P->bias = NULL; P->bias_alloc = NULL;
    if (c->bias_pat != PAT_NONE) {
        P->bias_extent = pattern_strides(c->bias_pat, c->B, c->Hq, c->Lq, c->Lk, r, P->bias_st);
        int64_t mis = tu_rng_range(r, 0, 3);
        P->bias_alloc = xmalloc((size_t)(P->bias_extent + mis) * sizeof(float));
        P->bias = P->bias_alloc + mis;
        const float low = c->bias_flt_max ? -FLT_MAX : -INFINITY;
        for (int64_t e = 0; e < P->bias_extent; e++)
            P->bias[e] = tu_rng_chance(r, c->bias_ninf) ? low : tu_rng_uniform(r, -2.0f, 2.0f);
        if (c->bias_rows > 0)
            for (int64_t b = 0; b < c->B; b++)
                for (int64_t h = 0; h < c->Hq; h++)
                    for (int64_t i = 0; i < c->Lq; i++)
                        if (tu_rng_chance(r, c->bias_rows))
                            for (int64_t j = 0; j < c->Lk; j++)
                                P->bias[b * P->bias_st[0] + h * P->bias_st[1] + i * P->bias_st[2] + j * P->bias_st[3]] = low;
    }
    P->key_len = NULL;
    if (c->use_key_len) {
        P->key_len = xmalloc((size_t)c->B * sizeof(int64_t));
        memcpy(P->key_len, c->key_len, (size_t)c->B * sizeof(int64_t));
    }
}

static void free_problem(problem *P) {
    free(P->q.half); free(P->k.half); free(P->v.half);
    free(P->q.alloc); free(P->k.alloc); free(P->v.alloc);
    free(P->mask_alloc); free(P->bias_alloc); free(P->key_len);
}

static attn_params make_params(const problem *P, const tensor *out, float *lse, int threads) {
    const tcase *c = &P->c;
    attn_params a = attn_params_default();
    a.batch = c->B; a.heads_q = c->Hq; a.heads_kv = c->Hkv; a.len_q = c->Lq; a.len_k = c->Lk;
    a.dim_qk = c->Dqk; a.dim_v = c->Dv;
    a.q = P->q.half ? (const void *)P->q.half : P->q.p; memcpy(a.q_stride, P->q.st, sizeof a.q_stride);
    a.k = P->k.half ? (const void *)P->k.half : P->k.p; memcpy(a.k_stride, P->k.st, sizeof a.k_stride);
    a.v = P->v.half ? (const void *)P->v.half : P->v.p; memcpy(a.v_stride, P->v.st, sizeof a.v_stride);
    a.out = out->half ? (void *)out->half : out->p; memcpy(a.out_stride, out->st, sizeof a.out_stride);
    a.q_dtype = (attn_dtype)c->dt_q; a.k_dtype = (attn_dtype)c->dt_k; a.v_dtype = (attn_dtype)c->dt_v;
    a.out_dtype = (attn_dtype)c->dt_out;
    a.scale = c->scale;
    a.causal = (attn_causal)c->causal;
    a.window_left = c->wl; a.window_right = c->wr;
    a.key_len = P->key_len;
    a.mask = P->mask; memcpy(a.mask_stride, P->mask_st, sizeof a.mask_stride);
    a.bias = P->bias; memcpy(a.bias_stride, P->bias_st, sizeof a.bias_stride);
    a.dropout_p = c->p; a.dropout_seed = c->dseed; a.dropout_offset = c->doff;
    a.masked_rows = (attn_masked_rows)c->policy;
    a.lse = lse;
    a.num_threads = threads;
    return a;
}

/* A snapshot of every input buffer, to check that no call modified one. */
typedef struct snapshot {
    float *q, *k, *v, *bias;
    uint16_t *qh, *kh, *vh;
    uint8_t *mask;
    int64_t *key_len;
} snapshot;

static void *dup_bytes(const void *p, size_t n) {
    if (!p) return NULL;
    void *d = xmalloc(n);
    memcpy(d, p, n);
    return d;
}
static snapshot take_snapshot(const problem *P) {
    snapshot s;
    s.q = dup_bytes(P->q.p, (size_t)P->q.extent * 4);
    s.k = dup_bytes(P->k.p, (size_t)P->k.extent * 4);
    s.v = dup_bytes(P->v.p, (size_t)P->v.extent * 4);
    s.qh = dup_bytes(P->q.half, (size_t)P->q.extent * 2);
    s.kh = dup_bytes(P->k.half, (size_t)P->k.extent * 2);
    s.vh = dup_bytes(P->v.half, (size_t)P->v.extent * 2);
    s.bias = dup_bytes(P->bias, (size_t)(P->bias ? P->bias_extent : 0) * 4);
    s.mask = dup_bytes(P->mask, (size_t)(P->mask ? P->mask_extent : 0));
    s.key_len = dup_bytes(P->key_len, (size_t)(P->key_len ? P->c.B : 0) * 8);
    return s;
}
static int snapshot_equal(const problem *P, const snapshot *s) {
    return memcmp(s->q, P->q.p, (size_t)P->q.extent * 4) == 0 && memcmp(s->k, P->k.p, (size_t)P->k.extent * 4) == 0 &&
           memcmp(s->v, P->v.p, (size_t)P->v.extent * 4) == 0 &&
           (!P->q.half || memcmp(s->qh, P->q.half, (size_t)P->q.extent * 2) == 0) &&
           (!P->k.half || memcmp(s->kh, P->k.half, (size_t)P->k.extent * 2) == 0) &&
           (!P->v.half || memcmp(s->vh, P->v.half, (size_t)P->v.extent * 2) == 0) &&
           (!P->bias || memcmp(s->bias, P->bias, (size_t)P->bias_extent * 4) == 0) &&
           (!P->mask || memcmp(s->mask, P->mask, (size_t)P->mask_extent) == 0) &&
           (!P->key_len || memcmp(s->key_len, P->key_len, (size_t)P->c.B * 8) == 0);
}
static void free_snapshot(snapshot *s) {
    free(s->q); free(s->k); free(s->v); free(s->qh); free(s->kh); free(s->vh); free(s->bias); free(s->mask); free(s->key_len);
}

/* 0: exactly zero, 1: other number, 2: NaN. With V = identity this is the dropout/mask pattern. */
static int value_class(double x) { return isnan(x) ? 2 : x == 0 ? 0 : 1; }

static void run_case(int idx, const tcase *template_case) {
    tu_rng r = tu_rng_derive(g_seed, (uint64_t)idx);
    problem P;
    memset(&P, 0, sizeof P);
    if (template_case) P.c = *template_case;
    else random_case(&P.c, &r);
    const tcase *c = &P.c;
    generate(&P, &r);

    char desc[1400];
    describe(c, desc, sizeof desc);
    group_stat *gs = group_for(c->group);
    gs->cases++;
    g_cases_run++;

    /* The reference. */
    int64_t rows = c->B * c->Hq * c->Lq, nout = rows * c->Dv;
    double *ref = xmalloc((size_t)nout * sizeof(double));
    double *ref_lse = xmalloc((size_t)rows * sizeof(double));
    uint8_t *row_empty = xmalloc((size_t)rows);
    reference(&P, ref, ref_lse, row_empty);

    /* Outputs: two buffers (1 and 2 threads), one more for num_threads = 0, with sentinels in the padding. */
    tu_rng rl = tu_rng_derive(g_seed ^ 0xABCDEFull, (uint64_t)idx);
    tensor out[3];
    for (int t = 0; t < 3; t++) {
        tu_rng rt = rl; /* the same padding for all three */
        out[t] = make_tensor(c->lay_out, c->B, c->Hq, c->Lq, c->Dv, &rt);
        if (c->dt_out != ATTN_DTYPE_F32) out[t].half = xmalloc((size_t)out[t].extent * sizeof *out[t].half);
    }
    uint8_t *logical = xmalloc((size_t)out[0].extent);
    memset(logical, 0, (size_t)out[0].extent);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Lq; i++)
                memset(logical + (tat(&out[0], b, h, i) - out[0].p), 1, (size_t)c->Dv);
    float *lse_buf[3];
    for (int t = 0; t < 3; t++) lse_buf[t] = xmalloc((size_t)(rows + 2 * LSE_GUARD) * sizeof(float));
    float *got = xmalloc((size_t)nout * sizeof(float));
    float *got_native = xmalloc((size_t)nout * sizeof(float)); /* the bf16dot path's out, for bf16emu */
    int have_native = 0;
    const int bf16_qkv = c->dt_q == ATTN_DTYPE_BF16 && c->dt_k == ATTN_DTYPE_BF16 && c->dt_v == ATTN_DTYPE_BF16;
    float *got_lse = xmalloc((size_t)rows * sizeof(float));
    uint8_t *pattern[NPATH] = {xmalloc((size_t)nout), xmalloc((size_t)nout), xmalloc((size_t)nout), xmalloc((size_t)nout)};
    snapshot snap = take_snapshot(&P);

    {
        tensor o0 = out[0];
        attn_params a = make_params(&P, &o0, c->want_lse ? lse_buf[0] + LSE_GUARD : NULL, 1);
        attn_status st = attn_validate(&a);
        TU_CHECK(st == ATTN_OK, "case %d [%s] attn_validate returned %d (%s), want 0; %s; rerun: --seed %llu --case %d", idx,
                 c->group, (int)st, attn_status_string(st), desc, (unsigned long long)g_seed, idx);
    }

    for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_AVX512; isa++) {
        if (!attn_isa_supported((attn_isa)isa)) continue;
        if (attn_set_isa((attn_isa)isa) != ATTN_OK) {
            tu_fail("attn_set_isa(%s) failed although attn_isa_supported says yes", attn_isa_name((attn_isa)isa));
            continue;
        }
        g_isa_ran[isa] = 1;
        have_native = 0;
        for (int path = 0; path < NPATH; path++) {
            if (path >= 2 && !bf16_qkv) continue;
            if (path == 2 && (isa != ATTN_ISA_AVX512 || !attn_bf16_dot_supported(ATTN_BF16_DOT_NATIVE))) continue;
            if (attn_set_bf16_dot(path_dot[path]) != ATTN_OK) {
                tu_fail("attn_set_bf16_dot(%s) failed", attn_bf16_dot_name(path_dot[path]));
                continue;
            }
            char where[160];
            snprintf(where, sizeof where, "case %d [%s] isa=%s path=%s", idx, c->group, attn_isa_name((attn_isa)isa), path_name[path]);
            int nruns = c->threads_default ? 3 : 2;
            static const int threads_of_run[3] = {1, 2, 0};
            attn_status st[3];
            for (int t = 0; t < nruns; t++) {
                fill_sentinel(out[t].p, out[t].extent);
                for (int64_t e = 0; out[t].half && e < out[t].extent; e++) out[t].half[e] = HALF_SENTINEL;
                fill_sentinel(lse_buf[t], rows + 2 * LSE_GUARD);
                attn_params a = make_params(&P, &out[t], c->want_lse ? lse_buf[t] + LSE_GUARD : NULL, threads_of_run[t]);
                st[t] = path == 0 ? attn_forward(&a) : attn_forward_unfused(&a);
                /* A half-precision out is widened into the float buffer, sentinels kept, for the checks below. */
                for (int64_t e = 0; out[t].half && e < out[t].extent; e++)
                    if (out[t].half[e] != HALF_SENTINEL) out[t].p[e] = (float)tu_half_value(out[t].half[e], c->dt_out);
                g_kernel_calls++;
                TU_CHECK(st[t] == ATTN_OK, "%s threads=%d: status %d (%s), want 0; %s; rerun: --seed %llu --case %d", where,
                         threads_of_run[t], (int)st[t], attn_status_string(st[t]), desc, (unsigned long long)g_seed, idx);
            }
            if (st[0] != ATTN_OK) continue;

            /* Values against the reference (the 1-thread run). */
            for (int64_t b = 0; b < c->B; b++)
                for (int64_t h = 0; h < c->Hq; h++)
                    for (int64_t i = 0; i < c->Lq; i++) {
                        int64_t row = (b * c->Hq + h) * c->Lq + i;
                        memcpy(got + row * c->Dv, tat(&out[0], b, h, i), (size_t)c->Dv * sizeof(float));
                    }
            tu_cmp cmp = tu_compare(got, ref, (size_t)nout, tol_for(c->dt_out) + (path >= 2 ? BF16_DOT_TOL : 0.0));
            /* Fully masked rows under ZERO are exactly 0. */
            int64_t zero_bad = -1;
            if (c->policy == ATTN_MASKED_ROWS_ZERO)
                for (int64_t e = 0; e < nout && zero_bad < 0; e++)
                    if (row_empty[e / c->Dv] && got[e] != 0.0f) zero_bad = e;
            {
                size_t w = cmp.worst;
                int64_t d = (int64_t)w % c->Dv, row = (int64_t)w / c->Dv;
                int64_t i = row % c->Lq, h = (row / c->Lq) % c->Hq, b = row / (c->Lq * c->Hq);
                TU_CHECK(cmp.ok && zero_bad < 0,
                         "%s: out wrong: %zu of %lld elements beyond tolerance %.3g (max|ref| %.4g); worst at (b=%lld,h=%lld,i=%lld,d=%lld): "
                         "got %.9g, ref %.9g, err %.3g%s%s; %s; rerun: --seed %llu --case %d",
                         where, cmp.n_bad, (long long)nout, cmp.tol, cmp.scale, (long long)b, (long long)h, (long long)i, (long long)d,
                         cmp.got_worst, cmp.ref_worst, cmp.max_err, row_empty[row] ? " (fully masked row)" : "",
                         zero_bad >= 0 ? "; a fully masked row is not exactly 0 under masked_rows=zero" : "", desc,
                         (unsigned long long)g_seed, idx);
                double e = cmp.max_err / cmp.scale;
                if (e > gs->err[isa][path]) gs->err[isa][path] = e;
                if (g_verbose) printf("  case %d [%s] isa=%s path=%s: error %.2e; %s\n", idx, c->group,
                                      attn_isa_name((attn_isa)isa), path_name[path], e, desc);
                gs->ran[isa][path] = 1;
            }
            if (c->want_lse) {
                memcpy(got_lse, lse_buf[0] + LSE_GUARD, (size_t)rows * sizeof(float));
                tu_cmp cl = tu_compare_each(got_lse, ref_lse, (size_t)rows, TOL_REL);
                size_t w = cl.worst;
                int64_t i = (int64_t)w % c->Lq, h = ((int64_t)w / c->Lq) % c->Hq, b = (int64_t)w / (c->Lq * c->Hq);
                TU_CHECK(cl.ok, "%s: lse wrong: %zu of %lld beyond tolerance %.3g; worst at (b=%lld,h=%lld,i=%lld): got %.9g, ref %.9g; %s; rerun: --seed %llu --case %d",
                         where, cl.n_bad, (long long)rows, cl.tol, (long long)b, (long long)h, (long long)i, cl.got_worst,
                         cl.ref_worst, desc, (unsigned long long)g_seed, idx);
                double e = cl.max_err / cl.scale;
                if (e > gs->lse_err[isa][path]) gs->lse_err[isa][path] = e;
            }

            /* The model of VDPBF16PS gives the instruction's bits. */
            if (path == 2) {
                memcpy(got_native, got, (size_t)nout * sizeof(float));
                have_native = 1;
            } else if (path == 3 && have_native) {
                int64_t diff = -1;
                for (int64_t e = 0; e < nout && diff < 0; e++)
                    if (!same_value(got[e], got_native[e])) diff = e;
                TU_CHECK(diff < 0, "%s: bf16emu differs from bf16dot (VDPBF16PS) at element %lld: %.9g vs %.9g; %s; rerun: --seed %llu --case %d",
                         where, (long long)diff, diff >= 0 ? (double)got[diff] : 0.0, diff >= 0 ? (double)got_native[diff] : 0.0,
                         desc, (unsigned long long)g_seed, idx);
            }

            /* Bitwise identical for every thread count. */
            for (int t = 1; t < nruns; t++) {
                if (st[t] != ATTN_OK) continue;
                int same = memcmp(out[0].p, out[t].p, (size_t)out[0].extent * sizeof(float)) == 0 &&
                           (!c->want_lse || memcmp(lse_buf[0], lse_buf[t], (size_t)(rows + 2 * LSE_GUARD) * sizeof(float)) == 0);
                TU_CHECK(same, "%s: threads=%d differs bitwise from threads=1; %s; rerun: --seed %llu --case %d", where,
                         threads_of_run[t], desc, (unsigned long long)g_seed, idx);
            }

            /* Nothing written outside the logical output and the lse. */
            {
                int64_t bad = -1;
                for (int t = 0; t < nruns && bad < 0; t++) {
                    for (int64_t e = 0; e < out[t].extent; e++)
                        if (!logical[e] && !is_sentinel(out[t].p + e)) { bad = e; break; }
                    for (int64_t e = 0; e < LSE_GUARD && bad < 0; e++)
                        if (!is_sentinel(lse_buf[t] + e) || !is_sentinel(lse_buf[t] + LSE_GUARD + rows + e)) bad = e;
                    if (!c->want_lse)
                        for (int64_t e = 0; e < rows && bad < 0; e++)
                            if (!is_sentinel(lse_buf[t] + LSE_GUARD + e)) bad = e;
                }
                TU_CHECK(bad < 0, "%s: wrote outside the output (padding element %lld of out, or the lse guards); %s; rerun: --seed %llu --case %d",
                         where, (long long)bad, desc, (unsigned long long)g_seed, idx);
            }

            /* Dropout / mask pattern, exactly: with V = identity out[i][j] == 0 iff weight (i, j) is dropped or masked. */
            if (c->v_identity) {
                int64_t bad = -1;
                for (int64_t e = 0; e < nout; e++) {
                    pattern[path][e] = (uint8_t)value_class(got[e]);
                    if (bad < 0 && pattern[path][e] != value_class(ref[e])) bad = e;
                }
                int64_t row = bad >= 0 ? bad / c->Dv : 0;
                TU_CHECK(bad < 0, "%s: dropout/mask pattern differs from the reference (documented hash) at (b=%lld,h=%lld,i=%lld,j=%lld): got %.9g, ref %.9g; %s; rerun: --seed %llu --case %d",
                         where, (long long)(row / (c->Lq * c->Hq)), (long long)((row / c->Lq) % c->Hq), (long long)(row % c->Lq),
                         (long long)(bad >= 0 ? bad % c->Dv : 0), bad >= 0 ? (double)got[bad] : 0.0, bad >= 0 ? ref[bad] : 0.0,
                         desc, (unsigned long long)g_seed, idx);
                if (path == 1) {
                    int64_t diff = -1;
                    for (int64_t e = 0; e < nout; e++)
                        if (pattern[0][e] != pattern[1][e]) { diff = e; break; }
                    TU_CHECK(diff < 0, "%s: fused and unfused keep different weights (element %lld); %s; rerun: --seed %llu --case %d",
                             where, (long long)diff, desc, (unsigned long long)g_seed, idx);
                }
                if (c->check_keep_rate > 0) {
                    int64_t kept = 0, visible = 0;
                    for (int64_t e = 0; e < nout; e++)
                        if (!row_empty[e / c->Dv] && ref_visible(&P, e / c->Dv / c->Lq / c->Hq, (e / c->Dv / c->Lq) % c->Hq,
                                                                  (e / c->Dv) % c->Lq, e % c->Dv)) {
                            visible++;
                            kept += got[e] != 0.0f;
                        }
                    double frac = visible ? (double)kept / (double)visible : 0, want = 1.0 - (double)c->p;
                    double sigma = sqrt((double)c->p * want / (double)(visible ? visible : 1));
                    TU_CHECK(visible > 0 && fabs(frac - want) <= 5 * sigma + 1e-3,
                             "%s: kept fraction %.5f over %lld weights, want %.5f +- %.5f; %s", where, frac, (long long)visible,
                             want, 5 * sigma + 1e-3, desc);
                    if (!g_quiet && isa == ATTN_ISA_SCALAR && path == 0)
                        printf("  dropout p=%.2f: kept %.5f of %lld weights (want %.5f)\n", (double)c->p, frac, (long long)visible, want);
                }
            }
        }
    }
    TU_CHECK(snapshot_equal(&P, &snap), "case %d [%s]: an input buffer was modified; %s; rerun: --seed %llu --case %d", idx,
             c->group, desc, (unsigned long long)g_seed, idx);

    free_snapshot(&snap);
    for (int path = 0; path < NPATH; path++) free(pattern[path]);
    free(got); free(got_native); free(got_lse); free(logical);
    for (int t = 0; t < 3; t++) { free(out[t].alloc); free(out[t].half); free(lse_buf[t]); }
    free(ref); free(ref_lse); free(row_empty);
    free_problem(&P);
}

/* ============================================================================================== */
/* Error statuses                                                                                   */

#define EB 2
#define EHQ 2
#define EHKV 1
#define ELQ 3
#define ELK 4
#define EDQK 4
#define EDV 5
typedef struct err_fixture {
    float q[EB * EHQ * ELQ * EDQK], k[EB * EHKV * ELK * EDQK], v[EB * EHKV * ELK * EDV];
    float out[EB * EHQ * ELQ * EDV], lse[EB * EHQ * ELQ];
    int64_t key_len[EB];
    uint8_t mask[ELQ * ELK];
    float bias[ELQ * ELK];
} err_fixture;

static err_fixture g_fx;

static attn_params fixture_params(void) {
    tu_rng r = tu_rng_derive(g_seed, 0xE77);
    tu_fill_uniform(&r, g_fx.q, sizeof g_fx.q / 4, -1, 1);
    tu_fill_uniform(&r, g_fx.k, sizeof g_fx.k / 4, -1, 1);
    tu_fill_uniform(&r, g_fx.v, sizeof g_fx.v / 4, -1, 1);
    tu_fill_uniform(&r, g_fx.bias, sizeof g_fx.bias / 4, -1, 1);
    for (int i = 0; i < ELQ * ELK; i++) g_fx.mask[i] = 1;
    g_fx.key_len[0] = ELK; g_fx.key_len[1] = 2;
    attn_params a = attn_params_default();
    a.batch = EB; a.heads_q = EHQ; a.heads_kv = EHKV; a.len_q = ELQ; a.len_k = ELK; a.dim_qk = EDQK; a.dim_v = EDV;
    a.q = g_fx.q; a.q_stride[0] = EHQ * ELQ * EDQK; a.q_stride[1] = ELQ * EDQK; a.q_stride[2] = EDQK;
    a.k = g_fx.k; a.k_stride[0] = EHKV * ELK * EDQK; a.k_stride[1] = ELK * EDQK; a.k_stride[2] = EDQK;
    a.v = g_fx.v; a.v_stride[0] = EHKV * ELK * EDV; a.v_stride[1] = ELK * EDV; a.v_stride[2] = EDV;
    a.out = g_fx.out; a.out_stride[0] = EHQ * ELQ * EDV; a.out_stride[1] = ELQ * EDV; a.out_stride[2] = EDV;
    a.lse = g_fx.lse;
    a.key_len = g_fx.key_len;
    a.mask = g_fx.mask; a.mask_stride[2] = ELK; a.mask_stride[3] = 1;
    a.bias = g_fx.bias; a.bias_stride[2] = ELK; a.bias_stride[3] = 1;
    a.num_threads = 1;
    return a;
}

typedef struct err_result {
    int status[3];   /* validate, forward, unfused */
    int untouched[3];
    int strings_ok;
} err_result;

static void err_calls(const attn_params *a, int null_params, err_result *res) {
    for (int call = 0; call < 3; call++) {
        fill_sentinel(g_fx.out, sizeof g_fx.out / 4);
        fill_sentinel(g_fx.lse, sizeof g_fx.lse / 4);
        const attn_params *pp = null_params ? NULL : a;
        attn_status st = call == 0 ? attn_validate(pp) : call == 1 ? attn_forward(pp) : attn_forward_unfused(pp);
        res->status[call] = (int)st;
        int untouched = 1;
        for (size_t i = 0; i < sizeof g_fx.out / 4; i++) untouched &= is_sentinel(&g_fx.out[i]);
        for (size_t i = 0; i < sizeof g_fx.lse / 4; i++) untouched &= is_sentinel(&g_fx.lse[i]);
        res->untouched[call] = untouched;
        const char *s = attn_status_string(st);
        res->strings_ok = (call == 0 ? 1 : res->strings_ok) && s && s[0];
    }
}

/* Runs the three calls in a child process (a wrong validation could otherwise crash or hang the suite). */
static void expect_status(const char *what, attn_params a, int null_params, attn_status want) {
    err_result res;
    memset(&res, 0, sizeof res);
    int crashed = 0;
#if HAVE_FORK
    int fds[2];
    fflush(stdout);
    if (pipe(fds) == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            alarm(20);
            err_calls(&a, null_params, &res);
            ssize_t wn = write(fds[1], &res, sizeof res);
            _exit(wn == (ssize_t)sizeof res ? 0 : 3);
        }
        close(fds[1]);
        ssize_t n = 0, got = 0;
        while (pid > 0 && got < (ssize_t)sizeof res && (n = read(fds[0], (char *)&res + got, sizeof res - (size_t)got)) > 0) got += n;
        close(fds[0]);
        int wst = 0;
        if (pid > 0) waitpid(pid, &wst, 0);
        if (pid < 0 || got != (ssize_t)sizeof res || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
            crashed = 1;
            tu_fail("error test '%s': the child process %s (signal %d); want status %d (%s)", what,
                    pid < 0 ? "could not start" : WIFSIGNALED(wst) ? "crashed or timed out" : "failed",
                    WIFSIGNALED(wst) ? WTERMSIG(wst) : 0, (int)want, attn_status_string(want));
        }
    } else
#endif
        err_calls(&a, null_params, &res);
    if (crashed) return;
    static const char *call_name[3] = {"attn_validate", "attn_forward", "attn_forward_unfused"};
    for (int call = 0; call < 3; call++) {
        TU_CHECK(res.status[call] == (int)want, "error test '%s': %s returned %d (%s), want %d (%s)", what, call_name[call],
                 res.status[call], attn_status_string((attn_status)res.status[call]), (int)want, attn_status_string(want));
        if (want != ATTN_OK)
            TU_CHECK(res.untouched[call], "error test '%s': %s wrote to out or lse although it failed", what, call_name[call]);
    }
    TU_CHECK(res.strings_ok, "error test '%s': attn_status_string gave an empty string", what);
}

static void test_errors(void) {
    attn_params a;
    const int64_t big = (int64_t)1 << 62;

    /* Valid controls first: the fixture itself and a few unusual but valid variants. */
    a = fixture_params(); expect_status("valid fixture", a, 0, ATTN_OK);
    a = fixture_params(); a.out_stride[0] = ELQ * EHQ * EDV; a.out_stride[1] = EDV; a.out_stride[2] = EHQ * EDV;
    expect_status("valid: interleaved (B, L, H*D) output", a, 0, ATTN_OK);
    a = fixture_params(); a.q_stride[0] = 0; a.k_stride[2] = 0; a.v_stride[0] = 0;
    expect_status("valid: zero input strides", a, 0, ATTN_OK);
    a = fixture_params(); a.key_len = NULL; a.mask = NULL; a.bias = NULL; a.lse = NULL;
    expect_status("valid: no optional inputs", a, 0, ATTN_OK);
    a = fixture_params(); g_fx.key_len[0] = 0; g_fx.key_len[1] = ELK; expect_status("valid: key_len 0 and Lk", a, 0, ATTN_OK);
    a = fixture_params(); a.num_threads = ATTN_MAX_THREADS;
    TU_CHECK(attn_validate(&a) == ATTN_OK, "error test: attn_validate rejects num_threads = ATTN_MAX_THREADS");
    a = fixture_params(); a.dropout_p = nextafterf(1.0f, 0.0f);
    TU_CHECK(attn_validate(&a) == ATTN_OK, "error test: attn_validate rejects dropout_p just below 1");
    a = fixture_params(); a.window_left = 0; a.window_right = 0; a.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    a.masked_rows = ATTN_MASKED_ROWS_MEAN;
    expect_status("valid: windows 0", a, 0, ATTN_OK);

    /* Null pointers. */
    a = fixture_params(); expect_status("params NULL", a, 1, ATTN_ERR_NULL_POINTER);
    a = fixture_params(); a.q = NULL; expect_status("q NULL", a, 0, ATTN_ERR_NULL_POINTER);
    a = fixture_params(); a.k = NULL; expect_status("k NULL", a, 0, ATTN_ERR_NULL_POINTER);
    a = fixture_params(); a.v = NULL; expect_status("v NULL", a, 0, ATTN_ERR_NULL_POINTER);
    a = fixture_params(); a.out = NULL; expect_status("out NULL", a, 0, ATTN_ERR_NULL_POINTER);

    /* Sizes. */
    static const char *size_names[7] = {"batch", "heads_q", "heads_kv", "len_q", "len_k", "dim_qk", "dim_v"};
    for (int f = 0; f < 7; f++)
        for (int neg = 0; neg < 3; neg++) {
            a = fixture_params();
            int64_t *field[7] = {&a.batch, &a.heads_q, &a.heads_kv, &a.len_q, &a.len_k, &a.dim_qk, &a.dim_v};
            int64_t val = neg == 0 ? 0 : neg == 1 ? -1 : INT64_MIN;
            *field[f] = val;
            char what[64];
            snprintf(what, sizeof what, "%s = %lld", size_names[f], (long long)val);
            expect_status(what, a, 0, ATTN_ERR_INVALID_ARGUMENT);
        }
    a = fixture_params(); a.heads_q = 2; a.heads_kv = 4; expect_status("heads_q 2 % heads_kv 4 != 0", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.heads_q = 1; a.heads_kv = 1; a.batch = 1; a.heads_q = 3; a.heads_kv = 2;
    a.q_stride[1] = 0; a.out_stride[1] = EDV * ELQ; a.out_stride[0] = 3 * EDV * ELQ;
    expect_status("heads_q 3 % heads_kv 2 != 0", a, 0, ATTN_ERR_INVALID_ARGUMENT);

    /* Overflowing sizes and offsets. */
    a = fixture_params(); a.batch = (int64_t)1 << 40; a.q_stride[0] = (int64_t)1 << 30; a.k_stride[0] = a.v_stride[0] = 0;
    a.out_stride[0] = (int64_t)1 << 30; a.key_len = NULL; a.lse = NULL; a.mask = NULL; a.bias = NULL;
    expect_status("batch 2^40 x q/out batch stride 2^30", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.batch = 3; a.key_len = NULL; a.lse = NULL; a.k_stride[0] = big;
    expect_status("k batch stride 2^62, B = 3", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.heads_q = 4; a.heads_kv = 4; a.batch = 1; a.v_stride[1] = big; a.q_stride[1] = 0; a.k_stride[1] = 0;
    a.out_stride[1] = ELQ * EDV; a.lse = NULL; a.key_len = NULL;
    expect_status("v head stride 2^62, Hkv = 4", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.q_stride[0] = big; a.q_stride[1] = big; expect_status("q offsets sum to 2^63", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.q_stride[2] = big; expect_status("q position stride 2^62 with Lq = 3", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.len_k = big; a.key_len = NULL; a.mask = NULL; a.bias = NULL;
    expect_status("len_k 2^62 x k position stride 4", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.batch = 3; a.key_len = NULL; a.lse = NULL; a.out_stride[0] = big;
    expect_status("out batch stride 2^62, B = 3", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.batch = 3; a.key_len = NULL; a.lse = NULL; a.mask_stride[0] = big;
    expect_status("mask batch stride 2^62, B = 3", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.bias_stride[2] = big; a.bias_stride[3] = big; expect_status("bias offsets sum to 2^63", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.dim_qk = big; a.q_stride[2] = big; a.k_stride[2] = big;
    expect_status("dim_qk 2^62 with Lq = 3", a, 0, ATTN_ERR_OVERFLOW);
    a = fixture_params(); a.batch = 1; a.heads_q = 1; a.heads_kv = 1; a.key_len = NULL; a.lse = NULL;
    a.dim_v = INT64_MAX; a.out_stride[2] = INT64_MAX; a.v_stride[2] = INT64_MAX;
    expect_status("dim_v INT64_MAX", a, 0, ATTN_ERR_OVERFLOW);

    /* Strides. */
    a = fixture_params(); a.q_stride[0] = -1; expect_status("q batch stride -1", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.q_stride[2] = -EDQK; expect_status("q position stride negative", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.k_stride[1] = -1; expect_status("k head stride -1", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.k_stride[2] = INT64_MIN; expect_status("k position stride INT64_MIN", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.v_stride[0] = -100; expect_status("v batch stride -100", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[2] = -EDV; expect_status("out position stride negative", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.mask_stride[3] = -1; expect_status("mask j stride -1", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.mask_stride[0] = -1; expect_status("mask batch stride -1", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.bias_stride[2] = -ELK; expect_status("bias i stride negative", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.bias_stride[1] = -1; expect_status("bias head stride -1", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[2] = EDV - 1; expect_status("out rows overlap (position stride Dv-1)", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[2] = 0; expect_status("out position stride 0", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[1] = 0; expect_status("out head stride 0", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[0] = 0; expect_status("out batch stride 0", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[1] = EDV; /* head 1 row 0 == head 0 row 1 */
    expect_status("out heads overlap positions", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[0] = ELQ * EDV; /* batch 1 head 0 == batch 0 head 1 */
    expect_status("out batches overlap heads", a, 0, ATTN_ERR_INVALID_STRIDE);
    a = fixture_params(); a.out_stride[0] = ELQ * EHQ * EDV; a.out_stride[1] = EDV; a.out_stride[2] = EDV * (EHQ - 1) + 1;
    expect_status("out interleaved with a too small position stride", a, 0, ATTN_ERR_INVALID_STRIDE);

    /* Windows, key lengths, dropout, scale, enums, threads. */
    a = fixture_params(); a.window_left = -2; expect_status("window_left -2", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.window_right = -2; expect_status("window_right -2", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.window_left = INT64_MIN; expect_status("window_left INT64_MIN", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); g_fx.key_len[1] = -1; expect_status("key_len[1] = -1", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); g_fx.key_len[0] = ELK + 1; expect_status("key_len[0] = Lk + 1", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); g_fx.key_len[1] = INT64_MAX; expect_status("key_len[1] = INT64_MAX", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    static const float bad_p[] = {-0.1f, -1e-30f, 1.0f, 1.5f, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_p / sizeof bad_p[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "dropout_p = %g", (double)bad_p[i]);
        a = fixture_params(); a.dropout_p = bad_p[i]; expect_status(what, a, 0, ATTN_ERR_INVALID_ARGUMENT);
    }
    a = fixture_params(); a.dropout_p = NAN; expect_status("dropout_p = NaN", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.scale = NAN; expect_status("scale = NaN", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.scale = INFINITY; expect_status("scale = inf", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.scale = -INFINITY; expect_status("scale = -inf", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.causal = (attn_causal)3; expect_status("causal = 3", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.causal = (attn_causal)-1; expect_status("causal = -1", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.masked_rows = (attn_masked_rows)3; expect_status("masked_rows = 3", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.masked_rows = (attn_masked_rows)-1; expect_status("masked_rows = -1", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.num_threads = -1; expect_status("num_threads = -1", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.num_threads = ATTN_MAX_THREADS + 1; expect_status("num_threads = ATTN_MAX_THREADS + 1", a, 0, ATTN_ERR_INVALID_ARGUMENT);
    a = fixture_params(); a.num_threads = INT_MIN; expect_status("num_threads = INT_MIN", a, 0, ATTN_ERR_INVALID_ARGUMENT);
}

/* ============================================================================================== */
/* The small API                                                                                    */

static void test_api(void) {
    /* Version. */
    const char *v = attn_version();
    TU_CHECK(v && strcmp(v, ATTN_VERSION_STRING) == 0, "attn_version() = '%s', want '%s'", v ? v : "(null)", ATTN_VERSION_STRING);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR, ATTN_VERSION_PATCH);
    TU_CHECK(strcmp(want, ATTN_VERSION_STRING) == 0, "ATTN_VERSION_STRING '%s' disagrees with the MAJOR.MINOR.PATCH macros '%s'",
             ATTN_VERSION_STRING, want);

    /* Status strings: non-empty, distinct, and defined for values outside the enum. */
    for (int s = ATTN_OK; s <= ATTN_ERR_UNSUPPORTED; s++) {
        const char *str = attn_status_string((attn_status)s);
        TU_CHECK(str && str[0], "attn_status_string(%d) is empty", s);
        for (int t = 0; t < s; t++) {
            const char *o = attn_status_string((attn_status)t);
            TU_CHECK(!str || !o || strcmp(str, o) != 0, "attn_status_string(%d) == attn_status_string(%d)", s, t);
        }
    }
    const char *unk = attn_status_string((attn_status)99);
    TU_CHECK(unk && unk[0], "attn_status_string(99) is NULL or empty");
    unk = attn_status_string((attn_status)-1);
    TU_CHECK(unk && unk[0], "attn_status_string(-1) is NULL or empty");

    /* Defaults. */
    attn_params d = attn_params_default();
    attn_params z;
    memset(&z, 0, sizeof z);
    z.window_left = z.window_right = -1;
    TU_CHECK(d.struct_size == sizeof d && d.window_left == -1 && d.window_right == -1 && d.batch == 0 && d.q == NULL && d.out == NULL && d.scale == 0 &&
                 d.causal == ATTN_CAUSAL_NONE && d.key_len == NULL && d.mask == NULL && d.bias == NULL && d.dropout_p == 0 &&
                 d.dropout_seed == 0 && d.dropout_offset == 0 && d.masked_rows == ATTN_MASKED_ROWS_ZERO && d.lse == NULL &&
                 d.num_threads == 0 && d.q_stride[0] == 0 && d.mask_stride[3] == 0 && d.bias_stride[0] == 0,
             "attn_params_default() is not all zero with struct_size set and windows -1");

    /* ISA selection. */
    static const char *isa_names[NISA] = {"scalar", "neon", "avx2", "avx512"};
    for (int isa = 0; isa < NISA; isa++)
        TU_CHECK(strcmp(attn_isa_name((attn_isa)isa), isa_names[isa]) == 0, "attn_isa_name(%d) = '%s', want '%s'", isa,
                 attn_isa_name((attn_isa)isa), isa_names[isa]);
    TU_CHECK(strcmp(attn_isa_name((attn_isa)42), "unknown") == 0, "attn_isa_name(42) is not 'unknown'");

    /* bf16 dot product: names, the mode round trip, unsupported and invalid values. */
    static const char *dot_names[3] = {"off", "native", "emulated"};
    const attn_bf16_dot dot0 = attn_get_bf16_dot();
    TU_CHECK(attn_bf16_dot_supported(dot0), "attn_get_bf16_dot() = %s is not supported", attn_bf16_dot_name(dot0));
    for (int m = 0; m < 3; m++) {
        TU_CHECK(strcmp(attn_bf16_dot_name((attn_bf16_dot)m), dot_names[m]) == 0, "attn_bf16_dot_name(%d) = '%s', want '%s'", m,
                 attn_bf16_dot_name((attn_bf16_dot)m), dot_names[m]);
        const int sup = attn_bf16_dot_supported((attn_bf16_dot)m);
        TU_CHECK(m == ATTN_BF16_DOT_NATIVE || sup, "attn_bf16_dot_supported(%s) = 0", dot_names[m]);
        const attn_status st = attn_set_bf16_dot((attn_bf16_dot)m);
        TU_CHECK(st == (sup ? ATTN_OK : ATTN_ERR_UNSUPPORTED), "attn_set_bf16_dot(%s) = %d", dot_names[m], (int)st);
        if (sup) TU_CHECK(attn_get_bf16_dot() == (attn_bf16_dot)m, "attn_get_bf16_dot() after attn_set_bf16_dot(%s)", dot_names[m]);
    }
    TU_CHECK(attn_set_bf16_dot((attn_bf16_dot)3) == ATTN_ERR_INVALID_ARGUMENT, "attn_set_bf16_dot(3) is not invalid");
    TU_CHECK(attn_set_bf16_dot((attn_bf16_dot)-1) == ATTN_ERR_INVALID_ARGUMENT, "attn_set_bf16_dot(-1) is not invalid");
    TU_CHECK(strcmp(attn_bf16_dot_name((attn_bf16_dot)7), "unknown") == 0, "attn_bf16_dot_name(7) is not 'unknown'");
    attn_set_bf16_dot(dot0);
    TU_CHECK(strcmp(attn_isa_name((attn_isa)-1), "unknown") == 0, "attn_isa_name(-1) is not 'unknown'");
    attn_isa initial = attn_get_isa();
    TU_CHECK(attn_isa_supported(initial), "attn_get_isa() = %s is not supported", attn_isa_name(initial));
    int any = 0;
    for (int isa = 0; isa < NISA; isa++) {
        int sup = attn_isa_supported((attn_isa)isa);
        attn_status st = attn_set_isa((attn_isa)isa);
        any |= sup;
        TU_CHECK(st == (sup ? ATTN_OK : ATTN_ERR_UNSUPPORTED), "attn_set_isa(%s) = %d, want %d", isa_names[isa], (int)st,
                 sup ? 0 : (int)ATTN_ERR_UNSUPPORTED);
        if (sup) TU_CHECK(attn_get_isa() == (attn_isa)isa, "attn_get_isa() after attn_set_isa(%s) = %s", isa_names[isa],
                          attn_isa_name(attn_get_isa()));
    }
    TU_CHECK(any, "no instruction set is supported");
#if defined(__x86_64__) || defined(_M_X64)
    TU_CHECK(attn_isa_supported(ATTN_ISA_SCALAR) && !attn_isa_supported(ATTN_ISA_NEON), "x86-64: scalar must be supported, neon not");
#elif defined(__aarch64__)
    TU_CHECK(attn_isa_supported(ATTN_ISA_NEON), "arm64: neon must be supported");
#endif
    attn_isa before = attn_get_isa();
    static const int bad_isa[] = {-1, 4, 99, INT_MAX};
    for (size_t i = 0; i < sizeof bad_isa / sizeof bad_isa[0]; i++) {
        attn_status st = attn_set_isa((attn_isa)bad_isa[i]);
        TU_CHECK(st == ATTN_ERR_INVALID_ARGUMENT, "attn_set_isa(%d) = %d, want ATTN_ERR_INVALID_ARGUMENT", bad_isa[i], (int)st);
    }
    TU_CHECK(attn_get_isa() == before, "a failed attn_set_isa changed the instruction set");
    attn_set_isa(initial);

    /* Threads. */
    int def = attn_get_num_threads();
    TU_CHECK(def >= 1 && def <= ATTN_MAX_THREADS, "attn_get_num_threads() = %d by default", def);
    TU_CHECK(attn_set_num_threads(-1) == ATTN_ERR_INVALID_ARGUMENT, "attn_set_num_threads(-1) is not ATTN_ERR_INVALID_ARGUMENT");
    TU_CHECK(attn_set_num_threads(INT_MIN) == ATTN_ERR_INVALID_ARGUMENT, "attn_set_num_threads(INT_MIN) is not ATTN_ERR_INVALID_ARGUMENT");
    TU_CHECK(attn_get_num_threads() == def, "a failed attn_set_num_threads changed the thread count");
    TU_CHECK(attn_set_num_threads(ATTN_MAX_THREADS + 1) == ATTN_ERR_INVALID_ARGUMENT,
             "attn_set_num_threads(ATTN_MAX_THREADS + 1) is not ATTN_ERR_INVALID_ARGUMENT");
    TU_CHECK(attn_set_num_threads(3) == ATTN_OK && attn_get_num_threads() == 3, "attn_set_num_threads(3) then get != 3");
    TU_CHECK(attn_set_num_threads(ATTN_MAX_THREADS) == ATTN_OK && attn_get_num_threads() == ATTN_MAX_THREADS,
             "attn_set_num_threads(ATTN_MAX_THREADS) then get != ATTN_MAX_THREADS");
    TU_CHECK(attn_set_num_threads(0) == ATTN_OK && attn_get_num_threads() == def, "attn_set_num_threads(0) does not restore the default");

    /* The dropout hash and threshold against the documented formulas. */
    tu_rng r = tu_rng_derive(g_seed, 0xD0D0);
    int64_t bad = -1;
    uint64_t bs = 0, bc = 0;
    static const uint64_t edge[] = {0, 1, 2, 0x9E3779B97F4A7C15ull, UINT64_MAX - 1, UINT64_MAX, (uint64_t)1 << 63};
    for (int64_t i = 0; i < 20000 + 49 && bad < 0; i++) {
        uint64_t s, c;
        if (i < 49) { s = edge[i % 7]; c = edge[i / 7]; }
        else { s = tu_rng_u64(&r); c = i % 2 ? tu_rng_u64(&r) : (uint64_t)i; }
        if (attn_dropout_bits(s, c) != ref_dropout_bits(s, c)) { bad = i; bs = s; bc = c; }
    }
    TU_CHECK(bad < 0, "attn_dropout_bits(%llu, %llu) = %u, documented formula gives %u", (unsigned long long)bs,
             (unsigned long long)bc, bad < 0 ? 0u : attn_dropout_bits(bs, bc), bad < 0 ? 0u : ref_dropout_bits(bs, bc));
    static const float thr_p[] = {0.0f, 1e-10f, 1e-9f, 0.1f, 0.25f, 0.3f, 0.5f, 0.75f, 0.9f, 0.999f, 0.99999994f};
    for (size_t i = 0; i < sizeof thr_p / sizeof thr_p[0]; i++) {
        uint32_t got = attn_dropout_threshold(thr_p[i]), wantt = ref_dropout_threshold(thr_p[i]);
        TU_CHECK(got == wantt, "attn_dropout_threshold(%.9g) = %u, want %u", (double)thr_p[i], got, wantt);
    }
}

/* ============================================================================================== */
/* bf16 dot product: subnormal inputs (documented in attn.h)                                       */

/*
 * VDPBF16PS reads subnormal bf16 inputs as zero (DAZ). Query row q = (2^-127, 0) (a bf16 subnormal)
 * against k0 = (2^120, 0) and k1 = 0: the score of k0 is 2^-7 exactly, so the widened path's weights
 * are softmax(2^-7, 0) = (0.50195..., 0.49804...), while on the dot-product path q counts as zero
 * and both weights are exactly 1/2. V = (1, 0, 2^-127; 0, 1, 2^-127): its subnormal third column
 * is 2^-127 when widened and exactly 0 on the dot-product path. 40 query rows, so the tile kernel
 * runs on every instruction set.
 */
static void test_bf16_subnormal(void) {
    enum { LQ = 40, LK = 2, D = 2, DV = 3 };
    uint16_t q[LQ * D], k[LK * D] = {0x7b80 /* 2^120 */, 0, 0, 0}, v[LK * DV] = {0x3f80, 0, 0x0040, 0, 0x3f80, 0x0040};
    for (int i = 0; i < LQ; i++) { q[i * D] = 0x0040; /* 2^-127 */ q[i * D + 1] = 0; }
    float out[LQ * DV];
    attn_params a = attn_params_default();
    a.batch = a.heads_q = a.heads_kv = 1; a.len_q = LQ; a.len_k = LK; a.dim_qk = D; a.dim_v = DV;
    a.q = q; a.k = k; a.v = v; a.out = out; a.scale = 1.0f;
    a.q_stride[2] = D; a.k_stride[2] = D; a.v_stride[2] = DV; a.out_stride[2] = DV;
    a.q_stride[0] = a.q_stride[1] = LQ * D; a.k_stride[0] = a.k_stride[1] = LK * D;
    a.v_stride[0] = a.v_stride[1] = LK * DV; a.out_stride[0] = a.out_stride[1] = LQ * DV;
    a.q_dtype = a.k_dtype = a.v_dtype = ATTN_DTYPE_BF16;
    const double w0 = 1.0 / (1.0 + exp(-1.0 / 128)), tiny = ldexp(1.0, -127);
    for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_AVX512; isa++) {
        if (attn_set_isa((attn_isa)isa) != ATTN_OK) continue;
        for (int dot = ATTN_BF16_DOT_OFF; dot <= ATTN_BF16_DOT_EMULATED; dot++) {
            if (dot == ATTN_BF16_DOT_NATIVE && isa != ATTN_ISA_AVX512) continue;
            if (attn_set_bf16_dot((attn_bf16_dot)dot) != ATTN_OK) continue;
            attn_status st = attn_forward(&a);
            TU_CHECK(st == ATTN_OK, "bf16 subnormals isa=%s dot=%s: status %d", attn_isa_name((attn_isa)isa),
                     attn_bf16_dot_name((attn_bf16_dot)dot), (int)st);
            int bad = -1;
            for (int i = 0; i < LQ && bad < 0; i++) {
                const float *o = out + i * DV;
                if (dot == ATTN_BF16_DOT_OFF ? fabs(o[0] - w0) > 1e-6 || fabs(o[1] - (1 - w0)) > 1e-6 || fabs(o[2] - tiny) > 1e-6 * tiny
                                             : o[0] != 0.5f || o[1] != 0.5f || o[2] != 0.0f)
                    bad = i;
            }
            TU_CHECK(bad < 0, "bf16 subnormals isa=%s dot=%s: row %d is (%.9g, %.9g, %.9g), want %s",
                     attn_isa_name((attn_isa)isa), attn_bf16_dot_name((attn_bf16_dot)dot), bad, bad >= 0 ? (double)out[bad * DV] : 0.0,
                     bad >= 0 ? (double)out[bad * DV + 1] : 0.0, bad >= 0 ? (double)out[bad * DV + 2] : 0.0,
                     dot == ATTN_BF16_DOT_OFF ? "(0.50195, 0.49805, 2^-127): widened exactly" : "(0.5, 0.5, 0) exactly: subnormals read as 0");
        }
    }
}

/* ============================================================================================== */

int main(int argc, char **argv) {
    int n_random = DEFAULT_RANDOM_CASES, only = -1;
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc && tu_parse_u64(argv[i + 1], &v)) { g_seed = v; i++; }
        else if (strcmp(argv[i], "--random") == 0 && i + 1 < argc && tu_parse_u64(argv[i + 1], &v)) { n_random = (int)v; i++; }
        else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc && tu_parse_u64(argv[i + 1], &v)) { only = (int)v; i++; }
        else if (strcmp(argv[i], "--quiet") == 0) g_quiet = 1;
        else if (strcmp(argv[i], "--verbose") == 0) g_verbose = 1;
        else if (tu_parse_u64(argv[i], &v)) g_seed = v;
        else {
            printf("usage: %s [--seed N] [--random N] [--case N] [--quiet] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    double t0 = tu_now();
    printf("test_attention: libattn %s, seed %llu (override: --seed N)\n", attn_version(), (unsigned long long)g_seed);
    printf("instruction sets:");
    for (int isa = 0; isa < NISA; isa++)
        printf(" %s=%s", attn_isa_name((attn_isa)isa), attn_isa_supported((attn_isa)isa) ? "run" : "skipped (unsupported)");
    printf("; default %s; threads default %d\n", attn_isa_name(attn_get_isa()), attn_get_num_threads());
    printf("bf16 dot product: native %s; default %s\n",
           attn_bf16_dot_supported(ATTN_BF16_DOT_NATIVE) ? "supported (AVX512_BF16)" : "unsupported (emulated only)",
           attn_bf16_dot_name(attn_get_bf16_dot()));
    fflush(stdout);
    attn_isa initial = attn_get_isa();
    attn_bf16_dot initial_dot = attn_get_bf16_dot();

    build_directed_cases();
    int total = g_ndirected + n_random;

    if (only < 0) {
        /* Error tests first, before any OpenMP thread exists (they fork). */
        long f0 = tu_failed_count, p0 = tu_passed_count;
        test_errors();
        printf("error statuses: %ld checks, %ld failed\n", tu_passed_count - p0 + tu_failed_count - f0, tu_failed_count - f0);
        f0 = tu_failed_count; p0 = tu_passed_count;
        test_api();
        printf("api: %ld checks, %ld failed\n", tu_passed_count - p0 + tu_failed_count - f0, tu_failed_count - f0);
        f0 = tu_failed_count; p0 = tu_passed_count;
        test_bf16_subnormal();
        printf("bf16 dot product, subnormal inputs: %ld checks, %ld failed\n", tu_passed_count - p0 + tu_failed_count - f0,
               tu_failed_count - f0);
        attn_set_isa(initial);
        attn_set_bf16_dot(initial_dot);
        fflush(stdout);
    }

    for (int idx = 0; idx < total; idx++) {
        if (only >= 0 && idx != only) continue;
        run_case(idx, idx < g_ndirected ? &g_cases[idx] : NULL);
    }
    if (only >= total) printf("no case %d (there are %d)\n", only, total);
    attn_set_isa(initial);
    attn_set_bf16_dot(initial_dot);

    printf("ran %ld cases (%d directed, %d random), %ld kernel calls on:", g_cases_run, g_ndirected, n_random, g_kernel_calls);
    for (int isa = 0; isa < NISA; isa++)
        if (g_isa_ran[isa]) printf(" %s", attn_isa_name((attn_isa)isa));
    printf("\nlargest error per group (tolerance %.0e), out: |out - ref| / max(1, max|ref|) | lse: |lse - ref| / max(1, |ref|):\n", TOL_REL);
    for (int g = 0; g < g_ngroups; g++) {
        printf("  %-12s %4d cases:", g_groups[g].name, g_groups[g].cases);
        for (int isa = 0; isa < NISA; isa++)
            for (int path = 0; path < NPATH; path++)
                if (g_groups[g].ran[isa][path])
                    printf("  %s/%s %.1e|%.1e", attn_isa_name((attn_isa)isa), path_name[path], g_groups[g].err[isa][path],
                           g_groups[g].lse_err[isa][path]);
        printf("\n");
    }
    printf("time %.1f s\n", tu_now() - t0);
    free(g_cases);
    return tu_summary();
}
