extension Embedding: DifferentiableLayer {
    /// Indices have no gradient: the pullback's input gradient is empty.
    public typealias InputGradient = Void

    /// The rows of the tokens, as ``callAsFunction(_:)``, with the pullback: the weight's
    /// gradient, each token's output gradient added to its row in input order (the rows of
    /// ``paddingIndex`` stay 0), as `torch.nn.Embedding`'s dense gradient.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ input: IndexArray) throws -> (output: Tensor, pullback: LayerPullback<Embedding>) {
        let output = try self(input)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            let d = dimension
            var table = try Tensor(zeros: weight.shape)
            outputGradient.withUnsafeBufferPointer { dy in
                table.withUnsafeMutableBufferPointer { rows in
                    for (position, token) in input.indices.enumerated() where token != paddingIndex {
                        for column in 0..<d { rows[token * d + column] += dy[position * d + column] }
                    }
                }
            }
            var values = self
            values.weight = table
            return LayerGradients(parameters: ParameterGradients(values: values), input: ())
        })
    }
}
