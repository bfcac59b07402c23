import Testing

@testable import Attention

/// The input gradients of an attention module against `output.input_grad.query/key/value`.
private func expectInputGradientsMatch(_ gradients: AttentionGradients, _ file: SafeTensors, _ what: String) throws {
    for (argument, gradient) in [("query", gradients.query), ("key", gradients.key), ("value", gradients.value)] {
        expectFixtureClose(gradient, try file.tensor(named: "output.input_grad.\(argument)"), rtol: 1e-4, atol: 1e-5, "\(what) d\(argument)")
    }
}

extension KernelTests {
    /// The gradients of the Equinox, noxton, Flax and tutorial modules against `jax.grad` through
    /// the reference modules themselves (and torch.autograd for the tutorial's PyTorch classes).
    @Suite("Equinox, noxton, Flax and tutorial gradients against the references")
    struct JaxGradientFixtureTests {
        @Test(arguments: [
            "eqx_mha_defaults", "eqx_mha_all_biases", "eqx_mha_sizes", "eqx_mha_cross_lengths", "eqx_mha_mask2d",
            "eqx_mha_mask3d", "eqx_mha_batched", "eqx_mha_rope_theta10000", "eqx_mha_rope_theta100",
            "eqx_mha_rope_self_attention",
        ])
        func equinoxMultiheadAttention(name: String) throws {
            let fixture = try ModuleFixture(name)
            let attention = try equinoxAttention(fixture)
            let rope = try (fixture.config["rope"] as? [String: Any]).map { rope in
                try RotaryPositionalEmbedding(
                    embeddingSize: try #require(rope["embedding_size"] as? Int), theta: Float(try #require(rope["theta"] as? Double)))
            }
            let query = try fixture.tensor("input.query")
            let selfAttention = try fixture.config["self_attention"] as? Bool ?? false
            let key = selfAttention ? query : try fixture.tensor("input.key")
            let value = selfAttention ? query : try fixture.tensor("input.value")
            let (_, pullback) = try attention.callWithPullback(
                .init(query: query, key: key, value: value, mask: fixture.mask(), rotary: rope))
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture.file, name)
            try expectInputGradientsMatch(gradients.input, fixture.file, name)
        }

        @Test(arguments: [
            "flax_mhdpa_defaults", "flax_mhdpa_cross", "flax_mhdpa_no_bias", "flax_mhdpa_mask", "flax_mhdpa_normalize_qk",
        ])
        func flaxMultiHeadDotProductAttention(name: String) throws {
            let fixture = try FlaxFixture(name)
            let query = try fixture.tensor("input.query"), key = try fixture.tensor("input.key")
            let value = try fixture.tensor("input.value")
            let module = try fixture.module(
                queryFeatures: query.shape.last!, keyFeatures: key.shape.last!, valueFeatures: value.shape.last!)
            let selfAttention = fixture.config["self_attention"] as? Bool ?? false
            let (_, pullback) = try module.callWithPullback(
                .init(query: query, key: selfAttention ? query : key, value: selfAttention ? query : value, mask: fixture.mask("input.mask")))
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture.file, name)
            try expectInputGradientsMatch(gradients.input, fixture.file, name)
        }

        @Test func noxtonEncoderLayer() throws {
            let fixture = try TorchFixture("noxton_encoder_layer")
            var layer = try EncoderTests.noxtonLayer(fixture)
            try layer.loadParameters(from: fixture.file, prefix: "param.")
            let (_, pullback) = try layer.callWithPullback(fixture.tensor("input.x"), mask: fixture.allowedMask("input.attn_mask"))
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture, fixture.name)
            expectFixtureClose(gradients.input, try fixture.tensor("output.input_grad.x"), rtol: 1e-4, atol: 1e-5, "dx")
        }

        @Test func noxtonEncoder() throws {
            let fixture = try TorchFixture("noxton_encoder")
            let encoder = try EncoderTests.noxtonEncoder(fixture)
            let (_, pullback) = try encoder.callWithPullback(fixture.tensor("input.x"), isCausal: fixture.bool("is_causal"))
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture, fixture.name)
            expectFixtureClose(gradients.input, try fixture.tensor("output.input_grad.x"), rtol: 1e-4, atol: 1e-5, "dx")
        }

        @Test(arguments: [("noxton_se_default", Activation.relu), ("noxton_se_silu", .silu), ("noxton_se_batched", .relu)])
        func noxtonSqueezeExcitation(name: String, activation: Activation) throws {
            let fixture = try TorchFixture(name)
            var se = try SqueezeExcitationTests.loaded(fixture)
            se.activation = activation
            let (_, pullback) = try se.callWithPullback(fixture.tensor("input.x"))
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture, name)
            expectFixtureClose(gradients.input, try fixture.tensor("output.input_grad.x"), rtol: 1e-4, atol: 1e-5, "\(name) dx")
        }

        @Test func tutorialModules() throws {
            var rng = SeededGenerator(seed: 0)
            let fixtureSelf = try ModuleFixture("tutorial_self_attention")
            var selfAttention = try SelfAttention(dIn: 6, dOutKQ: 4, dOutV: 5, using: &rng)
            try selfAttention.loadParameters(from: fixtureSelf.file, prefix: "param.")
            try expectTutorial(selfAttention, fixtureSelf, .init(x: fixtureSelf.tensor("input.x")), context: false)
            let fixtureCausal = try ModuleFixture("tutorial_causal_self_attention")
            var causal = try CausalSelfAttention(dIn: 6, dOutKQ: 4, dOutV: 5, using: &rng)
            try causal.loadParameters(from: fixtureCausal.file, prefix: "param.")
            try expectTutorial(causal, fixtureCausal, .init(x: fixtureCausal.tensor("input.x")), context: false)
            let fixtureCross = try ModuleFixture("tutorial_cross_attention")
            var cross = try CrossAttention(dIn: 6, dOutKQ: 4, dOutV: 5, using: &rng)
            try cross.loadParameters(from: fixtureCross.file, prefix: "param.")
            try expectTutorial(
                cross, fixtureCross, .init(x: fixtureCross.tensor("input.x_1"), context: fixtureCross.tensor("input.x_2")), context: true)
            let fixtureWrapper = try ModuleFixture("tutorial_mha_wrapper")
            var wrapper = try MultiHeadAttentionWrapper(dIn: 6, dOutKQ: 4, dOutV: 5, heads: 3, using: &rng)
            try wrapper.loadParameters(from: fixtureWrapper.file, prefix: "param.")
            try expectTutorial(wrapper, fixtureWrapper, .init(x: fixtureWrapper.tensor("input.x")), context: false)
        }

        private func expectTutorial<M: DifferentiableLayer>(
            _ module: M, _ fixture: ModuleFixture, _ inputs: TutorialAttentionInputs, context: Bool
        ) throws where M.Input == TutorialAttentionInputs, M.Output == AttentionResult, M.InputGradient == TutorialAttentionGradients {
            let (_, pullback) = try module.callWithPullback(inputs)
            let gradients = try pullback(fixture.tensor("input.outputGradient"))
            try expectParameterGradientsMatch(gradients.parameters, fixture.file, fixture.name)
            let x = context ? "x_1" : "x"
            expectFixtureClose(gradients.input.x, try fixture.tensor("output.input_grad.\(x)"), rtol: 1e-4, atol: 1e-5, "\(fixture.name) dx")
            if context {
                let dContext = try #require(gradients.input.context)
                expectFixtureClose(dContext, try fixture.tensor("output.input_grad.x_2"), rtol: 1e-4, atol: 1e-5, "\(fixture.name) dcontext")
            }
        }
    }
}
