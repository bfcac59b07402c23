// The computation shared by the tutorial's attention modules (SelfAttention, CrossAttention,
// CausalSelfAttention, MultiHeadAttentionWrapper): per-head weights (dIn, dOut) applied as x·W,
// all heads' projections in one matrix multiply over the weights concatenated column-wise, and one
// attention call over every head, read in place from that product.

/// One tutorial head's weights: `W_query` and `W_key` `(dIn, dOutKQ)`, `W_value` `(dIn, dOutV)`.
struct TutorialHeadWeights {
    var query: Tensor
    var key: Tensor
    var value: Tensor
    /// How the parameters are named in errors (`"W_query"`, `"heads.1.W_query"`).
    var prefix: String
}

/// Checks one head's weights and returns `(dIn, dOutKQ, dOutV)`.
func validateTutorialWeights(_ head: TutorialHeadWeights) throws(AttentionError) -> (dIn: Int, kq: Int, v: Int) {
    let q = head.query
    guard q.rank == 2, q.shape[0] >= 1, q.shape[1] >= 1 else {
        throw .shapeMismatch(
            argument: head.prefix + "W_query", expected: "(dIn, dOutKQ), both at least 1", actual: q.shape)
    }
    guard head.key.shape == q.shape else {
        throw .shapeMismatch(
            argument: head.prefix + "W_key", expected: "\(q.shape) (dIn, dOutKQ), the shape of W_query",
            actual: head.key.shape)
    }
    let v = head.value
    guard v.rank == 2, v.shape[0] == q.shape[0], v.shape[1] >= 1 else {
        throw .shapeMismatch(
            argument: head.prefix + "W_value", expected: "[\(q.shape[0]), dOutV] (dIn, dOutV), dOutV at least 1",
            actual: v.shape)
    }
    return (q.shape[0], q.shape[1], v.shape[1])
}

/// Checks every head's weights and that all heads have the sizes of the first; returns them.
func validateTutorialHeads(_ heads: [TutorialHeadWeights]) throws(AttentionError) -> (dIn: Int, kq: Int, v: Int) {
    guard let first = heads.first else {
        throw .invalidArgument(argument: "heads", reason: "must hold at least one head")
    }
    let sizes = try validateTutorialWeights(first)
    for head in heads.dropFirst() {
        let other = try validateTutorialWeights(head)
        if other.dIn != sizes.dIn || other.kq != sizes.kq {
            throw .shapeMismatch(
                argument: head.prefix + "W_query",
                expected: "\(first.query.shape) (dIn, dOutKQ), the shape of \(first.prefix)W_query: all heads have the same sizes",
                actual: head.query.shape)
        }
        if other.v != sizes.v {
            throw .shapeMismatch(
                argument: head.prefix + "W_value",
                expected: "\(first.value.shape) (dIn, dOutV), the shape of \(first.prefix)W_value: all heads have the same sizes",
                actual: head.value.shape)
        }
    }
    // The weights are concatenated into one matrix multiply: one dtype for all (any of the three).
    let dtype = first.query.dtype
    for head in heads {
        for (name, weight) in [("W_query", head.query), ("W_key", head.key), ("W_value", head.value)]
        where weight.dtype != dtype {
            throw .unsupportedDType(
                argument: head.prefix + name, dtype: weight.dtype,
                reason: "every weight must have the dtype of \(first.prefix)W_query, \(dtype); convert them together "
                    + "with convertingWeights(to:)")
        }
    }
    return sizes
}

/// The attention of the tutorial's modules over `heads`:
/// `softmax((x₁ W_query)(x₂ W_key)ᵀ / √dOutKQ) (x₂ W_value)` per head, heads concatenated along
/// the last axis. `x₂` is `nil` for self-attention (`x₂ = x₁`).
///
/// - Parameters:
///   - x: `(L, dIn)` or `(B, L, dIn)`.
///   - context: `nil`, or `(S, dIn)` / `(B, S, dIn)` for cross-attention.
///   - causal: mask key j > query i before the softmax (top-left aligned).
///   - returningWeights: return the attention weights `(B?, H, L, S)` (squeezed to `(B?, L, S)`
///     for one head) instead of the output, computed by the same kernel with the identity matrix
///     as the values.
/// - Returns: `(L, H·dOutV)` or `(B, L, H·dOutV)`.
func tutorialAttention(
    _ x: Tensor, context: Tensor? = nil, heads: [TutorialHeadWeights], causal: Bool = false,
    returningWeights: Bool = false, inputNames: (String, String) = ("x", "x")
) throws -> Tensor {
    let (dIn, kq, dv) = try validateTutorialHeads(heads)
    try requireFloat32Activations([inputNames.0: x, inputNames.1: context])
    let rank = x.rank
    guard rank == 2 || rank == 3, x.shape[rank - 1] == dIn else {
        throw AttentionError.shapeMismatch(
            argument: inputNames.0, expected: "[L, \(dIn)] (L, dIn) or batched (B, L, dIn)", actual: x.shape)
    }
    let batch = rank == 3 ? x.shape[0] : 1
    let length = x.shape[rank - 2]
    var keyLength = length
    if let context {
        guard context.rank == rank, context.shape[rank - 1] == dIn, rank == 2 || context.shape[0] == batch else {
            let expected = rank == 3 ? "[\(batch), S, \(dIn)] (B, S, dIn)" : "[S, \(dIn)] (S, dIn)"
            throw AttentionError.shapeMismatch(
                argument: inputNames.1, expected: "\(expected), the rank and batch of \(inputNames.0)",
                actual: context.shape)
        }
        keyLength = context.shape[rank - 2]
    }

    let h = heads.count
    let lead = rank == 3 ? [batch] : []
    let (queryWidth, keyWidth, valueWidth) = (h * kq, h * kq, h * dv)
    let query: StridedHeads, key: StridedHeads
    var value: StridedHeads
    if let context {
        // Queries from x; keys and values from the context, in one product [K heads | V heads].
        let queryProjection = try projectLastAxis(
            x, weight: Tensor.concatenated(heads.map(\.query), axis: 1), layout: .inputsByOutputs)
        let keyValue = try projectLastAxis(
            context, weight: Tensor.concatenated(heads.map(\.key) + heads.map(\.value), axis: 1),
            layout: .inputsByOutputs)
        query = StridedHeads(
            rows: queryProjection, batch: batch, length: length, rowWidth: queryWidth, offset: 0, heads: h, dim: kq)
        key = StridedHeads(
            rows: keyValue, batch: batch, length: keyLength, rowWidth: keyWidth + valueWidth, offset: 0, heads: h,
            dim: kq)
        value = StridedHeads(
            rows: keyValue, batch: batch, length: keyLength, rowWidth: keyWidth + valueWidth, offset: keyWidth,
            heads: h, dim: dv)
    } else {
        // One product [Q heads | K heads | V heads].
        let weight = try Tensor.concatenated(heads.map(\.query) + heads.map(\.key) + heads.map(\.value), axis: 1)
        let packed = try projectLastAxis(x, weight: weight, layout: .inputsByOutputs)
        let width = queryWidth + keyWidth + valueWidth
        query = StridedHeads(rows: packed, batch: batch, length: length, rowWidth: width, offset: 0, heads: h, dim: kq)
        key = StridedHeads(
            rows: packed, batch: batch, length: length, rowWidth: width, offset: queryWidth, heads: h, dim: kq)
        value = StridedHeads(
            rows: packed, batch: batch, length: length, rowWidth: width, offset: queryWidth + keyWidth, heads: h,
            dim: dv)
    }
    if returningWeights {
        // Σ_j w_ij e_j = row i of the weights: the identity (S, S) as every head's values, shared
        // by the batch (strides 0).
        var identity = try Tensor(zeros: [keyLength, keyLength])
        identity.withUnsafeMutableBufferPointer { buffer in
            for j in 0 ..< keyLength { buffer[j * keyLength + j] = 1 }
        }
        value = StridedHeads(
            rows: identity, batch: batch, length: keyLength, rowWidth: keyLength, offset: 0, heads: h,
            dim: keyLength, batchStride: 0)
        value.headStride = 0
    }
    var call = AttentionKernelCall(query: query, key: key, value: value)
    (call.mask.causal, call.scale) = (causal ? .topLeft : .none, 1 / Float(kq).squareRoot())
    let output = try call.run(
        outputShape: [batch, length, h, value.dim], outputLayout: .sequence,
        context: "\(inputNames.0) \(x.shape), \(h) heads of \(dIn) → \(kq)").output
    if returningWeights {
        // (B, L, H, S) → (B, H, L, S), or (B, L, S) for one head.
        let weights = try output.reshaped([batch, length, h, keyLength])
        let shaped = h == 1 ? try weights.reshaped(lead + [length, keyLength])
            : try weights.permuted([0, 2, 1, 3]).reshaped(lead + [h, length, keyLength])
        return shaped
    }
    return try output.reshaped(lead + [length, h * dv])
}

