internal import CAttention

// The internal plumbing the attention modules share: attention heads read in place from inside
// a projection's output (no split, transpose or copy), projections with either weight layout, and
// the rotary embedding on strided heads.

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

    /// Heads at `offset` in `tensor` with element strides `{batch, head, position}`.
    init(tensor: Tensor, offset: Int = 0, batch: Int, length: Int, heads: Int, dim: Int, strides: (Int, Int, Int)) {
        self.tensor = tensor
        self.offset = offset
        self.batch = batch
        self.length = length
        self.heads = heads
        self.dim = dim
        (batchStride, headStride, positionStride) = strides
    }

    /// Heads of a dense `(B, L, H, dim)` (or `(L, H, dim)`) tensor.
    init(sequenceMajor tensor: Tensor, batch: Int, length: Int, heads: Int, dim: Int) {
        self.init(rows: tensor, batch: batch, length: length, rowWidth: heads * dim, offset: 0, heads: heads, dim: dim)
    }

    var strides: (Int64, Int64, Int64) { (Int64(batchStride), Int64(headStride), Int64(positionStride)) }

    /// The first element, for the kernels; `nil` for an empty tensor.
    var pointer: UnsafePointer<Float>? { tensor.storage.buffer.baseAddress.map { UnsafePointer($0 + offset) } }
}

/// Scaled dot-product attention over strided heads, returning a dense `(B, Lq, Hq, Dv)` tensor
/// (reshape it to `(B, Lq, Hq·Dv)` for the output projection, for free).
///
/// The callers validate the shapes and build the mask strides, as ``AttentionKernelCall``
/// requires.
func attentionOverHeads(
    query: StridedHeads, key: StridedHeads, value: StridedHeads,
    causal: AttentionMask.Causal = .none,
    mask: BooleanMask? = nil, maskStrides: MaskStrides = (0, 0, 0, 0),
    scale: Float, dropout: Dropout?, maskedRows: MaskedRowPolicy
) throws -> Tensor {
    let output = try Tensor(
        uninitializedShape: [query.batch, query.length, query.heads, value.dim], argument: "output")
    var call = AttentionKernelCall(
        query: query, key: key, value: value,
        output: StridedHeads(
            sequenceMajor: output, batch: query.batch, length: query.length, heads: query.heads, dim: value.dim))
    call.scale = scale
    call.causal = causal.kernelValue
    call.maskValues = mask?.values
    call.maskStrides = maskStrides
    call.dropout = dropout
    call.maskedRows = maskedRows.kernelValue
    try call.run(
        context: "query heads (B \(query.batch), L \(query.length), H \(query.heads), D \(query.dim)), "
            + "key heads (L \(key.length), H \(key.heads)), value head size \(value.dim)")
    return output
}

/// `x W (+ bias)` over the last dimension of `x`, `(..., K)` → `(..., N)`: one `attn_matmul`
/// whatever the leading dimensions. The callers check that `x`'s last dimension is K.
func projectLastAxis(_ x: Tensor, weight: Tensor, layout: WeightLayout, bias: Tensor? = nil) throws -> Tensor {
    let (inputs, outputs) = layout == .outputsByInputs
        ? (weight.shape[1], weight.shape[0]) : (weight.shape[0], weight.shape[1])
    return try matrixMultiply(
        x, inputs: inputs, weight: weight, layout: layout, outputs: outputs, bias: bias,
        outputShape: Array(x.shape.dropLast()) + [outputs], context: "input \(x.shape), weight \(weight.shape)")
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
