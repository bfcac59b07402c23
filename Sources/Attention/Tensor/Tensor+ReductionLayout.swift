// How a reduction reads a tensor, and the two paths computing it (the rules are in
// Tensor+Reductions.swift): a tensor reduced along an axis is (outer, length, inner) in row-major
// order; with inner 1 the lines are contiguous rows for attn_reduce_rows, otherwise a loop here reads
// every element once in storage order, `inner` lines at a time.

/// The reduced tensor as (outer, length, inner), the result's shape, and where the reduction is
/// (`"along axis 1 of shape [3, 0]"`) for messages.
struct ReductionLayout {
    var outer: Int, length: Int, inner: Int
    var resultShape: [Int]
    var place: String
}

extension Tensor {
    /// The layout of a reduction along `axis` (all axes, the tensor as one row, when `nil`).
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"axis"`) for an axis outside `-rank..<rank`.
    func reductionLayout(axis: Int?, keepingDimensions: Bool) throws(AttentionError) -> ReductionLayout {
        guard let axis else {
            return ReductionLayout(
                outer: 1, length: count, inner: 1, resultShape: keepingDimensions ? Array(repeating: 1, count: rank) : [],
                place: "over all axes of shape \(shape)")
        }
        let a = try normalizedAxis(axis, argument: "axis")
        var resultShape = shape
        if keepingDimensions { resultShape[a] = 1 } else { resultShape.remove(at: a) }
        // Without elements the other factors are never used (and their products may not fit in Int).
        let outer = count == 0 ? 0 : shape[..<a].reduce(1, *)
        let inner = count == 0 ? 0 : shape[(a + 1)...].reduce(1, *)
        return ReductionLayout(
            outer: outer, length: shape[a], inner: inner, resultShape: resultShape,
            place: "along axis \(a) of shape \(shape)")
    }

    /// The values of a reduction, as a new `float32` tensor of the layout's result shape.
    func reducedValues(_ kind: KernelReduction, axis: Int?, keepingDimensions: Bool) throws(AttentionError) -> Tensor {
        try requireFloat32("self")
        let layout = try reductionLayout(axis: axis, keepingDimensions: keepingDimensions)
        if layout.length == 0 {
            if kind == .max || kind == .min { throw Self.emptyReduction(kind, layout) }
            return try Tensor(uninitializedShape: layout.resultShape, argument: "self").filled(with: kind == .sum ? 0 : .nan)
        }
        let result = try Tensor(uninitializedShape: layout.resultShape, argument: "self")
        if result.count == 0 { return result }
        try withExtendedLifetime((self, result)) { () throws(AttentionError) in
            let x = UnsafePointer(storage.buffer.baseAddress!), out = result.storage.buffer.baseAddress!
            try Self.reduce(x, layout, kind, values: out, indices: nil, context: "\(kind) \(layout.place)")
        }
        return result
    }

    /// The indices of a reduction's extrema (`kind` `.max` or `.min`), of the layout's result shape.
    func reducedIndices(_ kind: KernelReduction, axis: Int?, keepingDimensions: Bool) throws(AttentionError) -> IndexArray {
        try requireFloat32("self")
        let layout = try reductionLayout(axis: axis, keepingDimensions: keepingDimensions)
        if layout.length == 0 { throw Self.emptyReduction(kind, layout) }
        let resultCount = try elementCount(of: layout.resultShape, argument: "self")
        try checkAllocatable(resultCount, of: Int64.self, argument: "self")
        var wide = [Int64](repeating: 0, count: resultCount)
        if resultCount > 0 {
            try wide.withUnsafeMutableBufferPointer { indices throws(AttentionError) in
                try withExtendedLifetime(self) { () throws(AttentionError) in
                    try Self.reduce(
                        UnsafePointer(storage.buffer.baseAddress!), layout, kind, values: nil,
                        indices: indices.baseAddress, context: "arg\(kind) \(layout.place)")
                }
            }
        }
        try checkAllocatable(resultCount, of: Int.self, argument: "self")
        return IndexArray(checkedShape: layout.resultShape, indices: wide.map { Int($0) })
    }

    /// The error for a maximum or minimum of no elements (NumPy: "zero-size array to reduction
    /// operation maximum which has no identity").
    private static func emptyReduction(_ kind: KernelReduction, _ layout: ReductionLayout) -> AttentionError {
        .invalidArgument(
            argument: "axis",
            reason: "the \(kind) \(layout.place) is undefined: there are no elements to take it of")
    }

    /// Reduces the (outer, length, inner) elements at `x` (at least one of each) into `values`
    /// and/or `indices`, (outer, inner) each: in the kernel for inner 1, else by `reduceStrided`.
    private static func reduce(
        _ x: UnsafePointer<Float>, _ layout: ReductionLayout, _ kind: KernelReduction,
        values: UnsafeMutablePointer<Float>?, indices: UnsafeMutablePointer<Int64>?, context: @autoclosure () -> String
    ) throws(AttentionError) {
        if layout.inner == 1 {
            try reduceRows(
                x, rows: layout.outer, length: layout.length, reduction: kind, values: values, indices: indices,
                context: context())
        } else {
            try reduceStrided(x, layout, kind, values: values, indices: indices)
        }
    }
}
