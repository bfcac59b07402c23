/// Sequences of token ids packed end to end, without padding: the input of ``BertModel``.
///
/// The encoder's dense layers run on all ``tokenCount`` tokens as one matrix and its attention
/// runs per sequence, so no work is spent on padding whatever the lengths.
///
/// ```swift
/// let batch = try TokenBatch([[101, 7592, 102], [101, 2088, 999, 102]])
/// batch.tokenCount         // 7
/// batch.ranges             // [0..<3, 3..<7]
/// ```
public struct TokenBatch: Sendable, Equatable, Hashable {
    /// Every sequence's ids, one after the other.
    public let tokenIDs: [Int]
    /// Each sequence's rows in ``tokenIDs`` and in the encoder's output.
    public let ranges: [Range<Int>]

    /// Packs sequences of ids.
    ///
    /// - Throws: `ModelError.invalidArgument` (`"sequences[i]"`) for an empty sequence.
    public init(_ sequences: [[Int]]) throws(ModelError) {
        var ids: [Int] = []
        ids.reserveCapacity(sequences.reduce(0) { $0 + $1.count })
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(sequences.count)
        for (index, sequence) in sequences.enumerated() {
            guard !sequence.isEmpty else {
                throw .invalidArgument(argument: "sequences[\(index)]", reason: "is empty; a sequence needs at least one token")
            }
            ranges.append(ids.count..<(ids.count + sequence.count))
            ids.append(contentsOf: sequence)
        }
        self.tokenIDs = ids
        self.ranges = ranges
    }

    /// The number of sequences.
    public var sequenceCount: Int { ranges.count }

    /// The number of tokens of all sequences together.
    public var tokenCount: Int { tokenIDs.count }

    /// The longest sequence's length (0 for an empty batch).
    public var longestSequence: Int { ranges.map(\.count).max() ?? 0 }

    /// The ids of sequence `index`.
    public func sequence(_ index: Int) -> ArraySlice<Int> { tokenIDs[ranges[index]] }
}
