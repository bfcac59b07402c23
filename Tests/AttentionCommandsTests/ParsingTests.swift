import ArgumentParser
import AttentionModels
import Testing
@testable import AttentionCommands

/// The error `parse` throws for `arguments`, `nil` when it parses.
func parseError<Command: ParsableCommand>(_: Command.Type, _ arguments: [String]) -> (any Error)? {
    do {
        _ = try Command.parse(arguments)
        return nil
    } catch {
        return error
    }
}

@Suite("Command-line parsing")
struct ParsingTests {
    let generateBase = ["--model", "m", "--prompt-ids", "1,2", "--max-new-tokens", "3"]

    @Test func embedReadsEveryOption() throws {
        let command = try AttentionEmbed.parse([
            "--model", "dir", "one", "--input", "in.json", "--output=out.json", "--threads=2",
            "--batch-size", "8", "--repeat", "3", "two", "--", "-three",
        ])
        #expect(command.model == "dir")
        #expect(command.inputPath == "in.json")
        #expect(command.outputPath == "out.json")
        #expect(command.threads.count == 2)
        #expect(command.batchSize == 8)
        #expect(command.repeats == 3)
        #expect(command.sentences == ["one", "two", "-three"])
    }

    @Test func embedDefaults() throws {
        let command = try AttentionEmbed.parse(["--model", "dir"])
        #expect(command.threads.count == nil)
        #expect(command.batchSize == 32)
        #expect(command.repeats == nil)
        #expect(command.sentences.isEmpty)
    }

    @Test func generateReadsEveryOption() throws {
        let command = try AttentionGenerate.parse([
            "--model", "dir", "--prompt-ids", "36, 81,11", "--max-new-tokens=12", "--threads", "2",
            "--temperature", "0.8", "--top-k", "20", "--top-p=0.9", "--seed", "7", "--ignore-eos",
            "--cache-dtype", "bf16", "--products", "f32", "--repeat", "2", "--output", "out.json",
        ])
        #expect(command.model == "dir")
        #expect(command.promptIDs == [36, 81, 11])
        #expect(command.maxNewTokens == 12)
        #expect(command.threads.count == 2)
        #expect(command.temperature == 0.8)
        #expect(command.topK == 20)
        #expect(command.topP == 0.9)
        #expect(command.seed == 7)
        #expect(command.ignoresEndOfSequence)
        #expect(command.cacheType?.dtype == .bfloat16)
        #expect(command.products?.products == .float32)
        #expect(command.repeats == 2)
        #expect(command.outputPath == "out.json")
        #expect(try command.sampling() == TokenSampling(temperature: 0.8, topK: 20, topP: 0.9))
    }

    @Test func generateReadsAPromptText() throws {
        let command = try AttentionGenerate.parse(["--model", "dir", "--prompt", "-Once upon a time", "--max-new-tokens", "3"])
        #expect(command.prompt == "-Once upon a time" && command.promptIDs == nil)
        let neither = try #require(parseError(AttentionGenerate.self, ["--model", "dir", "--max-new-tokens", "3"]))
        #expect(AttentionGenerate.exitCode(for: neither) == .validationFailure)
        #expect(CommandMain.diagnostic(for: neither, of: AttentionGenerate.self)
            == "attention-generate: give exactly one of --prompt and --prompt-ids (see attention-generate --help)")
    }

    @Test func generateDefaults() throws {
        let command = try AttentionGenerate.parse(generateBase)
        #expect(command.temperature == 0)
        #expect(command.seed == 0)
        #expect(!command.ignoresEndOfSequence)
        #expect(command.cacheType == nil && command.products == nil && command.repeats == nil)
        #expect(try command.sampling() == .greedy)
    }

    @Test func unknownOptionIsAUsageError() throws {
        let error = try #require(parseError(AttentionEmbed.self, ["--bad"]))
        #expect(AttentionEmbed.exitCode(for: error).rawValue == 64)
        let unknown = try #require(parseError(AttentionEmbed.self, ["--model", "dir", "--bad"]))
        #expect(CommandMain.diagnostic(for: unknown, of: AttentionEmbed.self)
            == "attention-embed: Unknown option '--bad' (see attention-embed --help)")
    }

    /// Each mistake exits with status 64 and one line that names the option as it is spelt.
    @Test(arguments: [
        (["--top-p", "2", "--temperature", "1"], "--top-p must be in (0, 1], got 2.0"),
        (["--top-k", "0", "--temperature", "1"], "--top-k must be at least 1, got 0"),
        (["--temperature", "-1"], "--temperature must be finite and non-negative, got -1.0"),
        (["--temperature=nan"], "--temperature must be finite and non-negative, got nan"),
        (["--top-p", "0.5"], "--top-k and --top-p sample: they need a --temperature above 0"),
        (["--threads", "0"], "--threads must be in 1..."),
        (["--threads", "999"], "(the processors this process can run on), got 999"),
        (["--threads", "two"], "'--threads <N>'"),
        (["--repeat", "0"], "--repeat must be at least 1, got 0"),
        (["--seed", "-1"], "'--seed <S>'"),
        (["--cache-dtype", "f8"], "'--cache-dtype <TYPE>'. Please provide one of 'f32', 'f16' or 'bf16'"),
        (["--products", "f16"], "'--products <TYPE>'"),
        (["--prompt-ids", "1,x"], "'--prompt-ids <IDS>': must be non-negative integers separated by commas"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
        (["--prompt", "Hello"], "give exactly one of --prompt and --prompt-ids"),
    ])
    func generateMistakesNameTheOption(extra: [String], expected: String) throws {
        let error = try #require(parseError(AttentionGenerate.self, generateBase + extra))
        #expect(AttentionGenerate.exitCode(for: error) == .validationFailure)
        let line = CommandMain.diagnostic(for: error, of: AttentionGenerate.self)
        #expect(line.hasPrefix("attention-generate: "))
        #expect(line.contains(expected), "\(line)")
        #expect(!line.contains("\n"))
    }

    @Test(arguments: [
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--threads=0"], "--threads must be in 1..."),
        (["--threads=100000"], "got 100000"),
        (["--repeat", "x"], "'--repeat <N>'"),
        (["--input"], "Missing value for '--input <FILE>'"),
    ])
    func embedMistakesNameTheOption(extra: [String], expected: String) throws {
        let error = try #require(parseError(AttentionEmbed.self, ["--model", "dir"] + extra))
        #expect(AttentionEmbed.exitCode(for: error) == .validationFailure)
        #expect(CommandMain.diagnostic(for: error, of: AttentionEmbed.self).contains(expected))
    }

    @Test func requiredOptionsAreNamed() throws {
        let error = try #require(parseError(AttentionGenerate.self, ["--model", "dir", "--prompt-ids", "1"]))
        #expect(AttentionGenerate.exitCode(for: error) == .validationFailure)
        #expect(AttentionGenerate.message(for: error).contains("--max-new-tokens"))
    }

    @Test func helpIsGeneratedAndExitsCleanly() throws {
        let embed = try #require(parseError(AttentionEmbed.self, ["--help"]))
        #expect(AttentionEmbed.exitCode(for: embed) == .success)
        #expect(AttentionEmbed.fullMessage(for: embed).contains("--batch-size <N>"))
        let generate = try #require(parseError(AttentionGenerate.self, ["-h"]))
        #expect(AttentionGenerate.exitCode(for: generate) == .success)
        #expect(AttentionGenerate.fullMessage(for: generate).contains("--cache-dtype <TYPE>"))
    }

    /// As before ArgumentParser: the argument after an option is its value, even when it starts
    /// with a dash.
    @Test func anOptionsValueMayStartWithADash() throws {
        let command = try AttentionEmbed.parse(["--model", "-dir"])
        #expect(command.model == "-dir")
        let error = try #require(parseError(AttentionGenerate.self, generateBase + ["--temperature", "-1"]))
        #expect(AttentionGenerate.message(for: error) == "--temperature must be finite and non-negative, got -1.0")
    }
}
