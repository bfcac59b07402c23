import Testing
import Attention

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Reference attention, in double precision

/// The expected result of an attention call, computed with nothing but loops over `Double`s, from
/// the definitions in attn.h (masking, window alignment, dropout hash, masked-row policies).
struct ReferenceAttention {
    var output: [Double]
    var logSumExp: [Double]
    /// Per row (b, h, i): whether every score was masked.
    var fullyMasked: [Bool]
    /// The weights (b, h, i, j) after dropout; NaN in a fully masked row with `.nan`.
    var weights: [Double]
}

/// The dropout hash of attn.h, re-implemented: splitmix64 at seed + (counter + 1) * golden gamma,
/// upper 32 bits.
func dropoutBits(seed: UInt64, counter: UInt64) -> UInt32 {
    var z = seed &+ (counter &+ 1) &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return UInt32(truncatingIfNeeded: z >> 32)
}

func dropoutThreshold(_ p: Float) -> UInt32 {
    p > 0 ? UInt32(Double(p) * 4_294_967_296.0) : 0
}

/// The logical (B, H, L, D) shape of a rank-2, 3 or 4 shape.
func logical4D(_ shape: [Int]) -> [Int] {
    Array(repeating: 1, count: 4 - shape.count) + shape
}

/// Element (b, h, i, j) of a dense array of `shape` broadcast to rank 4 (right-aligned, size-1
/// dimensions repeat).
func broadcastOffset(_ shape: [Int], _ coordinates: [Int]) -> Int {
    let used = coordinates.suffix(shape.count)
    var offset = 0
    for (size, coordinate) in zip(shape, used) {
        offset = offset * size + (size == 1 ? 0 : coordinate)
    }
    return offset
}

func referenceAttention(
    query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask = .unmasked, scale: Float? = nil,
    dropout: Dropout? = nil, maskedRows: MaskedRowPolicy = .zero
) -> ReferenceAttention {
    let q4 = logical4D(query.shape), k4 = logical4D(key.shape), v4 = logical4D(value.shape)
    let (batch, headsQ, lengthQ, dimQK) = (q4[0], q4[1], q4[2], q4[3])
    let (headsKV, lengthK, dimV) = (k4[1], k4[2], v4[3])
    let group = headsQ / headsKV
    let q = query.scalars.map(Double.init), k = key.scalars.map(Double.init), v = value.scalars.map(Double.init)
    let scaleD = scale.map(Double.init) ?? 1 / Double(dimQK).squareRoot()
    let maskValues = mask.booleanMask?.values, maskShape = mask.booleanMask?.shape ?? []
    let biasValues = mask.bias?.scalars.map(Double.init), biasShape = mask.bias?.shape ?? []
    let p = dropout?.probability ?? 0
    let threshold = dropoutThreshold(p)
    let keepScale = p > 0 ? 1 / (1 - Double(p)) : 1
    let offset: Int = mask.causal == .topLeft ? 0 : lengthK - lengthQ

    var result = ReferenceAttention(
        output: Array(repeating: 0, count: batch * headsQ * lengthQ * dimV),
        logSumExp: Array(repeating: 0, count: batch * headsQ * lengthQ),
        fullyMasked: Array(repeating: false, count: batch * headsQ * lengthQ),
        weights: Array(repeating: 0, count: batch * headsQ * lengthQ * lengthK))

    for b in 0..<batch {
        for h in 0..<headsQ {
            let kvHead = h / group
            for i in 0..<lengthQ {
                let row = (b * headsQ + h) * lengthQ + i
                var scores = [Double](repeating: -.infinity, count: lengthK)
                for j in 0..<lengthK {
                    let aligned = i + offset
                    if mask.causal != .none && j > aligned { continue }
                    if let left = mask.window.left, j < aligned - left { continue }
                    if let right = mask.window.right, j > aligned + right { continue }
                    if let lengths = mask.keyLengths, j >= lengths[b] { continue }
                    if let maskValues, !maskValues[broadcastOffset(maskShape, [b, h, i, j])] { continue }
                    var dot = 0.0
                    for d in 0..<dimQK {
                        dot += q[((b * headsQ + h) * lengthQ + i) * dimQK + d]
                            * k[((b * headsKV + kvHead) * lengthK + j) * dimQK + d]
                    }
                    var score = scaleD * dot
                    if let biasValues { score += biasValues[broadcastOffset(biasShape, [b, h, i, j])] }
                    scores[j] = score
                }
                let counter0 = (dropout?.offset ?? 0) &+ UInt64(row) &* UInt64(lengthK)
                func kept(_ j: Int) -> Bool {
                    threshold == 0 || dropoutBits(seed: dropout!.seed, counter: counter0 &+ UInt64(j)) >= threshold
                }
                var weights = [Double](repeating: 0, count: lengthK)
                let maximum = scores.max()!
                if maximum == -.infinity {
                    result.fullyMasked[row] = true
                    result.logSumExp[row] = -.infinity
                    switch maskedRows {
                    case .zero: continue
                    case .nan:
                        for c in 0..<dimV { result.output[row * dimV + c] = .nan }
                        for j in 0..<lengthK { result.weights[row * lengthK + j] = .nan }
                        continue
                    case .meanOfValues:
                        for j in 0..<lengthK { weights[j] = 1 / Double(lengthK) }
                    }
                } else {
                    let sum = scores.reduce(0) { $0 + exp($1 - maximum) }
                    result.logSumExp[row] = maximum + log(sum)
                    for j in 0..<lengthK { weights[j] = exp(scores[j] - maximum) / sum }
                }
                for j in 0..<lengthK {
                    let w = kept(j) ? weights[j] * keepScale : 0
                    result.weights[row * lengthK + j] = w
                    if w == 0 { continue }
                    for c in 0..<dimV {
                        result.output[row * dimV + c] += w * v[((b * headsKV + kvHead) * lengthK + j) * dimV + c]
                    }
                }
            }
        }
    }
    return result
}

// MARK: - Comparisons

/// Checks `actual` against `expected` element by element: NaN where NaN is expected, the same
/// infinity where one is expected, and otherwise `|a - e| <= atol * scale + rtol * |e|`, where
/// `scale` is the largest finite `|e|` (at least 1e-30). Records one issue with the largest
/// difference.
func expectClose(
    _ actual: Tensor, _ expected: [Double], shape: [Int], rtol: Double = 1e-5, atol: Double = 1e-5,
    _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.shape == shape, comment, sourceLocation: sourceLocation)
    guard actual.count == expected.count else {
        Issue.record("\(actual.count) elements, expected \(expected.count). \(comment?.rawValue ?? "")",
                     sourceLocation: sourceLocation)
        return
    }
    let scale = max(expected.filter(\.isFinite).map(abs).max() ?? 0, 1e-30)
    let values = actual.scalars
    var worst: (index: Int, difference: Double)? = nil
    var bad = 0
    for (index, (a, e)) in zip(values, expected).enumerated() {
        let ok: Bool
        if e.isNaN {
            ok = a.isNaN
        } else if e.isInfinite {
            ok = Double(a) == e
        } else {
            ok = a.isFinite && abs(Double(a) - e) <= atol * scale + rtol * abs(e)
        }
        if !ok {
            bad += 1
            let difference = a.isFinite && e.isFinite ? abs(Double(a) - e) : .infinity
            if worst == nil || difference > worst!.difference { worst = (index, difference) }
        }
    }
    if let worst {
        Issue.record(
            """
            \(bad) of \(expected.count) elements differ; largest at \(worst.index): \
            \(values[worst.index]) vs \(expected[worst.index]) (|diff| \(worst.difference), \
            scale \(scale)). \(comment?.rawValue ?? "")
            """,
            sourceLocation: sourceLocation)
    }
}

/// Checks a call against the reference: output always, log-sum-exp too.
func expectMatchesReference(
    query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask = .unmasked, scale: Float? = nil,
    dropout: Dropout? = nil, maskedRows: MaskedRowPolicy = .zero, threads: Int? = nil,
    algorithm: AttentionAlgorithm = .fused, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let expected = referenceAttention(
        query: query, key: key, value: value, mask: mask, scale: scale, dropout: dropout, maskedRows: maskedRows)
    let result = try scaledDotProductAttentionWithLogSumExp(
        query: query, key: key, value: value, mask: mask, scale: scale, dropout: dropout,
        maskedRows: maskedRows, threads: threads, algorithm: algorithm)
    let outputShape = Array(query.shape.dropLast()) + [value.shape.last!]
    let note = "\(algorithm) q \(query.shape) k \(key.shape) v \(value.shape) \(comment?.rawValue ?? "")"
    expectClose(result.output, expected.output, shape: outputShape, Comment(rawValue: "output, " + note),
                sourceLocation: sourceLocation)
    expectClose(result.logSumExp, expected.logSumExp, shape: Array(query.shape.dropLast()),
                Comment(rawValue: "logSumExp, " + note), sourceLocation: sourceLocation)
    // The plain entry point returns the same output.
    let plain = try scaledDotProductAttention(
        query: query, key: key, value: value, mask: mask, scale: scale, dropout: dropout,
        maskedRows: maskedRows, threads: threads, algorithm: algorithm)
    #expect(plain.shape == result.output.shape, sourceLocation: sourceLocation)
    #expect(plain.scalars.elementsEqualTreatingNaNAsEqual(result.output.scalars), sourceLocation: sourceLocation)
}

extension Array where Element == Float {
    /// Bitwise-style equality in which NaN equals NaN.
    func elementsEqualTreatingNaNAsEqual(_ other: [Float]) -> Bool {
        count == other.count && zip(self, other).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
    }
}

// MARK: - Inputs

/// Random query, key and value for a problem.
struct Problem: CustomTestStringConvertible, Sendable {
    var batch = 1, headsQ = 1, headsKV = 1, lengthQ = 1, lengthK = 1, dimQK = 1, dimV = 1
    /// 2, 3 or 4; ranks below 4 require batch (and for rank 2, heads) of 1.
    var rank = 4
    var seed: UInt64 = 0

    var queryShape: [Int] { Array([batch, headsQ, lengthQ, dimQK].suffix(rank)) }
    var keyShape: [Int] { Array([batch, headsKV, lengthK, dimQK].suffix(rank)) }
    var valueShape: [Int] { Array([batch, headsKV, lengthK, dimV].suffix(rank)) }

    func tensors() throws -> (query: Tensor, key: Tensor, value: Tensor) {
        var rng = SeededGenerator(seed: seed)
        return (
            try Tensor(randomNormal: queryShape, using: &rng),
            try Tensor(randomNormal: keyShape, using: &rng),
            try Tensor(randomNormal: valueShape, using: &rng)
        )
    }

    /// A random problem: any rank, odd and unit sizes, Lq != Lk, grouped heads.
    static func random(seed: UInt64) -> Problem {
        var rng = SeededGenerator(seed: seed &* 7919 &+ 17)
        var problem = Problem(seed: seed)
        problem.rank = Int.random(in: 2...4, using: &rng)
        problem.batch = problem.rank == 4 ? Int.random(in: 1...3, using: &rng) : 1
        problem.headsKV = problem.rank >= 3 ? Int.random(in: 1...3, using: &rng) : 1
        problem.headsQ = problem.headsKV * (problem.rank >= 3 ? Int.random(in: 1...3, using: &rng) : 1)
        problem.lengthQ = [1, 2, 3, 7, 16, 17, 33].randomElement(using: &rng)!
        problem.lengthK = [1, 2, 5, 16, 31, 64, 65].randomElement(using: &rng)!
        problem.dimQK = [1, 3, 8, 15, 16, 33, 64].randomElement(using: &rng)!
        problem.dimV = [1, 4, 7, 16, 24, 64].randomElement(using: &rng)!
        return problem
    }

    var testDescription: String {
        "q \(queryShape) k \(keyShape) v \(valueShape) seed \(seed)"
    }
}
