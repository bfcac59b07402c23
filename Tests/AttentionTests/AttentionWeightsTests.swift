import Testing
@testable import Attention

extension KernelTests {
    /// The one attention-weights routine behind every module's returned weights, against the
    /// double-precision reference: random shapes (ranks, grouped heads, Lq != Lk, length 1), every
    /// mask kind, the masked-row policies and dropout.
    @Suite("attentionWeights against the double-precision reference")
    struct AttentionWeightsTests {
        /// The masks one problem is tried with, for query length `lq` and key length `lk`.
        static func masks(batch: Int, heads: Int, lq: Int, lk: Int, seed: UInt64) throws -> [(String, AttentionMask)] {
            var rng = SeededGenerator(seed: seed)
            let flags = try BooleanMask(shape: [batch, 1, lq, lk]) { _ in Bool.random(using: &rng) }
            let bias = try Tensor(randomNormal: [heads, 1, lk], using: &rng)
            return [
                ("none", .unmasked), ("top-left", AttentionMask(causal: .topLeft)),
                ("bottom-right", AttentionMask(causal: .bottomRight)),
                ("window", AttentionMask(window: .init(left: 2, right: 1))),
                ("key lengths", AttentionMask(keyLengths: (0..<batch).map { $0 % 2 == 0 ? lk : max(0, lk - 3) })),
                ("boolean", AttentionMask(booleanMask: flags)), ("bias", AttentionMask(bias: bias)),
                ("causal, boolean and bias", AttentionMask(causal: .topLeft, booleanMask: flags, bias: bias)),
            ]
        }

        @Test(arguments: 0..<12, [MaskedRowPolicy.nan, .zero, .meanOfValues])
        func matchesTheReference(seed: Int, maskedRows: MaskedRowPolicy) throws {
            var problem = Problem.random(seed: UInt64(seed) + 300)
            problem.rank = 4
            let (q, k, v) = try problem.tensors()
            let (b, hq, lq, lk) = (problem.batch, problem.headsQ, problem.lengthQ, problem.lengthK)
            for (name, mask) in try Self.masks(batch: b, heads: hq, lq: lq, lk: lk, seed: UInt64(seed)) {
                for dropout in [nil, Dropout(probability: 0.3, seed: UInt64(seed), offset: 5)] {
                    let heads = try AttentionProblem(
                        query: q, key: k, value: v, mask: mask, scale: nil, dropout: dropout, maskedRows: maskedRows,
                        threads: nil)
                    let weights = try attentionWeights(
                        query: heads.call.query, key: heads.call.key, mask: heads.call.mask,
                        scale: 1 / Float(problem.dimQK).squareRoot(), maskedRows: maskedRows, dropout: dropout)
                    let expected = referenceAttention(
                        query: q, key: k, value: v, mask: mask, dropout: dropout, maskedRows: maskedRows).weights
                    expectClose(weights, expected, shape: [b, hq, lq, lk], rtol: 1e-5, atol: 1e-6,
                                "\(problem.testDescription), \(name) mask, dropout \(dropout != nil), \(maskedRows)")
                }
            }
        }
    }
}
