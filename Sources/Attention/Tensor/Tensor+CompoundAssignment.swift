// The compound assignments `+= -= *= /=` of tensors: `lhs = try lhs op rhs`, with the operators'
// broadcasting and errors (Tensor+Arithmetic.swift). The result may be larger than `lhs` when `rhs`
// broadcasts it; on an error `lhs` is left unchanged.

extension Tensor {
    /// `lhs = lhs + rhs`, broadcasting as ``+(_:_:)-(Tensor,Tensor)``.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Tensor)``; `lhs` is then unchanged.
    public static func += (lhs: inout Tensor, rhs: Tensor) throws {
        lhs = try lhs + rhs
    }

    /// `lhs = lhs - rhs`, broadcasting as ``+(_:_:)-(Tensor,Tensor)``.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Tensor)``; `lhs` is then unchanged.
    public static func -= (lhs: inout Tensor, rhs: Tensor) throws {
        lhs = try lhs - rhs
    }

    /// `lhs = lhs * rhs`, broadcasting as ``+(_:_:)-(Tensor,Tensor)``.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Tensor)``; `lhs` is then unchanged.
    public static func *= (lhs: inout Tensor, rhs: Tensor) throws {
        lhs = try lhs * rhs
    }

    /// `lhs = lhs / rhs`, broadcasting as ``+(_:_:)-(Tensor,Tensor)``.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Tensor)``; `lhs` is then unchanged.
    public static func /= (lhs: inout Tensor, rhs: Tensor) throws {
        lhs = try lhs / rhs
    }

    /// `lhs = lhs + rhs` for a scalar `rhs`.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Float)``; `lhs` is then unchanged.
    public static func += (lhs: inout Tensor, rhs: Float) throws {
        lhs = try lhs + rhs
    }

    /// `lhs = lhs - rhs` for a scalar `rhs`.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Float)``; `lhs` is then unchanged.
    public static func -= (lhs: inout Tensor, rhs: Float) throws {
        lhs = try lhs - rhs
    }

    /// `lhs = lhs * rhs` for a scalar `rhs`.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Float)``; `lhs` is then unchanged.
    public static func *= (lhs: inout Tensor, rhs: Float) throws {
        lhs = try lhs * rhs
    }

    /// `lhs = lhs / rhs` for a scalar `rhs`.
    ///
    /// - Throws: as ``+(_:_:)-(Tensor,Float)``; `lhs` is then unchanged.
    public static func /= (lhs: inout Tensor, rhs: Float) throws {
        lhs = try lhs / rhs
    }
}
