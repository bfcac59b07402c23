// The one routine behind every returned attention weight (PyTorch's need_weights path, Equinox's
// and Flax's dot_product_attention_weights, the tutorial's attn_weights). Internal: the modules
// return its results.

/// The attention weights `(B, Hq, Lq, Lk)` of heads read in place, as the reference libraries
/// compute them: the query scaled first (`q · scale`, as PyTorch's `q_scaled`, Flax's and
/// Equinox's `query / √depth`), one matrix multiply per (batch, head) accumulated onto the
/// additive bias, every masked score replaced, a row softmax, then dropout with the kernels' counters (`((b·Hq + h)·Lq + i)·Lk + j`,
/// or `i·Lk + j` for every (b, h) with `broadcastDropout`), so the fused kernel drops the same
/// weights for the same seed.
///
/// `maskedRows` says what a fully masked row gives. `.meanOfValues` is Equinox's and Flax's
/// masking: a masked score is replaced by the most negative float (`finfo.min`), so such a row is
/// uniform while a row of `-infinity` biases is still NaN, as in their softmax. Otherwise masked
/// scores are `-infinity` and a row with no finite score is NaN (PyTorch's plain softmax) or
/// zeros.
///
/// The query is `float32`; the key may be half precision (widened exactly by the multiply).
///
/// - Throws: `AttentionError` from the allocation or mapped from the kernels' status.
func attentionWeights(
    query: StridedHeads, key: StridedHeads, mask: KernelMask, scale: Float, maskedRows: MaskedRowPolicy,
    dropout: Dropout? = nil, broadcastDropout: Bool = false
) throws(AttentionError) -> Tensor {
    let (batch, heads, lengthQ, lengthK) = (query.batch, query.heads, query.length, key.length)
    var weights = try Tensor(uninitializedShape: [batch, heads, lengthQ, lengthK], argument: "query")
    if weights.count == 0 { return weights }
    let scaled = try scaledCopy(query, by: scale)
    let group = heads / key.heads, block = lengthQ * lengthK, dim = query.dim
    let context = "query \(query.summary), key \(key.summary)"
    try withExtendedLifetime((scaled, key.tensor, mask.bias?.tensor, weights)) { () throws(AttentionError) in
        let w = weights.storage.buffer.baseAddress!
        let q = UnsafePointer(scaled.storage.buffer.baseAddress!)
        let k = key.pointer!
        for b in 0..<batch {
            for h in 0..<heads {
                let c = w + (b * heads + h) * block
                let biased = mask.bias.map { copyBias(into: c, rows: lengthQ, columns: lengthK, from: $0, batch: b, head: h) } != nil
                try multiplyMatrices(
                    m: lengthQ, n: lengthK, k: dim, a: q + (b * lengthQ * heads + h) * dim, lda: heads * dim,
                    b: k + (b * key.batchStride + h / group * key.headStride) * key.dtype.byteSize,
                    ldb: key.positionStride, bTransposed: true, bType: key.dtype, c: c, ldc: lengthK,
                    accumulate: biased, context: context)
            }
        }
        let fill: Float = maskedRows == .meanOfValues ? -.greatestFiniteMagnitude : -.infinity
        maskScores(w, mask, with: fill, batch: batch, heads: heads, lengthQ: lengthQ, lengthK: lengthK)
        try softmaxRows(
            w, rows: batch * heads * lengthQ, length: lengthK, stride: lengthK,
            maskedRows: maskedRows == .zero ? .zero : .nan, context: context)
    }
    if let dropout, dropout.probability > 0 {
        let keep = dropout.decision()
        weights.withUnsafeMutableBufferPointer { w in
            for index in w.indices { w[index] = keep(w[index], broadcastDropout ? index % block : index) }
        }
    }
    return weights
}

/// A dense `(B, L, H·D)` float32 copy of `heads` multiplied by `factor`.
private func scaledCopy(_ heads: StridedHeads, by factor: Float) throws(AttentionError) -> Tensor {
    try heads.tensor.requireFloat32(
        "query", reason: "attention weights are a matrix multiply whose float32 operand is the query")
    let result = try Tensor(uninitializedShape: [heads.batch, heads.length, heads.width], argument: "query")
    let out = result.storage.buffer.baseAddress!
    withExtendedLifetime(heads.tensor) {
        let base = heads.floatPointer!
        for b in 0..<heads.batch {
            for l in 0..<heads.length {
                for h in 0..<heads.heads {
                    let source = base + b * heads.batchStride + l * heads.positionStride + h * heads.headStride
                    let target = out + ((b * heads.length + l) * heads.heads + h) * heads.dim
                    for d in 0..<heads.dim { target[d] = source[d] * factor }
                }
            }
        }
    }
    return result
}

/// Copies the bias scores of (`batch`, `head`) into the `(rows, columns)` block `c` through the
/// bias's broadcast strides.
private func copyBias(
    into c: UnsafeMutablePointer<Float>, rows: Int, columns: Int, from bias: (tensor: Tensor, strides: ScoreStrides),
    batch: Int, head: Int
) {
    let s = bias.strides
    let source = bias.tensor.storage.buffer.baseAddress! + batch * s.batch + head * s.head
    for i in 0..<rows {
        for j in 0..<columns { c[i * columns + j] = source[i * s.query + j * s.key] }
    }
}

/// Replaces every score the mask hides by `fill`: causality, the window, key lengths and the
/// boolean mask, with the kernels' semantics (attn.h).
private func maskScores(
    _ w: UnsafeMutablePointer<Float>, _ mask: KernelMask, with fill: Float, batch: Int, heads: Int, lengthQ: Int,
    lengthK: Int
) {
    let shift = mask.causal == .topLeft ? 0 : lengthK - lengthQ
    for b in 0..<batch {
        let visibleKeys = mask.keyLengths?[b] ?? lengthK
        for h in 0..<heads {
            for i in 0..<lengthQ {
                let row = w + ((b * heads + h) * lengthQ + i) * lengthK
                let anchor = i + shift
                for j in 0..<lengthK where isHidden(j, anchor: anchor, row: (b, h, i), visibleKeys, mask) {
                    row[j] = fill
                }
            }
        }
    }
}

/// Whether key `j` is hidden from query `row` whose causal and window anchor is `anchor`.
private func isHidden(_ j: Int, anchor: Int, row: (b: Int, h: Int, i: Int), _ visibleKeys: Int, _ mask: KernelMask) -> Bool {
    if j >= visibleKeys { return true }
    if mask.causal != .none && j > anchor { return true }
    if let left = mask.window.left, j < anchor - left { return true }
    if let right = mask.window.right, j > anchor + right { return true }
    if let allowed = mask.allowed {
        let s = allowed.strides
        if !allowed.values[row.b * s.batch + row.h * s.head + row.i * s.query + j * s.key] { return true }
    }
    return false
}
