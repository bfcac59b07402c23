import Attention
import Foundation

/// How the next token is chosen from a row of logits: greedily (the largest logit), or drawn from
/// the softmax of the logits divided by a temperature, restricted to the `topK` most likely tokens
/// and then to the smallest set of them whose probabilities reach `topP` (the order of
/// `transformers`' temperature, top-k and top-p warpers).
///
/// ```swift
/// var rng = SeededGenerator(seed: 42)
/// let sampling = try TokenSampling(temperature: 0.8, topK: 40, topP: 0.95)
/// let next = sampling.choose(from: logitsRow, using: &rng)
/// ```
public struct TokenSampling: Sendable, Equatable, Hashable {
    /// Divides the logits; 0 for greedy decoding.
    public let temperature: Float
    /// Only the `topK` largest logits can be drawn; `nil` for all.
    public let topK: Int?
    /// Only the most likely tokens whose probabilities first sum to `topP` or more can be drawn;
    /// `nil` (or 1) for all.
    public let topP: Float?

    /// The largest logit, the first of equal ones (`argmax`).
    public static let greedy = TokenSampling(checkedTemperature: 0, topK: nil, topP: nil)

    private init(checkedTemperature: Float, topK: Int?, topP: Float?) {
        temperature = checkedTemperature
        self.topK = topK
        self.topP = topP
    }

    /// Creates a sampling rule; a temperature of 0 is greedy decoding (and ignores the others).
    ///
    /// - Throws: `ModelError.invalidArgument` for a temperature that is negative or not finite
    ///   (`"temperature"`), a `topK` below 1 (`"topK"`), a `topP` outside `(0, 1]` (`"topP"`).
    public init(temperature: Float, topK: Int? = nil, topP: Float? = nil) throws(ModelError) {
        guard temperature.isFinite, temperature >= 0 else {
            throw .invalidArgument(argument: "temperature", reason: "must be finite and non-negative, got \(temperature)")
        }
        if let topK, topK < 1 { throw .invalidArgument(argument: "topK", reason: "must be at least 1, got \(topK)") }
        if let topP, !(topP > 0 && topP <= 1) {
            throw .invalidArgument(argument: "topP", reason: "must be in (0, 1], got \(topP)")
        }
        self.init(checkedTemperature: temperature, topK: topK, topP: topP)
    }

    /// Whether this rule always takes the largest logit.
    public var isGreedy: Bool { temperature == 0 }

    /// The chosen token id of one row of logits.
    public func choose(from logits: UnsafeBufferPointer<Float>, using generator: inout some RandomNumberGenerator) -> Int {
        if isGreedy || topK == 1 { return Self.argmax(logits) }
        // Candidates by decreasing logit (ties by id), cut to topK.
        var candidates = Array(logits.indices)
        candidates.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if let topK, topK < candidates.count { candidates.removeSubrange(topK...) }
        let largest = Double(logits[candidates[0]]) / Double(temperature)
        var weights = candidates.map { exp(Double(logits[$0]) / Double(temperature) - largest) }
        let total = weights.reduce(0, +)
        if let topP, topP < 1 {
            var cumulative = 0.0
            var kept = 0
            while kept < weights.count, cumulative < Double(topP) * total {
                cumulative += weights[kept]
                kept += 1
            }
            weights.removeSubrange(max(kept, 1)...)
        }
        let draw = Double.random(in: 0..<1, using: &generator) * weights.reduce(0, +)
        var cumulative = 0.0
        for (index, weight) in weights.enumerated() {
            cumulative += weight
            if draw < cumulative { return candidates[index] }
        }
        return candidates[weights.count - 1]
    }

    /// The index of the largest value, the first of equal ones; NaN never wins.
    static func argmax(_ values: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for index in values.indices where values[index] > values[best] || values[best].isNaN {
            best = index
        }
        return best
    }
}
