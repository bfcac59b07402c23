import Foundation
import Testing
@testable import Attention

// MARK: - Test modules

/// The parameters of torch's `nn.MultiheadAttention` with packed projections.
struct PackedAttentionParameters: ParameterizedModule, Equatable {
    var inProjectionWeight: Tensor
    var inProjectionBias: Tensor?
    var outProjection: Linear

    init(embedSize: Int, bias: Bool, using generator: inout some RandomNumberGenerator) throws {
        inProjectionWeight = try .xavierUniform([3 * embedSize, embedSize], fanIn: embedSize, fanOut: 3 * embedSize, using: &generator)
        inProjectionBias = bias ? try Tensor(zeros: [3 * embedSize]) : nil
        outProjection = try Linear(inputSize: embedSize, outputSize: embedSize, bias: bias, using: &generator)
    }

    var parameterPaths: [ParameterPath<Self>] {
        var paths: [ParameterPath<Self>] = [ParameterPath("in_proj_weight", \.inProjectionWeight)]
        if inProjectionBias != nil { paths.append(ParameterPath("in_proj_bias", \.inProjectionBias!)) }
        return paths + parameterPaths(of: \.outProjection, prefixedBy: "out_proj")
    }
}

/// torch's `TransformerEncoderLayer` parameters: nested modules, two levels deep.
struct EncoderLayerParameters: ParameterizedModule, Equatable {
    var selfAttention: PackedAttentionParameters
    var linear1: Linear
    var linear2: Linear
    var norm1: LayerNorm
    var norm2: LayerNorm

    init(modelSize: Int, feedForwardSize: Int, using generator: inout some RandomNumberGenerator) throws {
        selfAttention = try PackedAttentionParameters(embedSize: modelSize, bias: true, using: &generator)
        linear1 = try Linear(inputSize: modelSize, outputSize: feedForwardSize, using: &generator)
        linear2 = try Linear(inputSize: feedForwardSize, outputSize: modelSize, using: &generator)
        norm1 = try LayerNorm(size: modelSize)
        norm2 = try LayerNorm(size: modelSize)
    }

    var parameterPaths: [ParameterPath<Self>] {
        parameterPaths(of: \.selfAttention, prefixedBy: "self_attn")
            + parameterPaths(of: \.linear1, prefixedBy: "linear1")
            + parameterPaths(of: \.linear2, prefixedBy: "linear2")
            + parameterPaths(of: \.norm1, prefixedBy: "norm1")
            + parameterPaths(of: \.norm2, prefixedBy: "norm2")
    }
}

/// An array of layers and an optional final norm, as `nn.TransformerEncoder`.
struct Stack: ParameterizedModule, Equatable {
    var layers: [Linear]
    var norm: LayerNorm?

    var parameterPaths: [ParameterPath<Self>] {
        var paths = layers.indices.flatMap { parameterPaths(of: \.layers[$0], prefixedBy: "layers.\($0)") }
        if norm != nil { paths += parameterPaths(of: \.norm!, prefixedBy: "norm") }
        return paths
    }
}

/// A module whose author listed a name twice.
struct Duplicated: ParameterizedModule {
    var a: Tensor
    var parameterPaths: [ParameterPath<Self>] { [ParameterPath("w", \.a), ParameterPath("w", \.a)] }
}

@Suite("ParameterizedModule")
struct ParameterizedModuleTests {
    @Test func namesShapesAndOrderAreThoseOfTheReference() throws {
        var rng = SeededGenerator(seed: 3)
        let layer = try EncoderLayerParameters(modelSize: 16, feedForwardSize: 32, using: &rng)
        #expect(layer.parameterShapes.map(\.name) == [
            "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
            "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
            "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
        ])
        #expect(layer.parameterShapes.map(\.shape) == [
            [48, 16], [48], [16, 16], [16], [32, 16], [32], [16, 32], [16], [16], [16], [16], [16],
        ])
        #expect(layer.parameterCount == 48 * 16 + 48 + 16 * 16 + 16 + 32 * 16 + 32 + 16 * 32 + 16 + 4 * 16)
        #expect(layer.namedParameters.count == 12)
        #expect(layer.namedParameters[4].tensor == layer.linear1.weight)

        let dictionary = layer.parameterDictionary(prefix: "encoder.layers.0")
        #expect(dictionary.count == 12)
        #expect(dictionary["encoder.layers.0.self_attn.out_proj.weight"] == layer.selfAttention.outProjection.weight)
        #expect(layer.parameterDictionary(prefix: "encoder.layers.0.") == dictionary)
        #expect(Set(layer.parameterDictionary().keys) == Set(layer.parameterShapes.map(\.name)))

        // Optional parameters and modules appear only when present.
        let noBias = try PackedAttentionParameters(embedSize: 4, bias: false, using: &rng)
        #expect(noBias.parameterShapes.map(\.name) == ["in_proj_weight", "out_proj.weight"])
        let stack = Stack(layers: [try Linear(inputSize: 2, outputSize: 3, using: &rng), try Linear(inputSize: 3, outputSize: 2, bias: false, using: &rng)], norm: try LayerNorm(size: 2))
        #expect(stack.parameterShapes.map(\.name) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "norm.weight", "norm.bias"])
        #expect(Stack(layers: [], norm: nil).parameterShapes.isEmpty)
    }

    @Test func loadingReplacesEveryParameter() throws {
        var rng = SeededGenerator(seed: 4)
        let source = try EncoderLayerParameters(modelSize: 8, feedForwardSize: 12, using: &rng)
        var target = try EncoderLayerParameters(modelSize: 8, feedForwardSize: 12, using: &rng)
        #expect(target != source)
        var tensors = source.parameterDictionary(prefix: "model.layer")
        tensors["model.other.weight"] = try Tensor(zeros: [3])   // outside the prefix: ignored
        tensors["unrelated"] = try Tensor(zeros: [1])
        try target.loadParameters(from: tensors, prefix: "model.layer")
        #expect(target == source)

        // Through nested key paths into arrays and optionals.
        var stack = Stack(layers: [try Linear(inputSize: 2, outputSize: 2, using: &rng)], norm: try LayerNorm(size: 2))
        let values = try Tensor(shape: [2], scalars: [5, 6])
        try stack.loadParameters(from: [
            "layers.0.weight": Tensor(ones: [2, 2]), "layers.0.bias": values,
            "norm.weight": values, "norm.bias": values,
        ])
        #expect(stack.layers[0].bias == values && stack.norm?.weight == values && stack.norm?.bias == values)
    }

    @Test func everyProblemIsReportedAtOnceAndNothingChanges() throws {
        var rng = SeededGenerator(seed: 5)
        var module = try PackedAttentionParameters(embedSize: 8, bias: true, using: &rng)
        let original = module
        let tensors: [String: Tensor] = [
            "attn.in_proj_weight": try Tensor(zeros: [8, 24]),        // transposed
            // attn.in_proj_bias missing
            "attn.out_proj.weight": try Tensor(zeros: [8, 8]),        // fine
            "attn.out_proj.bias": try Tensor(zeros: [1, 8]),          // extra dimension
            "attn.bias_k": try Tensor(zeros: [1, 1, 8]),              // not a parameter
            "attn.out_proj.scale": try Tensor(zeros: [8]),            // not a parameter
            "other.in_proj_bias": try Tensor(zeros: [24]),            // another prefix: ignored
        ]
        let expected = AttentionError.checkpointMismatch(
            missing: ["attn.in_proj_bias"],
            unexpected: ["attn.bias_k", "attn.out_proj.scale"],
            shapeMismatches: [
                ParameterShapeMismatch(name: "attn.in_proj_weight", expected: [24, 8], actual: [8, 24]),
                ParameterShapeMismatch(name: "attn.out_proj.bias", expected: [8], actual: [1, 8]),
            ])
        #expect(throws: expected) { try module.loadParameters(from: tensors, prefix: "attn") }
        #expect(module == original)
        #expect("\(expected)".contains("missing 1 (attn.in_proj_bias)"))
        #expect("\(expected)".contains("attn.in_proj_weight: expected [24, 8], found [8, 24]"))

        // Not strict: missing and unexpected names are ignored, shapes are still checked.
        #expect(throws: AttentionError.checkpointMismatch(
            missing: [], unexpected: [], shapeMismatches: [
                ParameterShapeMismatch(name: "attn.in_proj_weight", expected: [24, 8], actual: [8, 24]),
                ParameterShapeMismatch(name: "attn.out_proj.bias", expected: [8], actual: [1, 8]),
            ])
        ) { try module.loadParameters(from: tensors, prefix: "attn", strict: false) }
        let partial: [String: Tensor] = ["attn.out_proj.weight": try Tensor(ones: [8, 8]), "attn.extra": try Tensor(ones: [1])]
        try module.loadParameters(from: partial, prefix: "attn", strict: false)
        #expect(module.outProjection.weight == partial["attn.out_proj.weight"])
        #expect(module.inProjectionWeight == original.inProjectionWeight)

        // A module without a bias meets a checkpoint with one, and the reverse.
        var noBias = try PackedAttentionParameters(embedSize: 8, bias: false, using: &rng)
        #expect(throws: AttentionError.checkpointMismatch(
            missing: [], unexpected: ["in_proj_bias", "out_proj.bias"], shapeMismatches: [])
        ) { try noBias.loadParameters(from: original.parameterDictionary()) }
        var withBias = original
        #expect(throws: AttentionError.checkpointMismatch(
            missing: ["in_proj_bias", "out_proj.bias"], unexpected: [], shapeMismatches: [])
        ) { try withBias.loadParameters(from: noBias.parameterDictionary()) }

        var duplicated = Duplicated(a: try Tensor(zeros: [1]))
        #expect(throws: AttentionError.self) { try duplicated.loadParameters(from: ["w": Tensor(zeros: [1])]) }
    }

    @Test func savesAndLoadsThroughSafetensorsFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ParameterizedModuleTests-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var rng = SeededGenerator(seed: 6)
        let layer = try EncoderLayerParameters(modelSize: 8, feedForwardSize: 16, using: &rng)
        let url = directory.appendingPathComponent("layer.safetensors")
        try layer.saveParameters(to: url, prefix: "encoder", metadata: ["format": "pt"])

        let file = try SafeTensors(contentsOf: url)
        #expect(file.metadata == ["format": "pt"])
        #expect(file.names.count == 12 && file.names.allSatisfy { $0.hasPrefix("encoder.") })
        var loaded = try EncoderLayerParameters(modelSize: 8, feedForwardSize: 16, using: &rng)
        try loaded.loadParameters(from: file, prefix: "encoder")
        #expect(loaded == layer)
        var again = try EncoderLayerParameters(modelSize: 8, feedForwardSize: 16, using: &rng)
        try again.loadParameters(contentsOf: url, prefix: "encoder.")
        #expect(again == layer)

        // Stored as bfloat16: this module declares no matrix weights, so loading as stored is an
        // error naming the first parameter, and nothing changes; widened explicitly, it loads
        // rounded, not exactly.
        try layer.saveParameters(to: url, as: .bfloat16)
        var rounded = try EncoderLayerParameters(modelSize: 8, feedForwardSize: 16, using: &rng)
        let before = rounded
        #expect(throws: AttentionError.unsupportedDType(
            argument: "self_attn.in_proj_weight", dtype: .bfloat16,
            reason: "only matrix-multiply weights may be loaded in half precision; "
                + "pass precision: .float32 to widen the other parameters explicitly")
        ) { try rounded.loadParameters(contentsOf: url) }
        #expect(rounded == before)
        try rounded.loadParameters(contentsOf: url, precision: .float32)
        #expect(rounded.namedParameters.allSatisfy { $0.tensor.dtype == .float32 })
        #expect(try SafeTensors(contentsOf: url).dtype(of: "linear1.weight") == .bfloat16)
        for ((name, a), (_, b)) in zip(rounded.namedParameters, layer.namedParameters) {
            let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) / max(abs($1), 1e-30) }.max() ?? 0
            #expect(worst <= 0x1p-8, "\(name)")
        }

        // A mismatch in a file is reported like one in a dictionary.
        var small = try EncoderLayerParameters(modelSize: 4, feedForwardSize: 16, using: &rng)
        do {
            try small.loadParameters(from: file, prefix: "encoder")
            Issue.record("expected a mismatch")
        } catch let AttentionError.checkpointMismatch(missing, unexpected, shapeMismatches) {
            #expect(missing.isEmpty && unexpected.isEmpty)
            #expect(shapeMismatches.count == 11)   // all but linear1.bias, (16,) in both
            #expect(shapeMismatches.first == ParameterShapeMismatch(name: "encoder.self_attn.in_proj_weight", expected: [12, 4], actual: [24, 8]))
        }
    }

    @Test func loadsTheReferenceLibrariesParameters() throws {
        // torch's MultiheadAttention and TransformerEncoderLayer state dicts, and equinox's Linear
        // fields, as the fixture generator stored them under "param.".
        var rng = SeededGenerator(seed: 7)
        let mhaFile = try SafeTensors(contentsOf: fixtureURL("torch_mha_default"))
        var mha = try PackedAttentionParameters(embedSize: 8, bias: true, using: &rng)
        try mha.loadParameters(from: mhaFile, prefix: "param")
        #expect(mha.inProjectionWeight == (try mhaFile.tensor(named: "param.in_proj_weight")))
        #expect(mha.outProjection.bias == (try mhaFile.tensor(named: "param.out_proj.bias")))

        var layer = try EncoderLayerParameters(modelSize: 16, feedForwardSize: 32, using: &rng)
        try layer.loadParameters(from: SafeTensors(contentsOf: fixtureURL("torch_encoder_layer_postnorm_relu")), prefix: "param")

        struct EquinoxProjections: ParameterizedModule {
            var query, key, value, output: Linear
            var parameterPaths: [ParameterPath<Self>] {
                parameterPaths(of: \.query, prefixedBy: "query_proj") + parameterPaths(of: \.key, prefixedBy: "key_proj")
                    + parameterPaths(of: \.value, prefixedBy: "value_proj") + parameterPaths(of: \.output, prefixedBy: "output_proj")
            }
        }
        let linear = try Linear(inputSize: 8, outputSize: 8, using: &rng)
        var projections = EquinoxProjections(query: linear, key: linear, value: linear, output: linear)
        try projections.loadParameters(from: SafeTensors(contentsOf: fixtureURL("eqx_mha_all_biases")), prefix: "param")
        #expect(projections.query != projections.key)
    }
}
