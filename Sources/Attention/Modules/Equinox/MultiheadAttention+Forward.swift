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
        let (query, key, value, mask) = (inputs.query, inputs.key, inputs.value, inputs.mask)
        let (rotary, processHeads) = (inputs.rotary, inputs.processHeads)
        try validateParameters()
        try requireFloat32Parameters()
        try requireFloat32Activations(["query": query, "key": key, "value": value])
        let (batch, length, keyLength) = try validateInputs(query: query, key: key, value: value)
        let batched = query.rank == 3
        let maskStrides = try validateMask(mask, batched: batched, batch: batch, length: length, keyLength: keyLength)
        let dropout = try activeDropout(inference: inputs.inference, seed: inputs.dropoutSeed)
        if let rotary, rotary.embeddingSize != qkSize {
            throw AttentionError.invalidArgument(
                argument: "rotary",
                reason: "its embeddingSize \(rotary.embeddingSize) must equal qkSize \(qkSize)")
        }

        let (h, qk, vo) = (heads, qkSize, voSize)
        let lead = batched ? [batch] : []
        var views: (query: StridedHeads, key: StridedHeads, value: StridedHeads)
        var separate: AttentionHeads? = nil
        if isSelfAttention(query: query, key: key, value: value) {
            // One matmul; the heads are read in place from its rows [q heads | k heads | v heads].
            let (weight, bias) = try packedInputProjection()
            var packed = try projectLastAxis(query, weight: weight, layout: .outputsByInputs, bias: bias)
            let width = 2 * h * qk + h * vo
            if let rotary {
                // The query and key heads are adjacent in every row: rotate them as 2H heads at once.
                var queryAndKey = StridedHeads(rows: packed, batch: batch, length: length, rowWidth: width, heads: 2 * h, dim: qk)
                try rotary.rotate(&queryAndKey, positionOffset: 0)
                packed = queryAndKey.tensor
            }
            if processHeads != nil || inputs.returningWeights {
                separate = AttentionHeads(
                    query: try packed.sliced(0 ..< h * qk, axis: -1).reshaped(lead + [length, h, qk]),
                    key: try packed.sliced(h * qk ..< 2 * h * qk, axis: -1).reshaped(lead + [keyLength, h, qk]),
                    value: try packed.sliced(2 * h * qk ..< width, axis: -1).reshaped(lead + [keyLength, h, vo]))
            }
            views = (
                StridedHeads(rows: packed, batch: batch, length: length, rowWidth: width, offset: 0, heads: h, dim: qk),
                StridedHeads(
                    rows: packed, batch: batch, length: keyLength, rowWidth: width, offset: h * qk, heads: h, dim: qk),
                StridedHeads(
                    rows: packed, batch: batch, length: keyLength, rowWidth: width, offset: 2 * h * qk, heads: h,
                    dim: vo))
        } else {
            var heads = AttentionHeads(
                query: try queryProjection(query).reshaped(lead + [length, h, qk]),
                key: try keyProjection(key).reshaped(lead + [keyLength, h, qk]),
                value: try valueProjection(value).reshaped(lead + [keyLength, h, vo]))
            if let rotary {
                try rotary.rotateHeads(&heads.query)
                try rotary.rotateHeads(&heads.key)
            }
            separate = heads
            views = Self.views(of: heads, batch: batch, length: length, keyLength: keyLength, h: h, qk: qk, vo: vo)
        }
        if let processHeads, var heads = separate {
            let shapes = [heads.query.shape, heads.key.shape, heads.value.shape]
            try processHeads(&heads)
            for (name, before, after) in zip3(["query", "key", "value"], shapes, [heads.query.shape, heads.key.shape, heads.value.shape])
            where before != after {
                throw AttentionError.shapeMismatch(
                    argument: "processHeads",
                    expected: "\(name) heads of shape \(before): processHeads must not change the shape of the heads",
                    actual: after)
            }
            views = Self.views(of: heads, batch: batch, length: length, keyLength: keyLength, h: h, qk: qk, vo: vo)
            separate = heads
        }

        var call = AttentionKernelCall(query: views.query, key: views.key, value: views.value)
        if let mask { call.mask.allowed = (mask.values, maskStrides) }
        (call.scale, call.dropout, call.maskedRows) = (1 / Float(qk).squareRoot(), dropout, .meanOfValues)
        let attended = try call.run(
            outputShape: lead + [length, h * vo], outputLayout: .sequence,
            context: "query \(query.shape), key \(key.shape), value \(value.shape)").output
        let output = try outputProjection(attended)
        guard inputs.returningWeights, let heads = separate else { return AttentionResult(output: output) }
        // Equinox's mask (B, L, S) is per example for every head: (B, 1, L, S) in Flax's layout.
        let weightsMask = try mask.map { mask in
            batched && mask.rank == 3 ? try BooleanMask(shape: [batch, 1, length, keyLength], values: mask.values) : mask
        }
        let weights = try dotProductAttentionWeights(
            query: heads.query, key: heads.key, mask: weightsMask, dropout: dropout, broadcastDropout: false)
        return AttentionResult(output: output, weights: weights)
    }
}

/// Three sequences zipped.
fileprivate func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    zip(a, zip(b, c)).map { ($0, $1.0, $1.1) }
}
