import Foundation
import Testing
@testable import Attention

/// Runs any module through the `Layer` protocol, as generic user code would.
private func run<L: Layer>(_ layer: L, _ input: L.Input) throws -> L.Output { try layer(input) }

@Suite("Layer: one way to call every module, weights returned the same way")
struct LayerProtocolTests {
    /// The softmax of the scaled scores of projected heads, masked with the most negative float
    /// (Equinox's masking), in double precision: `(H, L, S)` for one sequence.
    private func referenceWeights(
        _ attention: MultiheadAttention, query: Tensor, key: Tensor, mask: [[[Bool]]]?
    ) throws -> [Double] {
        let q = try attention.queryProjection(query).scalars, k = try attention.keyProjection(key).scalars
        let (h, d) = (attention.heads, attention.qkSize)
        let (l, s) = (query.shape[0], key.shape[0])
        var weights: [Double] = []
        for head in 0..<h {
            for i in 0..<l {
                var scores = (0..<s).map { j in
                    (0..<d).reduce(0.0) { $0 + Double(q[i * h * d + head * d + $1]) * Double(k[j * h * d + head * d + $1]) }
                        / Double(d).squareRoot()
                }
                if let mask {
                    for j in 0..<s where !mask[head][i][j] { scores[j] = -Double(Float.greatestFiniteMagnitude) }
                }
                let top = scores.max()!
                let exps = scores.map { Foundation.exp($0 - top) }
                let sum = exps.reduce(0, +)
                weights += exps.map { $0 / sum }
            }
        }
        return weights
    }

    @Test func equinoxReturnsItsWeights() throws {
        var rng = SeededGenerator(seed: 11)
        let attention = try MultiheadAttention(heads: 3, querySize: 12, using: &rng)
        let x = try Tensor(randomNormal: [5, 12], using: &rng), memory = try Tensor(randomNormal: [7, 12], using: &rng)
        // Row 2 of head 1 sees no key: uniform weights, as Equinox's finfo.min masking gives.
        let flags = (0..<3).map { h in (0..<5).map { i in (0..<7).map { j in !(h == 1 && i == 2) && (j + i) % 3 != 0 } } }
        let mask = try BooleanMask(shape: [3, 5, 7], values: flags.flatMap { $0.flatMap { $0 } })

        let result = try attention.callWithWeights(query: x, key: memory, value: memory, mask: mask)
        let weights = try #require(result.weights)
        #expect(weights.shape == [3, 5, 7])
        expectClose(weights, try referenceWeights(attention, query: x, key: memory, mask: flags), shape: [3, 5, 7],
                    rtol: 1e-5, atol: 1e-6)
        // The output is the fused path's, unchanged by asking for the weights.
        #expect(result.output == (try attention(query: x, key: memory, value: memory, mask: mask)))
        // And it is weights · values through the output projection.
        let v = try attention.valueProjection(memory).reshaped([7, 3, attention.voSize])
        var heads = [Float](repeating: 0, count: 5 * 3 * attention.voSize)
        for h in 0..<3 {
            for i in 0..<5 {
                for e in 0..<attention.voSize {
                    heads[(i * 3 + h) * attention.voSize + e] = (0..<7).reduce(0) { $0 + weights[h, i, $1] * v[$1, h, e] }
                }
            }
        }
        let combined = try attention.outputProjection(Tensor(shape: [5, 3 * attention.voSize], scalars: heads))
        expectClose(result.output, combined.scalars.map(Double.init), shape: [5, 12], rtol: 1e-5, atol: 1e-5)
    }

    @Test func equinoxWeightsFollowRotaryAndProcessedHeadsInEveryPath() throws {
        var rng = SeededGenerator(seed: 12)
        let attention = try MultiheadAttention(heads: 2, querySize: 8, using: &rng)
        let x = try Tensor(randomNormal: [2, 6, 8], using: &rng)
        let rope = try RotaryPositionalEmbedding(embeddingSize: attention.qkSize)
        // Packed self-attention with rotary against separate inputs with process_heads doing it.
        let packed = try attention.callWithWeights(query: x, key: x, value: x, rotary: rope)
        let hooked = try attention.callWithWeights(query: x, key: try x.scaled(by: 1), value: x) { heads in
            try rope.rotateHeads(&heads.query)
            try rope.rotateHeads(&heads.key)
        }
        let (a, b) = (try #require(packed.weights), try #require(hooked.weights))
        #expect(a.shape == [2, 2, 6, 6])
        expectClose(a, b.scalars.map(Double.init), shape: [2, 2, 6, 6], rtol: 1e-5, atol: 1e-6)
        expectClose(packed.output, hooked.output.scalars.map(Double.init), shape: [2, 6, 8], rtol: 1e-5, atol: 1e-5)
    }

    @Test func everyModuleRunsThroughTheProtocol() throws {
        var rng = SeededGenerator(seed: 13)
        let x = try Tensor(randomNormal: [2, 4, 8], using: &rng)

        let linear = try Linear(inputSize: 8, outputSize: 3, using: &rng)
        #expect(try run(linear, x) == (try linear(x)))
        let norm = try LayerNorm(size: 8)
        #expect(try run(norm, x) == (try norm(x)))
        #expect(try run(Activation.gelu, x) == (try Activation.gelu(x)))
        #expect(try run(Dropout(probability: 0.5, seed: 3), x) == (try Dropout(probability: 0.5, seed: 3)(x, inference: false)))
        let rope = try RotaryPositionalEmbedding(embeddingSize: 8)
        #expect(try run(rope, x) == (try rope(x, positionOffset: 0)))
        let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, batchFirst: true, using: &rng)
        #expect(try run(layer, x) == (try layer(x, training: false)))
        let encoder = try TransformerEncoder(layer: layer, count: 2)
        #expect(try run(encoder, x) == (try encoder(x, training: false)))
        let se = try SqueezeExcitation(inputChannels: 4, squeezeChannels: 2, using: &rng)
        let image = try Tensor(randomNormal: [1, 4, 3, 3], using: &rng)
        #expect(try run(se, image) == (try se(image, activation: nil, scaleActivation: nil)))

        // The attention modules: Inputs → AttentionResult, weights only when asked for.
        let torch = try TorchMultiheadAttention(embedDim: 8, heads: 2, batchFirst: true, using: &rng)
        let torchResult = try run(torch, .init(query: x, key: x, value: x, needWeights: false))
        #expect(torchResult.weights == nil && torchResult.output.shape == [2, 4, 8])
        #expect(try run(torch, .init(query: x, key: x, value: x)).weights?.shape == [2, 4, 4])

        let equinox = try MultiheadAttention(heads: 2, querySize: 8, using: &rng)
        #expect(try run(equinox, .init(query: x, key: x, value: x)).weights == nil)
        #expect(try run(equinox, .init(query: x, key: x, value: x, returningWeights: true)).weights?.shape == [2, 2, 4, 4])

        let flax = try MultiHeadDotProductAttention(heads: 2, inputFeatures: 8, using: &rng)
        #expect(try run(flax, .init(query: x)).output == (try flax(query: x)))
        #expect(try run(flax, .init(query: x, returningWeights: true)).weights?.shape == [2, 2, 4, 4])

        let tutorial = try CausalSelfAttention(dIn: 8, dOutKQ: 4, dOutV: 5, using: &rng)
        let tutorialResult = try run(tutorial, .init(x: x, returningWeights: true))
        #expect(tutorialResult.output == (try tutorial(x)))
        #expect(tutorialResult.weights == (try tutorial.callWithWeights(x).weights))
        let wrapper = try MultiHeadAttentionWrapper(dIn: 8, dOutKQ: 4, dOutV: 5, heads: 3, using: &rng)
        #expect(try run(wrapper, .init(x: x, returningWeights: true)).weights?.shape == [2, 3, 4, 4])
    }

    @Test func tutorialInputsMustMatchTheKind() throws {
        var rng = SeededGenerator(seed: 14)
        let x = try Tensor(randomNormal: [4, 3], using: &rng)
        let cross = try CrossAttention(dIn: 3, dOutKQ: 2, dOutV: 2, using: &rng)
        expectModuleError(argument: "x2") { _ = try cross(.init(x: x)) }
        let plain = try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 2, using: &rng)
        expectModuleError(argument: "x2") { _ = try plain(.init(x: x, context: x)) }
        let wrapper = try MultiHeadAttentionWrapper(dIn: 3, dOutKQ: 2, dOutV: 2, heads: 2, using: &rng)
        expectModuleError(argument: "x2") { _ = try wrapper(.init(x: x, context: x)) }
    }

    @Test func dropoutIsDecidedOnceForEveryModule() throws {
        // Out of training: no dropout whatever the rate; in training: a seed is required.
        #expect(try Dropout.forCall(probability: 0.3, probabilityArgument: "p", training: false, seed: nil) == nil)
        #expect(try Dropout.forCall(probability: 0, probabilityArgument: "p", training: true, seed: nil) == nil)
        #expect(try Dropout.forCall(probability: 0.3, probabilityArgument: "p", training: true, seed: 9)
                == Dropout(probability: 0.3, seed: 9))
        expectModuleError(argument: "seed") {
            _ = try Dropout.forCall(probability: 0.3, probabilityArgument: "p", training: true, seed: nil, seedArgument: "seed")
        }
        expectModuleError(argument: "p") {
            _ = try Dropout.forCall(probability: 1, probabilityArgument: "p", training: false, seed: nil)
        }
    }
}
