/*
 * optimizer_template.h: the element loops of attn_optimizer_step (optimizer.c), compiled once per
 * ISA through kernel_table_template.h: plain loops over contiguous floats the compiler vectorises
 * for each translation unit's instruction set. The arithmetic follows torch.optim's formulas in
 * their order (attn.h).
 */

/* SGD over [i0, i1). */
static void sgd_range(const attn_optimizer_step_params *p, const attn_optimizer_scalars *s, int64_t i0, int64_t i1) {
    float *restrict param = p->param, *restrict buf = p->momentum_buffer;
    const float *restrict grad = p->grad;
    const float sign = p->maximize ? -1.0f : 1.0f;
    const int first = p->step == 1;
    /* torch's add(x, alpha=a) is one fused multiply-add (its vector kernels' fmadd), and mul_ is
     * rounded on its own: spelled out with fmaf so that contraction cannot pick another grouping. */
    for (int64_t i = i0; i < i1; i++) {
        float g = fmaf(param[i], s->weight_decay, sign * grad[i]);
        if (buf) {
            const float kept = s->momentum * buf[i];
            buf[i] = first ? g : fmaf(g, s->one_minus_dampening, kept);
            g = p->nesterov ? fmaf(buf[i], s->momentum, g) : buf[i];
        }
        param[i] = fmaf(g, -s->lr, param[i]);
    }
}

/* Adam and AdamW over [i0, i1). */
static void adam_range(const attn_optimizer_step_params *p, const attn_optimizer_scalars *s, int64_t i0, int64_t i1) {
    float *restrict param = p->param, *restrict m = p->first_moment, *restrict v = p->second_moment;
    float *restrict vmax = p->max_second_moment;
    const float *restrict grad = p->grad;
    const float sign = p->maximize ? -1.0f : 1.0f;
    const int decoupled = p->kind == ATTN_OPTIMIZER_ADAMW;
    for (int64_t i = i0; i < i1; i++) {
        float g = sign * grad[i];
        if (decoupled) param[i] *= s->decay;
        else g += s->weight_decay * param[i];
        m[i] += s->beta1_complement * (g - m[i]);
        v[i] = s->beta2 * v[i] + s->beta2_complement * g * g;
        float second = v[i];
        if (vmax) second = vmax[i] = vmax[i] > second ? vmax[i] : second;
        param[i] -= s->step_size * (m[i] / (sqrtf(second) / s->bias2_sqrt + s->eps));
    }
}

static void optimizer_range(const attn_optimizer_step_params *p, const attn_optimizer_scalars *s, int64_t i0, int64_t i1) {
    if (p->kind == ATTN_OPTIMIZER_SGD) sgd_range(p, s, i0, i1);
    else adam_range(p, s, i0, i1);
}

static int64_t count_nonfinite(const float *x, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !(x[i] - x[i] == 0.0f); /* NaN for inf and NaN */
    return bad;
}
