import Testing
@testable import Attention

@Suite("Attention within packed sequences")
struct PackedSequenceAttentionTests {
    /// Each sequence's rows equal attention over that sequence alone, for every causal alignment,
    /// grouped-query heads, empty and one-token sequences.
    @Test(arguments: [AttentionMask.Causal.none, .topLeft])
    func eachSequenceAttendsWithinItself(causal: AttentionMask.Causal) throws {
        var rng = SeededGenerator(seed: 21)
        let lengths = [5, 0, 1, 17, 3]
        let total = lengths.reduce(0, +)
        let q = try Tensor(randomNormal: [total, 4, 8], using: &rng)
        let k = try Tensor(randomNormal: [total, 2, 8], using: &rng)
        let v = try Tensor(randomNormal: [total, 2, 6], using: &rng)
        let packed = try scaledDotProductAttention(
            packedQuery: q, key: k, value: v, sequenceLengths: lengths, causal: causal)
        #expect(packed.shape == [total, 4, 6])
        var offset = 0
        for length in lengths where length > 0 {
            let rows = offset ..< offset + length
            let alone = try scaledDotProductAttention(
                query: q.sliced(rows, axis: 0), key: k.sliced(rows, axis: 0), value: v.sliced(rows, axis: 0),
                mask: AttentionMask(causal: causal), layout: .sequence)
            #expect(try packed.sliced(rows, axis: 0) == alone, "sequence at \(offset)")
            offset += length
        }
    }

    @Test func errors() throws {
        let x = try Tensor(zeros: [6, 2, 4])
        expectModuleError(argument: "sequenceLengths") {
            _ = try scaledDotProductAttention(packedQuery: x, key: x, value: x, sequenceLengths: [2, 3])
        }
        expectModuleError(argument: "sequenceLengths") {
            _ = try scaledDotProductAttention(packedQuery: x, key: x, value: x, sequenceLengths: [7, -1])
        }
        expectModuleError(argument: "sequenceLengths") {
            _ = try scaledDotProductAttention(packedQuery: x, key: x, value: x, sequenceLengths: [Int.max, 1, 0])
        }
        expectModuleError(argument: "key") {
            _ = try scaledDotProductAttention(
                packedQuery: x, key: Tensor(zeros: [5, 2, 4]), value: Tensor(zeros: [5, 2, 4]), sequenceLengths: [6])
        }
        expectModuleError(argument: "packedQuery") {
            _ = try scaledDotProductAttention(packedQuery: Tensor(zeros: [6, 8]), key: x, value: x, sequenceLengths: [6])
        }
        #expect(try scaledDotProductAttention(
            packedQuery: Tensor(zeros: [0, 2, 4]), key: Tensor(zeros: [0, 2, 4]), value: Tensor(zeros: [0, 2, 4]),
            sequenceLengths: [0, 0]).shape == [0, 2, 4])
    }
}
