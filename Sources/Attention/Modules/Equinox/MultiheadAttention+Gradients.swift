// The backward pass of Equinox's MultiheadAttention: the output projection's, the attention's and
// the in-projection's (with the rotation's) pullbacks of the one core, the packed self-attention
// projection's gradient split back into query_proj, key_proj and value_proj.

/// What the backward pass of one ``MultiheadAttention`` call keeps: the inputs' shapes, the
/// in-projection's and the attention's pullbacks, and the output projection's input.
struct EquinoxAttentionBackward: Sendable {
    let module: MultiheadAttention
    let inputShapes: (query: [Int], key: [Int], value: [Int])
    let projection: ProjectionPullback
    let attention: AttentionHeadsPullback
    /// The output projection's input, `(L, H·voSize)` or `(B, L, H·voSize)`.
    let attended: Tensor

    /// The gradients of every parameter and of the query, key and value (one per argument, in
    /// the arguments' shapes) for `outputGradient`, shaped as the call's output.
    func callAsFunction(_ outputGradient: Tensor) throws -> LayerGradients<MultiheadAttention> {
        var parameters = try ParameterGradients(zerosFor: module)
        let out = try module.outputProjection.backward(input: attended, outputGradient: outputGradient)
        parameters.assign(out.parameters, to: \.outputProjection)
        let rows = try out.input.reshaped(attention.output.shape)
        let projected = try projection(try attention(rows), summingShared: false)
        switch projected.layers {
        case let .packed(layer):
            let (q, k, v) = module.core.widths
            let blocks: [(WritableKeyPath<MultiheadAttention, Linear>, Range<Int>)] = [
                (\.queryProjection, 0..<q), (\.keyProjection, q..<(q + k)), (\.valueProjection, (q + k)..<(q + k + v)),
            ]
            for (path, block) in blocks {
                var gradients = try layer.values.outputBlock(block)
                if module[keyPath: path].bias == nil { gradients.bias = nil }   // the packed bias's zeros
                parameters.assign(ParameterGradients(values: gradients), to: path)
            }
        case let .separate(query, key, value):
            parameters.assign(query, to: \.queryProjection)
            parameters.assign(key, to: \.keyProjection)
            parameters.assign(value, to: \.valueProjection)
        }
        let input = AttentionGradients(
            query: try projected.query.reshaped(inputShapes.query), key: try projected.key!.reshaped(inputShapes.key),
            value: try projected.value!.reshaped(inputShapes.value))
        return LayerGradients(parameters: parameters, input: input)
    }
}

extension MultiheadAttention: DifferentiableLayer {
    /// The gradients of the query, the key and the value, one per argument (also when one tensor
    /// was passed for several: the gradient of that tensor is their sum); ``AttentionGradients/bias``
    /// is `nil`.
    public typealias InputGradient = AttentionGradients

    /// Runs the module on `inputs`, as ``callAsFunction(_:)``, with the pullback of the call: the
    /// gradients of every parameter (`query_proj.*`, `key_proj.*`, `value_proj.*`,
    /// `output_proj.*`) and of the query, key and value, for the gradient of `result.output`.
    ///
    /// Every option is differentiated: the sizes, the biases, the masks (a fully masked row's
    /// mean of the values included), `rotary` (through the inverse rotation) and dropout
    /// (through the forward's keep decisions). The weights, when returned, are not.
    ///
    /// ```swift
    /// let rope = try RotaryPositionalEmbedding(embeddingSize: attention.qkSize)
    /// let (result, pullback) = try attention.callWithPullback(.init(query: x, key: x, value: x, rotary: rope))
    /// let gradients = try pullback(outputGradient)          // shaped as result.output
    /// gradients.parameters["query_proj.weight"]             // (H·qkSize, querySize)
    /// let dx = try gradients.input.query + gradients.input.key + gradients.input.value
    /// ```
    ///
    /// - Throws: `AttentionError.unsupported` for a `processHeads` closure (an arbitrary closure
    ///   has no pullback; RoPE through `rotary:` has); otherwise as ``callAsFunction(_:)``.
    public func callWithPullback(_ inputs: Inputs) throws -> (output: AttentionResult, pullback: LayerPullback<MultiheadAttention>) {
        let (result, backward) = try forward(inputs, recording: true)
        return (result, LayerPullback(self, outputShape: result.output.shape) { try backward!($0) })
    }
}
