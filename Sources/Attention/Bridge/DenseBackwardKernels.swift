internal import CAttention

// The backward passes of the dense kernels (attn_*_backward, attn_sum_columns), each called from
// exactly one place here, in the terms of DenseKernels.swift; the layers' pullbacks map their own
// types onto these.

/// What a layer norm's backward pass needs of its forward: each row's mean (0 for RMS norm) and
/// `1/√(variance + ε)`, as `attn_layer_norm` saved them, shaped as the input without its last
/// dimension.
struct LayerNormStatistics: Sendable {
    var mean: Tensor
    var reciprocalDeviation: Tensor

    /// Uninitialised statistics for the rows of `input` (the kernel writes them).
    init(rowsOf input: Tensor) throws(AttentionError) {
        let shape = Array(input.shape.dropLast())
        mean = try Tensor(uninitializedShape: shape, argument: "input")
        reciprocalDeviation = try Tensor(uninitializedShape: shape, argument: "input")
    }
}

/// The gradients of a layer norm (or RMS norm) of rows of `size` (`attn_layer_norm_backward`):
/// the input's, and the weight's and the bias's (each when the norm has it), summed over the rows. The caller has checked the shapes.
func layerNormBackward(
    _ outputGradient: Tensor, input: Tensor, size: Int, weight: Tensor?, hasBias: Bool, statistics: RowStatistics,
    rowStatistics saved: LayerNormStatistics
) throws(AttentionError) -> (input: Tensor, weight: Tensor?, bias: Tensor?) {
    let dx = try Tensor(uninitializedShape: input.shape, argument: "input")
    let dWeight = weight == nil ? nil : try Tensor(uninitializedShape: [size], argument: "weight").filled(with: 0)
    let dBias = hasBias ? try Tensor(uninitializedShape: [size], argument: "bias").filled(with: 0) : nil
    let rows = input.count / size
    if rows == 0 { return (dx, dWeight, dBias) }
    var params = attn_layer_norm_backward_params_default()
    (params.rows, params.n) = (Int64(rows), Int64(size))
    (params.ld_dx, params.ld_dout, params.ld_x) = (Int64(size), Int64(size), Int64(size))
    params.variance = statistics.kernelValue
    let status = withExtendedLifetime((outputGradient, input, weight, saved, dx, dWeight, dBias)) {
        params.dx = dx.storage.buffer.baseAddress
        params.dout = UnsafePointer(outputGradient.storage.buffer.baseAddress)
        params.x = UnsafePointer(input.storage.buffer.baseAddress)
        params.mean = UnsafePointer(saved.mean.storage.buffer.baseAddress)
        params.rstd = UnsafePointer(saved.reciprocalDeviation.storage.buffer.baseAddress)
        params.weight = weight.flatMap { UnsafePointer($0.storage.buffer.baseAddress) }
        params.dweight = dWeight?.storage.buffer.baseAddress
        params.dbias = dBias?.storage.buffer.baseAddress
        return attn_layer_norm_backward(&params)
    }
    if let error = AttentionError(
        status: status, function: "attn_layer_norm_backward", context: "input \(input.shape), size \(size)")
    {
        throw error
    }
    return (dx, dWeight, dBias)
}

/// `kind'(input) · outputGradient`, element by element, into a new tensor
/// (`attn_activate_backward`). The caller has checked that the shapes agree.
func activateBackward(_ outputGradient: Tensor, input: Tensor, kind: KernelActivation) throws(AttentionError) -> Tensor {
    let dx = try Tensor(uninitializedShape: input.shape, argument: "input")
    if input.count == 0 { return dx }
    var params = attn_activate_backward_params_default()
    params.count = Int64(input.count)
    params.kind = kind.value
    let status = withExtendedLifetime((outputGradient, input, dx)) {
        params.dx = dx.storage.buffer.baseAddress
        params.dout = UnsafePointer(outputGradient.storage.buffer.baseAddress)
        params.x = UnsafePointer(input.storage.buffer.baseAddress)
        return attn_activate_backward(&params)
    }
    if let error = AttentionError(
        status: status, function: "attn_activate_backward", context: "\(kind) of input \(input.shape)")
    {
        throw error
    }
    return dx
}

/// The gradient of the gated activation of `input`, `(..., 2 · width)`, for an output gradient
/// `(..., width)` (`attn_gated_activate_backward`): the gate's then the linear half's.
func activateGatedBackward(_ outputGradient: Tensor, input: Tensor, kind: KernelActivation) throws(AttentionError) -> Tensor {
    let dx = try Tensor(uninitializedShape: input.shape, argument: "input")
    let width = input.shape[input.rank - 1] / 2
    if outputGradient.count == 0 { return dx.filled(with: 0) }
    var params = attn_gated_activate_backward_params_default()
    (params.rows, params.width) = (Int64(outputGradient.count / width), Int64(width))
    (params.ld_dx, params.ld_dout, params.ld_x) = (Int64(2 * width), Int64(width), Int64(2 * width))
    params.kind = kind.value
    let status = withExtendedLifetime((outputGradient, input, dx)) {
        params.dx = dx.storage.buffer.baseAddress
        params.dout = UnsafePointer(outputGradient.storage.buffer.baseAddress)
        params.x = UnsafePointer(input.storage.buffer.baseAddress)
        return attn_gated_activate_backward(&params)
    }
    if let error = AttentionError(
        status: status, function: "attn_gated_activate_backward", context: "gated \(kind) of input \(input.shape)")
    {
        throw error
    }
    return dx
}

/// Adds the column sums of `rows` rows of `n` floats at `x` (row stride `ld`) to `out[0..<n]`,
/// or writes them when not `accumulate` (`attn_sum_columns`): a bias's gradient.
func sumColumns(
    _ x: UnsafePointer<Float>?, rows: Int, n: Int, ld: Int, into out: UnsafeMutablePointer<Float>?, accumulate: Bool,
    context: @autoclosure () -> String
) throws(AttentionError) {
    if rows == 0 || n == 0 { return }
    var params = attn_sum_columns_params_default()
    (params.rows, params.n, params.ld) = (Int64(rows), Int64(n), Int64(ld))
    (params.x, params.out, params.accumulate) = (x, out, accumulate ? 1 : 0)
    let status = attn_sum_columns(&params)
    if let error = AttentionError(status: status, function: "attn_sum_columns", context: context()) {
        throw error
    }
}

/// The gradient through a row softmax, `y ∘ (dy - Σ y dy)` per row of `length`, from the softmax's
/// output `y` (`attn_softmax_rows_backward`), into a new tensor shaped as `y`.
func softmaxRowsBackward(_ outputGradient: Tensor, output y: Tensor, length: Int) throws(AttentionError) -> Tensor {
    let dx = try Tensor(uninitializedShape: y.shape, argument: "weights")
    let rows = length == 0 ? 0 : y.count / length
    if rows == 0 { return dx }
    var params = attn_softmax_rows_backward_params_default()
    (params.rows, params.n) = (Int64(rows), Int64(length))
    (params.ld_dx, params.ld_y, params.ld_dout) = (Int64(length), Int64(length), Int64(length))
    let status = withExtendedLifetime((outputGradient, y, dx)) {
        params.dx = dx.storage.buffer.baseAddress
        params.y = UnsafePointer(y.storage.buffer.baseAddress)
        params.dout = UnsafePointer(outputGradient.storage.buffer.baseAddress)
        return attn_softmax_rows_backward(&params)
    }
    if let error = AttentionError(status: status, function: "attn_softmax_rows_backward", context: "weights \(y.shape)") {
        throw error
    }
    return dx
}

/// The gradient through ``meanRows(_:rows:length:outputShape:)``: `outputGradient[r] / length`
/// for every element of row `r` of `dx`, `(rows, length)` contiguous, added to `dx` with
/// `accumulate` (`attn_mean_rows_backward`). The caller has checked the shapes.
func meanRowsBackward(
    _ outputGradient: Tensor, rows: Int, length: Int, into dx: inout Tensor, accumulate: Bool
) throws(AttentionError) {
    if rows == 0 || length == 0 { return }
    var params = attn_mean_rows_backward_params_default()
    (params.rows, params.n, params.ld_dx, params.accumulate) = (Int64(rows), Int64(length), Int64(length), accumulate ? 1 : 0)
    let status = withExtendedLifetime(outputGradient) {
        dx.withUnsafeMutableBufferPointer { buffer in
            params.dx = buffer.baseAddress
            params.dout = UnsafePointer(outputGradient.storage.buffer.baseAddress)
            return attn_mean_rows_backward(&params)
        }
    }
    if let error = AttentionError(status: status, function: "attn_mean_rows_backward", context: "input \(dx.shape)") {
        throw error
    }
}
