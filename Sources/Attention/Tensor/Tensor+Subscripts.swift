// Rows and ranges of rows: `t[i]` and `t[a..<b]` (also `t[a...]` and `t[..<b]`), along the first
// axis, in any dtype.
//
// Each returns a copy: `Tensor` is a value type with copy-on-write storage and no views, so the
// result owns its elements and writing to it never changes `t`. The subscripts throw (`try t[2]`)
// instead of trapping on an index out of range; being read-only (a throwing subscript has no
// setter), they leave the element subscript `t[i, j] = v` as the way to write. Indices are not
// counted from the end: `t[-1]` is out of range, as for `Array`.

extension Tensor {
    /// Row `index` along the first axis: the tensor with that axis removed (`t[i]` in NumPy), a
    /// copy, in this tensor's dtype. A row of a rank-1 tensor is a rank-0 tensor.
    ///
    /// ```swift
    /// let t = try Tensor([[1, 2, 3], [4, 5, 6]])
    /// print(try t[1])          // Tensor([4, 5, 6])
    /// print(try t[1].shape)    // [3]
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (argument `"index"`) for a rank-0 tensor or an
    ///   index outside `0..<shape[0]`.
    public subscript(_ index: Int) -> Tensor {
        get throws {
            guard rank >= 1, index >= 0, index < shape[0] else {
                throw AttentionError.invalidArgument(
                    argument: "index",
                    reason: rank == 0
                        ? "a rank-0 tensor has no rows"
                        : "must be in 0..<\(shape[0]), the rows of shape \(shape), got \(index)")
            }
            return try sliced(index..<(index + 1)).reshaped(Array(shape.dropFirst()))
        }
    }

    /// The rows in `range` along the first axis (`t[a:b]` in NumPy), a copy, in this tensor's dtype;
    /// an empty range gives a tensor with no rows.
    ///
    /// ```swift
    /// let batch = try tokens[0..<8]    // the first 8 rows
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"range"`) for a range outside
    ///   `0...shape[0]`, (`"axis"`) for a rank-0 tensor.
    public subscript(_ range: Range<Int>) -> Tensor {
        get throws { try sliced(range) }
    }

    /// The rows from `range.lowerBound` to the end along the first axis (`t[a:]`), a copy.
    ///
    /// - Throws: as ``subscript(_:)-(Range<Int>)``.
    public subscript(_ range: PartialRangeFrom<Int>) -> Tensor {
        get throws {
            guard rank >= 1 else { return try sliced(0..<0) }  // throws the rank-0 error
            guard range.lowerBound <= shape[0] else {
                throw AttentionError.invalidArgument(
                    argument: "range",
                    reason: "must lie in 0..<\(shape[0]) along axis 0 of shape \(shape), got \(range.lowerBound)...")
            }
            return try sliced(range.lowerBound..<shape[0])
        }
    }

    /// The rows before `range.upperBound` along the first axis (`t[:b]`), a copy.
    ///
    /// - Throws: as ``subscript(_:)-(Range<Int>)``.
    public subscript(_ range: PartialRangeUpTo<Int>) -> Tensor {
        get throws {
            guard range.upperBound >= 0 else {
                throw AttentionError.invalidArgument(
                    argument: "range", reason: "must lie in 0..<\(shape.first ?? 0) along axis 0, got ..<\(range.upperBound)")
            }
            return try sliced(0..<range.upperBound)
        }
    }
}
