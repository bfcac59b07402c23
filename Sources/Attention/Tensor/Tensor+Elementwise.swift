#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Android)
import Android
#endif

// Element-wise functions of tensors, as free functions the way the standard library and mlx-swift
// spell them (`exp(x)`, `sqrt(x)`), so they read as the formulas do: `try exp(x - x.max())`. (As
// methods they would hide the C library's `exp`, `log`, ... inside every `extension Tensor`.)
// Each returns a new tensor of the input's shape; IEEE semantics throughout: NaN stays NaN, and the
// values at the edges of each domain are the C library's (log(0) = -inf, log(-1) = NaN,
// sqrt(-1) = NaN, exp(-inf) = 0, exp(inf) = inf).
//
// Element types: `float32` only; a half-precision tensor throws `AttentionError.unsupportedDType`
// (argument "x"), as every computing operation of `Tensor` does.

/// `e` raised to each element (`expf`: within an ulp; overflows to `inf` above 88.7).
///
/// - Throws: `AttentionError.unsupportedDType` (`"x"`) unless `x` is `float32`; `.outOfMemory`.
public func exp(_ x: Tensor) throws -> Tensor {
    try x.mapped { elementExp($0) }
}

/// The natural logarithm of each element: `log(0) = -inf`, `log(x < 0) = NaN`, `log(inf) = inf`.
///
/// - Throws: as ``exp(_:)``.
public func log(_ x: Tensor) throws -> Tensor {
    try x.mapped { elementLog($0) }
}

/// The square root of each element (correctly rounded): `sqrt(-0) = -0`, `sqrt(x < 0) = NaN`.
///
/// - Throws: as ``exp(_:)``.
public func sqrt(_ x: Tensor) throws -> Tensor {
    try x.mapped { $0.squareRoot() }
}

/// The magnitude of each element (the sign bit cleared: `abs(-0) = 0`, NaN stays NaN).
///
/// - Throws: as ``exp(_:)``.
public func abs(_ x: Tensor) throws -> Tensor {
    try x.mapped { $0.magnitude }
}

/// The hyperbolic tangent of each element, by the library's activation kernel (`attn_activate`,
/// 1.6 ulp; `tanh(±inf) = ±1`), as the ``Activation`` layer computes it.
///
/// - Throws: as ``exp(_:)``.
public func tanh(_ x: Tensor) throws -> Tensor {
    try x.requireFloat32("x")
    return try activate(x, kind: .tanh)
}

/// The C library's `expf`, named apart from ``exp(_:)``.
@inline(__always) private func elementExp(_ x: Float) -> Float { expf(x) }

/// The C library's `logf`, named apart from ``log(_:)``.
@inline(__always) private func elementLog(_ x: Float) -> Float { logf(x) }

extension Tensor {
    /// `transform` of every element, into a new tensor of this shape.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"x"`) unless the tensor is `float32`;
    ///   `.outOfMemory` for the result.
    func mapped(_ transform: (Float) -> Float) throws(AttentionError) -> Tensor {
        try requireFloat32("x")
        var result = try Tensor(uninitializedShape: shape, argument: "x")
        result.withUnsafeMutableBufferPointer { out in
            withUnsafeBufferPointer { a in
                for index in out.indices { out[index] = transform(a[index]) }
            }
        }
        return result
    }
}
