internal import CAttention

// The internal plumbing the attention modules share: attention heads read in place from inside
// a projection's output (no split, transpose or copy), projections with either weight layout, and
// the rotary embedding on strided heads. Everything here calls the C kernels directly.

/// Attention heads living inside a tensor at an element offset, described by strides: the
/// projected query, key or value heads of an attention module, read in place by the kernels.
///
/// A projection `(B, L, N)` whose columns `offset ..< offset + heads·dim` hold heads of size
/// `dim` (head-major, as Equinox's reshape to `(L, H, d)`) is `StridedHeads(rows:...)` with strides
/// `{L·N, dim, N}`. A packed query|key|value projection is three such views of one tensor.
struct StridedHeads {
    /// Owns the storage that the offset and strides point into (kept alive for the kernel call).
    var tensor: Tensor
    var offset: Int
    var batch: Int, length: Int, heads: Int, dim: Int
    var batchStride: Int, headStride: Int, positionStride: Int

    /// Heads in rows of `rowWidth` floats: `tensor` is `(B, L, rowWidth)` (or `(L, rowWidth)` with
    /// `batch` 1), head h at columns `offset + h·dim ..< offset + (h + 1)·dim`. A `batchStride` of
    /// 0 repeats one sequence for every batch.
    init(rows tensor: Tensor, batch: Int, length: Int, rowWidth: Int, offset: Int, heads: Int, dim: Int,
         batchStride: Int? = nil) {
        self.tensor = tensor
        self.offset = offset
        self.batch = batch
        self.length = length
        self.heads = heads
        self.dim = dim
        self.batchStride = batchStride ?? length * rowWidth
        self.headStride = dim
        self.positionStride = rowWidth
    }

    /// Heads of a dense `(B, L, H, dim)` (or `(L, H, dim)`) tensor.
    init(sequenceMajor tensor: Tensor, batch: Int, length: Int, heads: Int, dim: Int) {
        self.init(rows: tensor, batch: batch, length: length, rowWidth: heads * dim, offset: 0, heads: heads, dim: dim)
    }

    var strides: (Int64, Int64, Int64) { (Int64(batchStride), Int64(headStride), Int64(positionStride)) }

    /// The first element, for the kernels. The tensor holds at least one element.
    var pointer: UnsafePointer<Float> { UnsafePointer(tensor.storage.buffer.baseAddress! + offset) }
}

/// Element strides of a boolean mask against `(B, Hq, Lq, Lk)`.
typealias MaskStrides = (Int64, Int64, Int64, Int64)

/// Scaled dot-product attention over strided heads, returning a dense `(B, Lq, Hq, Dv)` tensor
/// (reshape it to `(B, Lq, Hq·Dv)` for the output projection, for free).
///
/// The callers validate the shapes (every size at least 1, `heads_q % heads_kv == 0`, matching
/// batch, lengths and head sizes) and build the mask strides; the kernel's own checks remain as a
/// safety net and surface as `AttentionError.kernelFailure`.
func attentionOverHeads(
    query: StridedHeads, key: StridedHeads, value: StridedHeads,
    causal: AttentionMask.Causal = .none,
    mask: BooleanMask? = nil, maskStrides: MaskStrides = (0, 0, 0, 0),
    scale: Float, dropout: Dropout?, maskedRows: MaskedRowPolicy
) throws -> Tensor {
    let output = try Tensor(
        uninitializedShape: [query.batch, query.length, query.heads, value.dim], argument: "output")
    var params = attn_params_default()
    params.batch = Int64(query.batch)
    params.heads_q = Int64(query.heads)
    params.heads_kv = Int64(key.heads)
    params.len_q = Int64(query.length)
    params.len_k = Int64(key.length)
    params.dim_qk = Int64(query.dim)
    params.dim_v = Int64(value.dim)
    params.q = query.pointer
    params.q_stride = query.strides
    params.k = key.pointer
    params.k_stride = key.strides
    params.v = value.pointer
    params.v_stride = value.strides
    params.out = output.storage.buffer.baseAddress
    let (heads, dimV) = (query.heads, value.dim)
    params.out_stride = (Int64(query.length * heads * dimV), Int64(dimV), Int64(heads * dimV))
    params.scale = scale
    switch causal {
    case .none: params.causal = ATTN_CAUSAL_NONE
    case .topLeft: params.causal = ATTN_CAUSAL_TOP_LEFT
    case .bottomRight: params.causal = ATTN_CAUSAL_BOTTOM_RIGHT
    }
    if let dropout, dropout.probability > 0 {
        params.dropout_p = dropout.probability
        params.dropout_seed = dropout.seed
        params.dropout_offset = dropout.offset
    }
    switch maskedRows {
    case .zero: params.masked_rows = ATTN_MASKED_ROWS_ZERO
    case .nan: params.masked_rows = ATTN_MASKED_ROWS_NAN
    case .meanOfValues: params.masked_rows = ATTN_MASKED_ROWS_MEAN
    }
    params.mask_stride = maskStrides
    let status = withExtendedLifetime((query.tensor, key.tensor, value.tensor, output)) {
        if let mask {
            // Bool is one byte holding 0 or 1: the uint8_t "nonzero attends" of attn.h.
            return mask.values.withUnsafeBytes { bytes in
                params.mask = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
                return attn_forward(&params)
            }
        }
        return attn_forward(&params)
    }
    if let error = AttentionError(
        status: status, function: "attn_forward",
        context: "query heads (B \(query.batch), L \(query.length), H \(query.heads), D \(query.dim)), "
            + "key heads (L \(key.length), H \(key.heads)), value head size \(value.dim)")
    {
        throw error
    }
    return output
}

/// How a projection's weight is stored.
enum WeightLayout {
    /// `(outputs, inputs)`: PyTorch and Equinox `Linear` (`y = x Wᵀ`).
    case outputsByInputs
    /// `(inputs, outputs)`: the tutorial's `W_query` (`y = x W`).
    case inputsByOutputs
}

/// `x W (+ bias)` over the last dimension of `x`, `(..., K)` → `(..., N)`: one `attn_matmul`
/// whatever the leading dimensions. The callers check that `x`'s last dimension is K.
func projectLastAxis(_ x: Tensor, weight: Tensor, layout: WeightLayout, bias: Tensor? = nil) throws -> Tensor {
    let (inputs, outputs) = layout == .outputsByInputs
        ? (weight.shape[1], weight.shape[0]) : (weight.shape[0], weight.shape[1])
    let rows = inputs == 0 ? 0 : x.count / inputs
    var result = try Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outputs], argument: "input")
    if rows == 0 || outputs == 0 { return result }
    let status = result.withUnsafeMutableBufferPointer { out in
        x.withUnsafeBufferPointer { a in
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
    if let error = AttentionError(
        status: status, function: "attn_matmul", context: "input \(x.shape), weight \(weight.shape)")
    {
        throw error
    }
    return result
}

extension RotaryPositionalEmbedding.Pairing {
    var kernelPairing: attn_rotary_pairing {
        switch self {
        case .halfSplit: ATTN_ROTARY_HALF
        case .interleaved: ATTN_ROTARY_INTERLEAVED
        }
    }
}

extension RotaryPositionalEmbedding {
    /// Rotates, in place, `batch × heads × length` rows of `embeddingSize` floats starting at
    /// `base`, with element strides `{batch, head, position}`; row (b, h, l) gets position
    /// `positionOffset + l`. The caller owns the memory uniquely and has checked the sizes.
    func rotate(
        _ base: UnsafeMutablePointer<Float>, batch: Int, heads: Int, length: Int,
        strides: (Int, Int, Int), positionOffset: Int
    ) throws {
        if embeddingSize == 0 || batch == 0 || heads == 0 || length == 0 { return }
        var params = attn_rotary_params()
        params.batch = Int64(batch)
        params.heads = Int64(heads)
        params.len = Int64(length)
        params.dim = Int64(embeddingSize)
        params.x = base
        params.x_stride = (Int64(strides.0), Int64(strides.1), Int64(strides.2))
        params.theta = theta
        params.position_offset = Int64(positionOffset)
        params.pairing = pairing.kernelPairing
        params.num_threads = 0
        let status = attn_rotary(&params)
        if let error = AttentionError(
            status: status, function: "attn_rotary",
            context: "B \(batch), H \(heads), L \(length), D \(embeddingSize), theta \(theta), "
                + "offset \(positionOffset)")
        {
            throw error
        }
    }
}
