import Testing

@testable import Attention

@Suite("Flax module gradients")
struct FlaxModuleGradientsTests {
    /// One option set of Flax's MultiHeadDotProductAttention, checked against finite
    /// differences: every parameter and each of query, key and value.
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var batchShape = [2]
        var features: (key: Int, value: Int, qkv: Int, out: Int)? = nil
        var useBias = true, normalizeQK = false, paddingMask = false, dropout: Float = 0, broadcastDropout = false
        var attentionFunction = MultiHeadDotProductAttention.AttentionFunction.fused
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "two batch dimensions", batchShape: [2, 2]),
        Case(name: "cross-attention, every width, no bias, padding mask", features: (6, 5, 8, 10), useBias: false, paddingMask: true),
        Case(name: "normalize_qk, no batch dimension", batchShape: [], normalizeQK: true),
        Case(name: "normalize_qk, per-weight dropout in training", normalizeQK: true, dropout: 0.25),
        Case(name: "broadcast dropout in training (Flax's default)", batchShape: [2, 2], dropout: 0.3, broadcastDropout: true),
        Case(name: "the unfused attention function, masked", paddingMask: true, attentionFunction: .unfused),
    ]

    @Test(arguments: cases) func multiHeadDotProductAttention(_ c: Case) throws {
        var rng = SeededGenerator(seed: 41)
        let f = c.features
        let attention = try MultiHeadDotProductAttention(
            heads: 2, inputFeatures: 8, keyFeatures: f?.key, valueFeatures: f?.value, qkvFeatures: f?.qkv,
            outFeatures: f?.out, useBias: c.useBias, dropoutRate: c.dropout, broadcastDropout: c.broadcastDropout,
            normalizeQK: c.normalizeQK, attentionFunction: c.attentionFunction, using: &rng)
        var perturbed = attention
        for entry in attention.parameterPaths where !entry.name.hasSuffix("kernel") {   // away from zeros and ones
            perturbed[keyPath: entry.path] = try Tensor(randomNormal: attention[keyPath: entry.path].shape, using: &rng)
        }
        let module = perturbed
        let (l, s) = (4, 5)
        let query = try Tensor(randomNormal: c.batchShape + [l, 8], using: &rng)
        let key = try Tensor(randomNormal: c.batchShape + [s, f?.key ?? 8], using: &rng)
        let value = try Tensor(randomNormal: c.batchShape + [s, f?.value ?? f?.key ?? 8], using: &rng)
        let mask = c.paddingMask
            ? try BooleanMask(shape: c.batchShape + [1, 1, s]) { $0[0] == 0 || $0[c.batchShape.count + 2] < 3 } : nil
        func inputs(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> MultiHeadDotProductAttention.Inputs {
            .init(
                query: q, key: k, value: v, mask: mask, deterministic: c.dropout > 0 ? false : nil,
                dropoutSeed: c.dropout > 0 ? 3 : nil)
        }
        let (result, pullback) = try module.callWithPullback(inputs(query, key, value))
        #expect(result == (try module(inputs(query, key, value))))
        let dy = try Tensor(randomNormal: result.output.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters.names == module.parameterPaths.map(\.name))
        try expectParameterGradients(of: module, gradients.parameters) {
            weightedSum(try $0(inputs(query, key, value)).output, dy)
        }
        try expectAttentionInputGradients(
            gradients.input, query: query, key: key, value: value, outputGradient: dy
        ) { try module(inputs($0, $1, $2)).output }
    }

    @Test func defaultedKeyAndValueGetTheirRoles() throws {
        var rng = SeededGenerator(seed: 42)
        let attention = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 6, normalizeQK: true, using: &rng)
        let (x, memory) = (try Tensor(randomNormal: [2, 3, 6], using: &rng), try Tensor(randomNormal: [2, 4, 6], using: &rng))
        let (selfResult, selfPullback) = try attention.callWithPullback(.init(query: x))
        let dy = try Tensor(randomNormal: selfResult.output.shape, using: &rng)
        let roles = try selfPullback(dy).input
        try expectFiniteDifferences(
            of: { weightedSum(try attention(query: $0), dy) }, at: x, analytic: try roles.query + roles.key + roles.value, "x")
        let (_, crossPullback) = try attention.callWithPullback(.init(query: x, key: memory))
        let cross = try crossPullback(dy).input
        try expectFiniteDifferences(
            of: { weightedSum(try attention(query: x, key: $0), dy) }, at: memory, analytic: try cross.key + cross.value,
            "memory")
    }

    @Test func unsupportedCallsThrowBeforeAnyWork() throws {
        var rng = SeededGenerator(seed: 43)
        let x = try Tensor(randomNormal: [3, 4], using: &rng)
        let custom = try MultiHeadDotProductAttention(
            heads: 2, inputFeatures: 4, attentionFunction: .init { try MultiHeadDotProductAttention.AttentionFunction.fused($0) }, using: &rng)
        #expect(throws: AttentionError.self) { try custom.callWithPullback(.init(query: x)) }
    }
}
