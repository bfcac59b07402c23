/*
 * kernel_table_template.h: the body of every per-ISA translation unit (kernels_<isa>.c defines ATTN_VL, the
 * register-blocking constants, the table's name and the code generation target, then includes
 * this). Everything below is static except the table, so each ISA gets its own copy of the code.
 */
#include "problem.h"
#include "simd_template.h"
#include "sgemm.h"
#include "fused_tile_template.h"
#include "fused_row_template.h"
#include "backward.h"
#include "backward_tile_template.h"
#include "softmax_template.h"
#include "dense_template.h"
#include "sgemm_template.h"
#include "optimizer_template.h"

/* The tile kernel's entry points: widened products, and bf16 pairs with the portable VDPBF16PS. */
static void fused_item(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles, float *workspace) {
    fused_item_run(pr, b, h, i0, tiles, workspace, 0);
}
static void fused_item_bf16_model(const attn_problem *pr, int64_t b, int64_t h, int64_t i0, int64_t tiles,
                                  float *workspace) {
    fused_item_run(pr, b, h, i0, tiles, workspace, 1);
}

#ifndef ATTN_BF16_NATIVE_ITEM
#define ATTN_BF16_NATIVE_ITEM NULL /* only the AVX-512 table has one (kernels_avx512.c) */
#define ATTN_BF16_NATIVE_ROWS NULL
#endif

const attn_kernels ATTN_KERNELS = {
    .isa = ATTN_KERNELS_ISA,
    .vector_floats = ATTN_VL,
    .fused_tile_queries = FUSED_QT,
    .fused_max_tiles = FUSED_MAX_TILES,
    .fused_workspace_floats = fused_workspace_floats,
    .fused_item = fused_item,
    .fused_item_bf16_model = fused_item_bf16_model,
    .fused_item_bf16_native = ATTN_BF16_NATIVE_ITEM,
    .fused_row_max_len_q = ATTN_VL * ATTN_Q_VECS / 2,
    .fused_row_workspace_floats = fused_row_workspace_floats,
    .fused_row_item = fused_row_item,
    .sgemm_block = sgemm_block,
    .sgemm_mr = SGEMM_MR,
    .sgemm_nr = SGEMM_NR,
    .sgemm_mc = SGEMM_MC,
    .sgemm_kc = SGEMM_KC,
    .sgemm_nc = SGEMM_NC,
    .sgemm_pack_b_block = sgemm_pack_b_block,
    .sgemm_rows = sgemm_rows,
    .sgemm_rows_bf16_native = ATTN_BF16_NATIVE_ROWS,
    .sgemm_few_rows_max = SGEMM_FEW_ROWS,
    .sgemm_few_cols = SGEMM_FEW_COLS,
    .sgemm_few_rows = sgemm_few_rows,
    .softmax_row = softmax_row,
    .layer_norm_row = layer_norm_row,
    .activate = activate,
    .sum_row = sum_row,
    .extremum_row = extremum_row,
    .convert_row = vconvert_row,
    .backward_workspace_floats = backward_workspace_floats,
    .backward_stripe = backward_stripe,
    .optimizer_range = optimizer_range,
    .count_nonfinite = count_nonfinite,
};
