// The text of a tensor, as NumPy's and MLX's `repr` print arrays.

extension Tensor: CustomStringConvertible {
    /// The elements nested by dimension, aligned, as `Tensor(...)`:
    ///
    /// ```swift
    /// print(try Tensor([[1, 2], [3, 4]]))
    /// // Tensor([[1, 2],
    /// //         [3, 4]])
    /// print(try Tensor([[0.5, -1], [.nan, .infinity]]).converted(to: .float16))
    /// // Tensor([[ 0.5, -1.0],
    /// //         [ nan,  inf]], dtype: float16)
    /// ```
    ///
    /// - When every finite element is an integer (below 1e16), elements print without a fraction
    ///   (`3`, `-0`); otherwise each is the shortest text that reads back as the same `Float`
    ///   (`0.1`, `1e-05`; half-precision elements as their exact `Float` values).
    ///   NaN, infinities: `nan`, `inf`, `-inf`.
    /// - A rank-0 tensor is its element (`Tensor(3.5)`), an empty one `Tensor([])`, with its
    ///   shape when that is not `[0]`.
    /// - Beyond 1000 elements each axis longer than 6 shows its first and last 3 entries around
    ///   `...`, and the shape is added: only the elements shown are read.
    /// - Rows wrap at 75 columns. A dtype other than `float32` is named at the end.
    public var description: String {
        let body = nestedDescription(shape: shape, count: count, indent: "Tensor(".count) { offsets in
            elementTexts(offsets.map(element(atOffset:)))
        }
        var notes = ""
        if (count == 0 && rank != 1) || count > summaryThreshold { notes += ", shape: \(shape)" }
        if dtype != .float32 { notes += ", dtype: \(dtype)" }
        return "Tensor(\(body)\(notes))"
    }

    /// The element at a row-major offset, widened to `Float`.
    private func element(atOffset offset: Int) -> Float {
        withExtendedLifetime(storage) {
            switch dtype {
            case .float32: storage.buffer[offset]
            case .float16, .bfloat16: dtype.value(ofBitPattern: storage.bitPatterns[offset])
            }
        }
    }

    /// The texts of `values`, as integers when every finite one is integral and below 1e16.
    private func elementTexts(_ values: [Float]) -> [String] {
        let integral = values.allSatisfy { !$0.isFinite || ($0 == $0.rounded() && $0.magnitude < 1e16) }
        return values.map { value in
            if value.isNaN { return "nan" }
            if value.isInfinite { return value < 0 ? "-inf" : "inf" }
            if integral { return value == 0 && value.sign == .minus ? "-0" : String(Int64(value)) }
            return value.description
        }
    }
}
