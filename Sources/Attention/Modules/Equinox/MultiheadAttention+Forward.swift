// The forward pass of Equinox's MultiheadAttention: projections (one packed matmul for
// self-attention), rotary embedding and process_heads, and the kernel call over strided heads.

extension MultiheadAttention {
    // MARK: - Calling

    /// Self-attention: `self(query: x, key: x, value: x, ...)`, with the three input projections
    /// computed by one matrix multiply.
    ///
    /// ```swift
    /// let y = try attention(x)                                    // x: (L, querySize) or (B, L, querySize)
    /// let r = try attention(x, rotary: RotaryPositionalEmbedding(embeddingSize: attention.qkSize))
    /// ```
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
        try validateParameters()
        let (batch, length, keyLength) = try validateInputs(query: query, key: key, value: value)
        let batched = query.rank == 3
        let maskStrides = try validateMask(mask, batched: batched, batch: batch, length: length, keyLength: keyLength)
        let dropout = try activeDropout(inference: inference, seed: dropoutSeed)
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
            if processHeads != nil {
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
        }

        var call = AttentionKernelCall(query: views.query, key: views.key, value: views.value)
        if let mask { call.mask.allowed = (mask.values, maskStrides) }
        (call.scale, call.dropout, call.maskedRows) = (1 / Float(qk).squareRoot(), dropout, .meanOfValues)
        let attended = try call.run(
            outputShape: lead + [length, h * vo], outputLayout: .sequence,
            context: "query \(query.shape), key \(key.shape), value \(value.shape)").output
        return try outputProjection(attended)
    }
}

/// Three sequences zipped.
fileprivate func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    zip(a, zip(b, c)).map { ($0, $1.0, $1.1) }
}
