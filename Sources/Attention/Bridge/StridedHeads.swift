/// Attention heads living inside a tensor of any dtype at an element offset, described by strides: how every
/// query, key, value and output reaches the kernels, read or written in place (no split,
/// transpose or copy).
///
/// A projection `(B, L, N)` whose columns `offset ..< offset + heads·dim` hold heads of size
/// `dim` (head-major, as a reshape to `(L, H, d)`) is `StridedHeads(rows:...)` with strides
/// `{L·N, dim, N}`. A packed query|key|value projection is three such views of one tensor, and a
/// decode cache is a view of the first `length` of its `capacity` positions.
struct StridedHeads {
    /// Owns the storage that the offset and strides point into (kept alive for the kernel call).
    var tensor: Tensor
    /// Elements from the tensor's start to feature 0 of position 0 of head 0 of batch 0.
    var offset: Int
    var batch: Int, length: Int, heads: Int, dim: Int
    /// Element strides (in elements of the tensor's dtype) between batches, heads and positions;
    /// features are contiguous.
    var batchStride: Int, headStride: Int, positionStride: Int

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

    /// Heads in rows of `rowWidth` floats: `tensor` is `(B, capacity, rowWidth)`, head h of
    /// position l at columns `offset + h·dim ..< offset + (h + 1)·dim` of row l. `capacity`
    /// (default `length`) is the rows stored per batch, of which the first `length` are read; a
    /// `batchStride` of 0 repeats one sequence for every batch.
    init(
        rows tensor: Tensor, batch: Int, length: Int, capacity: Int? = nil, rowWidth: Int, offset: Int = 0,
        heads: Int, dim: Int, batchStride: Int? = nil
    ) {
        self.init(
            tensor: tensor, offset: offset, batch: batch, length: length, heads: heads, dim: dim,
            strides: (batchStride ?? (capacity ?? length) * rowWidth, dim, rowWidth))
    }

    /// Heads of a dense tensor in `layout`: `(B, H, L, dim)` for `.heads`, `(B, L, H, dim)` for
    /// `.sequence` (the batch dimension may be absent when `batch` is 1).
    init(dense tensor: Tensor, layout: AttentionLayout, batch: Int, length: Int, heads: Int, dim: Int) {
        let strides = layout == .heads
            ? (heads * length * dim, length * dim, dim) : (length * heads * dim, dim, heads * dim)
        self.init(tensor: tensor, batch: batch, length: length, heads: heads, dim: dim, strides: strides)
    }

    /// The features of one position: heads × head size.
    var width: Int { heads * dim }

    /// The first element, for the kernels (the offset counts elements of the tensor's dtype);
    /// `nil` for an empty tensor.
    var pointer: UnsafeRawPointer? {
        tensor.storage.bytes.baseAddress.map { UnsafeRawPointer($0 + offset * tensor.dtype.byteSize) }
    }

    /// The first element of `float32` heads, for the Swift loops over projections (always
    /// `float32`); `nil` for an empty tensor.
    ///
    /// - Precondition: the tensor is `float32` (an internal invariant: such heads are made by
    ///   this module's own projections).
    var floatPointer: UnsafePointer<Float>? {
        tensor.storage.buffer.baseAddress.map { UnsafePointer($0 + offset) }
    }

    /// How the elements are stored.
    var dtype: Tensor.DType { tensor.dtype }

    /// A human-readable description for error messages.
    var summary: String { "(B \(batch), L \(length), H \(heads), D \(dim))" }
}
