#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Android)
import Android
#endif

extension Tensor {
    /// Creates a tensor of samples from a normal distribution.
    ///
    /// Samples come in pairs from the Box–Muller transform, computed in `Double` from 53-bit
    /// uniform values and then rounded to `Float`, so a seeded generator gives the same tensor on
    /// every platform. With a half-precision `dtype`, the `Float` samples are then rounded to it
    /// (to nearest even), so the same seed gives the rounded values of the `float32` tensor.
    ///
    /// - Throws: `AttentionError.invalidArgument` when `mean` is not finite or
    ///   `standardDeviation` is negative or not finite, and the errors of `init(zeros:)` for the
    ///   shape.
    public init(
        randomNormal shape: [Int],
        mean: Float = 0,
        standardDeviation: Float = 1,
        dtype: DType = .float32,
        using generator: inout some RandomNumberGenerator
    ) throws {
        guard mean.isFinite else {
            throw AttentionError.invalidArgument(argument: "mean", reason: "must be finite, got \(mean)")
        }
        guard standardDeviation.isFinite, standardDeviation >= 0 else {
            throw AttentionError.invalidArgument(
                argument: "standardDeviation",
                reason: "must be finite and non-negative, got \(standardDeviation)")
        }
        try self.init(uninitializedShape: shape, argument: "shape")
        let buffer = storage.buffer
        let mu = Double(mean), sigma = Double(standardDeviation)
        var index = 0
        while index < buffer.count {
            // u1 in (0, 1] keeps the logarithm finite; u2 in [0, 1).
            let u1 = Double((generator.next() >> 11) + 1) * 0x1p-53
            let u2 = Double(generator.next() >> 11) * 0x1p-53
            let radius = (-2 * log(u1)).squareRoot()
            let angle = 2 * Double.pi * u2
            buffer[index] = Float(mu + sigma * radius * cos(angle))
            index += 1
            if index < buffer.count {
                buffer[index] = Float(mu + sigma * radius * sin(angle))
                index += 1
            }
        }
        self = try converting(to: dtype, argument: "shape")
    }

    /// Creates a tensor of samples drawn uniformly from a half-open range, as `Float`s then
    /// rounded to `dtype` (to nearest even) when it is a half-precision type.
    ///
    /// - Throws: `AttentionError.invalidArgument` when the range is empty or a bound is not
    ///   finite, and the errors of `init(zeros:)` for the shape.
    public init(
        randomUniform shape: [Int],
        in range: Range<Float> = 0..<1,
        dtype: DType = .float32,
        using generator: inout some RandomNumberGenerator
    ) throws {
        guard range.lowerBound.isFinite, range.upperBound.isFinite, !range.isEmpty,
              (range.upperBound - range.lowerBound).isFinite
        else {
            throw AttentionError.invalidArgument(
                argument: "range", reason: "must be a non-empty range with finite bounds and width, got \(range)")
        }
        try self.init(uninitializedShape: shape, argument: "shape")
        let buffer = storage.buffer
        for index in buffer.indices {
            buffer[index] = Float.random(in: range, using: &generator)
        }
        self = try converting(to: dtype, argument: "shape")
    }
}
