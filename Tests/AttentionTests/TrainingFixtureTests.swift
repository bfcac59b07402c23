import Testing

@testable import Attention

/// The `train_*` fixtures (`Tests/Fixtures/generate_training_fixtures.py`): torch.autograd
/// gradients of the leaf layers, torch's losses, and torch.optim's steps on given gradients.
@Suite("Layers, losses and optimisers against PyTorch")
struct TrainingFixtureTests {
    /// A tensor layer against its fixture: the output, every parameter's gradient, the input's.
    private func check<L: DifferentiableLayer>(_ layer: L, _ fixture: TorchFixture) throws
    where L.Input == Tensor, L.Output == Tensor, L.InputGradient == Tensor {
        let (output, pullback) = try layer.callWithPullback(fixture.tensor("input.x"))
        expectFixtureClose(output, try fixture.tensor("output.out"), "\(fixture.name) out")
        let gradients = try pullback(fixture.tensor("input.outputGradient"))
        try expectParameterGradientsMatch(gradients.parameters, fixture, fixture.name)
        expectFixtureClose(gradients.input, try fixture.tensor("output.input_grad.x"), rtol: 1e-4, atol: 1e-5, "\(fixture.name) dx")
    }

    @Test(arguments: ["train_linear", "train_linear_no_bias"]) func linear(name: String) throws {
        let fixture = try TorchFixture(name)
        let bias = fixture.file.contains("param.bias") ? try fixture.tensor("param.bias") : nil
        try check(try Linear(weight: fixture.tensor("param.weight"), bias: bias), fixture)
    }

    @Test(arguments: ["train_layer_norm", "train_layer_norm_no_bias", "train_layer_norm_no_affine"])
    func layerNorm(name: String) throws {
        let fixture = try TorchFixture(name)
        var norm = try LayerNorm(
            size: fixture.tensor("input.x").shape.last!, elementwiseAffine: fixture.bool("elementwise_affine"),
            bias: fixture.bool("bias"))
        try norm.loadParameters(from: fixture.file, prefix: "param.")
        try check(norm, fixture)
    }

    @Test func rmsNorm() throws {
        let fixture = try TorchFixture("train_rms_norm")
        try check(try RMSNorm(weight: fixture.tensor("param.weight"), epsilon: 1e-6), fixture)
    }

    @Test(arguments: [
        ("train_relu", Activation.relu), ("train_gelu", .gelu), ("train_gelu_tanh", .geluTanh),
        ("train_sigmoid", .sigmoid), ("train_silu", .silu), ("train_tanh", .tanh),
    ])
    func activation(name: String, activation: Activation) throws {
        try check(activation, try TorchFixture(name))
    }

    @Test(arguments: [("train_swiglu", Activation.silu), ("train_geglu", .gelu)])
    func gatedActivation(name: String, activation: Activation) throws {
        let fixture = try TorchFixture(name)
        let (output, pullback) = try activation.gatedWithPullback(fixture.tensor("input.x"))
        expectFixtureClose(output, try fixture.tensor("output.out"), "\(name) out")
        let dx = try pullback(fixture.tensor("input.outputGradient")).input
        expectFixtureClose(dx, try fixture.tensor("output.input_grad.x"), rtol: 1e-4, atol: 1e-5, "\(name) dx")
    }

    @Test func embedding() throws {
        let fixture = try TorchFixture("train_embedding")
        let embedding = try Embedding(weight: fixture.tensor("param.weight"), paddingIndex: fixture.int("padding_idx"))
        let ids = try fixture.tensor("input.indices")
        let (output, pullback) = try embedding.callWithPullback(
            IndexArray(shape: ids.shape, indices: ids.scalars.map { Int($0) }))
        expectFixtureClose(output, try fixture.tensor("output.out"), "embedding out")
        try expectParameterGradientsMatch(try pullback(fixture.tensor("input.outputGradient")).parameters, fixture, "embedding")
    }

    @Test(arguments: [
        "train_cross_entropy_mean", "train_cross_entropy_sum", "train_cross_entropy_none",
        "train_cross_entropy_label_smoothing", "train_cross_entropy_ignore_index",
    ])
    func crossEntropy(name: String) throws {
        let fixture = try TorchFixture(name)
        let reduction: LossReduction = switch try fixture.string("reduction") {
        case "sum": .sum
        case "none": .none
        default: .mean
        }
        let targets = try fixture.tensor("input.targets")
        let loss = try Attention.crossEntropy(
            logits: fixture.tensor("input.logits"), targets: IndexArray(shape: targets.shape, indices: targets.scalars.map { Int($0) }),
            ignoreIndex: fixture.int("ignore_index"),
            labelSmoothing: Float(try #require(fixture.config["label_smoothing"] as? Double)), reduction: reduction)
        expectFixtureClose(loss.value, try fixture.tensor("output.loss"), rtol: 1e-6, atol: 1e-6, "\(name) loss")
        expectFixtureClose(loss.gradient, try fixture.tensor("output.grad.logits"), rtol: 1e-6, atol: 1e-7, "\(name) gradient")
    }

    @Test(arguments: [("train_mse_mean", LossReduction.mean), ("train_mse_sum", .sum), ("train_mse_none", .none)])
    func meanSquaredError(name: String, reduction: LossReduction) throws {
        let fixture = try TorchFixture(name)
        let loss = try Attention.meanSquaredError(
            prediction: fixture.tensor("input.prediction"), target: fixture.tensor("input.target"), reduction: reduction)
        expectFixtureClose(loss.value, try fixture.tensor("output.loss"), rtol: 1e-6, atol: 1e-6, "\(name) loss")
        expectFixtureClose(loss.gradient, try fixture.tensor("output.grad.prediction"), rtol: 1e-6, atol: 1e-7, "\(name) gradient")
    }
}

/// The three tensors the optimiser fixtures update.
private struct ThreeTensors: ParameterizedModule {
    var weight: Tensor, bias: Tensor, kernel: Tensor

    var parameterPaths: [ParameterPath<ThreeTensors>] {
        [ParameterPath("weight", \.weight), ParameterPath("bias", \.bias), ParameterPath("kernel", \.kernel)]
    }

    init(_ fixture: TorchFixture, _ prefix: String) throws {
        (weight, bias, kernel) = (
            try fixture.tensor("\(prefix)weight"), try fixture.tensor("\(prefix)bias"), try fixture.tensor("\(prefix)kernel"))
    }
}

/// Throws unless every element of `actual` is within one ulp of `expected`'s.
private func expectWithinOneULP(_ actual: Tensor, _ expected: Tensor, _ what: String) {
    for (a, b) in zip(actual.scalars, expected.scalars) where a != b {
        #expect(abs(a - b) <= b.ulp, "\(what): \(a) vs torch's \(b)")
    }
}

extension TrainingFixtureTests {
    @Test(arguments: [
        "train_optim_sgd_plain", "train_optim_sgd_momentum", "train_optim_sgd_nesterov", "train_optim_adamw",
        "train_optim_adamw_amsgrad", "train_optim_adamw_clip_schedule",
    ])
    func optimizerStepsMatchTorch(name: String) throws {
        let fixture = try TorchFixture(name)
        var parameters = try ThreeTensors(fixture, "param.")
        func number(_ key: String) throws -> Float { Float(try #require(fixture.config[key] as? Double, "\(key)")) }
        var sgd: SGD? = nil, adamW: AdamW? = nil
        if try fixture.string("optimizer") == "SGD" {
            sgd = SGD(
                learningRate: try number("lr"), momentum: fixture.has("momentum") ? try number("momentum") : 0,
                dampening: fixture.has("dampening") ? try number("dampening") : 0,
                nesterov: fixture.has("nesterov") ? try fixture.bool("nesterov") : false,
                weightDecay: fixture.has("weight_decay") ? try number("weight_decay") : 0)
        } else {
            let betas = try #require(fixture.config["betas"] as? [Double])
            adamW = AdamW(
                learningRate: try number("lr"), beta1: Float(betas[0]), beta2: Float(betas[1]), epsilon: try number("eps"),
                weightDecay: try number("weight_decay"), amsgrad: try fixture.bool("amsgrad"))
        }
        let clipped = fixture.has("clip")
        let schedule = try LearningRateSchedule(peak: 0.01, warmupSteps: 2, totalSteps: 5)
        for step in 0..<(try fixture.int("steps")) {
            var gradients = ParameterGradients(values: try ThreeTensors(fixture, "input.grad.\(step)."))
            if clipped {
                let norm = try clipGradientNorm(&gradients, maxNorm: 0.5)
                expectFixtureClose(try Tensor(shape: [], scalars: [norm]), try fixture.tensor("output.norm.\(step)"), rtol: 1e-6, atol: 0, "norm \(step)")
                adamW!.learningRate = schedule.rate(atStep: step)
                expectFixtureClose(try Tensor(shape: [], scalars: [adamW!.learningRate]), try fixture.tensor("output.lr.\(step)"), rtol: 1e-7, atol: 0, "lr \(step)")
            }
            if sgd != nil { try sgd!.update(&parameters, along: gradients) } else { try adamW!.update(&parameters, along: gradients) }
            let expected = try ThreeTensors(fixture, "output.step\(step).")
            for (path, part) in [(\ThreeTensors.weight, "weight"), (\.bias, "bias"), (\.kernel, "kernel")] {
                if clipped {
                    // torch scales by its float32 norm, computed in another order: a few ulps apart.
                    expectFixtureClose(parameters[keyPath: path], expected[keyPath: path], rtol: 1e-6, atol: 1e-7, "\(name) step \(step) \(part)")
                } else {
                    expectWithinOneULP(parameters[keyPath: path], expected[keyPath: path], "\(name) step \(step) \(part)")
                }
            }
        }
    }
}
