// The forward pass of Equinox's MultiheadAttention: projections (one packed matmul for
// self-attention), rotary embedding and process_heads, and the kernel call over strided heads.

extension MultiheadAttention {
    // MARK: - Calling

    /// Self-attention: `self(query: x, key: x, value: x, ...)`, with the three input projections
    /// computed by one matrix multiply.
    ///
    /// Requires `keySize == valueSize == querySize`. Arguments, result and errors as
    /// ``callAsFunction(query:key:value:mask:inference:dropoutSeed:rotary:processHeads:)``.
    public func callAsFunction(
        _ x: Tensor, mask: BooleanMask? = nil, inference: Bool? = nil, dropoutSeed: UInt64? = nil,
        rotary: RotaryPositionalEmbedding? = nil, processHeads: ((inout AttentionHeads) throws -> Void)? = nil
    ) throws -> Tensor {
        try callAsFunction(
            query: x, key: x, value: x, mask: mask, inference: inference, dropoutSeed: dropoutSeed,
            rotary: rotary, processHeads: processHeads)
    }

    /// Multi-head attention of `query` over `key` and `value`.
    ///
    /// ```swift
    /// // Cross-attention of 4 queries over 9 keys, with a per-head mask and dropout.
    /// let out = try attention(
    ///     query: decoderStates, key: encoderStates, value: encoderStates,
    ///     mask: perHeadMask, inference: false, dropoutSeed: 1234)
    ///
    /// // Equinox's process_heads example, RoPE on the query and key heads:
    /// let rope = try RotaryPositionalEmbedding(embeddingSize: attention.qkSize)
    /// let y = try attention(query: x, key: x, value: x) { heads in
    ///     try rope.rotateHeads(&heads.query)
    ///     try rope.rotateHeads(&heads.key)
    /// }
    /// // The same, in place inside the projections, without the hook:
    /// let z = try attention(query: x, key: x, value: x, rotary: rope)
    /// ```
    ///
    /// - Parameters:
    ///   - query: `(L, querySize)`, or batched `(B, L, querySize)`.
    ///   - key: `(S, keySize)` or `(B, S, keySize)`, the query's rank.
    ///   - value: `(S, valueSize)` or `(B, S, valueSize)`, as many positions as the key.
    ///   - mask: `true` attends. Unbatched: `(L, S)` for every head or `(H, L, S)` per head.
    ///     Batched: `(B, L, S)` or `(B, H, L, S)`, or `(L, S)` shared by the whole batch.
    ///     A row with no `true` gives the mean of the value heads.
    ///   - inference: overrides the module's ``inference`` for this call.
    ///   - dropoutSeed: the seed of the dropout mask; required when dropout is active
    ///     (`dropoutProbability > 0` and not in inference mode), ignored otherwise. The decisions
    ///     depend on the seed and the (batch, head, query, key) coordinates only.
    ///   - rotary: a rotary embedding of size `qkSize`, applied in place to the query heads
    ///     (positions `0 ..< L`) and the key heads (positions `0 ..< S`) after the projections, as
    ///     Equinox's documented RoPE `process_heads`; values untouched.
    ///   - processHeads: Equinox's `process_heads`: called with the heads after the projections
    ///     (and after `rotary`), before the attention; it may change their values, not their shapes.
    /// - Returns: `(L, outputSize)` or `(B, L, outputSize)`.
    /// - Throws: `AttentionError.shapeMismatch` for a wrong rank or size (`"query"`, `"key"`,
    ///   `"value"` — including key and value lengths that differ), a mask of another shape
    ///   (`"mask"`), heads whose shape `processHeads` changed (`"processHeads"`), or projections
    ///   replaced by inconsistent ones (`"queryProjection"` …); `.invalidArgument` for an empty
    ///   sequence or batch, a missing seed (`"dropoutSeed"`), a `rotary` of another size
    ///   (`"rotary"`) or a probability outside `[0, 1)` (`"dropoutProbability"`); anything
    ///   `processHeads` throws; the kernels' errors.
    public func callAsFunction(
        query: Tensor, key: Tensor, value: Tensor, mask: BooleanMask? = nil, inference: Bool? = nil,
        dropoutSeed: UInt64? = nil, rotary: RotaryPositionalEmbedding? = nil,
        processHeads: ((inout AttentionHeads) throws -> Void)? = nil
    ) throws -> Tensor {
        try callAsFunction(
            Inputs(
                query: query, key: key, value: value, mask: mask, inference: inference, dropoutSeed: dropoutSeed,
                rotary: rotary, processHeads: processHeads)
        ).output
    }

    /// The attention output and the attention weights, `(H, L, S)` or `(B, H, L, S)`: the softmax
    /// of the scaled scores of the (rotated, processed) heads, masked as Equinox masks (a row with
    /// no `true` is uniform), after dropout. Equinox's module does not return them; they are what
    /// its `dot_product_attention_weights` computes inside it.
    ///
    /// - Throws: as ``callAsFunction(query:key:value:mask:inference:dropoutSeed:rotary:processHeads:)``.
    public func callWithWeights(
        query: Tensor, key: Tensor, value: Tensor, mask: BooleanMask? = nil, inference: Bool? = nil,
        dropoutSeed: UInt64? = nil, rotary: RotaryPositionalEmbedding? = nil,
        processHeads: ((inout AttentionHeads) throws -> Void)? = nil
    ) throws -> AttentionResult {
        try callAsFunction(
            Inputs(
                query: query, key: key, value: value, mask: mask, inference: inference, dropoutSeed: dropoutSeed,
                rotary: rotary, processHeads: processHeads, returningWeights: true))
    }
}

extension MultiheadAttention: Layer {
    /// The output and, when asked for, the weights.
    public typealias Output = AttentionResult

    /// What one call takes: Equinox's `__call__` arguments, the rotary embedding and
    /// `process_heads` hook, and whether to return the weights.
    ///
    /// ```swift
    /// let result = try attention(.init(query: x, key: x, value: x, returningWeights: true))
    /// ```
    public struct Inputs {
        /// `(L, querySize)`, or batched `(B, L, querySize)`.
        public var query: Tensor
        /// `(S, keySize)` or `(B, S, keySize)`.
        public var key: Tensor
        /// `(S, valueSize)` or `(B, S, valueSize)`.
        public var value: Tensor
        /// `true` attends: `(L, S)`, `(H, L, S)` unbatched; `(L, S)`, `(B, L, S)`, `(B, H, L, S)`
        /// batched.
        public var mask: BooleanMask?
        /// Overrides the module's ``MultiheadAttention/inference``.
        public var inference: Bool?
        /// The seed of the dropout mask; required when dropout is active.
        public var dropoutSeed: UInt64?
        /// A rotary embedding applied to the query and key heads.
        public var rotary: RotaryPositionalEmbedding?
        /// Equinox's `process_heads`.
        public var processHeads: ((inout AttentionHeads) throws -> Void)?
        /// Also return the attention weights.
        public var returningWeights: Bool

        /// Inputs with Equinox's defaults.
        public init(
            query: Tensor, key: Tensor, value: Tensor, mask: BooleanMask? = nil, inference: Bool? = nil,
            dropoutSeed: UInt64? = nil, rotary: RotaryPositionalEmbedding? = nil,
            processHeads: ((inout AttentionHeads) throws -> Void)? = nil, returningWeights: Bool = false
        ) {
            (self.query, self.key, self.value, self.mask) = (query, key, value, mask)
            (self.inference, self.dropoutSeed, self.rotary) = (inference, dropoutSeed, rotary)
            (self.processHeads, self.returningWeights) = (processHeads, returningWeights)
        }
    }

    /// Runs the module on `inputs`, as
    /// ``callAsFunction(query:key:value:mask:inference:dropoutSeed:rotary:processHeads:)``.
    public func callAsFunction(_ inputs: Inputs) throws -> AttentionResult {
        try forward(inputs).result
    }

    /// The forward pass. With `recording`, the pullbacks of the call come back too (see
    /// `EquinoxAttentionBackward`); `processHeads` cannot be recorded (an arbitrary closure has
    /// no pullback).
    func forward(
        _ inputs: Inputs, recording: Bool = false
    ) throws -> (result: AttentionResult, backward: EquinoxAttentionBackward?) {
        let (query, key, value) = (inputs.query, inputs.key, inputs.value)
        let (batch, length, keyLength, kernelMask, dropout) = try checkCall(inputs, recording: recording)
        let batched = query.rank == 3
        func batchMajor(_ x: Tensor) throws -> Tensor { batched ? x : try x.reshaped([1] + x.shape) }
        let projections: InputProjections = isSelfAttention(query: query, key: key, value: value)
            ? .packed(try packedInputProjection())
            : .separate(query: queryProjection, key: keyProjection, value: valueProjection)
        let (q, k, v) = (try batchMajor(query), try batchMajor(key), try batchMajor(value))
        var heads: ProjectedHeads, projectionBackward: ProjectionPullback? = nil
        if recording {
            (heads, projectionBackward) = try core.projectWithPullback(
                query: q, key: k, value: v, with: projections, rotary: inputs.rotary)
        } else {
            heads = try core.project(query: q, key: k, value: v, with: projections, rotary: inputs.rotary)
        }
        if let processHeads = inputs.processHeads { heads = try processed(heads, by: processHeads, batched: batched) }
        let (attended, weights, attentionBackward) = try attend(
            heads, mask: kernelMask, dropout: dropout, returningWeights: inputs.returningWeights, recording: recording,
            context: "query \(query.shape), key \(key.shape), value \(value.shape)")
        let lead = batched ? [batch] : []
        let rows = try attended.reshaped(lead + [length, self.heads * voSize])
        let result = AttentionResult(
            output: try outputProjection(rows),
            weights: try weights.map { try $0.reshaped(lead + [self.heads, length, keyLength]) })
        let backward = recording
            ? EquinoxAttentionBackward(
                module: self, inputShapes: (query.shape, key.shape, value.shape), projection: projectionBackward!,
                attention: attentionBackward!, attended: rows)
            : nil
        return (result, backward)
    }

    /// The attention of the heads (Equinox's scale `1/√qkSize`, a fully masked row the mean of the
    /// values), with its pullback when `recording`.
    private func attend(
        _ heads: ProjectedHeads, mask: KernelMask, dropout: Dropout?, returningWeights: Bool, recording: Bool,
        context: @autoclosure () -> String
    ) throws -> (output: Tensor, weights: Tensor?, pullback: AttentionHeadsPullback?) {
        let scale = 1 / Float(qkSize).squareRoot()
        if recording {
            return try core.attendWithPullback(
                heads, mask: mask, scale: scale, dropout: dropout, maskedRows: .meanOfValues,
                returningWeights: returningWeights, context: context())
        }
        let (output, weights) = try core.attend(
            heads, mask: mask, scale: scale, dropout: dropout, maskedRows: .meanOfValues,
            returningWeights: returningWeights, context: context())
        return (output, weights, nil)
    }

    /// The heads of this module: ``heads`` of ``qkSize`` for queries and keys, ``voSize`` for values.
    var core: MultiHeadAttentionCore { MultiHeadAttentionCore(heads: heads, queryKeySize: qkSize, valueSize: voSize) }

    /// Equinox's `process_heads` on dense copies of the heads, `(B, L, H, d)` (no `B` unbatched),
    /// which it may change in value but not in shape.
    private func processed(
        _ heads: ProjectedHeads, by process: (inout AttentionHeads) throws -> Void, batched: Bool
    ) throws -> ProjectedHeads {
        func dense(_ view: StridedHeads) throws -> Tensor {
            let shape = [view.length, view.heads, view.dim]
            return try view.denseRows().reshaped(batched ? [view.batch] + shape : shape)
        }
        var tensors = AttentionHeads(query: try dense(heads.query), key: try dense(heads.key), value: try dense(heads.value))
        let before = [tensors.query.shape, tensors.key.shape, tensors.value.shape]
        try process(&tensors)
        let after = [tensors.query.shape, tensors.key.shape, tensors.value.shape]
        for (name, (old, new)) in zip(["query", "key", "value"], zip(before, after)) where old != new {
            throw AttentionError.shapeMismatch(
                argument: "processHeads",
                expected: "\(name) heads of shape \(old): processHeads must not change the shape of the heads", actual: new)
        }
        func view(_ tensor: Tensor, like old: StridedHeads) -> StridedHeads {
            StridedHeads(dense: tensor, layout: .sequence, batch: old.batch, length: old.length, heads: old.heads, dim: old.dim)
        }
        return ProjectedHeads(
            query: view(tensors.query, like: heads.query), key: view(tensors.key, like: heads.key),
            value: view(tensors.value, like: heads.value))
    }
}

