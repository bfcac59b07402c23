import Foundation
import Testing
import Attention

extension KernelTests {
    @Suite("TransformerEncoderLayer and TransformerEncoder")
    struct EncoderTests {
        static let torchLayerFixtures = [
            "torch_encoder_layer_postnorm_relu", "torch_encoder_layer_prenorm_gelu", "torch_encoder_layer_kpm",
            "torch_encoder_layer_src_mask_bool", "torch_encoder_layer_causal", "torch_encoder_layer_no_bias",
            "torch_encoder_layer_batch_first", "torch_encoder_layer_seq_first",
        ]

        static func activation(_ name: String) throws -> Activation {
            switch name {
            case "relu": .relu
            case "gelu": .gelu
            default: throw AttentionError.invalidArgument(argument: "activation", reason: name)
            }
        }

        /// A torch layer as a fixture's config describes it (unloaded).
        static func torchLayer(_ fixture: TorchFixture) throws -> TransformerEncoderLayer {
            var rng = SeededGenerator(seed: 0)
            return try TransformerEncoderLayer(
                dModel: fixture.int("d_model"), heads: fixture.int("nhead"),
                feedForwardSize: fixture.int("dim_feedforward"),
                dropout: Float(try #require(fixture.config["dropout"] as? Double)),
                activation: activation(fixture.string("activation")),
                layerNormEpsilon: Float(try #require(fixture.config["layer_norm_eps"] as? Double)),
                batchFirst: fixture.bool("batch_first"), normFirst: fixture.bool("norm_first"),
                bias: fixture.bool("bias"), using: &rng)
        }

        /// A noxton layer as a fixture's config describes it (unloaded).
        static func noxtonLayer(_ fixture: TorchFixture, batchFirst: Bool = false) throws -> TransformerEncoderLayer {
            var rng = SeededGenerator(seed: 0)
            return try TransformerEncoderLayer(
                dModel: fixture.int("d_model"), heads: fixture.int("n_heads"),
                feedForwardSize: fixture.int("dim_feedforward"),
                dropout: Float(try #require(fixture.config["dropout_p"] as? Double)),
                activation: activation(fixture.string("activation")),
                layerNormEpsilon: Float(try #require(fixture.config["layer_norm_eps"] as? Double)),
                batchFirst: batchFirst, normFirst: fixture.bool("norm_first"), bias: fixture.bool("use_bias"),
                convention: .noxton, using: &rng)
        }

        // MARK: Fixtures

        @Test(arguments: torchLayerFixtures)
        func torchLayerMatchesPyTorch(name: String) throws {
            let fixture = try TorchFixture(name)
            var layer = try Self.torchLayer(fixture)
            try layer.loadParameters(from: fixture.file, prefix: "param.")
            let out = try layer(
                fixture.tensor("input.x"), mask: fixture.torchMask("input.src_mask"),
                keyPaddingMask: fixture.torchMask("input.src_key_padding_mask"), isCausal: fixture.bool("is_causal"))
            expectFixtureClose(out, try fixture.tensor("output.out"), "\(name)")
        }

        @Test func torchEncoderMatchesPyTorch() throws {
            let fixture = try TorchFixture("torch_encoder_2layers_final_norm")
            let layer = try Self.torchLayer(fixture)
            var encoder = try TransformerEncoder(
                layer: layer, count: fixture.int("num_layers"),
                norm: LayerNorm(size: fixture.int("d_model"), epsilon: 1e-5, bias: fixture.bool("bias")))
            try encoder.loadParameters(from: fixture.file, prefix: "param.")
            #expect(encoder.layers[0] != encoder.layers[1])
            let out = try encoder(
                fixture.tensor("input.x"), mask: fixture.torchMask("input.src_mask"),
                keyPaddingMask: fixture.torchMask("input.src_key_padding_mask"), isCausal: fixture.bool("is_causal"))
            expectFixtureClose(out, try fixture.tensor("output.out"))
            // The default isCausal (nil, detection) gives the same here: there is no mask.
            let detected = try encoder(
                fixture.tensor("input.x"), keyPaddingMask: fixture.torchMask("input.src_key_padding_mask"))
            #expect(detected == out)
        }

        @Test func noxtonLayerMatchesNoxton() throws {
            let fixture = try TorchFixture("noxton_encoder_layer")
            var layer = try Self.noxtonLayer(fixture)
            try layer.loadParameters(from: fixture.file, prefix: "param.")
            let out = try layer(fixture.tensor("input.x"), mask: fixture.allowedMask("input.attn_mask"))
            expectFixtureClose(out, try fixture.tensor("output.out"))
        }

        @Test func noxtonLayerBatchedMatchesVmappedNoxton() throws {
            let fixture = try TorchFixture("noxton_encoder_layer_batched")
            var layer = try Self.noxtonLayer(fixture, batchFirst: true)
            try layer.loadParameters(from: fixture.file, prefix: "param.")
            // vmap's per-example (L, L) masks are a (N, 1, L, L) mask, broadcast over the heads.
            let shape = try fixture.file.shape(of: "input.attn_mask")
            let mask = try BooleanMask(shape: [shape[0], 1, shape[1], shape[2]], values: fixture.file.booleans(named: "input.attn_mask"))
            let out = try layer(fixture.tensor("input.x"), mask: .allowed(mask))
            expectFixtureClose(out, try fixture.tensor("output.out"))
        }

        /// The noxton encoder of `noxton_encoder`, its parameters loaded.
        static func noxtonEncoder(_ fixture: TorchFixture) throws -> TransformerEncoder {
            var rng = SeededGenerator(seed: 0)
            let layers = try (0..<fixture.int("num_layers")).map { _ in
                try TransformerEncoderLayer(
                    dModel: 16, heads: fixture.int("n_heads"), feedForwardSize: fixture.int("dim_feedforward"),
                    normFirst: fixture.bool("norm_first"), convention: .noxton, using: &rng)
            }
            var encoder = try TransformerEncoder(layers: layers, norm: LayerNorm(size: 16))
            try encoder.loadParameters(from: fixture.file, prefix: "param.")
            return encoder
        }

        @Test func noxtonEncoderMatchesNoxton() throws {
            let fixture = try TorchFixture("noxton_encoder")
            let encoder = try Self.noxtonEncoder(fixture)
            #expect(encoder.layers[0] != encoder.layers[1])   // noxton: each layer its own key
            let out = try encoder(fixture.tensor("input.x"), isCausal: fixture.bool("is_causal"))
            expectFixtureClose(out, try fixture.tensor("output.out"))
        }

        // MARK: Conventions

        @Test func conventionRenamesTheSameParameters() throws {
            let fixture = try TorchFixture("noxton_encoder_layer")
            var noxton = try Self.noxtonLayer(fixture)
            try noxton.loadParameters(from: fixture.file, prefix: "param.")
            #expect(noxton.parameterShapes.map(\.name) == [
                "self_attn.query_proj.weight", "self_attn.query_proj.bias", "self_attn.key_proj.weight",
                "self_attn.key_proj.bias", "self_attn.value_proj.weight", "self_attn.value_proj.bias",
                "self_attn.output_proj.weight", "self_attn.output_proj.bias", "linear1.weight", "linear1.bias",
                "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
            ])
            // The views are the packed weight's rows.
            let packed = try #require(noxton.selfAttention.inProjectionWeight)
            #expect(try packed.sliced(16..<32) == fixture.tensor("param.self_attn.key_proj.weight"))
            #expect(try #require(noxton.selfAttention.inProjectionBias).sliced(32..<48)
                == fixture.tensor("param.self_attn.value_proj.bias"))
            // Saved under noxton's names, loaded back, equal.
            let saved = noxton.parameterDictionary()
            var reloaded = try Self.noxtonLayer(fixture)
            try reloaded.loadParameters(from: saved)
            #expect(reloaded == noxton)
            // As a torch layer: PyTorch's names; without causal masking or fully masked rows, the
            // same function.
            var torch = noxton
            torch.convention = .torch
            #expect(torch.parameterShapes.map(\.name).prefix(4) == [
                "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
            ])
            let x = try fixture.tensor("input.x")
            let keep = try #require(try fixture.allowedMask("input.attn_mask"))
            #expect(try torch(x, mask: keep) == noxton(x, mask: keep))
        }

        /// A pre-norm layer whose feed-forward block outputs zero: `layer(x) - x` is the
        /// self-attention block of `norm1(x)`.
        static func attentionOnlyLayer(convention: TransformerEncoderLayer.Convention) throws -> TransformerEncoderLayer {
            var rng = SeededGenerator(seed: 21)
            var layer = try TransformerEncoderLayer(
                dModel: 8, heads: 2, feedForwardSize: 4, dropout: 0, normFirst: true, convention: convention, using: &rng)
            layer.linear2 = try Linear(weight: Tensor(zeros: [8, 4]), bias: Tensor(zeros: [8]))
            return layer
        }

        @Test func fullyMaskedRowsDependOnTheConvention() throws {
            var noxton = try Self.attentionOnlyLayer(convention: .noxton)
            var rng = SeededGenerator(seed: 22)
            let x = try Tensor(randomNormal: [5, 8], using: &rng)
            // Row 2 may attend to nothing.
            let keep = TorchMask.allowed(try BooleanMask(shape: [5, 5]) { $0[0] != 2 })
            let delta = try noxton(x, mask: keep).adding(x.scaled(by: -1))
            // Equinox: uniform weights, so the row is out_proj(mean over keys of the values).
            let normed = try noxton.norm1(x)
            let values = try Linear(
                weight: noxton.selfAttention.inProjectionWeight!.sliced(16..<24),
                bias: noxton.selfAttention.inProjectionBias!.sliced(16..<24))(normed)
            let mean = try Tensor(shape: [1, 8], scalars: (0..<8).map { c in (0..<5).reduce(Float(0)) { $0 + values[$1, c] } / 5 })
            expectFixtureClose(try torchTestSlice(delta, 2, axis: 0), try noxton.selfAttention.outProjection(mean).reshaped([8]),
                             rtol: 1e-5, atol: 1e-5)
            // PyTorch: zeros, so the row is out_proj.bias.
            noxton.convention = .torch
            let torchDelta = try noxton(x, mask: keep).adding(x.scaled(by: -1))
            expectFixtureClose(try torchTestSlice(torchDelta, 2, axis: 0), noxton.selfAttention.outProjection.bias!,
                             rtol: 1e-5, atol: 1e-5)
        }

        @Test func isCausalDependsOnTheConvention() throws {
            let noxton = try Self.attentionOnlyLayer(convention: .noxton)
            var rng = SeededGenerator(seed: 23)
            let x = try Tensor(randomNormal: [6, 8], using: &rng)
            let keep = try BooleanMask(shape: [6, 6]) { ($0[0] + 2 * $0[1]) % 5 != 1 }
            let both = try BooleanMask(shape: [6, 6]) { keep.values[$0[0] * 6 + $0[1]] && $0[1] <= $0[0] }
            let causalOnly = try BooleanMask(shape: [6, 6]) { $0[1] <= $0[0] }
            // noxton: causal and the mask; no mask needed.
            expectFixtureClose(try noxton(x, mask: .allowed(keep), isCausal: true), try noxton(x, mask: .allowed(both)),
                             rtol: 1e-6, atol: 1e-6)
            expectFixtureClose(try noxton(x, isCausal: true), try noxton(x, mask: .allowed(causalOnly)), rtol: 1e-6, atol: 1e-6)
            // torch: a hint that needs the mask and (without key padding) replaces it.
            var torch = noxton
            torch.convention = .torch
            expectFixtureClose(try torch(x, mask: .allowed(keep), isCausal: true), try torch(x, mask: .allowed(causalOnly)),
                             rtol: 1e-6, atol: 1e-6)
            let error = expectAttentionError { _ = try torch(x, isCausal: true) }
            #expect(error?.argument == "isCausal")
        }

        @Test func encoderDetectsCausalMasks() throws {
            var rng = SeededGenerator(seed: 24)
            let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, using: &rng)
            let encoder = try TransformerEncoder(layer: layer, count: 2)
            let x = try Tensor(randomNormal: [6, 8], using: &rng)
            let causal = try TorchMask.squareSubsequent(6)
            let hinted = try encoder(x, mask: causal, isCausal: true)
            let detected = try encoder(x, mask: causal)
            let notHinted = try encoder(x, mask: causal, isCausal: false)
            #expect(detected == hinted)
            expectFixtureClose(notHinted, hinted, rtol: 1e-5, atol: 1e-5)
            // A non-causal mask hinted as causal: PyTorch uses the causal mask (no key padding).
            let other = TorchMask.disallowed(try BooleanMask(shape: [6, 6]) { $0[0] == 3 && $0[1] == 1 })
            expectFixtureClose(try encoder(x, mask: other, isCausal: true), hinted, rtol: 1e-6, atol: 1e-6)
        }

        // MARK: Structure

        @Test func clonesStartIdenticalAndAreNamedLikePyTorch() throws {
            var rng = SeededGenerator(seed: 25)
            let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, bias: false, using: &rng)
            let encoder = try TransformerEncoder(layer: layer, count: 3, norm: LayerNorm(size: 8, bias: false))
            #expect(encoder.layers.allSatisfy { $0 == layer })
            let names = encoder.parameterShapes.map(\.name)
            #expect(names.first == "layers.0.self_attn.in_proj_weight")
            #expect(names.contains("layers.2.linear2.weight") && !names.contains("layers.0.linear1.bias"))
            #expect(names.suffix(2) == ["layers.2.norm2.weight", "norm.weight"])
            #expect(layer.parameterShapes.map(\.name) == [
                "self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight", "linear2.weight",
                "norm1.weight", "norm2.weight",
            ])
        }

        @Test func layerInitialisationFollowsEachLibrary() throws {
            var rng = SeededGenerator(seed: 26)
            let (d, ff) = (256, 512)
            let torch = try TransformerEncoderLayer(dModel: d, heads: 4, feedForwardSize: ff, using: &rng)
            func uniform(_ values: [Float], fanIn: Int) {
                let limit = 1 / Double(fanIn).squareRoot()
                #expect(values.allSatisfy { abs(Double($0)) <= limit })
                expectMoments(values, mean: 0, variance: limit * limit / 3, fourthMoment: pow(limit, 4) / 5)
            }
            uniform(torch.linear1.weight.scalars, fanIn: d)
            uniform(torch.linear1.bias!.scalars, fanIn: d)
            uniform(torch.linear2.weight.scalars, fanIn: ff)
            #expect(torch.norm1.weight!.scalars.allSatisfy { $0 == 1 } && torch.norm2.bias!.scalars.allSatisfy { $0 == 0 })
            #expect(torch.selfAttention.inProjectionBias!.scalars.allSatisfy { $0 == 0 })
            let a = (6.0 / Double(4 * d)).squareRoot()
            expectMoments(torch.selfAttention.inProjectionWeight!.scalars, mean: 0, variance: a * a / 3, fourthMoment: pow(a, 4) / 5)
            // noxton: every projection weight and bias U(±1/√E).
            let noxton = try TransformerEncoderLayer(dModel: d, heads: 4, feedForwardSize: ff, convention: .noxton, using: &rng)
            uniform(noxton.selfAttention.inProjectionWeight!.scalars + noxton.selfAttention.outProjection.weight.scalars, fanIn: d)
            uniform(noxton.selfAttention.inProjectionBias!.scalars + noxton.selfAttention.outProjection.bias!.scalars, fanIn: d)
        }

        @Test(arguments: [false, true], [false, true])
        func batchedEqualsPerExample(batchFirst: Bool, normFirst: Bool) throws {
            var rng = SeededGenerator(seed: 27)
            let layer = try TransformerEncoderLayer(
                dModel: 8, heads: 2, feedForwardSize: 12, activation: .gelu, batchFirst: batchFirst, normFirst: normFirst,
                using: &rng)
            let encoder = try TransformerEncoder(layer: layer, count: 2, norm: LayerNorm(size: 8))
            let (n, l) = (3, 5)
            let x = try Tensor(randomNormal: batchFirst ? [n, l, 8] : [l, n, 8], using: &rng)
            let padding = try BooleanMask(shape: [n, l]) { $0[0] == 2 && $0[1] >= 3 }
            let batched = try encoder(x, keyPaddingMask: .disallowed(padding))
            let axis = batchFirst ? 0 : 1
            for b in 0..<n {
                let single = try encoder(
                    torchTestSlice(x, b, axis: axis),
                    keyPaddingMask: .disallowed(BooleanMask(shape: [l], values: Array(padding.values[(b * l)..<((b + 1) * l)]))))
                expectFixtureClose(single, try torchTestSlice(batched, b, axis: axis), rtol: 1e-5, atol: 1e-5)
            }
        }

        // MARK: Dropout

        @Test func dropoutIsSeededAndOnlyInTraining() throws {
            var rng = SeededGenerator(seed: 28)
            let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, dropout: 0.2, using: &rng)
            let encoder = try TransformerEncoder(layer: layer, count: 2)
            let x = try Tensor(randomNormal: [2, 6, 8], using: &rng)
            let eval = try encoder(x, dropoutSeed: 1)
            #expect(eval == (try encoder(x, dropoutSeed: 2)))
            let first = try encoder(x, training: true, dropoutSeed: 1)
            #expect(first == (try encoder(x, training: true, dropoutSeed: 1)))
            #expect(first != (try encoder(x, training: true, dropoutSeed: 2)))
            #expect(first != eval)
            var noDropout = layer
            noDropout.dropout = 0
            noDropout.selfAttention.dropout = 0
            #expect(try noDropout(x, training: true, dropoutSeed: 1) == noDropout(x))
        }

        @Test func dropoutKeepsTheExpectedFraction() throws {
            // Pre-norm, attention output zero, feed-forward output ones before dropout2:
            // layer(x) - x is dropout2(ones), 0 or 1/(1 - p) per element.
            var layer = try Self.attentionOnlyLayer(convention: .torch)
            let p: Float = 0.25
            layer.dropout = p
            layer.selfAttention.dropout = p
            layer.selfAttention.outProjection = try Linear(weight: Tensor(zeros: [8, 8]), bias: Tensor(zeros: [8]))
            layer.linear2 = try Linear(weight: Tensor(zeros: [8, 4]), bias: Tensor(ones: [8]))
            var rng = SeededGenerator(seed: 29)
            let x = try Tensor(randomNormal: [4, 500, 8], using: &rng)
            let delta = try layer(x, training: true, dropoutSeed: 5).adding(x.scaled(by: -1)).scalars
            let zeros = delta.filter { abs($0) < 1e-5 }.count
            #expect(delta.allSatisfy { abs($0) < 1e-5 || abs($0 - 1 / (1 - p)) < 1e-5 })
            let fraction = Double(zeros) / Double(delta.count)
            let sigma = (Double(p) * Double(1 - p) / Double(delta.count)).squareRoot()
            #expect(abs(fraction - Double(p)) <= 5 * sigma, "dropped \(fraction)")
        }

        // MARK: Errors

        @Test func errors() throws {
            var rng = SeededGenerator(seed: 30)
            let cases: [(String, () throws -> Void)] = [
                ("dModel", { _ = try TransformerEncoderLayer(dModel: 0, heads: 1, using: &rng) }),
                ("heads", { _ = try TransformerEncoderLayer(dModel: 10, heads: 4, using: &rng) }),
                ("feedForwardSize", { _ = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 0, using: &rng) }),
                ("dropout", { _ = try TransformerEncoderLayer(dModel: 8, heads: 2, dropout: 1, using: &rng) }),
                ("epsilon", { _ = try TransformerEncoderLayer(dModel: 8, heads: 2, layerNormEpsilon: -1, using: &rng) }),
            ]
            for (argument, body) in cases {
                let error = expectAttentionError(body)
                #expect(error?.argument == argument && error?.isInvalidArgument == true, "\(String(describing: error))")
            }
            let layer = try TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, using: &rng)
            let x = try Tensor(zeros: [5, 8])
            func b(_ shape: [Int]) throws -> TorchMask { .disallowed(try BooleanMask(shape: shape) { _ in false }) }
            let shapeCases: [(String, () throws -> Void)] = [
                ("source", { _ = try layer(Tensor(zeros: [5, 6])) }),
                ("source", { _ = try layer(Tensor(zeros: [8])) }),
                ("source", { _ = try layer(Tensor(zeros: [1, 1, 5, 8])) }),
                ("mask", { _ = try layer(x, mask: b([5, 4])) }),
                ("mask", { _ = try layer(x, mask: b([5])) }),
                ("keyPaddingMask", { _ = try layer(x, keyPaddingMask: b([4])) }),
                ("keyPaddingMask", { _ = try layer(x, keyPaddingMask: b([1, 5])) }),
            ]
            for (argument, body) in shapeCases {
                let error = expectAttentionError(body)
                #expect(error?.argument == argument && error?.isShapeMismatch == true, "\(String(describing: error))")
            }
            #expect(expectAttentionError { _ = try layer(x, isCausal: true) }?.argument == "isCausal")
            var broken = layer
            broken.dropout = 2
            #expect(expectAttentionError { _ = try broken(x) }?.argument == "dropout")
            // Encoders.
            #expect(expectAttentionError { _ = try TransformerEncoder(layer: layer, count: 0) }?.argument == "count")
            #expect(expectAttentionError { _ = try TransformerEncoder(layers: []) }?.argument == "layers")
            #expect(expectAttentionError { _ = try TransformerEncoder(layer: layer, count: 1, norm: LayerNorm(size: 4)) }?.argument == "norm")
            let wide = try TransformerEncoderLayer(dModel: 16, heads: 2, feedForwardSize: 16, using: &rng)
            #expect(expectAttentionError { _ = try TransformerEncoder(layers: [layer, wide]) }?.argument == "layers")
            // Loading a noxton checkpoint into a torch-convention layer names everything.
            let fixture = try TorchFixture("noxton_encoder_layer")
            var torchLayer = try TransformerEncoderLayer(dModel: 16, heads: 4, feedForwardSize: 32, using: &rng)
            let mismatch = expectAttentionError { try torchLayer.loadParameters(from: fixture.file, prefix: "param.") }
            guard case let .checkpointMismatch(missing, unexpected, _)? = mismatch else {
                Issue.record("expected a checkpoint mismatch, got \(String(describing: mismatch))")
                return
            }
            #expect(missing.contains("param.self_attn.in_proj_weight"))
            #expect(unexpected.contains("param.self_attn.query_proj.weight"))
        }
    }
}
