import Attention
import AttentionModels
import Foundation
import Testing

/// The Swift snippets of README.md and of the `AttentionModels` catalogue, run as written (between
/// the marked lines) on the tiny fixture models: the snippets' model folders are read as
/// `tiny-bert` and `tiny-llama`. `AttentionTests`' suite checks that every snippet is run by some test.
@Suite("Documentation snippets")
struct ModelsDocumentationSnippetTests {
    /// The fixture model standing for each folder the snippets name.
    static func fixture(for path: String) throws -> Foundation.URL {
        let models = ["models/all-MiniLM-L6-v2": "tiny-bert", "models/my-llama": "tiny-llama"]
        let name = try #require(models[path], "a snippet names \(path), which has no fixture")
        return try fixtureURL(name)
    }

    @Test func sentenceEmbeddings() throws {
        func URL(fileURLWithPath path: String) throws -> Foundation.URL { try Self.fixture(for: path) }
        // Snippet:
        let embedder = try SentenceEmbedder(contentsOf: URL(fileURLWithPath: "models/all-MiniLM-L6-v2"))
        let embeddings = try embedder.embed(["A man is eating food.", "Someone is eating a meal."])
        // (2, 384), each row of unit length: their dot product is the cosine similarity
        let similarity = try (embeddings[0] * embeddings[1]).sum()   // a rank-0 tensor
        // End of snippet.
        let rows = embeddings.scalars, width = embedder.dimension
        #expect(embeddings.shape == [2, width] && similarity.shape == [])
        let dot = zip(rows[..<width], rows[width...]).map { Double($0) * Double($1) }.reduce(0, +)
        let norm = rows[..<width].map { $0 * $0 }.reduce(0, +)
        #expect(abs(norm - 1) < 1e-5 && abs(Double(similarity.scalars[0]) - dot) < 1e-5)
    }

    /// The f32 run (the bf16 products are checked in LlamaTrainingTests).
    @Test func trainingALlama() throws {
        // Snippet:
        let configuration = try LlamaConfiguration(
            vocabularySize: 256, hiddenSize: 64, intermediateSize: 176, layerCount: 2, headCount: 4,
            keyValueHeadCount: 2, tieWordEmbeddings: true)
        var model = try LlamaForCausalLM(initializing: configuration, seed: 0)
        var optimizer = AdamW(learningRate: 3e-3, beta1: 0.9, beta2: 0.95, weightDecay: 0.1)
        let tokens = Array("the cat sees the ball. ".utf8).map(Int.init)
        let inputs = try IndexArray(shape: [1, tokens.count - 1], indices: Array(tokens.dropLast()))
        let targets = try IndexArray(shape: [1, tokens.count - 1], indices: Array(tokens.dropFirst()))
        let bfloat16Products = false   // true: as torch.autocast on a CPU (below)
        for _ in 0..<10 {
            var compute = model
            if bfloat16Products {
                compute = try model.convertingWeights(to: .bfloat16)   // the matrices, not the norms
                compute.products = .bfloat16
            }
            let (logits, pullback) = try compute.callWithPullback(inputs)
            let loss = try crossEntropy(logits: logits, targets: targets)
            var gradients = try pullback(loss.gradient).parameters     // float32, laid out as the model
            try clipGradientNorm(&gradients, maxNorm: 1)
            try optimizer.update(&model, along: gradients)
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-llama")
        try model.write(to: folder)                               // config.json, model.safetensors, ...
        try ByteLevelBPETokenizer.plainBytes.write(to: folder)    // tokenizer.json: ids 0-255
        // End of snippet.
        defer { try? FileManager.default.removeItem(at: folder) }
        let fresh = try LlamaForCausalLM(initializing: configuration, seed: 0)
        let start = try crossEntropy(logits: fresh(inputs), targets: targets).value.scalars[0]
        let end = try crossEntropy(logits: model(inputs), targets: targets).value.scalars[0]
        #expect(end < start - 0.5, "loss \(start) -> \(end)")
        #expect(model.weightDType == .float32)
        let loaded = try LlamaForCausalLM(contentsOf: folder)
        #expect(loaded == model)
    }

    @Test func textGeneration() throws {
        func URL(fileURLWithPath path: String) throws -> Foundation.URL { try Self.fixture(for: path) }
        // Snippet:
        let model = try LlamaForCausalLM(contentsOf: URL(fileURLWithPath: "models/my-llama"))
        var cache = try model.makeCache(batchSize: 2, capacity: 256, dtype: .bfloat16)
        var logits = try model([[1, 2, 3, 4], [5, 6]], cache: &cache)   // prefill: (2, vocabularySize)
        logits = try model([[7], [8]], cache: &cache)                   // one token each
        var rng = SeededGenerator(seed: 0)
        let result = try model.generate(prompts: [[1, 2, 3]], maxNewTokens: 32, generator: &rng)
        // End of snippet.
        #expect(logits.shape == [2, model.configuration.vocabularySize])
        #expect(cache.lengths == [5, 3])
        #expect(result.tokens[0].count <= 32 && !result.tokens[0].isEmpty)
    }

    /// The snippet's folder stands for the tiny Llama with the plain-bytes tokenizer.
    @Test func promptsAsText() throws {
        let fixture = FileManager.default.temporaryDirectory.appendingPathComponent("my-llama-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: fixture) }
        try ByteLevelBPETokenizer.plainBytes.write(to: fixture)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(
                at: fixtureURL("tiny-llama/\(name)"), to: fixture.appendingPathComponent(name))
        }
        func URL(fileURLWithPath path: String) -> Foundation.URL { fixture }
        // Snippet:
        let folder = URL(fileURLWithPath: "models/my-llama")
        let model = try LlamaForCausalLM(contentsOf: folder)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: folder)
        var stream = ByteLevelBPETokenizer.DecodeStream(tokenizer: tokenizer)
        var rng = SeededGenerator(seed: 0)
        _ = try model.generate(prompts: [tokenizer.encode("Once upon a time")], maxNewTokens: 32, generator: &rng) { _, id in
            print(stream.append(id), terminator: "")   // the text so far, whole characters only
        }
        print(stream.finish())
        // End of snippet.
        #expect(stream.finish() == "" && tokenizer.encode("Once") == [79, 110, 99, 101])
    }
}
