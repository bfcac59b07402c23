/*
 * kernels_avx512bf16.c: the AVX-512 tile kernel and packed matrix multiply once more, on bf16 pairs
 * with VDPBF16PS (AVX512_BF16: Zen 4, Sapphire Rapids and later; not Zen 3, Skylake-X or Ice Lake).
 * Only those two are compiled here, with the same blocking as kernels_avx512.c, whose table points to them;
 * the dispatcher (isa.c) uses it only when the CPU reports AVX512_BF16. The code generation target
 * adds avx512bf16 to this file alone: SwiftPM passes no per-file flags, so it is a pragma, as in
 * kernels_avx512.c. Empty where internal.h says the build has no VDPBF16PS.
 */
#include "internal.h"

#if defined(ATTN_HAVE_BF16_DOT)
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")
#endif

#define ATTN_VL 16
#define ATTN_Q_VECS 3  /* as kernels_avx512.c: the planner sizes items with that table's numbers */
#define ATTN_NK 8
#define ATTN_F16C 16
#define ATTN_X86_AVX512F
#define ATTN_BF16_DOT_NATIVE /* simd_template.h: vdot_bf16 is the instruction */
#include "problem.h"
#include "simd_template.h"
#include "sgemm.h"
#include "fused_tile_template.h"
#include "sgemm_template.h"

void attn_fused_item_avx512_bf16_native(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles,
                                        float *workspace) {
    fused_item_run(pr, b, h, i0, tiles, workspace, 1);
}

void attn_sgemm_rows_avx512_bf16_native(const attn_matmul_params *args, const float *pack_b, int64_t j0, int64_t nc,
                                        int64_t p0, int64_t kc, int64_t i0, int64_t mc, float *pack_a, sgemm_form form) {
    (void)form; /* always SGEMM_PAIRS: the table's entry for that form */
    sgemm_rows_as(args, pack_b, j0, nc, p0, kc, i0, mc, pack_a, SGEMM_PAIRS);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int attn_no_bf16_dot; /* ISO C wants something in a translation unit */
#endif
