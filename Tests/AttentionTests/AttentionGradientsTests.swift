import Testing

@testable import Attention

/// The gradients of sum(out ∘ dOut) in double, derived by hand from the reference forward's
/// weights P (no dropout): dV = Pᵀ dOut, dP = dOut Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP)),
/// dQ = scale dS K, dK = scale dSᵀ Q, and the bias's gradient dS summed over its broadcast
/// dimensions. Heads first, any rank.
private func referenceGradients(
    query: Tensor, key: Tensor, value: Tensor, outputGradient: Tensor, mask: AttentionMask = .unmasked,
    scale: Float? = nil, maskedRows: MaskedRowPolicy = .zero
) -> (query: [Double], key: [Double], value: [Double], bias: [Double]?, biasMagnitude: [Double]?) {
    let forward = referenceAttention(query: query, key: key, value: value, mask: mask, scale: scale, maskedRows: maskedRows)
    let q4 = logical4D(query.shape), k4 = logical4D(key.shape), v4 = logical4D(value.shape)
    let (batch, headsQ, lengthQ, dimQK) = (q4[0], q4[1], q4[2], q4[3])
    let (headsKV, lengthK, dimV) = (k4[1], k4[2], v4[3])
    let group = headsQ / headsKV
    let q = query.scalars.map(Double.init), k = key.scalars.map(Double.init), v = value.scalars.map(Double.init)
    let dOut = outputGradient.scalars.map(Double.init)
    let s = scale.map(Double.init) ?? 1 / Double(dimQK).squareRoot()
    var dq = [Double](repeating: 0, count: q.count), dk = [Double](repeating: 0, count: k.count)
    var dv = [Double](repeating: 0, count: v.count)
    var dbias = mask.bias.map { [Double](repeating: 0, count: $0.count) }, magnitude = dbias
    for b in 0..<batch {
        for h in 0..<headsQ {
            let kv = h / group
            for i in 0..<lengthQ {
                let row = (b * headsQ + h) * lengthQ + i
                if forward.fullyMasked[row] && maskedRows == .zero { continue }
                let p = (0..<lengthK).map { forward.weights[row * lengthK + $0] }
                let dp = (0..<lengthK).map { j in
                    (0..<dimV).reduce(0.0) { $0 + dOut[row * dimV + $1] * v[((b * headsKV + kv) * lengthK + j) * dimV + $1] }
                }
                let d = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                for j in 0..<lengthK where p[j] != 0 {
                    let kRow = ((b * headsKV + kv) * lengthK + j)
                    for c in 0..<dimV { dv[kRow * dimV + c] += p[j] * dOut[row * dimV + c] }
                    // A masked row's uniform weights are constant scores: no score gradient.
                    if forward.fullyMasked[row] { continue }
                    let ds = p[j] * (dp[j] - d)
                    for c in 0..<dimQK {
                        dq[row * dimQK + c] += s * ds * k[kRow * dimQK + c]
                        dk[kRow * dimQK + c] += s * ds * q[row * dimQK + c]
                    }
                    if let shape = mask.bias?.shape {
                        dbias![broadcastOffset(shape, [b, h, i, j])] += ds
                        magnitude![broadcastOffset(shape, [b, h, i, j])] += abs(ds)
                    }
                }
            }
        }
    }
    return (dq, dk, dv, dbias, magnitude)
}

extension KernelTests {
    @Suite("Scaled dot-product attention gradients")
    struct AttentionGradientsTests {
        private static func random(_ shape: [Int], _ rng: inout SeededGenerator) throws -> Tensor {
            try Tensor(randomNormal: shape, using: &rng)
        }

        private static func expectMatchesReference(
            query: Tensor, key: Tensor, value: Tensor, outputGradient: Tensor, mask: AttentionMask = .unmasked,
            scale: Float? = nil, maskedRows: MaskedRowPolicy = .zero, _ comment: Comment
        ) throws {
            let want = referenceGradients(
                query: query, key: key, value: value, outputGradient: outputGradient, mask: mask, scale: scale,
                maskedRows: maskedRows)
            for algorithm in AttentionAlgorithm.allCases {
                let got = try scaledDotProductAttentionGradients(
                    query: query, key: key, value: value, outputGradient: outputGradient, mask: mask, scale: scale,
                    maskedRows: maskedRows, algorithm: algorithm)
                let note = "\(comment.rawValue), \(algorithm)"
                expectClose(got.query, want.query, shape: query.shape, rtol: 1e-4, atol: 1e-5, "dq, \(note)")
                expectClose(got.key, want.key, shape: key.shape, rtol: 1e-4, atol: 1e-5, "dk, \(note)")
                expectClose(got.value, want.value, shape: value.shape, rtol: 1e-4, atol: 1e-5, "dv, \(note)")
                #expect((got.bias == nil) == (want.bias == nil), "bias gradient present, \(note)")
                if let bias = got.bias, let expected = want.bias, let magnitude = want.biasMagnitude {
                    // A folded element is a sum of dS that may cancel (a scalar bias's is 0): its
                    // tolerance is relative to the sum of |dS| folded onto it.
                    #expect(bias.shape == mask.bias?.shape, "dbias shape, \(note)")
                    for (index, (a, e)) in zip(bias.scalars, expected).enumerated() {
                        #expect(abs(Double(a) - e) <= 1e-5 * max(1, magnitude[index]), "dbias[\(index)] \(a) vs \(e), \(note)")
                    }
                }
            }
        }

        @Test("match a double-precision gradient: causal, windows, GQA, Lq != Lk, masks, odd sizes")
        func matchReference() throws {
            var rng = SeededGenerator(seed: 21)
            let q = try Self.random([2, 4, 9, 5], &rng), k = try Self.random([2, 2, 13, 5], &rng)
            let v = try Self.random([2, 2, 13, 3], &rng), dOut = try Self.random([2, 4, 9, 3], &rng)
            try Self.expectMatchesReference(query: q, key: k, value: v, outputGradient: dOut, "unmasked GQA")
            for causal in [AttentionMask.Causal.topLeft, .bottomRight] {
                try Self.expectMatchesReference(
                    query: q, key: k, value: v, outputGradient: dOut, mask: AttentionMask(causal: causal), "\(causal)")
            }
            try Self.expectMatchesReference(
                query: q, key: k, value: v, outputGradient: dOut,
                mask: AttentionMask(causal: .bottomRight, window: .init(left: 3), keyLengths: [13, 6]), scale: 0.7,
                "window, key lengths, scale")
            let allowed = try BooleanMask(shape: [9, 13]) { ($0[0] + 2 * $0[1]) % 5 != 0 }
            try Self.expectMatchesReference(
                query: q, key: k, value: v, outputGradient: dOut, mask: AttentionMask(booleanMask: allowed), "boolean mask")
            let q1 = try Self.random([1, 3], &rng), k1 = try Self.random([1, 3], &rng), v1 = try Self.random([1, 2], &rng)
            try Self.expectMatchesReference(
                query: q1, key: k1, value: v1, outputGradient: try Self.random([1, 2], &rng), "length 1, rank 2")
        }

        @Test("the bias's gradient is summed over its broadcast dimensions", arguments: [[9, 13], [4, 1, 13], [2, 4, 9, 13], [1]])
        func biasGradient(biasShape: [Int]) throws {
            var rng = SeededGenerator(seed: 22)
            let q = try Self.random([2, 4, 9, 8], &rng), k = try Self.random([2, 4, 13, 8], &rng)
            let v = try Self.random([2, 4, 13, 6], &rng), dOut = try Self.random([2, 4, 9, 6], &rng)
            let bias = try Self.random(biasShape, &rng)
            try Self.expectMatchesReference(
                query: q, key: k, value: v, outputGradient: dOut, mask: AttentionMask(causal: .topLeft, bias: bias),
                "bias \(biasShape)")
        }

        @Test("masked rows: zeros contribute nothing, the mean reaches only the value")
        func maskedRows() throws {
            var rng = SeededGenerator(seed: 23)
            let q = try Self.random([1, 2, 6, 4], &rng), k = try Self.random([1, 1, 5, 4], &rng)
            let v = try Self.random([1, 1, 5, 4], &rng), dOut = try Self.random([1, 2, 6, 4], &rng)
            // Top-left causal with a window of 0 to the left and key length 3: rows past key 2 see nothing.
            let mask = AttentionMask(causal: .topLeft, window: .init(left: 0), keyLengths: [3])
            for policy in [MaskedRowPolicy.zero, .meanOfValues] {
                try Self.expectMatchesReference(
                    query: q, key: k, value: v, outputGradient: dOut, mask: mask, maskedRows: policy, "\(policy)")
            }
        }

        @Test("the forward's output can be reused, in either layout, and threads do not change the bits")
        func reusedForwardAndLayouts() throws {
            var rng = SeededGenerator(seed: 24)
            let q = try Self.random([2, 70, 3, 16], &rng), k = try Self.random([2, 90, 3, 16], &rng)
            let v = try Self.random([2, 90, 3, 16], &rng), dOut = try Self.random([2, 70, 3, 16], &rng)
            let mask = AttentionMask(causal: .bottomRight)
            let forward = try scaledDotProductAttentionWithLogSumExp(query: q, key: k, value: v, mask: mask, layout: .sequence)
            let once = try scaledDotProductAttentionGradients(
                query: q, key: k, value: v, outputGradient: dOut, mask: mask, threads: 1, layout: .sequence)
            for threads in 1...AttentionBackend.maximumThreadCount {
                let reused = try scaledDotProductAttentionGradients(
                    query: q, key: k, value: v, forward: forward, outputGradient: dOut, mask: mask, threads: threads,
                    layout: .sequence)
                #expect(reused == once, "\(threads) threads")
            }
            // The sequence layout is the heads layout transposed.
            func heads(_ t: Tensor) throws -> Tensor { try t.permuted([0, 2, 1, 3]) }
            let headsFirst = try scaledDotProductAttentionGradients(
                query: heads(q), key: heads(k), value: heads(v), outputGradient: heads(dOut), mask: mask)
            #expect(try heads(once.query) == headsFirst.query)
            #expect(try heads(once.key) == headsFirst.key)
            #expect(try heads(once.value) == headsFirst.value)
        }

        @Test("dropout: the fused and unfused backward agree, and dropped weights carry no gradient")
        func dropout() throws {
            var rng = SeededGenerator(seed: 25)
            let q = try Self.random([1, 2, 33, 8], &rng), k = try Self.random([1, 2, 40, 8], &rng)
            let v = try Self.random([1, 2, 40, 8], &rng), dOut = try Self.random([1, 2, 33, 8], &rng)
            let drop = Dropout(probability: 0.3, seed: 7)
            let fused = try scaledDotProductAttentionGradients(query: q, key: k, value: v, outputGradient: dOut, dropout: drop)
            let unfused = try scaledDotProductAttentionGradients(
                query: q, key: k, value: v, outputGradient: dOut, dropout: drop, algorithm: .unfused)
            for (a, b, name) in [(fused.query, unfused.query, "dq"), (fused.key, unfused.key, "dk"), (fused.value, unfused.value, "dv")] {
                expectClose(a, b.scalars.map(Double.init), shape: b.shape, rtol: 1e-4, atol: 1e-5, "\(name)")
            }
            let plain = try scaledDotProductAttentionGradients(query: q, key: k, value: v, outputGradient: dOut)
            #expect(fused.value != plain.value, "dropout changed nothing")
        }

        @Test("empty shapes give zeros or empty gradients")
        func emptyShapes() throws {
            let q = try Tensor(zeros: [1, 2, 4, 3]), k = try Tensor(zeros: [1, 2, 0, 3]), v = try Tensor(zeros: [1, 2, 0, 5])
            let grads = try scaledDotProductAttentionGradients(
                query: q, key: k, value: v, outputGradient: try Tensor(zeros: [1, 2, 4, 5]))
            #expect(grads.query.shape == [1, 2, 4, 3] && grads.query.scalars.allSatisfy { $0 == 0 })
            #expect(grads.key.shape == [1, 2, 0, 3] && grads.value.shape == [1, 2, 0, 5])
            let none = try scaledDotProductAttentionGradients(
                query: try Tensor(zeros: [0, 2, 4, 3]), key: try Tensor(zeros: [0, 2, 6, 3]), value: try Tensor(zeros: [0, 2, 6, 5]),
                outputGradient: try Tensor(zeros: [0, 2, 4, 5]))
            #expect(none.key.shape == [0, 2, 6, 3])
        }

        @Test("bad input: the output gradient's shape and dtype, half-precision inputs, a mismatched forward")
        func errors() throws {
            var rng = SeededGenerator(seed: 26)
            let q = try Self.random([2, 5, 4], &rng), k = try Self.random([2, 7, 4], &rng), v = try Self.random([2, 7, 3], &rng)
            #expect(throws: AttentionError.shapeMismatch(
                argument: "outputGradient", expected: "[2, 5, 3], the output's shape for query [2, 5, 4], key [2, 7, 4], value [2, 7, 3]",
                actual: [2, 5, 4])) {
                try scaledDotProductAttentionGradients(query: q, key: k, value: v, outputGradient: try Tensor(zeros: [2, 5, 4]))
            }
            let dOut = try Self.random([2, 5, 3], &rng)
            do {
                _ = try scaledDotProductAttentionGradients(
                    query: try q.converted(to: .bfloat16), key: k, value: v, outputGradient: dOut)
                Issue.record("a bf16 query was accepted")
            } catch let AttentionError.unsupportedDType(argument, dtype, _) {
                #expect(argument == "query" && dtype == .bfloat16)
            }
            do {
                _ = try scaledDotProductAttentionGradients(
                    query: q, key: k, value: v, outputGradient: try dOut.converted(to: .float16))
                Issue.record("a float16 output gradient was accepted")
            } catch let AttentionError.unsupportedDType(argument, _, _) {
                #expect(argument == "outputGradient")
            }
            let forward = try scaledDotProductAttentionWithLogSumExp(query: q, key: k, value: v)
            let wrong = AttentionOutput(output: forward.output, logSumExp: try Tensor(zeros: [2, 4]))
            do {
                _ = try scaledDotProductAttentionGradients(query: q, key: k, value: v, forward: wrong, outputGradient: dOut)
                Issue.record("a log-sum-exp of the wrong shape was accepted")
            } catch let AttentionError.shapeMismatch(argument, _, actual) {
                #expect(argument == "forward.logSumExp" && actual == [2, 4])
            }
            // The forward's own checks still name their argument.
            #expect(throws: AttentionError.self) {
                try scaledDotProductAttentionGradients(query: q, key: k, value: v, outputGradient: dOut, scale: .nan)
            }
        }
    }
}
