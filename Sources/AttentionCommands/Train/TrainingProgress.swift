import Attention
import Foundation

/// What one step measured: the `--log` line's fields.
struct TrainingRecord: Sendable, Equatable {
    /// The step, from 0.
    var step: Int
    /// The loss of the weights before this step's update.
    var loss: Float
    /// The gradients' global norm before clipping.
    var gradientNorm: Float
    /// The rate this step's update used.
    var learningRate: Float
    /// Tokens of the batch over the step's time (forward, backward and update).
    var tokensPerSecond: Double
    /// The held-out loss after this step's update, on evaluation steps.
    var evaluationLoss: Float?

    /// The `--log` line: `{"step": 0, "loss": ..., "grad_norm": ..., "learning_rate": ...,
    /// "tokens_per_second": ...}`, with `eval_loss` on evaluation steps.
    var json: JSONValue {
        var members: [String: JSONValue] = [
            "step": JSONValue(step), "loss": JSONValue(loss) ?? .null, "grad_norm": JSONValue(gradientNorm) ?? .null,
            "learning_rate": JSONValue(learningRate) ?? .null,
            "tokens_per_second": .number(String(format: "%.1f", tokensPerSecond)),
        ]
        if let evaluationLoss { members["eval_loss"] = JSONValue(evaluationLoss) ?? .null }
        return .object(members)
    }
}

/// Reports a run as it goes: a line per step on standard error (rewritten in place on a
/// terminal) and, with `--log`, one JSON object per step in a file.
struct TrainingProgress {
    private let log: FileHandle?
    private let totalSteps: Int
    private let interactive = isatty(STDERR_FILENO) != 0
    private var durations: [Double] = []

    /// A reporter for a run ending at `totalSteps`; the log is created, or appended to when
    /// `appending` (a resumed run).
    ///
    /// - Throws: ``CommandFailure`` when the log cannot be opened.
    init(logPath: String?, appending: Bool, totalSteps: Int) throws(CommandFailure) {
        self.totalSteps = totalSteps
        guard let logPath else {
            log = nil
            return
        }
        let url = URL(fileURLWithPath: logPath)
        if !appending || !FileManager.default.fileExists(atPath: url.path) {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw CommandFailure("--log: cannot create \(url.path)")
            }
        }
        guard let handle = try? FileHandle(forWritingTo: url) else { throw CommandFailure("--log: cannot open \(url.path)") }
        _ = try? handle.seekToEnd()
        log = handle
    }

    /// Reports one step that took `seconds`.
    ///
    /// - Throws: ``CommandFailure`` when the log cannot be written.
    mutating func report(_ record: TrainingRecord, seconds: Double) throws(CommandFailure) {
        if let log {
            do {
                try log.write(contentsOf: Data((record.json.serialized + "\n").utf8))
            } catch {
                throw CommandFailure("--log: cannot write: \(error)")
            }
        }
        durations.append(seconds)
        // The first step (threads started, memory faulted in) is left out of the estimate.
        let typical = durations.count > 1 ? durations.dropFirst().reduce(0, +) / Double(durations.count - 1) : seconds
        let remaining = Double(totalSteps - record.step - 1) * typical
        var line = String(
            format: "step %ld/%ld  loss %.4f  grad norm %.3f  lr %.2e  %.0f tokens/s",
            record.step + 1, totalSteps, record.loss, record.gradientNorm, record.learningRate, record.tokensPerSecond)
        line += "  ETA " + Self.clock(remaining)
        if let loss = record.evaluationLoss { line += String(format: "  eval loss %.4f", loss) }
        let last = record.step + 1 == totalSteps
        FileHandle.standardError.write(Data((interactive ? "\r\(line)\u{1B}[K" + (last ? "\n" : "") : line + "\n").utf8))
    }

    /// `seconds` as `1h02m03s`, `2m03s` or `3s`.
    private static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let (hours, minutes, rest) = (total / 3600, total / 60 % 60, total % 60)
        if hours > 0 { return String(format: "%dh%02dm%02ds", hours, minutes, rest) }
        return minutes > 0 ? String(format: "%dm%02ds", minutes, rest) : "\(rest)s"
    }
}
