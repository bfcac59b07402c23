/*
 * kernels_avx512.c: the templates compiled for AVX-512 (16-float zmm vectors, 32 registers).
 * Only the code generation target changes here; the dispatcher checks the CPU before using it.
 *
 * Built with -DATTN_EMULATE_AVX512 (make test-avx512-logic; never for use), the same code with the
 * same blocking is compiled for AVX2 instead, each 16-float vector becoming two ymm, and the
 * dispatcher offers it as "avx512" on any AVX2 CPU: so the tests check this path's logic (48-query
 * tiles, 8-key panels, 12-row matrix panels) on machines without AVX-512.
 */
#if defined(__x86_64__) || defined(_M_X64)
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <immintrin.h>

#if defined(ATTN_EMULATE_AVX512) && defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif defined(ATTN_EMULATE_AVX512)
#pragma GCC target("avx2,fma,f16c")
#elif defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

#define ATTN_VL 16
#define ATTN_Q_VECS 3  /* 48 queries per micro-tile */
#define ATTN_NK 8      /* 3 x 8 accumulators + 3 operands + 1 broadcast = 28 of 32 zmm registers */
#if defined(ATTN_EMULATE_AVX512)
#define ATTN_F16C 8    /* f16 conversions on ymm halves */
#else
#define ATTN_F16C 16   /* f16 conversions on whole zmm vectors */
#define ATTN_X86_AVX512F /* simd_template.h may use AVX-512F instructions on zmm vectors */
#endif
#define ATTN_KERNELS attn_kernels_avx512
#define ATTN_KERNELS_ISA ATTN_ISA_AVX512
#include "internal.h"
#if defined(ATTN_HAVE_BF16_DOT)
#define ATTN_BF16_NATIVE_ITEM attn_fused_item_avx512_bf16_native /* kernels_avx512bf16.c */
#define ATTN_BF16_NATIVE_ROWS attn_sgemm_rows_avx512_bf16_native
#endif
#include "kernel_table_template.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
