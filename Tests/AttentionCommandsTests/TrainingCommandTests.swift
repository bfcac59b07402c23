import ArgumentParser
import Attention
import AttentionModels
import Foundation
import Testing
@testable import AttentionCommands

/// `attention-train` end to end on small generated data: learning, checkpoints that resume
/// exactly, the saved folder, and every error as one line.
@Suite("attention-train")
struct TrainingCommandTests {
    /// A tiny model's config.json (by default with the plain bytes' vocabulary) in `folder`,
    /// with `extra` keys.
    static func config(in folder: URL, _ extra: String = "", vocabularySize: Int = 256) throws -> String {
        let url = folder.appendingPathComponent("config.json")
        try Data("""
            {"model_type": "llama", "vocab_size": \(vocabularySize), "hidden_size": 32, "intermediate_size": 64,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": 64, "tie_word_embeddings": true\(extra)}
            """.utf8).write(to: url)
        return url.path
    }

    /// A text with structure to learn: sentences drawn from a small grammar.
    static func text(in folder: URL, sentences: Int = 400) throws -> String {
        var generator = SeededGenerator(seed: 3)
        let subjects = ["the cat", "a dog", "my friend", "the old man"], verbs = ["sees", "likes", "finds", "eats"]
        let objects = ["the ball.", "a red apple.", "the garden.", "some bread."]
        let text = (0..<sentences).map { _ in
            [subjects, verbs, objects].map { $0[Int(generator.next() % UInt64($0.count))] }.joined(separator: " ")
        }.joined(separator: "\n")
        let url = folder.appendingPathComponent("data.txt")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    static func train(_ arguments: [String]) throws {
        try AttentionTrain.parse(arguments).run()
    }

    @Test func lossFallsOnText() throws {
        try withTemporaryFolder { folder in
            let log = folder.appendingPathComponent("log.jsonl")
            try Self.train([
                "--config", Self.config(in: folder), "--data", Self.text(in: folder), "--output",
                folder.appendingPathComponent("out").path, "--steps", "40", "--batch-size", "4", "--sequence-length", "32",
                "--learning-rate", "1e-2", "--warmup-steps", "4", "--log", log.path, "--eval-every", "20",
                "--eval-fraction", "0.1",
            ])
            let steps = try trainingLog(log)
            #expect(steps.count == 40)
            let first = steps.prefix(5).map(\.loss).reduce(0, +) / 5, last = steps.suffix(5).map(\.loss).reduce(0, +) / 5
            #expect(first > 5 && last < first - 2, "mean loss \(first) over the first steps, \(last) over the last")
            #expect(steps.filter { $0.evaluationLoss != nil }.map(\.step) == [19, 39])
            #expect(try #require(steps.last?.evaluationLoss) < first - 2)
            #expect(steps.allSatisfy { $0.tokensPerSecond > 0 && $0.gradientNorm > 0 })
        }
    }

    @Test(arguments: ["f32", "bf16"])
    func savedFolderLoadsBack(precision: String) throws {
        try withTemporaryFolder { folder in
            let output = folder.appendingPathComponent("out")
            try Self.train([
                "--config", Self.config(in: folder, #", "eos_token_id": 10"#), "--data", Self.text(in: folder, sentences: 40),
                "--output", output.path, "--steps", "3", "--batch-size", "2", "--sequence-length", "16", "--save-dtype", "bf16",
                "--precision", precision,
            ])
            let names = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
            #expect(names == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"])
            let model = try LlamaForCausalLM(contentsOf: output)
            #expect(model.weightDType == .bfloat16)
            #expect(model.configuration.endOfSequenceTokenIDs == [10])
            #expect(model.configuration.tieWordEmbeddings && model.configuration.keyValueHeadCount == 2)
            #expect(try ByteLevelBPETokenizer(contentsOf: output).idCount == 256)
        }
    }

    /// `--tokenizer`: the text is encoded by it, and the output folder carries it.
    @Test func trainsWithATokenizerFile() throws {
        try withTemporaryFolder { folder in
            let tokenizerFile = modelFixture("bpe-1000/tokenizer.json")
            let output = folder.appendingPathComponent("out")
            let log = folder.appendingPathComponent("log.jsonl")
            try Self.train([
                "--config", Self.config(in: folder, vocabularySize: 1024), "--data", Self.text(in: folder, sentences: 200),
                "--tokenizer", tokenizerFile, "--output", output.path, "--steps", "4", "--batch-size", "2",
                "--sequence-length", "16", "--log", log.path,
            ])
            let given = try ByteLevelBPETokenizer(contentsOfFile: URL(fileURLWithPath: tokenizerFile))
            let saved = try ByteLevelBPETokenizer(contentsOf: output)
            let sample = "the old man finds a red apple."
            #expect(saved.encode(sample) == given.encode(sample) && saved.idCount == 1000)
            #expect(try trainingLog(log).count == 4)
            // The same tokenizer against a vocabulary smaller than its ids.
            let failure = #expect(throws: CommandFailure.self) {
                try Self.train([
                    "--config", Self.config(in: folder, vocabularySize: 512), "--data", Self.text(in: folder, sentences: 20),
                    "--tokenizer", tokenizerFile, "--output", output.path, "--steps", "1",
                ])
            }
            #expect(failure?.description == "the tokenizer has 1000 ids, more than the model's vocab_size 512")
        }
    }

    @Test func resumingContinuesExactly() throws {
        try withTemporaryFolder { folder in
            let (config, data) = (try Self.config(in: folder), try Self.text(in: folder))
            let options = ["--data", data, "--steps", "6", "--batch-size", "3", "--sequence-length", "16", "--seed", "5"]
            let whole = folder.appendingPathComponent("whole"), resumed = folder.appendingPathComponent("resumed")
            let (wholeLog, resumedLog) = (folder.appendingPathComponent("whole.jsonl"), folder.appendingPathComponent("resumed.jsonl"))
            try Self.train(options + ["--config", config, "--output", whole.path, "--save-every", "3", "--log", wholeLog.path])
            let checkpoint = whole.appendingPathComponent("checkpoint-3")
            #expect(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent("optimizer.safetensors").path))
            // Neither the batch size nor the seed is given again: the checkpoint's are used.
            try Self.train([
                "--data", data, "--steps", "6", "--sequence-length", "16", "--resume", checkpoint.path, "--output",
                resumed.path, "--log", resumedLog.path,
            ])
            let weights = { (url: URL) in try Data(contentsOf: url.appendingPathComponent("model.safetensors")) }
            #expect(try weights(whole) == weights(resumed))
            let (a, b) = (try trainingLog(wholeLog).suffix(3), try trainingLog(resumedLog))
            #expect(b.map(\.step) == [3, 4, 5])
            #expect(a.map(\.loss) == b.map(\.loss) && a.map(\.gradientNorm) == b.map(\.gradientNorm))
            #expect(a.map(\.learningRate) == b.map(\.learningRate))
        }
    }

    @Test func nonFiniteLossStopsAndKeepsTheCheckpoint() throws {
        try withTemporaryFolder { folder in
            let output = folder.appendingPathComponent("out")
            let failure = #expect(throws: CommandFailure.self) {
                try Self.train([
                    "--config", Self.config(in: folder), "--data", Self.text(in: folder, sentences: 40), "--output", output.path,
                    "--steps", "10", "--batch-size", "2", "--sequence-length", "16", "--learning-rate", "1e30",
                    "--schedule", "constant", "--max-grad-norm", "0", "--save-every", "1",
                ])
            }
            let message = try #require(failure?.description)
            #expect(message.contains("not finite") || message.contains("loss is"), "\(message)")
            #expect(message.contains("at step ") && message.contains("checkpoint-"), "\(message)")
            // The checkpoints written before are complete; no partial folder is left.
            let names = try FileManager.default.contentsOfDirectory(atPath: output.path)
            #expect(!names.isEmpty && names.allSatisfy { $0.hasPrefix("checkpoint-") })
            #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("model.safetensors").path))
        }
    }

    @Test func badInputIsOneClearLine() throws {
        try withTemporaryFolder { folder in
            let config = try Self.config(in: folder), data = try Self.text(in: folder, sentences: 20)
            let output = folder.appendingPathComponent("out").path
            let empty = folder.appendingPathComponent("empty.txt")
            try Data().write(to: empty)
            let scaled = folder.appendingPathComponent("scaled")
            try FileManager.default.createDirectory(at: scaled, withIntermediateDirectories: true)
            let small = folder.appendingPathComponent("small")
            try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
            let blocker = folder.appendingPathComponent("file")
            try Data("x".utf8).write(to: blocker)
            let cases: [([String], String)] = [
                (["--config", config, "--data", folder.appendingPathComponent("missing.txt").path], "--data: cannot read"),
                (["--config", config, "--data", empty.path], "is empty"),
                (["--config", config, "--data", data, "--sequence-length", "100"], "exceeds the model's max_position_embeddings 64"),
                (["--config", try Self.config(in: small, vocabularySize: 100), "--data", data],
                 "the tokenizer has 256 ids, more than the model's vocab_size"),
                (["--config", try Self.config(in: scaled, #", "rope_scaling": {"rope_type": "linear", "factor": 2}"#), "--data", data],
                 "--config: "),
                (["--model", folder.appendingPathComponent("nothing").path, "--data", data], "no such model folder"),
                (["--config", config, "--data", data, "--tokenizer", blocker.path], "cannot read the tokenizer"),
                (["--config", config, "--data", data, "--sequence-length", "8", "--warmup-steps", "9"], "--warmup-steps 9 exceeds the run's 2 steps"),
            ]
            for (arguments, expected) in cases {
                let failure = #expect(throws: (any Error).self) {
                    try Self.train(arguments + ["--output", output, "--steps", "2", "--batch-size", "2"])
                }
                let message = failure.map { CommandMain.diagnostic(for: $0, of: AttentionTrain.self) } ?? ""
                #expect(message.hasPrefix("attention-train: ") && message.contains(expected), "\(arguments): \(message)")
                #expect(!message.contains("\n"))
            }
            let unwritable = #expect(throws: CommandFailure.self) {
                try Self.train([
                    "--config", config, "--data", data, "--output", blocker.appendingPathComponent("out").path, "--steps", "1",
                    "--batch-size", "1", "--sequence-length", "8",
                ])
            }
            #expect(unwritable?.description.contains("cannot save the model") == true)
        }
    }

    @Test func tokenBatchesAreChecked() throws {
        try withTemporaryFolder { folder in
            let config = try Self.config(in: folder)
            func batches(_ ids: [Int], _ shape: [Int]) throws -> String {
                var file = SafeTensors()
                try file.insert(integers: ids, shape: shape, named: "input_ids")
                let url = folder.appendingPathComponent("batches-\(UUID().uuidString).safetensors")
                try file.write(to: url)
                return url.path
            }
            let cases: [([String], String)] = [
                (["--token-batches", try batches([1, 2, 300, 4], [1, 1, 4])], "element 2 is 300, outside the vocabulary 0..<256"),
                (["--token-batches", try batches([1, 2, 3, 4], [2, 2])], "must be (steps, batch, sequence length + 1)"),
                (["--token-batches", try batches([1, 2, 3, 4], [1, 1, 4]), "--batch-size", "2"], "--batch-size 2 differs from --token-batches' 1"),
                (["--token-batches", try batches([1, 2, 3, 4], [1, 1, 4]), "--steps", "2"], "--steps 2 exceeds the 1 batches of --token-batches"),
            ]
            for (arguments, expected) in cases {
                let failure = #expect(throws: CommandFailure.self) {
                    try Self.train(arguments + ["--config", config, "--output", folder.appendingPathComponent("out").path])
                }
                #expect(failure?.description.contains(expected) == true, "\(failure?.description ?? "")")
            }
        }
    }

    @Test(arguments: [
        (["--output", "o", "--steps", "1"], "exactly one of --data and --token-batches"),
        (["--data", "d", "--output", "o", "--steps", "1"], "exactly one of --config, --model and --resume"),
        (["--data", "d", "--config", "c", "--model", "m", "--output", "o", "--steps", "1"], "exactly one of --config, --model and --resume"),
        (["--data", "d", "--config", "c", "--output", "o"], "--data needs --steps"),
        (["--data", "d", "--config", "c", "--output", "o", "--steps", "0"], "--steps must be at least 1"),
        (["--data", "d", "--config", "c", "--output", "o", "--steps", "1", "--betas", "0.9"], "--betas must be two numbers"),
        (["--data", "d", "--config", "c", "--output", "o", "--steps", "1", "--betas", "0.9,1.5"], "--betas must be two numbers"),
        (["--data", "d", "--config", "c", "--output", "o", "--steps", "1", "--learning-rate", "nan"], "--learning-rate must be"),
        (["--data", "d", "--config", "c", "--output", "o", "--steps", "1", "--schedule", "linear"], "--schedule"),
        (["--data", "d", "--config", "c", "--output", "o", "--steps", "1", "--eval-fraction", "1"], "--eval-fraction must be in (0, 1)"),
        (["--token-batches", "t", "--config", "c", "--output", "o", "--eval-every", "5"], "--token-batches has no held-out text"),
    ])
    func usageMistakesNameTheOption(arguments: [String], expected: String) throws {
        let error = try #require(parseError(AttentionTrain.self, arguments))
        #expect(AttentionTrain.exitCode(for: error).rawValue == 64)
        let message = CommandMain.diagnostic(for: error, of: AttentionTrain.self)
        #expect(message.contains(expected), "\(message)")
    }

    @Test func parsesEveryOption() throws {
        let command = try AttentionTrain.parse([
            "--data", "d.txt", "--model", "m", "--output", "o", "--steps", "7", "--batch-size", "3", "--sequence-length", "9",
            "--learning-rate", "0.5", "--betas", "0.8,0.95", "--epsilon", "1e-6", "--weight-decay", "0.2", "--warmup-steps", "2",
            "--schedule", "constant", "--max-grad-norm", "0.5", "--seed", "11", "--threads", "1", "--eval-every", "3",
            "--eval-fraction", "0.2", "--eval-batches", "2", "--save-every", "4", "--log", "l.jsonl", "--save-dtype", "bf16",
            "--tokenizer", "t.json", "--precision", "bf16",
        ])
        #expect(command.precision == .bf16)
        #expect(command.optimizer.betas == [0.8, 0.95] && command.optimizer.epsilon == 1e-6)
        #expect(command.optimizer.schedule == .constant && command.optimizer.maxGradientNorm == 0.5)
        #expect(command.reporting.saveType == .bf16 && command.reporting.evaluationBatches == 2)
        #expect(command.seed == 11 && command.batchSize == 3 && command.sequenceLength == 9 && command.tokenizer == "t.json")
        let schedule = try command.optimizer.makeSchedule(steps: 7)
        #expect(schedule.rate(atStep: 1) == 0.25 && schedule.rate(atStep: 6) == 0.5)
    }
}
