import Foundation
import Testing
import Attention

extension KernelTests {
    @Suite("TransformerDecoderLayer, TransformerDecoder and Transformer")
    struct DecoderTests {
        static let layerFixtures = [
            "torch_decoder_layer_postnorm_causal", "torch_decoder_layer_prenorm_gelu_masks", "torch_decoder_layer_padding",
            "torch_decoder_layer_float_padding", "torch_decoder_layer_memory_causal", "torch_decoder_layer_length1",
            "torch_decoder_layer_no_bias",
        ]
        static let transformerFixtures = ["torch_transformer_small", "torch_transformer_prenorm_seq_first"]

        /// A decoder layer as a fixture's config describes it (unloaded).
        static func layer(_ fixture: TorchFixture) throws -> TransformerDecoderLayer {
            var rng = SeededGenerator(seed: 0)
            return try TransformerDecoderLayer(
                dModel: fixture.int("d_model"), heads: fixture.int("nhead"),
                feedForwardSize: fixture.int("dim_feedforward"),
                dropout: Float(try #require(fixture.config["dropout"] as? Double)),
                activation: EncoderTests.activation(fixture.string("activation")),
                layerNormEpsilon: Float(try #require(fixture.config["layer_norm_eps"] as? Double)),
                batchFirst: fixture.bool("batch_first"), normFirst: fixture.bool("norm_first"),
                bias: fixture.bool("bias"), using: &rng)
        }

        /// torch's `state_dict().keys()`, in its order, as the fixture recorded them.
        static func stateDictKeys(_ fixture: TorchFixture) throws -> [String] {
            try #require(fixture.config["state_dict_keys"] as? [String])
        }

        /// The fixture's decoder masks and hints, as a call of a layer or a stack takes them.
        struct DecoderCall {
            var targetMask, memoryMask, targetKeyPaddingMask, memoryKeyPaddingMask: TorchMask?
            var targetIsCausal: Bool?
            var memoryIsCausal: Bool

            init(_ fixture: TorchFixture) throws {
                targetMask = try fixture.torchMask("input.tgt_mask")
                memoryMask = try fixture.torchMask("input.memory_mask")
                targetKeyPaddingMask = try fixture.torchMask("input.tgt_key_padding_mask")
                memoryKeyPaddingMask = try fixture.torchMask("input.memory_key_padding_mask")
                targetIsCausal = fixture.config["tgt_is_causal"] as? Bool
                memoryIsCausal = try fixture.bool("memory_is_causal")
            }
        }

        // MARK: Fixtures

        @Test(arguments: layerFixtures)
        func layerMatchesPyTorch(name: String) throws {
            let fixture = try TorchFixture(name)
            var layer = try Self.layer(fixture)
            #expect(layer.parameterShapes.map(\.name) == (try Self.stateDictKeys(fixture)))
            try layer.loadParameters(from: fixture.file, prefix: "param.")
            let call = try DecoderCall(fixture)
            let out = try layer(
                fixture.tensor("input.tgt"), memory: fixture.tensor("input.memory"), targetMask: call.targetMask,
                memoryMask: call.memoryMask, targetKeyPaddingMask: call.targetKeyPaddingMask,
                memoryKeyPaddingMask: call.memoryKeyPaddingMask, targetIsCausal: try #require(call.targetIsCausal as Bool?),
                memoryIsCausal: call.memoryIsCausal)
            expectFixtureClose(out, try fixture.tensor("output.out"), "\(name)")
        }

        @Test func decoderMatchesPyTorch() throws {
            let fixture = try TorchFixture("torch_decoder_2layers_final_norm")
            var decoder = try TransformerDecoder(
                layer: Self.layer(fixture), count: fixture.int("num_layers"),
                norm: LayerNorm(size: fixture.int("d_model"), epsilon: 1e-5, bias: fixture.bool("bias")))
            #expect(decoder.parameterShapes.map(\.name) == (try Self.stateDictKeys(fixture)))
            try decoder.loadParameters(from: fixture.file, prefix: "param.")
            #expect(decoder.layers[0] != decoder.layers[1])
            let call = try DecoderCall(fixture)
            #expect(call.targetIsCausal == nil)   // PyTorch detected the causal mask
            let (target, memory) = (try fixture.tensor("input.tgt"), try fixture.tensor("input.memory"))
            let out = try decoder(
                target, memory: memory, targetMask: call.targetMask, memoryMask: call.memoryMask,
                targetKeyPaddingMask: call.targetKeyPaddingMask, memoryKeyPaddingMask: call.memoryKeyPaddingMask,
                targetIsCausal: call.targetIsCausal, memoryIsCausal: call.memoryIsCausal)
            expectFixtureClose(out, try fixture.tensor("output.out"))
            // Detection gives the hint: the same as passing it.
            let hinted = try decoder(
                target, memory: memory, targetMask: call.targetMask, memoryKeyPaddingMask: call.memoryKeyPaddingMask,
                targetIsCausal: true)
            #expect(hinted == out)
        }

        /// A Transformer as a fixture's config describes it (unloaded).
        static func transformer(_ fixture: TorchFixture) throws -> Transformer {
            var rng = SeededGenerator(seed: 0)
            return try Transformer(
                dModel: fixture.int("d_model"), heads: fixture.int("nhead"),
                encoderLayerCount: fixture.int("num_encoder_layers"), decoderLayerCount: fixture.int("num_decoder_layers"),
                feedForwardSize: fixture.int("dim_feedforward"),
                dropout: Float(try #require(fixture.config["dropout"] as? Double)),
                activation: EncoderTests.activation(fixture.string("activation")),
                layerNormEpsilon: Float(try #require(fixture.config["layer_norm_eps"] as? Double)),
                batchFirst: fixture.bool("batch_first"), normFirst: fixture.bool("norm_first"),
                bias: fixture.bool("bias"), using: &rng)
        }

        @Test(arguments: transformerFixtures)
        func transformerMatchesPyTorch(name: String) throws {
            let fixture = try TorchFixture(name)
            var model = try Self.transformer(fixture)
            let names = model.parameterShapes.map(\.name)
            #expect(names == (try Self.stateDictKeys(fixture)))
            #expect(names.contains("encoder.norm.weight") && names.contains("decoder.norm.bias"))
            try model.loadParameters(from: fixture.file, prefix: "param.")
            let call = try DecoderCall(fixture)
            let out = try model(
                fixture.tensor("input.src"), target: fixture.tensor("input.tgt"),
                sourceMask: fixture.torchMask("input.src_mask"), targetMask: call.targetMask, memoryMask: call.memoryMask,
                sourceKeyPaddingMask: fixture.torchMask("input.src_key_padding_mask"),
                targetKeyPaddingMask: call.targetKeyPaddingMask, memoryKeyPaddingMask: call.memoryKeyPaddingMask,
                sourceIsCausal: fixture.config["src_is_causal"] as? Bool, targetIsCausal: call.targetIsCausal,
                memoryIsCausal: call.memoryIsCausal)
            expectFixtureClose(out, try fixture.tensor("output.out"), "\(name)")
        }

        // MARK: Structure

        @Test func layerNamesAndInitialisationFollowPyTorch() throws {
            var rng = SeededGenerator(seed: 40)
            let layer = try TransformerDecoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, bias: false, using: &rng)
            #expect(layer.parameterShapes.map(\.name) == [
                "self_attn.in_proj_weight", "self_attn.out_proj.weight", "multihead_attn.in_proj_weight",
                "multihead_attn.out_proj.weight", "linear1.weight", "linear2.weight", "norm1.weight", "norm2.weight",
                "norm3.weight",
            ])
            #expect(layer.matrixWeightNames == [
                "self_attn.in_proj_weight", "self_attn.q_proj_weight", "self_attn.k_proj_weight", "self_attn.v_proj_weight",
                "self_attn.out_proj.weight", "multihead_attn.in_proj_weight", "multihead_attn.q_proj_weight",
                "multihead_attn.k_proj_weight", "multihead_attn.v_proj_weight", "multihead_attn.out_proj.weight",
                "linear1.weight", "linear2.weight",
            ])
            #expect(layer.selfAttention != layer.crossAttention)   // drawn one after the other
            var flipped = layer
            flipped.batchFirst = true
            #expect(flipped.selfAttention.batchFirst && flipped.crossAttention.batchFirst)
            let decoder = try TransformerDecoder(layer: layer, count: 3)
            #expect(decoder.layers.allSatisfy { $0 == layer })
            #expect(decoder.parameterShapes.map(\.name).last == "layers.2.norm3.weight")
        }

        @Test func transformerRedrawsEveryMatrixLikePyTorch() throws {
            var rng = SeededGenerator(seed: 41)
            let (d, ff) = (64, 128)
            let model = try Transformer(
                dModel: d, heads: 4, encoderLayerCount: 2, decoderLayerCount: 3, feedForwardSize: ff, using: &rng)
            #expect(model.encoder.layers.count == 2 && model.decoder.layers.count == 3)
            #expect(model.encoder.norm != nil && model.decoder.norm != nil)
            #expect(model.encoder.layers[0] != model.encoder.layers[1] && model.decoder.layers[1] != model.decoder.layers[2])
            #expect((model.dModel, model.heads, model.batchFirst) == (d, 4, false))
            // xavier_uniform_: U(±√(6 / (fanIn + fanOut))), fan in the second dimension.
            func xavier(_ tensor: Tensor) {
                let limit = (6 / Double(tensor.shape[0] + tensor.shape[1])).squareRoot()
                #expect(tensor.scalars.allSatisfy { abs(Double($0)) <= limit })
                expectMoments(tensor.scalars, mean: 0, variance: limit * limit / 3, fourthMoment: pow(limit, 4) / 5)
            }
            let layer = model.decoder.layers[2]
            xavier(layer.linear1.weight)
            xavier(layer.crossAttention.outProjection.weight)
            xavier(layer.selfAttention.inProjectionWeight!)
            // Biases keep the layers' initialisation: zero in the attentions, U(±1/√fanIn) in linear1.
            #expect(layer.crossAttention.inProjectionBias!.scalars.allSatisfy { $0 == 0 })
            #expect(layer.linear1.bias!.scalars.allSatisfy { abs($0) <= 1 / Float(d).squareRoot() })
            #expect(layer.norm3.weight!.scalars.allSatisfy { $0 == 1 })
        }

        @Test(arguments: [false, true], [false, true])
        func batchedEqualsPerExample(batchFirst: Bool, normFirst: Bool) throws {
            var rng = SeededGenerator(seed: 42)
            let layer = try TransformerDecoderLayer(
                dModel: 8, heads: 2, feedForwardSize: 12, activation: .gelu, batchFirst: batchFirst, normFirst: normFirst,
                using: &rng)
            let decoder = try TransformerDecoder(layer: layer, count: 2, norm: LayerNorm(size: 8))
            let (n, l, s) = (3, 4, 6)
            let target = try Tensor(randomNormal: batchFirst ? [n, l, 8] : [l, n, 8], using: &rng)
            let memory = try Tensor(randomNormal: batchFirst ? [n, s, 8] : [s, n, 8], using: &rng)
            let padding = try BooleanMask(shape: [n, s]) { $0[0] == 2 && $0[1] >= 3 }
            let causal = try TorchMask.squareSubsequent(l)
            let batched = try decoder(target, memory: memory, targetMask: causal, memoryKeyPaddingMask: .disallowed(padding))
            let axis = batchFirst ? 0 : 1
            for b in 0..<n {
                let single = try decoder(
                    torchTestSlice(target, b, axis: axis), memory: torchTestSlice(memory, b, axis: axis),
                    targetMask: causal,
                    memoryKeyPaddingMask: .disallowed(BooleanMask(shape: [s], values: Array(padding.values[(b * s)..<((b + 1) * s)]))))
                expectFixtureClose(single, try torchTestSlice(batched, b, axis: axis), rtol: 1e-5, atol: 1e-5)
            }
        }

        @Test func runsThroughTheLayerProtocolAndInHalfPrecisionWeights() throws {
            var rng = SeededGenerator(seed: 43)
            let model = try Transformer(
                dModel: 8, heads: 2, encoderLayerCount: 1, decoderLayerCount: 2, feedForwardSize: 16, batchFirst: true,
                using: &rng)
            let source = try Tensor(randomNormal: [2, 5, 8], using: &rng)
            let target = try Tensor(randomNormal: [2, 3, 8], using: &rng)
            func run<L: Layer>(_ layer: L, _ input: L.Input) throws -> L.Output { try layer(input) }
            let out = try model(source, target: target)
            #expect(try run(model, .init(source: source, target: target)) == out)
            let memory = try model.encoder(source)
            #expect(try run(model.decoder, .init(target: target, memory: memory)) == out)
            #expect(try run(model.decoder.layers[0], .init(target: target, memory: memory))
                == (try model.decoder.layers[0](target, memory: memory)))
            let half = try model.convertingWeights(to: .bfloat16)
            #expect(half.decoder.layers[1].crossAttention.inProjectionWeight!.dtype == .bfloat16)
            #expect(half.decoder.layers[1].norm2.weight!.dtype == .float32)
            expectFixtureClose(try half(source, target: target), out, rtol: 0.05, atol: 0.05)
        }

        @Test func emptySequencesFollowTheLibraryRule() throws {
            var rng = SeededGenerator(seed: 49)
            let model = try Transformer(
                dModel: 8, heads: 2, encoderLayerCount: 1, decoderLayerCount: 1, feedForwardSize: 16, batchFirst: true,
                using: &rng)
            let source = try Tensor(randomNormal: [2, 5, 8], using: &rng)
            // No target position: an empty result of the target's shape.
            #expect(try model(source, target: Tensor(zeros: [2, 0, 8])).shape == [2, 0, 8])
            #expect(try model(Tensor(zeros: [0, 5, 8]), target: Tensor(zeros: [0, 3, 8])).shape == [0, 3, 8])
            // No memory position: the cross-attention gives its output projection's bias, whatever
            // its weights.
            let layer = model.decoder.layers[0]
            let target = try Tensor(randomNormal: [2, 3, 8], using: &rng)
            let noMemory = try layer(target, memory: Tensor(zeros: [2, 0, 8]))
            #expect(noMemory.shape == [2, 3, 8] && noMemory.scalars.allSatisfy(\.isFinite))
            var biasOnly = layer
            biasOnly.crossAttention.outProjection.weight = try Tensor(zeros: [8, 8])
            #expect(try biasOnly(target, memory: Tensor(zeros: [2, 0, 8])) == noMemory)
        }

        // MARK: Dropout

        @Test func dropoutIsSeededAndOnlyInTraining() throws {
            var rng = SeededGenerator(seed: 44)
            let model = try Transformer(
                dModel: 8, heads: 2, encoderLayerCount: 1, decoderLayerCount: 2, feedForwardSize: 16, dropout: 0.2,
                using: &rng)
            let source = try Tensor(randomNormal: [6, 2, 8], using: &rng)
            let target = try Tensor(randomNormal: [4, 2, 8], using: &rng)
            let eval = try model(source, target: target, dropoutSeed: 1)
            #expect(eval == (try model(source, target: target, dropoutSeed: 2)))
            let first = try model(source, target: target, training: true, dropoutSeed: 1)
            #expect(first == (try model(source, target: target, training: true, dropoutSeed: 1)))
            #expect(first != (try model(source, target: target, training: true, dropoutSeed: 2)))
            #expect(first != eval)
            // The layer's six sites: with every probability 0, training changes nothing.
            var layer = model.decoder.layers[0]
            let memory = try model.encoder(source)
            let trained = try layer(target, memory: memory, training: true, dropoutSeed: 3)
            #expect(trained != (try layer(target, memory: memory)))
            layer.dropout = 0
            layer.selfAttention.dropout = 0
            #expect(try layer(target, memory: memory, training: true, dropoutSeed: 3) != layer(target, memory: memory))
            layer.crossAttention.dropout = 0
            #expect(try layer(target, memory: memory, training: true, dropoutSeed: 3) == layer(target, memory: memory))
        }

        // MARK: Errors

        @Test func constructionErrors() throws {
            var rng = SeededGenerator(seed: 45)
            let cases: [(String, () throws -> Void)] = [
                ("dModel", { _ = try TransformerDecoderLayer(dModel: 0, heads: 1, using: &rng) }),
                ("heads", { _ = try TransformerDecoderLayer(dModel: 10, heads: 4, using: &rng) }),
                ("feedForwardSize", { _ = try TransformerDecoderLayer(dModel: 8, heads: 2, feedForwardSize: 0, using: &rng) }),
                ("dropout", { _ = try TransformerDecoderLayer(dModel: 8, heads: 2, dropout: 1, using: &rng) }),
                ("epsilon", { _ = try TransformerDecoderLayer(dModel: 8, heads: 2, layerNormEpsilon: .nan, using: &rng) }),
                ("encoderLayerCount", { _ = try Transformer(dModel: 8, heads: 2, encoderLayerCount: 0, using: &rng) }),
                ("decoderLayerCount", { _ = try Transformer(dModel: 8, heads: 2, decoderLayerCount: -1, using: &rng) }),
                ("heads", { _ = try Transformer(dModel: 8, heads: 3, using: &rng) }),
            ]
            for (argument, body) in cases {
                let error = expectAttentionError(body)
                #expect(error?.argument == argument && error?.isInvalidArgument == true, "\(String(describing: error))")
            }
            let layer = try TransformerDecoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, using: &rng)
            #expect(expectAttentionError { _ = try TransformerDecoder(layer: layer, count: 0) }?.argument == "count")
            #expect(expectAttentionError { _ = try TransformerDecoder(layers: []) }?.argument == "layers")
            #expect(expectAttentionError { _ = try TransformerDecoder(layer: layer, count: 1, norm: LayerNorm(size: 4)) }?.argument == "norm")
            let wide = try TransformerDecoderLayer(dModel: 16, heads: 2, feedForwardSize: 16, using: &rng)
            #expect(expectAttentionError { _ = try TransformerDecoder(layers: [layer, wide]) }?.argument == "layers")
            // Custom encoder and decoder must agree.
            let encoder = try TransformerEncoder(
                layer: TransformerEncoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, using: &rng), count: 1)
            let wideDecoder = try TransformerDecoder(layer: wide, count: 1)
            #expect(expectAttentionError { _ = try Transformer(encoder: encoder, decoder: wideDecoder) }?.argument == "decoder")
            var flipped = layer
            flipped.batchFirst = true
            let flippedDecoder = try TransformerDecoder(layer: flipped, count: 1)
            #expect(expectAttentionError { _ = try Transformer(encoder: encoder, decoder: flippedDecoder) }?.argument == "decoder")
            var model = try Transformer(encoder: encoder, decoder: TransformerDecoder(layer: layer, count: 1))
            model.decoder.layers = []
            let x = try Tensor(zeros: [3, 8])
            #expect(expectAttentionError { _ = try model(x, target: x) }?.argument == "decoder.layers")
        }

        @Test func layerCallErrorsNameTheArgument() throws {
            var rng = SeededGenerator(seed: 46)
            let layer = try TransformerDecoderLayer(dModel: 8, heads: 2, feedForwardSize: 16, using: &rng)
            var batchFirst = layer
            batchFirst.batchFirst = true
            let (target, memory) = (try Tensor(zeros: [4, 2, 8]), try Tensor(zeros: [6, 2, 8]))   // (L, N, E), (S, N, E)
            func b(_ shape: [Int]) throws -> TorchMask { .disallowed(try BooleanMask(shape: shape) { _ in false }) }
            let cases: [(String, () throws -> Void)] = [
                ("target", { _ = try layer(Tensor(zeros: [4, 2, 6]), memory: memory) }),
                ("target", { _ = try layer(Tensor(zeros: [8]), memory: memory) }),
                ("target", { _ = try layer(Tensor(zeros: [1, 4, 2, 8]), memory: memory) }),
                ("memory", { _ = try layer(target, memory: Tensor(zeros: [6, 2, 5])) }),
                ("memory", { _ = try layer(target, memory: Tensor(zeros: [6, 8])) }),
                ("memory", { _ = try layer(target, memory: Tensor(zeros: [6, 3, 8])) }),
                ("memory", { _ = try batchFirst(Tensor(zeros: [2, 4, 8]), memory: Tensor(zeros: [3, 6, 8])) }),
                ("targetMask", { _ = try layer(target, memory: memory, targetMask: b([4, 6])) }),
                ("targetMask", { _ = try layer(target, memory: memory, targetMask: b([3, 4, 4])) }),
                ("memoryMask", { _ = try layer(target, memory: memory, memoryMask: b([4, 4])) }),
                ("memoryMask", { _ = try layer(target, memory: memory, memoryMask: b([6])) }),
                ("targetKeyPaddingMask", { _ = try layer(target, memory: memory, targetKeyPaddingMask: b([2, 6])) }),
                ("targetKeyPaddingMask", { _ = try layer(target, memory: memory, targetKeyPaddingMask: b([4])) }),
                ("memoryKeyPaddingMask", { _ = try layer(target, memory: memory, memoryKeyPaddingMask: b([2, 4])) }),
                ("memoryKeyPaddingMask", { _ = try layer(target, memory: memory, memoryKeyPaddingMask: b([3, 6])) }),
            ]
            for (argument, body) in cases {
                let error = expectAttentionError(body)
                #expect(error?.argument == argument && error?.isShapeMismatch == true, "\(String(describing: error))")
            }
            let memoryError = expectAttentionError { _ = try layer(target, memory: Tensor(zeros: [6, 3, 8])) }
            #expect(memoryError?.description.contains("[4, 2, 8]") == true, "\(String(describing: memoryError))")
            #expect(expectAttentionError { _ = try layer(target, memory: memory, targetIsCausal: true) }?.argument == "targetIsCausal")
            #expect(expectAttentionError { _ = try layer(target, memory: memory, memoryIsCausal: true) }?.argument == "memoryIsCausal")
            var mixedLayout = layer
            mixedLayout.crossAttention.batchFirst = true
            #expect(expectAttentionError { _ = try mixedLayout(target, memory: memory) }?.argument == "crossAttention")
            var narrowMemory = layer
            narrowMemory.crossAttention = try TorchMultiheadAttention(embedDim: 8, heads: 2, keyDim: 6, valueDim: 6, using: &rng)
            #expect(expectAttentionError { _ = try narrowMemory(target, memory: memory) }?.argument == "crossAttention")
            var broken = layer
            broken.dropout = -0.5
            #expect(expectAttentionError { _ = try broken(target, memory: memory) }?.argument == "dropout")
            let halfMask = TorchMask.additive(try Tensor(zeros: [4, 6]).converted(to: .float16))
            let halfError = expectAttentionError { _ = try layer(target, memory: memory, memoryMask: halfMask) }
            guard case let .unsupportedDType(argument, _, _)? = halfError else {
                Issue.record("expected an unsupported dtype, got \(String(describing: halfError))")
                return
            }
            #expect(argument == "memoryMask")
        }

        @Test func transformerCallErrorsNameTheArgument() throws {
            var rng = SeededGenerator(seed: 47)
            let model = try Transformer(
                dModel: 8, heads: 2, encoderLayerCount: 1, decoderLayerCount: 1, feedForwardSize: 16, batchFirst: true,
                using: &rng)
            let (source, target) = (try Tensor(zeros: [2, 5, 8]), try Tensor(zeros: [2, 3, 8]))   // (N, S, E), (N, L, E)
            func b(_ shape: [Int]) throws -> TorchMask { .disallowed(try BooleanMask(shape: shape) { _ in false }) }
            let shapeCases: [(String, () throws -> Void)] = [
                ("source", { _ = try model(Tensor(zeros: [2, 5, 6]), target: target) }),
                ("source", { _ = try model(Tensor(zeros: [5]), target: target) }),
                ("target", { _ = try model(source, target: Tensor(zeros: [2, 3, 4])) }),
                ("target", { _ = try model(source, target: Tensor(zeros: [3, 8])) }),
                ("target", { _ = try model(source, target: Tensor(zeros: [4, 3, 8])) }),
                ("sourceMask", { _ = try model(source, target: target, sourceMask: b([5, 3])) }),
                ("sourceKeyPaddingMask", { _ = try model(source, target: target, sourceKeyPaddingMask: b([2, 3])) }),
                ("targetMask", { _ = try model(source, target: target, targetMask: b([5, 5])) }),
                ("memoryMask", { _ = try model(source, target: target, memoryMask: b([3, 3])) }),
                ("memoryKeyPaddingMask", { _ = try model(source, target: target, memoryKeyPaddingMask: b([2, 3])) }),
            ]
            for (argument, body) in shapeCases {
                let error = expectAttentionError(body)
                #expect(error?.argument == argument && error?.isShapeMismatch == true, "\(String(describing: error))")
            }
            let batch = expectAttentionError { _ = try model(source, target: Tensor(zeros: [4, 3, 8])) }
            #expect(batch?.description.contains("the batch number of src and tgt must be equal") == true)
            #expect(expectAttentionError { _ = try model(source, target: target, sourceIsCausal: true) }?.argument == "sourceIsCausal")
            #expect(expectAttentionError { _ = try model(source, target: target, targetIsCausal: true) }?.argument == "targetIsCausal")
        }

        @Test func loadingNamesTheParameter() throws {
            let fixture = try TorchFixture("torch_transformer_small")
            var rng = SeededGenerator(seed: 48)
            // One more feed-forward unit: every linear1/linear2 tensor has the wrong shape.
            var model = try Transformer(
                dModel: 8, heads: 2, encoderLayerCount: 2, decoderLayerCount: 2, feedForwardSize: 17, batchFirst: true,
                using: &rng)
            let before = model
            let error = expectAttentionError { try model.loadParameters(from: fixture.file, prefix: "param.") }
            guard case let .checkpointMismatch(missing, unexpected, mismatches)? = error else {
                Issue.record("expected a checkpoint mismatch, got \(String(describing: error))")
                return
            }
            #expect(missing.isEmpty && unexpected.isEmpty)
            let mismatch = try #require(mismatches.first { $0.name == "param.decoder.layers.1.linear1.weight" })
            #expect(mismatch.expected == [17, 8] && mismatch.actual == [16, 8])
            #expect(mismatches.contains { $0.name == "param.encoder.layers.0.linear2.bias" } == false)
            #expect(model == before)
            // A decoder layer loaded as an encoder layer: the cross-attention and norm3 are unexpected.
            var encoderLayer = try TransformerEncoderLayer(dModel: 16, heads: 4, feedForwardSize: 32, using: &rng)
            let layerFixture = try TorchFixture("torch_decoder_layer_postnorm_causal")
            let layerError = expectAttentionError { try encoderLayer.loadParameters(from: layerFixture.file, prefix: "param.") }
            guard case let .checkpointMismatch(_, unexpected, _)? = layerError else {
                Issue.record("expected a checkpoint mismatch, got \(String(describing: layerError))")
                return
            }
            #expect(unexpected.contains("param.multihead_attn.in_proj_weight") && unexpected.contains("param.norm3.bias"))
        }
    }
}
