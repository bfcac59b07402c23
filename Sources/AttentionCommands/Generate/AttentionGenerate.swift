import ArgumentParser
import Attention
import AttentionModels

/// `attention-generate`: token generation with a Llama model folder from the command line.
///
/// ```sh
/// attention-generate --model Tests/AttentionModelsTests/Fixtures/tiny-llama --prompt-ids 36,81,11 --max-new-tokens 12
/// attention-generate --model models/my-llama --prompt "Once upon a time" --max-new-tokens 64
/// ```
package struct AttentionGenerate: ParsableCommand {
    /// The name, the summary and the explanation `--help` prints.
    package static let configuration = CommandConfiguration(
        commandName: "attention-generate",
        abstract: "Generates tokens after a prompt with a Llama model folder.",
        discussion: """
            The model folder holds config.json and model.safetensors, or \
            model-0000N-of-0000M.safetensors with model.safetensors.index.json. The prompt is \
            either --prompt-ids or --prompt TEXT, which the folder's tokenizer.json (a byte-level \
            BPE tokenizer: GPT-2, Llama 3, Qwen2, ...) encodes. It runs in one prefill call, then \
            one token per step over a key/value cache. Prints the generated ids, comma-separated, \
            or with --prompt the generated text as it comes, and on standard error "prefill: X \
            tokens/s, decode: Y tokens/s" (model loading excluded). With --output, logits that are \
            not finite (NaN or infinity) are an error: nothing more is printed and nothing is \
            written.
            """)

    /// The model folder (`--model`).
    @Option(parsing: .unconditional, help: ArgumentHelp("The model folder.", valueName: "DIR"))
    package var model: String

    /// The prompt's token ids (`--prompt-ids 1,2,3`); `nil` with `--prompt`.
    @Option(
        name: .customLong("prompt-ids"), parsing: .unconditional,
        help: ArgumentHelp("The prompt's token ids, comma-separated.", valueName: "IDS"),
        transform: TokenIDs.parse)
    package var promptIDs: [Int]?

    /// The prompt as text (`--prompt TEXT`), for the model folder's `tokenizer.json`; `nil` with
    /// `--prompt-ids`.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "The prompt as text, encoded by the model folder's tokenizer.json; the generated text is printed as it comes.",
            valueName: "TEXT"))
    package var prompt: String?

    /// How many tokens to generate at most (`--max-new-tokens`).
    @Option(
        name: .customLong("max-new-tokens"), parsing: .unconditional,
        help: ArgumentHelp(
            "How many tokens to generate (fewer when an end-of-sequence id comes).", valueName: "N"))
    package var maxNewTokens: Int

    /// `--threads`.
    @OptionGroup package var threads: ThreadOptions

    /// The sampling temperature (`--temperature`); 0 is greedy.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Sample from softmax(logits / T); 0 is greedy.", valueName: "T"))
    package var temperature: Float = 0

    /// Only the K most likely tokens can be drawn (`--top-k`).
    @Option(
        name: .customLong("top-k"), parsing: .unconditional,
        help: ArgumentHelp("Sample only among the K most likely tokens.", valueName: "K"))
    package var topK: Int?

    /// Only the most likely tokens whose probabilities reach P can be drawn (`--top-p`).
    @Option(
        name: .customLong("top-p"), parsing: .unconditional,
        help: ArgumentHelp("Sample only among the most likely tokens whose probabilities reach P.", valueName: "P"))
    package var topP: Float?

    /// The seed of the sampling generator (`--seed`).
    @Option(
        parsing: .unconditional, help: ArgumentHelp("The seed of the sampling generator.", valueName: "S"))
    package var seed: UInt64 = 0

    /// Whether generation goes on past the configuration's `eos_token_id` (`--ignore-eos`).
    @Flag(name: .customLong("ignore-eos"), help: "Do not stop at the configuration's eos_token_id.")
    package var ignoresEndOfSequence = false

    /// How the key/value cache is stored (`--cache-dtype`); `nil` for the weights' type.
    @Option(
        name: .customLong("cache-dtype"), parsing: .unconditional,
        help: ArgumentHelp(
            "How the key/value cache is stored (default: the weights' type).", valueName: "TYPE"))
    package var cacheType: CacheType?

    /// How the projections multiply by bf16 weights (`--products`); `nil` for the model's default.
    @Option(
        name: .customLong("products"), parsing: .unconditional,
        help: ArgumentHelp(
            "How the projections multiply by bf16 weights: the activations kept in f32 or rounded to bf16 "
                + "first (faster on CPUs with AVX512_BF16; default: bf16 for a bf16 model; refused for other models).",
            valueName: "TYPE"))
    package var products: ProductsType?

    /// How many timed generations follow a short warm-up (`--repeat`); `nil` for one, untimed.
    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp(
            "A short warm-up generation, then the whole one N times; report the median rates (for benchmarks).",
            valueName: "N"))
    package var repeats: Int?

    /// Where the ids and the last prompt position's logits go as JSON (`--output`).
    @Option(
        name: .customLong("output"), parsing: .unconditional,
        help: ArgumentHelp(
            #"Write JSON {"generated_ids": [...], "last_logits": [...]}, the logits (f32) at the last prompt position; "-" for standard output (the ids then go to standard error)."#,
            valueName: "FILE"))
    package var outputPath: String?

    /// No options: ArgumentParser fills them in.
    package init() {}

    /// Checks that there is one prompt, the counts and the sampling settings.
    package func validate() throws {
        if (prompt == nil) == (promptIDs == nil) { throw ValidationError("give exactly one of --prompt and --prompt-ids") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1, got \(maxNewTokens)") }
        if let repeats, repeats < 1 { throw ValidationError("--repeat must be at least 1, got \(repeats)") }
        _ = try sampling()
    }

    /// The sampling rule of `--temperature`, `--top-k` and `--top-p`.
    ///
    /// - Throws: `ValidationError` naming the option whose value `TokenSampling` refuses, or
    ///   `--top-k` and `--top-p` without a temperature above 0.
    func sampling() throws -> TokenSampling {
        guard temperature != 0 else {
            guard topK == nil && topP == nil else {
                throw ValidationError("--top-k and --top-p sample: they need a --temperature above 0")
            }
            return .greedy
        }
        do {
            return try TokenSampling(temperature: temperature, topK: topK, topP: topP)
        } catch {
            guard case let .invalidArgument(argument, reason) = error else { throw error }
            let options = ["temperature": "--temperature", "topK": "--top-k", "topP": "--top-p"]
            throw ValidationError("\(options[argument] ?? argument) \(reason)")
        }
    }
}
