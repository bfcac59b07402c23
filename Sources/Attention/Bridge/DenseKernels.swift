internal import CAttention

// The dense kernels around attention (activations, layer norm, row softmax, mean pooling, row
// reductions, rotary embedding, the dropout hash), each called from exactly one place here, in the kernels' terms:
// tensors, strided heads and enums of this file; the layers map their own types onto these.

/// The element-wise functions of `attn_activate` (the `Activation` layer maps itself onto these).
enum KernelActivation {
    case identity, relu, gelu, geluTanh, sigmoid, silu, tanh

    /// The kernels' spelling of the activation.
    var value: attn_activation {
        switch self {
        case .identity: ATTN_ACTIVATION_IDENTITY
        case .relu: ATTN_ACTIVATION_RELU
        case .gelu: ATTN_ACTIVATION_GELU
        case .geluTanh: ATTN_ACTIVATION_GELU_TANH
        case .sigmoid: ATTN_ACTIVATION_SIGMOID
        case .silu: ATTN_ACTIVATION_SILU
        case .tanh: ATTN_ACTIVATION_TANH
        }
    }
}

/// `kind` of every element of `input`, into a new tensor (`attn_activate`).
func activate(_ input: Tensor, kind: KernelActivation) throws(AttentionError) -> Tensor {
    try input.requireFloat32("input")
    let output = try Tensor(uninitializedShape: input.shape, argument: "input")
    if input.count == 0 { return output }
    var params = attn_activate_params_default()
    params.count = Int64(input.count)
    params.kind = kind.value
    let status = withExtendedLifetime((input, output)) {
        params.out = output.storage.buffer.baseAddress
        params.x = UnsafePointer(input.storage.buffer.baseAddress)
        return attn_activate(&params)
    }
    if let error = AttentionError(status: status, function: "attn_activate", context: "\(kind) of input \(input.shape)") {
        throw error
    }
    return output
}

/// The gated activation of `input`, `(..., 2 · width)` → `(..., width)`: `kind(gate) · linear`,
/// into a new tensor (`attn_gated_activate`). The caller has checked that the last dimension is even.
func activateGated(_ input: Tensor, kind: KernelActivation) throws(AttentionError) -> Tensor {
    try input.requireFloat32("input")
    let width = input.shape[input.rank - 1] / 2
    let output = try Tensor(uninitializedShape: Array(input.shape.dropLast()) + [width], argument: "input")
    if output.count == 0 { return output }
    var params = attn_gated_activate_params_default()
    (params.rows, params.width) = (Int64(output.count / width), Int64(width))
    (params.ld_out, params.ld_x) = (Int64(width), Int64(2 * width))
    params.kind = kind.value
    let status = withExtendedLifetime((input, output)) {
        params.out = output.storage.buffer.baseAddress
        params.x = UnsafePointer(input.storage.buffer.baseAddress)
        return attn_gated_activate(&params)
    }
    if let error = AttentionError(
        status: status, function: "attn_gated_activate", context: "gated \(kind) of input \(input.shape)")
    {
        throw error
    }
    return output
}

/// What a row norm divides by (`attn_variance`): the variance about the mean, as the mean of the
/// squared deviations (two passes) or as `mean(x²) - mean²` (fast), or the mean square about zero
/// (RMS norm, nothing subtracted).
enum RowStatistics {
    case twoPass
    case fast
    case rootMeanSquare

    /// The kernels' spelling.
    var kernelValue: attn_variance {
        switch self {
        case .twoPass: ATTN_VARIANCE_TWO_PASS
        case .fast: ATTN_VARIANCE_FAST
        case .rootMeanSquare: ATTN_VARIANCE_RMS
        }
    }
}

/// Layer norm (or RMS norm) of each of the `input.count / size` rows of `size` floats, into a new tensor
/// (`attn_layer_norm`). The caller has checked that the last dimension is `size` and that the
/// optional `weight` and `bias` hold `size` floats. With `savingStatistics`, each row's mean and
/// `1/√(variance + ε)` come back too, shaped as the input without its last dimension: what
/// ``layerNormBackward(_:input:size:weight:hasBias:statistics:rowStatistics:)`` needs.
func layerNormRows(
    _ input: Tensor, size: Int, weight: Tensor?, bias: Tensor?, epsilon: Float, statistics: RowStatistics,
    savingStatistics: Bool = false
) throws(AttentionError) -> (output: Tensor, rowStatistics: LayerNormStatistics?) {
    try input.requireFloat32("input")
    try weight?.requireFloat32("weight")
    try bias?.requireFloat32("bias")
    let output = try Tensor(uninitializedShape: input.shape, argument: "input")
    let saved = savingStatistics ? try LayerNormStatistics(rowsOf: input) : nil
    let rows = size == 0 ? 0 : input.count / size
    if rows == 0 { return (output, saved) }
    var params = attn_layer_norm_params_default()
    (params.rows, params.n) = (Int64(rows), Int64(size))
    (params.ld_out, params.ld_x) = (Int64(size), Int64(size))
    (params.eps, params.variance) = (epsilon, statistics.kernelValue)
    let status = withExtendedLifetime((input, output, weight, bias, saved)) {
        params.out = output.storage.buffer.baseAddress
        params.x = UnsafePointer(input.storage.buffer.baseAddress)
        params.weight = weight.flatMap { UnsafePointer($0.storage.buffer.baseAddress) }
        params.bias = bias.flatMap { UnsafePointer($0.storage.buffer.baseAddress) }
        params.mean = saved?.mean.storage.buffer.baseAddress
        params.rstd = saved?.reciprocalDeviation.storage.buffer.baseAddress
        return attn_layer_norm(&params)
    }
    if let error = AttentionError(status: status, function: "attn_layer_norm", context: "input \(input.shape), size \(size)") {
        throw error
    }
    return (output, saved)
}

/// Softmax in place over `rows` rows of `length` floats with row stride `stride`, starting at
/// `base` (`attn_softmax_rows`). A row whose entries are all `-infinity` becomes what
/// `maskedRows` says; a row with a NaN or `+infinity` becomes NaN.
func softmaxRows(
    _ base: UnsafeMutablePointer<Float>?, rows: Int, length: Int, stride: Int, maskedRows: MaskedRowPolicy,
    context: @autoclosure () -> String
) throws(AttentionError) {
    if rows == 0 || length == 0 { return }
    var params = attn_softmax_rows_params_default()
    (params.rows, params.n, params.ld) = (Int64(rows), Int64(length), Int64(stride))
    params.x = base
    params.masked_rows = kernelMaskedRows(maskedRows)
    let status = attn_softmax_rows(&params)
    if let error = AttentionError(status: status, function: "attn_softmax_rows", context: context()) {
        throw error
    }
}

/// The mean of each of `rows` rows of `length` contiguous floats of `input` (`attn_mean_rows`).
func meanRows(_ input: Tensor, rows: Int, length: Int, outputShape: [Int]) throws(AttentionError) -> Tensor {
    try input.requireFloat32("input")
    let output = try Tensor(uninitializedShape: outputShape, argument: "input")
    if rows == 0 || length == 0 { return output }
    var params = attn_mean_rows_params_default()
    (params.rows, params.n, params.ld) = (Int64(rows), Int64(length), Int64(length))
    let status = withExtendedLifetime((input, output)) {
        params.out = output.storage.buffer.baseAddress
        params.x = UnsafePointer(input.storage.buffer.baseAddress)
        return attn_mean_rows(&params)
    }
    if let error = AttentionError(status: status, function: "attn_mean_rows", context: "input \(input.shape)") {
        throw error
    }
    return output
}

/// How `attn_rotary` pairs the rotated features.
enum KernelRotaryPairing {
    /// `(x[i], x[i + d/2])`.
    case half
    /// `(x[2i], x[2i + 1])`.
    case interleaved
}

/// The precision `attn_rotary` computes frequencies and angles in (their cosine and sine always
/// in double).
enum KernelRotaryAngles {
    case double
    /// As `transformers`: `inv_freq` and `p · inv_freq` in float.
    case float
}

/// Rotates, in place, the first `dim` features of every row of `heads` (its tensor is made unique
/// first); row (b, h, l) gets position `starts[b] + l`, or `positionOffset + l` without `starts`
/// (`attn_rotary`); with `inverse`, by minus the angles (the rotation's transpose: its gradient).
/// The caller has checked that `starts`, when given, has `heads.batch` entries.
func rotary(
    _ heads: inout StridedHeads, dim: Int, theta: Float, pairing: KernelRotaryPairing, angles: KernelRotaryAngles,
    positionOffset: Int, starts: [Int]? = nil, inverse: Bool = false
) throws(AttentionError) {
    if dim == 0 || heads.batch == 0 || heads.heads == 0 || heads.length == 0 { return }
    var params = attn_rotary_params_default()
    (params.batch, params.heads, params.len) = (Int64(heads.batch), Int64(heads.heads), Int64(heads.length))
    params.dim = Int64(dim)
    params.x_stride = heads.strides
    params.theta = theta
    params.position_offset = Int64(positionOffset)
    params.pairing = pairing == .half ? ATTN_ROTARY_HALF : ATTN_ROTARY_INTERLEAVED
    params.angles = angles == .double ? ATTN_ROTARY_ANGLES_DOUBLE : ATTN_ROTARY_ANGLES_FLOAT
    params.flags = inverse ? ATTN_ROTARY_INVERSE : 0
    // Half-precision heads are refused by the public entry points; the projections are float32.
    precondition(heads.dtype == .float32, "internal error: rotary embedding of \(heads.dtype) heads")
    let offset = heads.offset
    let positions = starts?.map { Int64($0) }
    let status = withOptionalBuffer(positions) { positions in
        heads.tensor.withUnsafeMutableBufferPointer { buffer in
            params.x = buffer.baseAddress.map { $0 + offset }
            params.positions = positions
            return attn_rotary(&params)
        }
    }
    if let error = AttentionError(
        status: status, function: "attn_rotary",
        context: "heads \(heads.summary), rotated \(dim), theta \(theta), offset \(positionOffset)"
            + (starts.map { ", starts \($0)" } ?? ""))
    {
        throw error
    }
}

/// The one dropout decision of the library, the kernels' counter-based hash: a function that scales
/// a weight by `1/(1 - probability)` when element `counter` is kept and multiplies it by 0
/// otherwise (so NaN and infinities stay NaN, as PyTorch's `x * mask / (1 - p)` gives). The
/// element's counter is `offset + counter`, as in the kernels, so every path drops the same
/// elements for the same seed.
func dropoutDecision(probability: Float, seed: UInt64, offset: UInt64) -> (_ value: Float, _ counter: Int) -> Float {
    let threshold = attn_dropout_threshold(probability)
    let scale: Float = 1 / (1 - probability)
    return { value, counter in
        value * (attn_dropout_bits(seed, offset &+ UInt64(counter)) >= threshold ? scale : 0)
    }
}

/// What `attn_reduce_rows` computes of each row.
enum KernelReduction {
    case sum, mean, max, min
}

/// Reduces each of `rows` rows of `length` contiguous floats at `input` (`attn_reduce_rows`): the
/// row's value into `values[r]` and, for `.max` and `.min`, the index of its first extremum (or first
/// NaN) into `indices[r]`. Either output may be `nil` for `.max` and `.min`; `.sum` and `.mean` need
/// `values` and no `indices`. The caller has checked the dtype and that `rows` and `length` are at
/// least 1.
func reduceRows(
    _ input: UnsafePointer<Float>, rows: Int, length: Int, reduction: KernelReduction,
    values: UnsafeMutablePointer<Float>?, indices: UnsafeMutablePointer<Int64>?, context: @autoclosure () -> String
) throws(AttentionError) {
    var params = attn_reduce_rows_params_default()
    (params.rows, params.n, params.ld) = (Int64(rows), Int64(length), Int64(length))
    params.op = switch reduction {
    case .sum: ATTN_REDUCE_SUM
    case .mean: ATTN_REDUCE_MEAN
    case .max: ATTN_REDUCE_MAX
    case .min: ATTN_REDUCE_MIN
    }
    (params.x, params.out, params.indices) = (input, values, indices)
    let status = attn_reduce_rows(&params)
    if let error = AttentionError(status: status, function: "attn_reduce_rows", context: context()) {
        throw error
    }
}
