/// SplitMix64 (Steele, Lea and Flood, 2014): the one seeded hash of this module.
///
/// `splitMix64(state: s, step: n)` is the `n`-th output of a SplitMix64 generator started at
/// `s`: the finaliser applied to `s + n·γ`, γ = 0x9E3779B97F4A7C15. ``SeededGenerator`` seeds its
/// state from steps 1 to 4; a derived seed is step `stream + 1`, so streams of one seed are
/// decorrelated yet a pure function of it. The attention kernels' dropout hash (`attn_dropout_bits`)
/// is the same function in C, on the counter of each weight.
///
/// - Parameters:
///   - state: the generator's starting state (a seed).
///   - step: how many increments of γ to take first (wrapping).
func splitMix64(state: UInt64, step: UInt64) -> UInt64 {
    var z = state &+ step &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// An independent seed for stream `stream` of `seed` (dropout sites: attention weights, a
/// feed-forward block, each layer): SplitMix64's step `stream + 1`.
func derivedSeed(_ seed: UInt64, stream: UInt64) -> UInt64 {
    splitMix64(state: seed, step: stream &+ 1)
}
