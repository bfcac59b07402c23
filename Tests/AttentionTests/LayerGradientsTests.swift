import Testing

@testable import Attention

@Suite("Layer gradients")
struct LayerGradientsTests {
    /// A layer of a tensor checked against finite differences: every parameter and the input.
    private func check<L: DifferentiableLayer>(
        _ layer: L, input: Tensor, seed: UInt64 = 1, tolerance: Double = 2e-2,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws where L.Input == Tensor, L.Output == Tensor, L.InputGradient == Tensor {
        var rng = SeededGenerator(seed: seed)
        let (output, pullback) = try layer.callWithPullback(input)
        #expect(output == (try layer(input)), "callWithPullback's output is callAsFunction's", sourceLocation: sourceLocation)
        let dy = try Tensor(randomNormal: output.shape, using: &rng)
        let gradients = try pullback(dy)
        try expectParameterGradients(of: layer, gradients.parameters, tolerance: tolerance, sourceLocation: sourceLocation) {
            weightedSum(try $0(input), dy)
        }
        try expectFiniteDifferences(
            of: { weightedSum(try layer($0), dy) }, at: input, analytic: gradients.input, tolerance: tolerance, "input",
            sourceLocation: sourceLocation)
    }

    @Test func linearInBothLayouts() throws {
        var rng = SeededGenerator(seed: 2)
        let x = try Tensor(randomNormal: [2, 3, 7], using: &rng)
        try check(try Linear(inputSize: 7, outputSize: 5, using: &rng), input: x)
        try check(try Linear(inputSize: 7, outputSize: 5, bias: false, using: &rng), input: x)
        let kernel = try Tensor(randomNormal: [7, 2, 3], using: &rng)
        try check(try Linear(kernel: kernel, bias: Tensor(randomNormal: [2, 3], using: &rng), inputAxes: 1), input: x)
    }

    @Test func linearGradientNames() throws {
        var rng = SeededGenerator(seed: 3)
        let linear = try Linear(inputSize: 4, outputSize: 3, using: &rng)
        let (y, pullback) = try linear.callWithPullback(try Tensor(randomNormal: [5, 4], using: &rng))
        let gradients = try pullback(try Tensor(ones: y.shape))
        #expect(gradients.parameters.names == ["weight", "bias"])
        #expect(gradients.parameters.map(\.name) == ["weight", "bias"])
        #expect(gradients.parameters["weight"]?.shape == [3, 4])
        #expect(gradients.parameters["bias"]?.scalars == [5, 5, 5])
        #expect(gradients.parameters["kernel"] == nil)
    }

    @Test func wrongOutputGradientIsNamed() throws {
        var rng = SeededGenerator(seed: 4)
        let linear = try Linear(inputSize: 4, outputSize: 3, using: &rng)
        let (_, pullback) = try linear.callWithPullback(try Tensor(randomNormal: [5, 4], using: &rng))
        #expect(throws: AttentionError.shapeMismatch(argument: "outputGradient", expected: "[5, 3], the output's shape", actual: [3, 5])) {
            try pullback(try Tensor(zeros: [3, 5]))
        }
        #expect(throws: AttentionError.self) { try pullback(try Tensor(zeros: [5, 3], dtype: .bfloat16)) }
    }

    @Test func emptyInputGivesZeroParameterGradients() throws {
        var rng = SeededGenerator(seed: 5)
        let linear = try Linear(inputSize: 4, outputSize: 3, using: &rng)
        let (y, pullback) = try linear.callWithPullback(try Tensor(zeros: [0, 4]))
        let gradients = try pullback(try Tensor(zeros: y.shape))
        #expect(gradients.parameters["weight"] == (try Tensor(zeros: [3, 4])))
        #expect(gradients.parameters["bias"] == (try Tensor(zeros: [3])))
        #expect(gradients.input.shape == [0, 4])
    }

    @Test func norms() throws {
        var rng = SeededGenerator(seed: 6)
        let x = try Tensor(randomNormal: [3, 2, 6], using: &rng)
        var norm = try LayerNorm(size: 6)
        norm.weight = try Tensor(randomNormal: [6], using: &rng)
        norm.bias = try Tensor(randomNormal: [6], using: &rng)
        try check(norm, input: x)
        try check(try LayerNorm(size: 6, bias: false), input: x)
        try check(try LayerNorm(size: 6, elementwiseAffine: false), input: x)
        try check(try LayerNorm(size: 6, epsilon: 1e-6, variance: .fast), input: x)
        try check(try RMSNorm(weight: Tensor(randomNormal: [6], using: &rng), epsilon: 1e-6), input: x)
    }

    @Test(arguments: Activation.allCases) func activation(_ activation: Activation) throws {
        var rng = SeededGenerator(seed: 7)
        // Away from relu's kink, where a finite difference straddles it.
        let x = try Tensor(randomNormal: [4, 5], using: &rng).map { abs($0) < 0.05 ? $0 + 0.2 : $0 }
        try check(activation, input: x)
    }

    @Test(arguments: [Activation.silu, .gelu, .geluTanh]) func gatedActivation(_ activation: Activation) throws {
        var rng = SeededGenerator(seed: 8)
        let x = try Tensor(randomNormal: [3, 8], using: &rng)
        let (y, pullback) = try activation.gatedWithPullback(x)
        #expect(y == (try activation.gated(x)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        try expectFiniteDifferences(
            of: { weightedSum(try activation.gated($0), dy) }, at: x, analytic: try pullback(dy).input, "input")
    }

    @Test func dropoutUsesTheForwardsDecisions() throws {
        var rng = SeededGenerator(seed: 9)
        let dropout = Dropout(probability: 0.4, seed: 11)
        let x = try Tensor(randomNormal: [6, 7], using: &rng)
        let (y, pullback) = try dropout.callWithPullback(x)
        let dx = try pullback(try Tensor(ones: y.shape)).input
        for (kept, gradient) in zip(y.scalars.map { $0 != 0 }, dx.scalars) {
            #expect(gradient == (kept ? 1 / 0.6 : 0))
        }
    }

    /// Every `Layer` of the library is a `DifferentiableLayer` (checked when the test compiles).
    @Test func everyLayerIsDifferentiable() {
        func differentiable<L: DifferentiableLayer>(_: L.Type) -> String { "\(L.self)" }
        let names = [
            differentiable(Linear.self), differentiable(LayerNorm.self), differentiable(RMSNorm.self),
            differentiable(Activation.self), differentiable(Dropout.self), differentiable(Embedding.self),
            differentiable(RotaryPositionalEmbedding.self), differentiable(SqueezeExcitation.self),
            differentiable(TorchMultiheadAttention.self), differentiable(TransformerEncoderLayer.self),
            differentiable(TransformerEncoder.self), differentiable(TransformerDecoderLayer.self),
            differentiable(TransformerDecoder.self), differentiable(Transformer.self),
            differentiable(MultiheadAttention.self), differentiable(MultiHeadDotProductAttention.self),
            differentiable(SelfAttention.self), differentiable(CausalSelfAttention.self),
            differentiable(CrossAttention.self), differentiable(MultiHeadAttentionWrapper.self),
        ]
        #expect(Set(names).count == 20)
    }

    @Test func squeezeExcitation() throws {
        var rng = SeededGenerator(seed: 12)
        // silu, not the default relu: a finite difference on fc1 straddles relu's kink.
        let se = try SqueezeExcitation(inputChannels: 4, squeezeChannels: 3, activation: .silu, using: &rng)
        try check(se, input: try Tensor(randomNormal: [2, 4, 3, 5], using: &rng))
        try check(se, input: try Tensor(randomNormal: [4, 2, 2], using: &rng))
        let smooth = try SqueezeExcitation(
            inputChannels: 4, squeezeChannels: 2, activation: .gelu, scaleActivation: .tanh, using: &rng)
        try check(smooth, input: try Tensor(randomNormal: [3, 4, 2, 3], using: &rng))
        let (y, pullback) = try se.callWithPullback(try Tensor(zeros: [0, 4, 3, 3]))
        let gradients = try pullback(try Tensor(zeros: y.shape))
        #expect(gradients.parameters["fc1.weight"] == (try Tensor(zeros: [3, 4, 1, 1])))
        #expect(gradients.input.shape == [0, 4, 3, 3])
    }

    @Test(arguments: RotaryPositionalEmbedding.Pairing.allCases) func rotaryEmbedding(_ pairing: RotaryPositionalEmbedding.Pairing) throws {
        var rng = SeededGenerator(seed: 13)
        let rope = try RotaryPositionalEmbedding(embeddingSize: 6, theta: 100, pairing: pairing)
        try check(rope, input: try Tensor(randomNormal: [2, 5, 6], using: &rng))
        let x = try Tensor(randomNormal: [3, 6], using: &rng)
        let (y, pullback) = try rope.callWithPullback(x, positionOffset: 7)
        #expect(y == (try rope(x, positionOffset: 7)))
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let copy = dy
        let dx = try pullback(dy).input
        #expect(dy == copy, "the output gradient is not rotated in place")
        try expectFiniteDifferences(of: { weightedSum(try rope($0, positionOffset: 7), dy) }, at: x, analytic: dx, "x")
        #expect(Array(pullback.outputShape) == [3, 6])
    }

    @Test func embeddingSkipsThePaddingRow() throws {
        var rng = SeededGenerator(seed: 10)
        let embedding = try Embedding(count: 5, dimension: 3, paddingIndex: 1, using: &rng)
        #expect(embedding.weight.scalars[3..<6].allSatisfy { $0 == 0 })
        let tokens = try IndexArray(shape: [2, 3], indices: [0, 1, 4, 4, 1, 2])
        let (y, pullback) = try embedding.callWithPullback(tokens)
        #expect(y.shape == [2, 3, 3])
        let dy = try Tensor(randomNormal: y.shape, using: &rng)
        let dWeight = try #require(try pullback(dy).parameters["weight"]).scalars
        let g = dy.scalars
        #expect(dWeight[0..<3].elementsEqual(g[0..<3]))
        #expect(dWeight[3..<6].allSatisfy { $0 == 0 })
        #expect(dWeight[6..<9].elementsEqual(g[15..<18]))
        #expect(dWeight[9..<12].allSatisfy { $0 == 0 })
        for c in 0..<3 { #expect(dWeight[12 + c] == g[6 + c] + g[9 + c]) }
        #expect(throws: AttentionError.invalidArgument(argument: "input[1]", reason: "5 is not in 0..<5")) {
            try embedding(IndexArray([0, 5]))
        }
    }
}

extension Tensor {
    /// This tensor with `transform` applied to every element (a test helper).
    func map(_ transform: (Float) -> Float) throws -> Tensor {
        try Tensor(shape: shape, scalars: scalars.map(transform))
    }
}
