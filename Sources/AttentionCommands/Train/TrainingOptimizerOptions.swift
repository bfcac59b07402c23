import ArgumentParser
import Attention

/// The optimiser's and the schedule's options of `attention-train`: torch.optim.AdamW's settings,
/// with its defaults, a warm-up and a decay.
package struct TrainingOptimizerOptions: ParsableArguments {
    /// The peak learning rate (`--learning-rate`).
    @Option(
        name: .customLong("learning-rate"), parsing: .unconditional,
        help: ArgumentHelp("The learning rate after the warm-up.", valueName: "LR"))
    package var learningRate: Float = 1e-3

    /// AdamW's betas (`--betas 0.9,0.95`).
    @Option(
        parsing: .unconditional, help: ArgumentHelp("AdamW's two betas, comma-separated (default 0.9,0.999).", valueName: "B1,B2"),
        transform: TrainingOptimizerOptions.parseBetas)
    package var betas: [Float] = [0.9, 0.999]

    /// AdamW's epsilon (`--epsilon`).
    @Option(parsing: .unconditional, help: ArgumentHelp("AdamW's epsilon.", valueName: "EPS"))
    package var epsilon: Float = 1e-8

    /// The decoupled weight decay (`--weight-decay`).
    @Option(
        name: .customLong("weight-decay"), parsing: .unconditional,
        help: ArgumentHelp("AdamW's decoupled weight decay, on every parameter.", valueName: "WD"))
    package var weightDecay: Float = 0.01

    /// The steps of the linear warm-up (`--warmup-steps`).
    @Option(
        name: .customLong("warmup-steps"), parsing: .unconditional,
        help: ArgumentHelp("Steps of linear warm-up from 0.", valueName: "N"))
    package var warmupSteps: Int = 0

    /// What follows the warm-up (`--schedule`).
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("After the warm-up: constant, or a cosine decay to 0 at --steps.", valueName: "KIND"))
    package var schedule: ScheduleKind = .cosine

    /// The bound on the gradients' global norm (`--max-grad-norm`); 0 for none.
    @Option(
        name: .customLong("max-grad-norm"), parsing: .unconditional,
        help: ArgumentHelp("Clip the gradients' global 2-norm to this (0: no clipping).", valueName: "X"))
    package var maxGradientNorm: Float = 1

    /// The values of `--schedule`.
    package enum ScheduleKind: String, CaseIterable, ExpressibleByArgument, Sendable {
        /// The peak rate after the warm-up.
        case constant
        /// `transformers.get_cosine_schedule_with_warmup`.
        case cosine
    }

    /// No options: ArgumentParser fills them in.
    package init() {}

    /// Checks the ranges torch.optim.AdamW checks.
    package func validate() throws {
        if !(learningRate.isFinite && learningRate >= 0) {
            throw ValidationError("--learning-rate must be finite and non-negative, got \(learningRate)")
        }
        if !(epsilon.isFinite && epsilon >= 0) { throw ValidationError("--epsilon must be finite and non-negative, got \(epsilon)") }
        if !(weightDecay.isFinite && weightDecay >= 0) {
            throw ValidationError("--weight-decay must be finite and non-negative, got \(weightDecay)")
        }
        if warmupSteps < 0 { throw ValidationError("--warmup-steps must be at least 0, got \(warmupSteps)") }
        if !(maxGradientNorm.isFinite && maxGradientNorm >= 0) {
            throw ValidationError("--max-grad-norm must be finite and non-negative, got \(maxGradientNorm)")
        }
    }

    /// A new AdamW with these settings.
    func makeOptimizer() -> AdamW {
        AdamW(learningRate: learningRate, beta1: betas[0], beta2: betas[1], epsilon: epsilon, weightDecay: weightDecay)
    }

    /// The learning rate of each step of a run of `steps` steps.
    func makeSchedule(steps: Int) throws -> LearningRateSchedule {
        guard warmupSteps <= steps else {
            throw ValidationError("--warmup-steps \(warmupSteps) exceeds the run's \(steps) steps")
        }
        // A constant schedule is a cosine one whose decay never starts.
        return try LearningRateSchedule(
            peak: learningRate, warmupSteps: warmupSteps, totalSteps: schedule == .cosine ? steps : Int.max)
    }

    /// `0.9,0.95` as two numbers in [0, 1).
    static func parseBetas(_ text: String) throws -> [Float] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingPrefix(" ")) }
        guard parts.count == 2, let first = parts[0], let second = parts[1],
              (0..<1).contains(first), (0..<1).contains(second)
        else {
            throw ValidationError("--betas must be two numbers in [0, 1) with a comma, as 0.9,0.95; got \(text)")
        }
        return [first, second]
    }
}
