/// A dense, row-major array of `Int` indices with a shape: what ``Tensor/argmax(alongAxis:keepingDimensions:)``
/// and ``Tensor/argmin(alongAxis:keepingDimensions:)`` return.
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
    init(shape: [Int], indices: [Int]) {
        self.shape = shape
        self.indices = indices
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
