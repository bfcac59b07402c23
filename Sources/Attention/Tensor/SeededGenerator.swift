/// A small, fast, seedable random number generator (xoshiro256**) for reproducible
/// initialisation and tests.
///
/// The same seed gives the same sequence on every platform and in every release of this module.
/// Not for cryptography.
///
/// ```swift
/// var rng = SeededGenerator(seed: 2024)
/// let query = try Tensor(randomNormal: [1, 8, 32, 64], using: &rng)
/// let again = SeededGenerator(seed: 2024)   // starts the same sequence over
/// ```
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// Creates a generator whose 256-bit state is expanded from `seed` with SplitMix64, as the
    /// xoshiro authors recommend (so nearby seeds give unrelated sequences and the state is never
    /// all zero).
    public init(seed: UInt64) {
        state = (
            splitMix64(state: seed, step: 1), splitMix64(state: seed, step: 2), splitMix64(state: seed, step: 3),
            splitMix64(state: seed, step: 4))
    }

    /// The next 64 random bits.
    ///
    /// ```swift
    /// var rng = SeededGenerator(seed: 1)
    /// let coin = rng.next() & 1 == 1
    /// let die = Int.random(in: 1...6, using: &rng)
    /// ```
    public mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, by: 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotateLeft(state.3, by: 45)
        return result
    }

    /// Two generators are equal when they will produce the same sequence.
    public static func == (lhs: SeededGenerator, rhs: SeededGenerator) -> Bool {
        lhs.state == rhs.state
    }

    private func rotateLeft(_ x: UInt64, by k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}
