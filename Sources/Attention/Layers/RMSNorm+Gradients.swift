extension RMSNorm: DifferentiableLayer {
    /// The normalised rows, as ``callAsFunction(_:)``, with the pullback: the gradients of the
    /// input and the weight, from each row's `1/√(mean(x²) + ε)` saved by the forward.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ input: Tensor) throws -> (output: Tensor, pullback: LayerPullback<RMSNorm>) {
        let (output, saved) = try normalize(input, savingStatistics: true)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            let gradients = try layerNormBackward(
                outputGradient, input: input, size: weight.count, weight: weight, hasBias: false,
                statistics: .rootMeanSquare, rowStatistics: saved!)
            var values = self
            values.weight = gradients.weight!
            return LayerGradients(parameters: ParameterGradients(values: values), input: gradients.input)
        })
    }
}
