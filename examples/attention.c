/*
 * attention.c: a complete program using only attn.h. Causal self-attention over 4 heads of a
 * (L, H*D) activation read in place, then a check of one row against a direct computation; then
 * the backward pass of sum(out), its gradients written into one packed (L, 3*H*D) buffer, checked
 * by a property of softmax: every row's weights sum to 1, so dv summed over the keys is L.
 *
 *   cc attention.c -lattn -fopenmp -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <attn.h>

enum { H = 4, L = 100, D = 32 };

int main(void) {
    /* Projected activations as a model produces them: one row per position, heads side by side. */
    float *qkv = malloc(sizeof(float) * L * 3 * H * D);
    float *out = malloc(sizeof(float) * L * H * D), *lse = malloc(sizeof(float) * H * L);
    float *dout = malloc(sizeof(float) * L * H * D), *dqkv = malloc(sizeof(float) * L * 3 * H * D);
    if (!qkv || !out || !lse || !dout || !dqkv) return 1;
    for (int i = 0; i < L * 3 * H * D; i++) qkv[i] = sinf(0.37f * (float)i);

    attn_params p = attn_params_default();
    p.batch = 1;
    p.heads_q = p.heads_kv = H;
    p.len_q = p.len_k = L;
    p.dim_qk = p.dim_v = D;
    /* Strides {batch, head, position}: q, k and v interleave in rows of 3*H*D floats. */
    const int64_t in_stride[3] = {(int64_t)L * 3 * H * D, D, 3 * H * D};
    const int64_t out_stride[3] = {(int64_t)L * H * D, D, H * D};
    for (int d = 0; d < 3; d++) {
        p.q_stride[d] = p.k_stride[d] = p.v_stride[d] = in_stride[d];
        p.out_stride[d] = out_stride[d];
    }
    p.q = qkv;
    p.k = qkv + H * D;
    p.v = qkv + 2 * H * D;
    p.out = out;
    p.lse = lse; /* the log-sum-exp of every row, for the backward pass */
    p.causal = ATTN_CAUSAL_TOP_LEFT;

    attn_status st = attn_forward(&p);
    if (st != ATTN_OK) {
        fprintf(stderr, "attn_forward: %s\n", attn_status_string(st));
        return 1;
    }

    /* Row i = 10 of head 1, directly: softmax over keys 0..10 of q·k / sqrt(D), times v. */
    const int h = 1, i = 10;
    double w[L], m = -INFINITY, sum = 0, err = 0;
    for (int j = 0; j <= i; j++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)qkv[i * 3 * H * D + h * D + d] * qkv[j * 3 * H * D + H * D + h * D + d];
        w[j] = s / sqrt((double)D);
        if (w[j] > m) m = w[j];
    }
    for (int j = 0; j <= i; j++) sum += (w[j] = exp(w[j] - m));
    for (int d = 0; d < D; d++) {
        double o = 0;
        for (int j = 0; j <= i; j++) o += w[j] / sum * qkv[j * 3 * H * D + 2 * H * D + h * D + d];
        const double e = fabs(o - out[i * H * D + h * D + d]);
        if (!(e <= err)) err = e; /* a NaN is kept: the check below then fails */
    }

    /* The gradients of sum(out): dout is all ones; dq, dk and dv interleave as q, k and v do. */
    for (int x = 0; x < L * H * D; x++) dout[x] = 1.0f;
    attn_backward_params b = attn_backward_params_default();
    b.forward = p;
    b.dout = dout;
    b.dq = dqkv;
    b.dk = dqkv + H * D;
    b.dv = dqkv + 2 * H * D;
    for (int d = 0; d < 3; d++) {
        b.dout_stride[d] = out_stride[d];
        b.dq_stride[d] = b.dk_stride[d] = b.dv_stride[d] = in_stride[d];
    }
    st = attn_backward(&b);
    if (st != ATTN_OK) {
        fprintf(stderr, "attn_backward: %s\n", attn_status_string(st));
        return 1;
    }
    double grad_err = 0;
    for (int c = 0; c < H * D; c++) {
        double total = 0;
        for (int j = 0; j < L; j++) total += dqkv[j * 3 * H * D + 2 * H * D + c];
        const double e = fabs(total - L) / L;
        if (!(e <= grad_err)) grad_err = e;
    }
    printf("attn %s on %s with %d thread(s): max error %.2e, backward %.2e\n", attn_version(),
           attn_isa_name(attn_get_isa()), attn_get_num_threads(), err, grad_err);
    free(qkv);
    free(out);
    free(lse);
    free(dout);
    free(dqkv);
    return err < 1e-5 && grad_err < 1e-5 ? 0 : 1;
}
