extension LayerNorm: DifferentiableLayer {
    /// The normalised rows, as ``callAsFunction(_:)``, with the pullback: the gradients of the
    /// input, the weight and the bias (each when present), from the rows' mean and
    /// `1/√(variance + ε)` saved by the forward (llm.c's `layernorm_backward`, sums in double).
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ input: Tensor) throws -> (output: Tensor, pullback: LayerPullback<LayerNorm>) {
        let (output, saved) = try normalize(input, savingStatistics: true)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            let gradients = try layerNormBackward(
                outputGradient, input: input, size: size, weight: weight, hasBias: bias != nil,
                statistics: statistics, rowStatistics: saved!)
            var values = self
            (values.weight, values.bias) = (gradients.weight, gradients.bias)
            return LayerGradients(parameters: ParameterGradients(values: values), input: gradients.input)
        })
    }
}
