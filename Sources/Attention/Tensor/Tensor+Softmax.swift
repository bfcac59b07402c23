extension Tensor {
    /// The softmax along one axis: `exp(x - max) / Σ exp(x - max)` over each line of elements
    /// along `axis`, computed by the library's row-softmax kernel.
    ///
    /// Along the last axis the kernel runs on a copy in place; along another axis that axis is
    /// moved last in a transposed copy and back.
    ///
    /// What a line gives:
    /// - finite values, some of them `-infinity`: the `-infinity` entries get weight 0;
    /// - every entry `-infinity` (a fully masked row): what `maskedRows` says: NaN by default, as
    ///   a plain softmax (NumPy, `torch.softmax`, `jax.nn.softmax`) gives; zeros or the uniform
    ///   `1/n` (the weights of ``MaskedRowPolicy/meanOfValues``) when asked;
    /// - any NaN or `+infinity`: NaN for the whole line.
    ///
    /// ```swift
    /// // Attention weights of a custom attention function, masked rows as PyTorch's SDPA gives them.
    /// let scores = try matmul(q, k, transposingB: true).scaled(by: 1 / Float(depth).squareRoot())
    /// let weights = try scores.adding(maskBias).softmax(maskedRows: .zero)
    /// let out = try matmul(weights, v)
    /// ```
    ///
    /// - Parameters:
    ///   - axis: the axis to normalise, negative values counting from the end; the last by default.
    ///   - maskedRows: the result of a line whose every entry is `-infinity`.
    /// - Throws: `AttentionError.unsupportedDType` (`"self"`) unless the tensor is `float32`;
    ///   `.invalidArgument` (argument `"axis"`) for an axis outside
    ///   `-rank..<rank` (a scalar has none); `.outOfMemory` for the result; the kernel's errors.
    public func softmax(alongAxis axis: Int = -1, maskedRows: MaskedRowPolicy = .nan) throws -> Tensor {
        try requireFloat32("self")
        let axis = try normalizedAxis(axis, argument: "axis")
        // Swapping the axis with the last one moves it last, and the same swap moves it back.
        var order = Array(0..<rank)
        order.swapAt(axis, rank - 1)
        var lines = axis == rank - 1 ? self : try permuted(order)
        let length = shape[axis]
        let context = "softmax of \(shape) along axis \(axis)"
        try lines.withUnsafeMutableBufferPointer { buffer throws(AttentionError) in
            try softmaxRows(
                buffer.baseAddress, rows: length == 0 ? 0 : buffer.count / length, length: length, stride: length,
                maskedRows: maskedRows, context: context)
        }
        return axis == rank - 1 ? lines : try lines.permuted(order)
    }
}
