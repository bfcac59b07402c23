/*
 * attn.h: fused, flash-style attention kernels for the CPU, and the dense kernels around them.
 *
 * C99. Every entry point takes its inputs through a parameter struct, returns an attn_status and
 * never aborts, asserts or prints. On any error nothing is written to the outputs. Inputs are never
 * modified. The library allocates only per-call workspace (documented per function) and frees it
 * before returning.
 *
 * Tensors are float32 (attention's q, k, v and out may also be half precision: attn_dtype) and
 * described by element strides; the innermost (feature) dimension is always contiguous. Strides must
 * be non-negative; a stride of 0 broadcasts along that dimension (inputs only).
 */
#ifndef ATTN_H
#define ATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(ATTN_SHARED_BUILD)
#define ATTN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define ATTN_API __attribute__((visibility("default")))
#else
#define ATTN_API
#endif

/* 1.0.0 changed the signatures of attn_layer_norm, attn_activate, attn_gated_activate,
 * attn_softmax_rows and attn_mean_rows (positional arguments before, a parameter struct now, so that
 * they can grow as the others do): a program built against 0.x calls them wrongly, so the soname's
 * major number changed (libattn.so.0 -> libattn.so.1). The other entry points are as in 0.3.0
 * (attn_rotary_params gained appended fields), and their 0.x struct sizes are still accepted. */
#define ATTN_VERSION_MAJOR 1
#define ATTN_VERSION_MINOR 0
#define ATTN_VERSION_PATCH 0
#define ATTN_VERSION_STRING "1.0.0"

/*
 * A binary interface that can grow. The parameter structs (attn_params, attn_matmul_params,
 * attn_rotary_params, attn_layer_norm_params, attn_activate_params, attn_gated_activate_params,
 * attn_softmax_rows_params, attn_mean_rows_params, attn_reduce_rows_params, attn_backward_params,
 * attn_sum_columns_params, attn_layer_norm_backward_params, attn_activate_backward_params,
 * attn_gated_activate_backward_params, attn_softmax_rows_backward_params,
 * attn_mean_rows_backward_params, attn_cross_entropy_params, attn_optimizer_step_params) begin
 * with `size_t struct_size`, which their
 * *_default() function sets to the sizeof of the struct this header declares. Every entry point
 * taking one reads struct_size first:
 *   - a size that is not the sizeof of a layout some release of this library declared (0, garbage,
 *     or a layout from a newer header than the library) is ATTN_ERR_INVALID_ARGUMENT;
 *   - the size of an older layout reads only that prefix, and the fields added since take their
 *     default values; so a program built against an older attn.h keeps working with a newer
 *     libattn.so.1.
 * Callers: start every struct from its *_default() function and never set struct_size by hand.
 * The library: fields are only appended, each release's first new field placed at or after the
 * previous layout's sizeof (its tail padding included); every released size stays accepted; a change
 * that cannot follow these rules changes the soname's major number (libattn.so.1 now: see
 * ATTN_VERSION_MAJOR).
 */

/* ---------------------------------------------------------------------------------------------- */
/* Status codes                                                                                    */

typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_NULL_POINTER = 1,     /* a required pointer is NULL */
    ATTN_ERR_INVALID_ARGUMENT = 2, /* a size, enum, probability, window or key length out of range */
    ATTN_ERR_INVALID_STRIDE = 3,   /* a negative stride, or output rows that would overlap */
    ATTN_ERR_OVERFLOW = 4,         /* a size or offset product does not fit in size_t / int64_t */
    ATTN_ERR_OUT_OF_MEMORY = 5,    /* workspace allocation failed */
    ATTN_ERR_UNSUPPORTED = 6       /* e.g. an instruction set this CPU or build does not have */
} attn_status;

/* A static, human-readable description of a status ("invalid argument", ...). Never NULL. */
ATTN_API const char *attn_status_string(attn_status status);

/* The library's version as "MAJOR.MINOR.PATCH" (the built library, not the header). */
ATTN_API const char *attn_version(void);

/* ---------------------------------------------------------------------------------------------- */
/* Instruction set and threads                                                                     */

typedef enum attn_isa {
    ATTN_ISA_SCALAR = 0, /* portable C compiled for the baseline target (SSE2 on x86-64) */
    ATTN_ISA_NEON = 1,   /* arm64: the portable path compiled with NEON */
    ATTN_ISA_AVX2 = 2,   /* x86-64 AVX2 + FMA + F16C */
    ATTN_ISA_AVX512 = 3  /* x86-64 AVX-512 F/BW/VL + FMA + F16C */
} attn_isa;

/* The instruction set the kernels use. Chosen once, on first use: the best the CPU supports, or the
 * one named by the environment variable ATTN_ISA=scalar|neon|avx2|avx512 when that is supported
 * (a name the CPU does not support, or an unknown name, is ignored). */
ATTN_API attn_isa attn_get_isa(void);

/* Forces an instruction set for later calls (tests and benchmarks). ATTN_ERR_UNSUPPORTED when the
 * CPU or this build does not have it; ATTN_ERR_INVALID_ARGUMENT for a value outside the enum.
 * Not meant to be called while other threads run kernels. */
ATTN_API attn_status attn_set_isa(attn_isa isa);

/* Whether this CPU and build can run `isa`. */
ATTN_API int attn_isa_supported(attn_isa isa);

/* "scalar", "neon", "avx2", "avx512", or "unknown". */
ATTN_API const char *attn_isa_name(attn_isa isa);

/* How attention forms bf16 x bf16 products when q, k and v are all bf16 and the tile kernel runs
 * (prefill: more than a few query rows; decoding always widens). Chosen once, on first use: NATIVE
 * when the CPU has it, else OFF; the environment variable ATTN_BF16_DOT=off|native|emulated
 * overrides that when supported; attn_set_bf16_dot overrides both. Mixed types (f32 q over bf16
 * k, say) and f16 always widen. */
typedef enum attn_bf16_dot {
    ATTN_BF16_DOT_OFF = 0,      /* widened to float, as every other type */
    ATTN_BF16_DOT_NATIVE = 1,   /* VDPBF16PS on bf16 pairs, with P rounded to bf16 (see attn_params);
                                   needs AVX512_BF16 (CPUID.(7,1):EAX[5]: Zen 4, Sapphire Rapids and
                                   later, not Zen 3) and takes effect on the avx512 instruction set:
                                   under ATTN_ISA=avx2 or scalar the products are widened */
    ATTN_BF16_DOT_EMULATED = 2  /* the same arithmetic in portable code, on every instruction set and
                                   CPU: the bits NATIVE gives (NaN payloads aside), many times slower
                                   (tests of that path on CPUs without the instruction) */
} attn_bf16_dot;

ATTN_API attn_bf16_dot attn_get_bf16_dot(void);

/* ATTN_ERR_UNSUPPORTED when the CPU or this build cannot (only NATIVE can be unsupported);
 * ATTN_ERR_INVALID_ARGUMENT outside the enum. Not meant to be called while other threads run kernels. */
ATTN_API attn_status attn_set_bf16_dot(attn_bf16_dot mode);

/* Whether this CPU and build can use `mode`. */
ATTN_API int attn_bf16_dot_supported(attn_bf16_dot mode);

/* "off", "native", "emulated", or "unknown". */
ATTN_API const char *attn_bf16_dot_name(attn_bf16_dot mode);

/* The most threads a call may use. */
#define ATTN_MAX_THREADS 1024

/* Threads used by calls whose own num_threads is 0 (at most ATTN_MAX_THREADS). 0 restores the default (the OpenMP default,
 * normally the number of cores, or the number of online CPUs without OpenMP). Negative: invalid. */
ATTN_API attn_status attn_set_num_threads(int num_threads);
ATTN_API int attn_get_num_threads(void);

/* ---------------------------------------------------------------------------------------------- */
/* Element types                                                                                   */

/* How a tensor's elements are stored (attention's q, k, v and out; attn_matmul's weights B).
 * Half-precision inputs are widened to float exactly; products,
 * the softmax and every sum are computed in float; a half-precision output is rounded to nearest,
 * ties to even, once, from the float result. NaN stays NaN (same sign, its payload's top bits,
 * quieted: f16 -> f32, f32 -> f16 and f32 -> bf16 set the quiet bit; bf16 -> f32 is the exact
 * 16-bit shift), infinities stay infinite, subnormals are kept (never flushed), and a float beyond
 * the type's largest finite value rounds to infinity as IEEE 754 says. Conversions give the same
 * bits on every instruction set. */
typedef enum attn_dtype {
    ATTN_DTYPE_F32 = 0,  /* IEEE binary32 */
    ATTN_DTYPE_F16 = 1,  /* IEEE binary16 (torch.float16) as uint16_t bits: 5 exponent, 10 mantissa bits */
    ATTN_DTYPE_BF16 = 2  /* bfloat16 (torch.bfloat16) as uint16_t bits: binary32's upper 16 bits */
} attn_dtype;

/* Bytes per element of `dtype`: 4, 2, 2; 0 for a value outside the enum. */
ATTN_API size_t attn_dtype_size(attn_dtype dtype);

/* dst[i] = src[i] converted, for i < count (count >= 0), as described above; dst and src must not
 * overlap. The conversions the kernels use, on the current instruction set (so also for tests and
 * for preparing half-precision caches). Single-threaded. */
ATTN_API attn_status attn_convert(void *dst, attn_dtype dst_dtype, const void *src, attn_dtype src_dtype,
                                  int64_t count);

/* ---------------------------------------------------------------------------------------------- */
/* Attention                                                                                       */

/* Causal masking. Query i (0-based) of Lq sees key j of Lk when:
 *   ATTN_CAUSAL_TOP_LEFT:     j <= i                 (PyTorch's is_causal, tril(ones(Lq, Lk)))
 *   ATTN_CAUSAL_BOTTOM_RIGHT: j <= i + (Lk - Lq)     (a decoder whose Lq newest queries follow a
 *                                                     cache of Lk keys; FlashAttention's causal) */
typedef enum attn_causal {
    ATTN_CAUSAL_NONE = 0,
    ATTN_CAUSAL_TOP_LEFT = 1,
    ATTN_CAUSAL_BOTTOM_RIGHT = 2
} attn_causal;

/* What a query row with no visible key (every score masked by any mechanism) produces. */
typedef enum attn_masked_rows {
    ATTN_MASKED_ROWS_ZERO = 0, /* zeros; PyTorch SDPA >= 2.5 and FlashAttention. log-sum-exp -inf */
    ATTN_MASKED_ROWS_NAN = 1,  /* NaN; a plain softmax over -inf (PyTorch's need_weights path) */
    ATTN_MASKED_ROWS_MEAN = 2  /* the mean of V over all Lk keys (dropout applied to the uniform
                                  weights): Equinox and Flax, which mask with the most negative
                                  finite float, so a fully masked row's softmax is uniform */
} attn_masked_rows;

/*
 * One attention problem: out = softmax(scale * Q Kᵀ + bias, masked) V, per batch b and query head h.
 *
 * Shapes (logical):  q (B, Hq, Lq, Dqk)   k (B, Hkv, Lk, Dqk)   v (B, Hkv, Lk, Dv)   out (B, Hq, Lq, Dv)
 * Every size is at least 1 (ATTN_ERR_INVALID_ARGUMENT otherwise); Dqk and Dv are below ATTN_MAX_DIM
 * (2^46; ATTN_ERR_OVERFLOW otherwise).
 * Each of q, k, v, out has element strides {batch, head, position}; the feature dimension is
 * contiguous. So projected activations laid out as (B, L, H*D) are read in place with strides
 * {L*H*D, D, H*D}. Query head h reads K/V head h / (Hq / Hkv) (grouped-query and multi-query
 * attention; Hq % Hkv must be 0).
 *
 * Masking. Score (b, h, i, j) is masked (treated as -inf) when any of these holds:
 *   - causal (see attn_causal);
 *   - window: with a = i + off, where off = 0 for ATTN_CAUSAL_TOP_LEFT and Lk - Lq otherwise,
 *     j < a - window_left (when window_left >= 0) or j > a + window_right (when window_right >= 0);
 *     -1 means unbounded on that side. So without causal masking (ATTN_CAUSAL_NONE) a window is
 *     aligned bottom-right, as under ATTN_CAUSAL_BOTTOM_RIGHT: the last query is centred on the last key;
 *   - key_len != NULL and j >= key_len[b] (0 <= key_len[b] <= Lk);
 *   - mask != NULL and mask[b*ms[0] + h*ms[1] + i*ms[2] + j*ms[3]] == 0 (nonzero = attend);
 * and the bias, when given, is added to the scaled score: + bias[b*bs[0] + h*bs[1] + i*bs[2] + j*bs[3]]
 * (-inf allowed, which masks). Mask and bias strides are in elements and may be 0 to broadcast, so
 * (Lq, Lk), (Hq, Lq, Lk), (B, 1, 1, Lk) ... are all expressible. Here h is the query head.
 *
 * Dropout (dropout_p > 0): the softmax weights are computed first; then weight (b, h, i, j) is kept
 * when attn_dropout_bits(seed, offset + ((b*Hq + h)*Lq + i)*Lk + j) >= attn_dropout_threshold(p)
 * and kept weights are multiplied by 1/(1-p). The decision depends only on those coordinates, so
 * results are identical for any thread count or tiling, and fused and unfused agree exactly.
 *
 * Optional output lse (B, Hq, Lq), contiguous: the natural log of each row's sum of exp(scores), for
 * the backward pass; -inf for a row with no visible key, whatever masked_rows says (even where the
 * output is the mean of V).
 *
 * NaN: a row with a NaN score (NaN in its query, in one of its visible keys or in its bias), or a
 * +inf score, is NaN in out and in lse, on both paths, whatever dropout keeps. A NaN or infinity
 * in a value row reaches every row that attends it; in a row that does not (masked), it may still
 * reach out as NaN, never as a wrong finite number: its weight 0 multiplies it (0 · NaN is NaN) on
 * the unfused path and in key blocks the fused path computes in part, as weights · V does in
 * PyTorch's and JAX's reference math. Blocks skipped whole are never read. Masking does not
 * sanitise values; lse never depends on them.
 *
 * Element types: q, k, v and out each have their own attn_dtype (q_dtype ...; 0 is float32), in
 * any combination (float queries over a bf16 cache, say); their strides count elements of that type.
 * Half-precision inputs are widened exactly, everything is computed in float as for float32 inputs
 * (except bf16 q, k and v on the bf16 dot-product path, below), and a half-precision out is rounded to nearest even once. The bias, lse and the softmax stay
 * float32. Against the exact (double) attention of the inputs as stored, each output element is
 * within tol · max(1, max |out|) (the largest over the call) with, by out_dtype:
 *   ATTN_DTYPE_F32:  tol = 1e-5   (float accumulation; what the tests hold every path to)
 *   ATTN_DTYPE_F16:  tol = 5e-4   (that plus half an f16 ulp, 2^-11 relative)
 *   ATTN_DTYPE_BF16: tol = 4e-3   (that plus half a bf16 ulp, 2^-8 relative)
 * for scores of moderate size (|scale · q·k| up to a few tens) and head dimensions up to 512; lse
 * keeps float32's tolerance whatever the types.
 * With q, k and v all bf16 on the bf16 dot-product path (attn_bf16_dot NATIVE or EMULATED, the tile
 * kernel): Q·Kᵀ is computed from exact products of bf16 pairs summed in float, as above; the softmax
 * weights P are rounded to bf16 (nearest even) for P·V while their sum l is not, so each output
 * element moves by at most half a bf16 ulp of every weight: add 2^-9 · max |v| (0.00195 · max |v|)
 * to the bound above (measured against the widened path with v uniform in [-1, 1]: 8e-5 at
 * L = 4096, D = 128 without a mask, up to 1.4e-3 in causal rows that see only a few keys, where
 * single weights are large). Products are in the order the instruction takes them (per pair, the
 * second element's product first) and each step is rounded, so the sums differ from the widened
 * path's in the last bits. The instruction reads subnormal bf16 inputs (|x| < 2^-126, in q, k, v
 * or P) as zero and flushes products and partial sums below 2^-126 to zero, whatever MXCSR says:
 * a subnormal element contributes nothing (it would have added less than 2^-126 times its partner,
 * invisible unless the partner is above about 2^100).
 *
 * Aliasing: out and lse must not overlap q, k, v, mask, bias, key_len or each other.
 * Start from attn_params_default(), which sets struct_size, the windows to -1 and everything else to 0.
 */
/* The largest head dimension (Dqk, Dv) is ATTN_MAX_DIM - 1. */
#define ATTN_MAX_DIM ((int64_t)1 << 46)

typedef struct attn_params {
    size_t struct_size;           /* sizeof(attn_params), set by attn_params_default() */
    int64_t batch, heads_q, heads_kv, len_q, len_k, dim_qk, dim_v;

    const void *q;    int64_t q_stride[3];   /* {batch, head, position}, elements of q_dtype */
    const void *k;    int64_t k_stride[3];
    const void *v;    int64_t v_stride[3];
    void *out;        int64_t out_stride[3];

    float scale;                  /* multiplies Q·Kᵀ; 0 means 1/sqrt(dim_qk) */
    attn_causal causal;
    int64_t window_left, window_right;   /* -1: unbounded */
    const int64_t *key_len;              /* (B,) or NULL */
    const uint8_t *mask;  int64_t mask_stride[4]; /* (b, h, i, j), nonzero = attend; or NULL */
    const float *bias;    int64_t bias_stride[4]; /* (b, h, i, j), added; or NULL */

    float dropout_p;              /* in [0, 1) */
    uint64_t dropout_seed, dropout_offset;

    attn_masked_rows masked_rows;
    float *lse;                   /* (B, Hq, Lq) contiguous, or NULL */

    int num_threads;              /* 0: attn_get_num_threads(); at most ATTN_MAX_THREADS */

    /* Since 0.3.0 (an older caller's struct reads them as 0, float32). The padding puts them past
     * the 0.2.0 layout's sizeof: its tail padding, which old callers never cleared, is not read. */
    int reserved_0_3;             /* ignored */
    attn_dtype q_dtype, k_dtype, v_dtype, out_dtype;
} attn_params;

/* Defaults: struct_size, window_left = window_right = -1, and every other field 0 / NULL. */
ATTN_API attn_params attn_params_default(void);

/* Checks a problem without running it or reading its tensors: exactly the status attn_forward would
 * return, except ATTN_ERR_OUT_OF_MEMORY (which only the allocation can tell). Reads key_len. */
ATTN_API attn_status attn_validate(const attn_params *params);

/* The fused kernel: tiles of queries against blocks of keys with an online softmax; the full
 * score matrix never exists. Workspace: one tile per thread (a few hundred rows of Dqk + Dv floats),
 * independent of Lq and Lk; when Lq is only a few rows (decoding), keys are split into at most 32
 * chunks merged by log-sum-exp, which adds B*Hq*Lq*chunks*(Dv + 2) floats. */
ATTN_API attn_status attn_forward(const attn_params *params);

/* The unfused reference path with identical semantics: for one (b, h) at a time it materialises the
 * Lq x Lk scores with a matrix multiply, masks, applies a row softmax and multiplies by V.
 * Workspace: threads x Lq x Lk floats, plus per thread one (b, h)'s float copy of each of q, k, v
 * and out that is half precision (the products run on floats). */
ATTN_API attn_status attn_forward_unfused(const attn_params *params);

/* The workspace, in bytes, that attn_forward / attn_forward_unfused would allocate for params with
 * the thread count they would use (the library's only memory beyond the caller's buffers). */
ATTN_API attn_status attn_forward_workspace(const attn_params *params, size_t *bytes);
ATTN_API attn_status attn_forward_unfused_workspace(const attn_params *params, size_t *bytes);

/* The counter-based hash behind dropout: splitmix64 of state = seed + (counter + 1) * 0x9E3779B97F4A7C15,
 *   z = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *   z ^= z >> 31; return (uint32_t)(z >> 32);
 * and the keep threshold: (uint32_t)(p * 4294967296.0) for p in [0, 1). */
ATTN_API uint32_t attn_dropout_bits(uint64_t seed, uint64_t counter);
ATTN_API uint32_t attn_dropout_threshold(float p);

/*
 * Attention backward: the gradients of sum(out ∘ dout) with respect to q, k, v and the bias, for the
 * forward problem `forward` describes, exactly as attn_forward or attn_forward_unfused ran it (every
 * feature: both causal alignments, windows, key lengths, boolean masks, the bias with any broadcast,
 * GQA/MQA, dropout, any strides, each masked-row policy). forward.out and forward.lse must hold what
 * that call wrote (lse NULL: ATTN_ERR_NULL_POINTER); the weights are recomputed from lse, and D =
 * rowsum(dout ∘ out) is read from out. Nothing of the forward is stored beyond out and lse: dropout's
 * keep decisions are recomputed from its hash (attn_dropout_bits), the same ones the forward drew.
 *
 * Shapes (logical), strides {batch, head, position} as the forward's, features contiguous:
 *   dout (B, Hq, Lq, Dv)    like out, read
 *   dq   (B, Hq, Lq, Dqk)   like q, written (not accumulated)
 *   dk   (B, Hkv, Lk, Dqk)  like k, written; summed over the Hq / Hkv query heads sharing a K/V head
 *   dv   (B, Hkv, Lk, Dv)   like v, written; likewise summed
 *   dbias (b, h, i, j) at strides dbias_stride, or NULL (not computed): the gradient of the additive
 *     bias (computed whether or not forward.bias is given: that of a zero bias then). A stride of 0
 *     sums the gradient along that dimension, so a bias broadcast from (Lq, Lk) as strides
 *     {0, 0, Lk, 1} gets its (Lq, Lk) gradient, and {0, 0, 0, 0} a single sum.
 * dout, dq, dk, dv and dbias are float32; so must forward's q, k, v and out be for now (half
 * precision: ATTN_ERR_UNSUPPORTED). Strides must be non-negative; an output's rows must not overlap
 * one another (dbias: elements that differ in a dimension of non-zero stride must be distinct), and
 * the outputs must not overlap each other (dk == dq, say): ATTN_ERR_INVALID_STRIDE. Two outputs are
 * accepted when their address ranges are disjoint, or when, with the same strides, they are slices of
 * one tensor along one dimension (heads, positions, batch or features): so dq, dk and dv written
 * interleaved into one packed (B, L, (Hq + 2 Hkv) D) projection gradient are valid (dbias: only a
 * range disjoint from theirs, from its first to its last element). The outputs must
 * not overlap any input (not checked). Validation, overflow checks and "nothing written on error" as attn_forward.
 *
 * Semantics, per query row i of (b, h), with P_j = exp(s_j - lse_i) the softmax weight of key j
 * (s_j the masked, biased, scaled score), W_j = P_j after dropout (0 or P_j / (1 - p)) and D_i =
 * dout_i · out_i:  dv_j += W_j dout_i;  dP_j = dout_i · v_j after dropout's keep and 1/(1 - p);
 * dS_j = P_j (dP_j - D_i);  dbias_ij = dS_j;  dq_i = scale Σ_j dS_j k_j;  dk_j += scale dS_j q_i.
 * Where |lse_i| >= 64, lse_i is recomputed in double over the row's visible keys (one more pass
 * over them), as a float lse cannot hold all of log Σ_j exp(s_j): its rounding scales the row's
 * weights by up to 2^-11 at 1e4 and 3 % at 1e6, and makes them 1 each instead of 1/n where all n
 * visible keys have a bias of -FLT_MAX (the Equinox/Flax mask value), as lse rounds to -FLT_MAX.
 * Below 64 it is used as is (its rounding: at most 2^-19 of each weight).
 * A key with weight 0 (masked, or not visible) contributes nothing to the row and is not read for it.
 * Rows with no visible key (lse -inf), by forward.masked_rows:
 *   ATTN_MASKED_ROWS_ZERO: the row contributes nothing (its dq row and dbias row are 0);
 *   ATTN_MASKED_ROWS_MEAN: its uniform weights 1/Lk (with dropout, as the forward applied them) reach
 *     dv (dv_j += W_j dout_i); nothing reaches dq, dk or dbias, as where the scores are a constant;
 *   ATTN_MASKED_ROWS_NAN:  its weights are NaN (a softmax over -inf), so its dq row and dbias row are
 *     NaN, and so is every dk and dv row of its K/V head in batch b.
 * A row whose lse is NaN (NaN in its query, a visible key or its bias) is treated the same way as a
 * NaN masked row, whatever dropout kept: NaN propagates as the math does. Every sum is in float.
 *
 * attn_backward, the fused path (FlashAttention-2's loop order, vector kernels per ISA): D_i and
 * the rows' flags once per row; then the key blocks (64 keys) of each (b, K/V head) are dealt into
 * stripes (block k into stripe k mod S, S = ceil(8 / (B·Hkv)) at most the block count, so it
 * depends on the shape only), one work item per stripe: per block it packs K and V once, then for
 * each tile of 24 query rows of the group's heads that sees the block recomputes P from lse, forms
 * dP, dS and W in two tiles and adds dV += Wᵀ dout, dK += dSᵀ q and its stripe's partial
 * dQ += dS K (tiles above the causal diagonal, outside the window or past key_len skipped whole);
 * then dq = scale Σ partials in stripe order. A tile meeting a non-finite q, k, v or dout, or a row
 * without a finite lse, is done element by element as the reference does, so a weight of 0 never
 * reads such a value. dbias: written by the tiles when no dbias stride is 0; otherwise the tiles
 * keep the whole dS (B, Hq, Lq, Lk) in the workspace and a pass folds it. No atomics: each output
 * element is summed by one work item in a fixed order, the same bits for any thread count, and
 * parallel even at B·H = 1. Workspace: per thread about 64 x (3 Dqk + 2 Dv + 50) floats;
 * shared, per query row, D and the lse correction (a float each), a flag (a byte) and S partial dq
 * rows of Dqk rounded up to a vector; with a folded dbias, B·Hq·Lq·Lk floats more.
 * attn_backward_unfused is the reference: plain float loops, one row at a time against every key;
 * parallel over the (b, K/V head) groups; it then computes dbias, when asked for, in parallel over
 * its distinct elements, each summing the rows a stride of 0 folds onto it in (b, h, i) order.
 * Workspace: threads x 3 x Lk floats. The two paths sum in different orders, and the fused one's
 * order depends on the ISA's vector width, so results differ in the last bits between paths and
 * ISAs; on one path and ISA they are the same bits for any thread count. Against the exact
 * gradient, each output is
 * within 2e-5 · max(1, max |gradient|) (dbias: of the largest sum of |dS| folded onto one element)
 * at the tests' sizes (L up to 333, D up to 80).
 * Start from attn_backward_params_default(): struct_size, forward = attn_params_default(), and every
 * other field 0 / NULL.
 */
typedef struct attn_backward_params {
    size_t struct_size;          /* set by attn_backward_params_default() */
    attn_params forward;         /* the problem exactly as attn_forward ran it; forward.out and
                                    forward.lse must hold what it wrote (lse: ATTN_ERR_NULL_POINTER
                                    when NULL) */
    const void *dout; int64_t dout_stride[3];   /* like out: gradient of the loss w.r.t. out */
    void *dq; int64_t dq_stride[3];             /* like q; written, not accumulated */
    void *dk; int64_t dk_stride[3];             /* like k (Hkv heads: summed over the query heads
                                                   that share a K/V head) */
    void *dv; int64_t dv_stride[3];             /* like v */
    float *dbias; int64_t dbias_stride[4];      /* optional (NULL: not computed); the gradient of
                                                   the additive bias; a stride of 0 sums the
                                                   gradient along that dimension, so a bias
                                                   broadcast from (Lq, Lk) gets an (Lq, Lk) gradient */
} attn_backward_params;

ATTN_API attn_backward_params attn_backward_params_default(void);
ATTN_API attn_status attn_backward(const attn_backward_params *params);          /* fused */
ATTN_API attn_status attn_backward_unfused(const attn_backward_params *params);  /* reference */

/* The workspace, in bytes, that attn_backward / attn_backward_unfused would allocate for params with
 * the thread count they would use; the same statuses as those calls except ATTN_ERR_OUT_OF_MEMORY. */
ATTN_API attn_status attn_backward_workspace(const attn_backward_params *params, size_t *bytes);
ATTN_API attn_status attn_backward_unfused_workspace(const attn_backward_params *params, size_t *bytes);

/* ---------------------------------------------------------------------------------------------- */
/* Dense kernels                                                                                   */

/*
 * Matrix multiply: C = A·B (+ bias) or, with accumulate, C += A·B (+ bias).
 *   a (M, K), row stride lda >= K; or, when a_transposed, a holds Aᵀ as (K, M) with lda >= M
 *   b (K, N), row stride ldb >= N; or, when b_transposed, b holds Bᵀ as (N, K) with ldb >= K
 *     (PyTorch's Linear weight); its elements are b_dtype: float32 by default, or f16 / bf16 bits
 *     (uint16_t), so Linear layers can keep half-precision weights. Strides count elements.
 *   c (M, N), row stride ldc >= N; must not overlap a, b or bias
 *   bias (N,) added to every row, or NULL
 * A, bias and C are float32 and every product and sum is float32: a 16-bit weight is widened
 * exactly, so the result is that of the float32 product with the weights as stored. Accuracy, per
 * element, against the exact sum over the weights as stored: |error| <= 1e-5 * (sum_k |a b| +
 * |bias| + |c|) for every b_dtype (the test bound; float32 summation of up to a few thousand terms).
 * Against float32 weights rounded to f16 or bf16, add each weight's rounding: relative 2^-11 (f16)
 * or 2^-8 (bf16) of sum_k |a b| at most, and f16 turns |b| >= 65520 into infinity.
 * ATTN_MATMUL_BF16_PRODUCTS in flags (b_dtype ATTN_DTYPE_BF16 only, else ATTN_ERR_INVALID_ARGUMENT):
 * A is rounded to bf16 (nearest even, as attn_convert) before it is multiplied, as frameworks
 * running a bf16 model do, so every product is of two bf16 values, exact in float32. With more than
 * 32 rows and attn_bf16_dot NATIVE on the avx512 instruction set they are formed by VDPBF16PS on
 * pairs of depth steps (twice the float32 multiply-adds per instruction); EMULATED runs its portable
 * model (the same bits); otherwise, and always for 32 rows or fewer (decoding, bound by reading B),
 * they are summed by float32 multiply-adds. The bound above then holds against the exact sum over
 * A rounded to bf16 and B as stored, except that VDPBF16PS and its model read subnormal inputs and
 * sums as zero (attn_bf16_dot); against A itself add each element's rounding, relative 2^-9 of
 * sum_k |a b| at most. The result depends on the mode and the instruction set, never on the thread
 * count.
 * Few rows (M <= 32): each thread computes a share of the columns of C straight from B, which is
 * read once and not copied (16-bit weights are widened in registers): no workspace. More rows:
 * packed and blocked; all threads share each packed block of B (converted to float32 while
 * packing) and split the rows of A and C. Workspace: one packed block of B (1 MB) and, per thread,
 * one packed block of A (about 0.3 MB).
 */
typedef struct attn_matmul_params {
    size_t struct_size;  /* sizeof(attn_matmul_params), set by attn_matmul_params_default() */
    int64_t m, n, k;
    const float *a; int64_t lda;
    const void *b;  int64_t ldb; int b_transposed;
    float *c;       int64_t ldc;
    const float *bias;
    int accumulate;
    int num_threads; /* 0: attn_get_num_threads() */
    /* Appended after 0.2.0 (a 0.2.0 struct reads as ATTN_DTYPE_F32): */
    attn_dtype b_dtype;
    /* Appended after b_dtype, 8 bytes so that it starts past that layout's tail padding (a struct
     * ending at b_dtype reads as 0): attn_matmul_flag bits; any other bit is
     * ATTN_ERR_INVALID_ARGUMENT. */
    uint64_t flags;
    /* Appended after flags (a struct ending at flags reads it as 0): when nonzero, a holds Aᵀ as
     * (K, M) with lda >= M, so that a weight gradient dB = Aᵀ·dC (accumulate to sum over steps) is
     * one call. Aᵀ is first copied into an (M, K) workspace of M·K floats (in parallel, nothing written
     * to c before the copy succeeds), then multiplied as above: the result is bitwise that of the
     * call with that copy as a. */
    int a_transposed;
} attn_matmul_params;

typedef enum attn_matmul_flag {
    ATTN_MATMUL_BF16_PRODUCTS = 1 /* A rounded to bf16, products of bf16 pairs (see below) */
} attn_matmul_flag;

/* Defaults: struct_size, b_dtype ATTN_DTYPE_F32, and every other field 0 / NULL. */
ATTN_API attn_matmul_params attn_matmul_params_default(void);
/* Gradients of C = A·B + bias for a loss with gradient dC (M, N), each one attn_matmul call:
 *   dA (M, K) = dC·Bᵀ: a = dC, b = B with b_transposed flipped (B (K, N) is Bᵀ's (N, K) layout);
 *   dB (K, N) = Aᵀ·dC: a = A with a_transposed, b = dC; or, for a weight stored transposed (PyTorch's
 *     Linear, (N, K)), dBᵀ = dCᵀ·A: a = dC with a_transposed, b = A;
 *   d(bias) (N,) = the column sums of dC: attn_sum_columns (below).
 * accumulate adds into the gradient, as llm.c's matmul_backward does. */

ATTN_API attn_status attn_matmul(const attn_matmul_params *params);

/* Column sums, the bias gradient of attn_matmul (and of any op adding a row vector):
 *   out[j] = sum over r of x[r, j] (+ out[j] when accumulate), for x (rows, n), row stride ld >= n,
 *   out (n,) not overlapping x. Each column is summed in double in row order and rounded to float
 *   once (accumulate: out[j] + that sum, in double, rounded once); threads split the columns, so the
 *   result does not depend on the thread count. rows >= 1, n >= 1 (else ATTN_ERR_INVALID_ARGUMENT);
 *   nothing is written on error. */
typedef struct attn_sum_columns_params {
    size_t struct_size;  /* sizeof(attn_sum_columns_params), set by attn_sum_columns_params_default() */
    int64_t rows, n;
    float *out;          /* (n,) */
    const float *x;   int64_t ld;
    int accumulate;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_sum_columns_params;

/* Defaults: struct_size, and every other field 0 / NULL. */
ATTN_API attn_sum_columns_params attn_sum_columns_params_default(void);

ATTN_API attn_status attn_sum_columns(const attn_sum_columns_params *params);

/*
 * Layer norm over the last dimension: for each of `rows` rows of n elements,
 *   y = (x - mean) / sqrt(var + eps) * weight + bias
 * with the biased variance. ATTN_VARIANCE_TWO_PASS computes it as mean((x - mean)^2), as PyTorch
 * and Equinox do; ATTN_VARIANCE_FAST as max(0, mean(x^2) - mean^2), as Flax does by default.
 * ATTN_VARIANCE_RMS centres nothing: y = x / sqrt(mean(x^2) + eps) * weight + bias, the RMSNorm of
 * T5 and Llama (there an infinity in a row gives NaN in its place and 0 elsewhere, as x times
 * rsqrt(inf) does in float; a NaN, a NaN row).
 *   x (rows, n), row stride ld_x >= n
 *   out (rows, n), row stride ld_out >= n; may equal x (in place, then with ld_out == ld_x) but must
 *     not otherwise overlap it
 *   weight, bias (n,), each may be NULL (scale 1, shift 0)
 *   mean, rstd (rows,), each may be NULL: the statistics a backward pass needs (llm.c's
 *     layernorm_forward), each row's mean (0 for RMS) and rstd = 1/sqrt(var + eps) (RMS:
 *     1/sqrt(mean(x^2) + eps)), the values the row was normalised with, computed in double and
 *     rounded to float once. A row with a NaN or an infinity has an rstd of NaN (RMS: NaN with a
 *     NaN, else 0 with an infinity) and a mean that is not finite (RMS: 0). They must not overlap
 *     x, out or each other.
 * eps >= 0 and finite. Start from attn_layer_norm_params_default() (eps 1e-5, PyTorch's default).
 */
typedef enum attn_variance { ATTN_VARIANCE_TWO_PASS = 0, ATTN_VARIANCE_FAST = 1, ATTN_VARIANCE_RMS = 2 } attn_variance;

typedef struct attn_layer_norm_params {
    size_t struct_size;  /* sizeof(attn_layer_norm_params), set by attn_layer_norm_params_default() */
    int64_t rows, n;
    float *out;       int64_t ld_out;
    const float *x;   int64_t ld_x;
    const float *weight, *bias;  /* (n,) or NULL */
    float eps;
    attn_variance variance;
    float *mean, *rstd;          /* (rows,) or NULL */
    int num_threads;             /* 0: attn_get_num_threads() */
} attn_layer_norm_params;

/* Defaults: struct_size, eps = 1e-5, ATTN_VARIANCE_TWO_PASS, and every other field 0 / NULL. */
ATTN_API attn_layer_norm_params attn_layer_norm_params_default(void);

ATTN_API attn_status attn_layer_norm(const attn_layer_norm_params *params);

/*
 * Layer norm backward (llm.c's layernorm_backward), from the mean and rstd attn_layer_norm saved:
 * with x̂ = (x - mean) · rstd (RMS: mean 0) and g = dout ∘ weight,
 *   dx = rstd · (g - mean(g) - x̂ · mean(g ∘ x̂))     (RMS: rstd · (g - x̂ · mean(g ∘ x̂)))
 *   dweight += sum over rows of dout ∘ x̂,  dbias += sum over rows of dout   (accumulated, as llm.c)
 * dx is written, not accumulated. ATTN_VARIANCE_TWO_PASS and ATTN_VARIANCE_FAST differentiate the
 * same function (the biased variance), so they share the first formula; FAST's clamp at 0 is not
 * differentiated (a constant row gets the two-pass gradient). Sums are in double per row (dx) and
 * per column in row order (dweight, dbias), each rounded to float once: the result does not depend
 * on the thread count. A row whose x, dout, mean or rstd holds a NaN or an infinity gets NaN in dx
 * and passes it into dweight; dbias sees only dout.
 *   dout (rows, n) ld_dout >= n;  x (rows, n) ld_x >= n;  mean, rstd (rows,) (mean unread for RMS,
 *     may then be NULL)
 *   dx (rows, n) ld_dx >= n, may equal dout (then with ld_dx == ld_dout), must not otherwise overlap
 *     an input
 *   weight (n,) or NULL (1);  dweight, dbias (n,) or NULL (not computed), not overlapping anything
 */
typedef struct attn_layer_norm_backward_params {
    size_t struct_size;  /* sizeof(attn_layer_norm_backward_params), set by its _default() */
    int64_t rows, n;
    float *dx;           int64_t ld_dx;
    const float *dout;   int64_t ld_dout;
    const float *x;      int64_t ld_x;
    const float *mean, *rstd;   /* (rows,), as attn_layer_norm saved them */
    const float *weight;        /* (n,) or NULL */
    float *dweight, *dbias;     /* (n,) or NULL; accumulated */
    attn_variance variance;
    int num_threads;            /* 0: attn_get_num_threads() */
} attn_layer_norm_backward_params;

/* Defaults: struct_size, ATTN_VARIANCE_TWO_PASS, and every other field 0 / NULL. */
ATTN_API attn_layer_norm_backward_params attn_layer_norm_backward_params_default(void);

ATTN_API attn_status attn_layer_norm_backward(const attn_layer_norm_backward_params *params);

/* Element-wise activations of `count` contiguous floats; out may equal x. Infinities and NaN give
 * what the formulas give in IEEE arithmetic, as PyTorch and JAX do: NaN stays NaN, and gelu,
 * gelu_tanh and silu of -inf are NaN (-inf times 0). */
typedef enum attn_activation {
    ATTN_ACTIVATION_IDENTITY = 0,
    ATTN_ACTIVATION_RELU = 1,      /* max(x, 0) */
    ATTN_ACTIVATION_GELU = 2,      /* x/2 (1 + erf(x/sqrt 2)), PyTorch's F.gelu and approximate=False */
    ATTN_ACTIVATION_GELU_TANH = 3, /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), jax.nn.gelu's default */
    ATTN_ACTIVATION_SIGMOID = 4,   /* 1 / (1 + exp(-x)) */
    ATTN_ACTIVATION_SILU = 5,      /* x * sigmoid(x) */
    ATTN_ACTIVATION_TANH = 6
} attn_activation;

/* out (count,) = kind(x (count,)) element by element, count >= 1; out may equal x but must not
 * otherwise overlap it. */
typedef struct attn_activate_params {
    size_t struct_size;  /* sizeof(attn_activate_params), set by attn_activate_params_default() */
    int64_t count;
    float *out;
    const float *x;
    attn_activation kind;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_activate_params;

/* Defaults: struct_size, ATTN_ACTIVATION_IDENTITY, and every other field 0 / NULL. */
ATTN_API attn_activate_params attn_activate_params_default(void);

ATTN_API attn_status attn_activate(const attn_activate_params *params);

/* Gated activations, the GLU family of transformer MLPs (SwiGLU in Llama with ATTN_ACTIVATION_SILU,
 * GEGLU with ATTN_ACTIVATION_GELU): for each of `rows` rows of x, whose 2 * width elements are a
 * gate then a linear half (as one product with the two weights stacked gives them),
 *   out[c] = kind(x[c]) * x[width + c],  c < width,
 * each product rounded once.
 *   x (rows, 2 width), row stride ld_x >= 2 * width
 *   out (rows, width), row stride ld_out >= width; may equal x (in place, then with ld_out == ld_x:
 *     each row's gate half is overwritten) but must not otherwise overlap it
 * Activations as attn_activate. */
typedef struct attn_gated_activate_params {
    size_t struct_size;  /* sizeof(attn_gated_activate_params), set by attn_gated_activate_params_default() */
    int64_t rows, width;
    float *out;       int64_t ld_out;
    const float *x;   int64_t ld_x;
    attn_activation kind;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_gated_activate_params;

/* Defaults: struct_size, ATTN_ACTIVATION_IDENTITY, and every other field 0 / NULL. */
ATTN_API attn_gated_activate_params attn_gated_activate_params_default(void);

ATTN_API attn_status attn_gated_activate(const attn_gated_activate_params *params);

/* Activation backward (llm.c's gelu_backward): dx (count,) = kind'(x) · dout, or, with accumulate,
 * dx += that (llm.c accumulates). The derivative of each kind of attn_activate, computed in double
 * from x and rounded once (for sigmoid and silu, from s = sigmoid(x) formed in float by the vector
 * kernel of attn_activate: within a few float ulps of the exact slope): relu' is 1 for x > 0, else 0 (PyTorch's choice at 0); gelu' = Φ(x) + x φ(x);
 * gelu_tanh' = (1 + t)/2 + x (1 - t²) √(2/π) (1 + 3·0.044715 x²)/2, t the tanh of the forward;
 * sigmoid' = s (1 - s); silu' = s (1 + x (1 - s)); tanh' = 1 - tanh². At x = ±inf the limits (1 or 0).
 * NaN in x or dout gives NaN.
 * dx may equal dout (not with accumulate) but must not otherwise overlap x or dout. */
typedef struct attn_activate_backward_params {
    size_t struct_size;  /* sizeof(attn_activate_backward_params), set by its _default() */
    int64_t count;
    float *dx;           /* (count,) */
    const float *dout;   /* (count,) */
    const float *x;      /* (count,): the forward's input */
    attn_activation kind;
    int accumulate;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_activate_backward_params;

/* Defaults: struct_size, ATTN_ACTIVATION_IDENTITY, and every other field 0 / NULL. */
ATTN_API attn_activate_backward_params attn_activate_backward_params_default(void);

ATTN_API attn_status attn_activate_backward(const attn_activate_backward_params *params);

/* Gated activation backward: for out[c] = kind(x[c]) · x[width + c] of attn_gated_activate,
 *   dx[c] = kind'(x[c]) · x[width + c] · dout[c]   (d gate),   dx[width + c] = kind(x[c]) · dout[c]   (d up),
 * each in double, rounded once (kind and kind' as attn_activate_backward forms them), written, or
 * added with accumulate.
 *   x (rows, 2 width) ld_x >= 2 width;  dout (rows, width) ld_dout >= width
 *   dx (rows, 2 width) ld_dx >= 2 width, must not overlap x or dout */
typedef struct attn_gated_activate_backward_params {
    size_t struct_size;  /* sizeof(attn_gated_activate_backward_params), set by its _default() */
    int64_t rows, width;
    float *dx;           int64_t ld_dx;
    const float *dout;   int64_t ld_dout;
    const float *x;      int64_t ld_x;
    attn_activation kind;
    int accumulate;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_gated_activate_backward_params;

/* Defaults: struct_size, ATTN_ACTIVATION_IDENTITY, and every other field 0 / NULL. */
ATTN_API attn_gated_activate_backward_params attn_gated_activate_backward_params_default(void);

ATTN_API attn_status attn_gated_activate_backward(const attn_gated_activate_backward_params *params);

/* Row softmax backward (the gradient through attn_softmax_rows, for returned attention weights):
 * from the saved output y (rows, n) and dout, dx = y ∘ (dout - Σ_j y_j dout_j) per row, the row sum
 * and each element in double; with accumulate, added to dx. Rows of y are read as the forward wrote
 * them, so a NaN row gives NaN, a zero (fully masked) row zero, and a uniform one its own gradient.
 *   dx (rows, n) ld_dx >= n; y and dout likewise (ld_y, ld_dout >= n); dx may be dout itself
 *   (ld_dx == ld_dout, not accumulating), else must not overlap y or dout */
typedef struct attn_softmax_rows_backward_params {
    size_t struct_size;  /* sizeof(attn_softmax_rows_backward_params), set by its _default() */
    int64_t rows, n;
    float *dx;           int64_t ld_dx;
    const float *y;      int64_t ld_y;
    const float *dout;   int64_t ld_dout;
    int accumulate;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_softmax_rows_backward_params;

/* Defaults: struct_size, and every other field 0 / NULL. */
ATTN_API attn_softmax_rows_backward_params attn_softmax_rows_backward_params_default(void);

ATTN_API attn_status attn_softmax_rows_backward(const attn_softmax_rows_backward_params *params);

/* Mean pooling backward (the gradient through attn_mean_rows): dx[r][j] = dout[r] / n, or, with
 * accumulate, added to dx, in double per element. dx (rows, n) ld_dx >= n; dout (rows,); dx must
 * not overlap dout. */
typedef struct attn_mean_rows_backward_params {
    size_t struct_size;  /* sizeof(attn_mean_rows_backward_params), set by its _default() */
    int64_t rows, n;
    float *dx;           int64_t ld_dx;
    const float *dout;
    int accumulate;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_mean_rows_backward_params;

/* Defaults: struct_size, and every other field 0 / NULL. */
ATTN_API attn_mean_rows_backward_params attn_mean_rows_backward_params_default(void);

ATTN_API attn_status attn_mean_rows_backward(const attn_mean_rows_backward_params *params);

/* Cross-entropy over rows of logits, the loss and its gradient in one pass, as
 * torch.nn.functional.cross_entropy(logits, targets, ignore_index=, label_smoothing=, reduction=):
 * per row r with target t = targets[r] (t == ignore_index: the row has loss 0, gradient 0 and does
 * not count), with lse the row's log-sum-exp and ε = label_smoothing,
 *   loss_r = (1 - ε) (lse - x_t) + ε (lse - mean_c x_c)
 *   d loss_r / d x_c = softmax(x)_c - (1 - ε) [c == t] - ε / classes
 * with the row's maximum and sum of exponentials formed in float by the vector softmax (float
 * accuracy, about 1e-7 relative), lse and the loss from them in double; a row holding a NaN or an
 * infinity has loss and gradient NaN. reduction ATTN_LOSS_MEAN: loss[0] = Σ loss_r / (rows counted) (NaN when every
 * row is ignored, as torch), gradients divided by that count; ATTN_LOSS_SUM: loss[0] = Σ loss_r;
 * ATTN_LOSS_NONE: loss[r] = loss_r (0 for an ignored row). The sum is in double over fixed blocks
 * of rows, the same for any thread count. dlogits (optional, NULL: the loss only) receives the
 * gradient times grad_scale (the upstream d(result)/d(loss); with NONE, of the sum of the losses).
 * A target outside [0, classes) that is not ignore_index: ATTN_ERR_INVALID_ARGUMENT, nothing
 * written; likewise label_smoothing outside [0, 1]. NaN or +inf logits give a NaN row.
 *   logits (rows, classes) ld_logits >= classes; targets (rows,); loss (1,) or (rows,) for NONE;
 *   dlogits (rows, classes) ld_dlogits >= classes, may be the logits' own memory (same ld). */
typedef enum attn_loss_reduction { ATTN_LOSS_MEAN = 0, ATTN_LOSS_SUM = 1, ATTN_LOSS_NONE = 2 } attn_loss_reduction;

typedef struct attn_cross_entropy_params {
    size_t struct_size;  /* sizeof(attn_cross_entropy_params), set by attn_cross_entropy_params_default() */
    int64_t rows, classes;
    const float *logits;   int64_t ld_logits;
    const int64_t *targets;
    int64_t ignore_index;  /* -100 by default, as torch */
    float label_smoothing;
    attn_loss_reduction reduction;
    float *loss;
    float *dlogits;        int64_t ld_dlogits;
    float grad_scale;      /* 1 by default */
    int num_threads;       /* 0: attn_get_num_threads() */
} attn_cross_entropy_params;

/* Defaults: struct_size, ignore_index -100, ATTN_LOSS_MEAN, grad_scale 1, every other field 0 / NULL. */
ATTN_API attn_cross_entropy_params attn_cross_entropy_params_default(void);

ATTN_API attn_status attn_cross_entropy(const attn_cross_entropy_params *params);

/* One optimiser step over a flat array of count parameters, in place, as torch.optim's
 * single-tensor step (its formulas, in float; the scalars below in double, then float):
 *   ATTN_OPTIMIZER_SGD:   g = grad (negated with maximize) + weight_decay · param; with momentum,
 *                         buf = g at step 1, else momentum · buf + (1 - dampening) · g, and
 *                         g = nesterov ? g + momentum · buf : buf; param -= lr · g.
 *   ATTN_OPTIMIZER_ADAM:  g = grad (negated with maximize) + weight_decay · param (L2);
 *   ATTN_OPTIMIZER_ADAMW: g = grad (negated with maximize), param *= 1 - lr · weight_decay;
 *                         then both: m = lerp(m, g, 1 - beta1), v = beta2 · v + (1 - beta2) g²,
 *                         with amsgrad (max_second_moment given) vmax = max(vmax, v) used for v;
 *                         param -= lr / (1 - beta1^step) · m / (sqrt(v) / sqrt(1 - beta2^step) + eps).
 * step is the step number, from 1 (torch's state["step"] after its increment). State arrays hold
 * count floats each: SGD's momentum (NULL when momentum is 0); Adam's first_moment and
 * second_moment (start them at 0), and max_second_moment for amsgrad or NULL. None may overlap
 * another or param; grad is read only.
 * Non-finite gradients: when nonfinite is not NULL it receives the count of gradient elements
 * that are NaN or infinite; with skip_nonfinite set and a count above 0, nothing is updated (the
 * call still returns ATTN_OK, and the caller sees the count): an update is never applied
 * silently from a NaN. Element by element, vectorised per instruction set, parallel over fixed
 * chunks: the same bits for any thread count.
 *   ATTN_ERR_INVALID_ARGUMENT: count < 1, step < 1, a non-finite or negative lr, weight_decay,
 *   eps or momentum, betas outside [0, 1), an unknown kind, nesterov without momentum or with
 *   dampening (as torch). */
typedef enum attn_optimizer {
    ATTN_OPTIMIZER_SGD = 0,
    ATTN_OPTIMIZER_ADAM = 1,
    ATTN_OPTIMIZER_ADAMW = 2
} attn_optimizer;

typedef struct attn_optimizer_step_params {
    size_t struct_size;  /* sizeof(attn_optimizer_step_params), set by attn_optimizer_step_params_default() */
    attn_optimizer kind;
    int64_t count;
    float *param;
    const float *grad;
    float *momentum_buffer;                 /* SGD */
    float *first_moment, *second_moment;    /* Adam, AdamW */
    float *max_second_moment;               /* amsgrad, or NULL */
    int64_t step;
    float lr, weight_decay;
    float momentum, dampening; int nesterov; /* SGD */
    float beta1, beta2, eps;                /* Adam, AdamW */
    int maximize;
    int skip_nonfinite;
    int64_t *nonfinite;                     /* out: non-finite gradient elements, or NULL */
    int num_threads;                        /* 0: attn_get_num_threads() */
} attn_optimizer_step_params;

/* Defaults: struct_size, ATTN_OPTIMIZER_ADAMW with torch's AdamW defaults (lr 1e-3, betas 0.9 and
 * 0.999, eps 1e-8, weight_decay 0.01), skip_nonfinite 1, step 1, every other field 0 / NULL. */
ATTN_API attn_optimizer_step_params attn_optimizer_step_params_default(void);

ATTN_API attn_status attn_optimizer_step(const attn_optimizer_step_params *params);

/* Row softmax in place over x (rows, n) with row stride ld >= n. Rows whose entries are all -inf
 * become what masked_rows says: zeros, NaN, or uniform 1/n (the weights Equinox and Flax produce).
 * A row with a NaN or +inf entry becomes all NaN, as in PyTorch. */
typedef struct attn_softmax_rows_params {
    size_t struct_size;  /* sizeof(attn_softmax_rows_params), set by attn_softmax_rows_params_default() */
    int64_t rows, n;
    float *x;         int64_t ld;
    attn_masked_rows masked_rows;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_softmax_rows_params;

/* Defaults: struct_size, ATTN_MASKED_ROWS_ZERO, and every other field 0 / NULL. */
ATTN_API attn_softmax_rows_params attn_softmax_rows_params_default(void);

ATTN_API attn_status attn_softmax_rows(const attn_softmax_rows_params *params);

/*
 * Rotary positional embedding applied in place to x (B, H, L, D) with element strides
 * {batch, head, position} (features contiguous), on the first `dim` features of each row (dim even,
 * dim <= D; the rest are untouched). D itself is not passed: the first dim features of the rows
 * must not overlap one another (else ATTN_ERR_INVALID_STRIDE). Row l of sequence b is at position
 * p = start_b + l, where start_b = positions[b] when positions is not NULL, else position_offset
 * (so each sequence of a batch may start elsewhere: decoding sequences of different lengths).
 * Frequencies f_i for i < dim/2 and the angles p * f_i, by `angles`:
 *   ATTN_ROTARY_ANGLES_DOUBLE: f_i = theta^(-2i/dim) and p * f_i in double (the default);
 *   ATTN_ROTARY_ANGLES_FLOAT:  in float, as Hugging Face transformers computes them:
 *                              f_i = 1 / powf(theta, (float)(2i) / (float)dim), p * f_i with p
 *                              rounded to float, the product rounded to float;
 * and in both, cos and sin of the angle in double, rounded to float. Workspace: dim/2 doubles plus
 * threads x dim floats.
 *   ATTN_ROTARY_HALF:        pairs (x[i], x[i + dim/2])  (GPT-NeoX, Llama, Equinox)
 *   ATTN_ROTARY_INTERLEAVED: pairs (x[2i], x[2i + 1])    (RoFormer, GPT-J)
 * Each pair (a, b) becomes (a cos - b sin, b cos + a sin), or with ATTN_ROTARY_INVERSE (a cos + b sin,
 * b cos - a sin): the rotation by -angle, which is also the backward pass (the rotation is
 * orthogonal, so the gradient of its input is dout rotated back; run it in place on dout). theta > 0 and finite; position_offset
 * and every positions[b] >= 0, and start_b + L - 1 must fit int64_t (else ATTN_ERR_OVERFLOW).
 */
typedef enum attn_rotary_pairing { ATTN_ROTARY_HALF = 0, ATTN_ROTARY_INTERLEAVED = 1 } attn_rotary_pairing;

typedef enum attn_rotary_angles { ATTN_ROTARY_ANGLES_DOUBLE = 0, ATTN_ROTARY_ANGLES_FLOAT = 1 } attn_rotary_angles;

typedef struct attn_rotary_params {
    size_t struct_size;  /* sizeof(attn_rotary_params), set by attn_rotary_params_default() */
    int64_t batch, heads, len, dim;
    float *x; int64_t x_stride[3];
    float theta;
    int64_t position_offset;
    attn_rotary_pairing pairing;
    int num_threads;
    /* Appended in 1.0.0 (a 0.3.0 struct, which ended at num_threads, reads them as NULL and
     * ATTN_ROTARY_ANGLES_DOUBLE): */
    const int64_t *positions;     /* (B,): the position of row 0 of each sequence; or NULL */
    attn_rotary_angles angles;
    /* Appended after 1.0.0 (an older struct reads it as 0): */
    uint64_t flags;               /* ATTN_ROTARY_INVERSE, or 0 */
} attn_rotary_params;

/* attn_rotary_params.flags: rotate by -angle, the rotation's transpose, so that attn_rotary on dout
 * gives the gradient of its input (any other bit: ATTN_ERR_INVALID_ARGUMENT). */
#define ATTN_ROTARY_INVERSE ((uint64_t)1)

/* Defaults: struct_size, theta = 10000 (RoFormer, Llama), and every other field 0 / NULL. */
ATTN_API attn_rotary_params attn_rotary_params_default(void);

ATTN_API attn_status attn_rotary(const attn_rotary_params *params);

/* Global average pooling: out (rows,), out[r] = the mean of row r of x (rows, n), row stride ld >= n
 * (e.g. the (N*C) channels of an (N, C, H*W) feature map), summed in double. out must not overlap x.
 * The same call as attn_reduce_rows with ATTN_REDUCE_MEAN, statuses included. */
typedef struct attn_mean_rows_params {
    size_t struct_size;  /* sizeof(attn_mean_rows_params), set by attn_mean_rows_params_default() */
    int64_t rows, n;
    float *out;
    const float *x;   int64_t ld;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_mean_rows_params;

/* Defaults: struct_size, and every other field 0 / NULL. */
ATTN_API attn_mean_rows_params attn_mean_rows_params_default(void);

ATTN_API attn_status attn_mean_rows(const attn_mean_rows_params *params);

/* Row reductions: for each of `rows` rows of x (rows, n), row stride ld >= n, by `op`:
 *   ATTN_REDUCE_SUM   out[r] = the sum of the row, accumulated in double and rounded to float once;
 *   ATTN_REDUCE_MEAN  out[r] = that sum / n in double, rounded once (attn_mean_rows' result);
 *   ATTN_REDUCE_MAX   out[r] = the row's largest element, indices[r] = the index of its first
 *                     occurrence (NumPy's max and argmax);
 *   ATTN_REDUCE_MIN   the smallest, likewise (min and argmin).
 * NaN propagates as in NumPy and PyTorch: a row holding a NaN has a NaN sum, mean, max and min, and
 * its index is that of its first NaN. -0 and +0 compare equal: the first of them is the one reported,
 * sign and all (out[r] is always x[indices[r]]). Infinities give what IEEE sums give (inf - inf is NaN).
 *   out (rows,): required for SUM and MEAN; MAX and MIN may leave it NULL when indices is given
 *   indices (rows,) or NULL: MAX and MIN only (else ATTN_ERR_INVALID_ARGUMENT)
 *   out and indices must not overlap x or each other.
 * Results do not depend on the thread count; MAX and MIN (exact) not on the instruction set either. */
typedef enum attn_reduction {
    ATTN_REDUCE_SUM = 0,
    ATTN_REDUCE_MEAN = 1,
    ATTN_REDUCE_MAX = 2,
    ATTN_REDUCE_MIN = 3
} attn_reduction;

typedef struct attn_reduce_rows_params {
    size_t struct_size;  /* sizeof(attn_reduce_rows_params), set by attn_reduce_rows_params_default() */
    int64_t rows, n;
    float *out;          /* (rows,); NULL allowed for MAX and MIN with indices */
    int64_t *indices;    /* (rows,) or NULL; ATTN_REDUCE_MAX and ATTN_REDUCE_MIN only */
    const float *x;   int64_t ld;
    attn_reduction op;
    int num_threads;     /* 0: attn_get_num_threads() */
} attn_reduce_rows_params;

/* Defaults: struct_size, ATTN_REDUCE_SUM, and every other field 0 / NULL. */
ATTN_API attn_reduce_rows_params attn_reduce_rows_params_default(void);

ATTN_API attn_status attn_reduce_rows(const attn_reduce_rows_params *params);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_H */
