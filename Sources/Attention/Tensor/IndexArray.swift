/// A dense, row-major array of `Int` indices with a shape: what ``Tensor/argmax(alongAxis:keepingDimensions:)``
/// and ``Tensor/argmin(alongAxis:keepingDimensions:)`` return, and what ``Embedding`` and
/// ``crossEntropy(logits:targets:ignoreIndex:labelSmoothing:reduction:)`` take (token ids, class
/// targets).
///
/// Indices are exact whatever their size (a `Float` tensor would round indices above 2^24).
///
/// ```swift
/// let scores = try Tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
/// let best = try scores.argmax(alongAxis: -1)
/// print(best.shape, best.indices)   // [2] [1, 0]
/// ```
public struct IndexArray: Sendable, Hashable, CustomStringConvertible {
    /// The size of each dimension, outermost first (`[]` for a single index).
    public let shape: [Int]

    /// The indices in row-major order.
    public let indices: [Int]

    /// An array of `indices` with `shape`; the caller has checked that the counts agree.
    init(checkedShape shape: [Int], indices: [Int]) {
        self.shape = shape
        self.indices = indices
    }

    /// An array of `indices`, in row-major order, with `shape`.
    ///
    /// ```swift
    /// let tokens = try IndexArray(shape: [2, 3], indices: [101, 7592, 102, 101, 2088, 102])
    /// let classes = IndexArray([3, 0, 2])
    /// ```
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"indices"`) unless the product of `shape` (each
    ///   dimension at least 0) is `indices.count`.
    public init(shape: [Int], indices: [Int]) throws {
        let count = try elementCount(of: shape, argument: "shape")
        guard count == indices.count else {
            throw AttentionError.shapeMismatch(
                argument: "indices", expected: "\(count) indices for shape \(shape)", actual: [indices.count])
        }
        self.init(checkedShape: shape, indices: indices)
    }

    /// A one-dimensional array of `indices`.
    public init(_ indices: [Int]) {
        self.init(checkedShape: [indices.count], indices: indices)
    }

    /// The number of indices: the product of the dimensions.
    public var count: Int { indices.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The indices nested as the shape says, aligned, as ``Tensor/description`` prints elements:
    /// `IndexArray([[1, 0],` / `            [2, 2]])`.
    public var description: String {
        let body = nestedDescription(
            shape: shape, count: indices.count, indent: "IndexArray(".count, render: { $0.map { String(indices[$0]) } })
        let shapeNote = indices.isEmpty && rank != 1 ? ", shape: \(shape)" : ""
        return "IndexArray(\(body)\(shapeNote))"
    }
}
