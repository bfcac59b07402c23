extension Dropout: DifferentiableLayer {
    /// Dropout in training mode, as ``callAsFunction(_:)``, with the pullback: the output
    /// gradient through the same keep decisions (those of ``seed`` and ``offset``), scaled by
    /// `1/(1 - probability)` where kept and 0 elsewhere, as PyTorch's.
    ///
    /// - Throws: as ``callAsFunction(_:inference:)``.
    public func callWithPullback(_ input: Tensor) throws -> (output: Tensor, pullback: LayerPullback<Dropout>) {
        let output = try self(input)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            LayerGradients(parameters: ParameterGradients(values: self), input: try self(outputGradient))
        })
    }
}
