extension RotaryPositionalEmbedding: DifferentiableLayer {
    /// The embedding at positions `0 ..< L`, as ``callAsFunction(_:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:positionOffset:)``.
    public func callWithPullback(_ x: Tensor) throws -> (output: Tensor, pullback: LayerPullback<RotaryPositionalEmbedding>) {
        try callWithPullback(x, positionOffset: 0)
    }

    /// The embedding, as ``callAsFunction(_:positionOffset:)``, with its pullback: the rotation is
    /// orthogonal, so the input's gradient is the output's rotated back, by minus the angles of
    /// the same positions. There are no parameters.
    ///
    /// ```swift
    /// let (y, pullback) = try rope.callWithPullback(x, positionOffset: 4)
    /// let dx = try pullback(dy).input                  // shaped as x
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:positionOffset:)``.
    public func callWithPullback(
        _ x: Tensor, positionOffset: Int
    ) throws -> (output: Tensor, pullback: LayerPullback<RotaryPositionalEmbedding>) {
        let output = try self(x, positionOffset: positionOffset)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            var gradient = outputGradient
            try rotate(&gradient, positionOffset: positionOffset, inverse: true)
            return LayerGradients(parameters: ParameterGradients(values: self), input: gradient)
        })
    }
}
