import Attention

/// The token sequences a run trains on, one batch per data position.
///
/// From a text, the tokens are cut into windows of `sequenceLength + 1` consecutive tokens
/// (stride `sequenceLength`, so each token is predicted once per epoch); each epoch visits them in
/// an order shuffled from the seed and the epoch's number (or in order, for held-out text). From token batches
/// (`--token-batches`), position `s` is batch `s` as stored, unshuffled. Either way the batch at a
/// position depends on nothing else, so a run resumed at a position sees what it would have.
struct TrainingBatches: Sendable {
    /// One batch: `inputs` (B, L) and `targets` (B, L), the inputs shifted by one token.
    struct Batch: Sendable {
        var inputs: IndexArray
        var targets: IndexArray

        /// The batch of equal-length windows: each but its last token as inputs, each but its
        /// first as targets.
        init(_ windows: [ArraySlice<Int>]) throws {
            let shape = [windows.count, (windows.first?.count ?? 1) - 1]
            inputs = try IndexArray(shape: shape, indices: windows.flatMap { $0.dropLast() })
            targets = try IndexArray(shape: shape, indices: windows.flatMap { $0.dropFirst() })
        }
    }

    private enum Source: Sendable {
        /// A token stream, the number of windows it holds, and whether epochs shuffle them.
        case windows(tokens: [Int], count: Int, shuffled: Bool)
        /// Stored batches, `(steps, batchSize, sequenceLength + 1)` flattened.
        case stored(ids: [Int], steps: Int)
    }

    private let source: Source
    /// Sequences per batch.
    let batchSize: Int
    /// Tokens per sequence (inputs; each window holds one more).
    let sequenceLength: Int
    /// The seed of the epochs' orders.
    let seed: UInt64

    /// Batches cut from `tokens`, shuffled from `seed` unless it is `nil`.
    ///
    /// - Throws: `CommandFailure` naming `name` when the tokens do not fill one window.
    init(tokens: [Int], batchSize: Int, sequenceLength: Int, seed: UInt64?, describedAs name: String) throws {
        let count = tokens.count > sequenceLength ? (tokens.count - 1) / sequenceLength : 0
        guard count >= 1 else {
            throw CommandFailure(
                "\(name) has \(tokens.count) tokens; --sequence-length \(sequenceLength) needs at least \(sequenceLength + 1)")
        }
        source = .windows(tokens: tokens, count: count, shuffled: seed != nil)
        (self.batchSize, self.sequenceLength, self.seed) = (batchSize, sequenceLength, seed ?? 0)
    }

    /// The batches of a `--token-batches` tensor `(steps, batchSize, sequenceLength + 1)`.
    init(stored ids: IndexArray) {
        source = .stored(ids: ids.indices, steps: ids.shape[0])
        (batchSize, sequenceLength, seed) = (ids.shape[1], ids.shape[2] - 1, 0)
    }

    /// The number of windows of a text, or of stored batches.
    var count: Int {
        switch source {
        case let .windows(_, count, _): count
        case let .stored(_, steps): steps
        }
    }

    /// The batch at data position `position` (batches taken so far).
    func batch(at position: Int) throws -> Batch {
        let width = sequenceLength + 1
        var windows: [ArraySlice<Int>] = []
        switch source {
        case let .windows(tokens, count, shuffled):
            for sequence in 0..<batchSize {
                let index = position * batchSize + sequence
                let window = shuffled ? Self.order(epoch: index / count, count: count, seed: seed)[index % count] : index % count
                windows.append(tokens[(window * sequenceLength)..<(window * sequenceLength + width)])
            }
        case let .stored(ids, steps):
            guard position < steps else {
                throw CommandFailure("--token-batches holds \(steps) batches; the run is at data position \(position)")
            }
            let start = position * batchSize * width
            windows = (0..<batchSize).map { ids[(start + $0 * width)..<(start + ($0 + 1) * width)] }
        }
        return try Batch(windows)
    }

    /// The windows in order, `batchSize` per batch (the last one possibly fewer), at most
    /// `maximumCount` batches: the held-out set.
    func sequentialBatches(maximumCount: Int) throws -> [Batch] {
        let width = sequenceLength + 1
        guard case let .windows(tokens, count, _) = source else { return [] }
        return try stride(from: 0, to: min(count, maximumCount * batchSize), by: batchSize).map { first in
            try Batch((first..<min(count, first + batchSize)).map {
                tokens[($0 * sequenceLength)..<($0 * sequenceLength + width)]
            })
        }
    }

    /// The windows of one epoch in order: a Fisher-Yates shuffle drawn from the seed and the
    /// epoch's number, written out (not the standard library's `shuffle`, whose draws may change
    /// between releases) so that a checkpoint resumes the same order anywhere.
    private static func order(epoch: Int, count: Int, seed: UInt64) -> [Int] {
        var generator = SeededGenerator(seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
        var order = Array(0..<count)
        for index in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(index, Int(generator.next() % UInt64(index + 1)))
        }
        return order
    }
}
