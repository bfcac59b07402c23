/// Root-mean-square layer normalisation (`transformers`' `LlamaRMSNorm`, PyTorch's `RMSNorm`):
/// `y = weight · x / √(mean(x²) + ε)` over the last dimension, without centring or bias.
///
/// ```swift
/// let norm = try RMSNorm(weight: Tensor(ones: [896]), epsilon: 1e-6)
/// let y = try norm(x)   // (..., 896) → same shape
/// ```
public struct RMSNorm: ParameterizedModule, Equatable {
    /// The per-feature scale, `(size,)`.
    public var weight: Tensor
    /// Added to the mean square before the square root.
    public var epsilon: Float

    /// Creates a norm from its weight.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"weight"`) unless `weight` is `(size,)` with
    ///   `size >= 1`; `.invalidArgument` (`"epsilon"`) for a negative or non-finite epsilon.
    public init(weight: Tensor, epsilon: Float) throws {
        guard weight.rank == 1, weight.count >= 1 else {
            throw AttentionError.shapeMismatch(argument: "weight", expected: "(size,), size at least 1", actual: weight.shape)
        }
        guard epsilon.isFinite, epsilon >= 0 else {
            throw AttentionError.invalidArgument(argument: "epsilon", reason: "must be finite and non-negative, got \(epsilon)")
        }
        self.weight = weight
        self.epsilon = epsilon
    }

    /// `weight`, `transformers`' name.
    public var parameterPaths: [ParameterPath<RMSNorm>] { [ParameterPath("weight", \.weight)] }

    /// The normalised input, `(..., size)` → same shape: one `attn_layer_norm` call
    /// (`ATTN_VARIANCE_RMS`), rows in parallel, the mean square summed in `Double`.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"input"`) when the last dimension is not the
    ///   weight's size; `.unsupportedDType` (`"input"`, `"weight"`) unless both are `float32`.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try normalize(input, savingStatistics: false).output
    }

    /// The normalised rows and, with `savingStatistics`, what the backward pass needs.
    func normalize(
        _ input: Tensor, savingStatistics: Bool
    ) throws(AttentionError) -> (output: Tensor, rowStatistics: LayerNormStatistics?) {
        let size = weight.count
        guard weight.rank == 1, size >= 1 else {
            throw .shapeMismatch(argument: "weight", expected: "(size,), size at least 1", actual: weight.shape)
        }
        guard input.rank >= 1, input.shape[input.rank - 1] == size else {
            throw .shapeMismatch(argument: "input", expected: "[..., \(size)]", actual: input.shape)
        }
        return try layerNormRows(
            input, size: size, weight: weight, bias: nil, epsilon: epsilon, statistics: .rootMeanSquare,
            savingStatistics: savingStatistics)
    }
}
