// The forward pass of Transformer: PyTorch's checks of the source against the target, the
// encoder, then the decoder over its output.

extension Transformer {
    /// Runs the model: the encoder on `source` gives the memory, and the decoder runs on `target`
    /// with it; the result has the target's shape.
    ///
    /// | argument               | unbatched | batched                                   |
    /// |------------------------|-----------|-------------------------------------------|
    /// | `source`               | (S, E)    | (S, N, E), or (N, S, E) with ``batchFirst`` |
    /// | `target`               | (L, E)    | (L, N, E), or (N, L, E)                   |
    /// | `sourceMask`           | (S, S)    | (S, S) or (N·H, S, S)                     |
    /// | `targetMask`           | (L, L)    | (L, L) or (N·H, L, L)                     |
    /// | `memoryMask`           | (L, S)    | (L, S) or (N·H, L, S)                     |
    /// | `sourceKeyPaddingMask` | (S)       | (N, S)                                    |
    /// | `targetKeyPaddingMask` | (L)       | (N, L)                                    |
    /// | `memoryKeyPaddingMask` | (S)       | (N, S)                                    |
    ///
    /// ```swift
    /// let padding = try TorchMask.disallowed(BooleanMask(shape: [2, 12]) { $0[0] == 1 && $0[1] >= 9 })
    /// let y = try model(source, target: target, targetMask: TorchMask.squareSubsequent(7),
    ///                   sourceKeyPaddingMask: padding, memoryKeyPaddingMask: padding)
    /// ```
    ///
    /// - Parameters:
    ///   - source: `src`, the encoder's input.
    ///   - target: `tgt`, the decoder's input.
    ///   - sourceMask: `src_mask`, the encoder's self-attention mask.
    ///   - targetMask: `tgt_mask`, the decoder's self-attention mask.
    ///   - memoryMask: `memory_mask`, the decoder's cross-attention mask.
    ///   - sourceKeyPaddingMask: `src_key_padding_mask`, the padding of the source.
    ///   - targetKeyPaddingMask: `tgt_key_padding_mask`, the padding of the target.
    ///   - memoryKeyPaddingMask: `memory_key_padding_mask`, the padding of the memory (usually the
    ///     source's).
    ///   - sourceIsCausal: the encoder's hint; `nil` (the default, as PyTorch) detects whether
    ///     `sourceMask` is the causal mask.
    ///   - targetIsCausal: the decoder's hint; `nil` (the default) detects it from `targetMask`.
    ///   - memoryIsCausal: the cross-attention's hint, which needs `memoryMask`; `false` by default.
    ///   - training: dropout in every layer (PyTorch's `train()` mode); `false` (default) is eval.
    ///   - dropoutSeed: the encoder and the decoder each use a seed derived from this one.
    /// - Throws: `AttentionError.shapeMismatch` (`"source"`, `"target"`) for ranks other than 2 or
    ///   3, a target rank other than the source's, a batch size of the target other than the
    ///   source's, or a width other than E (PyTorch's "the batch number of src and tgt must be
    ///   equal", "the feature number of src and tgt must be equal to d_model"); the encoder's errors
    ///   under the names of this call (`"sourceMask"`, `"sourceKeyPaddingMask"`, `"sourceIsCausal"`);
    ///   the decoder's errors; `.unsupportedDType` for a half-precision input or a half-precision
    ///   parameter other than a matrix weight (under its full name, `"decoder.layers.0.norm3.bias"`).
    public func callAsFunction(
        _ source: Tensor, target: Tensor, sourceMask: TorchMask? = nil, targetMask: TorchMask? = nil,
        memoryMask: TorchMask? = nil, sourceKeyPaddingMask: TorchMask? = nil, targetKeyPaddingMask: TorchMask? = nil,
        memoryKeyPaddingMask: TorchMask? = nil, sourceIsCausal: Bool? = nil, targetIsCausal: Bool? = nil,
        memoryIsCausal: Bool = false, training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> Tensor {
        try checkInputs(source: source, target: target)
        let memory: Tensor
        do {
            memory = try encoder(
                source, mask: sourceMask, keyPaddingMask: sourceKeyPaddingMask, isCausal: sourceIsCausal,
                training: training, dropoutSeed: derivedSeed(dropoutSeed, stream: 0))
        } catch let error as AttentionError {
            throw error.renamingArgument { Self.encoderNames[$0] ?? $0 }
        }
        return try decoder(
            target, memory: memory, targetMask: targetMask, memoryMask: memoryMask,
            targetKeyPaddingMask: targetKeyPaddingMask, memoryKeyPaddingMask: memoryKeyPaddingMask,
            targetIsCausal: targetIsCausal, memoryIsCausal: memoryIsCausal, training: training,
            dropoutSeed: derivedSeed(dropoutSeed, stream: 1))
    }

    /// This call's names for the encoder's arguments, in errors.
    static let encoderNames = ["mask": "sourceMask", "keyPaddingMask": "sourceKeyPaddingMask", "isCausal": "sourceIsCausal"]

    /// The checks of a call: the modules, the dtypes and the shapes.
    func checkInputs(source: Tensor, target: Tensor) throws {
        try validate()
        try requireFloat32Parameters()
        try requireFloat32Activations(["source": source, "target": target])
        try checkShapes(source: source, target: target)
    }

    /// PyTorch's checks in `Transformer.forward`, with the ranks made explicit.
    ///
    /// - Throws: `AttentionError.shapeMismatch` naming `"source"` or `"target"`.
    private func checkShapes(source: Tensor, target: Tensor) throws(AttentionError) {
        let e = dModel
        let layout = batchFirst ? "(N, S, \(e))" : "(S, N, \(e))"
        guard source.rank == 2 || source.rank == 3, source.shape[source.rank - 1] == e else {
            throw .shapeMismatch(
                argument: "source", expected: "(S, \(e)) or \(layout): the feature number must be d_model \(e)",
                actual: source.shape)
        }
        guard target.rank == source.rank, target.shape[target.rank - 1] == e else {
            throw .shapeMismatch(
                argument: "target",
                expected: "\(source.rank)-D as the source \(source.shape), with the feature number d_model \(e)",
                actual: target.shape)
        }
        if source.rank == 3 {
            let axis = batchFirst ? 0 : 1
            guard target.shape[axis] == source.shape[axis] else {
                throw .shapeMismatch(
                    argument: "target",
                    expected: "batch size \(source.shape[axis]) (axis \(axis)): the batch number of src and tgt must be equal",
                    actual: target.shape)
            }
        }
    }
}

extension Transformer: Layer {
    /// What the protocol call takes: the source and the target.
    public typealias Input = Inputs

    /// A source sequence and a target sequence, for the call without masks.
    ///
    /// ```swift
    /// let y = try model(.init(source: source, target: target))
    /// ```
    public struct Inputs: Sendable {
        /// `(S, E)`, `(S, N, E)` or, with `batchFirst`, `(N, S, E)`: the encoder's input.
        public var source: Tensor
        /// `(L, E)`, `(L, N, E)` or `(N, L, E)`: the decoder's input.
        public var target: Tensor

        /// The source and the target.
        public init(source: Tensor, target: Tensor) {
            (self.source, self.target) = (source, target)
        }
    }

    /// The model without masks, in evaluation mode (the causal hints detected, so `false`): as
    /// `callAsFunction(inputs.source, target: inputs.target)`.
    ///
    /// - Throws: as ``callAsFunction(_:target:sourceMask:targetMask:memoryMask:sourceKeyPaddingMask:targetKeyPaddingMask:memoryKeyPaddingMask:sourceIsCausal:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``.
    public func callAsFunction(_ inputs: Inputs) throws -> Tensor {
        try callAsFunction(inputs.source, target: inputs.target)
    }
}
