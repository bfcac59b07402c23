import Attention

// The training path of LlamaForCausalLM: whole sequences from position 0, no cache, causal
// attention; every projection, norm and the embedding differentiated through the library's
// pullbacks.

/// One layer's (or the model's) backward pass: the input's gradient from the output's, the
/// parameters' gradients written into the model's.
private typealias LlamaBackward = @Sendable (Tensor, inout ParameterGradients<LlamaForCausalLM>) throws -> Tensor

extension LlamaForCausalLM: Layer {
    /// The logits of every position of equal-length sequences, `(B, L, vocabularySize)`, each
    /// token seeing itself and the ones before it: the training forward, without a cache.
    ///
    /// - Throws: `ModelError.invalidArgument` (`"tokens"`) unless `tokens` is `(B, L)`,
    ///   (`"tokens[i]"`) for an id outside the vocabulary; `AttentionError` from the layers.
    public func callAsFunction(_ tokens: IndexArray) throws -> Tensor {
        try forward(tokens).logits
    }
}

extension LlamaForCausalLM: DifferentiableLayer {
    /// Token ids have no gradient.
    public typealias InputGradient = Void

    /// The logits, as ``callAsFunction(_:)-(IndexArray)``, with the pullback: the gradient of
    /// every parameter under `transformers`' names (`model.layers.0.self_attn.q_proj.weight`,
    /// ...); with tied embeddings the head's gradient is added to `model.embed_tokens.weight`'s.
    /// The gradients are float32 whatever the weights' type; bf16 matrices with ``products``
    /// `.bfloat16` form every projection's products, forward and backward, of bf16 pairs.
    ///
    /// ```swift
    /// let (logits, pullback) = try model.callWithPullback(tokens)          // (B, L, V)
    /// let loss = try crossEntropy(logits: logits, targets: nextTokens)
    /// let gradients = try pullback(loss.gradient).parameters
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)-(IndexArray)``.
    public func callWithPullback(_ tokens: IndexArray) throws -> (output: Tensor, pullback: LayerPullback<LlamaForCausalLM>) {
        let (logits, backward) = try forward(tokens)
        return (logits, LayerPullback(self, outputShape: logits.shape) { dLogits in
            var parameters = try ParameterGradients(zerosFor: self)
            _ = try backward(dLogits, &parameters)
            return LayerGradients(parameters: parameters, input: ())
        })
    }

    /// The training forward and its backward pass (which returns no meaningful tensor: token ids
    /// have no gradient).
    private func forward(_ tokens: IndexArray) throws -> (logits: Tensor, backward: LlamaBackward) {
        guard tokens.rank == 2 else {
            throw ModelError.invalidArgument(argument: "tokens", reason: "must be (B, L), got shape \(tokens.shape)")
        }
        if let bad = tokens.indices.firstIndex(where: { !(0..<configuration.vocabularySize).contains($0) }) {
            throw ModelError.invalidArgument(
                argument: "tokens[\(bad)]", reason: "\(tokens.indices[bad]) is not in 0..<\(configuration.vocabularySize)")
        }
        let (embedded, embeddingBack) = try Embedding(weight: embedding).callWithPullback(tokens)
        var hidden = embedded
        var layerBacks: [LlamaBackward] = []
        for index in layers.indices {
            let (output, back) = try layerForward(index, hidden)
            (hidden, layerBacks) = (output, layerBacks + [back])
        }
        let (normed, normBack) = try norm.callWithPullback(hidden)
        let (logits, headBack) = try (head ?? Linear(weight: embedding)).callWithPullback(normed, products: products)
        let backs = layerBacks, tied = head == nil
        return (logits, { dLogits, parameters in
            let headGradients = try headBack(dLogits)
            if tied {
                try parameters.add(headGradients.parameters.values.weight, to: \.embedding)
            } else {
                parameters.assign(headGradients.parameters, to: \.head!)
            }
            let normGradients = try normBack(headGradients.input)
            parameters.assign(normGradients.parameters, to: \.norm)
            var gradient = normGradients.input
            for back in backs.reversed() { gradient = try back(gradient, &parameters) }
            try parameters.add(try embeddingBack(gradient).parameters.values.weight, to: \.embedding)
            return gradient
        })
    }

    /// Layer `index` on `hidden`: `h + attention(inputNorm(h))`, then `r + mlp(postNorm(r))`,
    /// with its backward pass.
    private func layerForward(_ index: Int, _ hidden: Tensor) throws -> (Tensor, LlamaBackward) {
        let layer = layers[index], attention = layer.attention
        let (normed, inputNormBack) = try layer.inputNorm.callWithPullback(hidden)
        let (heads, projectionBack) = try attention.core.projectWithPullback(
            query: normed, key: normed, value: normed, with: .packed(attention.projection), products: products, rotary: rotary)
        let (attended, attentionBack) = try attention.core.attendWithPullback(
            heads, mask: .causal(.topLeft), context: "layer \(index) of \(hidden.shape[0]) sequences of \(hidden.shape[1]) tokens")
        let (projected, outputBack) = try attention.output.callWithPullback(attended, products: products)
        let residual = try hidden + projected
        let (postNormed, postNormBack) = try layer.postAttentionNorm.callWithPullback(residual)
        let (gateUp, gateUpBack) = try layer.mlp.gateUp.callWithPullback(postNormed, products: products)
        let (gated, gatedBack) = try Activation.silu.gatedWithPullback(gateUp)
        let (down, downBack) = try layer.mlp.down.callWithPullback(gated, products: products)
        return (try residual + down, { dy, parameters in
            let downGradients = try downBack(dy)
            let gateUpGradients = try gateUpBack(try gatedBack(downGradients.input).input)
            let postNormGradients = try postNormBack(gateUpGradients.input)
            let dResidual = try dy + postNormGradients.input
            let outputGradients = try outputBack(dResidual)
            let projection = try projectionBack(try attentionBack(outputGradients.input), summingShared: true)
            let inputNormGradients = try inputNormBack(projection.query)
            if case let .packed(projectionGradients) = projection.layers {
                parameters.assign(projectionGradients, to: \.layers[index].attention.projection)
            }
            parameters.assign(outputGradients.parameters, to: \.layers[index].attention.output)
            parameters.assign(inputNormGradients.parameters, to: \.layers[index].inputNorm)
            parameters.assign(postNormGradients.parameters, to: \.layers[index].postAttentionNorm)
            parameters.assign(gateUpGradients.parameters, to: \.layers[index].mlp.gateUp)
            parameters.assign(downGradients.parameters, to: \.layers[index].mlp.down)
            return try dResidual + inputNormGradients.input
        })
    }
}
