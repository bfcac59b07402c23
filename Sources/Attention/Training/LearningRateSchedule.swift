#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Android)
import Android
#endif

/// A learning rate for each step: a linear warm-up from 0 to the peak, then a cosine decay to
/// `minimum`, as `transformers.get_cosine_schedule_with_warmup` (with `minimum` 0).
///
/// ```swift
/// let schedule = try LearningRateSchedule(peak: 3e-4, warmupSteps: 100, totalSteps: 2000)
/// for step in 0..<2000 {
///     optimizer.learningRate = schedule.rate(atStep: step)
///     ...
/// }
/// ```
public struct LearningRateSchedule: Sendable, Hashable {
    /// The rate at the end of the warm-up.
    public var peak: Float
    /// The steps of the linear warm-up.
    public var warmupSteps: Int
    /// The step at which the decay reaches `minimum`.
    public var totalSteps: Int
    /// The rate at and after `totalSteps`.
    public var minimum: Float

    /// A schedule.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"peak"`, `"minimum"`) unless
    ///   `0 <= minimum <= peak`, both finite; (`"warmupSteps"`, `"totalSteps"`) unless
    ///   `0 <= warmupSteps <= totalSteps`.
    public init(peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0) throws {
        guard peak.isFinite, peak >= 0 else {
            throw AttentionError.invalidArgument(argument: "peak", reason: "must be finite and non-negative, got \(peak)")
        }
        guard minimum.isFinite, minimum >= 0, minimum <= peak else {
            throw AttentionError.invalidArgument(argument: "minimum", reason: "must be in [0, peak \(peak)], got \(minimum)")
        }
        guard warmupSteps >= 0 else {
            throw AttentionError.invalidArgument(argument: "warmupSteps", reason: "must be at least 0, got \(warmupSteps)")
        }
        guard totalSteps >= warmupSteps else {
            throw AttentionError.invalidArgument(
                argument: "totalSteps", reason: "must be at least warmupSteps \(warmupSteps), got \(totalSteps)")
        }
        (self.peak, self.warmupSteps, self.totalSteps, self.minimum) = (peak, warmupSteps, totalSteps, minimum)
    }

    /// The rate for step `step` (from 0): `peak · step / warmupSteps` during the warm-up, then
    /// `minimum + (peak - minimum) · (1 + cos(π · progress)) / 2`, progress going from 0 to 1 at
    /// `totalSteps`, and `minimum` after.
    public func rate(atStep step: Int) -> Float {
        if step < warmupSteps { return Float(Double(peak) * Double(step) / Double(max(1, warmupSteps))) }
        let decay = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(decay))
        let cosine = 0.5 * (1 + cos(Double.pi * progress))
        return Float(Double(minimum) + (Double(peak) - Double(minimum)) * cosine)
    }
}
