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
                probability: dropout, probabilityArgument: "dropout", training: training, seed: dropoutSeed)
        ).result
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
    ///
    /// With `recording`, the pullbacks of the call come back too (see `TorchAttentionBackward`).
    func forward(
        query: Tensor, key: Tensor, value: Tensor, keyPaddingMask: TorchMask?, needWeights: Bool,
        attentionMask: TorchMask?, averageAttentionWeights: Bool, causal: CausalMasking,
        maskedRows: MaskedRowPolicy, dropout: Dropout?, recording: Bool = false
    ) throws -> (result: AttentionResult, backward: TorchAttentionBackward?) {
        try validateParameters()
        try requireFloat32Parameters()
        try requireFloat32Activations(["query": query, "key": key, "value": value])
        try attentionMask?.requireFloat32("attentionMask")
        try keyPaddingMask?.requireFloat32("keyPaddingMask")
        let shapes = try TorchShapes(self, query: query, key: key, value: value)
        try checkMasks(attentionMask: attentionMask, keyPaddingMask: keyPaddingMask, shapes)
        let (mask, causalKernel) = try resolveCausal(
            causal, attentionMask: attentionMask, keyPadding: keyPaddingMask != nil, needWeights: needWeights)
        // The library's rule for empty inputs (PyTorch's): no batch or no query gives an empty
        // result; no key at all gives zero attention, so the output projection's bias.
        if shapes.batch == 0 || shapes.length == 0 || shapes.extendedLength == 0 {
            let result = try emptyResult(shapes, needWeights: needWeights, averageAttentionWeights: averageAttentionWeights)
            return (result, recording ? TorchAttentionBackward(module: self, shapes: shapes, inputs: (query, key, value)) : nil)
        }
        let batchMajor = try shapes.batchMajor(query: query, key: key, value: value, batchFirst: batchFirst)
        let projections = try inputProjections()
        var heads: ProjectedHeads
        var projectionBackward: ProjectionPullback? = nil
        if recording {
            (heads, projectionBackward) = try core.projectWithPullback(
                query: batchMajor.query, key: batchMajor.key, value: batchMajor.value, with: projections)
        } else {
            heads = try core.project(query: batchMajor.query, key: batchMajor.key, value: batchMajor.value, with: projections)
        }
        if shapes.appended > 0 {
            // add_bias_kv, then add_zero_attn.
            heads.key = try TorchAttentionKernels.appending(heads.key, bias: biasKey, zero: addZeroAttention)
            heads.value = try TorchAttentionKernels.appending(heads.value, bias: biasValue, zero: addZeroAttention)
        }
        let kernelMask = try canonicalMask(
            attention: mask, keyPadding: keyPaddingMask, causal: causalKernel && !needWeights, shapes)
        let context = "query \(query.shape), key \(key.shape), value \(value.shape), \(self.heads) heads"
        let attended: Tensor, weights: Tensor?
        var attentionBackward: AttentionHeadsPullback? = nil
        if recording {
            (attended, weights, attentionBackward) = try core.attendWithPullback(
                heads, mask: kernelMask, dropout: dropout, maskedRows: needWeights ? .nan : maskedRows,
                returningWeights: needWeights, context: context)
        } else {
            (attended, weights) = try core.attend(
                heads, mask: kernelMask, dropout: dropout, maskedRows: needWeights ? .nan : maskedRows,
                returningWeights: needWeights, context: context)
        }
        var output = try outProjection(attended)
        var averaged = try weights.map { averageAttentionWeights ? try TorchAttentionKernels.meanOverHeads($0) : $0 }
        if !shapes.batched {
            output = try output.reshaped(shapes.outputShape)
            averaged = try averaged.map { try $0.reshaped(Array($0.shape.dropFirst())) }
        } else if !batchFirst {
            output = try output.permuted([1, 0, 2])
        }
        let backward = recording
            ? TorchAttentionBackward(
                module: self, shapes: shapes, inputs: (batchMajor.query, batchMajor.key, batchMajor.value),
                projection: projectionBackward, attention: attentionBackward, attended: attended)
            : nil
        return (AttentionResult(output: output, weights: averaged), backward)
    }

    /// The heads of this module: `heads` of `headDim`, queries, keys and values alike.
    var core: MultiHeadAttentionCore { MultiHeadAttentionCore(heads: heads, queryKeySize: headDim) }

    /// The in-projection: the packed `in_proj_weight`, or the three `q/k/v_proj_weight`s with
    /// their thirds of `in_proj_bias`.
    func inputProjections() throws -> InputProjections {
        let e = embedDim
        if let packed = inProjectionWeight {
            return .packed(try Linear(weight: packed, bias: inProjectionBias))
        }
        func third(_ index: Int) throws -> Tensor? {
            try inProjectionBias?.sliced((index * e)..<((index + 1) * e), axis: 0)
        }
        return .separate(
            query: try Linear(weight: queryProjectionWeight!, bias: third(0)),
            key: try Linear(weight: keyProjectionWeight!, bias: third(1)),
            value: try Linear(weight: valueProjectionWeight!, bias: third(2)))
    }

    /// `is_causal`: a hint that requires the mask; the causal kernel replaces the mask when
    /// neither weights nor a key padding mask need it. Combined (noxton, Equinox): in addition.
    /// Returns the mask still to apply and whether the kernel masks causally.
    private func resolveCausal(
        _ causal: CausalMasking, attentionMask: TorchMask?, keyPadding: Bool, needWeights: Bool
    ) throws -> (TorchMask?, Bool) {
        switch causal {
        case .hint(true):
            guard attentionMask != nil else {
                throw AttentionError.invalidArgument(
                    argument: "isCausal",
                    reason: "Need attn_mask if specifying the is_causal hint. You may use "
                        + "TorchMask.squareSubsequent(_:) (generate_square_subsequent_mask) to create this mask.")
            }
            return !keyPadding && !needWeights ? (nil, true) : (attentionMask, false)
        case .hint(false):
            return (attentionMask, false)
        case let .combined(isCausal):
            guard !(isCausal && needWeights) else {
                throw AttentionError.invalidArgument(
                    argument: "needWeights", reason: "causal masking combined with the mask runs on the fused path only")
            }
            return (attentionMask, isCausal)
        }
    }

    /// The masks, padded with attending columns for the appended keys, as the kernels take them.
    private func canonicalMask(
        attention: TorchMask?, keyPadding: TorchMask?, causal: Bool, _ shapes: TorchShapes
    ) throws -> KernelMask {
        typealias Canonical = TorchAttentionKernels.CanonicalMask
        let attention = try attention.map { mask in
            let shape = mask.shape
            let (maskBatch, maskHeads) = switch shape.count {
            case 2: (1, 1)
            case 3: (shapes.batch, heads)
            default: (shape[0], shape[1])
            }
            return try Canonical(
                mask, batch: maskBatch, heads: maskHeads, rows: shapes.length, columns: shapes.extendedLength,
                padding: shapes.appended)
        }
        let padding = try keyPadding.map {
            try Canonical($0, batch: shapes.batch, heads: 1, rows: 1, columns: shapes.extendedLength, padding: shapes.appended)
        }
        return try TorchAttentionKernels.kernelMask(causal: causal, attention: attention, keyPadding: padding)
    }

    /// The result for no batch, no query or no key at all.
    private func emptyResult(_ shapes: TorchShapes, needWeights: Bool, averageAttentionWeights: Bool) throws -> AttentionResult {
        let (batch, length, columns) = (shapes.batch, shapes.length, shapes.extendedLength)
        let weightShape = averageAttentionWeights ? [batch, length, columns] : [batch, heads, length, columns]
        let zeros = try Tensor(zeros: shapes.outputShape)
        return AttentionResult(
            output: columns == 0 && zeros.count > 0 ? try outProjection(zeros) : zeros,
            weights: needWeights ? try Tensor(zeros: shapes.batched ? weightShape : Array(weightShape.dropFirst())) : nil)
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
