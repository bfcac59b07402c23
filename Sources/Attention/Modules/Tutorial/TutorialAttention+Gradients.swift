// The backward pass of the tutorial's attention modules (SelfAttention, CausalSelfAttention,
// CrossAttention, MultiHeadAttentionWrapper): the attention's and the packed projection's
// pullbacks of the one core, the packed kernel's gradient split back into every head's
// W_query, W_key and W_value.

/// The gradients with respect to the inputs of a tutorial attention module
/// (``TutorialAttentionInputs``).
///
/// ```swift
/// let (result, pullback) = try cross.callWithPullback(.init(x: x1, context: x2))
/// let gradients = try pullback(outputGradient)
/// gradients.input.x         // shaped as x1
/// gradients.input.context   // shaped as x2
/// ```
public struct TutorialAttentionGradients: Sendable, Equatable {
    /// The gradient with respect to `x`, shaped as `x`: through the queries, and for
    /// self-attention through the keys and values too.
    public var x: Tensor
    /// The gradient with respect to `context` (through the keys and values), shaped as it; `nil`
    /// for self-attention, which has no context.
    public var context: Tensor?

    /// Gradients from their parts.
    public init(x: Tensor, context: Tensor? = nil) {
        (self.x, self.context) = (x, context)
    }
}

/// One tutorial head's weight gradients, shaped as its `W_query`, `W_key` and `W_value`.
struct TutorialHeadGradients: Sendable {
    var query: Tensor
    var key: Tensor
    var value: Tensor
}

/// What the backward pass of one tutorial attention call keeps: the inputs' shapes and the
/// packed projection's and the attention's pullbacks.
struct TutorialAttentionBackward: Sendable {
    let core: MultiHeadAttentionCore
    let inputShapes: (x: [Int], context: [Int]?)
    let projection: ProjectionPullback
    let attention: AttentionHeadsPullback

    /// Every head's weight gradients, head 0 first, and the inputs' gradients, for the gradient
    /// of the output `(L, H·dOutV)` or `(B, L, H·dOutV)`.
    func callAsFunction(_ outputGradient: Tensor) throws -> (heads: [TutorialHeadGradients], input: TutorialAttentionGradients) {
        let rows = try outputGradient.reshaped(attention.output.shape)
        // Self-attention sums the three roles into x's gradient; cross-attention keeps the
        // query's apart from the context's (even when one tensor was passed for both).
        let contextShape = inputShapes.context
        let projected = try projection(try attention(rows), summingShared: contextShape == nil)
        guard case let .packed(layer) = projected.layers else {
            preconditionFailure("the tutorial's projection is one packed layer")
        }
        let kernel = layer.values.weight   // (dIn, [Q heads | K heads | V heads])
        let (h, kq, dv) = (core.heads, core.queryKeySize, core.valueSize)
        let heads = try (0..<h).map { i in
            TutorialHeadGradients(
                query: try kernel.sliced((i * kq)..<((i + 1) * kq), axis: 1),
                key: try kernel.sliced((h * kq + i * kq)..<(h * kq + (i + 1) * kq), axis: 1),
                value: try kernel.sliced((2 * h * kq + i * dv)..<(2 * h * kq + (i + 1) * dv), axis: 1))
        }
        let context = try contextShape.map { try (projected.key! + projected.value!).reshaped($0) }
        return (heads, TutorialAttentionGradients(x: try projected.query.reshaped(inputShapes.x), context: context))
    }
}

extension TutorialAttention: DifferentiableLayer {
    /// The gradients of `x` and, for cross-attention, of the context.
    public typealias InputGradient = TutorialAttentionGradients

    /// Runs the module on `inputs`, as ``callAsFunction(_:)-(TutorialAttentionInputs)``, with
    /// the pullback of the call: the gradients of `W_query`, `W_key`, `W_value` and of the
    /// inputs, for the gradient of `result.output`. The weights, when returned, are not differentiated.
    ///
    /// ```swift
    /// let (result, pullback) = try attention.callWithPullback(.init(x: x))
    /// let gradients = try pullback(outputGradient)     // shaped as result.output
    /// gradients.parameters["W_query"]                  // (dIn, dOutKQ)
    /// gradients.input.x                                // shaped as x
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)-(TutorialAttentionInputs)``.
    public func callWithPullback(_ inputs: TutorialAttentionInputs) throws -> (output: AttentionResult, pullback: LayerPullback<Self>) {
        let (result, backward) = try forward(inputs, recording: true)
        return (result, LayerPullback(self, outputShape: result.output.shape) { outputGradient in
            let gradients = try backward!(outputGradient)
            var parameters = try ParameterGradients(zerosFor: self)
            try parameters.assign(gradients.heads[0].query, to: \.queryWeight)
            try parameters.assign(gradients.heads[0].key, to: \.keyWeight)
            try parameters.assign(gradients.heads[0].value, to: \.valueWeight)
            return LayerGradients(parameters: parameters, input: gradients.input)
        })
    }
}

extension MultiHeadAttentionWrapper: DifferentiableLayer {
    /// The gradient of `x` (``TutorialAttentionGradients/context`` is `nil`).
    public typealias InputGradient = TutorialAttentionGradients

    /// Runs every head on `inputs.x`, as ``callAsFunction(_:)-(TutorialAttentionInputs)``, with
    /// the pullback of the call: the gradients of every head's `W_query`, `W_key`, `W_value`
    /// (`heads.<i>.W_query`, …) and of `x`, for the gradient of the concatenated output.
    ///
    /// ```swift
    /// let (result, pullback) = try attention.callWithPullback(.init(x: x))
    /// let gradients = try pullback(outputGradient)
    /// gradients.parameters["heads.1.W_value"]          // (dIn, dOutV)
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)-(TutorialAttentionInputs)``.
    public func callWithPullback(
        _ inputs: TutorialAttentionInputs
    ) throws -> (output: AttentionResult, pullback: LayerPullback<MultiHeadAttentionWrapper>) {
        let (result, backward) = try forward(inputs, recording: true)
        return (result, LayerPullback(self, outputShape: result.output.shape) { outputGradient in
            let gradients = try backward!(outputGradient)
            var parameters = try ParameterGradients(zerosFor: self)
            for (index, head) in gradients.heads.enumerated() {
                try parameters.assign(head.query, to: \.heads[index].queryWeight)
                try parameters.assign(head.key, to: \.heads[index].keyWeight)
                try parameters.assign(head.value, to: \.heads[index].valueWeight)
            }
            return LayerGradients(parameters: parameters, input: gradients.input)
        })
    }
}
