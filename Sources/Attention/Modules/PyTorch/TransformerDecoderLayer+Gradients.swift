// The pullbacks of PyTorch's decoder: TransformerDecoderLayer (self-attention, cross-attention
// and feed-forward blocks, each with its residual and norm) and TransformerDecoder (the layers in
// reverse, every layer's memory gradient summed).

extension TransformerDecoderLayer: DifferentiableLayer {
    /// The gradients of a decoder layer's (or decoder's) inputs, shaped as them.
    public struct InputGradients: Sendable, Equatable {
        /// The gradient of the target.
        public var target: Tensor
        /// The gradient of the memory: through the cross-attention's keys and values (of every
        /// layer, for a decoder).
        public var memory: Tensor

        /// Gradients from their parts.
        public init(target: Tensor, memory: Tensor) {
            (self.target, self.memory) = (target, memory)
        }
    }

    /// The gradients of the target and of the memory.
    public typealias InputGradient = InputGradients

    /// The layer without masks, as ``callAsFunction(_:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ inputs: Inputs) throws -> (output: Tensor, pullback: LayerPullback<TransformerDecoderLayer>) {
        try callWithPullback(inputs.target, memory: inputs.memory)
    }

    /// The layer, as ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``,
    /// with its pullback: the gradients of every parameter (`self_attn.*`, `multihead_attn.*`,
    /// `linear1.*`, `linear2.*`, `norm1.*` … `norm3.*`), of the target and of the memory, for
    /// the gradient of the output. Dropout (in training) is differentiated through the
    /// forward's keep decisions.
    ///
    /// ```swift
    /// let (y, pullback) = try layer.callWithPullback(target, memory: memory, targetMask: causal)
    /// let gradients = try pullback(dy)
    /// gradients.parameters["multihead_attn.in_proj_weight"]   // (3E, E)
    /// gradients.input.memory                                  // shaped as memory
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``.
    public func callWithPullback(
        _ target: Tensor, memory: Tensor, targetMask: TorchMask? = nil, memoryMask: TorchMask? = nil,
        targetKeyPaddingMask: TorchMask? = nil, memoryKeyPaddingMask: TorchMask? = nil,
        targetIsCausal: Bool = false, memoryIsCausal: Bool = false, training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> (output: Tensor, pullback: LayerPullback<TransformerDecoderLayer>) {
        try checkInputs(
            target: target, memory: memory,
            masks: [targetMask, memoryMask, targetKeyPaddingMask, memoryKeyPaddingMask])
        let call = TransformerLayerCall(training: training, dropoutSeed: dropoutSeed)
        let (x, back1) = try residualWithPullback(target, norm: norm1, normPath: \.norm1) { x in
            try selfAttention.attentionBlockWithPullback(
                x, mask: targetMask, keyPaddingMask: targetKeyPaddingMask, causal: .hint(targetIsCausal),
                maskedRows: .zero, call: call, sites: (.selfAttentionWeights, .selfAttentionOutput), outputDropout: dropout,
                names: Self.selfAttentionNames, path: \TransformerDecoderLayer.selfAttention)
        }
        let (z, back2) = try residualWithPullback(x, norm: norm2, normPath: \.norm2) { x in
            try crossAttention.attentionBlockWithPullback(
                x, memory: memory, mask: memoryMask, keyPaddingMask: memoryKeyPaddingMask, causal: .hint(memoryIsCausal),
                maskedRows: .zero, call: call, sites: (.crossAttentionWeights, .crossAttentionOutput), outputDropout: dropout,
                names: Self.crossAttentionNames, path: \TransformerDecoderLayer.crossAttention)
        }
        let (y, back3) = try residualWithPullback(z, norm: norm3, normPath: \.norm3) { x in
            try feedForwardBlockWithPullback(x, call, linear1Path: \.linear1, linear2Path: \.linear2)
        }
        let memoryShape = memory.shape
        return (y, LayerPullback(self, outputShape: y.shape) { dy in
            var gradients = try BlockGradients(zerosFor: self)
            let dTarget = try back1(try back2(try back3(dy, &gradients), &gradients), &gradients)
            let dMemory = try gradients.memory ?? Tensor(zeros: memoryShape)
            return LayerGradients(parameters: gradients.parameters, input: InputGradients(target: dTarget, memory: dMemory))
        })
    }
}

extension TransformerDecoder: DifferentiableLayer {
    /// The gradients of the target and of the memory (summed over the layers).
    public typealias InputGradient = TransformerDecoderLayer.InputGradients

    /// The decoder without masks, as ``callAsFunction(_:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(
        _ inputs: TransformerDecoderLayer.Inputs
    ) throws -> (output: Tensor, pullback: LayerPullback<TransformerDecoder>) {
        try callWithPullback(inputs.target, memory: inputs.memory)
    }

    /// The decoder, as ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``,
    /// with its pullback: the final norm's, then the layers' pullbacks in reverse; gradients
    /// named `layers.i.…` and `norm.…`; the memory's gradient is the sum of every layer's.
    ///
    /// - Throws: as ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``.
    public func callWithPullback(
        _ target: Tensor, memory: Tensor, targetMask: TorchMask? = nil, memoryMask: TorchMask? = nil,
        targetKeyPaddingMask: TorchMask? = nil, memoryKeyPaddingMask: TorchMask? = nil,
        targetIsCausal: Bool? = nil, memoryIsCausal: Bool = false, training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> (output: Tensor, pullback: LayerPullback<TransformerDecoder>) {
        try validateTransformerStack(layers, norm: norm)
        try requireFloat32Parameters()
        let causal = TorchMask.resolvedIsCausal(
            targetIsCausal, mask: targetMask, input: target, batchFirst: layers[0].batchFirst)
        var x = target
        var pullbacks: [LayerPullback<TransformerDecoderLayer>] = []
        for (index, layer) in layers.enumerated() {
            let (y, pullback) = try layer.callWithPullback(
                x, memory: memory, targetMask: targetMask, memoryMask: memoryMask,
                targetKeyPaddingMask: targetKeyPaddingMask, memoryKeyPaddingMask: memoryKeyPaddingMask,
                targetIsCausal: causal, memoryIsCausal: memoryIsCausal, training: training,
                dropoutSeed: derivedSeed(dropoutSeed, stream: UInt64(index)))
            (x, pullbacks) = (y, pullbacks + [pullback])
        }
        let normed = try norm.map { try $0.callWithPullback(x) }
        let output = normed?.output ?? x
        let (layerPullbacks, memoryShape) = (pullbacks, memory.shape)
        return (output, LayerPullback(self, outputShape: output.shape) { dy in
            var parameters = try ParameterGradients(zerosFor: self)
            var gradient = dy
            if let normPullback = normed?.pullback {
                let g = try normPullback(dy)
                parameters.assign(g.parameters, to: \.norm!)
                gradient = g.input
            }
            var memoryGradient = try Tensor(zeros: memoryShape)
            for (index, pullback) in layerPullbacks.enumerated().reversed() {
                let g = try pullback(gradient)
                parameters.assign(g.parameters, to: \.layers[index])
                (gradient, memoryGradient) = (g.input.target, try memoryGradient + g.input.memory)
            }
            return LayerGradients(parameters: parameters, input: .init(target: gradient, memory: memoryGradient))
        })
    }
}
