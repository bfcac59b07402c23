// The checks of MultiheadAttention's parameters, inputs and mask, and its dropout decision.

extension MultiheadAttention {
    // MARK: - Helpers

    /// The query, key and value layers as one: weights stacked `(2·H·qkSize + H·voSize,
    /// querySize)` and biases (zeros for an absent one) when any is present, built once per set
    /// of parameters.
    func packedInputProjection() throws -> Linear {
        let layers = [queryProjection, keyProjection, valueProjection]
        // One matrix multiply over the stacked weights: they share one dtype (any of the three).
        for (name, layer) in zip(["key_proj.weight", "value_proj.weight"], layers.dropFirst())
        where layer.weight.dtype != queryProjection.weight.dtype {
            throw AttentionError.unsupportedDType(
                argument: name, dtype: layer.weight.dtype,
                reason: "self-attention stacks the projection weights: they must share query_proj.weight's dtype, "
                    + "\(queryProjection.weight.dtype); convert them together with convertingWeights(to:)")
        }
        let (weight, bias) = try packedQKV.packed(for: layers.map(\.weight) + layers.map(\.bias)) {
            let weight = try Tensor.concatenated(layers.map(\.weight), axis: 0)
            guard layers.contains(where: { $0.bias != nil }) else { return (weight, nil) }
            let biases = try layers.map { try $0.bias ?? Tensor(zeros: [$0.outputSize]) }
            return (weight, try Tensor.concatenated(biases, axis: 0))
        }
        return try Linear(weight: weight, bias: bias)
    }

    /// Checks the projections (public and mutable) against `heads`, `qkSize` and `voSize`.
    func validateParameters() throws(AttentionError) {
        let expectations = [
            ("queryProjection", queryProjection, heads * qkSize), ("keyProjection", keyProjection, heads * qkSize),
            ("valueProjection", valueProjection, heads * voSize),
        ]
        for (name, layer, outputs) in expectations {
            let weight = layer.weight
            guard weight.rank == 2, weight.shape[0] == outputs, weight.shape[1] >= 1 else {
                throw .shapeMismatch(
                    argument: "\(name).weight", expected: "[\(outputs), inputSize] (heads·headSize, inputSize)",
                    actual: weight.shape)
            }
            if let bias = layer.bias, bias.shape != [outputs] {
                throw .shapeMismatch(argument: "\(name).bias", expected: "[\(outputs)]", actual: bias.shape)
            }
        }
        let weight = outputProjection.weight
        guard weight.rank == 2, weight.shape[1] == heads * voSize, weight.shape[0] >= 1 else {
            throw .shapeMismatch(
                argument: "outputProjection.weight", expected: "[outputSize, \(heads * voSize)] (outputSize, heads·voSize)",
                actual: weight.shape)
        }
        if let bias = outputProjection.bias, bias.shape != [weight.shape[0]] {
            throw .shapeMismatch(argument: "outputProjection.bias", expected: "[\(weight.shape[0])]", actual: bias.shape)
        }
    }

    /// The batch (1 when unbatched), query length and key length, after checking the shapes.
    func validateInputs(query: Tensor, key: Tensor, value: Tensor) throws(AttentionError)
        -> (batch: Int, length: Int, keyLength: Int)
    {
        let rank = query.rank
        guard rank == 2 || rank == 3, query.shape[rank - 1] == querySize else {
            throw .shapeMismatch(
                argument: "query", expected: "[L, \(querySize)] (L, querySize), or batched (B, L, querySize)",
                actual: query.shape)
        }
        let batch = rank == 3 ? query.shape[0] : 1
        let lead = rank == 3 ? "\(batch), " : ""
        let leadName = rank == 3 ? "B, " : ""
        guard key.rank == rank, key.shape[rank - 1] == keySize, rank == 2 || key.shape[0] == batch else {
            throw .shapeMismatch(
                argument: "key", expected: "[\(lead)S, \(keySize)] (\(leadName)S, keySize), the query's rank and batch",
                actual: key.shape)
        }
        let keyLength = key.shape[rank - 2]
        guard value.rank == rank, value.shape[rank - 1] == valueSize, rank == 2 || value.shape[0] == batch,
              value.shape[rank - 2] == keyLength
        else {
            throw .shapeMismatch(
                argument: "value",
                expected: "[\(lead)\(keyLength), \(valueSize)] (\(leadName)S, valueSize), as many positions as the key",
                actual: value.shape)
        }
        // An empty batch or sequence is allowed: the result is empty (or zeros with no key).
        return (batch, query.shape[rank - 2], keyLength)
    }

    /// The mask's strides against (B, H, L, S), after checking its shape: (L, S), (H, L, S)
    /// unbatched, (B, L, S) or (B, H, L, S) batched.
    func validateMask(
        _ mask: BooleanMask?, batched: Bool, batch: Int, length: Int, keyLength: Int
    ) throws(AttentionError) -> ScoreStrides {
        guard let mask else { return ScoreStrides() }
        let (l, s, h) = (length, keyLength, heads)
        let scores = [batch, h, l, s]
        switch mask.shape {
        case [l, s]:
            return ScoreStrides(broadcasting: mask.shape, to: scores)!
        case [h, l, s] where !batched:
            return ScoreStrides(broadcasting: mask.shape, to: scores)!
        case [batch, l, s] where batched:
            return ScoreStrides(broadcasting: [batch, 1, l, s], to: scores)!
        case [batch, h, l, s] where batched:
            return ScoreStrides(broadcasting: mask.shape, to: scores)!
        default:
            let expected = batched
                ? "[\(batch), \(l), \(s)] (B, L, S), [\(batch), \(h), \(l), \(s)] (B, H, L, S) or [\(l), \(s)] (L, S)"
                : "[\(l), \(s)] (L, S) or [\(h), \(l), \(s)] (H, L, S)"
            throw .shapeMismatch(argument: "mask", expected: expected, actual: mask.shape)
        }
    }

    /// The checks of a call (parameters, dtypes, shapes, mask, dropout, rotary, and with
    /// `recording` no `processHeads`): the batch (1 unbatched), the lengths, the mask as the
    /// kernels take it and the dropout.
    ///
    /// - Throws: as ``callAsFunction(query:key:value:mask:inference:dropoutSeed:rotary:processHeads:)``;
    ///   `AttentionError.unsupported` for `processHeads` while `recording`.
    func checkCall(
        _ inputs: Inputs, recording: Bool
    ) throws -> (batch: Int, length: Int, keyLength: Int, mask: KernelMask, dropout: Dropout?) {
        let (query, key, value) = (inputs.query, inputs.key, inputs.value)
        try validateParameters()
        try requireFloat32Parameters()
        try requireFloat32Activations(["query": query, "key": key, "value": value])
        let (batch, length, keyLength) = try validateInputs(query: query, key: key, value: value)
        let strides = try validateMask(inputs.mask, batched: query.rank == 3, batch: batch, length: length, keyLength: keyLength)
        let dropout = try activeDropout(inference: inputs.inference, seed: inputs.dropoutSeed)
        if let rotary = inputs.rotary, rotary.embeddingSize != qkSize {
            throw AttentionError.invalidArgument(
                argument: "rotary", reason: "its embeddingSize \(rotary.embeddingSize) must equal qkSize \(qkSize)")
        }
        if recording, inputs.processHeads != nil {
            throw AttentionError.unsupported(
                feature: "the gradients of processHeads",
                reason: "an arbitrary closure on the heads has no pullback; for RoPE pass rotary:, which is differentiated")
        }
        var mask = KernelMask()
        if let boolean = inputs.mask { mask.allowed = (boolean.values, strides) }
        return (batch, length, keyLength, mask, dropout)
    }

    /// The dropout of this call, or `nil` when it is off.
    func activeDropout(inference: Bool?, seed: UInt64?) throws(AttentionError) -> Dropout? {
        try Dropout.forCall(
            probability: dropoutProbability, probabilityArgument: "dropoutProbability",
            training: !(inference ?? self.inference), seed: seed)
    }
}
