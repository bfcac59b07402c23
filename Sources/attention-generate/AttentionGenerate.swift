import Attention
import AttentionModels
import CommandLineSupport
import Foundation

/// `attention-generate`: token generation with a Llama model folder from the command line.
@main
enum AttentionGenerate {
    static func main() {
        CommandRunner.main(named: "attention-generate", parsing: Options.self, run)
    }

    static func run(_ options: Options) throws {
        try CommandRunner.useThreads(options.threads)
        let sampling: TokenSampling
        do {
            sampling = options.temperature == 0
                ? .greedy : try TokenSampling(temperature: options.temperature, topK: options.topK, topP: options.topP)
        } catch {
            throw UsageError("\(error)")
        }
        var model = try CommandRunner.loadModel(at: options.model!) { try LlamaForCausalLM(contentsOf: $0) }
        if let products = options.products { model.products = products }

        // With --repeat: a short warm-up (threads started, code paths touched), then the timed
        // runs; the rates are their medians.
        if options.repeats != nil {
            var generator = SeededGenerator(seed: options.seed)
            _ = try model.generate(
                prompts: [Array(options.promptIDs.prefix(16))], maxNewTokens: 2, sampling: sampling,
                generator: &generator, stopAtEndOfSequence: false)
        }
        var timed: [LlamaGeneration] = []
        for _ in 0..<(options.repeats ?? 1) {
            var generator = SeededGenerator(seed: options.seed)
            timed.append(try model.generate(
                prompts: [options.promptIDs], maxNewTokens: options.maxNewTokens!, sampling: sampling,
                generator: &generator, stopAtEndOfSequence: !options.ignoresEndOfSequence,
                cacheDType: options.cacheDType))
        }
        let result = timed[0]
        let prefillRate = CommandRunner.median(timed.map { Double(options.promptIDs.count) / seconds($0.prefillDuration) })
        let decodeRate = CommandRunner.median(timed.map { Double($0.decodeSteps) / seconds($0.decodeDuration) })
        print(result.tokens[0].map(String.init).joined(separator: ","))
        CommandRunner.printLine(String(format: "prefill: %.1f tokens/s, decode: %.1f tokens/s", prefillRate, decodeRate))
        if let path = options.outputPath {
            try writeJSON(to: path, ids: result.tokens[0], logits: result.promptLogits.scalars)
        }
    }

    /// `{"generated_ids": [...], "last_logits": [...]}`, written in place (so /dev/stdout works).
    static func writeJSON(to path: String, ids: [Int], logits: [Float]) throws(RunError) {
        let numbers = logits.map { $0.isFinite ? "\($0)" : "null" }.joined(separator: ",")
        let text = "{\"generated_ids\": [\(ids.map(String.init).joined(separator: ","))], \"last_logits\": [\(numbers)]}\n"
        try CommandRunner.write(text, toPath: path, option: "--output")
    }

    static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) * 1e-18
    }
}
