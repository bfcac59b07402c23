import Foundation
import Testing
@testable import Attention

/// attn.h's tolerance for an output of `dtype`, relative to `max(1, max |out|)`, against the exact
/// attention of the inputs as stored.
func attentionTolerance(_ dtype: Tensor.DType) -> Double {
    switch dtype {
    case .float32: 1e-5
    case .float16: 5e-4
    case .bfloat16: 4e-3
    }
}

/// attn.h's addition when query, key and value are all bfloat16: on CPUs with AVX512_BF16 the
/// fused kernel rounds the softmax weights to bfloat16 for P·V (VDPBF16PS), which moves each output
/// element by at most 2^-9 · max |value| (finite values); 0 for any other combination.
func bfloat16DotAllowance(query: Tensor, key: Tensor, value: Tensor) -> Double {
    guard query.dtype == .bfloat16, key.dtype == .bfloat16, value.dtype == .bfloat16 else { return 0 }
    return 0x1p-9 * Double((try? value.converted(to: .float32).scalars)?.filter(\.isFinite).map(abs).max() ?? 0)
}

/// Checks every element: NaN where NaN is expected, otherwise `|a - e| <= tol · max(1, max |e|)`.
func expectWithinAttentionTolerance(
    _ actual: Tensor, _ expected: [Double], shape: [Int], dtype: Tensor.DType, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.shape == shape && actual.dtype == dtype, comment, sourceLocation: sourceLocation)
    let values = actual.scalars
    guard values.count == expected.count else {
        Issue.record("\(values.count) elements, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    let bound = attentionTolerance(dtype) * max(1, expected.filter(\.isFinite).map(abs).max() ?? 0)
    var worst = 0.0
    for (a, e) in zip(values, expected) {
        let difference = e.isNaN ? (a.isNaN ? 0 : .infinity) : (a.isNaN ? .infinity : abs(Double(a) - e))
        worst = max(worst, difference)
    }
    #expect(worst <= bound, "largest |diff| \(worst) > \(bound). \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
}

/// Under KernelTests: these run the kernels (attention, matrix multiply, attn_convert), which
/// must not overlap a test that switches the instruction set.
extension KernelTests {
    @Suite("Attention in half precision")
    struct ScaledDotProductAttentionHalfTests {
        static let dtypes = Tensor.DType.allCases

        /// Every combination of query, key, value and output dtypes, against the double reference
        /// computed from the inputs as stored (rounded).
        @Test(arguments: dtypes, dtypes)
        func everyCombinationOfDTypes(queryType: Tensor.DType, keyValueType: Tensor.DType) throws {
            for (seed, valueType) in zip([3, 4, 5] as [UInt64], Self.dtypes) {
                let problem = Problem.random(seed: seed &+ 40)
                let (q, k, v) = try problem.tensors()
                let query = try q.converted(to: queryType), key = try k.converted(to: keyValueType)
                let value = try v.converted(to: valueType)
                let expected = referenceAttention(query: query, key: key, value: value, mask: .causal(.bottomRight))
                for outputType in Self.dtypes + [nil] {
                    for algorithm in AttentionAlgorithm.allCases {
                        let result = try scaledDotProductAttentionWithLogSumExp(
                            query: query, key: key, value: value, mask: .causal(.bottomRight), algorithm: algorithm,
                            outputDType: outputType)
                        let note = Comment(rawValue: "q \(queryType) k \(keyValueType) v \(valueType) out \(String(describing: outputType)) \(algorithm) \(problem.testDescription)")
                        expectWithinAttentionTolerance(
                            result.output, expected.output, shape: Array(q.shape.dropLast()) + [v.shape.last!],
                            dtype: outputType ?? queryType, note)
                        #expect(result.logSumExp.dtype == .float32)
                        expectClose(result.logSumExp, expected.logSumExp, shape: Array(q.shape.dropLast()), note)
                    }
                }
            }
        }

        /// Every instruction set this CPU runs (AVX-512, AVX2, scalar here): half-precision
        /// attention (prefill and single-query decode shapes), half-weight matrix multiplies on both
        /// paths, and the conversions, each against its reference.
        @Test func everySupportedInstructionSet() throws {
            let original = AttentionBackend.instructionSet
            defer { try? AttentionBackend.setInstructionSet(original) }
            let prefill = Problem(batch: 2, headsQ: 4, headsKV: 2, lengthQ: 37, lengthK: 53, dimQK: 40, dimV: 24, seed: 56)
            let decode = Problem(batch: 1, headsQ: 4, headsKV: 1, lengthQ: 1, lengthK: 300, dimQK: 64, dimV: 64, seed: 57)
            let combinations: [(Tensor.DType, Tensor.DType, Tensor.DType?)] = [
                (.float32, .bfloat16, nil), (.bfloat16, .bfloat16, nil), (.float16, .float16, .float32),
                (.float16, .bfloat16, .float16), (.float32, .float16, .bfloat16),
            ]
            var rng = SeededGenerator(seed: 58)
            let linear = try Linear(inputSize: 70, outputSize: 33, using: &rng)
            let inputs = [try Tensor(randomNormal: [3, 70], using: &rng), try Tensor(randomNormal: [45, 70], using: &rng)]
            let floats = trickyFloats(count: 3000, seed: 59)
            var tested = 0
            for isa in AttentionBackend.InstructionSet.allCases where AttentionBackend.isSupported(isa) {
                try AttentionBackend.setInstructionSet(isa)
                tested += 1
                for problem in [prefill, decode] {
                    let (q, k, v) = try problem.tensors()
                    for (queryType, keyValueType, outputType) in combinations {
                        let query = try q.converted(to: queryType), key = try k.converted(to: keyValueType)
                        let value = try v.converted(to: keyValueType)
                        let expected = referenceAttention(query: query, key: key, value: value, mask: .causal(.bottomRight))
                        for algorithm in AttentionAlgorithm.allCases {
                            let out = try scaledDotProductAttention(
                                query: query, key: key, value: value, mask: .causal(.bottomRight), algorithm: algorithm,
                                outputDType: outputType)
                            expectWithinAttentionTolerance(
                                out, expected.output, shape: Array(q.shape.dropLast()) + [v.shape.last!],
                                dtype: outputType ?? queryType,
                                "isa \(isa) \(algorithm) q \(queryType) kv \(keyValueType) \(problem.testDescription)")
                        }
                    }
                }
                for dtype in [Tensor.DType.float16, .bfloat16] {
                    let half = try linear.convertingWeights(to: dtype), widened = try half.convertingWeights(to: .float32)
                    for x in inputs {
                        let reference = try widened(x)
                        expectClose(try half(x), reference.scalars.map(Double.init), shape: reference.shape,
                                    "isa \(isa) \(dtype) rows \(x.shape[0])")
                    }
                    let narrowed = try Tensor(shape: [floats.count], scalars: floats).converted(to: dtype)
                    #expect(narrowed.bitPatterns == floats.map(dtype.bitPattern(from:)), "isa \(isa) \(dtype)")
                    let patterns = (0...UInt16.max).map { $0 }
                    let widenedPatterns = try Tensor(shape: [patterns.count], bitPatterns: patterns, dtype: dtype)
                        .converted(to: .float32).scalars.map(\.bitPattern)
                    #expect(widenedPatterns == patterns.map { dtype.value(ofBitPattern: $0).bitPattern }, "isa \(isa) \(dtype)")
                }
            }
            #expect(tested >= 2)
        }

        /// Every mask kind, both layouts, bfloat16 and float16 inputs.
        @Test(arguments: [Tensor.DType.float16, .bfloat16], AttentionLayout.allCases)
        func everyMaskKindAndLayout(dtype: Tensor.DType, layout: AttentionLayout) throws {
            let (b, h, hkv, lq, lk, d) = (2, 4, 2, 5, 11, 8)
            var rng = SeededGenerator(seed: 21)
            let q = try Tensor(randomNormal: [b, h, lq, d], dtype: dtype, using: &rng)
            let k = try Tensor(randomNormal: [b, hkv, lk, d], dtype: dtype, using: &rng)
            let v = try Tensor(randomNormal: [b, hkv, lk, d], dtype: dtype, using: &rng)
            let bias = try Tensor(randomNormal: [1, h, lq, lk], using: &rng)
            let allowed = try BooleanMask(shape: [b, 1, lq, lk], where: { ($0[0] + $0[2] + 3 * $0[3]) % 4 != 1 })
            let masks: [AttentionMask] = [
                .unmasked, .causal(.topLeft), .causal(.bottomRight),
                AttentionMask(window: .init(left: 3, right: 1)), AttentionMask(keyLengths: [7, 11]),
                AttentionMask(booleanMask: allowed), AttentionMask(bias: bias),
                AttentionMask(causal: .bottomRight, keyLengths: [9, 4], booleanMask: allowed, bias: bias),
            ]
            func laidOut(_ t: Tensor) throws -> Tensor { layout == .heads ? t : try t.permuted([0, 2, 1, 3]) }
            for mask in masks {
                let expected = referenceAttention(query: q, key: k, value: v, mask: mask)
                for algorithm in AttentionAlgorithm.allCases {
                    let out = try scaledDotProductAttention(
                        query: laidOut(q), key: laidOut(k), value: laidOut(v), mask: mask, algorithm: algorithm,
                        layout: layout)
                    #expect(out.dtype == dtype)
                    expectWithinAttentionTolerance(
                        try laidOut(out), expected.output, shape: [b, h, lq, d], dtype: dtype, "\(mask) \(algorithm)")
                }
            }
        }

        @Test func emptyShapesKeepTheOutputDType() throws {
            for dtype in [Tensor.DType.float16, .bfloat16] {
                let q = try Tensor(ones: [2, 3, 4], dtype: dtype)
                let noKey = try Tensor(zeros: [2, 0, 4], dtype: dtype)
                let out = try scaledDotProductAttention(query: q, key: noKey, value: noKey)
                #expect(out.dtype == dtype && out.shape == [2, 3, 4] && out.scalars.allSatisfy { $0 == 0 })
                let noQuery = try Tensor(zeros: [2, 0, 4], dtype: dtype)
                let empty = try scaledDotProductAttention(query: noQuery, key: q, value: q, outputDType: .float32)
                #expect(empty.dtype == .float32 && empty.shape == [2, 0, 4])
            }
        }

        /// Flax's broadcast dropout runs one kernel call per (batch, head), offsetting each tensor's
        /// pointer by elements of its own dtype: half inputs and a half output must give what the same
        /// call gives on the rounded inputs widened to float32.
        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func broadcastDropoutOffsetsEachTensorInItsDType(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 5)
            let q = try Tensor(randomNormal: [2, 6, 3, 8], using: &rng)  // Flax: [batch, L, H, D]
            let k = try Tensor(randomNormal: [2, 9, 3, 8], using: &rng).converted(to: dtype)
            let v = try Tensor(randomNormal: [2, 9, 3, 8], using: &rng).converted(to: dtype)
            let dropout = Dropout(probability: 0.3, seed: 77)
            let half = try dotProductAttention(query: q, key: k, value: v, dropout: dropout, broadcastDropout: true)
            let single = try dotProductAttention(
                query: q, key: k.converted(to: .float32), value: v.converted(to: .float32), dropout: dropout,
                broadcastDropout: true)
            #expect(half.dtype == .float32)
            expectClose(half, single.scalars.map(Double.init), shape: single.shape)
            // A half query: the output is half too, the rounded float32 result.
            let halfOut = try dotProductAttention(
                query: q.converted(to: dtype), key: k, value: v, dropout: dropout, broadcastDropout: true)
            let reference = try dotProductAttention(
                query: q.converted(to: dtype).converted(to: .float32), key: k.converted(to: .float32),
                value: v.converted(to: .float32), dropout: dropout, broadcastDropout: true)
            #expect(halfOut.dtype == dtype)
            expectWithinAttentionTolerance(halfOut, reference.scalars.map(Double.init), shape: reference.shape, dtype: dtype)
            // The weights function takes a half key (a matrix-multiply weight), not a half query.
            let weights = try dotProductAttentionWeights(query: q, key: k)
            let widened = try dotProductAttentionWeights(query: q, key: k.converted(to: .float32))
            expectClose(weights, widened.scalars.map(Double.init), shape: widened.shape)
            #expect(throws: AttentionError.self) { try dotProductAttentionWeights(query: q.converted(to: dtype), key: k) }
        }

        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func packedSequencesInHalfPrecision(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 9)
            let lengths = [3, 0, 5]
            let q = try Tensor(randomNormal: [8, 2, 4], dtype: dtype, using: &rng)
            let k = try Tensor(randomNormal: [8, 1, 4], dtype: dtype, using: &rng)
            let v = try Tensor(randomNormal: [8, 1, 6], dtype: dtype, using: &rng)
            let out = try scaledDotProductAttention(packedQuery: q, key: k, value: v, sequenceLengths: lengths, causal: .topLeft)
            #expect(out.dtype == dtype && out.shape == [8, 2, 6])
            var start = 0
            for length in lengths where length > 0 {
                func rows(_ t: Tensor) throws -> Tensor { try t.sliced(start..<(start + length)).permuted([1, 0, 2]) }
                let expected = referenceAttention(
                    query: try rows(q), key: try rows(k), value: try rows(v), mask: .causal(.topLeft))
                expectWithinAttentionTolerance(try rows(out), expected.output, shape: [2, length, 6], dtype: dtype)
                start += length
            }
        }

        /// PyTorch's `scaled_dot_product_attention` on bfloat16 and float16 CPU tensors
        /// (Tests/Fixtures/generate_half_fixtures.py). Both compute in float32 and round once, so
        /// the two results differ by at most one unit in the last place of the dtype where the
        /// float32 results straddle a rounding boundary: the bound is one ulp at `max(1, max |out|)`
        /// (2^-7 for bfloat16, 2^-10 for float16).
        @Test(arguments: [("bf16", Tensor.DType.bfloat16), ("f16", .float16)])
        func matchesPyTorch(file: String, dtype: Tensor.DType) throws {
            let fixture = try SafeTensors(contentsOf: fixtureURL("half_torch_sdpa_\(file)"))
            let ulp: Double = dtype == .bfloat16 ? 0x1p-7 : 0x1p-10
            for name in ["plain", "causal", "bool_mask", "float_mask", "gqa", "dv"] {
                let q = try fixture.tensor(named: "\(name).query"), k = try fixture.tensor(named: "\(name).key")
                let v = try fixture.tensor(named: "\(name).value"), expected = try fixture.tensor(named: "\(name).output")
                #expect(q.dtype == dtype && k.dtype == dtype && v.dtype == dtype && expected.dtype == dtype)
                var mask = AttentionMask.unmasked
                if name == "causal" { mask.causal = .topLeft }
                if fixture.contains("\(name).mask") {
                    mask.booleanMask = try BooleanMask(
                        shape: fixture.shape(of: "\(name).mask"), values: fixture.booleans(named: "\(name).mask"))
                }
                if fixture.contains("\(name).bias") { mask.bias = try fixture.tensor(named: "\(name).bias") }
                for algorithm in AttentionAlgorithm.allCases {
                    let out = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, algorithm: algorithm)
                    #expect(out.dtype == dtype)
                    let bound = ulp * max(1, expected.scalars.map { Double(abs($0)) }.max() ?? 0)
                    let worst = zip(out.scalars, expected.scalars).map { Double(abs($0 - $1)) }.max() ?? 0
                    #expect(worst <= bound, "\(file) \(name) \(algorithm): largest |diff| \(worst) > \(bound)")
                    // And within attn.h's tolerance of the exact attention of the stored inputs.
                    let exact = referenceAttention(query: q, key: k, value: v, mask: mask)
                    expectWithinAttentionTolerance(out, exact.output, shape: expected.shape, dtype: dtype, "\(name)")
                }
            }
        }
    }
}
