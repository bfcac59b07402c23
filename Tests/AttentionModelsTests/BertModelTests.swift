import Attention
import Foundation
import Testing
@testable import AttentionModels

/// The tiny BERT's outputs from `transformers` and `sentence-transformers`.
struct TinyBertOutputs: Decodable {
    var sentences: [String]
    var ids: [[Int]]
    var hidden: [[Float]]
    var embeddings: [[Float]]
    var pooled: [String: [[Float]]]
}

@Suite struct BertModelTests {
    let folder: URL
    let outputs: TinyBertOutputs
    let embedder: SentenceEmbedder

    init() throws {
        folder = try fixtureURL("tiny-bert")
        outputs = try loadFixture(TinyBertOutputs.self, "tiny_bert_outputs.json")
        embedder = try SentenceEmbedder(contentsOf: folder)
    }

    @Test func readsTheSentenceTransformersFolder() {
        let configuration = embedder.model.configuration
        #expect(configuration.hiddenSize == 32 && configuration.layerCount == 2 && configuration.headCount == 4)
        #expect(configuration.layerNormEpsilon == 1e-12 && configuration.activation == .gelu)
        #expect(embedder.pooling.modes == [.mean])
        #expect(embedder.normalizesEmbeddings)
        #expect(embedder.maxSequenceLength == 24)
        #expect(embedder.dimension == 32)
    }

    @Test func tokenizesAsTheReference() throws {
        #expect(try embedder.tokenize(outputs.sentences) == outputs.ids)
    }

    @Test func hiddenStatesMatchTransformers() throws {
        for (index, ids) in outputs.ids.enumerated() {
            let hidden = try embedder.model(TokenBatch([ids]))
            #expect(hidden.shape == [ids.count, 32])
            expectClose(hidden.scalars, outputs.hidden[index], "hidden states of sentence \(index)")
        }
    }

    @Test func packedBatchMatchesTransformers() throws {
        let batch = try TokenBatch(outputs.ids)
        let hidden = try embedder.model(batch)
        for (index, range) in batch.ranges.enumerated() {
            expectClose(try hidden.sliced(range).scalars, outputs.hidden[index], "packed hidden states of sentence \(index)")
        }
    }

    @Test func embeddingsMatchSentenceTransformers() throws {
        for batchSize in [1, 3, 32] {
            let embeddings = try embedder.embed(outputs.sentences, batchSize: batchSize)
            #expect(embeddings.shape == [outputs.sentences.count, 32])
            for index in outputs.sentences.indices {
                expectClose(try row(embeddings, index), outputs.embeddings[index], "embedding \(index), batch size \(batchSize)")
            }
        }
    }

    @Test func aSentenceGetsTheSameEmbeddingInAnyBatch() throws {
        let together = try embedder.embed(outputs.sentences, batchSize: 64)
        for (index, sentence) in outputs.sentences.enumerated() {
            let alone = try embedder.embed([sentence])
            expectClose(try row(together, index), alone.scalars, rtol: 0, atol: 1e-6, "sentence \(index) alone vs in the batch")
        }
    }

    @Test(arguments: Pooling.Mode.allCases)
    func poolingMatchesSentenceTransformers(mode: Pooling.Mode) throws {
        let expected = try #require(outputs.pooled[mode.rawValue])
        let batch = try TokenBatch(outputs.ids)
        let pooled = try Pooling(modes: [mode])(embedder.model(batch), batch: batch)
        for index in outputs.ids.indices {
            expectClose(try row(pooled, index), expected[index], "\(mode) pooling of sentence \(index)")
        }
    }

    @Test func concatenatesPoolingModesInOrder() throws {
        let batch = try TokenBatch(outputs.ids)
        let pooled = try Pooling(modes: [.max, .classToken])(embedder.model(batch), batch: batch)
        #expect(pooled.shape == [outputs.ids.count, 64])
        expectClose(try row(pooled, 0), outputs.pooled["max"]![0] + outputs.pooled["cls"]![0], "max then cls")
    }

    @Test func loadsACheckpointWithTheBertPrefixAndAPooler() throws {
        let original = try SafeTensors(contentsOf: folder.appendingPathComponent("model.safetensors"))
        var prefixed = SafeTensors()
        for name in original.names { try prefixed.insert(original.tensor(named: name), named: "bert." + name) }
        try prefixed.insert(Tensor(zeros: [32, 32]), named: "bert.pooler.dense.weight")
        try prefixed.insert(Tensor(zeros: [32]), named: "bert.pooler.dense.bias")
        try prefixed.insert(Tensor(zeros: [61, 32]), named: "cls.predictions.decoder.weight")
        let model = try BertModel(configuration: embedder.model.configuration, checkpoint: prefixed)
        #expect(model == embedder.model)
    }

    @Test func halfPrecisionCheckpoints() throws {
        let original = try SafeTensors(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let configuration = embedder.model.configuration
        var brain = SafeTensors()
        for name in original.names { try brain.insert(original.tensor(named: name), named: name, as: .bfloat16) }
        // As stored, a bf16 embedding table is an error, not a silent widening.
        #expect(throws: AttentionError.unsupportedDType(
            argument: "embeddings.word_embeddings.weight", dtype: .bfloat16,
            reason: "only matrix-multiply weights may be loaded in half precision; "
                + "pass precision: .float32 to widen the other parameters explicitly")
        ) { try BertModel(configuration: configuration, checkpoint: brain) }
        // Widened explicitly, or with the projections kept in bfloat16: the same values.
        let widened = try BertModel(configuration: configuration, checkpoint: brain, precision: .float32)
        let mixed = try BertModel(
            configuration: configuration, checkpoint: brain, precision: .converting(matrixWeightsTo: .bfloat16))
        #expect(widened.namedParameters.allSatisfy { $0.tensor.dtype == .float32 })
        #expect(mixed.layers[0].query.weight.dtype == .bfloat16 && mixed.embeddings.wordEmbeddings.dtype == .float32)
        #expect(mixed.layers[0].attentionNorm.weight?.dtype == .float32)
        #expect(try mixed.convertingWeights(to: .float32) == widened)
        let batch = try TokenBatch(outputs.ids)
        let full = try embedder.model(batch), fromWidened = try widened(batch), fromMixed = try mixed(batch)
        // bf16 weights against the same weights widened: the same float32 math.
        expectClose(fromMixed.scalars, fromWidened.scalars, "bf16 projection weights")
        // Against the float32 checkpoint: bf16 rounding of every weight, relative 2^-8 each.
        expectClose(fromWidened.scalars, full.scalars, rtol: 0.05, atol: 0.05, "bf16 checkpoint")
        // The float32 checkpoint loads exactly as before.
        #expect(try BertModel(configuration: configuration, checkpoint: original) == embedder.model)
        var halfTable = embedder.model
        halfTable.embeddings.positionEmbeddings = try halfTable.embeddings.positionEmbeddings.converted(to: .float16)
        #expect(throws: AttentionError.self) { try halfTable(batch) }
        #expect(throws: AttentionError.self) { try embedder.pooling(full.converted(to: .bfloat16), batch: batch) }
    }

    @Test func namesAMissingOrMisshapedTensor() throws {
        var checkpoint = try SafeTensors(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let configuration = embedder.model.configuration
        _ = checkpoint.removeTensor(named: "encoder.layer.1.output.dense.bias")
        #expect(throws: ModelError.missingTensor(name: "encoder.layer.1.output.dense.bias", file: "model.safetensors")) {
            try BertModel(configuration: configuration, checkpoint: checkpoint)
        }
        try checkpoint.insert(Tensor(zeros: [31]), named: "encoder.layer.1.output.dense.bias")
        #expect(throws: ModelError.tensorShape(name: "encoder.layer.1.output.dense.bias", expected: [32], actual: [31])) {
            try BertModel(configuration: configuration, checkpoint: checkpoint)
        }
    }

    @Test func rejectsBadInput() throws {
        #expect(throws: ModelError.invalidArgument(argument: "sequences[1]", reason: "is empty; a sequence needs at least one token")) {
            try TokenBatch([[2, 3], []])
        }
        #expect(throws: ModelError.invalidArgument(argument: "tokenIDs[3]", reason: "61 is not in 0..<61")) {
            try embedder.model(TokenBatch([[2, 3], [2, 61]]))
        }
        #expect(throws: ModelError.invalidArgument(argument: "sequences[0]", reason: "has 41 tokens, more than the 40 positions of the model")) {
            try embedder.model(TokenBatch([[Int](repeating: 5, count: 41)]))
        }
        #expect(throws: ModelError.invalidArgument(argument: "batchSize", reason: "must be at least 1, got 0")) {
            try embedder.embed(["a"], batchSize: 0)
        }
        #expect(try embedder.embed([]).shape == [0, 32])
    }
}

/// Model folders with one thing wrong: each must throw an error that names it.
@Suite struct ModelFolderErrorTests {
    /// A copy of the tiny model folder with `config.json` edited by `edit`.
    func folder(editingConfig edit: (inout [String: Any]) -> Void) throws -> URL {
        let source = try fixtureURL("tiny-bert")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-bert-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: source, to: copy)
        let configURL = copy.appendingPathComponent("config.json")
        var config = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return copy
    }

    @Test func unknownModelType() throws {
        let url = try folder { $0["model_type"] = "gpt2" }
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: ModelError.unsupported(file: "config.json", setting: "model_type", value: "gpt2", supported: ["bert"])) {
            try SentenceEmbedder(contentsOf: url)
        }
    }

    @Test func unsupportedActivation() throws {
        let url = try folder { $0["hidden_act"] = "relu6" }
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: ModelError.unsupported(
            file: "config.json", setting: "hidden_act", value: "relu6",
            supported: ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"])
        ) { try BertModel(contentsOf: url) }
    }

    @Test func unsupportedPositionEmbeddings() throws {
        let url = try folder { $0["position_embedding_type"] = "relative_key" }
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: ModelError.unsupported(
            file: "config.json", setting: "position_embedding_type", value: "relative_key", supported: ["absolute"])
        ) { try BertModel(contentsOf: url) }
    }

    @Test func malformedValues() throws {
        let url = try folder { $0["hidden_size"] = "32" }
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: ModelError.invalidFile(file: "config.json", reason: "hidden_size must be an integer, got \"32\"")) {
            try BertModel(contentsOf: url)
        }
        let heads = try folder { $0["num_attention_heads"] = 5 }
        defer { try? FileManager.default.removeItem(at: heads) }
        #expect(throws: ModelError.invalidFile(file: "config.json", reason: "num_attention_heads: 5 heads do not divide the hidden size 32")) {
            try BertModel(contentsOf: heads)
        }
        let shapes = try folder { $0["intermediate_size"] = 48 }
        defer { try? FileManager.default.removeItem(at: shapes) }
        #expect(throws: ModelError.tensorShape(name: "encoder.layer.0.intermediate.dense.weight", expected: [48, 32], actual: [64, 32])) {
            try BertModel(contentsOf: shapes)
        }
    }

    @Test func missingAndTruncatedFiles() throws {
        let absent = URL(fileURLWithPath: "/nonexistent/model")
        #expect(throws: ModelError.missingFile(path: "/nonexistent/model/config.json")) {
            try SentenceEmbedder(contentsOf: absent)
        }
        let url = try folder { _ in }
        defer { try? FileManager.default.removeItem(at: url) }
        let weights = url.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count / 2).write(to: weights)
        #expect(throws: AttentionError.self) { try BertModel(contentsOf: url) }
        try Data("{not json".utf8).write(to: url.appendingPathComponent("config.json"))
        #expect(throws: ModelError.invalidFile(file: "config.json", reason: "is not valid JSON")) {
            try BertModel(contentsOf: url)
        }
    }

    /// The strict parser's rules: a duplicate key or a trailing comma is not JSON; an integral
    /// number written with a fraction or an exponent still reads as an integer, as before.
    @Test func configurationIsParsedStrictly() throws {
        let url = try folder { _ in }
        defer { try? FileManager.default.removeItem(at: url) }
        let configURL = url.appendingPathComponent("config.json")
        let text = try String(contentsOf: configURL, encoding: .utf8)
        let body = text.drop { $0 != "{" }.dropFirst()
        for broken in ["{\"hidden_size\": 32, " + body, String(text.dropLast(text.hasSuffix("\n") ? 2 : 1)) + ",}"] {
            try Data(broken.utf8).write(to: configURL)
            #expect(throws: ModelError.invalidFile(file: "config.json", reason: "is not valid JSON")) {
                try BertConfiguration(contentsOf: configURL)
            }
        }
        let integral = text.replacing(#/"num_hidden_layers"\s*:\s*2/#, with: #""num_hidden_layers": 2.0"#)
            .replacing(#/"type_vocab_size"\s*:\s*2/#, with: #""type_vocab_size": 2e0"#)
        try Data(integral.utf8).write(to: configURL)
        let configuration = try BertConfiguration(contentsOf: configURL)
        #expect(configuration.layerCount == 2 && configuration.tokenTypeCount == 2)
    }
}

/// BertModel's gradients against torch.autograd through transformers
/// (`Fixtures/generate_gradient_fixtures.py`), for a packed batch of two sequences.
@Suite struct BertGradientTests {
    @Test func gradientsMatchTransformers() throws {
        let model = try BertModel(contentsOf: fixtureURL("tiny-bert"))
        let fixture = try SafeTensors(contentsOf: fixtureURL("tiny-bert-gradients.safetensors"))
        let ids = try fixture.tensor(named: "input.tokens").scalars.map { Int($0) }
        let lengths = try fixture.tensor(named: "input.lengths").scalars.map { Int($0) }
        let batch = try TokenBatch(lengths.enumerated().map { Array(ids[($0.offset * 7)..<($0.offset * 7 + $0.element)]) })
        let (hidden, pullback) = try model.callWithPullback(batch)
        #expect(hidden == (try model(batch)))
        expectClose(hidden.scalars, try fixture.tensor(named: "output.hidden").scalars, rtol: 1e-4, atol: 1e-4, "hidden")
        let gradients = try pullback(fixture.tensor(named: "input.outputGradient")).parameters
        try expectGradientsMatch(gradients, fixture, "tiny-bert")
    }
}
