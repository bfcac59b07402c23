import ArgumentParser
import Attention
import AttentionModels
import Foundation
import Testing
@testable import AttentionCommands

@Suite("Command output")
struct OutputTests {
    @Test func nonFiniteEmbeddingIsRefused() throws {
        let failure = CommandFailure("the embedding of sentence 2 is not finite (NaN or infinity)")
        #expect(throws: failure) {
            try SentenceFile.document(ids: [[1], [2]], embeddings: [[0.5, 1], [.nan, 1]])
        }
        let embeddings = try Tensor(shape: [2, 2], scalars: [0.5, 1, 1, -.infinity])
        #expect(throws: failure) { try AttentionEmbed.rows(of: embeddings, count: 2, dimension: 2) }
        #expect(AttentionEmbed.exitCode(for: failure) == .failure)
    }

    @Test func nonFiniteLogitsAreRefused() {
        #expect(throws: CommandFailure.self) {
            try AttentionGenerate.document(ids: [1], logits: [0.5, .infinity])
        }
    }

    @Test func embeddingsDocumentParsesBack() throws {
        let document = try SentenceFile.document(ids: [[101, 7, 102], [101, 102]], embeddings: [[0.25, -1e-7], [3, 0]])
        let text = document.serialized
        #expect(text == #"[{"embedding":[0.25,-1e-07],"ids":[101,7,102]},{"embedding":[3.0,0.0],"ids":[101,102]}]"#)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
        #expect(parsed.map { $0["ids"] as? [Int] } == [[101, 7, 102], [101, 102]])
    }

    @Test func generateWritesItsOutputFile() throws {
        try withTemporaryFolder { folder in
            let path = folder.appendingPathComponent("generation.json").path
            let command = try AttentionGenerate.parse([
                "--model", modelFixture("tiny-llama"), "--prompt-ids", "36,81,11,2,99", "--max-new-tokens", "12",
                "--output", path,
            ])
            try command.run()
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            // The greedy ids of README's example, which LlamaTests checks against transformers.
            #expect(object["generated_ids"] as? [Int] == [58, 89, 23, 59, 2, 98, 7, 8, 76, 11, 1, 103])
            #expect((object["last_logits"] as? [Double])?.count == 128)
        }
    }

    /// `--prompt` text through the folder's tokenizer.json: the same generation as its ids, and
    /// the text printed as it comes. The tokenizer maps the tiny model's ids 0..<128 to the bytes
    /// 128...255, so the text is made of characters of two bytes, each split across two ids.
    @Test func generateWithAPromptPrintsTheTextAsItComes() throws {
        let bytes = ByteLevelBPETokenizer.plainBytes.vocabulary
        let tokenizer = try ByteLevelBPETokenizer(vocabulary: (0..<256).map { bytes[($0 + 128) % 256] }, merges: [])
        try withTemporaryFolder { folder in
            let model = try llamaFolder(in: folder, tokenizer: tokenizer)
            #expect(tokenizer.encode("éà") == [67, 41, 67, 32])
            var generated: [[Int]] = []
            var pieces: [String] = []
            for prompt in [["--prompt", "éà"], ["--prompt-ids", "67,41,67,32"]] {
                let path = folder.appendingPathComponent("generation.json").path
                let command = try AttentionGenerate.parse(
                    ["--model", model, "--max-new-tokens", "16", "--output", path] + prompt)
                try command.run { pieces.append($0) }
                let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
                generated.append(try #require((object as? [String: Any])?["generated_ids"] as? [Int]))
            }
            #expect(generated[0] == generated[1] && generated[0].count == 16)
            // Only the --prompt run prints text: the whole decode, with a newline last.
            #expect(pieces.joined() == tokenizer.decode(generated[0]) + "\n")
            #expect(!pieces.contains("") && pieces.count < 16)
            #expect(pieces.joined() != generated[0].map { tokenizer.decode([$0]) }.joined() + "\n", "a character spans two ids")
        }
    }

    @Test func aPromptNeedsATokenizer() throws {
        try withTemporaryFolder { folder in
            let cases = [
                (modelFixture("tiny-llama"), "hello",
                 "--prompt needs a tokenizer.json in the model folder, and \(modelFixture("tiny-llama")) has none (give --prompt-ids instead)"),
                ("/nonexistent/model", "hello", "/nonexistent/model: no such model folder"),
                (try llamaFolder(in: folder, tokenizer: .plainBytes), "", "--prompt: the text encodes to no tokens"),
            ]
            for (model, prompt, message) in cases {
                let command = try AttentionGenerate.parse(["--model", model, "--prompt", prompt, "--max-new-tokens", "2"])
                #expect(throws: CommandFailure(message)) { try command.run() }
                #expect(AttentionGenerate.exitCode(for: CommandFailure(message)) == .failure)
            }
        }
    }

    @Test func embedWritesItsOutputFile() throws {
        try withTemporaryFolder { folder in
            let input = folder.appendingPathComponent("sentences.json")
            let output = folder.appendingPathComponent("embeddings.json")
            try Data(#"["A man is eating food.", "The girl is carrying a baby."]"#.utf8).write(to: input)
            let command = try AttentionEmbed.parse([
                "--model", modelFixture("tiny-bert"), "--input", input.path, "--output", output.path, "Hello world",
            ])
            try command.run()
            let parsed = try JSONParser.parse(utf8: [UInt8](Data(contentsOf: output)))
            guard case let .array(records) = parsed else { Issue.record("not an array: \(parsed)"); return }
            #expect(records.count == 3)
            for record in records {
                guard case let .object(members) = record, case let .array(embedding)? = members["embedding"] else {
                    Issue.record("not a record: \(record)")
                    continue
                }
                let norm = embedding.compactMap { if case let .number(text) = $0 { Double(text) } else { nil } }
                    .reduce(0) { $0 + $1 * $1 }
                #expect(abs(norm - 1) < 1e-5, "tiny-bert normalises its embeddings")
            }
        }
    }

    @Test func runtimeFailuresAreOneLineWithStatusOne() throws {
        let command = try AttentionEmbed.parse(["--model", "/nonexistent/model", "a sentence"])
        #expect(throws: (any Error).self) { try command.run() }
        do {
            try command.run()
        } catch {
            #expect(AttentionEmbed.exitCode(for: error) == .failure)
            #expect(CommandMain.diagnostic(for: error, of: AttentionEmbed.self)
                == "attention-embed: /nonexistent/model: no such model folder (make model-minilm downloads all-MiniLM-L6-v2)")
        }
    }

    /// An `--output` that cannot be written stops the command before the model is loaded: the
    /// model folder here does not exist, so reaching the load would report that instead.
    @Test func unwritableOutputIsRefusedBeforeAnyWork() throws {
        try withTemporaryFolder { folder in
            let cases = [
                (folder.path, "--output \(folder.path): is a folder, not a file"),
                ("\(folder.path)/missing/out.json", "--output \(folder.path)/missing/out.json: cannot be written (no folder \(folder.path)/missing)"),
            ]
            for (path, message) in cases {
                let embed = try AttentionEmbed.parse(["--model", "/nonexistent/model", "--output", path, "a sentence"])
                #expect(throws: CommandFailure(message)) { try embed.run() }
                let generate = try AttentionGenerate.parse([
                    "--model", "/nonexistent/model", "--prompt-ids", "1", "--max-new-tokens", "1", "--output", path,
                ])
                #expect(throws: CommandFailure(message)) { try generate.run() }
            }
        }
    }

    @Test func standardOutputIsAlwaysWritable() throws {
        #expect(OutputFile.takesStandardOutput("-"))
        #expect(!OutputFile.takesStandardOutput("./-"))
        #expect(!OutputFile.takesStandardOutput(nil))
        try OutputFile.checkWritable("-", option: "--output")
    }

    /// `--products` chooses how bf16 weights are multiplied: an f32 model refuses it (exit 64).
    @Test func productsOnAFloat32ModelIsRefused() throws {
        let command = try AttentionGenerate.parse([
            "--model", modelFixture("tiny-llama"), "--prompt-ids", "1,2", "--max-new-tokens", "1", "--products", "bf16",
        ])
        #expect(throws: ValidationError.self) { try command.run() }
        do {
            try command.run()
        } catch {
            #expect(AttentionGenerate.exitCode(for: error) == .validationFailure)
            #expect(AttentionGenerate.message(for: error) == "--products bf16 applies to bf16 weights; this model's are float32")
        }
        let bf16 = try AttentionGenerate.parse([
            "--model", modelFixture("tiny-llama-bf16"), "--prompt-ids", "1,2", "--max-new-tokens", "1", "--products", "f32",
            "--output", "/dev/null",
        ])
        try bf16.run()
    }
}

/// The AttentionCommands catalogue's snippet, run as written; its path is relative to the
/// package's root, where `swift test` runs (skipped when run from elsewhere).
@Suite("Documentation snippet")
struct CommandsDocumentationSnippetTests {
    static let runsFromTheRoot = FileManager.default.fileExists(
        atPath: "Tests/AttentionModelsTests/Fixtures/tiny-llama/config.json")

    @Test(.enabled(if: runsFromTheRoot, "the snippet's path is relative to the package's root"))
    func parseAndRun() throws {
        // Snippet:
        let model = "Tests/AttentionModelsTests/Fixtures/tiny-llama"   // from the package's root
        let command = try AttentionGenerate.parse(["--model", model, "--prompt-ids", "1,2", "--max-new-tokens", "4"])
        try command.run()
        // End of snippet.
        #expect(command.maxNewTokens == 4 && command.promptIDs == [1, 2])
    }
}
