import Testing

@testable import Attention

@Suite("PyTorch decoder gradients")
struct DecoderGradientsTests {
    @Test(arguments: [false, true]) func decoderLayer(normFirst: Bool) throws {
        var rng = SeededGenerator(seed: 61)
        let layer = try TransformerDecoderLayer(
            dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0, activation: .gelu, batchFirst: true, normFirst: normFirst,
            using: &rng)
        let target = try Tensor(randomNormal: [2, 4, 8], using: &rng)
        let memory = try Tensor(randomNormal: [2, 5, 8], using: &rng)
        let causal = try TorchMask.squareSubsequent(4)
        let padding = try TorchMask.disallowed(BooleanMask(shape: [2, 5]) { $0[0] == 1 && $0[1] >= 3 })
        func run(_ layer: TransformerDecoderLayer, _ target: Tensor, _ memory: Tensor) throws -> Tensor {
            try layer(target, memory: memory, targetMask: causal, memoryKeyPaddingMask: padding)
        }
        let (y, pullback) = try layer.callWithPullback(target, memory: memory, targetMask: causal, memoryKeyPaddingMask: padding)
        #expect(y == (try run(layer, target, memory)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters.names == layer.parameterPaths.map(\.name))
        try expectParameterGradients(of: layer, gradients.parameters, samples: 4) { weightedSum(try run($0, target, memory), dy) }
        try expectFiniteDifferences(
            of: { weightedSum(try run(layer, $0, memory), dy) }, at: target, analytic: gradients.input.target, "target")
        try expectFiniteDifferences(
            of: { weightedSum(try run(layer, target, $0), dy) }, at: memory, analytic: gradients.input.memory, "memory")
    }

    @Test func decoderSumsTheMemoryGradientOfEveryLayer() throws {
        var rng = SeededGenerator(seed: 62)
        let layers = try (0..<2).map { _ in
            try TransformerDecoderLayer(dModel: 8, heads: 2, feedForwardSize: 12, dropout: 0.2, using: &rng)
        }
        let decoder = try TransformerDecoder(layers: layers, norm: LayerNorm(size: 8))
        let target = try Tensor(randomNormal: [3, 2, 8], using: &rng)   // (L, N, E)
        let memory = try Tensor(randomNormal: [4, 2, 8], using: &rng)
        func run(_ decoder: TransformerDecoder, _ target: Tensor, _ memory: Tensor) throws -> Tensor {
            try decoder(target, memory: memory, training: true, dropoutSeed: 9)
        }
        let (y, pullback) = try decoder.callWithPullback(target, memory: memory, training: true, dropoutSeed: 9)
        #expect(y == (try run(decoder, target, memory)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters["layers.1.multihead_attn.in_proj_weight"]?.shape == [24, 8])
        try expectParameterGradients(of: decoder, gradients.parameters, samples: 2) { weightedSum(try run($0, target, memory), dy) }
        try expectFiniteDifferences(
            of: { weightedSum(try run(decoder, $0, memory), dy) }, at: target, analytic: gradients.input.target, "target")
        try expectFiniteDifferences(
            of: { weightedSum(try run(decoder, target, $0), dy) }, at: memory, analytic: gradients.input.memory, "memory")
    }

    @Test func transformer() throws {
        var rng = SeededGenerator(seed: 63)
        let model = try Transformer(
            dModel: 8, heads: 2, encoderLayerCount: 1, decoderLayerCount: 1, feedForwardSize: 12, dropout: 0,
            activation: .gelu, batchFirst: true, using: &rng)
        let source = try Tensor(randomNormal: [2, 5, 8], using: &rng)
        let target = try Tensor(randomNormal: [2, 3, 8], using: &rng)
        let causal = try TorchMask.squareSubsequent(3)
        func run(_ model: Transformer, _ source: Tensor, _ target: Tensor) throws -> Tensor {
            try model(source, target: target, targetMask: causal)
        }
        let (y, pullback) = try model.callWithPullback(source, target: target, targetMask: causal)
        #expect(y == (try run(model, source, target)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters.names == model.parameterPaths.map(\.name))
        try expectParameterGradients(of: model, gradients.parameters, samples: 2) { weightedSum(try run($0, source, target), dy) }
        try expectFiniteDifferences(
            of: { weightedSum(try run(model, $0, target), dy) }, at: source, analytic: gradients.input.source, "source")
        try expectFiniteDifferences(
            of: { weightedSum(try run(model, source, $0), dy) }, at: target, analytic: gradients.input.target, "target")
    }
}
