/*
 * params.c: the parameter structs' defaults, and reading a caller's struct as its struct_size says
 * (the rules are in attn.h): every entry point goes through attn_read_params and its siblings
 * before it looks at any other field.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

/* The sizeof of every layout a release declared, oldest first. A release that appends fields adds
 * the previous sizeof here (and a test that a struct of that size still works). */
/* 0.2.0's structs ended at num_threads: their sizeof is that end rounded up to the struct's
 * alignment (the same then and now), computed rather than written down so that it holds for
 * 32-bit targets too. */
#define SIZE_0_2_0(type) \
    ((offsetof(type, num_threads) + sizeof(int) + _Alignof(type) - 1) / _Alignof(type) * _Alignof(type))
_Static_assert(offsetof(attn_params, q_dtype) >= SIZE_0_2_0(attn_params), "0.3.0 fields inside 0.2.0's layout");
_Static_assert(offsetof(attn_matmul_params, b_dtype) >= SIZE_0_2_0(attn_matmul_params), "b_dtype inside 0.2.0's layout");
static const size_t params_sizes[] = {SIZE_0_2_0(attn_params), sizeof(attn_params)};
/* attn_matmul_params then grew flags after b_dtype: a struct ending at b_dtype (its sizeof
 * likewise computed) reads it as 0. */
#define SIZE_B_DTYPE(type) \
    ((offsetof(type, b_dtype) + sizeof(attn_dtype) + _Alignof(type) - 1) / _Alignof(type) * _Alignof(type))
_Static_assert(offsetof(attn_matmul_params, flags) >= SIZE_B_DTYPE(attn_matmul_params),
               "flags inside the layout that ended at b_dtype");
/* And then a_transposed after flags: a struct ending at flags reads it as 0. */
#define SIZE_FLAGS(type) \
    ((offsetof(type, flags) + sizeof(uint64_t) + _Alignof(type) - 1) / _Alignof(type) * _Alignof(type))
_Static_assert(offsetof(attn_matmul_params, a_transposed) >= SIZE_FLAGS(attn_matmul_params),
               "a_transposed inside the layout that ended at flags");
static const size_t matmul_sizes[] = {SIZE_0_2_0(attn_matmul_params), SIZE_B_DTYPE(attn_matmul_params),
                                      SIZE_FLAGS(attn_matmul_params), sizeof(attn_matmul_params)};
/* attn_rotary_params of 0.3.0 also ended at num_threads; 1.0.0 appended positions and angles. */
_Static_assert(offsetof(attn_rotary_params, positions) >= SIZE_0_2_0(attn_rotary_params),
               "positions inside 0.3.0's layout");
/* Then flags after angles: a 1.0.0 struct (ending at angles) reads them as 0. */
#define SIZE_ANGLES(type) \
    ((offsetof(type, angles) + sizeof(attn_rotary_angles) + _Alignof(type) - 1) / _Alignof(type) * _Alignof(type))
_Static_assert(offsetof(attn_rotary_params, flags) >= SIZE_ANGLES(attn_rotary_params),
               "flags inside 1.0.0's layout");
static const size_t rotary_sizes[] = {SIZE_0_2_0(attn_rotary_params), SIZE_ANGLES(attn_rotary_params),
                                      sizeof(attn_rotary_params)};
/* The dense structs of 1.0.0: one layout each so far. */
static const size_t layer_norm_sizes[] = {sizeof(attn_layer_norm_params)};
static const size_t activate_sizes[] = {sizeof(attn_activate_params)};
static const size_t gated_sizes[] = {sizeof(attn_gated_activate_params)};
static const size_t softmax_sizes[] = {sizeof(attn_softmax_rows_params)};
static const size_t mean_sizes[] = {sizeof(attn_mean_rows_params)};
/* Added after 1.0.0: one layout so far. */
static const size_t reduce_sizes[] = {sizeof(attn_reduce_rows_params)};
/* The backward's first layout, embedding the current attn_params: should attn_params grow, the
 * older backward layout (ending at its dbias_stride) is to be kept readable here, its forward read
 * with that older attn_params size. */
static const size_t backward_sizes[] = {sizeof(attn_backward_params)};
static const size_t sum_columns_sizes[] = {sizeof(attn_sum_columns_params)};
static const size_t layer_norm_backward_sizes[] = {sizeof(attn_layer_norm_backward_params)};
static const size_t activate_backward_sizes[] = {sizeof(attn_activate_backward_params)};
static const size_t gated_backward_sizes[] = {sizeof(attn_gated_activate_backward_params)};
static const size_t softmax_backward_sizes[] = {sizeof(attn_softmax_rows_backward_params)};
static const size_t mean_backward_sizes[] = {sizeof(attn_mean_rows_backward_params)};
static const size_t cross_entropy_sizes[] = {sizeof(attn_cross_entropy_params)};
static const size_t optimizer_sizes[] = {sizeof(attn_optimizer_step_params)};

attn_params attn_params_default(void) {
    attn_params p = {0};
    p.struct_size = sizeof p;
    p.window_left = -1;
    p.window_right = -1;
    return p;
}

attn_layer_norm_backward_params attn_layer_norm_backward_params_default(void) {
    attn_layer_norm_backward_params p = {0};
    p.struct_size = sizeof p;
    p.variance = ATTN_VARIANCE_TWO_PASS;
    return p;
}

attn_activate_backward_params attn_activate_backward_params_default(void) {
    attn_activate_backward_params p = {0};
    p.struct_size = sizeof p;
    p.kind = ATTN_ACTIVATION_IDENTITY;
    return p;
}

attn_gated_activate_backward_params attn_gated_activate_backward_params_default(void) {
    attn_gated_activate_backward_params p = {0};
    p.struct_size = sizeof p;
    p.kind = ATTN_ACTIVATION_IDENTITY;
    return p;
}

attn_softmax_rows_backward_params attn_softmax_rows_backward_params_default(void) {
    attn_softmax_rows_backward_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_mean_rows_backward_params attn_mean_rows_backward_params_default(void) {
    attn_mean_rows_backward_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_cross_entropy_params attn_cross_entropy_params_default(void) {
    attn_cross_entropy_params p = {0};
    p.struct_size = sizeof p;
    p.ignore_index = -100;
    p.reduction = ATTN_LOSS_MEAN;
    p.grad_scale = 1.0f;
    return p;
}

attn_optimizer_step_params attn_optimizer_step_params_default(void) {
    attn_optimizer_step_params p = {0};
    p.struct_size = sizeof p;
    p.kind = ATTN_OPTIMIZER_ADAMW;
    p.step = 1;
    p.lr = 1e-3f;
    p.weight_decay = 1e-2f;
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.eps = 1e-8f;
    p.skip_nonfinite = 1;
    return p;
}

attn_sum_columns_params attn_sum_columns_params_default(void) {
    attn_sum_columns_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_matmul_params attn_matmul_params_default(void) {
    attn_matmul_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_rotary_params attn_rotary_params_default(void) {
    attn_rotary_params p = {0};
    p.struct_size = sizeof p;
    p.theta = 10000.0f;
    return p;
}

attn_layer_norm_params attn_layer_norm_params_default(void) {
    attn_layer_norm_params p = {0};
    p.struct_size = sizeof p;
    p.eps = 1e-5f;
    return p;
}

attn_activate_params attn_activate_params_default(void) {
    attn_activate_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_gated_activate_params attn_gated_activate_params_default(void) {
    attn_gated_activate_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_softmax_rows_params attn_softmax_rows_params_default(void) {
    attn_softmax_rows_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_mean_rows_params attn_mean_rows_params_default(void) {
    attn_mean_rows_params p = {0};
    p.struct_size = sizeof p;
    return p;
}

attn_reduce_rows_params attn_reduce_rows_params_default(void) {
    attn_reduce_rows_params p = {0};
    p.struct_size = sizeof p;
    p.op = ATTN_REDUCE_SUM;
    return p;
}

attn_backward_params attn_backward_params_default(void) {
    attn_backward_params p = {0};
    p.struct_size = sizeof p;
    p.forward = attn_params_default();
    return p;
}

/* *out (current layout, holding the defaults) takes the first struct_size bytes of *in when that
 * size is a known layout's; 0 (and *out untouched) otherwise. Only struct_size bytes of *in are
 * read: an older caller's struct is no larger. */
static int read_struct(void *out, size_t current, const void *in, const size_t *sizes, size_t n_sizes) {
    size_t size;
    memcpy(&size, in, sizeof size);
    for (size_t k = 0; k < n_sizes; k++) {
        if (size != sizes[k]) continue;
        memcpy(out, in, size);
        memcpy(out, &current, sizeof current); /* the copy is now of the current layout */
        return 1;
    }
    return 0;
}

attn_status attn_read_params(attn_params *out, const attn_params *in) {
    if (!in) return ATTN_ERR_NULL_POINTER;
    *out = attn_params_default();
    return read_struct(out, sizeof *out, in, params_sizes, sizeof params_sizes / sizeof params_sizes[0])
               ? ATTN_OK : ATTN_ERR_INVALID_ARGUMENT;
}

attn_status attn_read_matmul_params(attn_matmul_params *out, const attn_matmul_params *in) {
    if (!in) return ATTN_ERR_NULL_POINTER;
    *out = attn_matmul_params_default();
    return read_struct(out, sizeof *out, in, matmul_sizes, sizeof matmul_sizes / sizeof matmul_sizes[0])
               ? ATTN_OK : ATTN_ERR_INVALID_ARGUMENT;
}

attn_status attn_read_rotary_params(attn_rotary_params *out, const attn_rotary_params *in) {
    if (!in) return ATTN_ERR_NULL_POINTER;
    *out = attn_rotary_params_default();
    return read_struct(out, sizeof *out, in, rotary_sizes, sizeof rotary_sizes / sizeof rotary_sizes[0])
               ? ATTN_OK : ATTN_ERR_INVALID_ARGUMENT;
}

/* One reader per dense struct, as attn_read_rotary_params. */
#define DEFINE_READER(name, type, sizes)                                                               \
    attn_status name(type *out, const type *in) {                                                      \
        if (!in) return ATTN_ERR_NULL_POINTER;                                                         \
        *out = type##_default();                                                                       \
        return read_struct(out, sizeof *out, in, sizes, sizeof sizes / sizeof sizes[0])                \
                   ? ATTN_OK : ATTN_ERR_INVALID_ARGUMENT;                                              \
    }
DEFINE_READER(attn_read_layer_norm_params, attn_layer_norm_params, layer_norm_sizes)
DEFINE_READER(attn_read_activate_params, attn_activate_params, activate_sizes)
DEFINE_READER(attn_read_gated_activate_params, attn_gated_activate_params, gated_sizes)
DEFINE_READER(attn_read_softmax_rows_params, attn_softmax_rows_params, softmax_sizes)
DEFINE_READER(attn_read_mean_rows_params, attn_mean_rows_params, mean_sizes)
DEFINE_READER(attn_read_reduce_rows_params, attn_reduce_rows_params, reduce_sizes)
DEFINE_READER(attn_read_backward_params, attn_backward_params, backward_sizes)
DEFINE_READER(attn_read_sum_columns_params, attn_sum_columns_params, sum_columns_sizes)
DEFINE_READER(attn_read_layer_norm_backward_params, attn_layer_norm_backward_params, layer_norm_backward_sizes)
DEFINE_READER(attn_read_activate_backward_params, attn_activate_backward_params, activate_backward_sizes)
DEFINE_READER(attn_read_gated_activate_backward_params, attn_gated_activate_backward_params, gated_backward_sizes)
DEFINE_READER(attn_read_softmax_rows_backward_params, attn_softmax_rows_backward_params, softmax_backward_sizes)
DEFINE_READER(attn_read_mean_rows_backward_params, attn_mean_rows_backward_params, mean_backward_sizes)
DEFINE_READER(attn_read_cross_entropy_params, attn_cross_entropy_params, cross_entropy_sizes)
DEFINE_READER(attn_read_optimizer_step_params, attn_optimizer_step_params, optimizer_sizes)
