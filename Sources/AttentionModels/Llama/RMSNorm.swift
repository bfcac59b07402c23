import Attention

/// Root-mean-square layer normalisation (`transformers`' `LlamaRMSNorm`):
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
    public var parameterPaths: [ParameterPath<RMSNorm>] { [("weight", \.weight)] }

    /// The normalised input, `(..., size)` → same shape. The mean square is summed in `Double`.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"input"`) when the last dimension is not the
    ///   weight's size.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        let size = weight.count
        guard input.rank >= 1, input.shape[input.rank - 1] == size else {
            throw AttentionError.shapeMismatch(argument: "input", expected: "[..., \(size)]", actual: input.shape)
        }
        var output = input
        output.withUnsafeMutableBufferPointer { values in
            weight.withUnsafeBufferPointer { scale in
                for start in stride(from: 0, to: values.count, by: size) {
                    var sum = 0.0
                    for column in 0..<size {
                        let x = Double(values[start + column])
                        sum += x * x
                    }
                    let inverse = Float(1 / (sum / Double(size) + Double(epsilon)).squareRoot())
                    for column in 0..<size {
                        values[start + column] = scale[column] * (values[start + column] * inverse)
                    }
                }
            }
        }
        return output
    }
}
