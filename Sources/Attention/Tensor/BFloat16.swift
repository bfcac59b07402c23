/// A bfloat16 number: the upper 16 bits of a `Float` (sign, 8 exponent bits, 7 fraction bits),
/// the element of a `.bfloat16` ``Tensor`` and of PyTorch's `torch.bfloat16`.
///
/// A storage type, not an arithmetic one: convert to `Float` to compute. Both conversions are
/// those of the kernels: widening is exact, narrowing rounds to nearest even (NaN stays NaN,
/// quieted; values past the largest finite bfloat16 become infinity).
///
/// ```swift
/// let x = BFloat16(1.00390625)      // rounds to 1 (a tie, to even)
/// print(Float(x), x.bitPattern)     // 1.0 16256
/// ```
public struct BFloat16: Sendable, Equatable, CustomStringConvertible {
    /// The 16 bits: a `Float`'s upper half.
    public var bitPattern: UInt16

    /// The bfloat16 number with these bits.
    public init(bitPattern: UInt16) {
        self.bitPattern = bitPattern
    }

    /// The bfloat16 number nearest to `value`, ties to even.
    public init(_ value: Float) {
        bitPattern = bfloat16Bits(from: value)
    }

    /// Equal as numbers: `-0 == 0`, and NaN equals nothing (as `Float`'s `==`).
    public static func == (lhs: BFloat16, rhs: BFloat16) -> Bool {
        Float(lhs) == Float(rhs)
    }

    /// The value as `Float` prints it.
    public var description: String { Float(self).description }
}

extension Float {
    /// The value of a bfloat16 number, exactly.
    public init(_ value: BFloat16) {
        self = floatFromBFloat16Bits(value.bitPattern)
    }
}
