// The forward pass of MultiHeadDotProductAttention: Flax's __call__ (without decoding).

extension MultiHeadDotProductAttention {
    // MARK: - Calling

    /// Attends `query` to `key` and `value`: `[batch..., L, inputFeatures]` →
    /// `[batch..., L, outFeatures]`.
    ///
    /// ```swift
    /// let y = try attention(query: x)                                // self-attention
    /// let z = try attention(query: x, key: memory)                   // value = key
    /// let padded = try BooleanMask(shape: [2, 1, 1, 7]) { $0[3] < 5 } // keys 5, 6 are padding
    /// let w = try attention(query: x, key: memory, mask: padded)
    /// let t = try attention(query: x, deterministic: false, dropoutSeed: 42)   // training
    /// ```
    ///
    /// - Parameters:
    ///   - query: `[batch..., L, inputFeatures]`, any number (zero included) of batch dimensions.
    ///   - key: `[batch..., S, keyFeatures]`; `query` when `nil`.
    ///   - value: `[batch..., S, valueFeatures]`; `key` when `nil`. Not allowed without `key`.
    ///   - mask: broadcastable to `[batch..., H, L, S]`, `true` attends. A query row with every key
    ///     masked gets uniform weights (the mean of the values), as Flax's `finfo.min` masking
    ///     gives.
    ///   - deterministic: whether to skip dropout; see ``deterministic``. Only needed when
    ///     ``dropoutRate`` is above 0.
    ///   - dropoutSeed: the seed of the dropout stream (Flax's `dropout_rng`); needed when dropout
    ///     is active.
    /// - Throws: `AttentionError.shapeMismatch` (`"query"`, `"key"`, `"value"`, `"mask"`) for an
    ///   input whose shape does not fit; `.invalidArgument` (`"key"`) for a value without a key,
    ///   (`"deterministic"`) when it is missing or given twice with dropout, (`"dropoutSeed"`) when
    ///   dropout is active without a seed; `.shapeMismatch` (`"attentionFunction"`) when the
    ///   attention function returns another shape than `(B, L, H, headDim)`, `.unsupportedDType`
    ///   (`"attentionFunction"`) when it returns heads that are not `float32`; the errors of the
    ///   parameters' checks, of the attention function and of the kernels.
    public func callAsFunction(
        query: Tensor, key: Tensor? = nil, value: Tensor? = nil, mask: BooleanMask? = nil,
        deterministic: Bool? = nil, dropoutSeed: UInt64? = nil
    ) throws -> Tensor {
        try callAsFunction(
            Inputs(query: query, key: key, value: value, mask: mask, deterministic: deterministic, dropoutSeed: dropoutSeed)
        ).output
    }

    /// As ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)``, also returning the
    /// attention weights `[batch..., H, L, S]`, as Flax sows them with `sow_weights=True`
    /// (`intermediates/attention_weights`): after the softmax and before dropout.
    ///
    /// The weights are computed by ``dotProductAttentionWeights(query:key:mask:bias:dropout:broadcastDropout:)``
    /// on the same heads, a second pass beside the attention function (which never forms them).
    ///
    /// - Throws: as ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)``.
    public func callWithWeights(
        query: Tensor, key: Tensor? = nil, value: Tensor? = nil, mask: BooleanMask? = nil,
        deterministic: Bool? = nil, dropoutSeed: UInt64? = nil
    ) throws -> AttentionResult {
        try callAsFunction(
            Inputs(
                query: query, key: key, value: value, mask: mask, deterministic: deterministic,
                dropoutSeed: dropoutSeed, returningWeights: true))
    }
}

extension MultiHeadDotProductAttention: Layer {
    /// The output and, when asked for, the weights.
    public typealias Output = AttentionResult

    /// What one call takes: Flax's `__call__` arguments (without decoding, see
    /// ``decode(_:key:value:cache:mask:deterministic:dropoutSeed:)``), and whether to return
    /// the weights (Flax's `sow_weights`).
    ///
    /// ```swift
    /// let result = try attention(.init(query: x, mask: padded, returningWeights: true))
    /// ```
    public struct Inputs: Sendable {
        /// `[batch..., L, inputFeatures]`.
        public var query: Tensor
        /// `[batch..., S, keyFeatures]`; `query` when `nil`.
        public var key: Tensor?
        /// `[batch..., S, valueFeatures]`; `key` when `nil`.
        public var value: Tensor?
        /// Broadcastable to `[batch..., H, L, S]`, `true` attends.
        public var mask: BooleanMask?
        /// Whether to skip dropout; see ``MultiHeadDotProductAttention/deterministic``.
        public var deterministic: Bool?
        /// The seed of the dropout stream (Flax's `dropout_rng`).
        public var dropoutSeed: UInt64?
        /// Also return the attention weights, `[batch..., H, L, S]`, before dropout.
        public var returningWeights: Bool

        /// Inputs with Flax's defaults.
        public init(
            query: Tensor, key: Tensor? = nil, value: Tensor? = nil, mask: BooleanMask? = nil,
            deterministic: Bool? = nil, dropoutSeed: UInt64? = nil, returningWeights: Bool = false
        ) {
            (self.query, self.key, self.value, self.mask) = (query, key, value, mask)
            (self.deterministic, self.dropoutSeed, self.returningWeights) = (deterministic, dropoutSeed, returningWeights)
        }
    }

    /// Runs the module on `inputs`, as
    /// ``callAsFunction(query:key:value:mask:deterministic:dropoutSeed:)``.
    public func callAsFunction(_ inputs: Inputs) throws -> AttentionResult {
        try forward(inputs).result
    }

    /// The forward pass. With `recording`, the pullbacks of the call come back too (see
    /// `FlaxAttentionBackward`); a custom ``attentionFunction`` cannot be recorded.
    func forward(
        _ inputs: Inputs, recording: Bool = false
    ) throws -> (result: AttentionResult, backward: FlaxAttentionBackward?) {
        let query = inputs.query
        let (key, value, batchShape, flatMask, dropout) = try checkCall(inputs, recording: recording)
        let (lengthQ, lengthK) = (query.shape[query.rank - 2], key.shape[key.rank - 2])
        let batch = try elementCount(of: batchShape, argument: "query")
        let (projected, projectionBackward) = try projectedHeads(
            query: query, key: key, value: value, batch: batch, recording: recording)
        let scores = [batch, heads, lengthQ, lengthK]
        var kernelMask = KernelMask()
        if let flatMask { kernelMask.allowed = (flatMask.values, ScoreStrides(broadcasting: flatMask.shape, to: scores)!) }
        let (attended, weights, attentionBackward) = try attend(
            projected, mask: kernelMask, customMask: { AttentionMask(booleanMask: flatMask) }, dropout: dropout,
            returningWeights: inputs.returningWeights, recording: recording,
            context: "query \(query.shape), key \(key.shape), value \(value.shape)")
        let output = try projectedOutput(attended, batchShape: batchShape, length: lengthQ)
        let result = AttentionResult(
            output: output, weights: try weights.map { try $0.reshaped(batchShape + [heads, lengthQ, lengthK]) })
        let backward = recording
            ? FlaxAttentionBackward(
                module: self, inputShapes: (query.shape, key.shape, value.shape), projection: projectionBackward!,
                attention: attentionBackward!)
            : nil
        return (result, backward)
    }
}

extension MultiHeadDotProductAttention {

    /// Runs ``attentionFunction`` and checks the shape and dtype it returns (the output
    /// projection takes float32 heads).
    func runAttentionFunction(_ arguments: AttentionFunction.Arguments, expectedShape: [Int]) throws -> Tensor {
        let heads = try attentionFunction(arguments)
        try heads.requireFloat32(
            "attentionFunction",
            reason: "the output projection takes the attention function's heads in float32; return them as float32 "
                + "(outputDType: .float32, or converted(to: .float32))")
        guard heads.shape == expectedShape else {
            throw AttentionError.shapeMismatch(
                argument: "attentionFunction",
                expected: "\(expectedShape) (B, L, H, headDim): the query heads' shape", actual: heads.shape)
        }
        return heads
    }
}
