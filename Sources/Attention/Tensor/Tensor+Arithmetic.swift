// The arithmetic operators: `+ - * /` between tensors (NumPy broadcasting) and with `Float` scalars
// on either side, unary minus, and the compound assignments. They throw instead of trapping, so an
// expression is written `try a + b * 2`. Every one is computed by `combined(with:_:names:)` or
// `combined(withScalar:_:scalarFirst:argument:)` (Tensor+Broadcasting.swift).
//
// Element types: `float32` only. A half-precision operand throws `AttentionError.unsupportedDType`
// naming it, as every computing operation of `Tensor` does; convert with `converted(to:)`.

extension Tensor {
    /// The element-wise sum with NumPy broadcasting (shapes aligned on the right; a missing or
    /// size-1 dimension is repeated).
    ///
    /// ```swift
    /// let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
    /// let bias: Tensor = [10, 20, 30]
    /// print(try x + bias)   // Tensor([[11, 22, 33],
    ///                       //         [14, 25, 36]])
    /// ```
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"lhs"`, `"rhs"`) unless both are `float32`;
    ///   `.shapeMismatch` (argument `"rhs"`, expected naming the shape of `lhs`) when the shapes do
    ///   not broadcast; `.overflow` or `.outOfMemory` for the result.
    public static func + (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        try lhs.combined(with: rhs, Addition.self, names: ("lhs", "rhs"))
    }

    /// The element-wise difference, broadcasting as ``+(_:_:)-(Tensor,Tensor)``.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Tensor)``.
    public static func - (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        try lhs.combined(with: rhs, Subtraction.self, names: ("lhs", "rhs"))
    }

    /// The element-wise product, broadcasting as ``+(_:_:)-(Tensor,Tensor)``.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Tensor)``.
    public static func * (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        try lhs.combined(with: rhs, Multiplication.self, names: ("lhs", "rhs"))
    }

    /// The element-wise quotient (IEEE: `x / 0` is `±inf`, `0 / 0` NaN), broadcasting as
    /// ``+(_:_:)-(Tensor,Tensor)``.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Tensor)``.
    public static func / (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        try lhs.combined(with: rhs, Division.self, names: ("lhs", "rhs"))
    }

    /// Every element plus `rhs`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"lhs"`) unless `lhs` is `float32`;
    ///   `.outOfMemory` for the result.
    public static func + (lhs: Tensor, rhs: Float) throws -> Tensor {
        try lhs.combined(withScalar: rhs, Addition.self, scalarFirst: false, argument: "lhs")
    }

    /// Every element minus `rhs`.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Float)``.
    public static func - (lhs: Tensor, rhs: Float) throws -> Tensor {
        try lhs.combined(withScalar: rhs, Subtraction.self, scalarFirst: false, argument: "lhs")
    }

    /// Every element times `rhs` (``scaled(by:)``).
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Float)``.
    public static func * (lhs: Tensor, rhs: Float) throws -> Tensor {
        try lhs.combined(withScalar: rhs, Multiplication.self, scalarFirst: false, argument: "lhs")
    }

    /// Every element divided by `rhs`.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Float)``.
    public static func / (lhs: Tensor, rhs: Float) throws -> Tensor {
        try lhs.combined(withScalar: rhs, Division.self, scalarFirst: false, argument: "lhs")
    }

    /// `lhs` plus every element.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"rhs"`) unless `rhs` is `float32`;
    ///   `.outOfMemory` for the result.
    public static func + (lhs: Float, rhs: Tensor) throws -> Tensor {
        try rhs.combined(withScalar: lhs, Addition.self, scalarFirst: true, argument: "rhs")
    }

    /// `lhs` minus every element.
    ///
    /// - Throws: as ``+(_:_:)-(Float,Tensor)``.
    public static func - (lhs: Float, rhs: Tensor) throws -> Tensor {
        try rhs.combined(withScalar: lhs, Subtraction.self, scalarFirst: true, argument: "rhs")
    }

    /// `lhs` times every element.
    ///
    /// - Throws: as ``+(_:_:)-(Float,Tensor)``.
    public static func * (lhs: Float, rhs: Tensor) throws -> Tensor {
        try rhs.combined(withScalar: lhs, Multiplication.self, scalarFirst: true, argument: "rhs")
    }

    /// `lhs` divided by every element.
    ///
    /// - Throws: as ``+(_:_:)-(Float,Tensor)``.
    public static func / (lhs: Float, rhs: Tensor) throws -> Tensor {
        try rhs.combined(withScalar: lhs, Division.self, scalarFirst: true, argument: "rhs")
    }

    /// Every element negated (`0 - x` would turn `0` into `+0`; this gives `-0`).
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"operand"`) unless the tensor is `float32`;
    ///   `.outOfMemory` for the result.
    public static prefix func - (operand: Tensor) throws -> Tensor {
        try operand.combined(withScalar: -1, Multiplication.self, scalarFirst: false, argument: "operand")
    }
}
