// The backward pass of TorchMultiheadAttention: the output projection's, the attention's and the
// in-projection's pullbacks of the one core, with PyTorch's layouts and add_bias_kv undone.

/// What the backward pass of one ``TorchMultiheadAttention`` call keeps: the batch-major inputs,
/// the in-projection's and the attention's pullbacks and the output projection's input. An empty
/// call (no batch, query or key) keeps only the inputs.
struct TorchAttentionBackward: Sendable {
    let module: TorchMultiheadAttention
    let shapes: TorchShapes
    let inputs: (query: Tensor, key: Tensor, value: Tensor)
    var projection: ProjectionPullback? = nil
    var attention: AttentionHeadsPullback? = nil
    var attended: Tensor? = nil

    /// The gradients for `outputGradient`, shaped as the call's output: the parameters' and the
    /// inputs' (in the inputs' layout). With `summingShared`, a tensor given for several
    /// arguments gets one gradient, in the first of them (the others `nil`).
    func callAsFunction(
        _ outputGradient: Tensor, summingShared: Bool
    ) throws -> (parameters: ParameterGradients<TorchMultiheadAttention>, query: Tensor, key: Tensor?, value: Tensor?) {
        var parameters = try ParameterGradients(zerosFor: module)
        let dy = try shapes.batchMajor(query: outputGradient, key: outputGradient, value: outputGradient, batchFirst: module.batchFirst).query
        guard let projection, let attention, let attended else {
            return try emptyGradients(outputGradient, parameters: parameters, summingShared: summingShared)
        }
        let out = try module.outProjection.backward(input: attended, outputGradient: dy)
        parameters.assign(out.parameters, to: \.outProjection)
        var heads = try attention(out.input)
        if shapes.appended > 0 {
            let (key, biasKey) = try appendedGradients(heads.key, bias: module.biasKey != nil)
            let (value, biasValue) = try appendedGradients(heads.value, bias: module.biasValue != nil)
            (heads.key, heads.value) = (key, value)
            if let biasKey { try parameters.assign(biasKey, to: \.biasKey!) }
            if let biasValue { try parameters.assign(biasValue, to: \.biasValue!) }
        }
        let projected = try projection(heads, summingShared: summingShared)
        switch projected.layers {
        case let .packed(layer):
            try parameters.assign(layer.values.weight, to: \.inProjectionWeight!)
            if let bias = layer.values.bias { try parameters.assign(bias, to: \.inProjectionBias!) }
        case let .separate(query, key, value):
            try parameters.assign(query.values.weight, to: \.queryProjectionWeight!)
            try parameters.assign(key.values.weight, to: \.keyProjectionWeight!)
            try parameters.assign(value.values.weight, to: \.valueProjectionWeight!)
            let biases = [query, key, value].compactMap(\.values.bias)
            if !biases.isEmpty { try parameters.assign(Tensor.concatenated(biases, axis: 0), to: \.inProjectionBias!) }
        }
        let batchFirst = module.batchFirst
        return (
            parameters, try shapes.inputLayout(projected.query, batchFirst: batchFirst),
            try projected.key.map { try shapes.inputLayout($0, batchFirst: batchFirst) },
            try projected.value.map { try shapes.inputLayout($0, batchFirst: batchFirst) })
    }

    /// The gradient of the appended keys (or values) split off: the first S rows of each sequence
    /// for the projection, and, with `bias`, the sum over the batch of row S (`bias_k`'s
    /// gradient, `(1, 1, E)`); the zero-attention row has none.
    private func appendedGradients(_ rows: Tensor, bias: Bool) throws -> (Tensor, Tensor?) {
        let (batch, extended, width) = (rows.shape[0], rows.shape[1], rows.shape[2])
        let length = shapes.keyLength
        var kept = try Tensor(zeros: [batch, length, width])
        var biasGradient = bias ? try Tensor(zeros: [1, 1, width]) : nil
        rows.withUnsafeBufferPointer { source in
            kept.withUnsafeMutableBufferPointer { target in
                for b in 0..<batch {
                    let from = b * extended * width
                    _ = target[(b * length * width)..<((b + 1) * length * width)]
                        .update(fromContentsOf: source[from..<(from + length * width)])
                }
            }
            biasGradient?.withUnsafeMutableBufferPointer { sum in
                for b in 0..<batch {
                    for c in 0..<width { sum[c] += source[(b * extended + length) * width + c] }
                }
            }
        }
        return (kept, biasGradient)
    }

    /// An empty call's gradients: zeros, except the output projection's bias when the output is
    /// that bias (no key at all).
    private func emptyGradients(
        _ outputGradient: Tensor, parameters: ParameterGradients<TorchMultiheadAttention>, summingShared: Bool
    ) throws -> (parameters: ParameterGradients<TorchMultiheadAttention>, query: Tensor, key: Tensor?, value: Tensor?) {
        var parameters = parameters
        if shapes.extendedLength == 0 && outputGradient.count > 0 {
            let zeros = try Tensor(zeros: shapes.outputShape)
            parameters.assign(try module.outProjection.backward(input: zeros, outputGradient: outputGradient).parameters, to: \.outProjection)
        }
        let (q, k, v) = inputs
        let keyIsQuery = summingShared && isSameTensor(q, k)
        let valueIsKey = summingShared && isSameTensor(k, v)
        return (
            parameters, try Tensor(zeros: q.shape), keyIsQuery ? nil : try Tensor(zeros: k.shape),
            valueIsKey ? nil : try Tensor(zeros: v.shape))
    }
}

extension TorchMultiheadAttention: DifferentiableLayer {
    /// The gradients of the query, the key and the value, one per argument (also when one tensor
    /// was passed for several); ``AttentionGradients/bias`` is `nil`.
    public typealias InputGradient = AttentionGradients

    /// Runs the module on `inputs`, as ``callAsFunction(_:)``, with the pullback of the call:
    /// the gradients of every parameter (`in_proj_weight` or `q/k/v_proj_weight`, `in_proj_bias`,
    /// `bias_k`, `bias_v`, `out_proj.weight`, `out_proj.bias`) and of the query, key and value,
    /// for the gradient of `result.output`. The attention weights, when returned, are not
    /// differentiated; dropout is differentiated through the forward's keep decisions.
    ///
    /// ```swift
    /// let (result, pullback) = try mha.callWithPullback(.init(query: x, key: x, value: x, needWeights: false))
    /// let gradients = try pullback(outputGradient)
    /// gradients.parameters["in_proj_weight"]   // (3E, E)
    /// gradients.input.query                    // shaped as x; .key and .value too
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ inputs: Inputs) throws -> (output: AttentionResult, pullback: LayerPullback<TorchMultiheadAttention>) {
        let (result, backward) = try forward(
            query: inputs.query, key: inputs.key, value: inputs.value, keyPaddingMask: inputs.keyPaddingMask,
            needWeights: inputs.needWeights, attentionMask: inputs.attentionMask,
            averageAttentionWeights: inputs.averageAttentionWeights, causal: .hint(inputs.isCausal), maskedRows: .zero,
            dropout: try Dropout.forCall(
                probability: dropout, probabilityArgument: "dropout", training: inputs.training, seed: inputs.dropoutSeed),
            recording: true)
        return (result, LayerPullback(self, outputShape: result.output.shape) { outputGradient in
            let gradients = try backward!(outputGradient, summingShared: false)
            return LayerGradients(
                parameters: gradients.parameters,
                input: AttentionGradients(query: gradients.query, key: gradients.key!, value: gradients.value!))
        })
    }
}
