internal import CAttention

extension Tensor.DType {
    /// The kernels' spelling of the element type.
    var kernelValue: attn_dtype {
        switch self {
        case .float32: ATTN_DTYPE_F32
        case .float16: ATTN_DTYPE_F16
        case .bfloat16: ATTN_DTYPE_BF16
        }
    }
}

/// Converts `count` elements of `sourceType` at `source` to `destinationType` at `destination`
/// (`attn_convert`: exact widening, narrowing to nearest even). The buffers must not overlap.
///
/// - Throws: `AttentionError` mapped from the kernel's status.
func convertElements(
    from source: UnsafeRawPointer, _ sourceType: Tensor.DType,
    to destination: UnsafeMutableRawPointer, _ destinationType: Tensor.DType, count: Int
) throws(AttentionError) {
    let status = attn_convert(destination, destinationType.kernelValue, source, sourceType.kernelValue, Int64(count))
    if let error = AttentionError(
        status: status, function: "attn_convert", context: "\(count) elements from \(sourceType) to \(destinationType)")
    {
        throw error
    }
}
