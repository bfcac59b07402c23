/// A lookup table of vectors, one row per token: `torch.nn.Embedding`, its `weight` of shape
/// `(count, dimension)`, with the optional `padding_idx` whose row gets no gradient.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let embedding = try Embedding(count: 1000, dimension: 64, paddingIndex: 0, using: &rng)
/// let tokens = try IndexArray(shape: [2, 5], indices: [5, 7, 9, 0, 0, 3, 4, 4, 8, 0])
/// let x = try embedding(tokens)   // (2, 5, 64); the rows of token 0 are zeros
/// ```
public struct Embedding: ParameterizedModule, Equatable {
    /// The table, `(count, dimension)`: row `i` is token `i`'s vector.
    public var weight: Tensor

    /// The token whose row is excluded from the gradient (and zeroed at initialisation), as
    /// torch's `padding_idx` (a negative index counts from the end there; here it is given in
    /// `0..<count`), or `nil`.
    public let paddingIndex: Int?

    /// The number of rows (tokens).
    public var count: Int { weight.rank == 2 ? weight.shape[0] : 0 }

    /// The size of each vector.
    public var dimension: Int { weight.rank == 2 ? weight.shape[1] : 0 }

    /// A table initialised as PyTorch's, from `N(0, 1)` with the padding row zeroed.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"count"`, `"dimension"`, `"paddingIndex"`)
    ///   for a size below 1 or a padding index outside `0..<count`.
    public init(count: Int, dimension: Int, paddingIndex: Int? = nil, using generator: inout some RandomNumberGenerator) throws {
        for (name, size) in [("count", count), ("dimension", dimension)] where size < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        var weight = try Tensor.normal([count, dimension], standardDeviation: 1, using: &generator)
        if let paddingIndex, (0..<count).contains(paddingIndex) {
            weight.withUnsafeMutableBufferPointer { $0[(paddingIndex * dimension)..<((paddingIndex + 1) * dimension)].initialize(repeating: 0) }
        }
        try self.init(weight: weight, paddingIndex: paddingIndex)
    }

    /// A table from its weight, `(count, dimension)`, kept as it is (a checkpoint's padding row
    /// need not be zero).
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"weight"`) unless it is 2-D with both sizes
    ///   at least 1; `.invalidArgument` (`"paddingIndex"`) outside `0..<count`.
    public init(weight: Tensor, paddingIndex: Int? = nil) throws {
        (self.weight, self.paddingIndex) = (weight, paddingIndex)
        try validate()
    }

    private func validate() throws(AttentionError) {
        guard weight.rank == 2, weight.shape[0] >= 1, weight.shape[1] >= 1 else {
            throw .shapeMismatch(argument: "weight", expected: "(count, dimension), both at least 1", actual: weight.shape)
        }
        if let paddingIndex, !(0..<count).contains(paddingIndex) {
            throw .invalidArgument(argument: "paddingIndex", reason: "must be in 0..<\(count), got \(paddingIndex)")
        }
    }

    /// `weight`.
    public var parameterPaths: [ParameterPath<Embedding>] { [ParameterPath("weight", \.weight)] }

    /// Throws unless every index is a row of the table.
    func checkIndices(_ input: IndexArray) throws(AttentionError) {
        if let bad = input.indices.firstIndex(where: { !(0..<count).contains($0) }) {
            throw .invalidArgument(argument: "input[\(bad)]", reason: "\(input.indices[bad]) is not in 0..<\(count)")
        }
    }
}

extension Embedding: Layer {
    /// The rows of the tokens of `input`: shape `input.shape + [dimension]`, in the weight's
    /// dtype converted to `float32`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"input[i]"`) for an index outside
    ///   `0..<count`; `.shapeMismatch` or `.invalidArgument` when the stored properties were set
    ///   to invalid values.
    public func callAsFunction(_ input: IndexArray) throws -> Tensor {
        try validate()
        try checkIndices(input)
        let table = try weight.converted(to: .float32)
        let d = dimension
        var output = try Tensor(uninitializedShape: input.shape + [d], argument: "input")
        table.withUnsafeBufferPointer { rows in
            output.withUnsafeMutableBufferPointer { out in
                for (position, token) in input.indices.enumerated() {
                    _ = out[(position * d)..<((position + 1) * d)].update(fromContentsOf: rows[(token * d)..<((token + 1) * d)])
                }
            }
        }
        return output
    }
}
