/// Layer normalisation over the last dimension:
/// `y = (x - mean) / √(variance + epsilon) · weight + bias`, with the biased variance.
///
/// The parameters have PyTorch's and Equinox's names, `weight` (initialised to ones) and `bias`
/// (zeros), each of shape `(size,)`. `torch.nn.LayerNorm(512)` is `LayerNorm(size: 512)`;
/// `LayerNorm(size: 512, bias: false)` is torch's `bias=False`; Flax's `nn.LayerNorm` (epsilon
/// 1e-6, the fast variance, its scale named `scale`) is
/// `LayerNorm(size: 512, epsilon: 1e-6, variance: .fast)`, its scale listed under a parent's name.
///
/// ```swift
/// let norm = try LayerNorm(size: 64)
/// let y = try norm(x)   // x: (..., 64), y: same shape, each row with mean 0 and variance ≈ 1
/// ```
public struct LayerNorm: ParameterizedModule, Equatable {
    /// How the variance is computed.
    ///
    /// ```swift
    /// let flaxStyle = try LayerNorm(size: 64, epsilon: 1e-6, variance: .fast)
    /// ```
    public enum Variance: Sendable, Equatable, Hashable, CaseIterable {
        /// `mean((x - mean)²)`: PyTorch and Equinox. Accurate for rows with a large mean.
        case twoPass
        /// `max(0, mean(x²) - mean²)`: Flax's default (`use_fast_variance=True`).
        case fast
    }

    /// The scale, `(size,)`; `nil` without an elementwise affine transform.
    public var weight: Tensor?

    /// The shift, `(size,)`; `nil` without one.
    public var bias: Tensor?

    /// The size of the normalised (last) dimension.
    public var size: Int

    /// Added to the variance before the square root; finite and non-negative.
    public var epsilon: Float

    /// How the variance is computed.
    public var variance: Variance

    /// Creates a layer norm over a last dimension of `size`, with weight ones and bias zeros.
    ///
    /// ```swift
    /// let torchDefault = try LayerNorm(size: 512)                       // eps 1e-5, weight and bias
    /// let noBias = try LayerNorm(size: 512, bias: false)                // torch's bias=False
    /// let plain = try LayerNorm(size: 512, elementwiseAffine: false)    // no parameters
    /// ```
    ///
    /// - Parameters:
    ///   - size: the size of the last dimension (torch's `normalized_shape`, Equinox's `shape`).
    ///   - epsilon: added to the variance; 1e-5 by default, as in PyTorch and Equinox.
    ///   - elementwiseAffine: whether there are parameters at all (torch's
    ///     `elementwise_affine`; Equinox's `use_weight` and `use_bias` together).
    ///   - bias: whether there is a bias when `elementwiseAffine` is true.
    ///   - variance: `.twoPass` (PyTorch, Equinox) or `.fast` (Flax).
    /// - Throws: `AttentionError.invalidArgument` (`"size"`, `"epsilon"`) for a size below 1 or an
    ///   epsilon that is negative or not finite.
    public init(
        size: Int, epsilon: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true,
        variance: Variance = .twoPass
    ) throws {
        guard size >= 1 else {
            throw AttentionError.invalidArgument(argument: "size", reason: "must be at least 1, got \(size)")
        }
        self.size = size
        self.epsilon = epsilon
        self.variance = variance
        self.weight = elementwiseAffine ? try Tensor(ones: [size]) : nil
        self.bias = elementwiseAffine && bias ? try Tensor(zeros: [size]) : nil
        try validate()
    }

    private func validate() throws(AttentionError) {
        guard size >= 1 else {
            throw .invalidArgument(argument: "size", reason: "must be at least 1, got \(size)")
        }
        guard epsilon.isFinite, epsilon >= 0 else {
            throw .invalidArgument(argument: "epsilon", reason: "must be finite and non-negative, got \(epsilon)")
        }
        if let weight, weight.shape != [size] {
            throw .shapeMismatch(argument: "weight", expected: "[\(size)] (size)", actual: weight.shape)
        }
        if let bias, bias.shape != [size] {
            throw .shapeMismatch(argument: "bias", expected: "[\(size)] (size)", actual: bias.shape)
        }
    }

    /// `weight` and `bias`, each when present.
    public var parameterPaths: [ParameterPath<LayerNorm>] {
        var paths: [ParameterPath<LayerNorm>] = []
        if weight != nil { paths.append(ParameterPath("weight", \.weight!)) }
        if bias != nil { paths.append(ParameterPath("bias", \.bias!)) }
        return paths
    }

    /// Normalises each row of the last dimension; the result has the input's shape.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"input"`, `"weight"`, `"bias"`) for a tensor
    ///   that is not `float32`; `.shapeMismatch` (argument `"input"`) when the last dimension is
    ///   not ``size`` (or `input` is a scalar); `.invalidArgument` or `.shapeMismatch` when the
    ///   stored properties were set to invalid values; the kernel's errors.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try normalize(input, savingStatistics: false).output
    }

    /// The kernel's row statistics for ``variance``.
    var statistics: RowStatistics { variance == .twoPass ? .twoPass : .fast }

    /// The normalised rows and, with `savingStatistics`, what the backward pass needs.
    func normalize(
        _ input: Tensor, savingStatistics: Bool
    ) throws(AttentionError) -> (output: Tensor, rowStatistics: LayerNormStatistics?) {
        try validate()
        guard input.rank >= 1, input.shape[input.rank - 1] == size else {
            throw .shapeMismatch(argument: "input", expected: "[..., \(size)] (..., size)", actual: input.shape)
        }
        return try layerNormRows(
            input, size: size, weight: weight, bias: bias, epsilon: epsilon, statistics: statistics,
            savingStatistics: savingStatistics)
    }
}

extension LayerNorm: Layer {}
