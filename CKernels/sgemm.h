/*
 * sgemm.h: the packed matrix multiply every ISA provides: sgemm_block, single-threaded, used by the
 * unfused attention path (one whole product per thread); and its two steps, packing a block of B
 * and multiplying rows of A by it, which attn_matmul runs on all threads around one shared packed
 * block of B. Their arguments are an attn_matmul_params (attn.h) already validated; its
 * num_threads is not read (each call is single-threaded).
 */
#ifndef ATTN_SGEMM_H
#define ATTN_SGEMM_H

#include <stdint.h>

/* Floats of one packed MC x KC block of A and one KC x NC block of B, for the largest blocking of
 * any ISA (sgemm_template.h checks each against them); sgemm_block's workspace holds both. */
#define ATTN_SGEMM_PACK_A_FLOATS (288 * 256 + 16) /* + the slack sgemm_pack_a may write past a block */
#define ATTN_SGEMM_PACK_B_FLOATS (256 * 1024)
#define ATTN_SGEMM_WORKSPACE_FLOATS (ATTN_SGEMM_PACK_A_FLOATS + ATTN_SGEMM_PACK_B_FLOATS)

/* How the packed path forms A·B (attn_matmul chooses per call, from ATTN_MATMUL_BF16_PRODUCTS and
 * attn_bf16_dot):
 *   SGEMM_F32        A as given, float multiply-adds;
 *   SGEMM_ROUNDED_A  A rounded to bf16 while packed, float multiply-adds (exact bf16 products);
 *   SGEMM_PAIRS      A rounded and B (bf16) packed as pair words, two depth steps per 32-bit lane,
 *                    one vdot_bf16 (VDPBF16PS or its model, simd_template.h) per pair of steps.
 * A packed block of kc depth steps then holds kc floats per row or column, or (kc + 1) / 2 words. */
typedef enum sgemm_form { SGEMM_F32 = 0, SGEMM_ROUNDED_A = 1, SGEMM_PAIRS = 2 } sgemm_form;

#endif
