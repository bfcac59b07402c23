/// Dropout on the attention weights: each weight is zeroed with probability ``probability`` and
/// the kept ones are scaled by `1 / (1 - probability)`.
///
/// The decision for weight (b, h, i, j) is a pure function of ``seed`` and its counter
/// `offset + ((b * Hq + h) * Lq + i) * Lk + j`, so results are reproducible and identical for
/// every thread count, instruction set and algorithm (fused or unfused):
/// the weight is kept when `splitmix64Bits(seed, counter) >= UInt32(probability * 2^32)`, where
/// `splitmix64Bits` is the upper 32 bits of SplitMix64 at state `seed + (counter + 1) * 0x9E3779B97F4A7C15`.
///
/// ```swift
/// let dropout = Dropout(probability: 0.1, seed: 1234)
/// let out = try scaledDotProductAttention(query: q, key: k, value: v, dropout: dropout)
/// ```
///
/// ``offset`` moves to a fresh stretch of the random stream, e.g. one per layer or per step:
///
/// ```swift
/// let layer3 = Dropout(probability: 0.1, seed: 1234, offset: 3 << 40)
/// ```
public struct Dropout: Sendable, Equatable, Hashable {
    /// The probability of zeroing a weight, in `[0, 1)`; 0 disables dropout.
    public var probability: Float

    /// The seed of the random stream.
    public var seed: UInt64

    /// Added to every weight's counter (wrapping), to select another part of the stream.
    public var offset: UInt64

    /// Creates a dropout configuration. The probability is checked when the attention runs.
    public init(probability: Float, seed: UInt64, offset: UInt64 = 0) {
        self.probability = probability
        self.seed = seed
        self.offset = offset
    }

    /// The one dropout decision of the library, the kernels' hash: a function that scales a weight
    /// by `1/(1 - probability)` when element `counter` (counted from ``offset``) is kept and gives 0
    /// otherwise, so every path drops the same elements for the same seed.
    func decision() -> (_ value: Float, _ counter: Int) -> Float {
        dropoutDecision(probability: probability, seed: seed, offset: offset)
    }
}
