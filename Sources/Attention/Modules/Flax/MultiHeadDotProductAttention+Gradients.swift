// The backward pass of Flax's MultiHeadDotProductAttention: the output projection's, the
// attention's, the query/key norms' (normalize_qk) and the in-projection's pullbacks, the inputs'
// leading batch dimensions restored.

/// The pullback of ``MultiHeadDotProductAttention``'s projected heads: the in-projection's, and
/// the query and key norms' when ``MultiHeadDotProductAttention/normalizeQK``.
struct FlaxProjectionBackward: Sendable {
    let projection: ProjectionPullback
    let queryNorm: LayerPullback<LayerNorm>?
    let keyNorm: LayerPullback<LayerNorm>?
}

/// What the backward pass of one ``MultiHeadDotProductAttention`` call keeps: the inputs' shapes
/// (batch dimensions included) and the projections' and the attention's pullbacks. The output
/// projection's input is the attention's output.
struct FlaxAttentionBackward: Sendable {
    let module: MultiHeadDotProductAttention
    let inputShapes: (query: [Int], key: [Int], value: [Int])
    let projection: FlaxProjectionBackward
    let attention: AttentionHeadsPullback

    /// The gradients of every parameter and of the query, key and value (one per argument, in
    /// the arguments' shapes; a defaulted key or value is the query's or the key's role) for
    /// `outputGradient`, shaped as the call's output.
    func callAsFunction(_ outputGradient: Tensor) throws -> LayerGradients<MultiHeadDotProductAttention> {
        var parameters = try ParameterGradients(zerosFor: module)
        let attended = attention.output   // (B, L, H·d)
        let (batch, length, heads, d) = (attended.shape[0], attended.shape[1], module.heads, module.headDimension)
        let out = try module.outputProjection.backward(
            input: attended.reshaped([batch, length, heads, d]),
            outputGradient: outputGradient.reshaped([batch, length, module.outFeatures]))
        parameters.assign(out.parameters, to: \.outputProjection)
        var headGradients = try attention(out.input.reshaped([batch, length, heads * d]))
        if let pullback = projection.queryNorm {
            headGradients.query = try normGradient(headGradients.query, pullback, to: \.queryNorm!, &parameters)
        }
        if let pullback = projection.keyNorm {
            headGradients.key = try normGradient(headGradients.key, pullback, to: \.keyNorm!, &parameters)
        }
        let projected = try projection.projection(headGradients, summingShared: false)
        if case let .separate(query, key, value) = projected.layers {
            parameters.assign(query, to: \.queryProjection)
            parameters.assign(key, to: \.keyProjection)
            parameters.assign(value, to: \.valueProjection)
        }
        let input = AttentionGradients(
            query: try projected.query.reshaped(inputShapes.query), key: try projected.key!.reshaped(inputShapes.key),
            value: try projected.value!.reshaped(inputShapes.value))
        return LayerGradients(parameters: parameters, input: input)
    }

    /// The gradient of the heads before a norm, `(B, L, H·d)`, from the gradient after it; the
    /// norm's scale's gradient goes to `path`.
    private func normGradient(
        _ gradient: Tensor, _ pullback: LayerPullback<LayerNorm>, to path: WritableKeyPath<MultiHeadDotProductAttention, LayerNorm>,
        _ parameters: inout ParameterGradients<MultiHeadDotProductAttention>
    ) throws -> Tensor {
        let g = try pullback(gradient.reshaped(pullback.outputShape))
        parameters.assign(g.parameters, to: path)
        return try g.input.reshaped(gradient.shape)
    }
}

extension MultiHeadDotProductAttention: DifferentiableLayer {
    /// The gradients of the query, the key and the value, one per argument; a key or value left
    /// `nil` (defaulted to the query, or to the key) still gets the gradient of its role, so the
    /// gradient of a tensor used for several is their sum. ``AttentionGradients/bias`` is `nil`.
    public typealias InputGradient = AttentionGradients

    /// Runs the module on `inputs`, as ``callAsFunction(_:)``, with the pullback of the call: the
    /// gradients of every parameter (`query.kernel`, `query.bias`, …, `out.bias`, and
    /// `query_ln.scale`, `key_ln.scale` with `normalizeQK`) and of the query, key and value, for
    /// the gradient of `result.output`.
    ///
    /// The masks, any number of batch dimensions, `normalizeQK`, the ``AttentionFunction/fused``
    /// and ``AttentionFunction/unfused`` attention functions and dropout (per weight, or
    /// broadcast over the batch and the heads, Flax's default, through the forward's keep
    /// decisions) are differentiated.
    /// The weights, when returned, are not. Decoding (``decode(_:key:value:cache:mask:deterministic:dropoutSeed:)``)
    /// has no pullback.
    ///
    /// ```swift
    /// let (result, pullback) = try attention.callWithPullback(.init(query: x, key: memory))
    /// let gradients = try pullback(outputGradient)       // shaped as result.output
    /// gradients.parameters["query.kernel"]               // (Fq, H, d)
    /// let dMemory = try gradients.input.key + gradients.input.value
    /// ```
    ///
    /// - Throws: `AttentionError.unsupported` for a custom ``attentionFunction`` (a closure has
    ///   no pullback), before any work; otherwise as ``callAsFunction(_:)``.
    public func callWithPullback(
        _ inputs: Inputs
    ) throws -> (output: AttentionResult, pullback: LayerPullback<MultiHeadDotProductAttention>) {
        let (result, backward) = try forward(inputs, recording: true)
        return (result, LayerPullback(self, outputShape: result.output.shape) { try backward!($0) })
    }
}
