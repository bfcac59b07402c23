extension MultiHeadDotProductAttention {
    /// One of the four projections of ``MultiHeadDotProductAttention``: Flax's `DenseGeneral` as
    /// the module uses it, a kernel whose leading ``inputAxes`` axes contract the input's trailing
    /// axes, plus an optional bias over the remaining (feature) axes.
    ///
    /// | role | Flax name | kernel | bias | inputAxes |
    /// |------|-----------|--------|------|-----------|
    /// | query, key, value | `query`, `key`, `value` | `(in, H, headDim)` | `(H, headDim)` | 1 |
    /// | output | `out` | `(H, headDim, out)` | `(out,)` | 2 |
    ///
    /// The kernel is used in place as the row-major matrix `(product of input axes, product of
    /// feature axes)`, so a projection is one matrix multiply with the bias fused:
    /// `y = x · kernel + bias`.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 0)
    /// let query = try MultiHeadDotProductAttention.Projection(
    ///     kernel: Tensor.lecunNormal([16, 4, 8], fanIn: 16, using: &rng),
    ///     bias: Tensor(zeros: [4, 8]), inputAxes: 1)
    /// let heads = try query(x)   // x: [2, 10, 16] → heads: [2, 10, 4, 8]
    /// ```
    public struct Projection: ParameterizedModule, Equatable {
        /// The kernel: `(in, H, headDim)` for the query, key and value projections,
        /// `(H, headDim, out)` for the output projection (Flax's `kernel`).
        public var kernel: Tensor

        /// The bias over the feature axes, `(H, headDim)` or `(out,)`; `nil` when the module was
        /// made with `useBias: false` (Flax's `bias`).
        public var bias: Tensor?

        /// How many leading axes of ``kernel`` are contracted with the input's trailing axes:
        /// 1 for the query, key and value projections (`axis=-1`), 2 for the output projection
        /// (`axis=(-2, -1)`).
        public let inputAxes: Int

        /// Creates a projection from its parameters.
        ///
        /// - Throws: `AttentionError.invalidArgument` (`"inputAxes"`) unless `inputAxes` is at
        ///   least 1 and below the kernel's rank; `.shapeMismatch` (`"kernel"`, `"bias"`) for a
        ///   kernel with an empty dimension or a bias that is not the kernel's feature axes.
        public init(kernel: Tensor, bias: Tensor? = nil, inputAxes: Int) throws {
            self.kernel = kernel
            self.bias = bias
            self.inputAxes = inputAxes
            try validate()
        }

        /// `kernel`: the one parameter that may be half precision.
        public var matrixWeightNames: Set<String> { ["kernel"] }

        /// `kernel`, then `bias` when present: Flax's names inside the projection's scope.
        public var parameterPaths: [ParameterPath<Projection>] {
            var paths: [ParameterPath<Projection>] = [("kernel", \.kernel)]
            if bias != nil { paths.append(("bias", \.bias!)) }
            return paths
        }

        /// The sizes of the input axes: `[in]` or `[H, headDim]`.
        public var inputShape: [Int] { Array(kernel.shape.prefix(max(0, inputAxes))) }

        /// The sizes of the feature axes: `[H, headDim]` or `[out]`.
        public var featureShape: [Int] { Array(kernel.shape.dropFirst(max(0, inputAxes))) }

        /// Checks that the (public, mutable) parameters still fit together.
        func validate() throws(AttentionError) {
            guard inputAxes >= 1, inputAxes < kernel.rank else {
                throw .invalidArgument(
                    argument: "inputAxes",
                    reason: "must be in 1..<\(kernel.rank) for a kernel of shape \(kernel.shape), got \(inputAxes)")
            }
            guard !kernel.shape.contains(where: { $0 < 1 }) else {
                throw .shapeMismatch(
                    argument: "kernel", expected: "a shape with every dimension at least 1", actual: kernel.shape)
            }
            if let bias, bias.shape != featureShape {
                throw .shapeMismatch(
                    argument: "bias", expected: "\(featureShape), the feature axes of the kernel \(kernel.shape)",
                    actual: bias.shape)
            }
        }

        /// Applies the projection: `[..., input axes]` → `[..., feature axes]`, with any number
        /// of leading dimensions.
        ///
        /// - Throws: `AttentionError.shapeMismatch` (`"input"`) when the input's trailing axes are
        ///   not ``inputShape``; the errors of the parameter checks and of the kernel.
        public func callAsFunction(_ input: Tensor) throws -> Tensor {
            try validate()
            let inputShape = self.inputShape, featureShape = self.featureShape
            guard input.rank >= inputAxes, Array(input.shape.suffix(inputAxes)) == inputShape else {
                let pattern = (["..."] + inputShape.map(String.init)).joined(separator: ", ")
                throw AttentionError.shapeMismatch(
                    argument: "input", expected: "[\(pattern)], ending with the kernel's input axes", actual: input.shape)
            }
            let inputWidth = try elementCount(of: inputShape, argument: "input")
            let outputWidth = try elementCount(of: featureShape, argument: "kernel")
            return try matrixMultiply(
                input, inputs: inputWidth, weight: kernel, layout: .inputsByOutputs, outputs: outputWidth, bias: bias,
                outputShape: Array(input.shape.dropLast(inputAxes)) + featureShape,
                context: "input \(input.shape), kernel \(kernel.shape), bias \(bias.map { "\($0.shape)" } ?? "none")")
        }
    }
}

extension MultiHeadDotProductAttention.Projection: Layer {}
