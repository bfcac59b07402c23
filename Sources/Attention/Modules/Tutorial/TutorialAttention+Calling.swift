// The calls of the tutorial's modules: one sequence for self-attention and causal
// self-attention, two for cross-attention, each with or without the weights, and the `Layer`
// call that takes either.

/// What one call of a tutorial attention module takes: the sequence `x` (`x_1`), the second
/// sequence `context` (`x_2`) for cross-attention, and whether to return the weights.
///
/// ```swift
/// let result = try cross(.init(x: x1, context: x2, returningWeights: true))
/// ```
public struct TutorialAttentionInputs: Sendable {
    /// The queries' sequence, `(L, dIn)` or `(B, L, dIn)`.
    public var x: Tensor
    /// The keys' and values' sequence for cross-attention, `(S, dIn)` or `(B, S, dIn)`; `nil`
    /// for self-attention.
    public var context: Tensor?
    /// Also return the attention weights.
    public var returningWeights: Bool

    /// Inputs from their parts.
    public init(x: Tensor, context: Tensor? = nil, returningWeights: Bool = false) {
        self.x = x
        self.context = context
        self.returningWeights = returningWeights
    }
}

extension TutorialAttention: Layer {
    /// A sequence, an optional second one, and whether to return the weights.
    public typealias Input = TutorialAttentionInputs
    /// The output and, when asked for, the weights.
    public typealias Output = AttentionResult

    /// Runs the module: ``SelfAttention`` and ``CausalSelfAttention`` take `inputs.x` alone,
    /// ``CrossAttention`` also `inputs.context`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"x2"`) when `context` is missing for
    ///   cross-attention or given for self-attention; the errors of ``callAsFunction(_:)``.
    public func callAsFunction(_ inputs: TutorialAttentionInputs) throws -> AttentionResult {
        try forward(inputs).result
    }

    /// The call; with `recording`, its pullbacks too.
    func forward(
        _ inputs: TutorialAttentionInputs, recording: Bool = false
    ) throws -> (result: AttentionResult, backward: TutorialAttentionBackward?) {
        guard (inputs.context != nil) == Kind.isCrossAttention else {
            throw AttentionError.invalidArgument(
                argument: "x2",
                reason: Kind.isCrossAttention
                    ? "cross-attention needs the keys' sequence (the context)"
                    : "self-attention attends within x; it takes no second sequence")
        }
        let names = Kind.isCrossAttention ? ("x1", "x2") : ("x", "x")
        let heads = [headWeights(prefix: "")]
        return try tutorialAttention(
            inputs.x, context: inputs.context, heads: heads, causal: Kind.isCausal,
            returningWeights: inputs.returningWeights, inputNames: names, recording: recording)
    }
}

extension TutorialAttention where Kind == SelfAttentionKind {
    /// The context vectors of `x` attending within itself, `(L, dOutV)` or `(B, L, dOutV)`.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"x"`) for a rank other than 2 or 3 or a last
    ///   dimension other than `dIn`, (`"W_query"` …) for weights given inconsistent shapes;
    ///   `.invalidArgument` (`"x"`) for an empty sequence; the kernels' errors.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(TutorialAttentionInputs(x: x)).output
    }

    /// The context vectors and the weights `softmax((x W_query)(x W_key)ᵀ / √dOutKQ)`, `(L, L)`
    /// or `(B, L, L)`: the tutorial's `attn_weights`, each row summing to 1.
    ///
    /// - Throws: as `callAsFunction(_:)` with a tensor, above.
    public func callWithWeights(_ x: Tensor) throws -> AttentionResult {
        try callAsFunction(TutorialAttentionInputs(x: x, returningWeights: true))
    }
}

extension TutorialAttention where Kind == CausalSelfAttentionKind {
    /// The context vectors of `x`, row i using `x[0...i]` only: `(L, dOutV)` or `(B, L, dOutV)`.
    ///
    /// - Throws: as ``SelfAttention``'s call.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(TutorialAttentionInputs(x: x)).output
    }

    /// The context vectors and the masked weights, `(L, L)` or `(B, L, L)`, zero above the
    /// diagonal and each row summing to 1.
    ///
    /// - Throws: as `callAsFunction(_:)` with a tensor, above.
    public func callWithWeights(_ x: Tensor) throws -> AttentionResult {
        try callAsFunction(TutorialAttentionInputs(x: x, returningWeights: true))
    }
}

extension TutorialAttention where Kind == CrossAttentionKind {
    /// The context vectors of `x1` over `x2`:
    /// `softmax((x1 W_query)(x2 W_key)ᵀ / √dOutKQ) (x2 W_value)`.
    ///
    /// - Parameters:
    ///   - x1: the queries' sequence, `(L, dIn)` or `(B, L, dIn)` (the tutorial's `x_1`).
    ///   - x2: the keys' and values' sequence, `(S, dIn)` or `(B, S, dIn)` (`x_2`), the rank and
    ///     batch of `x1`.
    /// - Returns: `(L, dOutV)` or `(B, L, dOutV)`.
    /// - Throws: `AttentionError.shapeMismatch` (`"x1"`, `"x2"`) for a rank other than 2 or 3, a
    ///   last dimension other than `dIn`, or ranks or batches that differ; (`"W_query"` …) for
    ///   weights given inconsistent shapes; `.invalidArgument` for an empty sequence; the kernels'
    ///   errors.
    public func callAsFunction(_ x1: Tensor, _ x2: Tensor) throws -> Tensor {
        try callAsFunction(TutorialAttentionInputs(x: x1, context: x2)).output
    }

    /// The context vectors and the weights `softmax((x1 W_query)(x2 W_key)ᵀ / √dOutKQ)`, `(L, S)`
    /// or `(B, L, S)`, each row summing to 1.
    ///
    /// - Throws: as ``callAsFunction(_:_:)``.
    public func callWithWeights(_ x1: Tensor, _ x2: Tensor) throws -> AttentionResult {
        try callAsFunction(TutorialAttentionInputs(x: x1, context: x2, returningWeights: true))
    }
}
