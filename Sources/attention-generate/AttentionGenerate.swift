import Attention
import AttentionModels
import Foundation

/// `attention-generate`: token generation with a Llama model folder from the command line.
@main
enum AttentionGenerate {
    static func main() {
        do {
            let options = try Options(Array(CommandLine.arguments.dropFirst()))
            if options.showHelp {
                print(Options.usage)
                return
            }
            try run(options)
        } catch let error as UsageError {
            printLine("attention-generate: \(error.message)\nrun attention-generate --help for the options")
            exit(64)
        } catch let error as RunError {
            printLine("attention-generate: \(error.message)")
            exit(1)
        } catch {
            printLine("attention-generate: \(error)")
            exit(1)
        }
    }

    static func run(_ options: Options) throws {
        if let threads = options.threads {
            do {
                try AttentionBackend.setThreadCount(threads)
            } catch {
                throw UsageError("--threads: \(error)")
            }
        }
        let sampling: TokenSampling
        do {
            sampling = options.temperature == 0
                ? .greedy : try TokenSampling(temperature: options.temperature, topK: options.topK, topP: options.topP)
        } catch {
            throw UsageError("\(error)")
        }
        let folder = URL(fileURLWithPath: options.model!)
        guard FileManager.default.fileExists(atPath: folder.path) else {
            throw RunError("\(folder.path): no such model folder")
        }
        let model: LlamaForCausalLM
        do {
            model = try LlamaForCausalLM(contentsOf: folder)
        } catch {
            throw RunError("cannot load the model in \(folder.path): \(error)")
        }

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
        let prefillRate = median(timed.map { Double(options.promptIDs.count) / seconds($0.prefillDuration) })
        let decodeRate = median(timed.map { Double($0.decodeSteps) / seconds($0.decodeDuration) })
        print(result.tokens[0].map(String.init).joined(separator: ","))
        printLine(String(format: "prefill: %.1f tokens/s, decode: %.1f tokens/s", prefillRate, decodeRate))
        if let path = options.outputPath {
            try writeJSON(to: path, ids: result.tokens[0], logits: result.promptLogits.scalars)
        }
    }

    /// `{"generated_ids": [...], "last_logits": [...]}`, written in place (so /dev/stdout works).
    static func writeJSON(to path: String, ids: [Int], logits: [Float]) throws {
        let numbers = logits.map { $0.isFinite ? "\($0)" : "null" }.joined(separator: ",")
        let text = "{\"generated_ids\": [\(ids.map(String.init).joined(separator: ","))], \"last_logits\": [\(numbers)]}\n"
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            FileManager.default.createFile(atPath: path, contents: nil) ? FileHandle(forWritingAtPath: path) : nil
        }() else {
            throw RunError("--output \(path): cannot be written")
        }
        defer { try? handle.close() }
        do {
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: Data(text.utf8))
        } catch {
            throw RunError("--output \(path): \(error.localizedDescription)")
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) * 1e-18
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// One line on stderr.
    static func printLine(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
