internal import CAttention

/// How a projection's weight is stored.
enum WeightLayout {
    /// `(outputs, inputs)`: PyTorch and Equinox `Linear` (`y = x Wᵀ`).
    case outputsByInputs
    /// `(inputs, outputs)`: the tutorial's `W_query` and Flax's `DenseGeneral` kernel (`y = x W`).
    case inputsByOutputs
}

/// `c = a·b (+ bias)` or, with `accumulate`, `c += a·b (+ bias)`: the one call path to
/// `attn_matmul`. `a` is `(m, k)` with row stride `lda`, or holds `aᵀ` as `(k, m)` when
/// `aTransposed` (a weight gradient `xᵀ·dy`); `b` is `(k, n)` with row stride `ldb`, or
/// holds `bᵀ` as `(n, k)` when `bTransposed`, its elements of `bType` (the weights may be half
/// precision; `a`, `c` and `bias` are `Float`); `c` is `(m, n)` with row stride `ldc`; `bias` holds
/// `n` floats; `products` applies to a `bfloat16` `b` only. The caller keeps the memory alive and
/// has checked the sizes.
///
/// - Parameter context: describes the operands in a kernel failure's error.
func multiplyMatrices(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>?, lda: Int, aTransposed: Bool = false,
    b: UnsafeRawPointer?, ldb: Int, bTransposed: Bool, bType: Tensor.DType = .float32,
    c: UnsafeMutablePointer<Float>?, ldc: Int,
    bias: UnsafePointer<Float>? = nil, accumulate: Bool = false, products: MatrixProducts = .float32,
    context: @autoclosure () -> String
) throws(AttentionError) {
    if m == 0 || n == 0 { return }
    var params = attn_matmul_params_default()
    (params.m, params.n, params.k) = (Int64(m), Int64(n), Int64(k))
    (params.a, params.lda, params.a_transposed) = (a, Int64(lda), aTransposed ? 1 : 0)
    (params.b, params.ldb, params.b_transposed) = (b, Int64(ldb), bTransposed ? 1 : 0)
    params.b_dtype = bType.kernelValue
    (params.c, params.ldc) = (c, Int64(ldc))
    params.bias = bias
    params.accumulate = accumulate ? 1 : 0
    if bType == .bfloat16 && products == .bfloat16 { params.flags = UInt64(ATTN_MATMUL_BF16_PRODUCTS.rawValue) }
    let status = attn_matmul(&params)
    if let error = AttentionError(status: status, function: "attn_matmul", context: context()) {
        throw error
    }
}

/// `x W (+ bias)` over the last dimension of `input`: one matmul over `input` read as
/// `(rows, inputs)`, whatever its leading dimensions, into a new tensor of `outputShape` read as
/// `(rows, outputs)`. `weight` holds `(outputs, inputs)` or `(inputs, outputs)` as `layout` says;
/// `weightRows` selects a block of the outputs of a packed weight (rows of an `(outputs, inputs)`
/// weight, columns of an `(inputs, outputs)` one), and
/// the bias is read from entry `biasOffset` of `bias`.
///
/// The weight may be `float32`, `float16` or `bfloat16` (read in place, widened exactly, or with
/// `products` `.bfloat16` and a `bfloat16` weight, multiplied by the input rounded to bf16); the
/// input and the bias must be `float32`, and so is the result. With `residual` (of the output's
/// shape: the caller checks) the result is the product plus it, summed by the kernel.
///
/// The callers check the shapes; an empty result is returned as it is.
///
/// - Throws: `AttentionError.unsupportedDType` naming `inputArgument`, `biasArgument` or
///   `"residual"` for a half-precision input, bias or residual; `AttentionError` from the allocation (argument `"input"`) or
///   mapped from the kernel's status.
func matrixMultiply(
    _ input: Tensor, inputs: Int, weight: Tensor, layout: WeightLayout, outputs: Int, bias: Tensor?,
    weightRows: Range<Int>? = nil, biasOffset: Int = 0, outputShape: [Int], products: MatrixProducts = .float32,
    residual: Tensor? = nil,
    inputArgument: @autoclosure () -> String = "input", biasArgument: @autoclosure () -> String = "bias",
    context: @autoclosure () -> String
) throws(AttentionError) -> Tensor {
    try input.requireFloat32(
        inputArgument(), reason: "matrix multiplies take float32 activations (only the weights may be half precision)")
    try bias?.requireFloat32(biasArgument(), reason: "a matrix multiply's bias is float32, whatever the weight's dtype")
    try residual?.requireFloat32("residual", reason: "a residual added to a matrix product is float32")
    let rows = inputs == 0 ? 0 : input.count / inputs
    let output = try Tensor(uninitializedShape: outputShape, argument: "input")
    if let residual, output.count > 0 {
        // The product is accumulated onto the residual's values, copied into the result.
        withExtendedLifetime(residual) {
            output.storage.bytes.baseAddress!.copyMemory(
                from: residual.storage.bytes.baseAddress!, byteCount: output.count * MemoryLayout<Float>.size)
        }
    }
    // A block of outputs: rows of an (outputs, inputs) weight, columns of an (inputs, outputs) one.
    let first = weightRows?.lowerBound ?? 0
    let weightOutputs = inputs == 0 ? 0 : weight.count / inputs
    let firstElement = layout == .outputsByInputs ? first * inputs : first
    try withExtendedLifetime((input, weight, bias, output)) { () throws(AttentionError) in
        try multiplyMatrices(
            m: rows, n: outputs, k: inputs,
            a: input.storage.buffer.baseAddress.map { UnsafePointer($0) }, lda: inputs,
            b: weight.storage.bytes.baseAddress.map { UnsafeRawPointer($0 + firstElement * weight.dtype.byteSize) },
            ldb: layout == .outputsByInputs ? inputs : weightOutputs, bTransposed: layout == .outputsByInputs,
            bType: weight.dtype,
            c: output.storage.buffer.baseAddress, ldc: outputs,
            bias: bias?.storage.buffer.baseAddress.map { UnsafePointer($0 + biasOffset) }, accumulate: residual != nil,
            products: products, context: context())
    }
    return output
}
