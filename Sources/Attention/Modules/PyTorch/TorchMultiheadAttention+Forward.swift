// The forward pass of TorchMultiheadAttention: PyTorch's shape checks, the in-projection read in
// place by the kernels, add_bias_kv / add_zero_attn, the masks, and the fused or need_weights path.

extension TorchMultiheadAttention {
    /// Multi-head attention of `query` over `key` and `value`, PyTorch's
    /// `MultiheadAttention.forward` (its slow path, which its fast path matches).
    ///
    /// ```swift
    /// // Batched cross-attention, (L, N, E) layout, a bool key padding mask (true = padding)
    /// let memoryPadding = try TorchMask.disallowed(BooleanMask(shape: [2, 6]) { $0[0] == 1 && $0[1] >= 4 })
    /// let result = try mha(query: q, key: memory, value: memory, keyPaddingMask: memoryPadding)
    /// // result.output (L, 2, E), result.weights (2, L, 6) averaged over heads
    /// let perHead = try mha(query: q, key: memory, value: memory, averageAttentionWeights: false)
    /// // perHead.weights (2, H, L, 6)
    /// ```
    ///
    /// Shapes (with L the query length, S the key length, N the batch):
    ///
    /// | argument        | unbatched     | batched                                           |
    /// |-----------------|---------------|---------------------------------------------------|
    /// | `query`         | (L, E)        | (L, N, E), or (N, L, E) with ``batchFirst``       |
    /// | `key`           | (S, kdim)     | (S, N, kdim), or (N, S, kdim)                     |
    /// | `value`         | (S, vdim)     | (S, N, vdim), or (N, S, vdim)                     |
    /// | `keyPaddingMask`| (S)           | (N, S)                                            |
    /// | `attentionMask` | (L, S) or (H, L, S) | (L, S) or (N·H, L, S); also (N or 1, H or 1, L, S) |
    /// | output          | (L, E)        | as `query`                                        |
    /// | weights         | (L, S′) averaged or (H, L, S′) | (N, L, S′) or (N, H, L, S′)       |
    ///
    /// where S′ = S + 1 with ``biasKey`` + 1 with ``addZeroAttention``. The rank-4 attention mask
    /// is an extension (PyTorch rejects it): any mask broadcastable to (N, H, L, S) that way.
    ///
    /// Semantics, as PyTorch:
    /// - `keyPaddingMask` marks keys to ignore (``TorchMask/disallowed(_:)``: `true` = ignore)
    ///   or is added to the scores (``TorchMask/additive(_:)``); `attentionMask` likewise per
    ///   query and key. Both are padded with "attend" columns for the appended keys, and added.
    /// - `isCausal` is PyTorch's hint that `attentionMask` is causal: it requires the mask (or
    ///   throws, like PyTorch's `RuntimeError`); with `needWeights: false` and no key padding
    ///   mask the mask is then ignored and the kernel's own causal mask (`tril(ones(L, S′))`)
    ///   is used; otherwise the mask is used.
    /// - `needWeights: true` (the default) returns the weights; a query row with every key masked
    ///   gives NaN weights and a NaN output row (a plain softmax over `-inf`).
    ///   `needWeights: false` returns `nil` weights and runs the fused kernel; a fully masked row's
    ///   output is `out_proj.bias` (PyTorch ≥ 2.5's SDPA, zeros before the output projection).
    /// - In `training` with ``dropout`` > 0 the attention weights are dropped out (and the returned
    ///   weights are the dropped-out ones), from `dropoutSeed`: the same seed drops the same
    ///   weights on both paths. Out of training there is no dropout.
    ///
    /// The projection weights may be `float16` or `bfloat16` (``ParameterizedModule/convertingWeights(to:)``);
    /// inputs, biases and masks are `float32`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` naming a half-precision input, mask or
    ///   non-weight parameter (`"in_proj_bias"`, `"bias_k"`, ...); `.shapeMismatch` naming `"query"`, `"key"`, `"value"`,
    ///   `"keyPaddingMask"` or `"attentionMask"` for PyTorch's shape errors (wrong ranks,
    ///   embedding width, `key`/`value` shapes, batch sizes, mask shapes), or a parameter
    ///   changed to a wrong shape; `.invalidArgument` (`"isCausal"`) for `isCausal` without an
    ///   attention mask, (`"key"`) for no key at all; the kernels' errors.
    public func callAsFunction(
        query: Tensor, key: Tensor, value: Tensor, keyPaddingMask: TorchMask? = nil, needWeights: Bool = true,
        attentionMask: TorchMask? = nil, averageAttentionWeights: Bool = true, isCausal: Bool = false,
        training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> AttentionResult {
        try forward(
            query: query, key: key, value: value, keyPaddingMask: keyPaddingMask, needWeights: needWeights,
            attentionMask: attentionMask, averageAttentionWeights: averageAttentionWeights,
            causal: .hint(isCausal), maskedRows: .zero,
            dropout: try Dropout.forCall(
                probability: dropout, probabilityArgument: "dropout", training: training, seed: dropoutSeed))
    }

    /// How `isCausal` combines with the attention mask.
    enum CausalMasking {
        /// PyTorch: a hint that the attention mask is causal (see `callAsFunction`).
        case hint(Bool)
        /// noxton / Equinox: causal masking in addition to the mask (their `mask & tril`); no
        /// mask needed. Only with `needWeights: false`.
        case combined(Bool)
    }

    /// The forward pass with the choices the encoder layers need: how `isCausal` works, what a
    /// fully masked row gives on the fused path, and the dropout (already resolved from training).
    func forward(
        query: Tensor, key: Tensor, value: Tensor, keyPaddingMask: TorchMask?, needWeights: Bool,
        attentionMask: TorchMask?, averageAttentionWeights: Bool, causal: CausalMasking,
        maskedRows: MaskedRowPolicy, dropout: Dropout?
    ) throws -> AttentionResult {
        typealias Kernels = TorchAttentionKernels
        try validateParameters()
        try requireFloat32Parameters()
        try requireFloat32Activations(["query": query, "key": key, "value": value])
        try attentionMask?.requireFloat32("attentionMask")
        try keyPaddingMask?.requireFloat32("keyPaddingMask")
        let e = embedDim

        // _mha_shape_check: ranks, and the unbatched 3-D mask.
        let batched: Bool
        switch query.rank {
        case 3: batched = true
        case 2: batched = false
        default:
            throw AttentionError.shapeMismatch(
                argument: "query",
                expected: "unbatched 2-D (L, E) or batched 3-D \(batchFirst ? "(N, L, E)" : "(L, N, E)")",
                actual: query.shape)
        }
        let kind = batched ? "batched (3-D)" : "unbatched (2-D)"
        for (name, tensor) in [("key", key), ("value", value)] where tensor.rank != query.rank {
            throw AttentionError.shapeMismatch(
                argument: name, expected: "\(query.rank)-D, as the \(kind) query \(query.shape)", actual: tensor.shape)
        }
        if let keyPaddingMask, keyPaddingMask.shape.count != (batched ? 2 : 1) {
            throw AttentionError.shapeMismatch(
                argument: "keyPaddingMask", expected: batched ? "2-D (N, S) for a batched query" : "1-D (S) for an unbatched query",
                actual: keyPaddingMask.shape)
        }
        let (batch, length) = batched ? (batchFirst ? (query.shape[0], query.shape[1]) : (query.shape[1], query.shape[0]))
                                      : (1, query.shape[0])
        let (keyBatch, keyLength) = batched ? (batchFirst ? (key.shape[0], key.shape[1]) : (key.shape[1], key.shape[0]))
                                            : (1, key.shape[0])
        if let attentionMask {
            let rank = attentionMask.shape.count
            guard rank == 2 || rank == 3 || (batched && rank == 4) else {
                throw AttentionError.shapeMismatch(
                    argument: "attentionMask",
                    expected: batched ? "2-D (L, S), 3-D (N·H, L, S) or 4-D (N or 1, H or 1, L, S)" : "2-D (L, S) or 3-D (H, L, S)",
                    actual: attentionMask.shape)
            }
            if !batched && rank == 3 && attentionMask.shape != [heads, length, keyLength] {
                throw AttentionError.shapeMismatch(
                    argument: "attentionMask", expected: "[\(heads), \(length), \(keyLength)] (H, L, S)",
                    actual: attentionMask.shape)
            }
        }

        // is_causal: a hint that requires the mask; the causal kernel replaces the mask when
        // neither weights nor a key padding mask need it.
        var attentionMask = attentionMask
        var causalKernel = false
        switch causal {
        case .hint(true):
            guard attentionMask != nil else {
                throw AttentionError.invalidArgument(
                    argument: "isCausal",
                    reason: "Need attn_mask if specifying the is_causal hint. You may use "
                        + "TorchMask.squareSubsequent(_:) (generate_square_subsequent_mask) to create this mask.")
            }
            if keyPaddingMask == nil && !needWeights {
                attentionMask = nil
                causalKernel = true
            }
        case .hint(false):
            break
        case let .combined(isCausal):
            guard !(isCausal && needWeights) else {
                throw AttentionError.invalidArgument(
                    argument: "needWeights", reason: "causal masking combined with the mask runs on the fused path only")
            }
            causalKernel = isCausal
        }

        // Widths, key/value agreement, batch sizes.
        guard query.shape[query.rank - 1] == e else {
            throw AttentionError.shapeMismatch(
                argument: "query", expected: "last dimension \(e): was expecting embedding dimension of \(e)",
                actual: query.shape)
        }
        if usesPackedInProjection {
            guard key.shape == value.shape else {
                throw AttentionError.shapeMismatch(
                    argument: "value", expected: "\(key.shape), the key's shape", actual: value.shape)
            }
        } else {
            guard key.shape.dropLast() == value.shape.dropLast() else {
                throw AttentionError.shapeMismatch(
                    argument: "value",
                    expected: "the key's sequence and batch dimensions \(Array(key.shape.dropLast()))",
                    actual: value.shape)
            }
        }
        guard key.shape[key.rank - 1] == keyDim else {
            throw AttentionError.shapeMismatch(
                argument: "key", expected: "last dimension \(keyDim) (kdim)", actual: key.shape)
        }
        guard value.shape[value.rank - 1] == valueDim else {
            throw AttentionError.shapeMismatch(
                argument: "value", expected: "last dimension \(valueDim) (vdim)", actual: value.shape)
        }
        guard keyBatch == batch else {
            throw AttentionError.shapeMismatch(
                argument: "key", expected: "batch size \(batch), the query's", actual: key.shape)
        }

        // Mask shapes against L and S.
        if let attentionMask {
            let shape = attentionMask.shape
            let batchHeads = try checkedProduct(batch, heads, argument: "attentionMask")
            let fits = switch shape.count {
            case 2: shape == [length, keyLength]
            case 3: shape == [batchHeads, length, keyLength]
            default: (shape[0] == 1 || shape[0] == batch) && (shape[1] == 1 || shape[1] == heads)
                && shape[2] == length && shape[3] == keyLength
            }
            guard fits else {
                let expected = switch shape.count {
                case 2: "[\(length), \(keyLength)] (L, S)"
                case 3: "[\(batchHeads), \(length), \(keyLength)] (N·H, L, S)"
                default: "[\(batch) or 1, \(heads) or 1, \(length), \(keyLength)] (N, H, L, S)"
                }
                throw AttentionError.shapeMismatch(argument: "attentionMask", expected: expected, actual: shape)
            }
        }
        if let keyPaddingMask {
            let expected = batched ? [batch, keyLength] : [keyLength]
            guard keyPaddingMask.shape == expected else {
                throw AttentionError.shapeMismatch(
                    argument: "keyPaddingMask", expected: batched ? "\(expected) (N, S)" : "\(expected) (S)",
                    actual: keyPaddingMask.shape)
            }
        }
        let appended = (biasKey == nil ? 0 : 1) + (addZeroAttention ? 1 : 0)
        let (extendedLength, overflow) = keyLength.addingReportingOverflow(appended)
        if overflow { throw AttentionError.overflow(argument: "key") }
        let outputShape = batched ? query.shape : [length, e]
        // The library's rule for empty inputs (PyTorch's): no batch or no query gives an empty
        // result; no key at all gives zero attention, so the output projection's bias.
        if batch == 0 || length == 0 || extendedLength == 0 {
            let weightShape = averageAttentionWeights ? [batch, length, extendedLength] : [batch, heads, length, extendedLength]
            let zeros = try Tensor(zeros: outputShape)
            return AttentionResult(
                output: extendedLength == 0 && zeros.count > 0 ? try outProjection(zeros) : zeros,
                weights: needWeights ? try Tensor(zeros: batched ? weightShape : Array(weightShape.dropFirst())) : nil)
        }

        // Batch-major inputs (N, L, E); identity (self-attention) survives the transposes.
        let selfAttention = isSelfAttention(query: query, key: key, value: value)
        let keyIsValue = isSameTensor(key, value)
        func batchMajor(_ tensor: Tensor) throws -> Tensor {
            if !batched { return try tensor.reshaped([1] + tensor.shape) }
            return batchFirst ? tensor : try tensor.permuted([1, 0, 2])
        }
        let q = try batchMajor(query)
        let k = selfAttention ? q : try batchMajor(key)
        let v = keyIsValue ? k : try batchMajor(value)

        // In-projection: one matmul for self-attention, key and value together when they are one
        // tensor, read in place by the attention.
        var queryView: StridedHeads, keyView: StridedHeads, valueView: StridedHeads
        let bias = inProjectionBias
        let d = e / heads
        /// `width` features of each row of `tensor` starting at column `offset`, as the heads.
        func view(_ tensor: Tensor, length: Int, rowWidth: Int, offset: Int = 0) -> StridedHeads {
            StridedHeads(rows: tensor, batch: batch, length: length, rowWidth: rowWidth, offset: offset, heads: heads, dim: d)
        }
        func project(_ x: Tensor, _ weight: Tensor, rows: Range<Int>, biasOffset: Int) throws -> Tensor {
            try projectLastAxis(x, weight: weight, layout: .outputsByInputs, bias: bias, rows: rows, biasOffset: biasOffset)
        }
        if let packed = inProjectionWeight {
            if selfAttention {
                let qkv = try project(q, packed, rows: 0..<(3 * e), biasOffset: 0)
                queryView = view(qkv, length: length, rowWidth: 3 * e)
                keyView = view(qkv, length: length, rowWidth: 3 * e, offset: e)
                valueView = view(qkv, length: length, rowWidth: 3 * e, offset: 2 * e)
            } else {
                queryView = view(try project(q, packed, rows: 0..<e, biasOffset: 0), length: length, rowWidth: e)
                if keyIsValue {
                    let kv = try project(k, packed, rows: e..<(3 * e), biasOffset: e)
                    keyView = view(kv, length: keyLength, rowWidth: 2 * e)
                    valueView = view(kv, length: keyLength, rowWidth: 2 * e, offset: e)
                } else {
                    keyView = view(try project(k, packed, rows: e..<(2 * e), biasOffset: e), length: keyLength, rowWidth: e)
                    valueView = view(
                        try project(v, packed, rows: (2 * e)..<(3 * e), biasOffset: 2 * e), length: keyLength, rowWidth: e)
                }
            }
        } else {
            queryView = view(try project(q, queryProjectionWeight!, rows: 0..<e, biasOffset: 0), length: length, rowWidth: e)
            keyView = view(try project(k, keyProjectionWeight!, rows: 0..<e, biasOffset: e), length: keyLength, rowWidth: e)
            valueView = view(
                try project(v, valueProjectionWeight!, rows: 0..<e, biasOffset: 2 * e), length: keyLength, rowWidth: e)
        }

        // add_bias_kv, then add_zero_attn.
        if appended > 0 {
            keyView = try Kernels.appending(keyView, bias: biasKey, zero: addZeroAttention)
            valueView = try Kernels.appending(valueView, bias: biasValue, zero: addZeroAttention)
        }

        // Masks, padded with attending columns for the appended keys, in broadcastable form.
        let attention = try attentionMask.map { mask in
            let shape = mask.shape
            let (maskBatch, maskHeads) = switch shape.count {
            case 2: (1, 1)
            case 3: (batch, heads)
            default: (shape[0], shape[1])
            }
            return try Kernels.CanonicalMask(
                mask, batch: maskBatch, heads: maskHeads, rows: length, columns: extendedLength, padding: appended)
        }
        let keyPadding = try keyPaddingMask.map {
            try Kernels.CanonicalMask($0, batch: batch, heads: 1, rows: 1, columns: extendedLength, padding: appended)
        }

        var output: Tensor, weights: Tensor?
        if needWeights {
            let result = try Kernels.attentionWithWeights(
                query: queryView, key: keyView, value: valueView,
                attentionMask: attention, keyPadding: keyPadding, dropout: dropout)
            output = try outProjection(result.output)
            weights = averageAttentionWeights ? try Kernels.meanOverHeads(result.weights) : result.weights
        } else {
            let mask = try Kernels.kernelMask(causal: causalKernel, attention: attention, keyPadding: keyPadding)
            let attended = try Kernels.fusedAttention(
                query: queryView, key: keyView, value: valueView, mask: mask, dropout: dropout, maskedRows: maskedRows)
            output = try outProjection(attended)
            weights = nil
        }

        if !batched {
            output = try output.reshaped(outputShape)
            weights = try weights.map { try $0.reshaped(Array($0.shape.dropFirst())) }
        } else if !batchFirst {
            output = try output.permuted([1, 0, 2])
        }
        return AttentionResult(output: output, weights: weights)
    }
}

extension TorchMultiheadAttention: Layer {
    /// The output and, when `needWeights`, the weights.
    public typealias Output = AttentionResult

    /// What one call takes: PyTorch's `forward` arguments.
    ///
    /// ```swift
    /// let result = try mha(.init(query: x, key: x, value: x, needWeights: false))
    /// ```
    public struct Inputs: Sendable {
        /// `(L, E)`, `(L, N, E)` or, with ``TorchMultiheadAttention/batchFirst``, `(N, L, E)`.
        public var query: Tensor
        /// `(S, kdim)`, `(S, N, kdim)` or `(N, S, kdim)`.
        public var key: Tensor
        /// `(S, vdim)`, `(S, N, vdim)` or `(N, S, vdim)`.
        public var value: Tensor
        /// PyTorch's `key_padding_mask`, `(S)` or `(N, S)`.
        public var keyPaddingMask: TorchMask?
        /// PyTorch's `need_weights`: return the attention weights (and take the weights path).
        public var needWeights: Bool
        /// PyTorch's `attn_mask`.
        public var attentionMask: TorchMask?
        /// PyTorch's `average_attn_weights`.
        public var averageAttentionWeights: Bool
        /// PyTorch's `is_causal` hint.
        public var isCausal: Bool
        /// Apply dropout (PyTorch's `train()` mode).
        public var training: Bool
        /// The seed of the dropout.
        public var dropoutSeed: UInt64

        /// Inputs with PyTorch's defaults.
        public init(
            query: Tensor, key: Tensor, value: Tensor, keyPaddingMask: TorchMask? = nil, needWeights: Bool = true,
            attentionMask: TorchMask? = nil, averageAttentionWeights: Bool = true, isCausal: Bool = false,
            training: Bool = false, dropoutSeed: UInt64 = 0
        ) {
            (self.query, self.key, self.value) = (query, key, value)
            (self.keyPaddingMask, self.needWeights, self.attentionMask) = (keyPaddingMask, needWeights, attentionMask)
            (self.averageAttentionWeights, self.isCausal) = (averageAttentionWeights, isCausal)
            (self.training, self.dropoutSeed) = (training, dropoutSeed)
        }
    }

    /// Runs the module on `inputs`, as
    /// ``callAsFunction(query:key:value:keyPaddingMask:needWeights:attentionMask:averageAttentionWeights:isCausal:training:dropoutSeed:)``.
    public func callAsFunction(_ inputs: Inputs) throws -> AttentionResult {
        try callAsFunction(
            query: inputs.query, key: inputs.key, value: inputs.value, keyPaddingMask: inputs.keyPaddingMask,
            needWeights: inputs.needWeights, attentionMask: inputs.attentionMask,
            averageAttentionWeights: inputs.averageAttentionWeights, isCausal: inputs.isCausal,
            training: inputs.training, dropoutSeed: inputs.dropoutSeed)
    }
}
