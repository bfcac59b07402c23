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

/// The attention of the tutorial's modules over `heads`, through the shared attention core:
/// `softmax((x₁ W_query)(x₂ W_key)ᵀ / √dOutKQ) (x₂ W_value)` per head, heads concatenated along
/// the last axis. `x₂` is `nil` for self-attention (`x₂ = x₁`). All heads' projections are one
/// layer whose kernel is the weights side by side (`[Q heads | K heads | V heads]`): one product
/// for self-attention, two (queries; keys and values) for cross-attention.
///
/// - Parameters:
///   - x: `(L, dIn)` or `(B, L, dIn)`.
///   - context: `nil`, or `(S, dIn)` / `(B, S, dIn)` for cross-attention.
///   - causal: mask key j > query i before the softmax (top-left aligned).
///   - returningWeights: also return the attention weights `(B?, H, L, S)` (squeezed to
///     `(B?, L, S)` for one head).
///   - recording: also return the pullbacks of the call (see `TutorialAttentionBackward`).
/// - Returns: `(L, H·dOutV)` or `(B, L, H·dOutV)`, and the weights when asked for.
func tutorialAttention(
    _ x: Tensor, context: Tensor? = nil, heads: [TutorialHeadWeights], causal: Bool = false,
    returningWeights: Bool = false, inputNames: (String, String) = ("x", "x"), recording: Bool = false
) throws -> (result: AttentionResult, backward: TutorialAttentionBackward?) {
    let (dIn, kq, dv) = try validateTutorialHeads(heads)
    try requireFloat32Activations([inputNames.0: x, inputNames.1: context])
    let rank = x.rank
    guard rank == 2 || rank == 3, x.shape[rank - 1] == dIn else {
        throw AttentionError.shapeMismatch(
            argument: inputNames.0, expected: "[L, \(dIn)] (L, dIn) or batched (B, L, dIn)", actual: x.shape)
    }
    if let context {
        guard context.rank == rank, context.shape[rank - 1] == dIn, rank == 2 || context.shape[0] == x.shape[0] else {
            let expected = rank == 3 ? "[\(x.shape[0]), S, \(dIn)] (B, S, dIn)" : "[S, \(dIn)] (S, dIn)"
            throw AttentionError.shapeMismatch(
                argument: inputNames.1, expected: "\(expected), the rank and batch of \(inputNames.0)",
                actual: context.shape)
        }
    }
    func batchMajor(_ tensor: Tensor) throws -> Tensor { rank == 3 ? tensor : try tensor.reshaped([1] + tensor.shape) }
    let queries = try batchMajor(x)
    let keys = try context.map(batchMajor) ?? queries
    let kernel = try Tensor.concatenated(heads.map(\.query) + heads.map(\.key) + heads.map(\.value), axis: 1)
    let core = MultiHeadAttentionCore(heads: heads.count, queryKeySize: kq, valueSize: dv)
    let projections = InputProjections.packed(try Linear(kernel: kernel, inputAxes: 1))
    var mask = KernelMask()
    mask.causal = causal ? .topLeft : .none
    let scale = 1 / Float(kq).squareRoot()
    let description = "\(inputNames.0) \(x.shape), \(heads.count) heads of \(dIn) → \(kq)"
    let output: Tensor, weights: Tensor?, backward: TutorialAttentionBackward?
    if recording {
        let (projected, projection) = try core.projectWithPullback(query: queries, key: keys, value: keys, with: projections)
        let attention: AttentionHeadsPullback
        (output, weights, attention) = try core.attendWithPullback(
            projected, mask: mask, scale: scale, maskedRows: .nan, returningWeights: returningWeights, context: description)
        backward = TutorialAttentionBackward(
            core: core, inputShapes: (x.shape, context?.shape), projection: projection, attention: attention)
    } else {
        let projected = try core.project(query: queries, key: keys, value: keys, with: projections)
        (output, weights) = try core.attend(
            projected, mask: mask, scale: scale, maskedRows: .nan, returningWeights: returningWeights, context: description)
        backward = nil
    }
    let (lead, length, keyLength) = (rank == 3 ? [x.shape[0]] : [], queries.shape[1], keys.shape[1])
    let weightShape = heads.count == 1 ? lead + [length, keyLength] : lead + [heads.count, length, keyLength]
    let result = AttentionResult(
        output: try output.reshaped(lead + [length, heads.count * dv]),
        weights: try weights.map { try $0.reshaped(weightShape) })
    return (result, backward)
}
