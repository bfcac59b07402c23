import Testing

@testable import Attention

@Suite("Tutorial module gradients")
struct TutorialModuleGradientsTests {
    /// Checks a tutorial module on `x` (and `context`) against finite differences: every weight,
    /// `x` and the context.
    private func check<Module: DifferentiableLayer>(
        _ module: Module, x: Tensor, context: Tensor? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) throws where Module.Input == TutorialAttentionInputs, Module.Output == AttentionResult,
        Module.InputGradient == TutorialAttentionGradients
    {
        var rng = SeededGenerator(seed: 51)
        func run(_ x: Tensor, _ context: Tensor?) throws -> Tensor { try module(.init(x: x, context: context)).output }
        let (result, pullback) = try module.callWithPullback(.init(x: x, context: context, returningWeights: true))
        #expect(result == (try module(.init(x: x, context: context, returningWeights: true))), sourceLocation: sourceLocation)
        let dy = try Tensor(randomNormal: result.output.shape, using: &rng)
        let gradients = try pullback(dy)
        #expect(gradients.parameters.names == module.parameterPaths.map(\.name), sourceLocation: sourceLocation)
        try expectParameterGradients(of: module, gradients.parameters, sourceLocation: sourceLocation) {
            weightedSum(try $0(.init(x: x, context: context)).output, dy)
        }
        try expectFiniteDifferences(
            of: { weightedSum(try run($0, context), dy) }, at: x, analytic: gradients.input.x, "x",
            sourceLocation: sourceLocation)
        #expect((gradients.input.context == nil) == (context == nil), sourceLocation: sourceLocation)
        if let context {
            try expectFiniteDifferences(
                of: { weightedSum(try run(x, $0), dy) }, at: context, analytic: gradients.input.context, "context",
                sourceLocation: sourceLocation)
        }
    }

    @Test func selfAttention() throws {
        var rng = SeededGenerator(seed: 52)
        try check(try SelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng), x: try Tensor(randomNormal: [6, 3], using: &rng))
        try check(
            try CausalSelfAttention(dIn: 3, dOutKQ: 2, dOutV: 4, using: &rng),
            x: try Tensor(randomNormal: [2, 5, 3], using: &rng))
    }

    @Test func crossAttention() throws {
        var rng = SeededGenerator(seed: 53)
        let cross = try CrossAttention(dIn: 3, dOutKQ: 4, dOutV: 2, using: &rng)
        let x1 = try Tensor(randomNormal: [2, 4, 3], using: &rng)
        try check(cross, x: x1, context: try Tensor(randomNormal: [2, 6, 3], using: &rng))
        // One tensor passed as both sequences still gets one gradient per argument.
        try check(cross, x: x1, context: x1)
    }

    @Test func multiHeadWrapper() throws {
        var rng = SeededGenerator(seed: 54)
        let attention = try MultiHeadAttentionWrapper(dIn: 3, dOutKQ: 2, dOutV: 3, heads: 3, using: &rng)
        try check(attention, x: try Tensor(randomNormal: [2, 5, 3], using: &rng))
        try check(attention, x: try Tensor(randomNormal: [4, 3], using: &rng))
    }
}
