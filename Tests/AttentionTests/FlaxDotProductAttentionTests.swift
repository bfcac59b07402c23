import Testing
import Attention

// dotProductAttention: Flax's `dot_product_attention` against fixtures made with Flax 0.12.8, and
// against `dotProductAttentionWeights(...) · v` (itself fixture-tested) on random shapes,
// broadcasts and dropout.

@Suite("Flax dotProductAttention")
struct FlaxDotProductAttentionTests {
    @Test(arguments: ["flax_dpa_bias_mask", "flax_dpa_unbatched"])
    func matchesFlax(fixture name: String) throws {
        let file = try SafeTensors(contentsOf: fixtureURL(name))
        let mask = file.contains("input.mask")
            ? try BooleanMask(shape: file.shape(of: "input.mask"), values: file.booleans(named: "input.mask")) : nil
        let bias = file.contains("input.bias") ? try file.tensor(named: "input.bias") : nil
        let output = try dotProductAttention(
            query: file.tensor(named: "input.query"), key: file.tensor(named: "input.key"),
            value: file.tensor(named: "input.value"), bias: bias, mask: mask)
        expectFixtureClose(output, try file.tensor(named: "output.out"), Comment(rawValue: name))
    }

    /// `weights · v` with the weights of `dotProductAttentionWeights`: `[batch..., H, L, S]` times
    /// the values moved to `[batch..., H, S, Dv]`, moved back to `[batch..., L, H, Dv]`.
    private func weightsTimesValues(
        query: Tensor, key: Tensor, value: Tensor, bias: Tensor?, mask: BooleanMask?, dropout: Dropout?,
        broadcastDropout: Bool
    ) throws -> Tensor {
        let weights = try dotProductAttentionWeights(
            query: query, key: key, mask: mask, bias: bias, dropout: dropout, broadcastDropout: broadcastDropout)
        let rank = value.rank
        var swapLengthAndHeads = Array(0..<rank)
        swapLengthAndHeads.swapAt(rank - 3, rank - 2)
        return try matmul(weights, value.permuted(swapLengthAndHeads)).permuted(swapLengthAndHeads)
    }

    @Test(arguments: 0..<24)
    func matchesWeightsTimesValues(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 900 + seed)
        let batch = (0..<Int.random(in: 0...2, using: &rng)).map { _ in Int.random(in: 1...3, using: &rng) }
        let (lengthQ, lengthK) = (Int.random(in: 1...9, using: &rng), Int.random(in: 1...9, using: &rng))
        let (heads, depth, valueDepth) = (Int.random(in: 1...3, using: &rng), Int.random(in: 1...8, using: &rng), Int.random(in: 1...8, using: &rng))
        let query = try Tensor(randomNormal: batch + [lengthQ, heads, depth], using: &rng)
        let key = try Tensor(randomNormal: batch + [lengthK, heads, depth], using: &rng)
        let value = try Tensor(randomNormal: batch + [lengthK, heads, valueDepth], using: &rng)
        // Mask and bias of random broadcast shapes: leading dimensions dropped, others set to 1.
        let scores = batch + [heads, lengthQ, lengthK]
        func operandShape() -> [Int] {
            scores.dropFirst(Int.random(in: 0...scores.count, using: &rng)).map { Bool.random(using: &rng) ? 1 : $0 }
        }
        let bias = Bool.random(using: &rng) ? try Tensor(randomNormal: operandShape(), using: &rng) : nil
        let maskShape = operandShape()
        let mask = Bool.random(using: &rng)
            ? try BooleanMask(shape: maskShape, values: (0..<maskShape.reduce(1, *)).map { _ in Int.random(in: 0..<3, using: &rng) > 0 })
            : nil
        let dropout = Bool.random(using: &rng) ? Dropout(probability: 0.3, seed: seed) : nil
        let broadcastDropout = Bool.random(using: &rng)

        let output = try dotProductAttention(
            query: query, key: key, value: value, bias: bias, mask: mask, dropout: dropout,
            broadcastDropout: broadcastDropout)
        let expected = try weightsTimesValues(
            query: query, key: key, value: value, bias: bias, mask: mask, dropout: dropout,
            broadcastDropout: broadcastDropout)
        expectClose(
            output, expected.scalars.map(Double.init), shape: batch + [lengthQ, heads, valueDepth], rtol: 1e-4, atol: 1e-5,
            "bias \(bias?.shape ?? []) mask \(mask?.shape ?? []) dropout \(dropout != nil) broadcast \(broadcastDropout)")
    }

    @Test func aFullyMaskedRowIsTheMeanOfTheValues() throws {
        var rng = SeededGenerator(seed: 4)
        let query = try Tensor(randomNormal: [3, 1, 2], using: &rng)
        let key = try Tensor(randomNormal: [4, 1, 2], using: &rng)
        let value = try Tensor(shape: [4, 1, 1], scalars: [1, 2, 3, 6])
        let mask = try BooleanMask(shape: [3, 4]) { $0[0] != 1 }   // query 1 sees no key
        let output = try dotProductAttention(query: query, key: key, value: value, mask: mask)
        #expect(abs(output[1, 0, 0] - 3) < 1e-6)
    }

    @Test func errorsNameTheArgument() throws {
        let query = try Tensor(zeros: [2, 5, 4, 8]), key = try Tensor(zeros: [2, 7, 4, 8])
        let value = try Tensor(zeros: [2, 7, 4, 3])
        #expect(throws: AttentionError.shapeMismatch(
            argument: "value", expected: "[2, 7, 4, Dv] (the key's batch dimensions, length and heads)", actual: [2, 6, 4, 3])) {
            try dotProductAttention(query: query, key: key, value: Tensor(zeros: [2, 6, 4, 3]))
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "key", expected: "[2, S, 4, 8] (the query's batch dimensions, heads and depth)", actual: [2, 7, 2, 8])) {
            try dotProductAttention(query: query, key: Tensor(zeros: [2, 7, 2, 8]), value: value)
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "bias", expected: "a shape broadcastable to [2, 4, 5, 7] ([batch..., H, L, S])", actual: [3, 1, 1, 7])) {
            try dotProductAttention(query: query, key: key, value: value, bias: Tensor(zeros: [3, 1, 1, 7]))
        }
        #expect(throws: AttentionError.self) {
            try dotProductAttention(query: query, key: key, value: value, mask: BooleanMask(shape: [5, 6]) { _ in true })
        }
        #expect(throws: AttentionError.shapeMismatch(
            argument: "query", expected: "[batch..., L, H, D] (rank 3 or more)", actual: [5, 8])) {
            try dotProductAttention(query: Tensor(zeros: [5, 8]), key: key, value: value)
        }
        #expect(throws: AttentionError.invalidArgument(
            argument: "value",
            reason: "its depth must be at least 1 (a batch or a sequence may be empty), got shape [2, 7, 4, 0]")) {
            try dotProductAttention(query: query, key: key, value: Tensor(zeros: [2, 7, 4, 0]))
        }
        // The library's empty-input rule: no batch or no query gives an empty result, no key zeros.
        #expect(try dotProductAttention(
            query: Tensor(zeros: [0, 5, 4, 8]), key: Tensor(zeros: [0, 7, 4, 8]), value: Tensor(zeros: [0, 7, 4, 3])
        ).shape == [0, 5, 4, 3])
        #expect(try dotProductAttention(query: Tensor(zeros: [2, 0, 4, 8]), key: key, value: value).shape == [2, 0, 4, 3])
        let noKey = try dotProductAttention(query: query, key: Tensor(zeros: [2, 0, 4, 8]), value: Tensor(zeros: [2, 0, 4, 3]))
        #expect(noKey == (try Tensor(zeros: [2, 5, 4, 3])))
        #expect(throws: AttentionError.invalidArgument(argument: "dropout.probability", reason: "must be in [0, 1), got 1.0")) {
            try dotProductAttention(query: query, key: key, value: value, dropout: Dropout(probability: 1, seed: 0))
        }
    }
}
