import ArgumentParser
import Attention
import AttentionModels
import Foundation

extension AttentionGenerate {
    /// Generates after the prompt, prints the ids and the rates, and writes `--output`.
    ///
    /// With `--output -` the JSON goes to standard output and the ids to standard error.
    ///
    /// - Throws: ``CommandFailure`` for a model that cannot be loaded, an `--output` that cannot
    ///   be written (checked before any work), or logits for `--output` that are not finite;
    ///   `ValidationError` for `--products` on a model whose weights are not bf16; the errors of
    ///   generation.
    package func run() throws {
        if let outputPath { try OutputFile.checkWritable(outputPath, option: "--output") }
        try threads.apply()
        let sampling = try sampling()
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
        for _ in 0..<(repeats ?? 1) {
            var generator = SeededGenerator(seed: seed)
            timed.append(try model.generate(
                prompts: [promptIDs], maxNewTokens: maxNewTokens, sampling: sampling,
                generator: &generator, stopAtEndOfSequence: !ignoresEndOfSequence,
                cacheDType: cacheType?.dtype))
        }
        let result = timed[0]
        // Checked before anything is printed: logits that JSON cannot hold stop the command.
        let document = try outputPath.map { _ in
            try Self.document(ids: result.tokens[0], logits: result.promptLogits.scalars)
        }
        let prefillRate = timed.map { Double(promptIDs.count) / Self.seconds($0.prefillDuration) }.median
        let decodeRate = timed.map { Double($0.decodeSteps) / Self.seconds($0.decodeDuration) }.median
        OutputFile.printReport(result.tokens[0].map(String.init).joined(separator: ","), outputPath: outputPath)
        CommandMain.printLine(String(format: "prefill: %.1f tokens/s, decode: %.1f tokens/s", prefillRate, decodeRate))
        if let outputPath, let document { try OutputFile.write(document, toPath: outputPath, option: "--output") }
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
