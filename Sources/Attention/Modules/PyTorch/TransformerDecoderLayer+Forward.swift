// The forward pass of TransformerDecoderLayer: the target's and the memory's shapes checked
// against each other, then PyTorch's three blocks with the encoder layer's shared pieces.

extension TransformerDecoderLayer {
    /// Runs the layer on `target` with the encoder's output `memory`; the result has the target's
    /// shape.
    ///
    /// | argument               | unbatched | batched                                   |
    /// |------------------------|-----------|-------------------------------------------|
    /// | `target`               | (L, E)    | (L, N, E), or (N, L, E) with ``batchFirst`` |
    /// | `memory`               | (S, E)    | (S, N, E), or (N, S, E)                   |
    /// | `targetMask`           | (L, L)    | (L, L) or (N·H, L, L); also (N or 1, H or 1, L, L) |
    /// | `memoryMask`           | (L, S)    | (L, S) or (N·H, L, S); also (N or 1, H or 1, L, S) |
    /// | `targetKeyPaddingMask` | (L)       | (N, L)                                    |
    /// | `memoryKeyPaddingMask` | (S)       | (N, S)                                    |
    ///
    /// ```swift
    /// let causal = try TorchMask.squareSubsequent(10)
    /// let y = try layer(target, memory: memory, targetMask: causal, targetIsCausal: true)   // eval
    /// let trained = try layer(target, memory: memory, targetMask: causal, training: true, dropoutSeed: 42)
    /// ```
    ///
    /// - Parameters:
    ///   - target: `tgt`, the decoder's input sequence.
    ///   - memory: `memory`, the encoder's output (the cross-attention's keys and values).
    ///   - targetMask: `tgt_mask`, in any ``TorchMask`` form (boolean `true` = not allowed, or added).
    ///   - memoryMask: `memory_mask`.
    ///   - targetKeyPaddingMask: `tgt_key_padding_mask` (boolean `true` = padding, or added).
    ///   - memoryKeyPaddingMask: `memory_key_padding_mask`.
    ///   - targetIsCausal: PyTorch's hint that `targetMask` is causal: it requires the mask, and
    ///     without a key padding mask the causal kernel replaces it.
    ///   - memoryIsCausal: the same hint for `memoryMask` (causal from the top left, `tril(ones(L, S))`).
    ///   - training: `true` applies dropout (PyTorch's `train()` mode); `false` (default) is eval.
    ///   - dropoutSeed: the seed of all the layer's dropout (each site draws from its own stream).
    /// - Throws: `AttentionError.shapeMismatch` (`"target"`, `"memory"`, `"targetMask"`,
    ///   `"memoryMask"`, `"targetKeyPaddingMask"`, `"memoryKeyPaddingMask"`) for a width other than
    ///   E, ranks or batch sizes that differ, or masks that do not fit; `.invalidArgument`
    ///   (`"targetIsCausal"`, `"memoryIsCausal"`) for a causal hint without its mask, (`"dropout"`)
    ///   for a probability outside `[0, 1)`, (`"crossAttention"`) for a cross-attention replaced by
    ///   one of another width or batch layout; `.unsupportedDType` for a half-precision input or mask;
    ///   the parameters' and kernels' errors.
    public func callAsFunction(
        _ target: Tensor, memory: Tensor, targetMask: TorchMask? = nil, memoryMask: TorchMask? = nil,
        targetKeyPaddingMask: TorchMask? = nil, memoryKeyPaddingMask: TorchMask? = nil,
        targetIsCausal: Bool = false, memoryIsCausal: Bool = false, training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> Tensor {
        try checkInputs(
            target: target, memory: memory,
            masks: [targetMask, memoryMask, targetKeyPaddingMask, memoryKeyPaddingMask])
        let call = TransformerLayerCall(training: training, dropoutSeed: dropoutSeed)
        func selfAttentionBlock(_ x: Tensor) throws -> Tensor {
            try selfAttention.transformerBlock(
                query: x, memory: x, mask: targetMask, keyPaddingMask: targetKeyPaddingMask,
                causal: .hint(targetIsCausal), maskedRows: .zero, call: call,
                sites: (.selfAttentionWeights, .selfAttentionOutput), outputDropout: dropout,
                names: Self.selfAttentionNames)
        }
        func crossAttentionBlock(_ x: Tensor) throws -> Tensor {
            try crossAttention.transformerBlock(
                query: x, memory: memory, mask: memoryMask, keyPaddingMask: memoryKeyPaddingMask,
                causal: .hint(memoryIsCausal), maskedRows: .zero, call: call,
                sites: (.crossAttentionWeights, .crossAttentionOutput), outputDropout: dropout,
                names: Self.crossAttentionNames)
        }
        var x = try residual(target, norm: norm1, selfAttentionBlock)
        x = try residual(x, norm: norm2, crossAttentionBlock)
        return try residual(x, norm: norm3) { try feedForwardBlock($0, call) }
    }

    /// The layer's names for its self-attention's arguments, in errors.
    static let selfAttentionNames = [
        "attentionMask": "targetMask", "keyPaddingMask": "targetKeyPaddingMask", "isCausal": "targetIsCausal",
        "query": "target", "key": "target", "value": "target",
    ]

    /// The layer's names for its cross-attention's arguments, in errors.
    static let crossAttentionNames = [
        "attentionMask": "memoryMask", "keyPaddingMask": "memoryKeyPaddingMask", "isCausal": "memoryIsCausal",
        "query": "target", "key": "memory", "value": "memory",
    ]

    /// The checks of a call: dtypes of the parameters, inputs and masks (`targetMask`,
    /// `memoryMask`, `targetKeyPaddingMask`, `memoryKeyPaddingMask`, in that order), and shapes.
    func checkInputs(target: Tensor, memory: Tensor, masks: [TorchMask?]) throws {
        try requireFloat32Parameters()
        try requireFloat32Activations(["target": target, "memory": memory])
        for (name, mask) in zip(["targetMask", "memoryMask", "targetKeyPaddingMask", "memoryKeyPaddingMask"], masks) {
            try mask?.requireFloat32(name)
        }
        try checkShapes(target: target, memory: memory)
    }

    /// The target's and the memory's shapes: the same rank (2 or 3), width E, and one batch size;
    /// and a cross-attention (a public property) that still fits the self-attention.
    ///
    /// - Throws: `AttentionError.shapeMismatch` naming `"target"` or `"memory"`;
    ///   `.invalidArgument` (`"crossAttention"`).
    func checkShapes(target: Tensor, memory: Tensor) throws(AttentionError) {
        let e = dModel
        let cross = crossAttention
        guard cross.embedDim == e, cross.keyDim == e, cross.valueDim == e, cross.batchFirst == batchFirst else {
            throw .invalidArgument(
                argument: "crossAttention",
                reason: "must have embedDim, keyDim and valueDim \(e) and batchFirst \(batchFirst) as the self-attention, "
                    + "got \(cross.embedDim), \(cross.keyDim), \(cross.valueDim) and \(cross.batchFirst)")
        }
        let batched = batchFirst ? "(N, L, \(e))" : "(L, N, \(e))"
        guard target.rank == 2 || target.rank == 3, target.shape[target.rank - 1] == e else {
            throw .shapeMismatch(argument: "target", expected: "(L, \(e)) or \(batched) with d_model \(e)", actual: target.shape)
        }
        guard memory.rank == target.rank, memory.shape[memory.rank - 1] == e else {
            let expected = target.rank == 2 ? "(S, \(e)) for the unbatched target \(target.shape)"
                : "\(batchFirst ? "(N, S, \(e))" : "(S, N, \(e))") for the batched target \(target.shape)"
            throw .shapeMismatch(argument: "memory", expected: expected, actual: memory.shape)
        }
        if target.rank == 3 {
            let axis = batchFirst ? 0 : 1
            guard memory.shape[axis] == target.shape[axis] else {
                throw .shapeMismatch(
                    argument: "memory",
                    expected: "batch size \(target.shape[axis]) (axis \(axis)), the target \(target.shape)'s",
                    actual: memory.shape)
            }
        }
    }
}

extension TransformerDecoderLayer: Layer {
    /// What the protocol call takes: the target and the memory.
    public typealias Input = Inputs

    /// A target and the memory it attends to, for the call without masks.
    ///
    /// ```swift
    /// let y = try layer(.init(target: target, memory: memory))
    /// ```
    public struct Inputs: Sendable {
        /// `(L, E)`, `(L, N, E)` or, with `batchFirst`, `(N, L, E)`.
        public var target: Tensor
        /// `(S, E)`, `(S, N, E)` or `(N, S, E)`: the encoder's output.
        public var memory: Tensor

        /// The target and the memory.
        public init(target: Tensor, memory: Tensor) {
            (self.target, self.memory) = (target, memory)
        }
    }

    /// The layer without masks, in evaluation mode: as `callAsFunction(inputs.target, memory: inputs.memory)`.
    ///
    /// - Throws: as ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``.
    public func callAsFunction(_ inputs: Inputs) throws -> Tensor {
        try callAsFunction(inputs.target, memory: inputs.memory)
    }
}
