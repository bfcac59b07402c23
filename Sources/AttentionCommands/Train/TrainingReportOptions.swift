import ArgumentParser
import Attention

/// What `attention-train` measures, saves and logs along the way.
package struct TrainingReportOptions: ParsableArguments {
    /// Steps between evaluations of the held-out loss (`--eval-every`); `nil` for none.
    @Option(
        name: .customLong("eval-every"), parsing: .unconditional,
        help: ArgumentHelp("Every N steps, the mean loss on the held-out end of --data.", valueName: "N"))
    package var evaluationInterval: Int?

    /// The fraction of `--data` held out (`--eval-fraction`).
    @Option(
        name: .customLong("eval-fraction"), parsing: .unconditional,
        help: ArgumentHelp("The fraction of --data's tokens held out, from its end, with --eval-every.", valueName: "F"))
    package var evaluationFraction: Double = 0.05

    /// How many batches of held-out windows an evaluation reads (`--eval-batches`).
    @Option(
        name: .customLong("eval-batches"), parsing: .unconditional,
        help: ArgumentHelp("Batches of held-out windows per evaluation (fewer if the held-out text is short).", valueName: "N"))
    package var evaluationBatches: Int = 4

    /// Steps between checkpoints (`--save-every`); `nil` for none.
    @Option(
        name: .customLong("save-every"), parsing: .unconditional,
        help: ArgumentHelp("Every N steps, a checkpoint in --output/checkpoint-STEP.", valueName: "N"))
    package var saveInterval: Int?

    /// The JSON-lines log (`--log`).
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "One JSON object per step: step, loss, grad_norm, learning_rate, tokens_per_second (and eval_loss).",
            valueName: "FILE"))
    package var log: String?

    /// How the saved weights are stored (`--save-dtype`).
    @Option(
        name: .customLong("save-dtype"), parsing: .unconditional,
        help: ArgumentHelp("How model.safetensors stores the weights (checkpoints are always f32).", valueName: "TYPE"))
    package var saveType: SaveType = .f32

    /// The values of `--save-dtype`.
    package enum SaveType: String, CaseIterable, ExpressibleByArgument, Sendable {
        /// 32-bit floats.
        case f32
        /// bfloat16.
        case bf16

        /// The tensor type.
        package var dtype: Tensor.DType { self == .f32 ? .float32 : .bfloat16 }
    }

    /// No options: ArgumentParser fills them in.
    package init() {}

    /// Checks the intervals and the fraction.
    package func validate() throws {
        for (name, value) in [("--eval-every", evaluationInterval), ("--save-every", saveInterval), ("--eval-batches", evaluationBatches)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1, got \(value)") }
        }
        if !(evaluationFraction > 0 && evaluationFraction < 1) {
            throw ValidationError("--eval-fraction must be in (0, 1), got \(evaluationFraction)")
        }
    }
}
