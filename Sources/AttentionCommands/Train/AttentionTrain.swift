import ArgumentParser
import Attention

/// `attention-train`: trains a Llama-architecture model on a text file (or on fixed token
/// batches) and saves a Hugging Face model folder.
///
/// ```sh
/// attention-train --config config.json --data corpus.txt --output runs/tiny --steps 300
/// attention-train --model runs/tiny --data more.txt --output runs/tiny-2 --steps 100 --learning-rate 1e-4
/// attention-train --resume runs/tiny/checkpoint-200 --data corpus.txt --output runs/tiny --steps 300
/// ```
package struct AttentionTrain: ParsableCommand {
    /// The name, the summary and the explanation `--help` prints.
    package static let configuration = CommandConfiguration(
        commandName: "attention-train",
        abstract: "Trains a Llama-architecture model and saves a Hugging Face model folder.",
        discussion: """
            The model is new (--config, a LlamaConfig config.json, initialised as transformers \
            does from --seed), continued from a model folder (--model), or resumed from a \
            checkpoint (--resume). The text of --data is encoded by --tokenizer, else the model \
            folder's tokenizer.json, else as plain bytes (ids 0-255); windows of \
            --sequence-length + 1 tokens are drawn in an order shuffled from --seed. Each step \
            minimises the mean next-token cross-entropy with AdamW (torch.optim.AdamW's update, \
            weight decay on every parameter), after clipping the gradients' norm. --output gets \
            config.json, model.safetensors, generation_config.json and tokenizer.json, which \
            transformers loads as they are; --save-every adds DIR/checkpoint-N folders (with the \
            optimiser's state) that --resume continues exactly. A progress line goes to standard \
            error; --log writes one JSON object per step.
            """)

    /// The text to train on (`--data`); `nil` with `--token-batches`.
    @Option(parsing: .unconditional, help: ArgumentHelp("The UTF-8 text to train on.", valueName: "FILE"))
    package var data: String?

    /// Fixed token batches (`--token-batches`) instead of `--data`.
    @Option(
        name: .customLong("token-batches"), parsing: .unconditional,
        help: ArgumentHelp(
            "A safetensors file whose input_ids (steps, batch, length + 1), int64 or int32, give step s's batch: "
                + "inputs [s, :, :-1], targets [s, :, 1:]; replaces --data, nothing shuffled.",
            valueName: "FILE"))
    package var tokenBatches: String?

    /// A new model's `config.json` (`--config`).
    @Option(parsing: .unconditional, help: ArgumentHelp("A new model's config.json (LlamaConfig).", valueName: "FILE"))
    package var config: String?

    /// A model folder to continue training (`--model`).
    @Option(parsing: .unconditional, help: ArgumentHelp("A model folder to continue training.", valueName: "DIR"))
    package var model: String?

    /// A checkpoint folder to resume (`--resume`).
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("A checkpoint folder (DIR/checkpoint-N) whose run continues exactly.", valueName: "DIR"))
    package var resume: String?

    /// The tokenizer (`--tokenizer`); `nil` for the model folder's or plain bytes.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "A byte-level BPE tokenizer.json (default: the model folder's, else plain bytes).", valueName: "FILE"))
    package var tokenizer: String?

    /// The folder the trained model is saved in (`--output`).
    @Option(parsing: .unconditional, help: ArgumentHelp("Where the trained model folder goes.", valueName: "DIR"))
    package var output: String

    /// The steps of the whole run (`--steps`); `nil` for every stored batch of `--token-batches`.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Optimiser steps in the whole run, a resumed one included (default with --token-batches: one per batch).",
            valueName: "N"))
    package var steps: Int?

    /// Sequences per step (`--batch-size`); `nil` for 8, or the stored batches' or a resumed
    /// run's.
    @Option(
        name: .customLong("batch-size"), parsing: .unconditional,
        help: ArgumentHelp("Sequences per step (default 8).", valueName: "N"))
    package var batchSize: Int?

    /// Tokens per sequence (`--sequence-length`); `nil` for 256, or the stored batches' or a
    /// resumed run's.
    @Option(
        name: .customLong("sequence-length"), parsing: .unconditional,
        help: ArgumentHelp("Tokens per sequence (default 256).", valueName: "N"))
    package var sequenceLength: Int?

    /// `--learning-rate`, `--betas`, `--epsilon`, `--weight-decay`, `--warmup-steps`, `--schedule`
    /// and `--max-grad-norm`.
    @OptionGroup package var optimizer: TrainingOptimizerOptions

    /// How the projections multiply (`--precision`).
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "f32, or bf16: every projection's products of bf16 pairs (summed in f32) over f32 master weights "
                + "and optimiser state, as torch.autocast; fastest on CPUs with AVX512_BF16.",
            valueName: "TYPE"))
    package var precision: TrainingPrecision = .f32

    /// The seed of a new model's weights and of the data order (`--seed`); `nil` for 0, or a
    /// resumed run's.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("The seed of a new model's weights and of the data order (default 0).", valueName: "S"))
    package var seed: UInt64?

    /// `--threads`.
    @OptionGroup package var threads: ThreadOptions

    /// `--eval-every`, `--eval-fraction`, `--eval-batches`, `--save-every`, `--log`, `--save-dtype`.
    @OptionGroup package var reporting: TrainingReportOptions

    /// The values of `--precision`.
    package enum TrainingPrecision: String, CaseIterable, ExpressibleByArgument, Sendable {
        /// Everything in float32.
        case f32
        /// The projections' products in bf16 pairs.
        case bf16
    }

    /// No options: ArgumentParser fills them in.
    package init() {}

    /// Checks that there is one data source and one model source, and the counts.
    package func validate() throws {
        if (data == nil) == (tokenBatches == nil) { throw ValidationError("give exactly one of --data and --token-batches") }
        if [config, model, resume].compactMap({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --config, --model and --resume")
        }
        if tokenBatches == nil && steps == nil { throw ValidationError("--data needs --steps") }
        for (name, value) in [("--steps", steps), ("--batch-size", batchSize), ("--sequence-length", sequenceLength)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1, got \(value)") }
        }
        if tokenBatches != nil && reporting.evaluationInterval != nil {
            throw ValidationError("--eval-every holds out part of --data; --token-batches has no held-out text")
        }
    }
}
