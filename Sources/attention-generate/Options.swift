import Attention
import CommandLineSupport
import Foundation

/// The command line of `attention-generate`, parsed by hand (no dependency).
struct Options: CommandOptions {
    var model: String?
    var promptIDs: [Int] = []
    var maxNewTokens: Int?
    var threads: Int?
    var temperature: Float = 0
    var topK: Int?
    var topP: Float?
    var seed: UInt64 = 0
    var outputPath: String?
    var ignoresEndOfSequence = false
    var cacheDType: Tensor.DType?
    var products: MatrixProducts?
    var repeats: Int?
    var showHelp = false

    static let usage = """
        usage: attention-generate --model DIR --prompt-ids 1,2,3 --max-new-tokens N [options]

        Generates tokens after a prompt with a Llama model folder (config.json and model.safetensors,
        or model-0000N-of-0000M.safetensors with model.safetensors.index.json): the prompt in one
        prefill call, then one token per step over a key/value cache. Prints the generated ids,
        comma-separated, and on standard error "prefill: X tokens/s, decode: Y tokens/s" (model
        loading excluded).

        options:
          --model DIR           the model folder
          --prompt-ids IDS      the prompt's token ids, comma-separated
          --max-new-tokens N    how many tokens to generate (fewer when an end-of-sequence id comes)
          --threads T           threads for the kernels (default: all cores)
          --temperature T       sample from softmax(logits / T); 0 (the default) is greedy
          --top-k K             sample only among the K most likely tokens
          --top-p P             sample only among the most likely tokens whose probabilities reach P
          --seed S              the seed of the sampling generator (default 0)
          --ignore-eos          do not stop at the configuration's eos_token_id
          --cache-dtype TYPE    f32, f16 or bf16: how the key/value cache is stored (default: the
                                weights' type)
          --products TYPE       f32 or bf16: how the projections multiply by bf16 weights, the
                                activations kept in f32 or rounded to bf16 first (faster on CPUs
                                with AVX512_BF16; default: bf16 for a bf16 model)
          --repeat N            a short warm-up generation, then the whole one N times; report
                                the median rates (for benchmarks)
          --output FILE         write JSON {"generated_ids": [...], "last_logits": [...]}, the logits
                                (f32) at the last prompt position
          -h, --help            this text
        """

    /// Parses `arguments` (without the program name).
    init(_ arguments: [String]) throws(UsageError) {
        var reader = ArgumentReader(arguments)
        while let argument = reader.next() {
            switch argument {
            case "--model": model = try reader.value(for: argument)
            case "--prompt-ids":
                let text = try reader.value(for: argument)
                let parts = text.split(separator: ",", omittingEmptySubsequences: false)
                let ids = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !parts.isEmpty, ids.count == parts.count, ids.allSatisfy({ $0 >= 0 }) else {
                    throw UsageError("--prompt-ids must be non-negative integers separated by commas, got \"\(text)\"")
                }
                promptIDs = ids
            case "--max-new-tokens": maxNewTokens = try reader.count(for: argument, minimum: 1)
            case "--threads": threads = try reader.count(for: argument, minimum: 1)
            case "--temperature": temperature = try reader.number(for: argument)
            case "--top-k": topK = try reader.count(for: argument, minimum: 1)
            case "--top-p": topP = try reader.number(for: argument)
            case "--seed":
                let text = try reader.value(for: argument)
                guard let seed = UInt64(text) else {
                    throw UsageError("--seed must be a non-negative integer, got \"\(text)\"")
                }
                self.seed = seed
            case "--output": outputPath = try reader.value(for: argument)
            case "--ignore-eos": ignoresEndOfSequence = true
            case "--cache-dtype":
                let text = try reader.value(for: argument)
                let types: [String: Tensor.DType] = ["f32": .float32, "f16": .float16, "bf16": .bfloat16]
                guard let dtype = types[text] else {
                    throw UsageError("--cache-dtype must be f32, f16 or bf16, got \"\(text)\"")
                }
                cacheDType = dtype
            case "--products":
                let text = try reader.value(for: argument)
                let choices: [String: MatrixProducts] = ["f32": .float32, "bf16": .bfloat16]
                guard let choice = choices[text] else {
                    throw UsageError("--products must be f32 or bf16, got \"\(text)\"")
                }
                products = choice
            case "--repeat": repeats = try reader.count(for: argument, minimum: 1)
            case "-h", "--help": showHelp = true
            default: throw UsageError("unknown option \(argument)")
            }
        }
        if showHelp { return }
        guard model != nil else { throw UsageError("--model DIR is required") }
        guard !promptIDs.isEmpty else { throw UsageError("--prompt-ids is required") }
        guard maxNewTokens != nil else { throw UsageError("--max-new-tokens is required") }
        guard temperature > 0 || (topK == nil && topP == nil) else {
            throw UsageError("--top-k and --top-p sample: they need a --temperature above 0")
        }
    }
}
