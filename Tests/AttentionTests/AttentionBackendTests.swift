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
