/// Flax's `flax.linen.dot_product_attention` on the fused kernel:
/// `softmax(where(mask, q kᵀ / √D + bias, finfo.min)) v` for heads in Flax's layout, read in place.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let q = try Tensor(randomNormal: [2, 5, 4, 8], using: &rng)    // [batch, L, H, D]
/// let k = try Tensor(randomNormal: [2, 7, 4, 8], using: &rng)    // [batch, S, H, D]
/// let v = try Tensor(randomNormal: [2, 7, 4, 16], using: &rng)   // [batch, S, H, Dv]
/// let causal = try BooleanMask(shape: [5, 7]) { $0[1] <= $0[0] + 2 }   // flax.linen.make_causal_mask-like
/// let out = try dotProductAttention(query: q, key: k, value: v, mask: causal)   // [2, 5, 4, 16]
/// ```
///
/// As in Flax, the bias is added to the scaled scores before masking, and masked scores are
/// replaced by the most negative finite float, so a row with every score masked gets uniform
/// weights: its output is the mean of the values over all S keys. The results equal Flax's up to
/// rounding, except where the bias alone makes every unmasked score of a row `-infinity`: such a
/// row is the mean of all the values here, where Flax gives NaN (no score masked) or the mean of
/// the values of the masked keys.
///
/// Dropout, off unless `dropout` is given (Flax's `deterministic=True` or `dropout_rate=0`), uses
/// the kernels' counter-based hash instead of a JAX key, with the decisions
/// ``dotProductAttentionWeights(query:key:mask:bias:dropout:broadcastDropout:)`` documents, so
/// `weights · v` computed from that function is this output. With `broadcastDropout` (Flax's
/// default) one keep mask `(L, S)` is shared by every batch and head.
///
/// - Parameters:
///   - query: `[batch..., L, H, D]`, any number of batch dimensions (zero included).
///   - key: `[batch..., S, H, D]`, with the query's batch dimensions, heads and depth.
///   - value: `[batch..., S, H, Dv]`, with the key's batch dimensions, length and heads.
///   - bias: broadcastable to `[batch..., H, L, S]`, added to the scaled scores; `nil` for none.
///   - mask: broadcastable to `[batch..., H, L, S]`; `true` attends; `nil` for none.
///   - dropout: dropout on the attention weights; `nil` (the default) for none.
///   - broadcastDropout: share one dropout mask `(L, S)` across batch and heads (`true`, Flax's
///     default) or draw one decision per weight.
/// - Returns: `[batch..., L, H, Dv]`.
/// Query, key and value may each be `float32`, `float16` or `bfloat16` (the result has the
/// query's dtype); the bias must be `float32`.
///
/// - Throws: `AttentionError.unsupportedDType` (`"bias"`) for a half-precision bias;
///   `.shapeMismatch` (`"query"`, `"key"`, `"value"`, `"bias"`, `"mask"`)
///   for shapes that do not fit; `.invalidArgument` for no heads or an empty depth (an empty batch
///   or query gives an empty result, no key gives zeros) or (`"dropout.probability"`) a
///   probability outside `[0, 1)`; `.outOfMemory` and the kernels' errors.
public func dotProductAttention(
    query: Tensor, key: Tensor, value: Tensor, bias: Tensor? = nil, mask: BooleanMask? = nil,
    dropout: Dropout? = nil, broadcastDropout: Bool = true
) throws -> Tensor {
    let heads = try FlaxHeads(query: query, key: key, value: value)
    let batch = try elementCount(of: heads.batchShape, argument: "query")
    func flattened(_ tensor: Tensor, length: Int) throws -> Tensor {
        try tensor.reshaped([batch, length] + tensor.shape.suffix(2))
    }
    let attentionMask = AttentionMask(
        booleanMask: try mask.map { mask throws(AttentionError) in
            try MultiHeadDotProductAttention.flattenedMask(
                mask, batchShape: heads.batchShape, heads: heads.heads, lengthQ: heads.lengthQ,
                lengthK: heads.lengthK, argument: "mask")
        },
        bias: try bias.map { try heads.flattenedBias($0) })
    let output = try MultiHeadDotProductAttention.AttentionFunction.fused(
        .init(
            query: flattened(query, length: heads.lengthQ), key: flattened(key, length: heads.lengthK),
            value: flattened(value, length: heads.lengthK), mask: attentionMask, dropout: dropout,
            broadcastDropout: broadcastDropout))
    return try output.reshaped(heads.batchShape + Array(output.shape.suffix(3)))
}

/// The sizes of heads in Flax's layout, `[batch..., L, H, D]`, checked as Flax's
/// `dot_product_attention` and `dot_product_attention_weights` check them.
struct FlaxHeads {
    var batchShape: [Int]
    var lengthQ: Int, lengthK: Int, heads: Int, depth: Int

    /// The shape of the scores and weights, `[batch..., H, L, S]`.
    var scoresShape: [Int] { batchShape + [heads, lengthQ, lengthK] }

    /// Checks the query and key (and the value, when given) against each other.
    init(query: Tensor, key: Tensor, value: Tensor?) throws(AttentionError) {
        guard query.rank >= 3 else {
            throw .shapeMismatch(argument: "query", expected: "[batch..., L, H, D] (rank 3 or more)", actual: query.shape)
        }
        let rank = query.rank
        batchShape = Array(query.shape.prefix(rank - 3))
        (lengthQ, heads, depth) = (query.shape[rank - 3], query.shape[rank - 2], query.shape[rank - 1])
        let batch = batchShape.map { "\($0), " }.joined()
        guard key.rank == rank, Array(key.shape.prefix(rank - 3)) == batchShape,
              key.shape[rank - 2] == heads, key.shape[rank - 1] == depth
        else {
            throw .shapeMismatch(
                argument: "key", expected: "[\(batch)S, \(heads), \(depth)] (the query's batch dimensions, heads and depth)",
                actual: key.shape)
        }
        lengthK = key.shape[rank - 3]
        if let value {
            guard value.rank == rank, Array(value.shape.prefix(rank - 1)) == Array(key.shape.prefix(rank - 1)) else {
                throw .shapeMismatch(
                    argument: "value",
                    expected: "[\(batch)\(lengthK), \(heads), Dv] (the key's batch dimensions, length and heads)",
                    actual: value.shape)
            }
        }
        // A batch or a sequence may be empty (the library's rule); heads and depths are sizes.
        guard heads >= 1, depth >= 1 else {
            throw .invalidArgument(
                argument: "query",
                reason: "heads and depth must be at least 1 (a batch or a sequence may be empty), got shape \(query.shape)")
        }
        if let value, value.shape[rank - 1] < 1 {
            throw .invalidArgument(
                argument: "value",
                reason: "its depth must be at least 1 (a batch or a sequence may be empty), got shape \(value.shape)")
        }
    }

    /// The element strides that read `shape` as the scores `[batch..., H, L, S]`.
    func scoreStrides(of shape: [Int], argument: String) throws(AttentionError) -> [Int] {
        guard let strides = broadcastStrides(of: shape, to: scoresShape) else {
            throw .shapeMismatch(
                argument: argument, expected: "a shape broadcastable to \(scoresShape) ([batch..., H, L, S])",
                actual: shape)
        }
        return strides
    }

    /// A bias broadcastable to `[batch..., H, L, S]` as one broadcastable to the kernels'
    /// `(B, H, L, S)`, B the product of the batch dimensions: reshaped when its batch dimensions
    /// are all 1 or all the batch's, expanded over the batch otherwise.
    func flattenedBias(_ bias: Tensor) throws -> Tensor {
        try bias.requireFloat32("bias", reason: "the additive bias is float32 whatever the dtypes of query, key and value")
        _ = try scoreStrides(of: bias.shape, argument: "bias")
        let padded = Array(repeating: 1, count: scoresShape.count - bias.rank) + bias.shape
        let (biasBatch, trailing) = (Array(padded.dropLast(3)), Array(padded.suffix(3)))
        let batch = try elementCount(of: batchShape, argument: "query")
        if biasBatch.allSatisfy({ $0 == 1 }) { return try bias.reshaped([1] + trailing) }
        let expanded = biasBatch == batchShape ? bias : try bias.adding(Tensor(zeros: batchShape + [1, 1, 1]))
        return try expanded.reshaped([batch] + trailing)
    }
}
