/*
 * dense_template.h: the row kernels behind the dense entry points of dense.c (layer norm, element-wise
 * activations, row sums and extrema), compiled once per ISA through kernel_table_template.h. Each works on one row or one
 * contiguous range and is single-threaded; dense.c validates and splits the work.
 *
 * Accuracy (float32 results against a double-precision reference; largest errors measured over
 * dense sweeps, AVX2 and SSE2 alike):
 *   - row sums, means and variances are accumulated in double (the fast variance about the row's
 *     first element), so a layer norm's statistics are exact to float precision whatever the row
 *     length and however large the mean is next to the spread;
 *   - exp 1.3 ulp over its whole range, subnormal results included; sigmoid 2.4 ulp, silu 3.3,
 *     tanh 1.6; erf 2.9 ulp over [-10, 10] and gelu (exact) 5.4 ulp everywhere, its negative tail
 *     included (computed from erfc there, where 1 + erf cancels). gelu_tanh is as accurate except
 *     where it is ill-conditioned (x < -2 or so: rounding its argument to float moves the result
 *     by about |2u| ulp, as in every float32 implementation).
 * Each lane is computed independently, and range tails go through the same vector code with partial
 * loads, so a value's result never depends on where it sits in a range (or on the thread count).
 */

/* ---- double accumulation ---- */

/* VL/2 doubles: one vector's worth of floats, widened in two halves. */
typedef double vd __attribute__((vector_size(ATTN_VL * 4)));
typedef float vf_half_unaligned __attribute__((vector_size(ATTN_VL * 2), aligned(4), may_alias));

ATTN_INLINE vd dense_widen(const float *p) { return __builtin_convertvector(*(const vf_half_unaligned *)p, vd); }

ATTN_INLINE double dense_hsum(vd a) {
    double s = 0.0;
    for (int l = 0; l < ATTN_VL / 2; l++) s += a[l];
    return s;
}

/* Sum of x[0..n) in double. */
static double sum_row(const float *x, int64_t n) {
    vd s0 = {0}, s1 = {0};
    int64_t j = 0;
    for (; j + ATTN_VL <= n; j += ATTN_VL) {
        s0 += dense_widen(x + j);
        s1 += dense_widen(x + j + ATTN_VL / 2);
    }
    double s = dense_hsum(s0 + s1);
    for (; j < n; j++) s += x[j];
    return s;
}

/*
 * The index of the first largest element of sign * x[0..n) (n >= 1; sign 1 for the maximum, -1 for
 * the minimum: negation is exact), or of the first NaN when the row has one, as NumPy's argmax and
 * argmin. One vector pass finds the extremum, NaN-blind, and whether a NaN was seen (two running
 * extrema, for two independent dependency chains); a second finds the first element equal to it
 * and stops there, so a row costs 1 to 2 reads. Comparisons are exact, so the result does not depend
 * on the vector width: every ISA returns the same index.
 */
static int64_t extremum_row(const float *x, int64_t n, float sign) {
    const vf s = vsplat(sign);
    vf m0 = vsplat(-INFINITY), m1 = m0;
    vi nan = {0};
    int64_t j = 0;
    for (; j + 2 * ATTN_VL <= n; j += 2 * ATTN_VL) {
        const vf a = vload(x + j) * s, b = vload(x + j + ATTN_VL) * s;
        nan |= (a != a) | (b != b);
        m0 = vselect(a > m0, a, m0);
        m1 = vselect(b > m1, b, m1);
    }
    m0 = vselect(m1 > m0, m1, m0);
    float best = -INFINITY;
    for (int l = 0; l < ATTN_VL; l++) best = m0[l] > best ? m0[l] : best;
    int any_nan = vany(nan);
    for (int64_t k = j; k < n; k++) {
        const float v = x[k] * sign;
        any_nan |= v != v;
        best = v > best ? v : best;
    }
    if (any_nan) {
        for (int64_t k = 0;; k++)
            if (x[k] != x[k]) return k;
    }
    /* best is an element of the row (or -inf, and then every element is -inf): the scans stop. */
    const vf target = vsplat(best);
    for (j = 0; j + ATTN_VL <= n; j += ATTN_VL)
        if (vany(vload(x + j) * s == target)) break;
    for (;; j++)
        if (x[j] * sign == best) return j;
}

/* Sums of d = x - shift and of d^2 over x[0..n) in double, in one pass. */
static void shifted_sums(const float *x, int64_t n, double shift, double *sum, double *squares) {
    vd s0 = {0}, s1 = {0}, q0 = {0}, q1 = {0};
    vd k;
    for (int l = 0; l < ATTN_VL / 2; l++) k[l] = shift;
    int64_t j = 0;
    for (; j + ATTN_VL <= n; j += ATTN_VL) {
        const vd a = dense_widen(x + j) - k, b = dense_widen(x + j + ATTN_VL / 2) - k;
        s0 += a;
        s1 += b;
        q0 += a * a;
        q1 += b * b;
    }
    double s = dense_hsum(s0 + s1), q = dense_hsum(q0 + q1);
    for (; j < n; j++) {
        const double d = (double)x[j] - shift;
        s += d;
        q += d * d;
    }
    *sum = s;
    *squares = q;
}

/* Sum of (x - mean)^2 over x[0..n) in double. */
static double centered_squares(const float *x, int64_t n, double mean) {
    vd q0 = {0}, q1 = {0};
    vd m;
    for (int l = 0; l < ATTN_VL / 2; l++) m[l] = mean;
    int64_t j = 0;
    for (; j + ATTN_VL <= n; j += ATTN_VL) {
        const vd a = dense_widen(x + j) - m, b = dense_widen(x + j + ATTN_VL / 2) - m;
        q0 += a * a;
        q1 += b * b;
    }
    double q = dense_hsum(q0 + q1);
    for (; j < n; j++) q += ((double)x[j] - mean) * ((double)x[j] - mean);
    return q;
}

/* ---- layer norm ---- */

/*
 * out[0..n) = (x - mean) / sqrt(var + eps) * weight + bias for one row x[0..n), mean 0 for RMS (see
 * attn_layer_norm; weight and bias may be NULL; out may equal x), and the mean and rstd =
 * 1/sqrt(var + eps) into *mean_out and *rstd_out when not NULL. The statistics are in double; x - mean
 * is formed in float as (x - mean_hi) - mean_lo, mean split into two floats, so it is exact to
 * rounding even when the mean is large next to the spread (x - mean_hi is then exact).
 */
static void layer_norm_row(float *out, const float *x, int64_t n, const float *weight, const float *bias, float eps,
                           attn_variance variance, float *mean_out, float *rstd_out) {
    double mean, var;
    if (variance == ATTN_VARIANCE_RMS) {
        mean = 0.0; /* RMSNorm: the mean square about zero */
        var = centered_squares(x, n, 0.0) / (double)n;
    } else if (variance == ATTN_VARIANCE_FAST) {
        /* mean(x^2) - mean^2 taken about x[0] rather than 0 (the same value in exact arithmetic): the
         * cancellation then costs digits in proportion to ((mean - x[0]) / std)^2, not (mean / std)^2,
         * so in double it is as accurate as the two-pass variance, in one pass. */
        double sum, squares;
        shifted_sums(x, n, x[0], &sum, &squares);
        const double shifted_mean = sum / (double)n;
        mean = x[0] + shifted_mean;
        var = squares / (double)n - shifted_mean * shifted_mean;
        if (var < 0.0) var = 0.0;
    } else {
        mean = sum_row(x, n) / (double)n;
        var = centered_squares(x, n, mean) / (double)n;
    }
    const float mean_hi = (float)mean, mean_lo = (float)(mean - (double)mean_hi);
    const float rstd = (float)(1.0 / sqrt(var + (double)eps));
    if (mean_out) *mean_out = (float)mean;
    if (rstd_out) *rstd_out = rstd;
    const vf hi = vsplat(mean_hi), lo = vsplat(mean_lo), r = vsplat(rstd);
    int64_t j = 0;
    for (; j + ATTN_VL <= n; j += ATTN_VL) {
        vf y = (vload(x + j) - hi - lo) * r;
        if (weight) y *= vload(weight + j);
        if (bias) y += vload(bias + j);
        vstore(out + j, y);
    }
    if (j < n) {
        const int len = (int)(n - j);
        vf y = (vload_partial(x + j, len) - hi - lo) * r;
        if (weight) y *= vload_partial(weight + j, len);
        if (bias) y += vload_partial(bias + j, len);
        vstore_partial(out + j, y, len);
    }
}

/* ---- exp ---- */

static const float DENSE_LOG2E = 1.44269504088896340736f;

/*
 * scale * exp(hi + lo), lane-wise, for a small correction lo (|lo| < 1): n = round((hi + lo) / ln2),
 * then r = hi - n ln2 + lo with ln2 split Cody-Waite style (n * 0.693359375 is exact for |n| < 2^15),
 * so r is exact to rounding however large hi is, and exp(r) = 2^(r log2e) comes from vexp2 on
 * |r log2e| <= 1/2. scale (|scale| within 2^±60) multiplies exp(r) before 2^n is applied, as two
 * factors, so the one rounding into the subnormals (or to inf) is the last one: results are a few
 * ulp over the whole range. hi > 89 overflows to inf and hi < -120 underflows to scale * 0. NaN
 * stays NaN.
 */
ATTN_INLINE vf dense_exp2parts(vf hi, vf lo, vf scale) {
    typedef uint32_t vu __attribute__((vector_size(ATTN_VL * 4)));
    const vi under = hi < -120.0f;
    hi = vselect(under, vsplat(-120.0f), hi);
    hi = vselect(hi > 89.0f, vsplat(89.0f), hi);
    const vf round_magic = vsplat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    const vf n = ((hi + lo) * DENSE_LOG2E + round_magic) - round_magic;
    vf r = hi - n * 0.693359375f;
    r = r - n * -2.12194440e-4f; /* ln2 - 0.693359375 */
    r = r + lo;
    const vf p = vexp2(r * DENSE_LOG2E) * scale;
    const vi k = __builtin_convertvector(n, vi);
    const vi k1 = k >> 1, k2 = k - k1; /* each in [-88, 65]: 2^k1 and 2^k2 are normal floats */
    const vf y = p * (vf)(((vu)(k1 + 127)) << 23) * (vf)(((vu)(k2 + 127)) << 23);
    return vselect(under, scale * 0.0f, y);
}

ATTN_INLINE vf dense_abs(vf x) { return (vf)((vi)x & ~(vi)vsplat(-0.0f)); }

/* ---- activations ---- */

ATTN_INLINE vf act_relu(vf x) { return vselect(x < 0.0f, vsplat(0.0f), x); } /* NaN stays NaN */

/* 1 / (1 + exp(-x)), as e / (1 + e) for x < 0, with e = exp(-|x|) <= 1: never overflows, and exact
 * to rounding down to the subnormal results of x < -87. */
ATTN_INLINE vf act_sigmoid(vf x) {
    const vf e = dense_exp2parts(-dense_abs(x), vsplat(0.0f), vsplat(1.0f));
    return vselect(x < 0.0f, e, vsplat(1.0f)) / (1.0f + e);
}

/* x sigmoid(x) = x / (1 + e^-x). For x < 0 the numerator x e^x comes from the exp itself (scale x),
 * so it does not pass through a subnormal e^x on the way to a normal result (x < -87). */
ATTN_INLINE vf act_silu(vf x) {
    const vi neg = x < 0.0f;
    const vf w = dense_exp2parts(-dense_abs(x), vsplat(0.0f), vselect(neg, x, vsplat(1.0f)));
    return vselect(neg, w, x) / (1.0f + vselect(neg, w / x, w));
}

/*
 * tanh(|x|), then the sign of x: (1 - e) / (1 + e) with e = exp(-2|x|) for |x| >= 0.625 (no
 * cancellation: e <= 0.29), and for |x| < 0.625 a + a^3 P(a^2), a fit of degree 4 in a^2 with
 * relative error 4e-9 before rounding.
 */
ATTN_INLINE vf act_tanh(vf x) {
    const vi sign = (vi)x & (vi)vsplat(-0.0f);
    const vf a = dense_abs(x);
    const vf e = dense_exp2parts(-2.0f * a, vsplat(0.0f), vsplat(1.0f));
    const vf big = (1.0f - e) / (1.0f + e);
    const vf s = a * a;
    vf p = vsplat(-0.00570495287f);
    p = vfma(p, s, vsplat(0.0206390545f));
    p = vfma(p, s, vsplat(-0.0537397042f));
    p = vfma(p, s, vsplat(0.133314416f));
    p = vfma(p, s, vsplat(-0.333332807f));
    const vf small = vfma(a * s, p, a);
    return (vf)((vi)vselect(a < 0.625f, small, big) | sign);
}

/* erf(z) for |z| <= 0.5: z Q(z^2), a fit of degree 4 in z^2 with relative error 1.4e-9. */
ATTN_INLINE vf dense_erf_small(vf z) {
    const vf s = z * z;
    vf q = vsplat(0.00471798936f);
    q = vfma(q, s, vsplat(-0.0267571844f));
    q = vfma(q, s, vsplat(0.112828225f));
    q = vfma(q, s, vsplat(-0.376126081f));
    q = vfma(q, s, vsplat(1.12837911f));
    return z * q;
}

/*
 * scale * erfc(a) for a >= 0.5, given a^2 = q_hi + q_lo with q_hi exact (a float with at most 12
 * significant bits, squared) and q_lo small: erfc(a) = t/2 exp(-a^2 + R(t)) with t = 1 / (1 + a/2)
 * and R a fit of degree 9 in t - 0.4826 over a in [0.5, 10.1] (error 1.2e-9; |R| < 0.44, so its
 * rounding is small). The split keeps exp(-a^2) exact to rounding although a^2 reaches 100: rounding
 * a^2 itself would cost up to 100 ulp. a > 10.1 (erfc < 1e-45, and infinity) gives scale * 0; NaN
 * stays NaN.
 */
ATTN_INLINE vf dense_erfc_tail(vf a, vf q_hi, vf q_lo, vf scale) {
    const vf t = 1.0f / (1.0f + 0.5f * a);
    const vf u = t - 0.482644618f;
    vf r = vsplat(0.255910218f);
    r = vfma(r, u, vsplat(-0.0914585218f));
    r = vfma(r, u, vsplat(-0.281489551f));
    r = vfma(r, u, vsplat(0.148375452f));
    r = vfma(r, u, vsplat(0.268356293f));
    r = vfma(r, u, vsplat(-0.181896836f));
    r = vfma(r, u, vsplat(-0.363352954f));
    r = vfma(r, u, vsplat(0.208606437f));
    r = vfma(r, u, vsplat(1.33837759f));
    r = vfma(r, u, vsplat(-0.00193587667f));
    const vf e = dense_exp2parts(-q_hi, r - q_lo, scale * 0.5f * t);
    return vselect(a > 10.1f, scale * 0.0f, e);
}

/* x with the low 12 bits of the significand cleared: its square is exact in float. */
ATTN_INLINE vf dense_high_bits(vf x) { return (vf)((vi)x & ~0xfff); }

/*
 * x/2 (1 + erf(x/sqrt 2)). For |x/sqrt 2| < 0.5 directly, with the erf fit; beyond, from
 * w = erfc(|x|/sqrt 2) times x/2 for x < 0 (the tail, where 1 + erf would cancel to nothing: the
 * factor x/2 goes into the exp so the result is rounded once even when tiny) or times 1/2 for x > 0,
 * giving x (1 - w). The erfc gets x^2/2 split exactly from x itself, not from the rounded x/sqrt 2,
 * so the tail is a few ulp even at x = -13 where gelu is 1e-38.
 */
ATTN_INLINE vf act_gelu(vf x) {
    const vi neg = x < 0.0f;
    const vf z = x * 0.707106781186547524f;
    const vf a = dense_abs(z);
    const vf xh = dense_high_bits(x), xl = x - xh;
    const vf w = dense_erfc_tail(a, 0.5f * (xh * xh), 0.5f * (xl * (x + xh)), vselect(neg, 0.5f * x, vsplat(0.5f)));
    const vf big = vselect(neg, w, x * (1.0f - w));
    const vf small = x * (0.5f + 0.5f * dense_erf_small(z));
    return vselect(a < 0.5f, small, big);
}

/* x/2 (1 + tanh(u)) = x sigmoid(2u), 2u = x (c1 + c3 x^2): the sigmoid form has no cancellation in
 * the negative tail. (There the function is ill-conditioned: rounding 2u to a float, as any float32
 * implementation does, moves the result by about |2u| ulp.) */
ATTN_INLINE vf act_gelu_tanh(vf x) {
    const float c1 = (float)(2.0 * 0.79788456080286535588), c3 = (float)(2.0 * 0.79788456080286535588 * 0.044715);
    return x * act_sigmoid(x * (c1 + c3 * (x * x)));
}

/* out[j] = fn(x[j]) (times times[j] when times is not NULL) for j < count, the last partial vector
 * through the same code. */
#define DENSE_MAP(out, x, times, count, fn)                                                           \
    do {                                                                                              \
        int64_t j_ = 0;                                                                               \
        for (; j_ + ATTN_VL <= (count); j_ += ATTN_VL) {                                              \
            const vf y_ = fn(vload((x) + j_));                                                        \
            vstore((out) + j_, (times) ? y_ * vload((times) + j_) : y_);                              \
        }                                                                                             \
        if (j_ < (count)) {                                                                           \
            const int len_ = (int)((count) - j_);                                                     \
            const vf y_ = fn(vload_partial((x) + j_, len_));                                          \
            vstore_partial((out) + j_, (times) ? y_ * vload_partial((times) + j_, len_) : y_, len_);  \
        }                                                                                             \
    } while (0)

ATTN_INLINE vf act_identity(vf x) { return x; }

/* out[0..count) = kind(x[0..count)), times times[0..count) when it is not NULL (gated activations,
 * attn_gated_activate); out may equal x, not times. */
static void activate(float *out, const float *x, const float *times, int64_t count, attn_activation kind) {
    switch (kind) {
    case ATTN_ACTIVATION_IDENTITY:
        if (times) DENSE_MAP(out, x, times, count, act_identity);
        else if (out != x) memmove(out, x, (size_t)count * sizeof(float));
        break;
    case ATTN_ACTIVATION_RELU: DENSE_MAP(out, x, times, count, act_relu); break;
    case ATTN_ACTIVATION_GELU: DENSE_MAP(out, x, times, count, act_gelu); break;
    case ATTN_ACTIVATION_GELU_TANH: DENSE_MAP(out, x, times, count, act_gelu_tanh); break;
    case ATTN_ACTIVATION_SIGMOID: DENSE_MAP(out, x, times, count, act_sigmoid); break;
    case ATTN_ACTIVATION_SILU: DENSE_MAP(out, x, times, count, act_silu); break;
    case ATTN_ACTIVATION_TANH: DENSE_MAP(out, x, times, count, act_tanh); break;
    }
}

#undef DENSE_MAP
