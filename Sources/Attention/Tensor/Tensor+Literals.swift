// Tensors from literals, nested arrays and ranges: `[1, 2, 3]`, `Tensor([[1, 2], [3, 4]])`,
// `Tensor(arange: 0..<10)`, `Tensor(eye: 3)`.
//
// An array literal is one-dimensional: its elements are `Float`s, so a nested literal does not
// compile as a `Tensor` (and a ragged one can never be accepted silently). Nested arrays go through
// the throwing ``Tensor/init(_:)``, which checks that every row has the first row's length.

extension Tensor: ExpressibleByArrayLiteral {
    /// A rank-1 `float32` tensor of the literal's elements: `let bias: Tensor = [0.5, -1, 2]`
    /// (`[]` gives shape `[0]`).
    ///
    /// A literal cannot throw: like `Array`'s, this stops the program only if the few bytes it
    /// needs cannot be allocated.
    public init(arrayLiteral elements: Float...) {
        do {
            try self.init(shape: [elements.count], scalars: elements)
        } catch {
            fatalError("out of memory for an array literal of \(elements.count) elements: \(error)")
        }
    }

    /// A rank-2 `float32` tensor of the rows, each row one row of the result: shape
    /// `[rows.count, rows[0].count]` (`[0, 0]` for no rows).
    ///
    /// ```swift
    /// let m = try Tensor([[1, 2, 3], [4, 5, 6]])    // shape [2, 3]
    /// ```
    ///
    /// - Throws: `AttentionError.shapeMismatch` (argument `"rows[i]"`, its length as the actual
    ///   shape) for a row whose length differs from the first's; `.overflow` or `.outOfMemory`.
    public init(_ rows: [[Float]]) throws {
        let width = rows.first?.count ?? 0
        for (index, row) in rows.enumerated() where row.count != width {
            throw AttentionError.shapeMismatch(
                argument: "rows[\(index)]", expected: "\(width) elements, the length of rows[0]", actual: [row.count])
        }
        let count = try elementCount(of: [rows.count, width], argument: "rows")
        var result = try Tensor(uninitializedShape: [rows.count, width], argument: "rows")
        if count > 0 {
            result.withUnsafeMutableBufferPointer { out in
                for (index, row) in rows.enumerated() {
                    row.withUnsafeBufferPointer { source in
                        (out.baseAddress! + index * width).initialize(from: source.baseAddress!, count: width)
                    }
                }
            }
        }
        self = result
    }

    /// A rank-1 tensor of the integers in `range`, in order (NumPy's `arange(a, b)`):
    /// `Tensor(arange: 0..<4)` is `[0, 1, 2, 3]`. Integers beyond 2^24 in magnitude are rounded to
    /// `dtype` (to nearest even) as any conversion to `Float` rounds them.
    ///
    /// - Throws: `AttentionError.outOfMemory` when the elements cannot be allocated.
    public init(arange range: Range<Int>, dtype: DType = .float32) throws {
        var result = try Tensor(uninitializedShape: [range.count], argument: "range")
        result.withUnsafeMutableBufferPointer { out in
            for (index, value) in range.enumerated() { out[index] = Float(value) }
        }
        self = try result.converting(to: dtype, argument: "range")
    }

    /// A rank-1 tensor of `start, start + step, ...` up to `stop` excluded (NumPy's
    /// `arange(start, stop, step)`): `ceil((stop - start) / step)` elements (none when that is not
    /// positive), element `i` being `start + i · step` computed in `Double` and rounded once.
    ///
    /// ```swift
    /// let t = try Tensor(arange: 0, to: 1, step: 0.25)    // [0, 0.25, 0.5, 0.75]
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"step"`) for a zero or non-finite step,
    ///   (`"start"`, `"stop"`) for a non-finite bound; `.overflow` when the count does not fit in
    ///   `Int`; `.outOfMemory`.
    public init(arange start: Float, to stop: Float, step: Float = 1, dtype: DType = .float32) throws {
        for (name, value) in [("start", start), ("stop", stop)] where !value.isFinite {
            throw AttentionError.invalidArgument(argument: name, reason: "must be finite, got \(value)")
        }
        guard step.isFinite, step != 0 else {
            throw AttentionError.invalidArgument(argument: "step", reason: "must be finite and non-zero, got \(step)")
        }
        let exact = ((Double(stop) - Double(start)) / Double(step)).rounded(.up)
        guard exact < 0x1p63 else { throw AttentionError.overflow(argument: "step") }
        let count = Swift.max(0, Int(exact))
        var result = try Tensor(uninitializedShape: [count], argument: "step")
        result.withUnsafeMutableBufferPointer { out in
            for index in out.indices { out[index] = Float(Double(start) + Double(index) * Double(step)) }
        }
        self = try result.converting(to: dtype, argument: "step")
    }

    /// The identity matrix: `rows × columns` (square when `columns` is `nil`) with ones on the
    /// diagonal and zeros elsewhere (NumPy's `eye`).
    ///
    /// - Throws: `AttentionError.invalidArgument` for a negative size, `.overflow` when the element
    ///   count does not fit in `Int`, `.outOfMemory`.
    public init(eye rows: Int, columns: Int? = nil, dtype: DType = .float32) throws {
        let columns = columns ?? rows
        var result = try Tensor(zeros: [rows, columns], dtype: dtype)
        for index in 0..<Swift.min(rows, columns) { result[index, index] = 1 }
        self = result
    }
}
