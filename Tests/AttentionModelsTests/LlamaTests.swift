import Attention
import Foundation
import Testing
@testable import AttentionModels

/// One tiny Llama's outputs from `transformers` (`Fixtures/generate_llama_fixtures.py`).
struct TinyLlamaOutputs: Decodable {
    struct Prompt: Decodable {
        var prompt: [Int]
        var last_logits: [Float]
        var greedy_ids: [Int]
    }
    var prompt: [Int]
    /// `(promptLength, vocabularySize)`.
    var logits: [[Float]]
    var greedy_ids: [Int]
    var greedy_top_two_gaps: [Float]
    /// The bf16 model only: its weights run by transformers with f32 activations.
    var logits_f32_activations: [[Float]]?
    var batch: [Prompt]
}

/// The outputs of every tiny Llama, by folder name.
func tinyLlamaOutputs(_ name: String) throws -> TinyLlamaOutputs {
    struct File: Decodable { var models: [String: TinyLlamaOutputs] }
    return try #require(try loadFixture(File.self, "tiny_llama_outputs.json").models[name])
}

/// The f32 fixtures: `tiny-llama` (grouped-query, one file) and `tiny-llama-bias` (multi-query,
/// explicit head_dim, attention bias, tied head, rope_theta 500, sharded).
let float32Llamas = ["tiny-llama", "tiny-llama-bias"]

@Suite struct LlamaTests {
    func model(_ name: String) throws -> LlamaForCausalLM {
        try LlamaForCausalLM(contentsOf: fixtureURL(name))
    }

    @Test func readsTheConfiguration() throws {
        let plain = try model("tiny-llama").configuration
        #expect(plain.headCount == 4 && plain.keyValueHeadCount == 2 && plain.headSize == 8)
        #expect(!plain.attentionBias && !plain.tieWordEmbeddings && plain.ropeTheta == 10_000)
        let variant = try model("tiny-llama-bias")
        #expect(variant.configuration.keyValueHeadCount == 1 && variant.configuration.headSize == 16)
        #expect(variant.configuration.attentionBias && variant.configuration.tieWordEmbeddings)
        #expect(variant.configuration.ropeTheta == 500)
        #expect(!variant.parameterPaths.contains { $0.name == "lm_head.weight" })
        #expect(variant.parameterPaths.contains { $0.name == "model.layers.1.self_attn.q_proj.bias" })
    }

    @Test(arguments: float32Llamas) func logitsAtEveryPositionMatchTransformers(name: String) throws {
        let (model, expected) = (try model(name), try tinyLlamaOutputs(name))
        var cache = try model.makeCache(batchSize: 1, capacity: expected.prompt.count)
        let logits = try model([expected.prompt], cache: &cache, logits: .all)
        #expect(logits.shape == [1, expected.prompt.count, model.configuration.vocabularySize])
        expectClose(logits.scalars, expected.logits.flatMap { $0 }, rtol: 1e-4, atol: 1e-4, "\(name) logits")
        #expect(cache.lengths == [expected.prompt.count])
    }

    @Test(arguments: float32Llamas) func greedyGenerationMatchesTransformers(name: String) throws {
        let (model, expected) = (try model(name), try tinyLlamaOutputs(name))
        var rng = SeededGenerator(seed: 0)
        let result = try model.generate(prompts: [expected.prompt], maxNewTokens: 32, generator: &rng)
        #expect(result.tokens == [expected.greedy_ids])
        #expect(result.decodeSteps == 31)
        expectClose(result.promptLogits.scalars, expected.logits.last!, rtol: 1e-4, atol: 1e-4, "\(name) last logits")
    }

    /// The prompt and its 32 greedy tokens: once in one call, once as a prefill then one token per
    /// call, and once as two chunks of several tokens (new tokens after cached ones).
    @Test(arguments: float32Llamas) func prefillThenDecodeEqualsOneFullPass(name: String) throws {
        let (model, expected) = (try model(name), try tinyLlamaOutputs(name))
        let sequence = expected.prompt + expected.greedy_ids
        let vocabulary = model.configuration.vocabularySize
        var full = try model.makeCache(batchSize: 1, capacity: sequence.count)
        let reference = try model([sequence], cache: &full, logits: .all).scalars

        var cache = try model.makeCache(batchSize: 1, capacity: sequence.count + 3)
        var stepwise = try model([expected.prompt], cache: &cache, logits: .all).scalars
        for token in expected.greedy_ids {
            stepwise += try model([[token]], cache: &cache).scalars
        }
        expectClose(stepwise, reference, rtol: 1e-5, atol: 1e-5, "\(name) prefill then decode")

        cache.reset()
        var chunked = try model([Array(sequence[..<7])], cache: &cache, logits: .all).scalars
        chunked += try model([Array(sequence[7...])], cache: &cache, logits: .all).scalars
        expectClose(chunked, reference, rtol: 1e-5, atol: 1e-5, "\(name) two chunks")
        #expect(chunked.count == sequence.count * vocabulary)
    }

    /// Two prompts of different lengths in one batch: prefill, decode and chunks each equal the
    /// sequence run alone (and transformers').
    @Test(arguments: float32Llamas) func batchOfDifferentLengthsEqualsEachAlone(name: String) throws {
        let (model, expected) = (try model(name), try tinyLlamaOutputs(name))
        let prompts = expected.batch.map(\.prompt)
        #expect(prompts[0].count != prompts[1].count)
        var rng = SeededGenerator(seed: 0)
        let together = try model.generate(prompts: prompts, maxNewTokens: 32, generator: &rng)
        let vocabulary = model.configuration.vocabularySize
        for (index, alone) in expected.batch.enumerated() {
            #expect(together.tokens[index] == alone.greedy_ids, "sequence \(index)")
            let logits = Array(together.promptLogits.scalars[(index * vocabulary)..<((index + 1) * vocabulary)])
            expectClose(logits, alone.last_logits, rtol: 1e-4, atol: 1e-4, "\(name) batch \(index)")
        }
        // A second chunk of different lengths after cached prompts of different lengths.
        var cache = try model.makeCache(batchSize: 2, capacity: 32)
        _ = try model(prompts, cache: &cache)
        let more = [[3, 1, 4], [1, 5]]
        let batched = try model(more, cache: &cache)
        for index in 0..<2 {
            var single = try model.makeCache(batchSize: 1, capacity: 32)
            let alone = try model([prompts[index] + more[index]], cache: &single)
            let row = Array(batched.scalars[(index * vocabulary)..<((index + 1) * vocabulary)])
            expectClose(row, alone.scalars, rtol: 1e-5, atol: 1e-5, "\(name) chunk after batch \(index)")
        }
        #expect(cache.lengths == [prompts[0].count + 3, prompts[1].count + 2])
    }

    @Test func samplingIsSeededAndTopKOneIsGreedy() throws {
        let (model, expected) = (try model("tiny-llama"), try tinyLlamaOutputs("tiny-llama"))
        func sample(_ sampling: TokenSampling, seed: UInt64) throws -> [Int] {
            var rng = SeededGenerator(seed: seed)
            return try model.generate(prompts: [expected.prompt], maxNewTokens: 32, sampling: sampling, generator: &rng)
                .tokens[0]
        }
        let hot = try TokenSampling(temperature: 2, topK: 50, topP: 0.95)
        #expect(try sample(hot, seed: 1) == sample(hot, seed: 1))
        #expect(try sample(hot, seed: 1) != sample(hot, seed: 2))
        #expect(try sample(TokenSampling(temperature: 1.5, topK: 1), seed: 3) == expected.greedy_ids)
        #expect(try sample(TokenSampling(temperature: 1.5, topP: 1e-6), seed: 3) == expected.greedy_ids)
    }

    @Test func samplingDrawsOnlyWithinTopKAndTopP() throws {
        let logits: [Float] = [0, 3, 1, 2.9, -1]
        var rng = SeededGenerator(seed: 9)
        var seen: Set<Int> = []
        let twoBest = try TokenSampling(temperature: 1, topK: 2)
        for _ in 0..<200 { seen.insert(logits.withUnsafeBufferPointer { twoBest.choose(from: $0, using: &rng) }) }
        #expect(seen == [1, 3])
        // softmax: token 1 has 0.46, token 3 0.42: top-p 0.5 keeps both, 0.4 only the first.
        seen = []
        let nucleus = try TokenSampling(temperature: 1, topP: 0.4)
        for _ in 0..<200 { seen.insert(logits.withUnsafeBufferPointer { nucleus.choose(from: $0, using: &rng) }) }
        #expect(seen == [1])
        #expect(throws: ModelError.invalidArgument(argument: "topP", reason: "must be in (0, 1], got 0.0")) {
            try TokenSampling(temperature: 1, topP: 0)
        }
    }

    /// A copy of the tiny model's folder with `config.json` edited by `edit`.
    func folder(editing edit: (inout [String: Any]) -> Void) throws -> URL {
        let source = try fixtureURL("tiny-llama")
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("llama-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: source, to: target)
        let configURL = target.appendingPathComponent("config.json")
        var config = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return target
    }

    @Test func unsupportedSettingsAreNamed() throws {
        let cases: [(edit: (inout [String: Any]) -> Void, error: ModelError)] = [
            ({ $0["rope_scaling"] = ["rope_type": "linear", "factor": 2.0] },
             .unsupported(file: "config.json", setting: "rope_scaling.rope_type", value: "linear", supported: ["default"])),
            ({ $0["rope_parameters"] = ["rope_type": "llama3", "rope_theta": 10000.0] },
             .unsupported(file: "config.json", setting: "rope_parameters.rope_type", value: "llama3", supported: ["default"])),
            ({ $0["hidden_act"] = "gelu" },
             .unsupported(file: "config.json", setting: "hidden_act", value: "gelu", supported: ["silu"])),
            ({ $0["model_type"] = "mistral" },
             .unsupported(file: "config.json", setting: "model_type", value: "mistral", supported: ["llama"])),
            ({ $0["num_key_value_heads"] = 3 },
             .invalidFile(file: "config.json", reason: "num_key_value_heads: 3 key/value heads do not divide the 4 query heads")),
            ({ $0["head_dim"] = 7 },
             .invalidFile(file: "config.json", reason: "head_dim: must be even for the rotary pairs, got 7")),
            ({ $0.removeValue(forKey: "hidden_size") }, .invalidFile(file: "config.json", reason: "no hidden_size")),
        ]
        for (edit, error) in cases {
            let url = try folder(editing: edit)
            defer { try? FileManager.default.removeItem(at: url) }
            #expect(throws: error) { try LlamaForCausalLM(contentsOf: url) }
        }
    }

    /// `eos_token_id` from config.json (one id or a list) stops a sequence after it; the others
    /// of the batch go on.
    @Test func generationStopsAtEndOfSequence() throws {
        let expected = try tinyLlamaOutputs("tiny-llama")
        let stop = expected.greedy_ids[2]
        let url = try folder { $0["eos_token_id"] = [stop, 127] }
        defer { try? FileManager.default.removeItem(at: url) }
        let model = try LlamaForCausalLM(contentsOf: url)
        #expect(model.configuration.endOfSequenceTokenIDs == [stop, 127])
        var rng = SeededGenerator(seed: 0)
        let prompts = [expected.prompt, expected.batch[0].prompt]
        let stopped = try model.generate(prompts: prompts, maxNewTokens: 32, generator: &rng)
        let other = expected.batch[0].greedy_ids
        let otherEnd = other.firstIndex { $0 == stop || $0 == 127 }.map { $0 + 1 } ?? other.count
        #expect(stopped.tokens == [Array(expected.greedy_ids.prefix(3)), Array(other.prefix(otherEnd))])
        let ignored = try model.generate(prompts: prompts, maxNewTokens: 32, generator: &rng, stopAtEndOfSequence: false)
        #expect(ignored.tokens == [expected.greedy_ids, other])
    }

    @Test func missingAndMisshapenTensorsAreNamed() throws {
        let model = try model("tiny-llama")
        var parameters = model.parameterDictionary()
        parameters["model.layers.1.mlp.up_proj.weight"] = nil
        #expect(throws: ModelError.missingTensor(name: "model.layers.1.mlp.up_proj.weight", file: "model.safetensors")) {
            try LlamaForCausalLM(configuration: model.configuration, checkpoint: SafeTensors(parameters))
        }
        parameters = model.parameterDictionary()
        parameters["model.layers.0.self_attn.k_proj.weight"] = try Tensor(zeros: [32, 32])
        #expect(throws: ModelError.tensorShape(name: "model.layers.0.self_attn.k_proj.weight", expected: [16, 32], actual: [32, 32])) {
            try LlamaForCausalLM(configuration: model.configuration, checkpoint: SafeTensors(parameters))
        }
        // Round trip: the model's own parameters give the same logits.
        let again = try LlamaForCausalLM(configuration: model.configuration, checkpoint: SafeTensors(model.parameterDictionary()))
        var first = try model.makeCache(batchSize: 1, capacity: 4)
        var second = try again.makeCache(batchSize: 1, capacity: 4)
        #expect(try model([[1, 2, 3]], cache: &first) == again([[1, 2, 3]], cache: &second))
    }

    /// Parameters set by name (the stacked q/k/v and gate/up projections written part by part)
    /// give the model those parameters describe.
    @Test func loadingParametersByNameReplacesTheStackedProjections() throws {
        var model = try model("tiny-llama")
        let other = try LlamaForCausalLM(contentsOf: fixtureURL("tiny-llama-bf16"), weightDType: .float32)
        try model.loadParameters(from: other.parameterDictionary())
        let prompt = try tinyLlamaOutputs("tiny-llama").prompt
        var first = try model.makeCache(batchSize: 1, capacity: 16)
        var second = try other.makeCache(batchSize: 1, capacity: 16)
        #expect(try model([prompt], cache: &first, logits: .all) == other([prompt], cache: &second, logits: .all))
        #expect(model.parameterDictionary() == other.parameterDictionary())
    }

    /// The cache is written in place: each layer's key and value buffers keep their address from
    /// the prefill through every decoding step (no copy per step).
    @Test(arguments: [Tensor.DType.float32, .bfloat16]) func cacheIsWrittenInPlace(dtype: Tensor.DType) throws {
        let model = try model("tiny-llama")
        var cache = try model.makeCache(batchSize: 2, capacity: 24, dtype: dtype)
        func addresses(_ cache: LlamaKeyValueCache) -> [UnsafeRawPointer?] {
            cache.layers.flatMap { [$0.key, $0.value] }.map { $0.withUnsafeRawBufferPointer { UnsafeRawPointer($0.baseAddress) } }
        }
        let before = addresses(cache)
        _ = try model([[1, 2, 3, 4], [5, 6]], cache: &cache)
        for token in 0..<8 { _ = try model([[token], [token + 1]], cache: &cache) }
        #expect(addresses(cache) == before)
        #expect(cache.lengths == [12, 10])
    }

    @Test func badCallsThrowAndLeaveTheCache() throws {
        let model = try model("tiny-llama")
        var cache = try model.makeCache(batchSize: 1, capacity: 4)
        #expect(throws: ModelError.invalidArgument(argument: "tokens[0][1]", reason: "128 is not in 0..<128")) {
            try model([[1, 128]], cache: &cache)
        }
        #expect(throws: ModelError.invalidArgument(argument: "tokens", reason: "has 2 sequences, the cache 1")) {
            try model([[1], [2]], cache: &cache)
        }
        #expect(throws: ModelError.invalidArgument(argument: "tokens[0]", reason: "is empty")) {
            try model([[]], cache: &cache)
        }
        _ = try model([[1, 2, 3]], cache: &cache)
        #expect(throws: ModelError.invalidArgument(
            argument: "tokens[0]", reason: "2 tokens after 3 exceed the cache's capacity 4")) {
            try model([[1, 2]], cache: &cache)
        }
        #expect(cache.lengths == [3])
        #expect(throws: ModelError.invalidArgument(argument: "capacity", reason: "must be at least 1, got 0")) {
            try model.makeCache(batchSize: 1, capacity: 0)
        }
    }
}

/// The bfloat16 checkpoint, kept in bfloat16 and run on the half-precision kernels.
///
/// Tolerance: `transformers` runs this model with bfloat16 activations (every matrix product,
/// norm and residual rounded to 8 bits of mantissa), this implementation with f32 activations over
/// the same bfloat16 weights, rounded to bf16 only where they enter a matrix product or, over a
/// bf16 cache, attention (the model's default ``MatrixProducts/bfloat16``). Over the 11 positions
/// of the prompt (logits up to 5 in magnitude) `transformers` itself differs by 0.071 between its
/// bf16 run and its f32-activation run of the same weights, and this implementation (bf16 cache)
/// by 0.104 from the bf16 run (0.093 with `.float32` products): `bf16Tolerance` = 0.15 absolute. Greedy ids must be identical up to the first step where
/// `transformers`' two largest logits are closer than that (after a different choice the
/// sequences legitimately diverge). Against `transformers`' f32-activation run of the same
/// weights the agreement is the f32 one (rtol 1e-4, f32 cache).
let bf16Tolerance: Float = 0.15

@Suite struct LlamaHalfPrecisionTests {
    @Test func bf16CheckpointStaysBF16AndMatchesTransformers() throws {
        let model = try LlamaForCausalLM(contentsOf: fixtureURL("tiny-llama-bf16"))
        let expected = try tinyLlamaOutputs("tiny-llama-bf16")
        #expect(model.weightDType == .bfloat16)
        #expect(model.namedParameters.first { $0.name == "model.layers.0.self_attn.q_proj.weight" }?.tensor.dtype == .bfloat16)
        #expect(model.namedParameters.first { $0.name == "model.norm.weight" }?.tensor.dtype == .float32)
        #expect(model.products == .bfloat16)
        var cache = try model.makeCache(batchSize: 1, capacity: 16, dtype: .bfloat16)
        let logits = try model([expected.prompt], cache: &cache, logits: .all)
        expectClose(logits.scalars, expected.logits.flatMap { $0 }, rtol: 0, atol: bf16Tolerance, "bf16 logits")
        var f32Model = model
        f32Model.products = .float32
        var f32Cache = try model.makeCache(batchSize: 1, capacity: 16, dtype: .float32)
        let f32Activations = try f32Model([expected.prompt], cache: &f32Cache, logits: .all)
        let reference = try #require(expected.logits_f32_activations).flatMap { $0 }
        expectClose(f32Activations.scalars, reference, rtol: 1e-4, atol: 1e-4, "bf16 weights, f32 activations")

        var rng = SeededGenerator(seed: 0)
        let ids = try model.generate(prompts: [expected.prompt], maxNewTokens: 32, generator: &rng).tokens[0]
        // Identical until the first difference, which must be a step transformers found close.
        if let first = ids.indices.first(where: { ids[$0] != expected.greedy_ids[$0] }) {
            #expect(expected.greedy_top_two_gaps[first] <= bf16Tolerance, "ids differ at step \(first): \(ids)")
        }
    }

    /// The bf16 weights kept as stored (the half-precision matrix kernels) and widened to f32 on
    /// load (the f32 kernels) compute the same function: equal up to f32 summation order.
    @Test func bf16WeightsEqualTheirF32Widening() throws {
        var stored = try LlamaForCausalLM(contentsOf: fixtureURL("tiny-llama-bf16"))
        stored.products = .float32
        let widened = try LlamaForCausalLM(contentsOf: fixtureURL("tiny-llama-bf16"), weightDType: .float32)
        #expect(widened.weightDType == .float32)
        let prompt = try tinyLlamaOutputs("tiny-llama").prompt
        var first = try stored.makeCache(batchSize: 1, capacity: 16)
        var second = try widened.makeCache(batchSize: 1, capacity: 16)
        let half = try stored([prompt], cache: &first, logits: .all)
        let full = try widened([prompt], cache: &second, logits: .all)
        expectClose(half.scalars, full.scalars, rtol: 1e-4, atol: 1e-4, "bf16 kernels vs widened weights")
    }

    /// A half-precision cache rounds keys and values once: logits close to the f32 cache's, and
    /// prefill-then-decode still equals one pass over the same half cache.
    @Test(arguments: [Tensor.DType.float16, .bfloat16]) func halfCacheStaysClose(dtype: Tensor.DType) throws {
        let model = try LlamaForCausalLM(contentsOf: fixtureURL("tiny-llama"))
        let expected = try tinyLlamaOutputs("tiny-llama")
        var cache = try model.makeCache(batchSize: 1, capacity: 16, dtype: dtype)
        let logits = try model([expected.prompt], cache: &cache, logits: .all)
        let tolerance: Float = dtype == .float16 ? 0.01 : 0.08
        expectClose(logits.scalars, expected.logits.flatMap { $0 }, rtol: 0, atol: tolerance, "\(dtype) cache")
        cache.reset()
        var stepwise = try model([Array(expected.prompt.prefix(4))], cache: &cache, logits: .all).scalars
        for token in expected.prompt.dropFirst(4) { stepwise += try model([[token]], cache: &cache).scalars }
        expectClose(stepwise, logits.scalars, rtol: 1e-5, atol: 1e-5, "\(dtype) cache, prefill then decode")
    }
}

/// The training path's gradients against torch.autograd through transformers
/// (`Fixtures/generate_llama_gradient_fixtures.py`).
@Suite struct LlamaGradientTests {
    @Test(arguments: float32Llamas) func gradientsMatchTransformers(name: String) throws {
        let model = try LlamaForCausalLM(contentsOf: fixtureURL(name))
        let fixture = try SafeTensors(contentsOf: fixtureURL("\(name)-gradients.safetensors"))
        let ids = try fixture.tensor(named: "input.tokens")
        let tokens = try IndexArray(shape: ids.shape, indices: ids.scalars.map { Int($0) })
        let (logits, pullback) = try model.callWithPullback(tokens)
        #expect(logits == (try model(tokens)))
        expectClose(logits.scalars, try fixture.tensor(named: "output.logits").scalars, rtol: 1e-4, atol: 1e-4, "\(name) logits")
        let gradients = try pullback(fixture.tensor(named: "input.outputGradient")).parameters
        try expectGradientsMatch(gradients, fixture, name)
    }

    @Test func badTokensAreNamed() throws {
        let model = try LlamaForCausalLM(contentsOf: fixtureURL("tiny-llama"))
        #expect(throws: ModelError.invalidArgument(argument: "tokens[1]", reason: "128 is not in 0..<128")) {
            try model(IndexArray(shape: [1, 2], indices: [3, 128]))
        }
        #expect(throws: ModelError.self) { try model(IndexArray([3, 4])) }
    }
}
