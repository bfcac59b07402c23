import Testing
import Attention

extension KernelTests {
    @Suite("AttentionBackend")
    struct AttentionBackendTests {
        @Test func reportsASupportedInstructionSet() {
            let current = AttentionBackend.instructionSet
            #expect(AttentionBackend.isSupported(current))
            #expect(AttentionBackend.isSupported(.scalar) != AttentionBackend.isSupported(.neon))
            #expect(current.description == current.rawValue)
        }

        @Test func everySupportedInstructionSetMatchesTheReference() throws {
            let original = AttentionBackend.instructionSet
            defer { try? AttentionBackend.setInstructionSet(original) }
            let problem = Problem(batch: 2, headsQ: 4, headsKV: 2, lengthQ: 37, lengthK: 53, dimQK: 40, dimV: 24, seed: 55)
            let (q, k, v) = try problem.tensors()
            var rng = SeededGenerator(seed: 2)
            let mask = AttentionMask(
                causal: .bottomRight, window: .init(left: 20), keyLengths: [53, 30],
                bias: try Tensor(randomNormal: [4, 37, 53], using: &rng))
            let dropout = Dropout(probability: 0.1, seed: 4)
            var outputs: [AttentionBackend.InstructionSet: Tensor] = [:]
            for isa in AttentionBackend.InstructionSet.allCases where AttentionBackend.isSupported(isa) {
                try AttentionBackend.setInstructionSet(isa)
                #expect(AttentionBackend.instructionSet == isa)
                for algorithm in AttentionAlgorithm.allCases {
                    try expectMatchesReference(
                        query: q, key: k, value: v, mask: mask, dropout: dropout, maskedRows: .meanOfValues,
                        algorithm: algorithm, "isa \(isa)")
                }
                outputs[isa] = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask, dropout: dropout)
            }
            try AttentionBackend.setInstructionSet(original)
            #expect(AttentionBackend.instructionSet == original)
            #expect(!outputs.isEmpty)
        }

        /// bf16 prefill: `.widened` is the f32 arithmetic of the widened inputs exactly; `.emulated`
        /// is the instruction's arithmetic (bitwise `.native` where the CPU has it), within the
        /// documented allowance of the widened result.
        @Test func bfloat16ProductModes() throws {
            let original = AttentionBackend.bfloat16Products
            defer { try? AttentionBackend.setBFloat16Products(original) }
            #expect(AttentionBackend.isSupported(.widened) && AttentionBackend.isSupported(.emulated))
            #expect(original == (AttentionBackend.isSupported(.native) ? .native : .widened))
            let problem = Problem(batch: 1, headsQ: 2, headsKV: 1, lengthQ: 64, lengthK: 81, dimQK: 24, dimV: 40, seed: 9)
            let (q, k, v) = try problem.tensors()
            let (qh, kh, vh) = (try q.converted(to: .bfloat16), try k.converted(to: .bfloat16), try v.converted(to: .bfloat16))
            let mask = AttentionMask(causal: .bottomRight)
            let widenedInputs = try scaledDotProductAttention(
                query: qh.converted(to: .float32), key: kh.converted(to: .float32), value: vh.converted(to: .float32),
                mask: mask)
            var outputs: [AttentionBackend.BFloat16Products: Tensor] = [:]
            for mode in AttentionBackend.BFloat16Products.allCases where AttentionBackend.isSupported(mode) {
                try AttentionBackend.setBFloat16Products(mode)
                #expect(AttentionBackend.bfloat16Products == mode)
                outputs[mode] = try scaledDotProductAttention(
                    query: qh, key: kh, value: vh, mask: mask, outputDType: .float32)
            }
            #expect(outputs[.widened] == widenedInputs)
            if let native = outputs[.native] { #expect(native == outputs[.emulated]) }
            let allowance = bfloat16DotAllowance(query: qh, key: kh, value: vh) + 1e-5
            let worst = zip(outputs[.emulated]!.scalars, widenedInputs.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(Double(worst) <= allowance && worst > 0, "emulated differs from widened by \(worst)")
            if !AttentionBackend.isSupported(.native) {
                #expect(throws: AttentionError.self) { try AttentionBackend.setBFloat16Products(.native) }
            }
        }

        @Test func threadCountSetAndRestore() throws {
            try AttentionBackend.setThreadCount(nil)
            let standard = AttentionBackend.threadCount
            #expect(standard >= 1 && standard <= AttentionBackend.maximumThreadCount)
            defer { try? AttentionBackend.setThreadCount(nil) }
            for count in [1, 3, AttentionBackend.maximumThreadCount] {
                try AttentionBackend.setThreadCount(count)
                #expect(AttentionBackend.threadCount == count)
            }
            // Calls without `threads:` use the global count; results do not depend on it.
            let (q, k, v) = try Problem(batch: 1, headsQ: 2, headsKV: 2, lengthQ: 40, lengthK: 40, dimQK: 8, dimV: 8, seed: 1).tensors()
            try AttentionBackend.setThreadCount(1)
            let single = try scaledDotProductAttention(query: q, key: k, value: v, mask: AttentionMask(causal: .topLeft))
            try AttentionBackend.setThreadCount(2)
            let double = try scaledDotProductAttention(query: q, key: k, value: v, mask: AttentionMask(causal: .topLeft))
            #expect(single == double)
            try AttentionBackend.setThreadCount(nil)
            #expect(AttentionBackend.threadCount == standard)
        }

        @Test func version() {
            let parts = AttentionBackend.version.split(separator: ".")
            #expect(parts.count == 3)
            #expect(parts.allSatisfy { Int($0) != nil })
        }
    }
}
