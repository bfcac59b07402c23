internal import CAttention

/// How a projection's weight is stored.
enum WeightLayout {
    /// `(outputs, inputs)`: PyTorch and Equinox `Linear` (`y = x Wᵀ`).
    case outputsByInputs
    /// `(inputs, outputs)`: the tutorial's `W_query` and Flax's `DenseGeneral` kernel (`y = x W`).
    case inputsByOutputs
}

/// `x W (+ bias)` row by row: one `attn_matmul` over `input` read as `(rows, inputs)`, whatever
/// its leading dimensions, into a new tensor of `outputShape` read as `(rows, outputs)`.
///
/// The callers check the shapes: `input` holds `rows × inputs` floats, `weight` is
/// `(outputs, inputs)` or `(inputs, outputs)` as `layout` says, `bias` holds `outputs` floats,
/// and `outputShape` holds `rows × outputs` elements. An empty result is returned as it is.
///
/// - Parameter context: describes the operands in a kernel failure's error.
/// - Throws: `AttentionError` from the allocation (argument `"input"`) or mapped from the
///   kernel's status.
func matrixMultiply(
    _ input: Tensor, inputs: Int, weight: Tensor, layout: WeightLayout, outputs: Int, bias: Tensor?,
    outputShape: [Int], context: @autoclosure () -> String
) throws -> Tensor {
    let rows = inputs == 0 ? 0 : input.count / inputs
    var output = try Tensor(uninitializedShape: outputShape, argument: "input")
    if rows == 0 || outputs == 0 { return output }
    let status = output.withUnsafeMutableBufferPointer { out in
        input.withUnsafeBufferPointer { a in
            weight.withUnsafeBufferPointer { w in
                withOptionalBuffer(bias) { b in
                    var params = attn_matmul_params()
                    params.m = Int64(rows)
                    params.n = Int64(outputs)
                    params.k = Int64(inputs)
                    params.a = a.baseAddress
                    params.lda = Int64(inputs)
                    params.b = w.baseAddress
                    params.b_transposed = layout == .outputsByInputs ? 1 : 0
                    params.ldb = Int64(layout == .outputsByInputs ? inputs : outputs)
                    params.c = out.baseAddress
                    params.ldc = Int64(outputs)
                    params.bias = b
                    params.accumulate = 0
                    params.num_threads = 0
                    return attn_matmul(&params)
                }
            }
        }
    }
    if let error = AttentionError(status: status, function: "attn_matmul", context: context()) {
        throw error
    }
    return output
}

/// Calls `body` with the base address of an optional tensor's elements, or `nil`.
func withOptionalBuffer<Result>(_ tensor: Tensor?, _ body: (UnsafePointer<Float>?) -> Result) -> Result {
    guard let tensor else { return body(nil) }
    return tensor.withUnsafeBufferPointer { body($0.baseAddress) }
}
