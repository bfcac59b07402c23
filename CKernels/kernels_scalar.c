/*
 * kernels_scalar.c: the portable path. Compiled for the baseline target, so the 4-float vectors of
 * the templates become SSE2 on x86-64 and NEON on arm64 (where this table reports ATTN_ISA_NEON).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

#define ATTN_VL 4
#define ATTN_Q_VECS 3  /* query vectors per score micro-tile */
#define ATTN_NK 4      /* keys (or value columns) per micro-tile: 3 x 4 accumulators + operands fit 16 registers */
#if defined(__x86_64__) || defined(_M_X64)
#define ATTN_X86_MAXPS /* SSE is part of x86-64: simd_template.h may use MAXPS */
#endif
#define ATTN_KERNELS attn_kernels_scalar
#define ATTN_KERNELS_ISA ATTN_ISA_SCALAR
#include "kernel_table_template.h"
