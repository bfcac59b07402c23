import Testing

@testable import Attention

@Suite("Equinox module gradients")
struct EquinoxModuleGradientsTests {
    /// One option set of Equinox's MultiheadAttention, checked against finite differences: every
    /// parameter and each of query, key and value.
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var sizes: (key: Int, value: Int, output: Int, qk: Int, vo: Int)? = nil
        var biases: (query: Bool, key: Bool, value: Bool, output: Bool) = (false, false, false, false)
        var batched = true, selfAttention = false, perHeadMask = false, sharedMask = false
        var rotary: RotaryPositionalEmbedding.Pairing? = nil, dropout: Float = 0, weights = false
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "packed self-attention, unbatched", batched: false, selfAttention: true),
        Case(
            name: "cross-attention, every size and bias, per-head mask with a fully masked row",
            sizes: (6, 10, 12, 4, 3), biases: (true, true, true, true), perHeadMask: true),
        Case(
            name: "packed self-attention, some biases, rotary, shared mask", biases: (true, false, false, true),
            selfAttention: true, sharedMask: true, rotary: .halfSplit),
        Case(name: "cross-attention, interleaved rotary, weights", sizes: (5, 7, 8, 6, 2), rotary: .interleaved, weights: true),
        Case(name: "self-attention, dropout in training", selfAttention: true, dropout: 0.3),
    ]

    @Test(arguments: cases) func multiheadAttention(_ c: Case) throws {
        var rng = SeededGenerator(seed: 31)
        let (h, fq) = (2, 8)
        let s = c.sizes
        let attention = try MultiheadAttention(
            heads: h, querySize: fq, keySize: s?.key, valueSize: s?.value, outputSize: s?.output, qkSize: s?.qk,
            voSize: s?.vo, useQueryBias: c.biases.query, useKeyBias: c.biases.key, useValueBias: c.biases.value,
            useOutputBias: c.biases.output, dropoutProbability: c.dropout, using: &rng)
        let (b, l, keys) = (2, 4, c.selfAttention ? 4 : 5)
        func shape(_ length: Int, _ width: Int) -> [Int] { c.batched ? [b, length, width] : [length, width] }
        let query = try Tensor(randomNormal: shape(l, fq), using: &rng)
        let key = c.selfAttention ? query : try Tensor(randomNormal: shape(keys, s?.key ?? fq), using: &rng)
        let value = c.selfAttention ? query : try Tensor(randomNormal: shape(keys, s?.value ?? fq), using: &rng)
        let mask: BooleanMask? = if c.perHeadMask {
            try BooleanMask(shape: [b, h, l, keys]) { !($0[0] == 1 && $0[2] == 2) && ($0[1] == 0 || $0[3] <= $0[2] + 1) }
        } else if c.sharedMask {
            try BooleanMask(shape: [l, keys]) { $0[1] <= $0[0] }
        } else { nil }
        let rope = try c.rotary.map { try RotaryPositionalEmbedding(embeddingSize: attention.qkSize, pairing: $0) }
        func inputs(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> MultiheadAttention.Inputs {
            .init(
                query: q, key: k, value: v, mask: mask, dropoutSeed: c.dropout > 0 ? 7 : nil, rotary: rope,
                returningWeights: c.weights)
        }
        let (result, pullback) = try attention.callWithPullback(inputs(query, key, value))
        #expect(result == (try attention(inputs(query, key, value))))
        let dy = try Tensor(randomNormal: result.output.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters.names == attention.parameterPaths.map(\.name))
        try expectParameterGradients(of: attention, gradients.parameters) {
            weightedSum(try $0(inputs(query, key, value)).output, dy)
        }
        try expectAttentionInputGradients(
            gradients.input, query: query, key: key, value: value, outputGradient: dy
        ) { try attention(inputs($0, $1, $2)).output }
    }

    @Test func selfAttentionGradientIsTheSumOfTheRoles() throws {
        var rng = SeededGenerator(seed: 32)
        let attention = try MultiheadAttention(heads: 2, querySize: 6, useValueBias: true, using: &rng)
        let x = try Tensor(randomNormal: [5, 6], using: &rng)
        let (y, pullback) = try attention.callWithPullback(.init(query: x, key: x, value: x))
        let dy = try Tensor(randomNormal: y.output.shape, using: &rng)
        let input = try pullback(dy).input
        try expectFiniteDifferences(
            of: { weightedSum(try attention($0), dy) }, at: x, analytic: try input.query + input.key + input.value, "x")
    }

    @Test func processHeadsHasNoPullback() throws {
        var rng = SeededGenerator(seed: 33)
        let attention = try MultiheadAttention(heads: 2, querySize: 4, using: &rng)
        let x = try Tensor(randomNormal: [3, 4], using: &rng)
        let inputs = MultiheadAttention.Inputs(query: x, key: x, value: x, processHeads: { _ in })
        #expect(throws: AttentionError.unsupported(
            feature: "the gradients of processHeads",
            reason: "an arbitrary closure on the heads has no pullback; for RoPE pass rotary:, which is differentiated")
        ) { try attention.callWithPullback(inputs) }
        _ = try attention(inputs)   // the forward alone still runs it
    }

    @Test func halfPrecisionWeightsGetFloat32Gradients() throws {
        var rng = SeededGenerator(seed: 35)
        let attention = try MultiheadAttention(heads: 2, querySize: 6, useQueryBias: true, using: &rng)
            .convertingWeights(to: .bfloat16)
        let (x, memory) = (try Tensor(randomNormal: [2, 3, 6], using: &rng), try Tensor(randomNormal: [2, 4, 6], using: &rng))
        for crossAttention in [false, true] {   // the packed projection, and the separate ones
            let key = crossAttention ? memory : x
            let (y, pullback) = try attention.callWithPullback(.init(query: x, key: key, value: key))
            let dy = try Tensor(randomNormal: y.output.shape, using: &rng)
            let gradients = try pullback(dy)
            for (name, gradient) in gradients.parameters {
                #expect(gradient.dtype == .float32, "\(name)")
                #expect(gradient.shape == attention.parameterShapes.first { $0.name == name }?.shape, "\(name)")
            }
            let input = gradients.input
            try expectFiniteDifferences(
                of: { weightedSum(try attention(query: $0, key: crossAttention ? key : $0, value: crossAttention ? key : $0), dy) },
                at: x, analytic: crossAttention ? input.query : try input.query + input.key + input.value, "x")
        }
    }

    @Test func emptyKeysGiveZeroGradients() throws {
        var rng = SeededGenerator(seed: 34)
        let attention = try MultiheadAttention(heads: 2, querySize: 4, useOutputBias: true, using: &rng)
        let query = try Tensor(randomNormal: [3, 4], using: &rng)
        let none = try Tensor(zeros: [0, 4])
        let (y, pullback) = try attention.callWithPullback(.init(query: query, key: none, value: none))
        #expect(y == (try attention(.init(query: query, key: none, value: none))))
        let gradients = try pullback(try Tensor(ones: y.output.shape))
        #expect(gradients.input.query == (try Tensor(zeros: [3, 4])))
        #expect(gradients.input.key.shape == [0, 4])
        #expect(gradients.parameters["output_proj.bias"] == (try Tensor(shape: [4], scalars: [3, 3, 3, 3])))
    }
}
