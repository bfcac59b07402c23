extension TransformerEncoderLayer: DifferentiableLayer {
    /// The layer without masks, as ``callAsFunction(_:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ source: Tensor) throws -> (output: Tensor, pullback: LayerPullback<TransformerEncoderLayer>) {
        try callWithPullback(source, mask: nil)
    }

    /// The layer, as ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)``,
    /// with its pullback: the gradients of every parameter (`self_attn.*`, `linear1.*`,
    /// `linear2.*`, `norm1.*`, `norm2.*`) and of the source, for the gradient of the output.
    /// Dropout (in training) is differentiated through the forward's keep decisions.
    ///
    /// ```swift
    /// let (y, pullback) = try layer.callWithPullback(x, keyPaddingMask: padding)
    /// let gradients = try pullback(dy)
    /// gradients.parameters["self_attn.in_proj_weight"]   // (3E, E)
    /// gradients.input                                    // shaped as x
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)``.
    public func callWithPullback(
        _ source: Tensor, mask: TorchMask? = nil, keyPaddingMask: TorchMask? = nil, isCausal: Bool = false,
        training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> (output: Tensor, pullback: LayerPullback<TransformerEncoderLayer>) {
        try checkInputs(source, mask: mask, keyPaddingMask: keyPaddingMask)
        let call = TransformerLayerCall(training: training, dropoutSeed: dropoutSeed)
        let (x, back1) = try residualWithPullback(source, norm: norm1, normPath: \.norm1) { x in
            try selfAttention.attentionBlockWithPullback(
                x, mask: mask, keyPaddingMask: keyPaddingMask,
                causal: convention == .torch ? .hint(isCausal) : .combined(isCausal),
                maskedRows: convention == .torch ? .zero : .meanOfValues, call: call,
                sites: (.selfAttentionWeights, .selfAttentionOutput), outputDropout: dropout,
                names: ["attentionMask": "mask"], path: \TransformerEncoderLayer.selfAttention)
        }
        let (y, back2) = try residualWithPullback(x, norm: norm2, normPath: \.norm2) { x in
            try feedForwardBlockWithPullback(x, call, linear1Path: \.linear1, linear2Path: \.linear2)
        }
        return (y, LayerPullback(self, outputShape: y.shape) { dy in
            var gradients = try BlockGradients(zerosFor: self)
            let dx = try back1(try back2(dy, &gradients), &gradients)
            return LayerGradients(parameters: gradients.parameters, input: dx)
        })
    }
}

extension TransformerEncoder: DifferentiableLayer {
    /// The encoder without masks, as ``callAsFunction(_:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ source: Tensor) throws -> (output: Tensor, pullback: LayerPullback<TransformerEncoder>) {
        try callWithPullback(source, mask: nil)
    }

    /// The encoder, as ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)``,
    /// with its pullback: the layers' pullbacks composed in reverse, then the final norm's;
    /// gradients named `layers.i.…` and `norm.…`.
    ///
    /// - Throws: as ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)``.
    public func callWithPullback(
        _ source: Tensor, mask: TorchMask? = nil, keyPaddingMask: TorchMask? = nil, isCausal: Bool? = nil,
        training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> (output: Tensor, pullback: LayerPullback<TransformerEncoder>) {
        try validateTransformerStack(layers, norm: norm)
        let causal = TorchMask.resolvedIsCausal(isCausal, mask: mask, input: source, batchFirst: layers[0].batchFirst)
        var x = source
        var pullbacks: [LayerPullback<TransformerEncoderLayer>] = []
        for (index, layer) in layers.enumerated() {
            let (y, pullback) = try layer.callWithPullback(
                x, mask: mask, keyPaddingMask: keyPaddingMask, isCausal: causal, training: training,
                dropoutSeed: derivedSeed(dropoutSeed, stream: UInt64(index)))
            (x, pullbacks) = (y, pullbacks + [pullback])
        }
        let normed = try norm.map { try $0.callWithPullback(x) }
        let output = normed?.output ?? x
        let layerPullbacks = pullbacks
        return (output, LayerPullback(self, outputShape: output.shape) { dy in
            var parameters = try ParameterGradients(zerosFor: self)
            var gradient = dy
            if let normPullback = normed?.pullback {
                let g = try normPullback(dy)
                parameters.assign(g.parameters, to: \.norm!)
                gradient = g.input
            }
            for (index, pullback) in layerPullbacks.enumerated().reversed() {
                let g = try pullback(gradient)
                parameters.assign(g.parameters, to: \.layers[index])
                gradient = g.input
            }
            return LayerGradients(parameters: parameters, input: gradient)
        })
    }
}
