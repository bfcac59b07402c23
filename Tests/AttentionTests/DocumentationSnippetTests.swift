import Foundation
import Testing
@testable import Attention

/// The Swift snippets of README.md and of the `Attention` catalogue, run as written (each test
/// body below holds one, line for line, between the marked lines), and the check that every
/// snippet of the README and of the three catalogues is held by some test.
@Suite("Documentation snippets")
struct DocumentationSnippetTests {
    @Test func everySnippetIsRunByATest() throws {
        let sources = try DocumentationSnippets.testSources()
        var count = 0
        for document in try DocumentationSnippets.documents() {
            let text = try String(contentsOf: document, encoding: .utf8)
            for block in DocumentationSnippets.blocks(in: text) where !DocumentationSnippets.isManifest(block) {
                let lines = DocumentationSnippets.normalized(block)
                #expect(sources.contains { DocumentationSnippets.contains($0, lines) },
                        "\(document.lastPathComponent): no test runs the snippet starting \(lines.first ?? "")")
                count += 1
            }
        }
        #expect(count >= 12, "the README and the catalogues hold at least 12 Swift snippets, found \(count)")
    }

    /// README "Tensors".
    @Test func tensors() throws {
        // Snippet:
        let x = try Tensor([[1, 2, 3], [4, 5, 6]])
        let bias: Tensor = [0.5, 0.5, 0.5]
        let y = try exp(x - x.max(alongAxis: -1, keepingDimensions: true)) * 2 + bias
        let probabilities = try y / y.sum(alongAxis: -1, keepingDimensions: true)
        print(try probabilities.argmax(alongAxis: -1).indices)   // [2, 2]
        print(try x[1])                                          // Tensor([4, 5, 6])
        // End of snippet.
        #expect(try probabilities.argmax(alongAxis: -1).indices == [2, 2])
        #expect(try x[1].description == "Tensor([4, 5, 6])")
        let sums = try probabilities.sum(alongAxis: -1).scalars
        #expect(sums.allSatisfy { abs($0 - 1) < 1e-6 })
    }

    /// README "Attention".
    @Test func attention() throws {
        // Snippet:
        var rng = SeededGenerator(seed: 42)
        // (batch, heads, length, head dimension)
        let q = try Tensor(randomNormal: [1, 8, 128, 64], using: &rng)
        let k = try Tensor(randomNormal: [1, 8, 128, 64], using: &rng)
        let v = try Tensor(randomNormal: [1, 8, 128, 64], using: &rng)
        let out = try scaledDotProductAttention(query: q, key: k, value: v, mask: .causal(.topLeft))
        print(out.shape)  // [1, 8, 128, 64]
        // End of snippet.
        #expect(out.shape == [1, 8, 128, 64])
    }

    /// README "Attention", its gradients.
    @Test func attentionGradients() throws {
        // Snippet:
        var rng = SeededGenerator(seed: 42)
        let q = try Tensor(randomNormal: [1, 8, 128, 64], using: &rng)
        let k = try Tensor(randomNormal: [1, 2, 128, 64], using: &rng)     // 2 key/value heads
        let v = try Tensor(randomNormal: [1, 2, 128, 64], using: &rng)
        let dOut = try Tensor(randomNormal: [1, 8, 128, 64], using: &rng)  // d(loss)/d(out)
        let grads = try scaledDotProductAttentionGradients(
            query: q, key: k, value: v, outputGradient: dOut, mask: .causal(.topLeft))
        print(grads.query.shape, grads.key.shape)  // [1, 8, 128, 64] [1, 2, 128, 64]: shaped as q and k
        // End of snippet.
        #expect(grads.query.shape == q.shape && grads.key.shape == k.shape && grads.value.shape == v.shape)
    }

    /// The catalogue's overview and "Getting started": grouped-query attention with a window.
    @Test func groupedQueryAttention() throws {
        // Snippet:
        var rng = SeededGenerator(seed: 0)
        let query = try Tensor(randomNormal: [1, 8, 128, 64], using: &rng)   // (B, Hq, Lq, D)
        let key = try Tensor(randomNormal: [1, 2, 128, 64], using: &rng)     // (B, Hkv, Lk, D)
        let value = try Tensor(randomNormal: [1, 2, 128, 64], using: &rng)
        let output = try scaledDotProductAttention(
            query: query, key: key, value: value,
            mask: AttentionMask(causal: .topLeft, window: .init(left: 63, right: 0)))
        print(output.shape)   // [1, 8, 128, 64]
        // End of snippet.
        #expect(output.shape == [1, 8, 128, 64])
    }

    /// "Getting started": an error names the argument and its shape.
    @Test func errorsNameTheArgument() throws {
        // Snippet:
        var rng = SeededGenerator(seed: 0)
        let query = try Tensor(randomNormal: [2, 8, 16, 64], using: &rng)
        let key = try Tensor(randomNormal: [2, 3, 16, 64], using: &rng)   // 3 heads do not divide 8
        do {
            _ = try scaledDotProductAttention(query: query, key: key, value: key)
        } catch let error as AttentionError {
            print(error)   // names "key", its shape [2, 3, 16, 64] and the shapes expected
        }
        // End of snippet.
        let error = #expect(throws: AttentionError.self) {
            try scaledDotProductAttention(query: query, key: key, value: key)
        }
        guard case let .shapeMismatch(argument, _, actual)? = error else {
            Issue.record("expected a shape mismatch, got \(String(describing: error))")
            return
        }
        #expect(argument == "key" && actual == [2, 3, 16, 64])
    }

    /// README "Modules from a PyTorch checkpoint" and its article, on checkpoints in PyTorch's
    /// names written by the library itself (the fixture tests prove the numbers against PyTorch's).
    @Test func modulesFromACheckpoint() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snippet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var source = SeededGenerator(seed: 99)
        let saved = try TransformerEncoderLayer(dModel: 64, heads: 4, feedForwardSize: 128, batchFirst: true, using: &source)
        try saved.saveParameters(to: folder.appendingPathComponent("encoder_layer.safetensors"))
        try saved.selfAttention.saveParameters(to: folder.appendingPathComponent("mha.safetensors"))
        // The snippet's relative paths name files of that folder.
        func URL(fileURLWithPath path: String) -> Foundation.URL { folder.appendingPathComponent(path) }

        // Snippet:
        var rng = SeededGenerator(seed: 0)
        var layer = try TransformerEncoderLayer(dModel: 64, heads: 4, feedForwardSize: 128, batchFirst: true, using: &rng)
        try layer.loadParameters(contentsOf: URL(fileURLWithPath: "encoder_layer.safetensors"))

        let x = try Tensor(randomNormal: [2, 10, 64], using: &rng)                 // (N, L, E)
        let padding = try TorchMask.disallowed(BooleanMask(shape: [2, 10]) { $0[0] == 1 && $0[1] >= 7 })
        let y = try layer(x, keyPaddingMask: padding)                              // (2, 10, 64), as PyTorch's

        var attention = try TorchMultiheadAttention(embedDim: 64, heads: 4, batchFirst: true, using: &rng)
        try attention.loadParameters(contentsOf: URL(fileURLWithPath: "mha.safetensors"))
        let result = try attention(query: x, key: x, value: x, keyPaddingMask: padding)
        // result.output: (2, 10, 64); result.weights: (2, 10, 10), averaged over the heads
        // End of snippet.

        #expect(y == (try saved(x, keyPaddingMask: padding)))
        #expect(result == (try saved.selfAttention(query: x, key: x, value: x, keyPaddingMask: padding)))
        #expect(result.output.shape == [2, 10, 64] && result.weights?.shape == [2, 10, 10])
    }

    /// README: the encoder-decoder `Transformer`.
    @Test func transformer() throws {
        // Snippet:
        var rng = SeededGenerator(seed: 0)
        let model = try Transformer(
            dModel: 32, heads: 4, encoderLayerCount: 2, decoderLayerCount: 2, feedForwardSize: 64,
            batchFirst: true, using: &rng)
        let source = try Tensor(randomNormal: [2, 9, 32], using: &rng)   // (N, S, E)
        let target = try Tensor(randomNormal: [2, 5, 32], using: &rng)   // (N, T, E)
        let decoded = try model(source, target: target, targetMask: TorchMask.squareSubsequent(5), targetIsCausal: true)
        print(decoded.shape)   // [2, 5, 32]
        // End of snippet.
        #expect(decoded.shape == [2, 5, 32])
        #expect(decoded.scalars.allSatisfy { $0.isFinite })
    }

    /// README "Half precision" and its article.
    @Test func halfPrecision() throws {
        // Snippet:
        var rng = SeededGenerator(seed: 0)
        let mha = try TorchMultiheadAttention(embedDim: 64, heads: 4, batchFirst: true, using: &rng)
        let half = try mha.convertingWeights(to: .bfloat16)          // projection weights only
        let x = try Tensor(randomNormal: [2, 10, 64], using: &rng)   // activations stay float32
        let y = try half(query: x, key: x, value: x, needWeights: false).output

        let q = try Tensor(randomNormal: [1, 8, 1, 64], using: &rng)
        let k = try Tensor(randomNormal: [1, 8, 512, 64], dtype: .bfloat16, using: &rng)
        let v = try Tensor(randomNormal: [1, 8, 512, 64], dtype: .bfloat16, using: &rng)
        let out = try scaledDotProductAttention(query: q, key: k, value: v)   // float32, over a bf16 cache
        // End of snippet.

        #expect(half.inProjectionWeight?.dtype == .bfloat16 && y.dtype == .float32 && y.shape == [2, 10, 64])
        #expect(out.dtype == .float32 && out.shape == [1, 8, 1, 64])
    }
}
