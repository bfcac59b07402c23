import Testing

@testable import Attention

/// Compares every parameter gradient of `gradients` with the fixture's `output.grad.<name>`, and
/// checks that the fixture has no gradient the module lacks.
func expectParameterGradientsMatch<Module: ParameterizedModule>(
    _ gradients: ParameterGradients<Module>, _ fixture: TorchFixture, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    try expectParameterGradientsMatch(gradients, fixture.file, what, sourceLocation: sourceLocation)
}

/// As the function above, for any fixture file.
func expectParameterGradientsMatch<Module: ParameterizedModule>(
    _ gradients: ParameterGradients<Module>, _ file: SafeTensors, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let expected = file.names.filter { $0.hasPrefix("output.grad.") }.map { String($0.dropFirst("output.grad.".count)) }
    #expect(Set(expected) == Set(gradients.names), "\(what): gradient names", sourceLocation: sourceLocation)
    for (name, gradient) in gradients {
        expectFixtureClose(
            gradient, try file.tensor(named: "output.grad.\(name)"), rtol: 1e-4, atol: 1e-5, "\(what) \(name)",
            sourceLocation: sourceLocation)
    }
}

extension KernelTests {
    @Suite("PyTorch modules' gradients against torch.autograd")
    struct TorchGradientFixtureTests {
        @Test(arguments: TorchMultiheadAttentionTests.fixtures)
        func multiheadAttention(name: String) throws {
            let fixture = try TorchFixture(name)
            let mha = try TorchMultiheadAttentionTests.module(fixture)
            let query = try fixture.tensor("input.query")
            let selfAttention = try fixture.bool("self_attention")
            let key = selfAttention ? query : try fixture.tensor("input.key")
            let value = selfAttention ? query : try fixture.tensor("input.value")
            let (_, pullback) = try mha.callWithPullback(
                .init(
                    query: query, key: key, value: value, keyPaddingMask: fixture.torchMask("input.key_padding_mask"),
                    needWeights: fixture.bool("need_weights"), attentionMask: fixture.torchMask("input.attn_mask"),
                    averageAttentionWeights: fixture.bool("average_attn_weights"), isCausal: fixture.bool("is_causal")))
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture, name)
            for (argument, gradient) in [("query", gradients.input.query), ("key", gradients.input.key), ("value", gradients.input.value)] {
                expectFixtureClose(gradient, try fixture.tensor("output.input_grad.\(argument)"), rtol: 1e-4, atol: 1e-5, "\(name) d\(argument)")
            }
        }

        @Test(arguments: EncoderTests.torchLayerFixtures)
        func encoderLayer(name: String) throws {
            let fixture = try TorchFixture(name)
            var layer = try EncoderTests.torchLayer(fixture)
            try layer.loadParameters(from: fixture.file, prefix: "param.")
            let (_, pullback) = try layer.callWithPullback(
                fixture.tensor("input.x"), mask: fixture.torchMask("input.src_mask"),
                keyPaddingMask: fixture.torchMask("input.src_key_padding_mask"), isCausal: fixture.bool("is_causal"))
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture, name)
            expectFixtureClose(gradients.input, try fixture.tensor("output.input_grad.x"), rtol: 1e-4, atol: 1e-5, "\(name) dx")
        }
    }
}

extension KernelTests.TorchGradientFixtureTests {
    @Test func encoderWithFinalNorm() throws {
        let fixture = try TorchFixture("torch_encoder_2layers_final_norm")
        var encoder = try TransformerEncoder(
            layer: KernelTests.EncoderTests.torchLayer(fixture), count: fixture.int("num_layers"),
            norm: LayerNorm(size: fixture.int("d_model"), epsilon: 1e-5, bias: fixture.bool("bias")))
        try encoder.loadParameters(from: fixture.file, prefix: "param.")
        let (_, pullback) = try encoder.callWithPullback(
            fixture.tensor("input.x"), mask: fixture.torchMask("input.src_mask"),
            keyPaddingMask: fixture.torchMask("input.src_key_padding_mask"), isCausal: fixture.bool("is_causal"))
        let gradients = try pullback(fixture.tensor("input.outputGradient"))
        try expectParameterGradientsMatch(gradients.parameters, fixture, fixture.name)
        expectFixtureClose(gradients.input, try fixture.tensor("output.input_grad.x"), rtol: 1e-4, atol: 1e-5, "dx")
    }
}
