import Attention
import Foundation
import Testing
@testable import AttentionModels

/// A new Llama's initialisation, its folder written and read back, and training with bf16
/// products against float32.
@Suite("Llama training")
struct LlamaTrainingTests {
    static let configuration = try! LlamaConfiguration(
        vocabularySize: 96, hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
        endOfSequenceTokenIDs: [3], initializerRange: 0.05)

    @Test func initialisesAsTransformers() throws {
        let model = try LlamaForCausalLM(initializing: Self.configuration, seed: 1)
        #expect(try model == LlamaForCausalLM(initializing: Self.configuration, seed: 1))
        #expect(try model != LlamaForCausalLM(initializing: Self.configuration, seed: 2))
        for (name, tensor) in model.namedParameters {
            let values = tensor.scalars
            if tensor.rank == 2 {
                let mean = values.reduce(0, +) / Float(values.count)
                let deviation = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)).squareRoot()
                #expect(abs(mean) < 0.01 && abs(deviation - 0.05) < 0.01, "\(name): mean \(mean), deviation \(deviation)")
            } else {
                #expect(values.allSatisfy { $0 == 1 }, "\(name) is a norm weight: ones")
            }
        }
    }

    @Test(arguments: [Tensor.DType.float32, .bfloat16])
    func writtenFolderReadsBack(dtype: Tensor.DType) throws {
        let model = try LlamaForCausalLM(initializing: Self.configuration, seed: 3)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("llama-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try model.write(to: folder, dtype: dtype)
        let loaded = try LlamaForCausalLM(contentsOf: folder)
        #expect(loaded.configuration == model.configuration)
        #expect(loaded.weightDType == dtype)
        // A bf16 folder loads with bf16 products, the model's default for bf16 matrices.
        var expected = try model.convertingWeights(to: dtype)
        expected.products = dtype == .bfloat16 ? .bfloat16 : .float32
        #expect(loaded == expected)
        let generation = try String(contentsOf: folder.appendingPathComponent("generation_config.json"), encoding: .utf8)
        #expect(generation.contains(#""eos_token_id":3"#))
        let blocker = folder.appendingPathComponent("config.json")
        #expect(throws: ModelError.self) { try model.write(to: blocker) }
    }

    /// bf16 products give the float32 gradients to within bf16's rounding, and no gradient is
    /// half precision.
    @Test func bfloat16ProductsFollowFloat32() throws {
        let model = try LlamaForCausalLM(initializing: Self.configuration, seed: 4)
        var compute = try model.convertingWeights(to: .bfloat16)
        compute.products = .bfloat16
        #expect(compute.weightDType == .bfloat16)
        var generator = SeededGenerator(seed: 5)
        let ids = (0..<(2 * 33)).map { _ in Int(generator.next() % 96) }
        let tokens = try IndexArray(shape: [2, 33], indices: ids)
        let targets = try IndexArray(shape: [2, 33], indices: ids.map { ($0 + 1) % 96 })
        func gradients(_ model: LlamaForCausalLM) throws -> (Float, ParameterGradients<LlamaForCausalLM>) {
            let (logits, pullback) = try model.callWithPullback(tokens)
            let loss = try crossEntropy(logits: logits, targets: targets)
            return (loss.value.scalars[0], try pullback(loss.gradient).parameters)
        }
        let (exactLoss, exact) = try gradients(model)
        let (roundedLoss, rounded) = try gradients(compute)
        #expect(abs(exactLoss - roundedLoss) < 1e-2 * exactLoss)
        for name in exact.names {
            let (a, b) = (try #require(exact[name]), try #require(rounded[name]))
            #expect(b.dtype == .float32 && a.shape == b.shape)
            let scale = a.scalars.map(abs).max() ?? 0
            let difference = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(difference <= 0.05 * scale, "\(name): \(difference) against \(scale)")
        }
    }
}
