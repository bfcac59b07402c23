// The pullback of PyTorch's Transformer: the decoder's, whose memory gradient is the encoder's
// output gradient, then the encoder's.

extension Transformer: DifferentiableLayer {
    /// The gradients of a transformer's inputs, shaped as them.
    public struct InputGradients: Sendable, Equatable {
        /// The gradient of the source (through the encoder, from the decoder's memory).
        public var source: Tensor
        /// The gradient of the target.
        public var target: Tensor

        /// Gradients from their parts.
        public init(source: Tensor, target: Tensor) {
            (self.source, self.target) = (source, target)
        }
    }

    /// The gradients of the source and of the target.
    public typealias InputGradient = InputGradients

    /// The model without masks, as ``callAsFunction(_:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ inputs: Inputs) throws -> (output: Tensor, pullback: LayerPullback<Transformer>) {
        try callWithPullback(inputs.source, target: inputs.target)
    }

    /// The model, as ``callAsFunction(_:target:sourceMask:targetMask:memoryMask:sourceKeyPaddingMask:targetKeyPaddingMask:memoryKeyPaddingMask:sourceIsCausal:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``,
    /// with its pullback: the gradients of every parameter (`encoder.…`, `decoder.…`), of the
    /// source and of the target, for the gradient of the output.
    ///
    /// ```swift
    /// let (y, pullback) = try model.callWithPullback(source, target: target, targetMask: causal)
    /// let gradients = try pullback(dy)
    /// gradients.parameters["encoder.layers.0.self_attn.in_proj_weight"]   // (3E, E)
    /// gradients.input.source                                             // shaped as source
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:target:sourceMask:targetMask:memoryMask:sourceKeyPaddingMask:targetKeyPaddingMask:memoryKeyPaddingMask:sourceIsCausal:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``.
    public func callWithPullback(
        _ source: Tensor, target: Tensor, sourceMask: TorchMask? = nil, targetMask: TorchMask? = nil,
        memoryMask: TorchMask? = nil, sourceKeyPaddingMask: TorchMask? = nil, targetKeyPaddingMask: TorchMask? = nil,
        memoryKeyPaddingMask: TorchMask? = nil, sourceIsCausal: Bool? = nil, targetIsCausal: Bool? = nil,
        memoryIsCausal: Bool = false, training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> (output: Tensor, pullback: LayerPullback<Transformer>) {
        try checkInputs(source: source, target: target)
        let memory: Tensor, encoderBack: LayerPullback<TransformerEncoder>
        do {
            (memory, encoderBack) = try encoder.callWithPullback(
                source, mask: sourceMask, keyPaddingMask: sourceKeyPaddingMask, isCausal: sourceIsCausal,
                training: training, dropoutSeed: derivedSeed(dropoutSeed, stream: 0))
        } catch let error as AttentionError {
            throw error.renamingArgument { Self.encoderNames[$0] ?? $0 }
        }
        let (output, decoderBack) = try decoder.callWithPullback(
            target, memory: memory, targetMask: targetMask, memoryMask: memoryMask,
            targetKeyPaddingMask: targetKeyPaddingMask, memoryKeyPaddingMask: memoryKeyPaddingMask,
            targetIsCausal: targetIsCausal, memoryIsCausal: memoryIsCausal, training: training,
            dropoutSeed: derivedSeed(dropoutSeed, stream: 1))
        return (output, LayerPullback(self, outputShape: output.shape) { dy in
            let decoded = try decoderBack(dy)
            let encoded = try encoderBack(decoded.input.memory)
            var parameters = try ParameterGradients(zerosFor: self)
            parameters.assign(encoded.parameters, to: \.encoder)
            parameters.assign(decoded.parameters, to: \.decoder)
            return LayerGradients(parameters: parameters, input: InputGradients(source: encoded.input, target: decoded.input.target))
        })
    }
}
