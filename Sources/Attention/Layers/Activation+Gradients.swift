extension Activation: DifferentiableLayer {
    /// The activation of every element, as ``callAsFunction(_:)``, with the pullback
    /// `dx = f'(x) · dy` (the derivative in double from the saved input, rounded once).
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ input: Tensor) throws -> (output: Tensor, pullback: LayerPullback<Activation>) {
        let output = try self(input)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            LayerGradients(
                parameters: ParameterGradients(values: self),
                input: try activateBackward(outputGradient, input: input, kind: kernel))
        })
    }

    /// The gated activation, as ``gated(_:)``, with the pullback: the gradient of the input
    /// `(..., 2 · width)`, the gate half's then the linear half's.
    ///
    /// ```swift
    /// let (hidden, pullback) = try Activation.silu.gatedWithPullback(gateAndUp)   // SwiGLU
    /// let dGateAndUp = try pullback(dHidden).input
    /// ```
    ///
    /// - Throws: as ``gated(_:)``.
    public func gatedWithPullback(_ input: Tensor) throws -> (output: Tensor, pullback: LayerPullback<Activation>) {
        let output = try gated(input)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            LayerGradients(
                parameters: ParameterGradients(values: self),
                input: try activateGatedBackward(outputGradient, input: input, kind: kernel))
        })
    }
}
