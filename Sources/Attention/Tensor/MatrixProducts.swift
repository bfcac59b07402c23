/// How a matrix product with `bfloat16` weights multiplies its `float32` input by them.
///
/// ```swift
/// let layer = try Linear(weight: weight.converted(to: .bfloat16))
/// let exact = try layer(x)                            // x times the weights widened: f32 arithmetic
/// let fast = try layer(x, products: .bfloat16)        // x rounded to bf16 first, as PyTorch's bf16
/// ```
///
/// Weights of any other type are always multiplied in `float32`: the choice applies to `bfloat16`
/// weights only.
public enum MatrixProducts: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The input times each weight widened exactly: the result of the `float32` product.
    case float32
    /// The input rounded to `bfloat16` (nearest even) before it is multiplied, as frameworks
    /// running a bf16 model do, so each product is of two `bfloat16` values. With more than 32
    /// rows, on a CPU with AVX512_BF16 and ``AttentionBackend/bfloat16Products`` `.native` (its
    /// default there), the products are formed by VDPBF16PS, about twice as fast as `float32`;
    /// elsewhere they are summed in `float32` at `float32` speed. Each input element moves by at
    /// most 2⁻⁹ of itself.
    case bfloat16

    /// `"float32"` or `"bfloat16"`.
    public var description: String { rawValue }
}
