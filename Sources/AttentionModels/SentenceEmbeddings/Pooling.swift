import Attention
import Foundation

/// How token states become one sentence vector: sentence-transformers' `Pooling` module, as its
/// `config.json` configures it, in either format: `"pooling_mode": "mean"` (or a list of modes,
/// concatenated in that order) or the older `"pooling_mode_mean_tokens": true` flags (concatenated
/// in the order class token, max, mean, mean × √length, weighted mean, last token).
///
/// ```swift
/// let pooling = Pooling(modes: [.mean])
/// let sentences = try pooling(hidden, batch: batch)   // (sequenceCount, hiddenSize)
/// ```
public struct Pooling: Sendable, Equatable, Hashable {
    /// One pooling of a sequence's token states, named as in sentence-transformers.
    ///
    /// ```swift
    /// Pooling.Mode(rawValue: "mean")   // .mean
    /// ```
    public enum Mode: String, Sendable, Equatable, Hashable, CaseIterable {
        /// The first token's state (`[CLS]`).
        case classToken = "cls"
        /// The element-wise maximum over the tokens.
        case max = "max"
        /// The mean over the tokens.
        case mean = "mean"
        /// The sum over the tokens divided by √length.
        case meanSquareRootLength = "mean_sqrt_len_tokens"
        /// The mean weighted by position 1, 2, ....
        case weightedMean = "weightedmean"
        /// The last token's state.
        case lastToken = "lasttoken"

        /// The boolean key of the older configuration format (`pooling_mode_mean_tokens`).
        public var legacyKey: String {
            switch self {
            case .classToken: "pooling_mode_cls_token"
            case .max: "pooling_mode_max_tokens"
            case .mean: "pooling_mode_mean_tokens"
            case .meanSquareRootLength: "pooling_mode_mean_sqrt_len_tokens"
            case .weightedMean: "pooling_mode_weightedmean_tokens"
            case .lastToken: "pooling_mode_lasttoken"
            }
        }
    }

    /// The modes, in the order their results are concatenated.
    public let modes: [Mode]

    /// Creates a pooling from its modes, concatenated in this order (a repeated mode once).
    public init(modes: [Mode]) {
        var seen: Set<Mode> = []
        self.modes = modes.filter { seen.insert($0).inserted }
    }

    /// Reads `config.json` of a sentence-transformers `Pooling` folder.
    ///
    /// - Parameters:
    ///   - url: the file.
    ///   - name: how errors name the file.
    ///   - hiddenSize: the encoder's width, checked against `embedding_dimension`
    ///     (`word_embedding_dimension` in the older format).
    /// - Throws: `ModelError.missingFile`, `.invalidFile` (a mistyped key, a dimension that differs
    ///   from `hiddenSize`, no mode at all), `.unsupported` (an unknown mode, `include_prompt: false`).
    public init(contentsOf url: URL, name: String = "1_Pooling/config.json", hiddenSize: Int) throws(ModelError) {
        let file = try JSONFile(contentsOf: url, name: name)
        for key in ["embedding_dimension", "word_embedding_dimension"] {
            if let dimension = try file.integer(key), dimension != hiddenSize {
                throw .invalidFile(
                    file: name, reason: "\(key) is \(dimension) but the model's hidden size is \(hiddenSize)")
            }
        }
        if try file.boolean("include_prompt") == false {
            throw .unsupported(file: name, setting: "include_prompt", value: "false", supported: ["true"])
        }
        var names: [String] = []
        switch file.members["pooling_mode"] {
        case let .string(mode)?:
            names = [mode]
        case let .array(modes)?:
            for (index, mode) in modes.enumerated() {
                guard case let .string(mode) = mode else {
                    throw .invalidFile(file: name, reason: "pooling_mode[\(index)] must be a string, got \(mode.summary)")
                }
                names.append(mode)
            }
        case nil, .null?:
            for mode in Mode.allCases where try file.boolean(mode.legacyKey) == true { names.append(mode.rawValue) }
        case let other?:
            throw .invalidFile(file: name, reason: "pooling_mode must be a string or a list, got \(other.summary)")
        }
        var modes: [Mode] = []
        for mode in names {
            guard let known = Mode(rawValue: mode) else {
                throw .unsupported(
                    file: name, setting: "pooling_mode", value: mode, supported: Mode.allCases.map(\.rawValue))
            }
            modes.append(known)
        }
        guard !modes.isEmpty else { throw .invalidFile(file: name, reason: "no pooling mode is set") }
        self.init(modes: modes)
    }

    /// The pooled vector of every sequence of `batch`: `(sequenceCount, modes.count × hiddenSize)`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (argument `"hidden"`) unless `hidden` is
    ///   `float32`; `.shapeMismatch` (argument `"hidden"`) when `hidden` is not
    ///   `(batch.tokenCount, hiddenSize)`.
    public func callAsFunction(_ hidden: Tensor, batch: TokenBatch) throws -> Tensor {
        guard hidden.dtype == .float32 else {
            throw AttentionError.unsupportedDType(
                argument: "hidden", dtype: hidden.dtype, reason: "pooling takes float32 hidden states")
        }
        guard hidden.rank == 2, hidden.shape[0] == batch.tokenCount else {
            throw AttentionError.shapeMismatch(
                argument: "hidden", expected: "[\(batch.tokenCount), hiddenSize] (tokenCount, hiddenSize)",
                actual: hidden.shape)
        }
        let size = hidden.shape[1]
        let width = size * modes.count
        var result = try Tensor(zeros: [batch.sequenceCount, width])
        result.withUnsafeMutableBufferPointer { output in
            hidden.withUnsafeBufferPointer { states in
                for (sequence, rows) in batch.ranges.enumerated() {
                    for (slot, mode) in modes.enumerated() {
                        let target = UnsafeMutableBufferPointer(
                            rebasing: output[(sequence * width + slot * size)..<(sequence * width + (slot + 1) * size)])
                        Self.pool(mode, rows: rows, size: size, states: states, into: target)
                    }
                }
            }
        }
        return result
    }

    /// One mode over the rows of one sequence. Sums are taken in `Double` and rounded once.
    private static func pool(
        _ mode: Mode, rows: Range<Int>, size: Int, states: UnsafeBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        switch mode {
        case .classToken, .lastToken:
            let row = mode == .classToken ? rows.lowerBound : rows.upperBound - 1
            for column in 0..<size { output[column] = states[row * size + column] }
        case .max:
            for column in 0..<size {
                var best = -Float.infinity
                for row in rows { best = Swift.max(best, states[row * size + column]) }
                output[column] = best
            }
        case .mean, .meanSquareRootLength, .weightedMean:
            var sums = [Double](repeating: 0, count: size)
            var totalWeight = 0.0
            for (position, row) in rows.enumerated() {
                let weight = mode == .weightedMean ? Double(position + 1) : 1
                totalWeight += weight
                for column in 0..<size { sums[column] += weight * Double(states[row * size + column]) }
            }
            let divisor = mode == .meanSquareRootLength ? Double(rows.count).squareRoot() : totalWeight
            for column in 0..<size { output[column] = Float(sums[column] / divisor) }
        }
    }
}
