import Foundation
import Testing
@testable import Attention

/// The README's "Modules from a PyTorch checkpoint" example, run as written on checkpoints in
/// PyTorch's names (here written by the library itself; the fixture tests prove the numbers
/// against PyTorch's own).
@Suite("README example")
struct ReadmeExampleTests {
    @Test func modulesFromACheckpoint() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var source = SeededGenerator(seed: 99)
        let saved = try TransformerEncoderLayer(dModel: 64, heads: 4, feedForwardSize: 128, batchFirst: true, using: &source)
        try saved.saveParameters(to: folder.appendingPathComponent("encoder_layer.safetensors"))
        try saved.selfAttention.saveParameters(to: folder.appendingPathComponent("mha.safetensors"))
        #expect(saved.parameterDictionary().keys.contains("self_attn.in_proj_weight"))

        // As in the README:
        var rng = SeededGenerator(seed: 0)
        var layer = try TransformerEncoderLayer(dModel: 64, heads: 4, feedForwardSize: 128, batchFirst: true, using: &rng)
        try layer.loadParameters(contentsOf: folder.appendingPathComponent("encoder_layer.safetensors"))

        let x = try Tensor(randomNormal: [2, 10, 64], using: &rng)
        let padding = try TorchMask.disallowed(BooleanMask(shape: [2, 10]) { $0[0] == 1 && $0[1] >= 7 })
        let y = try layer(x, keyPaddingMask: padding)

        var attention = try TorchMultiheadAttention(embedDim: 64, heads: 4, batchFirst: true, using: &rng)
        try attention.loadParameters(contentsOf: folder.appendingPathComponent("mha.safetensors"))
        let result = try attention(query: x, key: x, value: x, keyPaddingMask: padding)

        #expect(y == (try saved(x, keyPaddingMask: padding)))
        #expect(result == (try saved.selfAttention(query: x, key: x, value: x, keyPaddingMask: padding)))
        #expect(result.output.shape == [2, 10, 64] && result.weights?.shape == [2, 10, 10])
    }

    /// The README's "Half precision" example, as written.
    @Test func halfPrecision() throws {
        var rng = SeededGenerator(seed: 0)
        let mha = try TorchMultiheadAttention(embedDim: 64, heads: 4, batchFirst: true, using: &rng)
        let half = try mha.convertingWeights(to: .bfloat16)
        let x = try Tensor(randomNormal: [2, 10, 64], using: &rng)
        let y = try half(query: x, key: x, value: x, needWeights: false).output

        let q = try Tensor(randomNormal: [1, 8, 1, 64], using: &rng)
        let k = try Tensor(randomNormal: [1, 8, 512, 64], dtype: .bfloat16, using: &rng)
        let v = try Tensor(randomNormal: [1, 8, 512, 64], dtype: .bfloat16, using: &rng)
        let out = try scaledDotProductAttention(query: q, key: k, value: v)

        #expect(half.inProjectionWeight?.dtype == .bfloat16 && y.dtype == .float32 && y.shape == [2, 10, 64])
        #expect(out.dtype == .float32 && out.shape == [1, 8, 1, 64])
    }
}
