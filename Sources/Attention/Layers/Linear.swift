/// A fully connected layer, `y = x W + b` over the trailing dimensions of `x`: the one dense layer
/// of this module, in each reference library's weight layout.
///
/// - ``Layout/outputsByInputs``: PyTorch's and Equinox's `weight` of shape
///   `(outputSize, inputSize)` (`y = x Wᵀ + b`), parameters named `weight` and `bias`.
/// - ``Layout/inputsByOutputs(inputAxes:)``: Flax's `DenseGeneral` `kernel` of shape
///   `inputShape + outputShape` (`y = x W + b`, the first `inputAxes` dimensions contracted with
///   the input's last ones), parameters named `kernel` and `bias` (`bias` of shape `outputShape`).
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let projection = try Linear(inputSize: 64, outputSize: 192, using: &rng)
/// let x = try Tensor(randomNormal: [2, 10, 64], using: &rng)
/// let y = try projection(x)   // [2, 10, 192]
/// // Flax's query projection: a kernel (features, heads, headSize) gives (..., heads, headSize).
/// let query = try Linear(kernel: Tensor(randomNormal: [64, 8, 8], using: &rng), inputAxes: 1)
/// ```
///
/// The weight may be `float32`, `float16` or `bfloat16` (kept as it is and read in place by the
/// matrix multiply, each weight widened exactly, the sums in `Float`): convert it with
/// `linear.weight = try linear.weight.converted(to: .bfloat16)` or ``ParameterizedModule/convertingWeights(to:)``.
/// The input, the bias and the output are `float32`.
public struct Linear: ParameterizedModule, Equatable {
    /// How the weight's dimensions are ordered.
    public enum Layout: Sendable, Hashable {
        /// `(outputSize, inputSize)`, PyTorch's and Equinox's `weight`.
        case outputsByInputs
        /// `inputShape + outputShape`, Flax's `kernel`: the first `inputAxes` dimensions are
        /// the input's, the rest the output's.
        case inputsByOutputs(inputAxes: Int)
    }

    /// The weight, shaped as ``layout`` says.
    public var weight: Tensor

    /// The bias, of the output's trailing shape (`(outputSize,)` in PyTorch's layout), or `nil`.
    public var bias: Tensor?

    /// How ``weight`` is laid out.
    public let layout: Layout

    /// The input's trailing shape the layer contracts: `[inputSize]` in PyTorch's layout.
    public var inputShape: [Int] {
        switch layout {
        case .outputsByInputs: weight.rank == 2 ? [weight.shape[1]] : []
        case let .inputsByOutputs(axes): Array(weight.shape.prefix(max(0, axes)))
        }
    }

    /// The output's trailing shape: `[outputSize]` in PyTorch's layout.
    public var outputShape: [Int] {
        switch layout {
        case .outputsByInputs: weight.rank == 2 ? [weight.shape[0]] : []
        case let .inputsByOutputs(axes): Array(weight.shape.dropFirst(max(0, axes)))
        }
    }

    /// The number of input features: the product of ``inputShape``.
    public var inputSize: Int { inputShape.reduce(1, &*) }

    /// The number of output features: the product of ``outputShape``.
    public var outputSize: Int { outputShape.reduce(1, &*) }

    /// Creates a layer with PyTorch's and Equinox's default initialisation: weight, then bias,
    /// each from `U(-1/√inputSize, 1/√inputSize)`, in PyTorch's layout.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"inputSize"`, `"outputSize"`) for a size
    ///   below 1.
    public init(
        inputSize: Int, outputSize: Int, bias: Bool = true, using generator: inout some RandomNumberGenerator
    ) throws {
        for (name, size) in [("inputSize", inputSize), ("outputSize", outputSize)] where size < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        let limit = 1 / Float(inputSize).squareRoot()
        self.weight = try .uniform([outputSize, inputSize], limit: limit, using: &generator)
        self.bias = bias ? try .uniform([outputSize], limit: limit, using: &generator) : nil
        self.layout = .outputsByInputs
    }

    /// Creates a layer from PyTorch's `(outputSize, inputSize)` weight and `(outputSize,)` bias.
    ///
    /// - Throws: `AttentionError.shapeMismatch` when `weight` is not `(outputSize, inputSize)`
    ///   with both at least 1, or `bias` is not `(outputSize,)`.
    public init(weight: Tensor, bias: Tensor? = nil) throws {
        (self.weight, self.bias, self.layout) = (weight, bias, .outputsByInputs)
        try validateParameters()
    }

    /// Creates one layer computing several of the same input side by side: the parts' weights
    /// `(outputs_i, inputSize)` stacked row by row and their biases likewise, so one matrix
    /// multiply computes them all (a decoder's query, key and value projections).
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"parts"`) for no part, parts of different
    ///   input sizes or dtypes, or biases on some parts only; the errors of ``init(weight:bias:)``.
    public init(stacking parts: [(weight: Tensor, bias: Tensor?)]) throws {
        guard let first = parts.first?.weight,
              parts.allSatisfy({ $0.weight.rank == 2 && $0.weight.shape[1] == first.shape.last && $0.weight.dtype == first.dtype }),
              parts.allSatisfy({ ($0.bias == nil) == (parts[0].bias == nil) })
        else {
            throw AttentionError.invalidArgument(
                argument: "parts",
                reason: "needs at least one (outputs, inputSize) weight, all of one inputSize and dtype, with a bias each or none")
        }
        let biases = parts.compactMap(\.bias)
        try self.init(
            weight: Tensor.concatenated(parts.map(\.weight), axis: 0),
            bias: biases.isEmpty ? nil : try Tensor.concatenated(biases, axis: 0))
    }

    /// Creates a layer from Flax's `kernel`, `inputShape + outputShape`, whose first `inputAxes`
    /// dimensions are contracted, and a bias of shape `outputShape`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"inputAxes"`) unless
    ///   `1 <= inputAxes < kernel.rank`; `.shapeMismatch` (`"kernel"`, `"bias"`) for a dimension
    ///   below 1 or a bias of another shape.
    public init(kernel: Tensor, bias: Tensor? = nil, inputAxes: Int) throws {
        (self.weight, self.bias, self.layout) = (kernel, bias, .inputsByOutputs(inputAxes: inputAxes))
        try validateParameters()
    }

    /// The checkpoint name of ``weight``: `weight`, or Flax's `kernel`.
    var weightName: String { layout == .outputsByInputs ? "weight" : "kernel" }

    /// Checks that the parameters (public and mutable) still have consistent shapes.
    func validateParameters() throws(AttentionError) {
        switch layout {
        case .outputsByInputs:
            guard weight.rank == 2, weight.shape[0] >= 1, weight.shape[1] >= 1 else {
                throw .shapeMismatch(
                    argument: "weight", expected: "(outputSize, inputSize), both at least 1", actual: weight.shape)
            }
        case let .inputsByOutputs(axes):
            guard axes >= 1, axes < weight.rank else {
                throw .invalidArgument(
                    argument: "inputAxes",
                    reason: "must be in 1..<\(weight.rank) for a kernel of shape \(weight.shape), got \(axes)")
            }
            guard !weight.shape.contains(where: { $0 < 1 }) else {
                throw .shapeMismatch(
                    argument: "kernel", expected: "a shape with every dimension at least 1", actual: weight.shape)
            }
        }
        if let bias, bias.shape != outputShape {
            let expected = layout == .outputsByInputs
                ? "\(outputShape) (outputSize) for weight \(weight.shape)"
                : "\(outputShape), the feature axes of the kernel \(weight.shape)"
            throw .shapeMismatch(argument: "bias", expected: expected, actual: bias.shape)
        }
    }

    /// ``weight``: the one parameter that may be half precision.
    public var matrixWeightNames: Set<String> { [weightName] }

    /// ``weight`` (`weight` or `kernel`), then `bias` when present.
    public var parameterPaths: [ParameterPath<Linear>] {
        var paths: [ParameterPath<Linear>] = [ParameterPath(weightName, \.weight)]
        if bias != nil { paths.append(ParameterPath("bias", \.bias!)) }
        return paths
    }
}

extension Linear: Layer {
    /// Applies the layer to the trailing dimensions of `input`, `(..., inputShape)` →
    /// `(..., outputShape)`, with any number of leading dimensions (none included): one matrix
    /// multiply with the bias fused.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (argument `"input"`) when the trailing dimensions
    ///   are not ``inputShape``, or (`"weight"`, `"kernel"`, `"bias"`) when the parameters were
    ///   given inconsistent shapes; `.unsupportedDType` (`"input"`, `"bias"`) when the input or
    ///   the bias is not `float32`; the kernel's errors.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try callAsFunction(input, products: .float32)
    }

    /// Applies the layer as ``callAsFunction(_:)`` does, with a `bfloat16` weight's products
    /// formed as `products` says (``MatrixProducts/bfloat16``: the input rounded to bf16 first,
    /// about twice as fast on CPUs with AVX512_BF16); any other weight is multiplied in `float32`.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callAsFunction(_ input: Tensor, products: MatrixProducts) throws -> Tensor {
        try apply(input, products: products)
    }

    /// The layer's output plus `residual`, `(..., outputShape)`, in one matrix multiply (the
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

    /// The layer's outputs `outputs` (a range of output features, flattened: rows of PyTorch's
    /// weight) for `input`, `(..., inputShape)` → `(..., outputs.count)`: one block of a packed
    /// projection (PyTorch's `in_proj_weight` holding the query, key and value projections).
    func callAsFunction(
        _ input: Tensor, outputs: Range<Int>, products: MatrixProducts = .float32
    ) throws -> Tensor {
        try apply(input, outputs: outputs, products: products)
    }

    private func apply(
        _ input: Tensor, outputs: Range<Int>? = nil, products: MatrixProducts, residual: Tensor? = nil
    ) throws -> Tensor {
        try validateParameters()
        let inputShape = self.inputShape
        guard input.rank >= inputShape.count, Array(input.shape.suffix(inputShape.count)) == inputShape else {
            let pattern = (["..."] + inputShape.map(String.init)).joined(separator: ", ")
            let expected = layout == .outputsByInputs
                ? "[\(pattern)] (..., inputSize)" : "[\(pattern)], ending with the kernel's input axes"
            throw AttentionError.shapeMismatch(argument: "input", expected: expected, actual: input.shape)
        }
        let lead = Array(input.shape.dropLast(inputShape.count))
        let outputShape = outputs.map { lead + [$0.count] } ?? lead + self.outputShape
        if let residual, residual.shape != outputShape {
            throw AttentionError.shapeMismatch(
                argument: "residual", expected: "\(outputShape), the output's shape", actual: residual.shape)
        }
        return try matrixMultiply(
            input, inputs: inputSize, weight: weight, layout: layout == .outputsByInputs ? .outputsByInputs : .inputsByOutputs,
            outputs: outputs?.count ?? outputSize, bias: bias, weightRows: outputs, biasOffset: outputs?.lowerBound ?? 0,
            outputShape: outputShape, products: products, residual: residual,
            context: "input \(input.shape), \(weightName) \(weight.shape), bias \(bias.map { "\($0.shape)" } ?? "none")")
    }
}
