import Foundation
import Testing
@testable import Attention

/// Float values that stress the 16-bit roundings: ties to even, subnormals, overflow, infinities,
/// NaN payloads, then random bit patterns around the half-precision range.
func trickyFloats(count: Int = 4000, seed: UInt64 = 11) -> [Float] {
    var values: [Float] = [
        0, -0.0, 1, -1, 0.1, 1 / 3, 65504, 65519.99, 65520, -65520, 1e10, 0x1p-14, 0x1p-24, 0x1p-25,
        0x1.8p-25, 0x1p-26, 1 + 0x1p-11, 1 + 0x1.8p-10, 1 + 0x1p-8, 1 + 0x1.8p-7, .leastNonzeroMagnitude,
        .greatestFiniteMagnitude, .infinity, -.infinity, .nan, -.nan,
        Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFA0_1234), Float(bitPattern: 0x7FC0_0001),
    ]
    var rng = SeededGenerator(seed: seed)
    while values.count < count {
        let exponent = UInt32.random(in: (127 - 30)...(127 + 17), using: &rng)
        let bits = UInt32.random(in: 0...1, using: &rng) << 31 | exponent << 23 | UInt32.random(in: 0..<(1 << 23), using: &rng)
        values.append(Float(bitPattern: bits))
    }
    return values
}

/// Under KernelTests: these run the kernels (attention, matrix multiply, attn_convert), which
/// must not overlap a test that switches the instruction set.
extension KernelTests {
    @Suite("Half-precision tensors")
    struct HalfPrecisionTensorTests {
        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func wideningMatchesTheKernelsForEveryBitPattern(dtype: Tensor.DType) throws {
            let patterns = (0...UInt16.max).map { $0 }
            let tensor = try Tensor(shape: [patterns.count], bitPatterns: patterns, dtype: dtype)
            #expect(tensor.dtype == dtype && tensor.bitPatterns == patterns)
            // attn_convert (converted(to:)) and the Swift per-element conversion (scalars) agree bit for bit.
            let kernel = try tensor.converted(to: .float32).scalars.map(\.bitPattern)
            let swift = tensor.scalars.map(\.bitPattern)
            #expect(kernel == swift)
            // Widening is exact: narrowing back gives the pattern again (NaN: quieted, payload kept).
            let back = try tensor.converted(to: .float32).converted(to: dtype).bitPatterns!
            for (original, again) in zip(patterns, back) {
                let isNaN = dtype == .float16 ? (original & 0x7C00 == 0x7C00 && original & 0x3FF != 0)
                    : (original & 0x7F80 == 0x7F80 && original & 0x7F != 0)
                if isNaN {
                    #expect(again == original | (dtype == .float16 ? 0x200 : 0x40))
                } else if again != original {
                    Issue.record("\(dtype) 0x\(String(original, radix: 16)) → 0x\(String(again, radix: 16))")
                }
            }
        }

        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func narrowingMatchesTheKernelsAndRoundsToNearestEven(dtype: Tensor.DType) throws {
            let values = trickyFloats()
            let tensor = try Tensor(shape: [values.count], scalars: values)
            let kernel = try tensor.converted(to: dtype).bitPatterns!
            let swift = values.map(dtype.bitPattern(from:))
            #expect(kernel == swift)
            // The subscript's setter rounds the same way.
            var written = try Tensor(zeros: [values.count], dtype: dtype)
            for (index, value) in values.enumerated() { written[index] = value }
            #expect(written.bitPatterns == kernel)
            // Against the platform's Float16 (hardware rounding) and BFloat16's initialiser.
            for (value, bits) in zip(values, kernel) where !value.isNaN {
                switch dtype {
                case .bfloat16:
                    #expect(BFloat16(value).bitPattern == bits)
                default:
                    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
                    #expect(Float16(value).bitPattern == bits, "\(value)")
                    #endif
                }
            }
            #expect(try tensor.converted(to: dtype).converted(to: .float32).dtype == .float32)
        }

        @Test func floatAccessorsWidenAndRound() throws {
            var t = try Tensor(shape: [2, 2], scalars: [1, 1.00390625, -2.5, 70000]).converted(to: .bfloat16)
            #expect(t.dtype == .bfloat16 && t.shape == [2, 2] && t.count == 4)
            #expect(t.scalars == [1, 1, -2.5, 70144])
            #expect(t[1, 1] == 70144)
            let copy = t
            t[0, 0] = 3.01  // rounds to the nearest bfloat16, 3.015625
            #expect(t[0, 0] == 3.015625 && copy[0, 0] == 1)
            let sum = t.withUnsafeBufferPointer { $0.reduce(0, +) }
            #expect(sum == 3.015625 + 1 - 2.5 + 70144)
            t.withUnsafeMutableBufferPointer { values in
                for index in values.indices { values[index] *= 1.001 }
            }
            #expect(t.dtype == .bfloat16)
            #expect(t.scalars == [3.015625, 1, -2.5, 70144].map { Float(BFloat16($0 * 1.001)) })
            #expect(copy.scalars == [1, 1, -2.5, 70144])
            #expect(t.bfloat16Scalars.map(Float.init) == t.scalars)
            #expect(try Tensor(shape: [2], bfloat16Scalars: [BFloat16(1), BFloat16(-2)]).bitPatterns == [0x3F80, 0xC000])
            #expect(BFloat16(bitPattern: 0x3F80) == BFloat16(1) && "\(BFloat16(0.5))" == "0.5")
            #expect(BFloat16(0) == BFloat16(-0.0) && BFloat16(.nan) != BFloat16(.nan))
            #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
            let h = try Tensor(shape: [3], float16Scalars: [1.5, -0.25, 65504])
            #expect(h.dtype == .float16 && h.scalars == [1.5, -0.25, 65504])
            #expect(h.float16Scalars == [1.5, -0.25, 65504])
            #expect(try Tensor(shape: [1], scalars: [70000]).float16Scalars == [.infinity])
            #endif
        }

        @Test func equalityDescriptionAndInitialisers() throws {
            let f = try Tensor(shape: [3], scalars: [1, 2, 3])
            let b = try f.converted(to: .bfloat16)
            let again = try f.converted(to: .bfloat16)
            #expect(b != f && b == again)
            #expect(try b.converted(to: .float32) == f)
            #expect(try f.converted(to: .float32).storage === f.storage)  // same dtype: shared
            #expect("\(b)" == "Tensor([1, 2, 3], dtype: bfloat16)")
            #expect("\(f)" == "Tensor([1, 2, 3])")
            let signedZeros = try Tensor(shape: [2], bitPatterns: [0x0000, 0x8000], dtype: .float16)
            #expect(try signedZeros == Tensor(zeros: [2], dtype: .float16))  // -0 == 0
            #expect(try Tensor(zeros: [2, 3], dtype: .float16).bitPatterns == Array(repeating: 0, count: 6))
            #expect(try Tensor(ones: [2], dtype: .bfloat16).bitPatterns == [0x3F80, 0x3F80])
            #expect(try Tensor(repeating: 0.1, shape: [1], dtype: .float16).bitPatterns == [0x2E66])
            for dtype in Tensor.DType.allCases {
                var a = SeededGenerator(seed: 3), c = SeededGenerator(seed: 3)
                let normal = try Tensor(randomNormal: [5, 7], dtype: dtype, using: &a)
                let rounded = try Tensor(randomNormal: [5, 7], using: &c).converted(to: dtype)
                #expect(normal == rounded)
                let uniform = try Tensor(randomUniform: [9], in: -1..<1, dtype: dtype, using: &a)
                let roundedUniform = try Tensor(randomUniform: [9], in: -1..<1, using: &c).converted(to: dtype)
                #expect(uniform == roundedUniform)
            }
            #expect(Tensor.DType.allCases.map(\.byteSize) == [4, 2, 2])
            #expect(Tensor.DType.allCases.map(\.description) == ["float32", "float16", "bfloat16"])
            #expect(throws: AttentionError.invalidArgument(
                argument: "dtype", reason: "bit patterns of 16 bits need float16 or bfloat16, got float32")
            ) { try Tensor(shape: [1], bitPatterns: [0], dtype: .float32) }
            #expect(throws: AttentionError.self) { try Tensor(shape: [2], bitPatterns: [0], dtype: .float16) }
            #expect(f.bitPatterns == nil)
        }

        @Test func rawBuffersHoldTheStoredBytes() throws {
            var t = try Tensor(shape: [2], bitPatterns: [0x1234, 0xABCD], dtype: .float16)
            let copy = t
            #expect(t.withUnsafeRawBufferPointer { $0.count } == 4)
            #expect(t.withUnsafeRawBufferPointer { Int(bitPattern: $0.baseAddress) % 64 } == 0)
            t.withUnsafeMutableRawBufferPointer { $0.storeBytes(of: 0x3C00, toByteOffset: 2, as: UInt16.self) }
            #expect(t.bitPatterns == [0x1234, 0x3C00] && copy.bitPatterns == [0x1234, 0xABCD])
            let f = try Tensor(shape: [1], scalars: [2])
            #expect(f.withUnsafeRawBufferPointer { $0.load(as: Float.self) } == 2)
        }

        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func layoutOperationsMoveHalfElementsAsTheyAre(dtype: Tensor.DType) throws {
            var rng = SeededGenerator(seed: 8)
            let x = try Tensor(randomNormal: [3, 4, 5], using: &rng)
            let h = try x.converted(to: dtype)
            func same(_ half: Tensor, _ single: Tensor) throws {
                #expect(half.dtype == dtype && half.shape == single.shape)
                let rounded = try single.converted(to: dtype)
                #expect(half.bitPatterns == rounded.bitPatterns)
            }
            try same(h.permuted([2, 0, 1]), x.permuted([2, 0, 1]))
            try same(h.transposed(), x.transposed())
            try same(h.sliced(1..<3, axis: 1), x.sliced(1..<3, axis: 1))
            try same(h.reshaped([12, 5]), x.reshaped([12, 5]))
            try same(Tensor.concatenated([h, h.sliced(0..<2, axis: -1)], axis: -1),
                     Tensor.concatenated([x, x.sliced(0..<2, axis: -1)], axis: -1))
            #expect(throws: AttentionError.unsupportedDType(
                argument: "tensors[1]", dtype: .float32,
                reason: "every tensor must have the dtype of tensors[0], \(dtype); convert explicitly")
            ) { try Tensor.concatenated([h, x]) }
        }

        @Test func arithmeticRefusesHalfTensors() throws {
            let h = try Tensor(ones: [2, 3], dtype: .bfloat16), f = try Tensor(ones: [2, 3])
            func expectUnsupported(_ argument: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
                do {
                    try body()
                    Issue.record("expected unsupportedDType(\(argument))", sourceLocation: sourceLocation)
                } catch let AttentionError.unsupportedDType(name, dtype, reason) {
                    #expect(name == argument && dtype == .bfloat16 && !reason.isEmpty, sourceLocation: sourceLocation)
                    #expect("\(AttentionError.unsupportedDType(argument: name, dtype: dtype, reason: reason))"
                        .hasPrefix("\(argument) is bfloat16, which is not supported here: "), sourceLocation: sourceLocation)
                } catch {
                    Issue.record("expected unsupportedDType(\(argument)), got \(error)", sourceLocation: sourceLocation)
                }
            }
            expectUnsupported("self") { _ = try h.scaled(by: 2) }
            expectUnsupported("self") { _ = try h.adding(f) }
            expectUnsupported("other") { _ = try f.multiplying(h) }
            expectUnsupported("self") { _ = try h.softmax() }
            expectUnsupported("a") { _ = try matmul(h, f, transposingB: true) }
            expectUnsupported("input") { _ = try LayerNorm(size: 3)(h) }
            var norm = try LayerNorm(size: 3)
            norm.weight = try Tensor(ones: [3], dtype: .bfloat16)
            expectUnsupported("weight") { _ = try norm(f) }
            expectUnsupported("input") { _ = try Activation.gelu(h) }
            let rope = try RotaryPositionalEmbedding(embeddingSize: 4)
            expectUnsupported("x") { _ = try rope(Tensor(ones: [2, 4], dtype: .bfloat16)) }
            var heads = try Tensor(ones: [1, 2, 1, 4], dtype: .bfloat16)
            expectUnsupported("heads") { try rope.rotateHeads(&heads) }
            var rng = SeededGenerator(seed: 1)
            let linear = try Linear(inputSize: 3, outputSize: 2, using: &rng)
            expectUnsupported("input") { _ = try linear(h) }
            var halfBias = linear
            halfBias.bias = try halfBias.bias!.converted(to: .bfloat16)
            expectUnsupported("bias") { _ = try halfBias(f) }
            let q = try Tensor(ones: [1, 2, 4], dtype: .bfloat16)
            expectUnsupported("mask.bias") {
                _ = try scaledDotProductAttention(query: q, key: q, value: q, mask: AttentionMask(bias: Tensor(zeros: [2, 2], dtype: .bfloat16)))
            }
        }
    }
}
