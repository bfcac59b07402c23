extension Dropout: ParameterizedModule {
    /// Dropout has no parameters.
    public var parameterPaths: [ParameterPath<Dropout>] { [] }

    /// Applies dropout to activations (the outputs of a layer, not attention weights): each
    /// element is zeroed with probability ``probability`` and the kept ones are scaled by
    /// `1 / (1 - probability)`, so the expected value is unchanged, as `torch.nn.Dropout` and
    /// `equinox.nn.Dropout` do in training.
    ///
    /// The decision for element `i` (row-major index) is the same hash as the attention
    /// weights' dropout: kept when `splitmix64Bits(seed, offset + i) >= UInt32(probability · 2³²)`.
    /// So a given seed, offset and shape always drop the same elements; use another ``seed`` or
    /// ``offset`` for each layer and step.
    ///
    /// ```swift
    /// var dropout = Dropout(probability: 0.1, seed: 7)
    /// let trained = try dropout(hidden)                    // some elements zeroed
    /// let evaluated = try dropout(hidden, inference: true) // hidden, unchanged
    /// dropout.offset += UInt64(hidden.count)               // fresh elements for the next call
    /// ```
    ///
    /// - Parameters:
    ///   - input: any shape.
    ///   - inference: `true` returns `input` unchanged (PyTorch's `eval()`, Equinox's
    ///     `inference=True`); so does a probability of 0.
    /// A half-precision input gives a result of its dtype: each kept element is scaled in `Float`
    /// and rounded back once (to nearest even).
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"dropout.probability"`) unless the
    ///   probability is in `[0, 1)`.
    public func callAsFunction(_ input: Tensor, inference: Bool = false) throws -> Tensor {
        guard probability >= 0, probability < 1 else {
            throw AttentionError.invalidArgument(
                argument: "dropout.probability", reason: "must be in [0, 1), got \(probability)")
        }
        if inference || probability == 0 { return input }
        let keep = decision()
        var output = input
        output.withUnsafeMutableBufferPointer { values in
            for index in values.indices { values[index] = keep(values[index], index) }
        }
        return output
    }
}

extension Dropout: Layer {
    /// Dropout of `input` in training: as `callAsFunction(input, inference: false)`.
    ///
    /// - Throws: as ``callAsFunction(_:inference:)``.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try callAsFunction(input, inference: false)
    }
}
