import Foundation
import Testing
@testable import Attention

/// Under KernelTests: these run the kernels (attention, matrix multiply, attn_convert), which
/// must not overlap a test that switches the instruction set.
extension KernelTests {
    @Suite("SafeTensors in half precision")
    struct SafeTensorsHalfTests {
        /// Bit patterns every 16-bit type must keep: zeros, subnormals, the largest finite values,
        /// infinities, quiet and signalling NaNs with payloads.
        static let specialPatterns: [UInt16] = [
            0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
            0x7C01, 0x7E00, 0xFE55, 0x7D2A, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0x7F80, 0xFF80, 0x7F81, 0x7FC0,
            0xFFAA, 0x1234, 0xABCD,
        ]

        @Test(arguments: [Tensor.DType.float16, .bfloat16])
        func halfTensorsRoundTripBitForBit(dtype: Tensor.DType) throws {
            let tensor = try Tensor(shape: [2, 13], bitPatterns: Self.specialPatterns, dtype: dtype)
            var file = SafeTensors()
            try file.insert(tensor, named: "t")  // its own dtype by default
            try file.insert(tensor, named: "widened", as: .float32)
            let read = try SafeTensors(data: file.serialized())
            #expect(try read.dtype(of: "t") == SafeTensors.DType(dtype))
            let loaded = try read.tensor(named: "t")
            #expect(loaded.dtype == dtype && loaded.shape == [2, 13])
            #expect(loaded.bitPatterns == Self.specialPatterns)
            // Widened explicitly, on insertion or on reading: exact, as converted(to:).
            let widened = try read.tensor(named: "widened")
            #expect(widened.dtype == .float32)
            let exact = try tensor.converted(to: .float32)
            #expect(widened.scalars.map(\.bitPattern) == exact.scalars.map(\.bitPattern))
            #expect(try read.tensor(named: "t", as: .float32).scalars.map(\.bitPattern)
                == widened.scalars.map(\.bitPattern))
            // Written to a file and read again (memory-mapped), still the same bits.
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("half-\(UUID()).safetensors")
            defer { try? FileManager.default.removeItem(at: url) }
            try SafeTensors.write(["t": tensor], to: url)
            #expect(try SafeTensors(contentsOf: url).tensor(named: "t").bitPatterns == Self.specialPatterns)
        }

        @Test func conversionsBetweenStoredTypes() throws {
            let values: [Float] = [1, 1.00390625, -2.5, 70000, 0x1p-20]
            let single = try Tensor(shape: [5], scalars: values)
            var file = SafeTensors()
            try file.insert(single.converted(to: .bfloat16), named: "bf16_as_f16", as: .float16)
            try file.insert(single, named: "f32_as_bf16", as: .bfloat16)
            try file.insert(single.converted(to: .float16), named: "f16_as_f64", as: .float64)
            let twice = try single.converted(to: .bfloat16).converted(to: .float16)
            #expect(try file.tensor(named: "bf16_as_f16").bitPatterns == twice.bitPatterns)
            let brain = try single.converted(to: .bfloat16)
            #expect(try file.tensor(named: "f32_as_bf16") == brain)
            let widenedHalf = try single.converted(to: .float16).converted(to: .float32)
            #expect(try file.tensor(named: "f16_as_f64") == widenedHalf)
            #expect(try file.tensor(named: "f32_as_bf16", as: .float16).dtype == .float16)
            // Integers from a half tensor: whole values only.
            #expect(throws: AttentionError.self) {
                try file.insert(single.converted(to: .bfloat16), named: "ints", as: .int32)
            }
        }

        @Test func readsAndRewritesHalfTensorsOfTheReferenceLibraryExactly() throws {
            let file = try SafeTensors(contentsOf: fixtureURL("interop_safetensors"))
            for (name, dtype) in [("f16_bits", Tensor.DType.float16), ("bf16_bits", .bfloat16)] {
                // Python wrote the same bits as F16/BF16 and as U16.
                let tensor = try file.tensor(named: name)
                #expect(tensor.dtype == dtype)
                let expected = try file.integers(named: "\(name)_u16").map { UInt16($0) }
                #expect(expected.count > 20)
                #expect(tensor.bitPatterns == expected)
                // Saved again: the same bytes as the reference library's.
                var again = SafeTensors()
                try again.insert(tensor, named: name)
                let reread = try SafeTensors(data: again.serialized())
                #expect(reread.dtype(ofName: name) == SafeTensors.DType(dtype))
                #expect(try reread.tensor(named: name).bitPatterns == expected)
            }
            // numpy's F16 and ml_dtypes' BF16 conversions, as stored, equal ours of the float32 source.
            let source = try file.tensor(named: "f32_source")
            for (name, dtype) in [("f16_numpy", Tensor.DType.float16), ("bf16_ml_dtypes", .bfloat16)] {
                let reference = try file.tensor(named: name)
                #expect(reference.dtype == dtype)
                let ours = try source.converted(to: dtype)
                for (index, (a, b)) in zip(ours.bitPatterns!, reference.bitPatterns!).enumerated()
                where a != b && !source.scalars[index].isNaN {
                    Issue.record("\(name)[\(index)]: ours 0x\(String(a, radix: 16)), reference 0x\(String(b, radix: 16))")
                }
            }
        }

        @Test func modulesLoadHalfWeightsAsStoredAndRefuseOtherHalfParameters() throws {
            var rng = SeededGenerator(seed: 4)
            let attention = try TorchMultiheadAttention(embedDim: 8, heads: 2, using: &rng)
            let half = try attention.convertingWeights(to: .bfloat16)
            #expect(half.inProjectionWeight?.dtype == .bfloat16 && half.outProjection.weight.dtype == .bfloat16)
            #expect(half.inProjectionBias?.dtype == .float32 && half.outProjection.bias?.dtype == .float32)
            // Saved as they are, loaded as they are.
            var loaded = attention
            try loaded.loadParameters(from: SafeTensors(data: half.safeTensors().serialized()))
            #expect(loaded == half)
            // A half bias is refused as stored, converted when asked.
            var everything = try SafeTensors(data: attention.safeTensors(as: .float16).serialized())
            #expect(try everything.dtype(of: "in_proj_bias") == .float16)
            var target = attention
            #expect(throws: AttentionError.self) { try target.loadParameters(from: everything) }
            #expect(target == attention)
            try target.loadParameters(from: everything, precision: .converting(matrixWeightsTo: .bfloat16))
            #expect(target.inProjectionWeight?.dtype == .bfloat16 && target.inProjectionBias?.dtype == .float32)
            try target.loadParameters(from: everything, precision: .float32)
            #expect(target.namedParameters.allSatisfy { $0.tensor.dtype == .float32 })
            everything.removeTensor(named: "in_proj_bias")
            #expect(throws: AttentionError.self) { try target.loadParameters(from: everything) }
        }
    }
}

extension SafeTensors {
    /// The dtype of a tensor, or `nil` when absent.
    func dtype(ofName name: String) -> DType? { try? dtype(of: name) }
}
