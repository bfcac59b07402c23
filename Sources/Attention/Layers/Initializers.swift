#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Android)
import Android
#endif

// The parameter initialisations of PyTorch, Equinox and Flax, as `Tensor` factories. Each draws
// from the generator in row-major order, so a seeded generator gives the same tensor everywhere
// (not the same numbers as the reference libraries, whose generators differ: the distributions
// are the same).

extension Tensor {
    /// Samples from `U(-limit, limit)`: PyTorch's and Equinox's default for `Linear` weights and
    /// biases, with `limit = 1/√fanIn`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"limit"`) unless `limit` is positive and
    ///   finite, and the errors of `init(zeros:)` for the shape.
    public static func uniform(
        _ shape: [Int], limit: Float, using generator: inout some RandomNumberGenerator
    ) throws -> Tensor {
        guard limit.isFinite, limit > 0 else {
            throw AttentionError.invalidArgument(argument: "limit", reason: "must be positive and finite, got \(limit)")
        }
        return try Tensor(randomUniform: shape, in: -limit..<limit, using: &generator)
    }

    /// Xavier (Glorot) uniform: `U(-a, a)` with `a = gain · √(6 / (fanIn + fanOut))`, as
    /// `torch.nn.init.xavier_uniform_`. For a PyTorch weight `(out, in)` the fans are `in` and
    /// `out`; `MultiheadAttention`'s packed `in_proj_weight` `(3E, E)` has fanIn E, fanOut 3E.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"fanIn"`, `"fanOut"`, `"gain"`) for fans
    ///   below 1 or a gain that is not positive and finite.
    public static func xavierUniform(
        _ shape: [Int], fanIn: Int, fanOut: Int, gain: Float = 1, using generator: inout some RandomNumberGenerator
    ) throws -> Tensor {
        let deviation = try xavierStandardDeviation(fanIn: fanIn, fanOut: fanOut, gain: gain)
        // U(-a, a) has standard deviation a/√3.
        return try uniform(shape, limit: Float(Double(deviation) * 3.0.squareRoot()), using: &generator)
    }

    /// Xavier (Glorot) normal: `N(0, σ²)` with `σ = gain · √(2 / (fanIn + fanOut))`, as
    /// `torch.nn.init.xavier_normal_` (used for `MultiheadAttention`'s `bias_k` and `bias_v`,
    /// `(1, 1, E)`, where both fans are E).
    ///
    /// - Throws: as ``xavierUniform(_:fanIn:fanOut:gain:using:)``.
    public static func xavierNormal(
        _ shape: [Int], fanIn: Int, fanOut: Int, gain: Float = 1, using generator: inout some RandomNumberGenerator
    ) throws -> Tensor {
        let deviation = try xavierStandardDeviation(fanIn: fanIn, fanOut: fanOut, gain: gain)
        return try Tensor(randomNormal: shape, standardDeviation: deviation, using: &generator)
    }

    private static func xavierStandardDeviation(fanIn: Int, fanOut: Int, gain: Float) throws -> Float {
        guard fanIn >= 1 else {
            throw AttentionError.invalidArgument(argument: "fanIn", reason: "must be at least 1, got \(fanIn)")
        }
        guard fanOut >= 1 else {
            throw AttentionError.invalidArgument(argument: "fanOut", reason: "must be at least 1, got \(fanOut)")
        }
        guard gain.isFinite, gain > 0 else {
            throw AttentionError.invalidArgument(argument: "gain", reason: "must be positive and finite, got \(gain)")
        }
        return Float(Double(gain) * (2 / (Double(fanIn) + Double(fanOut))).squareRoot())
    }

    /// Samples from `N(0, standardDeviation²)`: `jax.nn.initializers.normal(stddev)` (0.01 by
    /// default there) and `torch.nn.init.normal_`.
    ///
    /// - Throws: the errors of `init(randomNormal:mean:standardDeviation:using:)`.
    public static func normal(
        _ shape: [Int], standardDeviation: Float, using generator: inout some RandomNumberGenerator
    ) throws -> Tensor {
        try Tensor(randomNormal: shape, standardDeviation: standardDeviation, using: &generator)
    }

    /// Samples from the standard normal distribution truncated to `[lower, upper]`, then scaled
    /// by `standardDeviation` (the distribution of `jax.random.truncated_normal(lower, upper) ·
    /// standardDeviation`). Rejection sampling from Box–Muller normals in `Double`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"standardDeviation"`, `"lower"`) unless the
    ///   deviation is finite and non-negative and `lower < upper` are finite bounds holding at
    ///   least 0.1 % of the standard normal's mass (rejection sampling would crawl otherwise).
    public static func truncatedNormal(
        _ shape: [Int], standardDeviation: Float = 1, lower: Float = -2, upper: Float = 2,
        using generator: inout some RandomNumberGenerator
    ) throws -> Tensor {
        guard standardDeviation.isFinite, standardDeviation >= 0 else {
            throw AttentionError.invalidArgument(
                argument: "standardDeviation", reason: "must be finite and non-negative, got \(standardDeviation)")
        }
        // The fraction of standard normal samples inside the interval; rejection sampling needs
        // it not too small.
        let (lower, upper) = (Double(lower), Double(upper))
        let acceptance = 0.5 * (erf(upper / 2.0.squareRoot()) - erf(lower / 2.0.squareRoot()))
        guard lower.isFinite, upper.isFinite, lower < upper, acceptance >= 1e-3 else {
            throw AttentionError.invalidArgument(
                argument: "lower",
                reason: "the interval [\(lower), \(upper)] must be finite and hold at least 0.1 % of the "
                    + "standard normal distribution")
        }
        var tensor = try Tensor(zeros: shape)
        let scale = Double(standardDeviation)
        tensor.withUnsafeMutableBufferPointer { values in
            var index = 0
            while index < values.count {
                // Two normals per Box–Muller pair; keep those inside the interval.
                let u1 = Double((generator.next() >> 11) + 1) * 0x1p-53
                let u2 = Double(generator.next() >> 11) * 0x1p-53
                let radius = (-2 * log(u1)).squareRoot()
                let angle = 2 * Double.pi * u2
                let first = radius * cos(angle), second = radius * sin(angle)
                if first >= lower && first <= upper {
                    values[index] = Float(first * scale)
                    index += 1
                }
                if index < values.count && second >= lower && second <= upper {
                    values[index] = Float(second * scale)
                    index += 1
                }
            }
        }
        return tensor
    }

    /// LeCun normal, Flax's default kernel initialiser (`jax.nn.initializers.lecun_normal()`,
    /// `variance_scaling(1, "fan_in", "truncated_normal")`): a standard normal truncated to
    /// `[-2, 2]`, times `√(1/fanIn) / 0.87962566103423978`, the latter being the standard deviation
    /// of that truncated normal, so the variance is exactly `1/fanIn`.
    ///
    /// For a Flax `DenseGeneral` kernel, fanIn is the product of the input axes (`in_features`
    /// for the query/key/value kernels `(in, H, headDim)`, `H · headDim` for the output kernel
    /// `(H, headDim, out)`).
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"fanIn"`) for a fan below 1, and the errors
    ///   of `init(zeros:)` for the shape.
    public static func lecunNormal(
        _ shape: [Int], fanIn: Int, using generator: inout some RandomNumberGenerator
    ) throws -> Tensor {
        guard fanIn >= 1 else {
            throw AttentionError.invalidArgument(argument: "fanIn", reason: "must be at least 1, got \(fanIn)")
        }
        let deviation = (1 / Double(fanIn)).squareRoot() / 0.87962566103423978
        return try truncatedNormal(shape, standardDeviation: Float(deviation), using: &generator)
    }
}
