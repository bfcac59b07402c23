import Testing
import Attention

/// Swaps the length and head axes of a rank-3 or rank-4 tensor: (…, H, L, D) <-> (…, L, H, D).
private func swapLengthAndHeads(_ t: Tensor) throws -> Tensor {
    let rank = t.rank
    let (a, b, d) = (t.shape[rank - 3], t.shape[rank - 2], t.shape[rank - 1])
    let outer = t.count / (a * b * d)
    let source = t.scalars
    var scalars = [Float](repeating: 0, count: t.count)
    for o in 0..<outer {
        for i in 0..<a {
            for j in 0..<b {
                for c in 0..<d {
                    scalars[((o * b + j) * a + i) * d + c] = source[((o * a + i) * b + j) * d + c]
                }
            }
        }
    }
    var shape = t.shape
    shape.swapAt(rank - 3, rank - 2)
    return try Tensor(shape: shape, scalars: scalars)
}

extension KernelTests {
    @Suite("AttentionLayout")
    struct LayoutTests {
        /// The sequence-first layout gives the heads-first result with its axes swapped, for both
        /// algorithms, with grouped heads, Lq != Lk and a broadcast mask; and the same log-sum-exp.
        @Test(arguments: AttentionAlgorithm.allCases, [3, 4])
        func sequenceFirstEqualsHeadsFirst(algorithm: AttentionAlgorithm, rank: Int) throws {
            let problem = Problem(
                batch: rank == 4 ? 2 : 1, headsQ: 4, headsKV: 2, lengthQ: 7, lengthK: 11, dimQK: 8, dimV: 5,
                rank: rank, seed: 11)
            let (q, k, v) = try problem.tensors()
            let mask = AttentionMask(causal: .bottomRight, keyLengths: rank == 4 ? [11, 6] : nil)
            let expected = try scaledDotProductAttentionWithLogSumExp(
                query: q, key: k, value: v, mask: mask, algorithm: algorithm)
            let actual = try scaledDotProductAttentionWithLogSumExp(
                query: swapLengthAndHeads(q), key: swapLengthAndHeads(k), value: swapLengthAndHeads(v),
                mask: mask, algorithm: algorithm, layout: .sequence)
            #expect(actual.output == (try swapLengthAndHeads(expected.output)))
            #expect(actual.logSumExp == expected.logSumExp)
        }

        @Test func sequenceFirstShapesAreCheckedInThatOrder() throws {
            let q = try Tensor(zeros: [1, 5, 4, 8])   // (B, L, H, D)
            let k = try Tensor(zeros: [1, 6, 3, 8])   // 3 key heads do not divide 4
            #expect(throws: AttentionError.self) {
                try scaledDotProductAttention(query: q, key: k, value: k, layout: .sequence)
            }
        }
    }
}
