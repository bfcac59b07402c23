import Testing
@testable import Attention

/// The one rule for empty inputs, as PyTorch: a batch or a sequence of length 0 gives an empty
/// result of the right shape (and no key at all gives zeros); never an error, a trap or a
/// mention of an internal shape. Sizes a module is built with (heads, features) stay at least 1.
@Suite("Empty batches and sequences give empty results everywhere")
struct EmptyShapesTests {
    @Test func scaledDotProductAttention() throws {
        let cases: [([Int], [Int], [Int])] = [
            ([0, 2, 3, 4], [0, 1, 5, 4], [0, 1, 5, 6]),   // no batch
            ([2, 2, 0, 4], [2, 1, 5, 4], [2, 1, 5, 6]),   // no query
            ([0, 4], [5, 4], [5, 6]),                     // rank 2, no query
        ]
        for (q, k, v) in cases {
            for algorithm in AttentionAlgorithm.allCases {
                let result = try scaledDotProductAttentionWithLogSumExp(
                    query: Tensor(zeros: q), key: Tensor(zeros: k), value: Tensor(zeros: v), algorithm: algorithm)
                #expect(result.output.shape == Array(q.dropLast()) + [v.last!])
                #expect(result.output.count == 0 && result.logSumExp.count == 0)
            }
        }
        // No key: every row sees nothing, so zeros (PyTorch's empty sum) and lse -infinity.
        var rng = SeededGenerator(seed: 1)
        for policy in [MaskedRowPolicy.zero, .nan, .meanOfValues] {
            let result = try scaledDotProductAttentionWithLogSumExp(
                query: Tensor(randomNormal: [2, 3, 4], using: &rng), key: Tensor(zeros: [2, 0, 4]),
                value: Tensor(zeros: [2, 0, 5]), maskedRows: policy)
            #expect(result.output.shape == [2, 3, 5] && result.output.scalars.allSatisfy { $0 == 0 })
            #expect(result.logSumExp.scalars.allSatisfy { $0 == -.infinity })
        }
        // Heads and features are sizes, not a batch or a sequence: still errors naming the argument.
        expectModuleError(argument: "query") {
            _ = try Attention.scaledDotProductAttention(query: Tensor(zeros: [2, 0]), key: Tensor(zeros: [3, 0]), value: Tensor(zeros: [3, 2]))
        }
    }

    @Test func everyModule() throws {
        var rng = SeededGenerator(seed: 2)
        let torch = try TorchMultiheadAttention(embedDim: 8, heads: 2, batchFirst: true, using: &rng)
        let equinox = try MultiheadAttention(heads: 2, querySize: 8, using: &rng)
        let flax = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, using: &rng)
        let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, batchFirst: true, using: &rng)
        let noxton = try TransformerEncoderLayer(
            dModel: 8, heads: 2, feedForwardSize: 16, batchFirst: true, convention: .noxton, using: &rng)
        let tutorial = try SelfAttention(dIn: 8, dOutKQ: 4, dOutV: 5, using: &rng)
        let cross = try CrossAttention(dIn: 8, dOutKQ: 4, dOutV: 5, using: &rng)
        let wrapper = try MultiHeadAttentionWrapper(dIn: 8, dOutKQ: 4, dOutV: 5, heads: 2, using: &rng)
        let rope = try RotaryPositionalEmbedding(embeddingSize: 8)
        let se = try SqueezeExcitation(inputChannels: 8, squeezeChannels: 2, using: &rng)

        for shape in [[0, 4, 8], [2, 0, 8], [0, 8]] {
            let x = try Tensor(zeros: shape)
            let attended = Array(shape.dropLast()) + [8]
            #expect(try torch(.init(query: x, key: x, value: x)).output.shape == attended)
            #expect(try equinox(.init(query: x, key: x, value: x, returningWeights: true)).output.shape == attended)
            #expect(try flax(.init(query: x, returningWeights: true)).output.shape == attended)
            #expect(try layer(x).shape == attended)
            #expect(try noxton(x).shape == attended)
            #expect(try tutorial(x).shape == Array(shape.dropLast()) + [5])
            #expect(try cross(x, x).shape == Array(shape.dropLast()) + [5])
            #expect(try wrapper(x).shape == Array(shape.dropLast()) + [10])
            #expect(try rope(x).shape == shape)
        }
        // A query over no key: zeros after the output projection's bias, PyTorch's empty softmax.
        let queries = try Tensor(randomNormal: [2, 3, 8], using: &rng), none = try Tensor(zeros: [2, 0, 8])
        #expect(try equinox(query: queries, key: none, value: none).shape == [2, 3, 8])
        #expect(try cross(queries, none).scalars.allSatisfy { $0 == 0 })
        #expect(try se(Tensor(zeros: [0, 8, 3, 3])).shape == [0, 8, 3, 3])
        #expect(try se(Tensor(zeros: [2, 8, 0, 3])).shape == [2, 8, 0, 3])
    }

    @Test func hugeButEmptyShapesDoNotOverflow() throws {
        var rng = SeededGenerator(seed: 3)
        let huge = 1 << 62
        let torch = try TorchMultiheadAttention(embedDim: 8, heads: 2, addZeroAttention: true, batchFirst: true, using: &rng)
        #expect(try torch(query: Tensor(zeros: [0, huge, 8]), key: Tensor(zeros: [0, huge, 8]), value: Tensor(zeros: [0, huge, 8])).output.count == 0)
        let mask3D = try TorchMask.additive(Tensor(zeros: [0, 0, huge]))
        #expect(throws: AttentionError.overflow(argument: "attentionMask")) {
            _ = try torch(query: Tensor(zeros: [huge, 0, 8]), key: Tensor(zeros: [huge, 0, 8]), value: Tensor(zeros: [huge, 0, 8]), attentionMask: mask3D)
        }
        let flax = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, using: &rng)
        #expect(try flax(query: Tensor(zeros: [huge, huge, 0, 4, 8])).count == 0)
        let rope = try RotaryPositionalEmbedding(embeddingSize: 8)
        #expect(try rope(Tensor(zeros: [huge, 0, 8])).count == 0)
        var heads = try Tensor(zeros: [huge, huge, 0, 8])
        try rope.rotateHeads(&heads)
        #expect(heads.count == 0)
        let se = try SqueezeExcitation(inputChannels: 8, squeezeChannels: 2, using: &rng)
        #expect(try se(Tensor(zeros: [0, 8, huge, huge])).count == 0)
        #expect(throws: AttentionError.self) { _ = try TorchMultiheadAttention(embedDim: huge, heads: 1, using: &rng) }
        #expect(throws: AttentionError.self) { _ = try TransformerEncoderLayer(dModel: huge, heads: 1, using: &rng) }
    }
}
