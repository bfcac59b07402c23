/*
 * test_backward.c: tests of attn_backward (fused) and attn_backward_unfused against an independent double-precision reference
 * of the gradient of sum(out ∘ dout) for the attention attn.h describes.
 *
 * The reference (ref_attention) re-implements the forward from attn.h's text on logical, contiguous
 * double arrays (the mask rules, the bias expanded to (B, Hq, Lq, Lk), the dropout hash re-written
 * here) and differentiates it by hand: dW = dout·v, dP = dW kept / (1 - p), D = Σ P dP, dS = P (dP - D).
 * It is itself checked by central finite differences of its own loss in double on small shapes, and
 * so are the library's results. Each case: attn_forward (fused) writes out and lse; then
 * attn_backward_unfused and attn_backward with 1..8 threads (all bitwise equal: both sum every
 * element in the same order) are compared with the reference, and the fused with the unfused, within
 * TOL_REL * max(1, max |ref|) per output tensor (tu_compare). Cases: directed ones (length 1, Lq != Lk,
 * each causal alignment, windows, key lengths, masks, every bias broadcast with its folded dbias,
 * GQA/MQA, dropout, each masked-row policy, padded strides, the packed (B, L, (Hq + 2 Hkv) D)
 * gradient layout, rows of large |lse| in exact scores: huge_kind), then random ones; NaN
 * propagation; the row of -FLT_MAX biases whose lse rounds away ln 4; every error status with
 * "nothing written".
 *
 * Run: build/tests/test_backward [--seed N] [--random N] [--verbose]
 * The last line is "N passed, N failed"; the exit code is non-zero when anything failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "test_util.h"

#define TOL_REL 2e-5   /* float sums of a few hundred terms, against max(1, max |ref|) per tensor */
#define FD_REL 1e-6    /* the double reference against its own central differences */

static uint64_t g_seed = 0xBAC0A77Eull;
static int g_verbose = 0;
static double g_worst[5]; /* largest error / tolerance seen: dq, dk, dv, dbias, finite differences */
static const char *g_worst_name[5] = {"dq", "dk", "dv", "dbias", "fd(C vs diff)"};

/* ---- a case ---------------------------------------------------------------------------------- */

enum { BIAS_NONE, BIAS_FULL, BIAS_QK, BIAS_KEYS, BIAS_SCALAR, BIAS_KINDS };
enum { MASK_NONE, MASK_FULL, MASK_KEYS, MASK_KINDS };

typedef struct bcase {
    int64_t B, Hq, Hkv, Lq, Lk, Dqk, Dv;
    int causal, masked_rows, bias_kind, mask_kind, key_len, packed, pad, dbias;
    int64_t wl, wr;
    float p, scale;
    int nan_row; /* q row (0, 0, Lq - 1) set to NaN */
    int huge;    /* rows of large |lse| among ordinary ones, in scores exact in float (huge_kind) */
    int forward_unfused; /* out and lse from attn_forward_unfused, whose scores stay exact without a bias
                            (the fused forward folds log2 e into q, rounded: gradients 1e-3 off at 8192) */
} bcase;

static void describe(const bcase *c, char *buf, size_t n) {
    snprintf(buf, n, "B%lld Hq%lld Hkv%lld Lq%lld Lk%lld Dqk%lld Dv%lld causal%d rows%d bias%d mask%d keylen%d "
             "win(%lld,%lld) p%.2f packed%d pad%d dbias%d nan%d huge%d fwd_unfused%d",
             (long long)c->B, (long long)c->Hq, (long long)c->Hkv, (long long)c->Lq, (long long)c->Lk,
             (long long)c->Dqk, (long long)c->Dv, c->causal, c->masked_rows, c->bias_kind, c->mask_kind, c->key_len,
             (long long)c->wl, (long long)c->wr, (double)c->p, c->packed, c->pad, c->dbias, c->nan_row, c->huge,
             c->forward_unfused);
}

/* The bias (and dbias) strides of each broadcast kind over (B, Hq, Lq, Lk). */
static void bias_strides(const bcase *c, int64_t s[4]) {
    const int64_t lk = c->Lk, lq = c->Lq;
    switch (c->bias_kind) {
    case BIAS_FULL: s[0] = c->Hq * lq * lk; s[1] = lq * lk; s[2] = lk; s[3] = 1; break;
    case BIAS_QK: s[0] = 0; s[1] = 0; s[2] = lk; s[3] = 1; break;
    case BIAS_KEYS: s[0] = lk; s[1] = 0; s[2] = 0; s[3] = 1; break;
    default: s[0] = s[1] = s[2] = s[3] = 0; break;
    }
}

/*
 * Huge-lse cases (bcase.huge): every score is exact in float, whatever the order of its sums, so the
 * reference's softmax (in double) is that of the kernels' scores: q and k in quarters, the scale 1
 * (set by the case), k's first feature 8 for every key, the bias (BIAS_FULL) in eighths. Row i of
 * head h is of kind (h + i) % 8:
 *   0 ordinary                      4 -1e4 on every third key (lse ordinary unless it sees no other)
 *   1 -FLT_MAX on every key         5 q's first feature 1024: scores about +8192
 *   2 -1e6 on every key             6 q's first feature -1024: scores about -8192
 *   3 -1e4 on every key             7 -FLT_MAX on every other key
 * Kinds 1, 2, 3, 5 and 6 have |lse| far above 64, where the forward's float lse rounds away part
 * of log l (-FLT_MAX + ln l is -FLT_MAX). Without a bias only kinds 5 and 6 are not ordinary.
 */
static int huge_kind(int64_t h, int64_t i) { return (int)((h + i) % 8); }

static double huge_bias(int kind, int64_t j) {
    switch (kind) {
    case 1: return -FLT_MAX;
    case 2: return -1e6;
    case 3: return -1e4;
    case 4: return j % 3 == 0 ? -1e4 : 0;
    case 7: return j % 2 ? -FLT_MAX : 0;
    default: return 0;
    }
}

static void huge_inputs(const bcase *c, double *q, double *k) {
    for (int64_t x = 0; x < c->B * c->Hq * c->Lq * c->Dqk; x++) q[x] = nearbyint(q[x] * 4) / 4;
    for (int64_t x = 0; x < c->B * c->Hkv * c->Lk * c->Dqk; x++) k[x] = x % c->Dqk ? nearbyint(k[x] * 4) / 4 : 8;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < c->Lq; i++) {
                const int kind = huge_kind(h, i);
                q[((b * c->Hq + h) * c->Lq + i) * c->Dqk] = kind == 5 ? 1024 : kind == 6 ? -1024 : 0;
            }
}

/* ---- the double reference --------------------------------------------------------------------- */

static uint32_t ref_bits(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

/* Logical tensors of a case in double: q (B,Hq,Lq,Dqk), k, v (B,Hkv,Lk,.), bias and mask expanded to
 * (B,Hq,Lq,Lk), dout (B,Hq,Lq,Dv), key_len (B). */
typedef struct ref_in {
    const bcase *c;
    double *q, *k, *v, *bias, *dout;
    uint8_t *mask;
    int64_t *key_len;
    uint64_t seed, offset;
} ref_in;

static int visible(const ref_in *in, int64_t b, int64_t h, int64_t i, int64_t j) {
    const bcase *c = in->c;
    const int64_t off = c->causal == ATTN_CAUSAL_TOP_LEFT ? 0 : c->Lk - c->Lq, a = i + off;
    if (c->causal == ATTN_CAUSAL_TOP_LEFT && j > i) return 0;
    if (c->causal == ATTN_CAUSAL_BOTTOM_RIGHT && j > i + c->Lk - c->Lq) return 0;
    if (c->wl >= 0 && j < a - c->wl) return 0;
    if (c->wr >= 0 && j > a + c->wr) return 0;
    if (c->key_len && j >= in->key_len[b]) return 0;
    if (c->mask_kind != MASK_NONE && !in->mask[((b * c->Hq + h) * c->Lq + i) * c->Lk + j]) return 0;
    return 1;
}

/* out (B,Hq,Lq,Dv) and, when dq is not NULL, the gradients dq, dk, dv and dbias (full, (B,Hq,Lq,Lk))
 * of sum(out ∘ dout). Returns the loss. */
static double ref_attention(const ref_in *in, double *out, double *dq, double *dk, double *dv, double *dbias) {
    const bcase *c = in->c;
    const int64_t lq = c->Lq, lk = c->Lk, dqk = c->Dqk, dvd = c->Dv, group = c->Hq / c->Hkv;
    const double scale = c->scale != 0 ? c->scale : 1.0 / sqrt((double)dqk);
    const uint32_t thr = c->p > 0 ? (uint32_t)((double)c->p * 4294967296.0) : 0;
    const double keep_scale = 1.0 / (1.0 - (double)c->p);
    double *P = malloc(sizeof(double) * (size_t)lk), *W = malloc(sizeof(double) * (size_t)lk);
    double *dS = malloc(sizeof(double) * (size_t)lk);
    double loss = 0;
    if (dq) {
        memset(dq, 0, sizeof(double) * (size_t)(c->B * c->Hq * lq * dqk));
        memset(dk, 0, sizeof(double) * (size_t)(c->B * c->Hkv * lk * dqk));
        memset(dv, 0, sizeof(double) * (size_t)(c->B * c->Hkv * lk * dvd));
        memset(dbias, 0, sizeof(double) * (size_t)(c->B * c->Hq * lq * lk));
    }
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->Hq; h++)
            for (int64_t i = 0; i < lq; i++) {
                const int64_t hk = h / group, row = (b * c->Hq + h) * lq + i;
                const double *qi = in->q + row * dqk, *dout = in->dout + row * dvd;
                const double *kb = in->k + (b * c->Hkv + hk) * lk * dqk, *vb = in->v + (b * c->Hkv + hk) * lk * dvd;
                const uint64_t counter = in->offset + (uint64_t)row * (uint64_t)lk;
                double m = -INFINITY;
                int any = 0, nan = 0;
                for (int64_t j = 0; j < lk; j++) {
                    P[j] = -INFINITY;
                    if (!visible(in, b, h, i, j)) continue;
                    double s = 0;
                    for (int64_t d = 0; d < dqk; d++) s += qi[d] * kb[j * dqk + d];
                    s = s * scale + (c->bias_kind != BIAS_NONE ? in->bias[row * lk + j] : 0);
                    P[j] = s;
                    if (isnan(s)) nan = 1;
                    if (s > m) m = s;
                    any = 1;
                }
                if (!any && c->masked_rows == ATTN_MASKED_ROWS_NAN) nan = 1;
                if (nan) {
                    for (int64_t j = 0; j < lk; j++) P[j] = W[j] = dS[j] = NAN;
                } else if (!any) {
                    for (int64_t j = 0; j < lk; j++) {
                        P[j] = dS[j] = 0;
                        const int keep = !thr || ref_bits(in->seed, counter + (uint64_t)j) >= thr;
                        W[j] = c->masked_rows == ATTN_MASKED_ROWS_MEAN && keep ? (thr ? keep_scale : 1.0) / (double)lk : 0;
                    }
                } else {
                    double sum = 0;
                    for (int64_t j = 0; j < lk; j++) sum += P[j] = exp(P[j] - m);
                    for (int64_t j = 0; j < lk; j++) {
                        P[j] /= sum;
                        const int keep = !thr || ref_bits(in->seed, counter + (uint64_t)j) >= thr;
                        W[j] = keep ? P[j] * (thr ? keep_scale : 1.0) : 0;
                    }
                }
                double *o = out + row * dvd;
                for (int64_t d = 0; d < dvd; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < lk; j++)
                        if (W[j] != 0) acc += W[j] * vb[j * dvd + d];
                    o[d] = acc;
                    loss += acc * dout[d];
                }
                if (!dq || (!nan && !any && c->masked_rows == ATTN_MASKED_ROWS_ZERO)) continue;
                if (!nan && any) {
                    double D = 0;
                    for (int64_t j = 0; j < lk; j++) {
                        if (P[j] == 0) { dS[j] = 0; continue; }
                        double dw = 0;
                        for (int64_t d = 0; d < dvd; d++) dw += dout[d] * vb[j * dvd + d];
                        dS[j] = W[j] != 0 ? dw * (thr ? keep_scale : 1.0) : 0; /* dP for now */
                        D += P[j] * dS[j];
                    }
                    for (int64_t j = 0; j < lk; j++) dS[j] = P[j] == 0 ? 0 : P[j] * (dS[j] - D);
                }
                for (int64_t j = 0; j < lk; j++) {
                    double *dkj = dk + ((b * c->Hkv + hk) * lk + j) * dqk, *dvj = dv + ((b * c->Hkv + hk) * lk + j) * dvd;
                    if (W[j] != 0)
                        for (int64_t d = 0; d < dvd; d++) dvj[d] += W[j] * dout[d];
                    if (dS[j] == 0) continue;
                    dbias[row * lk + j] = dS[j];
                    for (int64_t d = 0; d < dqk; d++) {
                        dq[row * dqk + d] += scale * dS[j] * kb[j * dqk + d];
                        dkj[d] += scale * dS[j] * qi[d];
                    }
                }
            }
    free(P);
    free(W);
    free(dS);
    return loss;
}

/* ---- one case through the library ------------------------------------------------------------- */

/* A strided float tensor (B, H, L, D) in its own buffer (or a packed one) and its logical copy. */
typedef struct ftensor {
    int64_t B, H, L, D, stride[3];
    float *base; /* the allocation (NULL when it lives in another tensor's buffer) */
    float *p;
    size_t floats;
} ftensor;

static void ft_alloc(ftensor *t, int64_t B, int64_t H, int64_t L, int64_t D, int layout, int64_t pad) {
    t->B = B; t->H = H; t->L = L; t->D = D;
    if (layout == 0) { /* (B, H, L, D + pad) */
        t->stride[2] = D + pad; t->stride[1] = L * (D + pad); t->stride[0] = H * L * (D + pad);
    } else { /* (B, L, H (D + pad)) */
        t->stride[1] = D + pad; t->stride[2] = H * (D + pad); t->stride[0] = L * H * (D + pad);
    }
    t->floats = (size_t)(B * t->stride[0]);
    t->base = t->p = malloc(sizeof(float) * t->floats);
    for (size_t x = 0; x < t->floats; x++) t->p[x] = -777.0f; /* padding: must stay */
}

static float *ft_at(const ftensor *t, int64_t b, int64_t h, int64_t l) {
    return t->p + b * t->stride[0] + h * t->stride[1] + l * t->stride[2];
}

static void ft_set(ftensor *t, const double *logical) {
    for (int64_t b = 0; b < t->B; b++)
        for (int64_t h = 0; h < t->H; h++)
            for (int64_t l = 0; l < t->L; l++)
                for (int64_t d = 0; d < t->D; d++) ft_at(t, b, h, l)[d] = (float)logical[((b * t->H + h) * t->L + l) * t->D + d];
}

static void ft_get(const ftensor *t, float *logical) {
    for (int64_t b = 0; b < t->B; b++)
        for (int64_t h = 0; h < t->H; h++)
            for (int64_t l = 0; l < t->L; l++)
                memcpy(logical + ((b * t->H + h) * t->L + l) * t->D, ft_at(t, b, h, l), sizeof(float) * (size_t)t->D);
}

static double *rand_doubles(tu_rng *r, size_t n, double lo, double hi) {
    double *x = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = tu_rng_uniform(r, (float)lo, (float)hi); /* float values, exact in double */
    return x;
}

/* Everything a case allocates. */
typedef struct bsetup {
    bcase c;
    ref_in in;
    ftensor q, k, v, out, dout, dq, dk, dv;
    float *packed, *bias, *lse, *dbias;
    uint8_t *mask;
    size_t packed_floats, dbias_floats;
    int64_t bias_stride[4];
    attn_backward_params bp;
} bsetup;

static void setup(bsetup *s, const bcase *c, tu_rng *r) {
    memset(s, 0, sizeof *s);
    s->c = *c;
    const int64_t B = c->B, Hq = c->Hq, Hkv = c->Hkv, Lq = c->Lq, Lk = c->Lk;
    ref_in *in = &s->in;
    in->c = &s->c;
    in->q = rand_doubles(r, (size_t)(B * Hq * Lq * c->Dqk), -1, 1);
    in->k = rand_doubles(r, (size_t)(B * Hkv * Lk * c->Dqk), -1, 1);
    in->v = rand_doubles(r, (size_t)(B * Hkv * Lk * c->Dv), -1, 1);
    in->dout = rand_doubles(r, (size_t)(B * Hq * Lq * c->Dv), -1, 1);
    if (c->huge) huge_inputs(c, in->q, in->k);
    if (c->nan_row) for (int64_t d = 0; d < c->Dqk; d++) in->q[(Lq - 1) * c->Dqk + d] = d == 0 ? NAN : in->q[(Lq - 1) * c->Dqk + d];
    const size_t scores = (size_t)(B * Hq * Lq * Lk);
    in->bias = calloc(scores, sizeof(double));
    in->mask = calloc(scores, 1);
    in->key_len = calloc((size_t)B, sizeof(int64_t));
    in->seed = tu_rng_u64(r);
    in->offset = tu_rng_u64(r) >> 8;
    bias_strides(c, s->bias_stride);
    if (c->bias_kind != BIAS_NONE) {
        const int64_t *bs = s->bias_stride;
        const size_t n = (size_t)((B - 1) * bs[0] + (Hq - 1) * bs[1] + (Lq - 1) * bs[2] + (Lk - 1) * bs[3] + 1);
        s->bias = malloc(sizeof(float) * n);
        for (size_t x = 0; x < n; x++) s->bias[x] = tu_rng_uniform(r, -1.5f, 1.5f);
        if (c->huge) /* BIAS_FULL */
            for (int64_t b = 0; b < B; b++) for (int64_t h = 0; h < Hq; h++) for (int64_t i = 0; i < Lq; i++) for (int64_t j = 0; j < Lk; j++) {
                float *e = &s->bias[((b * Hq + h) * Lq + i) * Lk + j];
                *e = (float)(nearbyint(*e * 8) / 8 + huge_bias(huge_kind(h, i), j));
            }
        for (int64_t b = 0; b < B; b++) for (int64_t h = 0; h < Hq; h++) for (int64_t i = 0; i < Lq; i++) for (int64_t j = 0; j < Lk; j++)
            in->bias[((b * Hq + h) * Lq + i) * Lk + j] = s->bias[b * bs[0] + h * bs[1] + i * bs[2] + j * bs[3]];
    }
    if (c->mask_kind != MASK_NONE) {
        /* MASK_FULL (b, h, i, j); MASK_KEYS (B, 1, 1, Lk) broadcast; about a quarter masked, and a
         * few fully masked rows (full) so every masked-row policy meets them. */
        s->mask = malloc(c->mask_kind == MASK_FULL ? scores : (size_t)(B * Lk));
        for (int64_t b = 0; b < B; b++) for (int64_t h = 0; h < Hq; h++) for (int64_t i = 0; i < Lq; i++) {
            /* huge: few empty rows, so that most tiles of the fused path are not sent to its exact
             * fallback by one (a row without lse), and some are */
            const int empty = c->mask_kind == MASK_FULL && (c->huge ? i % 37 == 36 : tu_rng_chance(r, 0.15));
            for (int64_t j = 0; j < Lk; j++) {
                uint8_t *m = c->mask_kind == MASK_FULL ? &s->mask[((b * Hq + h) * Lq + i) * Lk + j] : &s->mask[b * Lk + j];
                if (c->mask_kind == MASK_FULL || (h == 0 && i == 0)) *m = empty ? 0 : (uint8_t)tu_rng_chance(r, 0.75);
                in->mask[((b * Hq + h) * Lq + i) * Lk + j] = *m;
            }
        }
    }
    for (int64_t b = 0; b < B; b++) in->key_len[b] = tu_rng_range(r, 0, Lk);

    const int layout = c->packed || (c->pad & 2) ? 1 : 0, pad = c->pad & 1 ? 3 : 0;
    ft_alloc(&s->q, B, Hq, Lq, c->Dqk, layout, pad); ft_set(&s->q, in->q);
    ft_alloc(&s->k, B, Hkv, Lk, c->Dqk, layout, pad); ft_set(&s->k, in->k);
    ft_alloc(&s->v, B, Hkv, Lk, c->Dv, layout, pad); ft_set(&s->v, in->v);
    ft_alloc(&s->out, B, Hq, Lq, c->Dv, 0, pad);
    ft_alloc(&s->dout, B, Hq, Lq, c->Dv, layout, pad); ft_set(&s->dout, in->dout);
    if (c->packed) { /* dq, dk, dv into one (B, L, (Hq + 2 Hkv) D) buffer, slices along the heads */
        const int64_t D = c->Dqk, W = (Hq + 2 * Hkv) * D;
        s->packed_floats = (size_t)(B * Lq * W);
        s->packed = malloc(sizeof(float) * s->packed_floats);
        for (size_t x = 0; x < s->packed_floats; x++) s->packed[x] = -777.0f;
        ftensor *t[3] = {&s->dq, &s->dk, &s->dv};
        const int64_t heads[3] = {Hq, Hkv, Hkv}, first[3] = {0, Hq, Hq + Hkv};
        for (int n = 0; n < 3; n++) {
            t[n]->B = B; t[n]->H = heads[n]; t[n]->L = Lq; t[n]->D = D;
            t[n]->stride[0] = Lq * W; t[n]->stride[1] = D; t[n]->stride[2] = W;
            t[n]->p = s->packed + first[n] * D;
        }
    } else {
        ft_alloc(&s->dq, B, Hq, Lq, c->Dqk, 1 - layout, pad);
        ft_alloc(&s->dk, B, Hkv, Lk, c->Dqk, layout, pad);
        ft_alloc(&s->dv, B, Hkv, Lk, c->Dv, 1 - layout, pad);
    }
    s->lse = malloc(sizeof(float) * (size_t)(B * Hq * Lq));
    if (c->dbias) {
        s->dbias_floats = (size_t)((B - 1) * s->bias_stride[0] + (Hq - 1) * s->bias_stride[1] +
                                   (Lq - 1) * s->bias_stride[2] + (Lk - 1) * s->bias_stride[3] + 1);
        s->dbias = malloc(sizeof(float) * s->dbias_floats);
    }

    attn_params *a = &s->bp.forward;
    s->bp = attn_backward_params_default();
    a->batch = B; a->heads_q = Hq; a->heads_kv = Hkv; a->len_q = Lq; a->len_k = Lk; a->dim_qk = c->Dqk; a->dim_v = c->Dv;
    a->q = s->q.p; memcpy(a->q_stride, s->q.stride, sizeof a->q_stride);
    a->k = s->k.p; memcpy(a->k_stride, s->k.stride, sizeof a->k_stride);
    a->v = s->v.p; memcpy(a->v_stride, s->v.stride, sizeof a->v_stride);
    a->out = s->out.p; memcpy(a->out_stride, s->out.stride, sizeof a->out_stride);
    a->scale = c->scale;
    a->causal = (attn_causal)c->causal;
    a->window_left = c->wl; a->window_right = c->wr;
    a->key_len = c->key_len ? in->key_len : NULL;
    if (s->mask) {
        a->mask = s->mask;
        if (c->mask_kind == MASK_FULL) { a->mask_stride[0] = Hq * Lq * Lk; a->mask_stride[1] = Lq * Lk; a->mask_stride[2] = Lk; }
        else { a->mask_stride[0] = Lk; }
        a->mask_stride[3] = 1;
    }
    a->bias = s->bias; memcpy(a->bias_stride, s->bias_stride, sizeof a->bias_stride);
    a->dropout_p = c->p; a->dropout_seed = in->seed; a->dropout_offset = in->offset;
    a->masked_rows = (attn_masked_rows)c->masked_rows;
    a->lse = s->lse;
    s->bp.dout = s->dout.p; memcpy(s->bp.dout_stride, s->dout.stride, sizeof s->bp.dout_stride);
    s->bp.dq = s->dq.p; memcpy(s->bp.dq_stride, s->dq.stride, sizeof s->bp.dq_stride);
    s->bp.dk = s->dk.p; memcpy(s->bp.dk_stride, s->dk.stride, sizeof s->bp.dk_stride);
    s->bp.dv = s->dv.p; memcpy(s->bp.dv_stride, s->dv.stride, sizeof s->bp.dv_stride);
    s->bp.dbias = s->dbias; memcpy(s->bp.dbias_stride, s->bias_stride, sizeof s->bp.dbias_stride);
}

static void teardown(bsetup *s) {
    free(s->in.q); free(s->in.k); free(s->in.v); free(s->in.dout); free(s->in.bias); free(s->in.mask); free(s->in.key_len);
    free(s->q.base); free(s->k.base); free(s->v.base); free(s->out.base); free(s->dout.base);
    free(s->dq.base); free(s->dk.base); free(s->dv.base); free(s->packed);
    free(s->bias); free(s->lse); free(s->dbias); free(s->mask);
}

/* The library's outputs, as logical float arrays. */
typedef struct bgot {
    float *dq, *dk, *dv, *dbias;
} bgot;

static void collect(const bsetup *s, bgot *g) {
    const bcase *c = &s->c;
    g->dq = malloc(sizeof(float) * (size_t)(c->B * c->Hq * c->Lq * c->Dqk));
    g->dk = malloc(sizeof(float) * (size_t)(c->B * c->Hkv * c->Lk * c->Dqk));
    g->dv = malloc(sizeof(float) * (size_t)(c->B * c->Hkv * c->Lk * c->Dv));
    ft_get(&s->dq, g->dq); ft_get(&s->dk, g->dk); ft_get(&s->dv, g->dv);
    g->dbias = NULL;
    if (s->dbias) {
        g->dbias = malloc(sizeof(float) * s->dbias_floats);
        memcpy(g->dbias, s->dbias, sizeof(float) * s->dbias_floats);
    }
}

static void free_got(bgot *g) { free(g->dq); free(g->dk); free(g->dv); free(g->dbias); }

/* The full (B,Hq,Lq,Lk) reference dbias folded as the dbias strides say (a stride of 0 sums); with
 * absolute, the sum of the |values| folded onto each element (the scale of a float sum's error:
 * the gradients of a row's scores sum to 0, so a folded sum can cancel to nothing). */
static double *fold_dbias(const bsetup *s, const double *full, int absolute) {
    const bcase *c = &s->c;
    const int64_t *st = s->bias_stride;
    double *f = calloc(s->dbias_floats, sizeof(double));
    for (int64_t b = 0; b < c->B; b++) for (int64_t h = 0; h < c->Hq; h++) for (int64_t i = 0; i < c->Lq; i++) for (int64_t j = 0; j < c->Lk; j++)
        f[b * st[0] + h * st[1] + i * st[2] + j * st[3]] += absolute ? fabs(full[((b * c->Hq + h) * c->Lq + i) * c->Lk + j])
                                                                     : full[((b * c->Hq + h) * c->Lq + i) * c->Lk + j];
    return f;
}

/* Padding and guard elements of the packed or padded buffers still hold -777. */
static int padding_kept(const ftensor *t) {
    if (!t->base) return 1;
    size_t used = 0;
    for (size_t x = 0; x < t->floats; x++) used += t->p[x] != -777.0f;
    return used <= (size_t)(t->B * t->H * t->L * t->D);
}

/* The fused path's dq, dk and dv against the unfused path's (n floats each), as against the reference. */
static void compare_paths(const bgot *fused, const bgot *unfused, const size_t n[3], int idx, const char *desc) {
    const float *f[3] = {fused->dq, fused->dk, fused->dv}, *u[3] = {unfused->dq, unfused->dk, unfused->dv};
    for (int t = 0; t < 3; t++) {
        double *ref = malloc(sizeof(double) * (n[t] ? n[t] : 1));
        for (size_t e = 0; e < n[t]; e++) ref[e] = u[t][e];
        const tu_cmp cmp = tu_compare(f[t], ref, n[t], TOL_REL);
        TU_CHECK(cmp.ok, "case %d: fused %s against unfused: %zu of %zu beyond %.3g; worst [%zu] fused %.9g unfused %.9g; %s",
                 idx, g_worst_name[t], cmp.n_bad, n[t], cmp.tol, cmp.worst, cmp.got_worst, cmp.ref_worst, desc);
        free(ref);
    }
}

static int run_case(const bcase *c, int idx) {
    char desc[320];
    describe(c, desc, sizeof desc);
    tu_rng r = tu_rng_derive(g_seed, (uint64_t)idx);
    bsetup s;
    setup(&s, c, &r);
    const long failed0 = tu_failed_count;
    attn_status st = c->forward_unfused ? attn_forward_unfused(&s.bp.forward) : attn_forward(&s.bp.forward);
    if (!TU_CHECK(st == ATTN_OK, "case %d: forward status %d; %s", idx, st, desc)) { teardown(&s); return 0; }

    /* Each path on 1..8 threads, bitwise equal to itself on 1 thread, which is then compared with
     * the reference. */
    const size_t nq = (size_t)(c->B * c->Hq * c->Lq * c->Dqk), nk = (size_t)(c->B * c->Hkv * c->Lk * c->Dqk);
    const size_t nv = (size_t)(c->B * c->Hkv * c->Lk * c->Dv), nqkv[3] = {nq, nk, nv};
    bgot unfused = {0}; /* path 0's, for path 1 to be compared with */
    for (int path = 0; path < 2; path++) {
        bgot first = {0};
        for (int threads = 1; threads <= 8; threads++) {
            s.bp.forward.num_threads = threads;
            st = path ? attn_backward(&s.bp) : attn_backward_unfused(&s.bp);
            if (!TU_CHECK(st == ATTN_OK, "case %d: %s status %d (%s); %s", idx, path ? "fused" : "unfused", st,
                          attn_status_string(st), desc))
                break;
            bgot g;
            collect(&s, &g);
            if (!first.dq) { first = g; continue; }
            int same = !memcmp(g.dq, first.dq, nq * 4) && !memcmp(g.dk, first.dk, nk * 4) && !memcmp(g.dv, first.dv, nv * 4) &&
                       (!g.dbias || !memcmp(g.dbias, first.dbias, s.dbias_floats * 4));
            TU_CHECK(same, "case %d: %s on %d threads differs from 1 thread; %s", idx, path ? "fused" : "unfused",
                     threads, desc);
            free_got(&g);
        }
    if (first.dq) {
        const bcase *cc = &s.c;
        const size_t ns = (size_t)(cc->B * cc->Hq * cc->Lq * cc->Lk);
        double *out = malloc(sizeof(double) * (size_t)(cc->B * cc->Hq * cc->Lq * cc->Dv));
        double *dq = malloc(sizeof(double) * nq), *dk = malloc(sizeof(double) * nk), *dv = malloc(sizeof(double) * nv);
        double *dbias = malloc(sizeof(double) * ns);
        ref_attention(&s.in, out, dq, dk, dv, dbias);
        const float *got[4] = {first.dq, first.dk, first.dv, first.dbias};
        double *fold = s.dbias ? fold_dbias(&s, dbias, 0) : NULL, *fold_abs = s.dbias ? fold_dbias(&s, dbias, 1) : NULL;
        const double *ref[4] = {dq, dk, dv, fold};
        const size_t n[4] = {nq, nk, nv, s.dbias_floats};
        for (int t = 0; t < 4; t++) {
            if (!got[t]) continue;
            tu_cmp cmp = tu_compare(got[t], ref[t], n[t], TOL_REL);
            if (t == 3) { /* dbias: the tolerance scaled by the largest folded sum of |dS| instead */
                const double tol = TOL_REL * fmax(1, tu_max_abs_finite(fold_abs, n[t]));
                cmp.ok = 1;
                cmp.n_bad = 0;
                for (size_t e = 0; e < n[t]; e++)
                    if (!(isnan(ref[t][e]) ? isnan(got[t][e]) : fabs(got[t][e] - ref[t][e]) <= tol)) { cmp.ok = 0; cmp.n_bad++; }
                cmp.max_err = 0;
                for (size_t e = 0; e < n[t]; e++)
                    if (!isnan(ref[t][e])) cmp.max_err = fmax(cmp.max_err, fabs(got[t][e] - ref[t][e]));
                cmp.tol = tol;
            }
            const double ratio = cmp.max_err / cmp.tol;
            if (ratio > g_worst[t] && isfinite(ratio)) g_worst[t] = ratio;
            TU_CHECK(cmp.ok, "case %d: %s %s wrong: %zu of %zu beyond %.3g; worst [%zu] got %.9g ref %.9g; %s", idx,
                     path ? "fused" : "unfused", g_worst_name[t], cmp.n_bad, n[t], cmp.tol, cmp.worst, cmp.got_worst, cmp.ref_worst, desc);
            if (g_verbose) printf("  case %d %s: error/tol %.3f\n", idx, g_worst_name[t], ratio);
        }
        TU_CHECK(padding_kept(&s.dq) && padding_kept(&s.dk) && padding_kept(&s.dv), "case %d: padding written; %s", idx, desc);
        if (s.packed) {
            size_t used = 0;
            for (size_t x = 0; x < s.packed_floats; x++) used += s.packed[x] != -777.0f;
            TU_CHECK(used == s.packed_floats, "case %d: the packed gradient is not covered whole; %s", idx, desc);
        }
        free(out); free(dq); free(dk); free(dv); free(dbias); free(fold); free(fold_abs);
        if (!path) {
            unfused = first;
            continue;
        }
        if (unfused.dq) compare_paths(&first, &unfused, nqkv, idx, desc);
        free_got(&first);
    }
    }
    free_got(&unfused);
    teardown(&s);
    return tu_failed_count == failed0;
}

/* ---- finite differences ----------------------------------------------------------------------- */

/* Central differences of the reference loss in double for every element of q, k, v and the full
 * bias: against the reference's own gradient (FD_REL), and against the library's (TOL_REL). */
static void fd_case(const bcase *c, int idx) {
    char desc[320];
    describe(c, desc, sizeof desc);
    tu_rng r = tu_rng_derive(g_seed ^ 0xFD, (uint64_t)idx);
    bsetup s;
    setup(&s, c, &r);
    s.bp.forward.num_threads = 1;
    if (!TU_CHECK(attn_forward(&s.bp.forward) == ATTN_OK && attn_backward_unfused(&s.bp) == ATTN_OK,
                  "fd case %d: status; %s", idx, desc)) { teardown(&s); return; }
    bgot g;
    collect(&s, &g);
    const size_t nq = (size_t)(c->B * c->Hq * c->Lq * c->Dqk), nk = (size_t)(c->B * c->Hkv * c->Lk * c->Dqk);
    const size_t nv = (size_t)(c->B * c->Hkv * c->Lk * c->Dv), ns = (size_t)(c->B * c->Hq * c->Lq * c->Lk);
    double *out = malloc(sizeof(double) * (size_t)(c->B * c->Hq * c->Lq * c->Dv));
    double *dq = malloc(sizeof(double) * nq), *dk = malloc(sizeof(double) * nk), *dv = malloc(sizeof(double) * nv);
    double *dbias = malloc(sizeof(double) * ns);
    ref_attention(&s.in, out, dq, dk, dv, dbias);
    double *x[4] = {s.in.q, s.in.k, s.in.v, s.in.bias};
    const double *grad[4] = {dq, dk, dv, dbias};
    const size_t n[4] = {nq, nk, nv, c->bias_kind == BIAS_FULL ? ns : 0};
    const float *lib[4] = {g.dq, g.dk, g.dv, c->dbias && c->bias_kind == BIAS_FULL ? g.dbias : NULL};
    const double h = 1e-5;
    for (int t = 0; t < 4; t++) {
        if (!n[t]) continue;
        double *fd = malloc(sizeof(double) * n[t]);
        for (size_t e = 0; e < n[t]; e++) {
            const double x0 = x[t][e];
            x[t][e] = x0 + h;
            const double lp = ref_attention(&s.in, out, NULL, NULL, NULL, NULL);
            x[t][e] = x0 - h;
            const double lm = ref_attention(&s.in, out, NULL, NULL, NULL, NULL);
            x[t][e] = x0;
            fd[e] = (lp - lm) / (2 * h);
        }
        double worst = 0, scale = 1;
        for (size_t e = 0; e < n[t]; e++) scale = fmax(scale, fabs(fd[e]));
        for (size_t e = 0; e < n[t]; e++) worst = fmax(worst, fabs(fd[e] - grad[t][e]));
        TU_CHECK(worst <= FD_REL * scale, "fd case %d: %s reference vs differences %.3g > %.3g; %s", idx,
                 g_worst_name[t], worst, FD_REL * scale, desc);
        if (lib[t]) {
            tu_cmp cmp = tu_compare(lib[t], fd, n[t], TOL_REL);
            const double ratio = cmp.max_err / cmp.tol;
            if (ratio > g_worst[4]) g_worst[4] = ratio;
            TU_CHECK(cmp.ok, "fd case %d: %s library vs differences %.3g > %.3g; %s", idx, g_worst_name[t], cmp.max_err,
                     cmp.tol, desc);
        }
        free(fd);
    }
    free(out); free(dq); free(dk); free(dv); free(dbias);
    free_got(&g);
    teardown(&s);
}

/* ---- cases ------------------------------------------------------------------------------------ */

static bcase base_case(void) {
    bcase c;
    memset(&c, 0, sizeof c);
    c.B = 2; c.Hq = 2; c.Hkv = 1; c.Lq = 7; c.Lk = 9; c.Dqk = 5; c.Dv = 3;
    c.wl = c.wr = -1;
    return c;
}

static bcase random_case(tu_rng *r) {
    bcase c = base_case();
    static const int64_t groups[] = {1, 1, 2, 3, 4};
    c.B = tu_rng_range(r, 1, 3);
    c.Hkv = tu_rng_range(r, 1, 3);
    c.Hq = c.Hkv * TU_PICK(r, groups);
    c.Lq = tu_rng_chance(r, 0.15) ? 1 : tu_rng_range(r, 1, 40);
    c.Lk = tu_rng_chance(r, 0.15) ? 1 : tu_rng_range(r, 1, 40);
    if (tu_rng_chance(r, 0.15)) c.Lk = tu_rng_range(r, 60, 200); /* several of the fused path's key blocks */
    c.Dqk = tu_rng_range(r, 1, 33);
    c.Dv = tu_rng_chance(r, 0.3) ? c.Dqk : tu_rng_range(r, 1, 33);
    c.causal = (int)tu_rng_range(r, 0, 2);
    c.masked_rows = (int)tu_rng_range(r, 0, 2);
    c.bias_kind = (int)tu_rng_range(r, 0, BIAS_KINDS - 1);
    c.mask_kind = (int)tu_rng_range(r, 0, MASK_KINDS - 1);
    c.key_len = tu_rng_chance(r, 0.3);
    c.wl = tu_rng_chance(r, 0.25) ? tu_rng_range(r, 0, 12) : -1;
    c.wr = tu_rng_chance(r, 0.25) ? tu_rng_range(r, 0, 12) : -1;
    c.p = tu_rng_chance(r, 0.3) ? tu_rng_uniform(r, 0.05f, 0.6f) : 0.0f;
    c.scale = tu_rng_chance(r, 0.2) ? tu_rng_uniform(r, 0.1f, 1.0f) : 0.0f;
    c.pad = (int)tu_rng_range(r, 0, 3);
    c.dbias = tu_rng_chance(r, 0.7);
    if (tu_rng_chance(r, 0.15)) { c.Lk = c.Lq; c.Dv = c.Dqk; c.packed = 1; }
    return c;
}

static int directed_cases(bcase *out) {
    int n = 0;
    bcase c = base_case();
    out[n++] = c;
    for (int causal = 1; causal <= 2; causal++) { c = base_case(); c.causal = causal; out[n++] = c; c.Lq = 9; c.Lk = 4; out[n++] = c; }
    c = base_case(); c.Lq = 1; c.Lk = 1; out[n++] = c;
    c = base_case(); c.Lq = 1; c.Lk = 13; c.causal = 2; out[n++] = c;
    c = base_case(); c.wl = 2; c.wr = 1; out[n++] = c; c.causal = 1; out[n++] = c;
    for (int rows = 0; rows < 3; rows++) {
        c = base_case(); c.masked_rows = rows; c.key_len = 1; c.mask_kind = MASK_FULL; c.dbias = 1; c.bias_kind = BIAS_FULL; out[n++] = c;
        c.p = 0.3f; out[n++] = c;
        c.causal = 1; c.Lq = 11; c.Lk = 5; c.wl = 1; out[n++] = c; /* top-left rows past Lk see no key with the window */
    }
    for (int bias = 1; bias < BIAS_KINDS; bias++) { c = base_case(); c.bias_kind = bias; c.dbias = 1; c.Hq = 4; c.Hkv = 2; out[n++] = c; }
    c = base_case(); c.mask_kind = MASK_KEYS; c.Hq = 3; c.Hkv = 1; out[n++] = c;
    c = base_case(); c.Hq = 6; c.Hkv = 2; c.p = 0.5f; c.pad = 3; out[n++] = c;
    c = base_case(); c.Lk = c.Lq = 8; c.Dv = c.Dqk = 4; c.Hq = 4; c.Hkv = 2; c.packed = 1; c.causal = 1; out[n++] = c;
    c.Hkv = 4; c.dbias = 1; c.bias_kind = BIAS_QK; out[n++] = c;
    c = base_case(); c.Dqk = 64; c.Dv = 64; c.Lq = 33; c.Lk = 65; c.causal = 2; c.dbias = 1; c.bias_kind = BIAS_KEYS; out[n++] = c;
    /* Several key blocks (64) and query blocks (32) of the fused path, with skipped blocks. */
    for (int causal = 0; causal <= 2; causal++) {
        c = base_case(); c.Lq = 70; c.Lk = 150; c.causal = causal; c.Hq = 4; c.Hkv = 2; c.dbias = 1; c.bias_kind = BIAS_QK; out[n++] = c;
        c.Lq = 150; c.Lk = 70; c.wl = 20; c.wr = causal ? -1 : 9; c.mask_kind = MASK_FULL; c.masked_rows = causal; out[n++] = c;
        c.p = 0.2f; c.key_len = 1; c.bias_kind = BIAS_SCALAR; out[n++] = c;
    }
    /* The vector kernel's shapes: many tiles and stripes, a feature count that is not a whole
     * micro-tile (80: four vectors and one; 72 columns: twelve groups of 6), B·H = 1. */
    c = base_case(); c.B = 1; c.Hq = 1; c.Hkv = 1; c.Lq = c.Lk = 300; c.Dqk = 80; c.Dv = 72; c.causal = 1; out[n++] = c;
    c = base_case(); c.B = 1; c.Hq = 4; c.Hkv = 1; c.Lq = 130; c.Lk = 333; c.Dqk = 64; c.Dv = 64; c.causal = 2; c.wl = 100; out[n++] = c;
    c.p = 0.1f; c.bias_kind = BIAS_FULL; c.mask_kind = MASK_FULL; c.Hq = 2; out[n++] = c;
    /* Rows of large |lse| among ordinary ones (huge_kind), over several key blocks: the vector
     * kernel's tiles and, where a tile holds a row masked whole (every 37th), its exact fallback;
     * with a bias, and without one (only those rows in natural units), GQA, dropout, key lengths. */
    c = base_case(); c.huge = 1; c.scale = 1; c.bias_kind = BIAS_FULL; c.dbias = 1; c.Dqk = 8; c.Dv = 5;
    c.Lq = 70; c.Lk = 150; c.causal = 1; out[n++] = c;
    c.causal = 2; c.mask_kind = MASK_FULL; c.Hq = 4; c.Hkv = 2; out[n++] = c;
    c.causal = 0; c.Lq = 150; c.Lk = 70; c.p = 0.2f; c.key_len = 1; out[n++] = c;
    c = base_case(); c.huge = 1; c.scale = 1; c.forward_unfused = 1; c.Dqk = 8; c.Dv = 5; c.Lq = c.Lk = 130; c.causal = 1;
    out[n++] = c;
    c.causal = 2; c.Lk = 200; c.mask_kind = MASK_FULL; out[n++] = c;
    return n;
}

/* ---- NaN, errors, api ------------------------------------------------------------------------- */

static void nan_tests(void) {
    /* A NaN in q row (0, 0, Lq - 1): that dq row, dbias row and every dk / dv row of K/V head 0 of
     * batch 0 are NaN (the reference expects exactly that); batch 1 stays finite. */
    for (int rows = 0; rows < 3; rows++) {
        bcase c = base_case();
        c.nan_row = 1; c.masked_rows = rows; c.dbias = 1; c.bias_kind = BIAS_FULL;
        run_case(&c, 900 + rows);
        tu_rng r = tu_rng_derive(g_seed, 900 + (uint64_t)rows);
        bsetup s;
        setup(&s, &c, &r);
        attn_forward(&s.bp.forward);
        attn_backward_unfused(&s.bp);
        int ok = isnan(ft_at(&s.dq, 0, 0, c.Lq - 1)[0]) && isnan(ft_at(&s.dk, 0, 0, 0)[0]) && isnan(ft_at(&s.dv, 0, 0, c.Lk - 1)[0]) &&
                 isfinite(ft_at(&s.dq, 1, 0, 0)[0]) && isfinite(ft_at(&s.dk, 1, 0, 0)[0]) && isnan(s.dbias[c.Lq * c.Lk - 1]);
        TU_CHECK(ok, "NaN row (masked_rows %d) did not propagate as documented", rows);
        teardown(&s);
    }
}

/* The row that showed the fused and unfused backward using lse as if it held log l: B = Hq = Hkv =
 * Lq = 1, Lk = 4, D = 2, a bias of -FLT_MAX on every key (one row broadcast, strides {0, 0, 0, 1}).
 * Every score rounds to -FLT_MAX, so the weights are uniform, 1/4, and lse = -FLT_MAX + ln 4 is
 * -FLT_MAX: exp(s - lse) made each weight 1, and every gradient 4 times too large. Exact: dv_j =
 * dout / 4; dP = dout · v_j = (1, -0.5, 0.5, -2), D = -1/4, so dS = (dP - D) / 4 = (5, -1, 3, -7) / 16
 * (dbias), dq = scale Σ_j dS_j k_j and dk_j = scale dS_j q. Both paths, threads 1 and 2. */
static void lse_rounding_test(void) {
    float q[2] = {0.5f, -1}, k[8] = {1, 2, -1, 0.5f, 0.25f, 1, -2, 1}, v[8] = {1, 0, 0, 1, 1, 1, -1, 2};
    float bias[4] = {-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX}, out[2], lse[1], dout[2] = {1, -0.5f};
    float dq[2], dk[8], dv[8], dbias[4];
    attn_backward_params bp = attn_backward_params_default();
    attn_params *a = &bp.forward;
    a->batch = a->heads_q = a->heads_kv = a->len_q = 1;
    a->len_k = 4; a->dim_qk = a->dim_v = 2;
    const int64_t s1[3] = {2, 2, 2}, s4[3] = {8, 8, 2}, keys[4] = {0, 0, 0, 1};
    a->q = q; memcpy(a->q_stride, s1, sizeof s1);
    a->k = k; memcpy(a->k_stride, s4, sizeof s4);
    a->v = v; memcpy(a->v_stride, s4, sizeof s4);
    a->out = out; memcpy(a->out_stride, s1, sizeof s1);
    a->bias = bias; memcpy(a->bias_stride, keys, sizeof keys);
    a->lse = lse;
    TU_CHECK(attn_forward(a) == ATTN_OK && lse[0] == -FLT_MAX, "lse rounding: forward (lse %.9g)", (double)lse[0]);
    bp.dout = dout; memcpy(bp.dout_stride, s1, sizeof s1);
    bp.dq = dq; memcpy(bp.dq_stride, s1, sizeof s1);
    bp.dk = dk; memcpy(bp.dk_stride, s4, sizeof s4);
    bp.dv = dv; memcpy(bp.dv_stride, s4, sizeof s4);
    bp.dbias = dbias; memcpy(bp.dbias_stride, keys, sizeof keys);
    const double scale = 1 / sqrt(2.0), ds[4] = {5 / 16.0, -1 / 16.0, 3 / 16.0, -7 / 16.0};
    double want_dq[2] = {0, 0}, want_dk[8], want_dv[8];
    for (int j = 0; j < 4; j++)
        for (int c = 0; c < 2; c++) {
            want_dq[c] += scale * ds[j] * k[2 * j + c];
            want_dk[2 * j + c] = scale * ds[j] * q[c];
            want_dv[2 * j + c] = dout[c] / 4;
        }
    for (int run = 0; run < 4; run++) {
        a->num_threads = 1 + run % 2;
        const attn_status st = run < 2 ? attn_backward_unfused(&bp) : attn_backward(&bp);
        const tu_cmp cq = tu_compare(dq, want_dq, 2, TOL_REL), ck = tu_compare(dk, want_dk, 8, TOL_REL);
        const tu_cmp cv = tu_compare(dv, want_dv, 8, TOL_REL), cb = tu_compare(dbias, ds, 4, TOL_REL);
        TU_CHECK(st == ATTN_OK && cq.ok && ck.ok && cv.ok && cb.ok,
                 "lse rounding, %s on %d threads: status %d, dv[0] (%.9g, %.9g) want (0.25, -0.125), dbias[0] %.9g "
                 "want 0.3125, errors dq %.3g dk %.3g", run < 2 ? "unfused" : "fused", a->num_threads, st, (double)dv[0],
                 (double)dv[1], (double)dbias[0], cq.max_err, ck.max_err);
    }
}

/* A weight of 0 reads nothing (attn.h): NaN in k and inf in v at keys no row sees (causal top-left,
 * Lq < Lk), and NaN in dout row 0, which sees key 0 only. Only dq row 0 and dk, dv row 0 turn NaN;
 * the keys nobody sees get 0; both paths, over several key blocks and query tiles. */
static void hidden_nonfinite_test(void) {
    bcase c = base_case();
    c.B = 1; c.Hq = 2; c.Hkv = 1; c.Lq = 150; c.Lk = 200; c.Dqk = 16; c.Dv = 8; c.causal = 1;
    tu_rng r = tu_rng_derive(g_seed, 950);
    bsetup s;
    setup(&s, &c, &r);
    ft_at(&s.k, 0, 0, 199)[3] = NAN;
    ft_at(&s.v, 0, 0, 170)[1] = INFINITY;
    ft_at(&s.dout, 0, 1, 0)[2] = NAN;
    TU_CHECK(attn_forward(&s.bp.forward) == ATTN_OK, "hidden non-finite: forward");
    for (int path = 0; path < 2; path++) {
        const attn_status st = path ? attn_backward(&s.bp) : attn_backward_unfused(&s.bp);
        int ok = st == ATTN_OK && isnan(ft_at(&s.dq, 0, 1, 0)[0]) && isnan(ft_at(&s.dk, 0, 0, 0)[0]) &&
                 isnan(ft_at(&s.dv, 0, 0, 0)[2]);
        for (int64_t h = 0; h < 2; h++)
            for (int64_t i = h; i < c.Lq; i++)
                for (int64_t d = 0; d < c.Dqk; d++) ok &= isfinite(ft_at(&s.dq, 0, h, i)[d]);
        for (int64_t j = 1; j < c.Lk; j++) {
            for (int64_t d = 0; d < c.Dqk; d++) ok &= j < c.Lq ? isfinite(ft_at(&s.dk, 0, 0, j)[d]) : ft_at(&s.dk, 0, 0, j)[d] == 0.0f;
            for (int64_t d = 0; d < c.Dv; d++) ok &= j < c.Lq ? isfinite(ft_at(&s.dv, 0, 0, j)[d]) : ft_at(&s.dv, 0, 0, j)[d] == 0.0f;
        }
        TU_CHECK(ok, "%s: a non-finite input where the weight is 0 reached a gradient", path ? "fused" : "unfused");
    }
    teardown(&s);
}

/* Calls the backward on a broken copy of a valid problem: the status, and nothing written. */
static void expect_status(bsetup *s, const attn_backward_params *bp, attn_status want, const char *what) {
    const size_t nq = (size_t)(s->c.B * s->dq.stride[0]), nk = (size_t)(s->c.B * s->dk.stride[0]);
    const size_t nv = (size_t)(s->c.B * s->dv.stride[0]);
    for (size_t x = 0; x < nq; x++) s->dq.p[x] = 1234.5f;
    for (size_t x = 0; x < nk; x++) s->dk.p[x] = 1234.5f;
    for (size_t x = 0; x < nv; x++) s->dv.p[x] = 1234.5f;
    for (size_t x = 0; x < s->dbias_floats; x++) s->dbias[x] = 1234.5f;
    const attn_status st = attn_backward_unfused(bp), st_fused = attn_backward(bp);
    size_t bytes = 0;
    const attn_status ws = attn_backward_unfused_workspace(bp, &bytes), ws_fused = attn_backward_workspace(bp, &bytes);
    int kept = 1;
    for (size_t x = 0; x < nq; x++) kept &= s->dq.p[x] == 1234.5f;
    for (size_t x = 0; x < nk; x++) kept &= s->dk.p[x] == 1234.5f;
    for (size_t x = 0; x < nv; x++) kept &= s->dv.p[x] == 1234.5f;
    for (size_t x = 0; x < s->dbias_floats; x++) kept &= s->dbias[x] == 1234.5f;
    TU_CHECK(st == want, "%s: status %d (%s), want %d (%s)", what, st, attn_status_string(st), want, attn_status_string(want));
    TU_CHECK(ws == want, "%s: workspace status %d, want %d", what, ws, want);
    TU_CHECK(st_fused == want && ws_fused == want, "%s: fused status %d, workspace %d, want %d", what, st_fused, ws_fused, want);
    TU_CHECK(kept || want == ATTN_OK, "%s: outputs written on error", what);
}

/* attn_backward_workspace of a 1 x 1 x L x 4 problem on 2 threads (0 on error). */
static size_t fused_workspace_of(int64_t len) {
    attn_backward_params bp = attn_backward_params_default();
    attn_params *a = &bp.forward;
    a->batch = a->heads_q = a->heads_kv = 1;
    a->len_q = a->len_k = len;
    a->dim_qk = a->dim_v = 4;
    const int64_t stride[3] = {len * 4, len * 4, 4};
    const uintptr_t far = (uintptr_t)1 << 36;
    a->q = a->k = a->v = bp.dout = (const void *)far;
    a->out = (void *)far;
    a->lse = (float *)(2 * far);
    bp.dq = (void *)(3 * far); bp.dk = (void *)(4 * far); bp.dv = (void *)(5 * far);
    memcpy(a->q_stride, stride, sizeof stride); memcpy(a->k_stride, stride, sizeof stride);
    memcpy(a->v_stride, stride, sizeof stride); memcpy(a->out_stride, stride, sizeof stride);
    memcpy(bp.dout_stride, stride, sizeof stride); memcpy(bp.dq_stride, stride, sizeof stride);
    memcpy(bp.dk_stride, stride, sizeof stride); memcpy(bp.dv_stride, stride, sizeof stride);
    a->num_threads = 2;
    size_t bytes = 0;
    return attn_backward_workspace(&bp, &bytes) == ATTN_OK ? bytes : 0;
}

static void error_tests(void) {
    bcase c = base_case();
    c.dbias = 1; c.bias_kind = BIAS_FULL; c.Hq = 4; c.Hkv = 2;
    tu_rng r = tu_rng_derive(g_seed, 999);
    bsetup s;
    setup(&s, &c, &r);
    TU_CHECK(attn_forward(&s.bp.forward) == ATTN_OK, "errors: forward");
    attn_backward_params bp;
    size_t bytes = 0;
    TU_CHECK(attn_backward_unfused_workspace(&s.bp, &bytes) == ATTN_OK && bytes > 0, "workspace of a valid problem");
    TU_CHECK(attn_backward_unfused_workspace(&s.bp, NULL) == ATTN_ERR_NULL_POINTER, "workspace bytes NULL");
    TU_CHECK(attn_backward_unfused(NULL) == ATTN_ERR_NULL_POINTER && attn_backward(NULL) == ATTN_ERR_NULL_POINTER,
             "params NULL");
    TU_CHECK(attn_backward_workspace(&s.bp, NULL) == ATTN_ERR_NULL_POINTER, "fused workspace bytes NULL");
    if (UINTPTR_MAX > 0xFFFFFFFFu) {
        /* The fused workspace grows with the lengths only by what it keeps per query row: D and
         * the lse shift (a float each), its flags (a byte) and dq's partial sums (at most 8 stripes
         * of Dqk rounded up to a vector, 16 floats here): sized, never run (the tensors are never
         * read, so their addresses are made up, far apart). */
        const size_t w1k = fused_workspace_of(1024), w1m = fused_workspace_of(1 << 20);
        const size_t per_row = 2 * sizeof(float) + 1 + 8 * 16 * sizeof(float);
        TU_CHECK(w1k > 0 && w1m > 0 && w1m <= w1k + (((size_t)1 << 20) - 1024) * per_row,
                 "fused workspace grows with L: %zu bytes at L = 1024, %zu at L = 2^20", w1k, w1m);
    }
#define BROKEN(want, what, change) do { bp = s.bp; change; expect_status(&s, &bp, want, what); } while (0)
    BROKEN(ATTN_OK, "valid", (void)0);
    BROKEN(ATTN_ERR_INVALID_ARGUMENT, "struct_size 0", bp.struct_size = 0);
    BROKEN(ATTN_ERR_INVALID_ARGUMENT, "struct_size + 8", bp.struct_size += 8);
    BROKEN(ATTN_ERR_INVALID_ARGUMENT, "forward.struct_size 3", bp.forward.struct_size = 3);
    BROKEN(ATTN_ERR_INVALID_ARGUMENT, "batch 0", bp.forward.batch = 0);
    BROKEN(ATTN_ERR_INVALID_ARGUMENT, "Hq % Hkv", bp.forward.heads_kv = 3);
    BROKEN(ATTN_ERR_INVALID_ARGUMENT, "dropout 1", bp.forward.dropout_p = 1.0f);
    BROKEN(ATTN_ERR_INVALID_ARGUMENT, "masked_rows 7", bp.forward.masked_rows = (attn_masked_rows)7);
    BROKEN(ATTN_ERR_NULL_POINTER, "forward.q NULL", bp.forward.q = NULL);
    BROKEN(ATTN_ERR_NULL_POINTER, "forward.out NULL", bp.forward.out = NULL);
    BROKEN(ATTN_ERR_NULL_POINTER, "forward.lse NULL", bp.forward.lse = NULL);
    BROKEN(ATTN_ERR_NULL_POINTER, "dout NULL", bp.dout = NULL);
    BROKEN(ATTN_ERR_NULL_POINTER, "dq NULL", bp.dq = NULL);
    BROKEN(ATTN_ERR_NULL_POINTER, "dk NULL", bp.dk = NULL);
    BROKEN(ATTN_ERR_NULL_POINTER, "dv NULL", bp.dv = NULL);
    BROKEN(ATTN_ERR_UNSUPPORTED, "q f16", bp.forward.q_dtype = ATTN_DTYPE_F16);
    BROKEN(ATTN_ERR_UNSUPPORTED, "out bf16", bp.forward.out_dtype = ATTN_DTYPE_BF16);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "forward.k_stride negative", bp.forward.k_stride[1] = -1);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dout_stride negative", bp.dout_stride[2] = -1);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dq_stride negative", bp.dq_stride[0] = -5);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dbias_stride negative", bp.dbias_stride[3] = -1);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dk == dq", bp.dk = bp.dq; memcpy(bp.dk_stride, bp.dq_stride, sizeof bp.dk_stride));
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dv == dk", bp.dv = bp.dk; memcpy(bp.dv_stride, bp.dk_stride, sizeof bp.dv_stride));
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dq rows overlapping", bp.dq_stride[2] = c.Dqk - 1);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dk heads overlapping", bp.dk_stride[1] = 0);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dv one row past dk's start", bp.dv = (float *)bp.dk + 1; bp.dv_stride[0] = bp.dk_stride[0];
           bp.dv_stride[1] = bp.dk_stride[1]; bp.dv_stride[2] = bp.dk_stride[2]);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dbias rows overlapping", bp.dbias_stride[2] = 1);
    BROKEN(ATTN_ERR_INVALID_STRIDE, "dbias inside dq", bp.dbias = (float *)bp.dq + 2; bp.dbias_stride[0] = bp.dbias_stride[1] = 0;
           bp.dbias_stride[2] = bp.dbias_stride[3] = 0);
    BROKEN(ATTN_ERR_OVERFLOW, "dq_stride overflow", bp.dq_stride[0] = INT64_MAX / 2);
    BROKEN(ATTN_ERR_OVERFLOW, "dbias_stride overflow", bp.dbias_stride[1] = INT64_MAX / 3);
    BROKEN(ATTN_ERR_OVERFLOW, "dv_stride overflow", bp.dv_stride[2] = INT64_MAX / 4);
    BROKEN(ATTN_OK, "dbias NULL", bp.dbias = NULL);
    BROKEN(ATTN_OK, "dbias all strides 0 (one sum)", bp.dbias_stride[0] = bp.dbias_stride[1] = bp.dbias_stride[2] = bp.dbias_stride[3] = 0);
#undef BROKEN
    teardown(&s);

    attn_backward_params d = attn_backward_params_default();
    attn_params f = attn_params_default();
    TU_CHECK(d.struct_size == sizeof d && d.forward.struct_size == f.struct_size && d.forward.window_left == -1 &&
             d.forward.window_right == -1 && d.forward.batch == 0 && d.forward.lse == NULL && d.dout == NULL && d.dq == NULL && d.dk == NULL &&
             d.dv == NULL && d.dbias == NULL && d.dq_stride[0] == 0 && d.dbias_stride[3] == 0,
             "attn_backward_params_default() is not the forward's default with every other field 0");
}

/* A dbias whose range holds a one-row dq given zero strides (B = Hq = Lq = 1, strides {0, 0, 0}, a
 * valid layout) overlaps it: INVALID_STRIDE from both paths, nothing written. Before this was checked,
 * validation compared the strides of dq with dbias's stand-in {0, 0, 0}, took the two for slices of
 * one tensor and accepted them (found while writing fuzz_backward). */
static void dbias_overlap_tests(void) {
    float q[2] = {0.5f, -1}, k[8] = {1, 2, -1, 0.5f, 0.25f, 1, -2, 1}, v[8] = {1, 0, 0, 1, 1, 1, -1, 2};
    float out[2], lse[1], dout[2] = {1, -0.5f}, dk[8], dv[8], arena[8];
    attn_backward_params bp = attn_backward_params_default();
    attn_params *a = &bp.forward;
    a->batch = a->heads_q = a->heads_kv = a->len_q = 1;
    a->len_k = 4; a->dim_qk = a->dim_v = 2;
    const int64_t sq[3] = {0, 0, 0}, sk[3] = {8, 8, 2};
    a->q = q; memcpy(a->q_stride, sq, sizeof sq);
    a->k = k; memcpy(a->k_stride, sk, sizeof sk);
    a->v = v; memcpy(a->v_stride, sk, sizeof sk);
    a->out = out; memcpy(a->out_stride, sq, sizeof sq);
    a->lse = lse;
    TU_CHECK(attn_forward(a) == ATTN_OK, "dbias overlap: forward");
    bp.dout = dout; memcpy(bp.dout_stride, sq, sizeof sq);
    bp.dk = dk; memcpy(bp.dk_stride, sk, sizeof sk);
    bp.dv = dv; memcpy(bp.dv_stride, sk, sizeof sk);
    memcpy(bp.dq_stride, sq, sizeof sq);
    bp.dbias = arena; bp.dbias_stride[3] = 1; /* dbias[j] = arena[j], j < 4 */
    for (int where = 0; where < 3; where++) {
        /* dq at arena + 1 (inside dbias), arena + 4 (just past it: valid), arena + 2 with dbias's
         * elements spread out (stride 2: dq's two floats fall between and on them) */
        bp.dq = arena + (where == 1 ? 4 : where == 0 ? 1 : 2);
        bp.dbias_stride[3] = where == 2 ? 2 : 1;
        const attn_status want = where == 1 ? ATTN_OK : ATTN_ERR_INVALID_STRIDE;
        for (int x = 0; x < 8; x++) arena[x] = 1234.5f;
        const attn_status su = attn_backward_unfused(&bp), sf = attn_backward(&bp);
        int kept = 1;
        for (int x = 0; x < 8; x++) kept &= arena[x] == 1234.5f;
        TU_CHECK(su == want && sf == want, "dbias overlap %d: status unfused %d, fused %d, want %d", where, su, sf, want);
        TU_CHECK(want == ATTN_OK || kept, "dbias overlap %d: written on error", where);
    }
}

int main(int argc, char **argv) {
    int n_random = 300;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--seed") && a + 1 < argc) tu_parse_u64(argv[++a], &g_seed);
        else if (!strcmp(argv[a], "--random") && a + 1 < argc) n_random = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--verbose")) g_verbose = 1;
        else { printf("usage: %s [--seed N] [--random N] [--verbose]\n", argv[0]); return 2; }
    }
    const double t0 = tu_now();
    printf("test_backward: libattn %s, seed %llu (override: --seed N); forward on %s\n", attn_version(),
           (unsigned long long)g_seed, attn_isa_name(attn_get_isa()));
    long p0 = tu_passed_count, f0 = tu_failed_count;
    error_tests();
    dbias_overlap_tests();
    printf("error statuses and api: %ld checks, %ld failed\n", tu_passed_count - p0 + tu_failed_count - f0, tu_failed_count - f0);

    /* Every instruction set this CPU runs (the vector kernel of the fused path is per ISA): the
     * native one last, with the full random count. */
    bcase cases[64];
    const int nd = directed_cases(cases);
    const attn_isa native = attn_get_isa(), isas[] = {ATTN_ISA_SCALAR, ATTN_ISA_NEON, ATTN_ISA_AVX2, ATTN_ISA_AVX512};
    for (size_t k = 0; k <= sizeof isas / sizeof isas[0]; k++) {
        const attn_isa isa = k < sizeof isas / sizeof isas[0] ? isas[k] : native;
        if (k < sizeof isas / sizeof isas[0] && (isa == native || !attn_isa_supported(isa))) continue;
        TU_CHECK(attn_set_isa(isa) == ATTN_OK, "set isa %s", attn_isa_name(isa));
        const int randoms = isa == native ? n_random : n_random / 3;
        p0 = tu_passed_count; f0 = tu_failed_count;
        for (int i = 0; i < nd; i++) run_case(&cases[i], i);
        tu_rng r = tu_rng_derive(g_seed, 0x5EED + k);
        for (int i = 0; i < randoms; i++) {
            const bcase c = random_case(&r);
            run_case(&c, nd + i);
        }
        printf("%s: %d directed, %d random cases, threads 1..8 each: %ld checks, %ld failed\n", attn_isa_name(isa), nd,
               randoms, tu_passed_count - p0 + tu_failed_count - f0, tu_failed_count - f0);
        p0 = tu_passed_count; f0 = tu_failed_count;
        nan_tests();
        hidden_nonfinite_test();
        lse_rounding_test();
        printf("%s: NaN propagation, lse rounding: %ld checks, %ld failed\n", attn_isa_name(isa),
               tu_passed_count - p0 + tu_failed_count - f0, tu_failed_count - f0);
    }

    p0 = tu_passed_count; f0 = tu_failed_count;
    for (int rows = 0; rows < 3; rows++) {
        bcase c = base_case();
        c.B = 1; c.Hq = 2; c.Hkv = 1; c.Lq = 4; c.Lk = 5; c.Dqk = 3; c.Dv = 2;
        c.masked_rows = rows; c.bias_kind = BIAS_FULL; c.dbias = 1; c.causal = rows == 1 ? 2 : 0;
        c.mask_kind = rows == ATTN_MASKED_ROWS_NAN ? MASK_NONE : MASK_FULL; /* a NaN row would make the loss NaN */
        c.p = rows == 2 ? 0.25f : 0.0f;
        fd_case(&c, rows);
        c.Hq = 2; c.Hkv = 2; c.key_len = rows != ATTN_MASKED_ROWS_NAN; c.wl = 1; c.wr = 1; c.mask_kind = MASK_NONE;
        fd_case(&c, 10 + rows);
    }
    printf("finite differences (double reference, h = 1e-5): %ld checks, %ld failed\n",
           tu_passed_count - p0 + tu_failed_count - f0, tu_failed_count - f0);

    printf("largest error / tolerance (tolerance %.0e * max(1, max|ref|)):", TOL_REL);
    for (int t = 0; t < 5; t++) printf(" %s %.3f", g_worst_name[t], g_worst[t]);
    printf("\ntime %.1f s\n", tu_now() - t0);
    return tu_summary();
}
