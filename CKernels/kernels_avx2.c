/*
 * kernels_avx2.c: the templates compiled for AVX2 + FMA (8-float ymm vectors, 16 registers).
 * Only the code generation target changes here; the dispatcher checks the CPU (AVX2, FMA, F16C)
 * before using it.
 */
#if defined(__x86_64__) || defined(_M_X64)
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif

#define ATTN_VL 8
#define ATTN_Q_VECS 3  /* 24 queries per micro-tile */
#define ATTN_NK 4      /* 3 x 4 accumulators + 3 operands + 1 broadcast = 16 ymm registers; 7 loads per
                        * 12 FMAs (2 x 6 needs 8), and 4 divides the usual head sizes (6 wastes 3 % of 64) */
#define ATTN_F16C 8     /* f16 through VCVTPH2PS / VCVTPS2PH on ymm (every AVX2 CPU has F16C; the
                        * dispatcher checks) */
#define ATTN_X86_MAXPS /* simd_template.h may use MAXPS */
#define ATTN_KERNELS attn_kernels_avx2
#define ATTN_KERNELS_ISA ATTN_ISA_AVX2
#include "kernel_table_template.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
