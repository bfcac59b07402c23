/*
 * softmax_template.h: the vectorised row softmax, compiled once per ISA through kernel_table_template.h.
 * Used by the unfused attention path and for attention weights a module returns.
 */

/*
 * out[0..n) = scale · softmax(x) + offset: max, then exp(x - max) and its sum in one pass, then one
 * multiply-add by scale/sum (scale 1 and offset 0: the softmax itself; out may equal x). *row_max
 * and *row_sum receive the maximum and the sum (for the log-sum-exp). A row whose entries are all
 * -inf has sum 0 and is left as exp(-inf) = 0 everywhere, for the caller's masked-row policy. A NaN
 * or +inf entry makes the sum NaN; the row is then left as the unnormalised exponentials (its
 * maximum ignores NaN), and callers turn it into NaN: attention through the product with V,
 * attn_softmax_rows and attn_cross_entropy explicitly.
 */
static void softmax_row(float *out, const float *x, int64_t n, float scale, float offset, float *row_max,
                        float *row_sum) {
    const float log2e = 1.44269504088896340736f;
    const int64_t full = n - n % ATTN_VL;
    vf m = vsplat(-INFINITY);
    for (int64_t j = 0; j < full; j += ATTN_VL) m = vmax(m, vload(x + j));
    float mx = -INFINITY;
    for (int l = 0; l < ATTN_VL; l++) mx = m[l] > mx ? m[l] : mx;
    for (int64_t j = full; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    /* Exponents are taken against 0 when everything is -inf, so exp2(-inf) = 0, not NaN. */
    const float shift = mx == -INFINITY ? 0.0f : mx;
    vf s = vsplat(0.0f);
    for (int64_t j = 0; j < full; j += ATTN_VL) {
        vf e = vexp2((vload(x + j) - shift) * log2e);
        s += e;
        vstore(out + j, e);
    }
    if (full < n) {
        const int tail = (int)(n - full);
        vf t = vload_partial(x + full, tail) - shift;
        vf e = vexp2(t * log2e);
        /* Lanes past the row are zeros in t, so exp would be 1 there: zero them before summing. */
        vi lane;
        for (int l = 0; l < ATTN_VL; l++) lane[l] = l;
        e = vselect(lane < tail, e, vsplat(0.0f));
        s += e;
        vstore_partial(out + full, e, tail);
    }
    float sum = 0.0f;
    for (int l = 0; l < ATTN_VL; l++) sum += s[l];
    *row_max = mx;
    *row_sum = sum;
    if (!(sum > 0.0f)) return;
    const float a = scale / sum;
    const vf va = vsplat(a), vb = vsplat(offset);
    for (int64_t j = 0; j < full; j += ATTN_VL) vstore(out + j, vfma(vload(out + j), va, vb));
    for (int64_t j = full; j < n; j++) out[j] = out[j] * a + offset;
}
