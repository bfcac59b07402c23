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
    let shapes = try FlaxHeads(query: query, key: key, value: nil)
    if let dropout, !(dropout.probability >= 0 && dropout.probability < 1) {
        throw AttentionError.invalidArgument(
            argument: "dropout.probability", reason: "must be in [0, 1), got \(dropout.probability)")
    }
    let batch = try elementCount(of: shapes.batchShape, argument: "query")
    let scores = [batch, shapes.heads, shapes.lengthQ, shapes.lengthK]
    var kernelMask = KernelMask()
    if let mask {
        let flat = try MultiHeadDotProductAttention.flattenedMask(
            mask, batchShape: shapes.batchShape, heads: shapes.heads, lengthQ: shapes.lengthQ, lengthK: shapes.lengthK,
            argument: "mask")
        kernelMask.allowed = (flat.values, ScoreStrides(broadcasting: flat.shape, to: scores)!)
    }
    if let bias {
        let flat = try shapes.flattenedBias(bias)
        kernelMask.bias = (flat, ScoreStrides(broadcasting: flat.shape, to: scores)!)
    }
    func heads(_ tensor: Tensor, length: Int) -> StridedHeads {
        StridedHeads(dense: tensor, layout: .sequence, batch: batch, length: length, heads: shapes.heads, dim: shapes.depth)
    }
    let weights = try attentionWeights(
        query: heads(query, length: shapes.lengthQ), key: heads(key, length: shapes.lengthK), mask: kernelMask,
        scale: Float(1 / Double(shapes.depth).squareRoot()), maskedRows: .meanOfValues, dropout: dropout,
        broadcastDropout: broadcastDropout)
    return try weights.reshaped(shapes.scoresShape)
}
