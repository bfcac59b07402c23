/// A fully connected layer: `y = x Wᵀ + b`, applied to the last dimension.
///
/// The parameters have PyTorch's and Equinox's names and layout: `weight` of shape
/// `(outputSize, inputSize)` and `bias` of shape `(outputSize,)`. Both are initialised as
/// `torch.nn.Linear` and `equinox.nn.Linear` do, from `U(-1/√inputSize, 1/√inputSize)`, weight
/// first.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let projection = try Linear(inputSize: 64, outputSize: 192, using: &rng)
/// let x = try Tensor(randomNormal: [2, 10, 64], using: &rng)
/// let y = try projection(x)   // [2, 10, 192]
/// ```
///
/// The weight may be `float32`, `float16` or `bfloat16` (kept as it is and read in place by the
/// matrix multiply, each weight widened exactly, the sums in `Float`): convert it with
/// `linear.weight = try linear.weight.converted(to: .bfloat16)` or ``ParameterizedModule/convertingWeights(to:)``.
/// The input, the bias and the output are `float32`.
public struct Linear: ParameterizedModule, Equatable {
    /// The weight, `(outputSize, inputSize)`.
    public var weight: Tensor

    /// The bias, `(outputSize,)`, or `nil` for a layer without one.
    public var bias: Tensor?

    /// The size of the last dimension of the input: the weight's second dimension.
    public var inputSize: Int { weight.shape.count == 2 ? weight.shape[1] : 0 }

    /// The size of the last dimension of the output: the weight's first dimension.
    public var outputSize: Int { weight.shape.first ?? 0 }

    /// Creates a layer with PyTorch's and Equinox's default initialisation: weight, then bias,
    /// each from `U(-1/√inputSize, 1/√inputSize)`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"inputSize"`, `"outputSize"`) for a size
    ///   below 1.
    public init(
        inputSize: Int, outputSize: Int, bias: Bool = true, using generator: inout some RandomNumberGenerator
    ) throws {
        guard inputSize >= 1 else {
            throw AttentionError.invalidArgument(argument: "inputSize", reason: "must be at least 1, got \(inputSize)")
        }
        guard outputSize >= 1 else {
            throw AttentionError.invalidArgument(argument: "outputSize", reason: "must be at least 1, got \(outputSize)")
        }
        let limit = 1 / Float(inputSize).squareRoot()
        self.weight = try .uniform([outputSize, inputSize], limit: limit, using: &generator)
        self.bias = bias ? try .uniform([outputSize], limit: limit, using: &generator) : nil
    }

    /// Creates a layer from its parameters.
    ///
    /// - Throws: `AttentionError.shapeMismatch` when `weight` is not `(outputSize, inputSize)`
    ///   with both at least 1, or `bias` is not `(outputSize,)`.
    public init(weight: Tensor, bias: Tensor? = nil) throws {
        self.weight = weight
        self.bias = bias
        try validateParameters()
    }

    /// Checks that the parameters (public and mutable) still have consistent shapes.
    private func validateParameters() throws(AttentionError) {
        guard weight.rank == 2, weight.shape[0] >= 1, weight.shape[1] >= 1 else {
            throw .shapeMismatch(
                argument: "weight", expected: "(outputSize, inputSize), both at least 1", actual: weight.shape)
        }
        if let bias, bias.shape != [weight.shape[0]] {
            throw .shapeMismatch(
                argument: "bias", expected: "[\(weight.shape[0])] (outputSize) for weight \(weight.shape)",
                actual: bias.shape)
        }
    }

    /// `weight`: the one parameter that may be half precision.
    public var matrixWeightNames: Set<String> { ["weight"] }

    /// `weight`, then `bias` when present.
    public var parameterPaths: [ParameterPath<Linear>] {
        var paths: [ParameterPath<Linear>] = [("weight", \.weight)]
        if bias != nil { paths.append(("bias", \.bias!)) }
        return paths
    }

    /// Applies the layer to the last dimension of `input`, `(..., inputSize)` →
    /// `(..., outputSize)`, with any number of leading dimensions (none included): one matrix
    /// multiply with the bias fused.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (argument `"input"`) when the last dimension is
    ///   not `inputSize` (or `input` is a scalar), or (`"weight"`, `"bias"`) when the parameters
    ///   were given inconsistent shapes; `.unsupportedDType` (`"input"`, `"bias"`) when the input
    ///   or the bias is not `float32`; the kernel's errors.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try callAsFunction(input, products: .float32)
    }

    /// Applies the layer as ``callAsFunction(_:)`` does, with a `bfloat16` weight's products
    /// formed as `products` says (``MatrixProducts/bfloat16``: the input rounded to bf16 first,
    /// about twice as fast on CPUs with AVX512_BF16); any other weight is multiplied in `float32`.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callAsFunction(_ input: Tensor, products: MatrixProducts) throws -> Tensor {
        try apply(input, products: products, residual: nil)
    }

    /// The layer's output plus `residual`, `(..., outputSize)`, in one matrix multiply (the
    /// product accumulated onto a copy of `residual`, as PyTorch's `torch.addmm`): a transformer
    /// block's residual connection after its output projection.
    ///
    /// ```swift
    /// hidden = try outputProjection(attended, adding: hidden)   // hidden + attended Wᵀ + b
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:)``; `AttentionError.shapeMismatch` (`"residual"`) unless
    ///   `residual` has the output's shape; `.unsupportedDType` (`"residual"`) unless it is
    ///   `float32`.
    public func callAsFunction(_ input: Tensor, products: MatrixProducts = .float32, adding residual: Tensor) throws -> Tensor {
        try apply(input, products: products, residual: residual)
    }

    private func apply(_ input: Tensor, products: MatrixProducts, residual: Tensor?) throws -> Tensor {
        try validateParameters()
        let (outputSize, inputSize) = (weight.shape[0], weight.shape[1])
        guard input.rank >= 1, input.shape[input.rank - 1] == inputSize else {
            throw AttentionError.shapeMismatch(
                argument: "input", expected: "[..., \(inputSize)] (..., inputSize)", actual: input.shape)
        }
        let outputShape = Array(input.shape.dropLast()) + [outputSize]
        if let residual, residual.shape != outputShape {
            throw AttentionError.shapeMismatch(
                argument: "residual", expected: "\(outputShape), the output's shape", actual: residual.shape)
        }
        return try matrixMultiply(
            input, inputs: inputSize, weight: weight, layout: .outputsByInputs, outputs: outputSize, bias: bias,
            outputShape: outputShape, products: products, residual: residual,
            context: "input \(input.shape), weight \(weight.shape), bias \(bias.map { "\($0.shape)" } ?? "none")")
    }
}

extension Linear: Layer {}
