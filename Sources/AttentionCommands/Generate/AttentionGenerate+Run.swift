import ArgumentParser
import Attention
import AttentionModels
import Foundation

extension AttentionGenerate {
    /// Generates after the prompt, prints the ids (or with `--prompt` the text, as it comes) and
    /// the rates, and writes `--output`.
    ///
    /// With `--output -` the JSON goes to standard output and the ids or the text to standard error.
    ///
    /// - Throws: ``CommandFailure`` for a model or a `--prompt` tokenizer that cannot be loaded,
    ///   a `--prompt` that encodes to no tokens, an `--output` that cannot be written (checked
    ///   before any work), or logits for `--output` that are not finite; `ValidationError` for
    ///   `--products` on a model whose weights are not bf16; the errors of generation.
    package func run() throws {
        try run { OutputFile.writeReport($0, outputPath: outputPath) }
    }

    /// ``run()``, the generated text of a `--prompt` run going to `printText` piece by piece
    /// (with a newline last) rather than to standard output.
    package func run(printingText printText: (String) -> Void) throws {
        if let outputPath { try OutputFile.checkWritable(outputPath, option: "--output") }
        try threads.apply()
        let sampling = try sampling()
        let (promptIDs, tokenizer) = try promptTokens()
        var model = try ModelFolder.load(model) { try LlamaForCausalLM(contentsOf: $0) }
        if let products {
            guard model.weightDType == .bfloat16 else {
                throw ValidationError(
                    "--products \(products.rawValue) applies to bf16 weights; this model's are \(model.weightDType)")
            }
            model.products = products.products
        }

        // With --repeat: a short warm-up (threads started, code paths touched), then the timed
        // runs; the rates are their medians.
        if repeats != nil {
            var generator = SeededGenerator(seed: seed)
            _ = try model.generate(
                prompts: [Array(promptIDs.prefix(16))], maxNewTokens: 2, sampling: sampling,
                generator: &generator, stopAtEndOfSequence: false)
        }
        var timed: [LlamaGeneration] = []
        // The text of the first timed run, decoded as the ids come.
        var stream = tokenizer.map { ByteLevelBPETokenizer.DecodeStream(tokenizer: $0) }
        for run in 0..<(repeats ?? 1) {
            var generator = SeededGenerator(seed: seed)
            timed.append(try model.generate(
                prompts: [promptIDs], maxNewTokens: maxNewTokens, sampling: sampling,
                generator: &generator, stopAtEndOfSequence: !ignoresEndOfSequence,
                cacheDType: cacheType?.dtype
            ) { _, id in
                if run == 0, let piece = stream?.append(id), !piece.isEmpty { printText(piece) }
            })
        }
        if let rest = stream?.finish() { printText(rest + "\n") }
        let result = timed[0]
        // Checked before the ids and the rates are printed (a --prompt run's text has come as it
        // was generated): logits that JSON cannot hold stop the command.
        let document = try outputPath.map { _ in
            try Self.document(ids: result.tokens[0], logits: result.promptLogits.scalars)
        }
        let prefillRate = timed.map { Double(promptIDs.count) / Self.seconds($0.prefillDuration) }.median
        let decodeRate = timed.map { Double($0.decodeSteps) / Self.seconds($0.decodeDuration) }.median
        if tokenizer == nil {
            OutputFile.printReport(result.tokens[0].map(String.init).joined(separator: ","), outputPath: outputPath)
        }
        CommandMain.printLine(String(format: "prefill: %.1f tokens/s, decode: %.1f tokens/s", prefillRate, decodeRate))
        if let outputPath, let document { try OutputFile.write(document, toPath: outputPath, option: "--output") }
    }

    /// The ids of `--prompt-ids`, or those of `--prompt` with the tokenizer that encoded them.
    ///
    /// - Throws: ``CommandFailure`` when the tokenizer cannot be read or the text encodes to no tokens.
    func promptTokens() throws(CommandFailure) -> (ids: [Int], tokenizer: ByteLevelBPETokenizer?) {
        guard let prompt else { return (promptIDs ?? [], nil) }
        let tokenizer = try Self.tokenizer(inFolder: model)
        let ids = tokenizer.encode(prompt)
        guard !ids.isEmpty else { throw CommandFailure("--prompt: the text encodes to no tokens") }
        return (ids, tokenizer)
    }

    /// The tokenizer of `--prompt`: the `tokenizer.json` of the model folder at `path`.
    ///
    /// - Throws: ``CommandFailure`` saying the folder or its `tokenizer.json` is missing, or why
    ///   the file cannot be read.
    static func tokenizer(inFolder path: String) throws(CommandFailure) -> ByteLevelBPETokenizer {
        let folder = URL(fileURLWithPath: path)
        do {
            return try ByteLevelBPETokenizer(contentsOf: folder)
        } catch .missingFile {
            guard FileManager.default.fileExists(atPath: folder.path) else {
                throw CommandFailure("\(folder.path): no such model folder")
            }
            throw CommandFailure("--prompt needs a tokenizer.json in the model folder, and \(folder.path) has none (give --prompt-ids instead)")
        } catch {
            throw CommandFailure("--prompt: cannot read the tokenizer of \(folder.path): \(error)")
        }
    }

    /// The `--output` document: `{"generated_ids": [...], "last_logits": [...]}`.
    ///
    /// - Throws: ``CommandFailure`` when a logit is not finite (NaN or infinity).
    static func document(ids: [Int], logits: [Float]) throws(CommandFailure) -> JSONValue {
        guard let numbers = JSONValue.array(of: logits) else {
            throw CommandFailure("--output: the logits at the last prompt position are not all finite (NaN or infinity)")
        }
        return .object(["generated_ids": .array(of: ids), "last_logits": numbers])
    }

    /// `duration` in seconds.
    static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) * 1e-18
    }
}
