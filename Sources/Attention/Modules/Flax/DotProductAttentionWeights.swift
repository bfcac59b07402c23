/// The attention weights of Flax's `dot_product_attention_weights`:
/// `softmax(where(mask, q kᵀ / √D + bias, finfo.min))`, then optional dropout, for heads in
/// Flax's layout.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let q = try Tensor(randomNormal: [2, 5, 4, 8], using: &rng)   // [batch, L, H, D]
/// let k = try Tensor(randomNormal: [2, 7, 4, 8], using: &rng)   // [batch, S, H, D]
/// let w = try dotProductAttentionWeights(query: q, key: k)       // [2, 4, 5, 7]
/// ```
///
/// Masked scores are replaced by the most negative finite float, as in Flax, so a row with every
/// score masked gets uniform weights `1/S`, and a masked score wins over a `-infinity` bias. A row
/// whose every unmasked score is `-infinity` (by the bias) and which has no masked score is NaN.
///
/// Dropout uses the counter-based hash of the kernels (see ``Dropout``), with the counter of
/// weight (b, h, i, j) equal to `offset + i·S + j` when `broadcastDropout` (one mask shared by
/// every batch and head) and to `offset + ((b·H + h)·L + i)·S + j` otherwise, where b is the
/// flattened batch index. These are the decisions ``MultiHeadDotProductAttention`` makes through
/// the fused kernel, so `weights · v` with dropout is that module's attention output.
///
/// - Parameters:
///   - query: `[batch..., L, H, D]`, any number of batch dimensions (zero included).
///   - key: `[batch..., S, H, D]`, with the query's batch dimensions, heads and depth.
///   - mask: broadcastable to `[batch..., H, L, S]`; `true` attends.
///   - bias: broadcastable to `[batch..., H, L, S]`, added to the scaled scores before masking.
///   - dropout: dropout on the weights; `nil` (the default) for none.
///   - broadcastDropout: share one dropout mask `(L, S)` across batch and heads.
/// - Returns: `[batch..., H, L, S]`.
/// The key may be `float16` or `bfloat16` (read in place); the query and the bias must be
/// `float32`, and the weights are `float32`.
///
/// - Throws: `AttentionError.unsupportedDType` (`"query"`, `"bias"`) for a half-precision query
///   or bias; `.shapeMismatch` (`"query"`, `"key"`, `"mask"`, `"bias"`) for
///   shapes that do not fit; `.invalidArgument` for an empty dimension or
///   (`"dropout.probability"`) a probability outside `[0, 1)`; the kernels' errors.
public func dotProductAttentionWeights(
    query: Tensor, key: Tensor, mask: BooleanMask? = nil, bias: Tensor? = nil,
    dropout: Dropout? = nil, broadcastDropout: Bool = true
) throws -> Tensor {
    try query.requireFloat32("query", reason: "the scores are a matrix multiply whose float32 operand is the query (the key may be half precision)")
    try bias?.requireFloat32("bias", reason: "the additive bias is float32")
    let shapes = try FlaxHeads(query: query, key: key, value: nil)
    let (batchShape, lengthQ, lengthK) = (shapes.batchShape, shapes.lengthQ, shapes.lengthK)
    let (heads, depth, scoresShape) = (shapes.heads, shapes.depth, shapes.scoresShape)
    if let dropout, !(dropout.probability >= 0 && dropout.probability < 1) {
        throw AttentionError.invalidArgument(
            argument: "dropout.probability", reason: "must be in [0, 1), got \(dropout.probability)")
    }
    let maskStrides = try mask.map { mask throws(AttentionError) in try shapes.scoreStrides(of: mask.shape, argument: "mask") }
    let biasStrides = try bias.map { bias throws(AttentionError) in try shapes.scoreStrides(of: bias.shape, argument: "bias") }
    let batch = try elementCount(of: batchShape, argument: "query")
    var weights = try Tensor(zeros: scoresShape)
    let context = "query \(query.shape), key \(key.shape)"
    if weights.count == 0 { return weights }

    // Scores, one (b, h) at a time: q (L, D) and k (S, D) read in place with row stride H·D.
    let rowStride = heads * depth
    try withExtendedLifetime((query, key, weights)) { () throws(AttentionError) in
        let q = UnsafePointer(query.storage.buffer.baseAddress!), k = UnsafeRawPointer(key.storage.bytes.baseAddress!)
        let keySize = key.dtype.byteSize
        let out = weights.storage.buffer.baseAddress!
        for b in 0..<batch {
            for h in 0..<heads {
                try multiplyMatrices(
                    m: lengthQ, n: lengthK, k: depth,
                    a: q + b * lengthQ * rowStride + h * depth, lda: rowStride,
                    b: k + (b * lengthK * rowStride + h * depth) * keySize, ldb: rowStride, bTransposed: true,
                    bType: key.dtype,
                    c: out + (b * heads + h) * lengthQ * lengthK, ldc: lengthK, context: context)
            }
        }
    }

    // Scale, bias, mask (finfo.min, as Flax), then the row softmax. Element `index` of the
    // scores has the multi-index `scoresShape` gives it; a broadcast operand is read at the dot
    // product of that index with its strides.
    let scale = Float(1 / Double(depth).squareRoot())
    let biasValues = bias?.scalars
    let maskValues = mask?.values
    let denseStrides = contiguousStrides(of: scoresShape)
    func offset(of index: Int, _ strides: [Int]) -> Int {
        var offset = 0, rest = index
        for (dense, stride) in zip(denseStrides, strides) {
            offset += rest / dense * stride
            rest %= dense
        }
        return offset
    }
    try weights.withUnsafeMutableBufferPointer { w throws(AttentionError) in
        for index in w.indices {
            var score = w[index] * scale
            if let biasValues, let biasStrides { score += biasValues[offset(of: index, biasStrides)] }
            if let maskValues, let maskStrides, !maskValues[offset(of: index, maskStrides)] {
                score = -Float.greatestFiniteMagnitude
            }
            w[index] = score
        }
        try softmaxRows(
            w.baseAddress, rows: batch * heads * lengthQ, length: lengthK, stride: lengthK, maskedRows: .nan,
            context: context)
    }

    if let dropout, dropout.probability > 0 {
        let keep = dropout.decision()
        let rows = lengthQ * lengthK
        weights.withUnsafeMutableBufferPointer { w in
            for index in w.indices {
                // index = ((b·H + h)·L + i)·S + j; broadcast keeps only i·S + j.
                w[index] = keep(w[index], broadcastDropout ? index % rows : index)
            }
        }
    }
    return weights
}
