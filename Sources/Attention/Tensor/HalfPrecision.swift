// Exact conversions between `Float` and the 16-bit floating-point formats, by bit manipulation
// (Swift's `Float16` is unavailable on some platforms, e.g. macOS on x86-64), giving the same bits
// as the kernels' `attn_convert` (tested exhaustively against it): the per-element conversions
// of `Tensor`'s accessors and `BFloat16`.

/// The `Float` with the value of an IEEE 754 binary16 number. Exact for every input: normal
/// numbers, subnormals, signed zeros, infinities, and NaN (sign and payload kept, shifted into
/// the upper fraction bits, and quieted as the kernels' `attn_convert` does).
func floatFromHalfBits(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1F
    let fraction = UInt32(bits & 0x03FF)
    switch exponent {
    case 0:
        // Zero or subnormal: fraction × 2^-24, exact in Float (at most 10 significant bits).
        let magnitude = Float(fraction) * 0x1p-24
        return Float(bitPattern: sign | magnitude.bitPattern)
    case 0x1F:
        // Infinity (fraction 0) or NaN (payload in the upper fraction bits).
        if fraction == 0 { return Float(bitPattern: sign | 0x7F80_0000) }
        return Float(bitPattern: sign | 0x7FC0_0000 | fraction << 13)
    default:
        return Float(bitPattern: sign | (exponent + (127 - 15)) << 23 | fraction << 13)
    }
}

/// The binary16 bits nearest to `value`, rounding halfway cases to even (IEEE 754's default, as
/// NumPy, PyTorch and JAX do): values beyond the largest half (65504) that round up overflow to
/// infinity, values below half the smallest subnormal (2^-25) flush to a signed zero. NaN stays NaN
/// with its sign and the upper 10 bits of its payload, quieted.
///
/// ```swift
/// halfBits(from: 1)          // 0x3C00
/// halfBits(from: 65520)      // 0x7C00, infinity (the tie rounds to even, up)
/// halfBits(from: 0x1p-25)    // 0x0000 (a tie with 0 and 2^-24; 0 is even)
/// ```
func halfBits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF)
    let fraction = bits & 0x007F_FFFF
    if exponent == 0xFF {
        if fraction == 0 { return sign | 0x7C00 }
        return sign | 0x7C00 | 0x0200 | UInt16(truncatingIfNeeded: fraction >> 13)
    }
    let halfExponent = exponent - 127 + 15
    if halfExponent >= 0x1F {
        return sign | 0x7C00
    }
    if halfExponent >= 1 {
        // Normal in binary16: drop 13 fraction bits, rounding to nearest even. A carry out of the
        // fraction increments the exponent, which is the correctly rounded result (up to infinity).
        var result = UInt32(halfExponent) << 10 | fraction >> 13
        let remainder = fraction & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && result & 1 == 1) { result += 1 }
        return sign | UInt16(truncatingIfNeeded: result)
    }
    // Subnormal or zero in binary16: the value is significand × 2^(exponent - 150) and the result
    // counts multiples of 2^-24, so shift the significand right by 14 - halfExponent bits.
    // (A Float subnormal, exponent 0, is far below 2^-25 and flushes to zero here.)
    let shift = 14 - halfExponent
    if shift > 24 || exponent == 0 { return sign }
    let significand = fraction | 0x0080_0000
    var result = significand >> UInt32(shift)
    let remainder = significand & ((1 << UInt32(shift)) - 1)
    let halfway: UInt32 = 1 << UInt32(shift - 1)
    if remainder > halfway || (remainder == halfway && result & 1 == 1) { result += 1 }
    return sign | UInt16(truncatingIfNeeded: result)
}

/// The `Float` with the value of a bfloat16 number: its bits are the upper half of the `Float`'s,
/// so the conversion is exact for every input, NaN payloads included.
func floatFromBFloat16Bits(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// The bfloat16 bits nearest to `value`, rounding halfway cases to even (as PyTorch and
/// `ml_dtypes` do, not truncating); values that round past the largest bfloat16 become infinity.
/// NaN stays NaN with its sign and upper payload bits, quieted.
func bfloat16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN {
        return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
    }
    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
}
