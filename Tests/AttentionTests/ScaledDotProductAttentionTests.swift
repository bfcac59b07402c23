import Testing
import Attention

/// Every test that runs the kernels or changes the backend's global settings lives under this
/// suite, which runs its tests one at a time: `AttentionBackend.setInstructionSet` and
/// `setThreadCount` must not run while other threads run kernels.
@Suite(.serialized)
struct KernelTests {}

extension KernelTests {
    @Suite("scaledDotProductAttention against the double-precision reference")
    struct ReferenceTests {
        @Test(arguments: 0..<24, AttentionAlgorithm.allCases)
        func randomShapes(seed: Int, algorithm: AttentionAlgorithm) throws {
            let problem = Problem.random(seed: UInt64(seed))
            let (q, k, v) = try problem.tensors()
            try expectMatchesReference(query: q, key: k, value: v, algorithm: algorithm, "\(problem.testDescription)")
        }

        @Test(arguments: [
            Problem(),  // everything 1
            Problem(lengthQ: 1, lengthK: 200, dimQK: 64, dimV: 64),  // decoding one token
            Problem(headsQ: 2, headsKV: 2, lengthQ: 130, lengthK: 1, dimQK: 5, dimV: 3),
            Problem(batch: 2, headsQ: 3, headsKV: 3, lengthQ: 65, lengthK: 129, dimQK: 128, dimV: 128),
            Problem(batch: 1, headsQ: 4, headsKV: 4, lengthQ: 37, lengthK: 37, dimQK: 80, dimV: 96),
            Problem(batch: 1, headsQ: 1, headsKV: 1, lengthQ: 3, lengthK: 300, dimQK: 200, dimV: 2),
        ])
        func edgeSizes(problem: Problem) throws {
            let (q, k, v) = try problem.tensors()
            for algorithm in AttentionAlgorithm.allCases {
                try expectMatchesReference(query: q, key: k, value: v, algorithm: algorithm)
            }
        }

        @Test(arguments: [(8, 4), (8, 2), (8, 1), (6, 3)])
        func groupedAndMultiQueryHeads(headsQ: Int, headsKV: Int) throws {
            let problem = Problem(
                batch: 2, headsQ: headsQ, headsKV: headsKV, lengthQ: 9, lengthK: 21, dimQK: 16, dimV: 8, seed: 3)
            let (q, k, v) = try problem.tensors()
            try expectMatchesReference(query: q, key: k, value: v, mask: AttentionMask(causal: .bottomRight))
            // Equals attention with key/value heads repeated to one per query head.
            let group = headsQ / headsKV
            func repeatHeads(_ t: Tensor) throws -> Tensor {
                let (b, l, d) = (t.shape[0], t.shape[2], t.shape[3])
                var scalars = [Float]()
                let source = t.scalars
                for bi in 0..<b {
                    for h in 0..<headsQ {
                        let base = ((bi * headsKV) + h / group) * l * d
                        scalars += source[base..<(base + l * d)]
                    }
                }
                return try Tensor(shape: [b, headsQ, l, d], scalars: scalars)
            }
            let grouped = try scaledDotProductAttention(
                query: q, key: k, value: v, mask: AttentionMask(causal: .bottomRight))
            let repeated = try scaledDotProductAttention(
                query: q, key: repeatHeads(k), value: repeatHeads(v), mask: AttentionMask(causal: .bottomRight))
            #expect(grouped == repeated)
        }

        @Test(arguments: AttentionMask.Causal.allCases, [(5, 5), (4, 11), (11, 4), (1, 9), (9, 1)])
        func causalAlignments(causal: AttentionMask.Causal, lengths: (q: Int, k: Int)) throws {
            let problem = Problem(
                batch: 2, headsQ: 2, headsKV: 1, lengthQ: lengths.q, lengthK: lengths.k, dimQK: 12, dimV: 10, seed: 11)
            let (q, k, v) = try problem.tensors()
            for policy in MaskedRowPolicy.allCases {
                for algorithm in AttentionAlgorithm.allCases {
                    try expectMatchesReference(
                        query: q, key: k, value: v, mask: AttentionMask(causal: causal), maskedRows: policy,
                        algorithm: algorithm, "causal \(causal) policy \(policy)")
                }
            }
        }

        @Test(arguments: [
            AttentionMask.Window(left: 0, right: 0), .init(left: 3, right: 0), .init(left: 2, right: 2),
            .init(left: nil, right: 1), .init(left: 4, right: nil), .init(left: 0, right: 5),
            .init(left: 100, right: 100),
        ])
        func slidingWindows(window: AttentionMask.Window) throws {
            for (lq, lk) in [(12, 12), (5, 17), (17, 5)] {
                let problem = Problem(
                    batch: 1, headsQ: 3, headsKV: 3, lengthQ: lq, lengthK: lk, dimQK: 8, dimV: 8, seed: 21)
                let (q, k, v) = try problem.tensors()
                for causal in AttentionMask.Causal.allCases {
                    for algorithm in AttentionAlgorithm.allCases {
                        try expectMatchesReference(
                            query: q, key: k, value: v, mask: AttentionMask(causal: causal, window: window),
                            maskedRows: .meanOfValues, algorithm: algorithm, "window \(window) causal \(causal)")
                    }
                }
            }
        }

        @Test func keyLengths() throws {
            let problem = Problem(batch: 4, headsQ: 2, headsKV: 2, lengthQ: 6, lengthK: 13, dimQK: 9, dimV: 5, seed: 8)
            let (q, k, v) = try problem.tensors()
            for lengths in [[13, 1, 7, 0], [0, 0, 0, 0], [13, 13, 13, 13]] {
                for policy in MaskedRowPolicy.allCases {
                    for algorithm in AttentionAlgorithm.allCases {
                        try expectMatchesReference(
                            query: q, key: k, value: v, mask: AttentionMask(keyLengths: lengths),
                            maskedRows: policy, algorithm: algorithm, "lengths \(lengths)")
                        try expectMatchesReference(
                            query: q, key: k, value: v, mask: AttentionMask(causal: .bottomRight, keyLengths: lengths),
                            maskedRows: policy, algorithm: algorithm, "causal, lengths \(lengths)")
                    }
                }
            }
        }

        /// Mask and bias shapes that broadcast to (B, Hq, Lq, Lk) = (2, 4, 5, 7).
        static let broadcastShapes: [[Int]] = [
            [2, 4, 5, 7], [5, 7], [7], [1, 7], [4, 1, 7], [2, 1, 1, 7], [2, 4, 5, 1], [4, 5, 7],
            [1, 1, 1, 1], [], [2, 1, 5, 7], [1, 4, 1, 1],
        ]

        @Test(arguments: broadcastShapes)
        func booleanMaskBroadcast(shape: [Int]) throws {
            let problem = Problem(batch: 2, headsQ: 4, headsKV: 2, lengthQ: 5, lengthK: 7, dimQK: 6, dimV: 3, seed: 4)
            let (q, k, v) = try problem.tensors()
            var rng = SeededGenerator(seed: UInt64(shape.reduce(1, *) + shape.count))
            let count = shape.reduce(1, *)
            // About a third masked, so some rows are fully masked.
            let values = (0..<count).map { _ in Int.random(in: 0..<3, using: &rng) != 0 }
            let mask = try BooleanMask(shape: shape, values: values)
            for policy in MaskedRowPolicy.allCases {
                for algorithm in AttentionAlgorithm.allCases {
                    try expectMatchesReference(
                        query: q, key: k, value: v, mask: AttentionMask(booleanMask: mask), maskedRows: policy,
                        algorithm: algorithm, "mask \(shape)")
                }
            }
        }

        @Test(arguments: broadcastShapes)
        func biasBroadcast(shape: [Int]) throws {
            let problem = Problem(batch: 2, headsQ: 4, headsKV: 1, lengthQ: 5, lengthK: 7, dimQK: 6, dimV: 3, seed: 5)
            let (q, k, v) = try problem.tensors()
            var rng = SeededGenerator(seed: UInt64(shape.reduce(1, *)))
            var bias = try Tensor(randomNormal: shape, standardDeviation: 2, using: &rng)
            // Some -infinity entries, which mask.
            bias.withUnsafeMutableBufferPointer { buffer in
                for i in buffer.indices where Int.random(in: 0..<4, using: &rng) == 0 { buffer[i] = -.infinity }
            }
            for algorithm in AttentionAlgorithm.allCases {
                try expectMatchesReference(
                    query: q, key: k, value: v, mask: AttentionMask(bias: bias), maskedRows: .nan,
                    algorithm: algorithm, "bias \(shape)")
            }
        }

        @Test func everyMechanismAtOnce() throws {
            let problem = Problem(batch: 3, headsQ: 4, headsKV: 2, lengthQ: 10, lengthK: 19, dimQK: 17, dimV: 11, seed: 77)
            let (q, k, v) = try problem.tensors()
            var rng = SeededGenerator(seed: 1)
            let mask = AttentionMask(
                causal: .bottomRight,
                window: .init(left: 6, right: 1),
                keyLengths: [19, 12, 3],
                booleanMask: try BooleanMask(shape: [4, 1, 19]) { _ in Int.random(in: 0..<5, using: &rng) != 0 },
                bias: try Tensor(randomNormal: [3, 1, 10, 19], using: &rng))
            for policy in MaskedRowPolicy.allCases {
                for algorithm in AttentionAlgorithm.allCases {
                    try expectMatchesReference(
                        query: q, key: k, value: v, mask: mask, scale: 0.3,
                        dropout: Dropout(probability: 0.25, seed: 99, offset: 5), maskedRows: policy,
                        algorithm: algorithm)
                }
            }
        }

        @Test(arguments: [Float(1), 0.05, -0.5, 3])
        func explicitScale(scale: Float) throws {
            let (q, k, v) = try Problem(batch: 1, headsQ: 2, headsKV: 2, lengthQ: 7, lengthK: 9, dimQK: 16, dimV: 16, seed: 2).tensors()
            try expectMatchesReference(query: q, key: k, value: v, scale: scale)
        }

        @Test func fullyMaskedRowsUnderEachPolicy() throws {
            // Query rows 0 and 2 see no key (boolean mask); row 1 sees keys 0 and 3.
            let (q, k, v) = try Problem(headsQ: 2, headsKV: 2, lengthQ: 3, lengthK: 4, dimQK: 5, dimV: 6, rank: 3, seed: 9).tensors()
            let visible = try BooleanMask(shape: [3, 4]) { $0[0] == 1 && ($0[1] == 0 || $0[1] == 3) }
            let mask = AttentionMask(booleanMask: visible)
            for algorithm in AttentionAlgorithm.allCases {
                let zero = try scaledDotProductAttentionWithLogSumExp(
                    query: q, key: k, value: v, mask: mask, maskedRows: .zero, algorithm: algorithm)
                let nan = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, maskedRows: .nan, algorithm: algorithm)
                let mean = try scaledDotProductAttention(
                    query: q, key: k, value: v, mask: mask, maskedRows: .meanOfValues, algorithm: algorithm)
                for h in 0..<2 {
                    for i in [0, 2] {
                        #expect(zero.logSumExp[h, i] == -.infinity)
                        for c in 0..<6 {
                            #expect(zero.output[h, i, c] == 0)
                            #expect(nan[h, i, c].isNaN)
                            let expected = (0..<4).map { Double(v[h, $0, c]) }.reduce(0, +) / 4
                            #expect(abs(Double(mean[h, i, c]) - expected) <= 1e-5 * max(1, abs(expected)))
                        }
                    }
                    #expect(zero.logSumExp[h, 1].isFinite)
                    for c in 0..<6 {
                        #expect(zero.output[h, 1, c] == nan[h, 1, c])
                        #expect(zero.output[h, 1, c] == mean[h, 1, c])
                    }
                }
                for policy in MaskedRowPolicy.allCases {
                    try expectMatchesReference(
                        query: q, key: k, value: v, mask: mask, dropout: Dropout(probability: 0.5, seed: 3),
                        maskedRows: policy, algorithm: algorithm)
                }
            }
        }

        @Test func lowerRanksAreBatchAndHeadOfOne() throws {
            let (q, k, v) = try Problem(headsQ: 3, headsKV: 3, lengthQ: 6, lengthK: 8, dimQK: 4, dimV: 5, rank: 3, seed: 12).tensors()
            let rank3 = try scaledDotProductAttention(query: q, key: k, value: v, mask: AttentionMask(causal: .topLeft))
            let rank4 = try scaledDotProductAttention(
                query: q.reshaped([1, 3, 6, 4]), key: k.reshaped([1, 3, 8, 4]), value: v.reshaped([1, 3, 8, 5]),
                mask: AttentionMask(causal: .topLeft))
            #expect(rank3.shape == [3, 6, 5])
            #expect(try rank3 == rank4.reshaped([3, 6, 5]))

            let q2 = try Tensor(shape: [6, 4], scalars: Array(q.scalars[0..<24]))
            let k2 = try Tensor(shape: [8, 4], scalars: Array(k.scalars[0..<32]))
            let v2 = try Tensor(shape: [8, 5], scalars: Array(v.scalars[0..<40]))
            let rank2 = try scaledDotProductAttentionWithLogSumExp(query: q2, key: k2, value: v2, mask: AttentionMask(causal: .topLeft))
            #expect(rank2.output.shape == [6, 5])
            #expect(rank2.logSumExp.shape == [6])
            #expect(rank2.output.scalars == Array(rank3.scalars[0..<30]))
        }

        @Test func maskConveniences() {
            #expect(AttentionMask.causal(.bottomRight) == AttentionMask(causal: .bottomRight))
            #expect(AttentionMask.unmasked == AttentionMask(causal: .none, window: .unbounded))
            #expect(AttentionMask.Window.unbounded == .init(left: nil, right: nil))
        }

        @Test func selfAttentionWithOneTensor() throws {
            var rng = SeededGenerator(seed: 31)
            let x = try Tensor(randomNormal: [2, 2, 9, 8], using: &rng)
            try expectMatchesReference(query: x, key: x, value: x, mask: AttentionMask(causal: .topLeft))
        }

        @Test func threadCountsGiveIdenticalResults() throws {
            let problem = Problem(batch: 2, headsQ: 4, headsKV: 2, lengthQ: 70, lengthK: 90, dimQK: 32, dimV: 24, seed: 13)
            let (q, k, v) = try problem.tensors()
            let dropout = Dropout(probability: 0.2, seed: 8)
            for algorithm in AttentionAlgorithm.allCases {
                let one = try scaledDotProductAttention(
                    query: q, key: k, value: v, mask: AttentionMask(causal: .topLeft), dropout: dropout, threads: 1,
                    algorithm: algorithm)
                for threads in [2, 3, 7] {
                    let many = try scaledDotProductAttention(
                        query: q, key: k, value: v, mask: AttentionMask(causal: .topLeft), dropout: dropout,
                        threads: threads, algorithm: algorithm)
                    #expect(many == one, "\(algorithm), \(threads) threads")
                }
                try expectMatchesReference(
                    query: q, key: k, value: v, mask: AttentionMask(causal: .topLeft), dropout: dropout, threads: 2,
                    algorithm: algorithm)
            }
        }
    }

    @Suite("Dropout")
    struct DropoutTests {
        @Test func deterministicAndMatchesTheReference() throws {
            let (q, k, v) = try Problem(batch: 2, headsQ: 2, headsKV: 1, lengthQ: 11, lengthK: 23, dimQK: 8, dimV: 8, seed: 40).tensors()
            let dropout = Dropout(probability: 0.3, seed: 1234)
            let first = try scaledDotProductAttention(query: q, key: k, value: v, dropout: dropout)
            let second = try scaledDotProductAttention(query: q, key: k, value: v, dropout: dropout)
            #expect(first == second)
            let unfused = try scaledDotProductAttention(query: q, key: k, value: v, dropout: dropout, algorithm: .unfused)
            expectClose(unfused, first.scalars.map(Double.init), shape: first.shape, "fused vs unfused")
            let otherSeed = try scaledDotProductAttention(
                query: q, key: k, value: v, dropout: Dropout(probability: 0.3, seed: 1235))
            #expect(otherSeed != first)
            for algorithm in AttentionAlgorithm.allCases {
                try expectMatchesReference(query: q, key: k, value: v, dropout: dropout, algorithm: algorithm)
            }
            // Probability 0 is no dropout.
            #expect(try scaledDotProductAttention(query: q, key: k, value: v, dropout: Dropout(probability: 0, seed: 5))
                == scaledDotProductAttention(query: q, key: k, value: v))
        }

        /// With all-zero queries every weight is 1/Lk, and with values of one each output element
        /// is (kept keys / Lk) / (1 - p): the kept fraction, scaled.
        @Test(arguments: [Float(0.1), 0.5, 0.9])
        func keptFraction(probability: Float) throws {
            let (lq, lk) = (64, 512)
            let q = try Tensor(zeros: [2, 4, lq, 16])
            let k = try Tensor(ones: [2, 4, lk, 16])
            let v = try Tensor(ones: [2, 4, lk, 1])
            let out = try scaledDotProductAttention(
                query: q, key: k, value: v, dropout: Dropout(probability: probability, seed: 77))
            let kept = out.scalars.map { Double($0) * Double(1 - probability) }
            let fraction = kept.reduce(0, +) / Double(kept.count)
            // 262 144 Bernoulli draws: the standard error is below 0.001.
            #expect(abs(fraction - Double(1 - probability)) < 0.005)
            // Each row's kept count is an integer.
            for x in kept.prefix(64) {
                let count = x * Double(lk)
                #expect(abs(count - count.rounded()) < 1e-5 * Double(lk))
            }
        }

        /// The counter of weight (b, h, i, j) is offset + ((b·Hq + h)·Lq + i)·Lk + j, so shifting
        /// the offset by Lk shifts the dropout pattern by one query row.
        @Test func offsetSelectsTheCounter() throws {
            let (lq, lk) = (8, 40)
            let q = try Tensor(zeros: [lq, 4])
            let k = try Tensor(ones: [lk, 4])
            let v = try Tensor(shape: [lk, 1], scalars: (0..<lk).map(Float.init))
            let base = try scaledDotProductAttention(query: q, key: k, value: v, dropout: Dropout(probability: 0.5, seed: 3))
            let shifted = try scaledDotProductAttention(
                query: q, key: k, value: v, dropout: Dropout(probability: 0.5, seed: 3, offset: UInt64(lk)))
            #expect(Array(shifted.scalars.dropLast()) == Array(base.scalars.dropFirst()))
        }
    }
}
