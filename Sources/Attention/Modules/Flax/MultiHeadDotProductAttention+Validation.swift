// The checks of MultiHeadDotProductAttention's parameters and inputs, and the projections
// shared by the forward pass and decoding.

extension MultiHeadDotProductAttention {
    // MARK: - Validation

    /// Checks that the (public, mutable) parameters still fit together.
    func validateParameters() throws(AttentionError) {
        // Kernels first (their shapes define the others), then each projection's own checks.
        let (h, d) = (heads, headDimension)
        guard queryProjection.layout == .inputsByOutputs(inputAxes: 1), queryProjection.weight.rank == 3, h >= 1,
              queryProjection.outputShape == [h, d]
        else {
            throw .shapeMismatch(
                argument: "queryProjection.kernel", expected: "(features, \(h), headDim) for \(h) heads, inputAxes 1",
                actual: queryProjection.weight.shape)
        }
        for (name, projection) in [("keyProjection", keyProjection), ("valueProjection", valueProjection)] {
            guard projection.layout == .inputsByOutputs(inputAxes: 1), projection.weight.rank == 3, projection.outputShape == [h, d] else {
                throw .shapeMismatch(
                    argument: "\(name).kernel",
                    expected: "(features, \(h), \(d)) (features, H, headDim) like queryProjection.kernel "
                        + "\(queryProjection.weight.shape), inputAxes 1",
                    actual: projection.weight.shape)
            }
        }
        guard outputProjection.layout == .inputsByOutputs(inputAxes: 2), outputProjection.weight.rank == 3,
              outputProjection.inputShape == [h, d]
        else {
            throw .shapeMismatch(
                argument: "outputProjection.kernel", expected: "[\(h), \(d), out] (H, headDim, out) with inputAxes 2",
                actual: outputProjection.weight.shape)
        }
        for (name, projection) in [
            ("queryProjection", queryProjection), ("keyProjection", keyProjection),
            ("valueProjection", valueProjection), ("outputProjection", outputProjection),
        ] {
            do {
                try projection.validateParameters()
            } catch {
                throw error.renamingArgument { "\(name).\($0)" }
            }
        }
        for (name, norm) in [("queryNorm", queryNorm), ("keyNorm", keyNorm)] {
            if let norm, norm.size != d {
                throw .invalidArgument(
                    argument: "\(name).size", reason: "must be headDimension (\(d)), got \(norm.size)")
            }
        }
        try Self.validateRate(dropoutRate)
    }

    /// The dropout of a call: `nil` when the rate is 0 or the call is deterministic. Flax's
    /// `merge_param('deterministic', self.deterministic, deterministic)`, needed only when the
    /// rate is above 0.
    func resolveDropout(deterministic: Bool?, dropoutSeed: UInt64?) throws(AttentionError) -> Dropout? {
        guard dropoutRate > 0 else { return nil }
        let isDeterministic: Bool
        switch (self.deterministic, deterministic) {
        case let (fixed?, nil): isDeterministic = fixed
        case let (nil, given?): isDeterministic = given
        case (nil, nil):
            throw .invalidArgument(
                argument: "deterministic",
                reason: "must be given, to the module or to the call, when dropoutRate (\(dropoutRate)) is above 0")
        case (_?, _?):
            throw .invalidArgument(
                argument: "deterministic",
                reason: "was given both to the module and to the call; give it once (as Flax's merge_param requires)")
        }
        return try Dropout.forCall(
            probability: dropoutRate, probabilityArgument: "dropoutRate", training: !isDeterministic, seed: dropoutSeed)
    }

    /// The checks of a call (parameters, dtypes, shapes, mask, dropout, and with `recording` an
    /// attention function that has a pullback): the key and value after Flax's defaulting, the
    /// batch shape, the mask with its batch dimensions flattened, and the dropout.
    ///
    /// - Throws: as ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)``;
    ///   `AttentionError.unsupported` for a custom attention function while `recording`.
    func checkCall(
        _ inputs: Inputs, recording: Bool
    ) throws -> (key: Tensor, value: Tensor, batchShape: [Int], mask: BooleanMask?, dropout: Dropout?) {
        let query = inputs.query
        try validateParameters()
        try requireFloat32Parameters()
        try requireFloat32Activations(["query": query, "key": inputs.key, "value": inputs.value])
        let (key, value, batchShape, lengthQ, lengthK) = try checkInputs(query: query, key: inputs.key, value: inputs.value)
        let mask = try inputs.mask.map { mask throws(AttentionError) in
            try Self.flattenedMask(
                mask, batchShape: batchShape, heads: heads, lengthQ: lengthQ, lengthK: lengthK, argument: "mask")
        }
        let dropout = try resolveDropout(deterministic: inputs.deterministic, dropoutSeed: inputs.dropoutSeed)
        if recording, case .custom = attentionFunction.kind {
            throw AttentionError.unsupported(
                feature: "the gradients of a custom attentionFunction",
                reason: "a closure has no pullback; the fused and unfused attention functions are differentiated")
        }
        return (key, value, batchShape, mask, dropout)
    }

    /// The three inputs after Flax's defaulting (key ← query, value ← key), checked.
    /// Returns the batch shape and the lengths.
    func checkInputs(query: Tensor, key: Tensor?, value: Tensor?) throws(AttentionError)
        -> (key: Tensor, value: Tensor, batchShape: [Int], lengthQ: Int, lengthK: Int)
    {
        if key == nil, value != nil {
            throw .invalidArgument(
                argument: "key",
                reason: "cannot be nil when value is given; pass the same tensor as key to use it for both")
        }
        let key = key ?? query
        let value = value ?? key
        guard query.rank >= 2, query.shape.last == inputFeatures else {
            throw .shapeMismatch(
                argument: "query", expected: "[batch..., L, \(inputFeatures)] ([batch..., length, inputFeatures])",
                actual: query.shape)
        }
        let batchShape = Array(query.shape.dropLast(2))
        let batchPattern = batchShape.map(String.init).joined(separator: ", ")
        let prefix = batchPattern.isEmpty ? "" : batchPattern + ", "
        guard key.rank == query.rank, Array(key.shape.dropLast(2)) == batchShape, key.shape.last == keyFeatures else {
            throw .shapeMismatch(
                argument: "key", expected: "[\(prefix)S, \(keyFeatures)] (the query's batch dimensions, length, keyFeatures)",
                actual: key.shape)
        }
        let lengthK = key.shape[key.rank - 2]
        guard value.rank == query.rank, Array(value.shape.dropLast(2)) == batchShape,
              value.shape[value.rank - 2] == lengthK, value.shape.last == valueFeatures
        else {
            throw .shapeMismatch(
                argument: "value",
                expected: "[\(prefix)\(lengthK), \(valueFeatures)] (the key's batch dimensions and length, valueFeatures)",
                actual: value.shape)
        }
        return (key, value, batchShape, query.shape[query.rank - 2], lengthK)
    }

    /// The heads of this module: ``heads`` of ``headDimension``.
    var core: MultiHeadAttentionCore { MultiHeadAttentionCore(heads: heads, queryKeySize: headDimension) }

    /// The projected heads of inputs `[batch..., length, features]` (flattened to `B` batches),
    /// the query and key heads normalised when ``normalizeQK``; with `recording`, the pullback
    /// of the projections and the norms too.
    func projectedHeads(
        query: Tensor, key: Tensor, value: Tensor, batch: Int, recording: Bool = false
    ) throws -> (heads: ProjectedHeads, backward: FlaxProjectionBackward?) {
        func rows(_ x: Tensor) throws -> Tensor { try x.reshaped([batch, x.shape[x.rank - 2], x.shape[x.rank - 1]]) }
        let (q, k, v) = (try rows(query), try rows(key), try rows(value))
        let projections = InputProjections.separate(query: queryProjection, key: keyProjection, value: valueProjection)
        var heads: ProjectedHeads, projection: ProjectionPullback? = nil
        if recording {
            (heads, projection) = try core.projectWithPullback(query: q, key: k, value: v, with: projections)
        } else {
            heads = try core.project(query: q, key: k, value: v, with: projections)
        }
        var norms: [LayerPullback<LayerNorm>?] = [nil, nil]
        for (index, (norm, path)) in [(queryNorm, \ProjectedHeads.query), (keyNorm, \ProjectedHeads.key)].enumerated() {
            guard let norm else { continue }
            let view = heads[keyPath: path]   // dense (B, L, H·d): the norm is over each head's d
            let perHead = try view.tensor.reshaped([view.batch, view.length, view.heads, view.dim])
            let normalized: Tensor
            if recording { (normalized, norms[index]) = try norm.callWithPullback(perHead) } else { normalized = try norm(perHead) }
            heads[keyPath: path].tensor = try normalized.reshaped([view.batch, view.length, view.width])
        }
        return (heads, projection.map { FlaxProjectionBackward(projection: $0, queryNorm: norms[0], keyNorm: norms[1]) })
    }

    /// The attention of projected heads through ``attentionFunction``: the kernels over the heads
    /// in place, or a custom function over dense `(B, L, H, d)` copies; the weights, when asked
    /// for, from the one weights routine. Masks and dropout as Flax's: a fully masked row is uniform.
    /// With `recording` (the kernels only: the caller refuses a custom function), the
    /// attention's pullback too.
    ///
    /// - Parameters:
    ///   - mask: what the kernels and the weights mask.
    ///   - customMask: the same mask as a custom function takes it.
    func attend(
        _ heads: ProjectedHeads, mask: KernelMask, customMask: () throws -> AttentionMask, dropout: Dropout?,
        returningWeights: Bool, recording: Bool = false, context: @autoclosure () -> String
    ) throws -> (output: Tensor, weights: Tensor?, pullback: AttentionHeadsPullback?) {
        switch attentionFunction.kind {
        case let .kernel(algorithm) where recording:
            return try core.attendWithPullback(
                heads, mask: mask, dropout: dropout, broadcastDropout: broadcastDropout, maskedRows: .meanOfValues,
                returningWeights: returningWeights, algorithm: algorithm, context: context())
        case let .kernel(algorithm):
            let (output, weights) = try core.attend(
                heads, mask: mask, dropout: dropout, broadcastDropout: broadcastDropout, maskedRows: .meanOfValues,
                returningWeights: returningWeights, algorithm: algorithm, context: context())
            return (output, weights, nil)
        case .custom:
            func dense(_ view: StridedHeads) throws -> Tensor {
                try view.denseRows().reshaped([view.batch, view.length, view.heads, view.dim])
            }
            let arguments = AttentionFunction.Arguments(
                query: try dense(heads.query), key: try dense(heads.key), value: try dense(heads.value),
                mask: try customMask(), dropout: dropout, broadcastDropout: broadcastDropout)
            let output = try runAttentionFunction(
                arguments, expectedShape: [heads.query.batch, heads.query.length, heads.query.heads, heads.value.dim])
            let weights = try returningWeights ? attentionWeights(
                query: heads.query, key: heads.key, mask: mask, scale: 1 / Float(headDimension).squareRoot(),
                maskedRows: .meanOfValues, dropout: dropout, broadcastDropout: broadcastDropout) : nil
            return (try output.reshaped([heads.query.batch, heads.query.length, heads.query.heads * heads.value.dim]), weights, nil)
        }
    }

    /// The output projection of `(B, L, H, d)` heads, reshaped to `[batch..., L, out]`.
    func projectedOutput(_ heads: Tensor, batchShape: [Int], length: Int) throws -> Tensor {
        let output = try outputProjection(heads.reshaped([heads.shape[0], length, self.heads, headDimension]))
        return try output.reshaped(batchShape + [length, outFeatures])
    }
}
