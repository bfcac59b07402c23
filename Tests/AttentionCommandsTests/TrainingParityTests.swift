import Attention
import Foundation
import Testing
@testable import AttentionCommands

/// `attention-train` against PyTorch: the tiny Llamas of `Fixtures/training-parity`, trained 20
/// steps on fixed token batches with torch.optim.AdamW, clipping and a schedule
/// (`generate_training_parity_fixtures.py`).
@Suite("attention-train against PyTorch")
struct TrainingParityTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/training-parity")

    struct Expected: Decodable {
        struct Step: Decodable {
            var step: Int
            var loss: Double
            var grad_norm: Double
            var learning_rate: Double
        }
        var arguments: [String]
        var steps: [Step]
    }

    @Test(arguments: ["tied", "untied"], ["token-batches", "token-batches-int32"])
    func trainsAsPyTorch(variant: String, batches: String) throws {
        let expected = try JSONDecoder().decode(
            Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected-\(variant).json")))
        try withTemporaryFolder { folder in
            let output = folder.appendingPathComponent("trained"), log = folder.appendingPathComponent("log.jsonl")
            let command = try AttentionTrain.parse(expected.arguments + [
                "--model", Self.fixtures.appendingPathComponent("tiny-llama-\(variant)").path,
                "--token-batches", Self.fixtures.appendingPathComponent("\(batches).safetensors").path,
                "--output", output.path, "--log", log.path,
            ])
            try command.run()
            let records = try trainingLog(log)
            #expect(records.map(\.step) == expected.steps.map(\.step))
            for (record, reference) in zip(records, expected.steps) {
                // 1e-4 relative for the first steps, 1e-3 by the last.
                let tolerance = record.step < 5 ? 1e-4 : 1e-3
                #expect(abs(record.loss - reference.loss) <= tolerance * reference.loss, "step \(record.step) loss")
                #expect(abs(record.gradientNorm - reference.grad_norm) <= tolerance * reference.grad_norm, "step \(record.step) norm")
                #expect(abs(record.learningRate - reference.learning_rate) <= 1e-6 * max(reference.learning_rate, 1e-3))
            }
            let trained = try SafeTensors(contentsOf: output.appendingPathComponent("model.safetensors"))
            let reference = try SafeTensors(contentsOf: Self.fixtures.appendingPathComponent("final-\(variant).safetensors"))
            #expect(trained.names.sorted() == reference.names.sorted())
            for name in reference.names {
                let difference = try maximumDifference(trained.tensor(named: name), reference.tensor(named: name))
                #expect(difference <= 1e-4, "\(name): \(difference)")
            }
        }
    }
}

/// One `--log` line.
struct LoggedStep: Decodable {
    var step: Int
    var loss: Double
    var gradientNorm: Double
    var learningRate: Double
    var tokensPerSecond: Double
    var evaluationLoss: Double?

    enum CodingKeys: String, CodingKey {
        case step, loss, gradientNorm = "grad_norm", learningRate = "learning_rate", tokensPerSecond = "tokens_per_second"
        case evaluationLoss = "eval_loss"
    }
}

/// The lines of a `--log` file.
func trainingLog(_ url: URL) throws -> [LoggedStep] {
    try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
        try JSONDecoder().decode(LoggedStep.self, from: Data($0.utf8))
    }
}

/// The largest absolute difference between two tensors of the same shape.
func maximumDifference(_ a: Tensor, _ b: Tensor) throws -> Float {
    #expect(a.shape == b.shape)
    return zip(try a.converted(to: .float32).scalars, try b.converted(to: .float32).scalars).map { abs($0 - $1) }.max() ?? 0
}
