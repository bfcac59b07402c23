import Testing

@testable import Attention

@Suite("PyTorch module gradients")
struct TorchModuleGradientsTests {
    /// One option set of TorchMultiheadAttention, checked against finite differences: every
    /// parameter and each of query, key and value.
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var keyDim: Int? = nil, valueDim: Int? = nil
        var addBiasKV = false, addZeroAttention = false, batchFirst = false, batched = true
        var selfAttention = false, keyPadding = false, floatMask = false, needWeights = false
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "packed self-attention", selfAttention: true),
        Case(name: "packed cross-attention", batchFirst: true),
        Case(name: "kdim and vdim", keyDim: 5, valueDim: 3),
        Case(name: "bias_kv and zero_attn, key padding", addBiasKV: true, addZeroAttention: true, keyPadding: true),
        Case(name: "unbatched, float mask, weights", batched: false, floatMask: true, needWeights: true),
        Case(name: "self-attention, batch first, bias_kv, weights", addBiasKV: true, batchFirst: true, selfAttention: true, needWeights: true),
    ]

    @Test(arguments: cases) func multiheadAttention(_ c: Case) throws {
        var rng = SeededGenerator(seed: 21)
        var mha = try TorchMultiheadAttention(
            embedDim: 8, heads: 2, addBiasKV: c.addBiasKV, addZeroAttention: c.addZeroAttention, keyDim: c.keyDim,
            valueDim: c.valueDim, batchFirst: c.batchFirst, using: &rng)
        if let bias = mha.inProjectionBias { mha.inProjectionBias = try Tensor(randomNormal: bias.shape, using: &rng) }
        let (n, l, s) = (2, 4, 5)
        func shape(_ length: Int, _ width: Int) -> [Int] {
            !c.batched ? [length, width] : c.batchFirst ? [n, length, width] : [length, n, width]
        }
        let query = try Tensor(randomNormal: shape(l, 8), using: &rng)
        let key = c.selfAttention ? query : try Tensor(randomNormal: shape(s, c.keyDim ?? 8), using: &rng)
        let value = c.selfAttention ? query : try Tensor(randomNormal: shape(s, c.valueDim ?? 8), using: &rng)
        let keys = c.selfAttention ? l : s
        let padding = c.keyPadding ? try TorchMask.disallowed(BooleanMask(shape: [n, keys]) { $0[0] == 1 && $0[1] == keys - 1 }) : nil
        let mask = c.floatMask ? TorchMask.additive(try Tensor(randomNormal: [l, keys], using: &rng)) : nil
        func inputs(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> TorchMultiheadAttention.Inputs {
            .init(query: q, key: k, value: v, keyPaddingMask: padding, needWeights: c.needWeights, attentionMask: mask)
        }
        let (result, pullback) = try mha.callWithPullback(inputs(query, key, value))
        #expect(result == (try mha(inputs(query, key, value))))
        let dy = try Tensor(randomNormal: result.output.shape, using: &rng)
        let gradients = try pullback(dy)
        try expectParameterGradients(of: mha, gradients.parameters) { weightedSum(try $0(inputs(query, key, value)).output, dy) }
        try expectFiniteDifferences(
            of: { weightedSum(try mha(inputs($0, key, value)).output, dy) }, at: query, analytic: gradients.input.query, "query")
        try expectFiniteDifferences(
            of: { weightedSum(try mha(inputs(query, $0, value)).output, dy) }, at: key, analytic: gradients.input.key, "key")
        try expectFiniteDifferences(
            of: { weightedSum(try mha(inputs(query, key, $0)).output, dy) }, at: value, analytic: gradients.input.value, "value")
    }

    @Test(arguments: [false, true]) func encoderLayer(normFirst: Bool) throws {
        var rng = SeededGenerator(seed: 22)
        let layer = try TransformerEncoderLayer(
            dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0, activation: .gelu, batchFirst: true, normFirst: normFirst,
            using: &rng)
        let x = try Tensor(randomNormal: [2, 5, 8], using: &rng)
        let padding = try TorchMask.disallowed(BooleanMask(shape: [2, 5]) { $0[0] == 1 && $0[1] >= 3 })
        let (y, pullback) = try layer.callWithPullback(x, keyPaddingMask: padding)
        #expect(y == (try layer(x, keyPaddingMask: padding)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters.names == layer.parameterPaths.map(\.name))
        try expectParameterGradients(of: layer, gradients.parameters) { weightedSum(try $0(x, keyPaddingMask: padding), dy) }
        try expectFiniteDifferences(of: { weightedSum(try layer($0, keyPaddingMask: padding), dy) }, at: x, analytic: gradients.input, "x")
    }

    @Test func encoderWithFinalNormAndCausalMask() throws {
        var rng = SeededGenerator(seed: 23)
        let layers = try (0..<2).map { _ in
            try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0, using: &rng)
        }
        let encoder = try TransformerEncoder(layers: layers, norm: LayerNorm(size: 8))
        let x = try Tensor(randomNormal: [5, 2, 8], using: &rng)
        let mask = try TorchMask.squareSubsequent(5)
        let (y, pullback) = try encoder.callWithPullback(x, mask: mask)
        #expect(y == (try encoder(x, mask: mask)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters["layers.1.self_attn.in_proj_weight"]?.shape == [24, 8])
        #expect(gradients.parameters["norm.weight"]?.shape == [8])
        try expectParameterGradients(of: encoder, gradients.parameters, samples: 3) { weightedSum(try $0(x, mask: mask), dy) }
        try expectFiniteDifferences(of: { weightedSum(try encoder($0, mask: mask), dy) }, at: x, analytic: gradients.input, "x")
    }

    @Test func trainingDropoutIsDifferentiatedThroughItsDecisions() throws {
        var rng = SeededGenerator(seed: 24)
        let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0.2, batchFirst: true, using: &rng)
        let x = try Tensor(randomNormal: [2, 4, 8], using: &rng)
        let (y, pullback) = try layer.callWithPullback(x, training: true, dropoutSeed: 5)
        #expect(y == (try layer(x, training: true, dropoutSeed: 5)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let gradients = try pullback(dy)
        try expectParameterGradients(of: layer, gradients.parameters, samples: 3) {
            weightedSum(try $0(x, training: true, dropoutSeed: 5), dy)
        }
        try expectFiniteDifferences(
            of: { weightedSum(try layer($0, training: true, dropoutSeed: 5), dy) }, at: x, analytic: gradients.input, "x")
    }
}
