/// Rotary positional embedding (RoFormer, "RoPE"), as Equinox's
/// `equinox.nn.RotaryPositionalEmbedding`: each pair of features at position p is rotated by the
/// angle `p · θ^(-2i/d)`.
///
/// With `d = embeddingSize`, `i` in `0 ..< d/2` and the default ``Pairing/halfSplit``
/// pairing (GPT-NeoX, Llama, Equinox):
///
/// ```
/// f_i        = θ^(-2i / d)
/// y[i]       = x[i] cos(p f_i) - x[i + d/2] sin(p f_i)
/// y[i + d/2] = x[i + d/2] cos(p f_i) + x[i] sin(p f_i)
/// ```
///
/// The rotation runs in the C kernel `attn_rotary`, in place on strided rows, so it can rotate
/// the query and key heads of an attention module inside their projection without a copy (see
/// ``MultiheadAttention/callAsFunction(query:key:value:mask:inference:dropoutSeed:rotary:processHeads:)``).
///
/// ```swift
/// let rope = try RotaryPositionalEmbedding(embeddingSize: 64)
/// let x = try Tensor(randomNormal: [10, 64], using: &rng)     // (L, embeddingSize)
/// let y = try rope(x)                                          // positions 0..<10
/// let next = try rope(step, positionOffset: 10)                // a decoder's 11th token
/// ```
///
/// Mapping from Equinox's names:
///
/// | Equinox                          | Swift                                   |
/// |----------------------------------|-----------------------------------------|
/// | `embedding_size`                 | `embeddingSize`                         |
/// | `theta` (default 10 000)         | `theta` (default 10 000)                |
/// | (half-split `rotate_half` only)  | `pairing: .halfSplit` (or `.interleaved`) |
/// | (positions always from 0)        | `positionOffset` (default 0)            |
/// | `jax.vmap(rope)(x)`              | `rope(x)` on `(B, L, embeddingSize)`    |
/// | `jax.vmap(rope, in_axes=1, out_axes=1)(heads)` | `rope.rotateHeads(&heads)`  |
/// | `dtype`                          | always `Float`                          |
///
/// Differences from Equinox, on purpose:
/// - **No frequency cache shared between instances.** Equinox caches the sines and cosines in a
///   module-level dictionary keyed by `(embedding_size, dtype)` only, so after one instance has
///   run, another with the same size but a different `theta` silently reuses the first one's
///   frequencies (until `equinox.clear_caches()`). Here every call derives the frequencies from
///   its own instance's `theta`, so instances with different `theta` never interfere.
/// - The angles are computed in double precision by default (Equinox: in float32); the
///   difference is at rounding level for the positions of ordinary sequences and smaller for long
///   ones. ``AnglePrecision/float`` computes them in `Float` as Hugging Face `transformers` does
///   (Llama's rotary embedding).
/// - The input may have any number of leading (batch) dimensions, and positions may start at an
///   offset.
///
/// It is the one rotary embedding of the package: the Llama model rotates with it too
/// (``AnglePrecision/float``, each sequence of a batch from its own start).
public struct RotaryPositionalEmbedding: ParameterizedModule, Equatable, Hashable {
    /// Which features are rotated together.
    ///
    /// ```swift
    /// let gptJ = try RotaryPositionalEmbedding(embeddingSize: 64, pairing: .interleaved)
    /// ```
    public enum Pairing: Sendable, Equatable, Hashable, CaseIterable {
        /// Feature `i` with feature `i + d/2` (GPT-NeoX, Llama, Hugging Face, Equinox's
        /// `rotate_half`). The default.
        case halfSplit
        /// Feature `2i` with feature `2i + 1` (the original RoFormer, GPT-J). Gives different
        /// results from ``halfSplit`` on the same input.
        case interleaved
    }

    /// The precision of the frequencies and angles (their cosine and sine are always computed in
    /// `Double` and rounded to `Float`).
    ///
    /// ```swift
    /// let llama = try RotaryPositionalEmbedding(embeddingSize: 128, theta: 500_000, anglePrecision: .float)
    /// ```
    public enum AnglePrecision: Sendable, Equatable, Hashable, CaseIterable {
        /// `f_i = θ^(-2i/d)` and the angle `p · f_i` in `Double`. The default.
        case double
        /// In `Float`, as Hugging Face `transformers` computes them: `inv_freq = 1 / θ^(2i/d)` and
        /// the angle `Float(p) · inv_freq`, each rounded to `Float`. Far from position 0 the
        /// angles are then off by up to half a `Float` ulp of `p · f_i` (0.004 radians at
        /// p = 100 000); use it to reproduce models trained that way.
        case float
    }

    /// The number of features rotated: the size of the last dimension of the input. Even and
    /// non-negative.
    public let embeddingSize: Int

    /// The base of the frequencies `θ^(-2i/d)`: larger values rotate more slowly. Positive and
    /// finite.
    public let theta: Float

    /// Which features are rotated together.
    public let pairing: Pairing

    /// The precision of the frequencies and angles.
    public let anglePrecision: AnglePrecision

    /// Creates a rotary embedding for `embeddingSize` features.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"embeddingSize"`) for a negative or odd size,
    ///   as Equinox's `ValueError`s at construction; (`"theta"`) unless `theta` is positive and
    ///   finite.
    public init(
        embeddingSize: Int, theta: Float = 10_000, pairing: Pairing = .halfSplit, anglePrecision: AnglePrecision = .double
    ) throws {
        guard embeddingSize >= 0 else {
            throw AttentionError.invalidArgument(
                argument: "embeddingSize", reason: "must not be negative, got \(embeddingSize)")
        }
        guard embeddingSize % 2 == 0 else {
            throw AttentionError.invalidArgument(argument: "embeddingSize", reason: "must be even, got \(embeddingSize)")
        }
        guard theta.isFinite, theta > 0 else {
            throw AttentionError.invalidArgument(argument: "theta", reason: "must be positive and finite, got \(theta)")
        }
        self.embeddingSize = embeddingSize
        self.theta = theta
        self.pairing = pairing
        self.anglePrecision = anglePrecision
    }

    /// No parameters: the frequencies are a function of ``theta`` and ``embeddingSize``.
    public var parameterPaths: [ParameterPath<RotaryPositionalEmbedding>] { [] }

    /// The embedding applied to a sequence `(L, embeddingSize)`, or to a batch of them
    /// `(..., L, embeddingSize)` (any number of leading dimensions, each sequence from position
    /// `positionOffset`).
    ///
    /// ```swift
    /// let y = try rope(x)                          // x: (L, 64), positions 0 ..< L
    /// let batch = try rope(xs)                     // xs: (B, L, 64)
    /// let step = try rope(token, positionOffset: 17)   // token: (1, 64) at position 17
    /// ```
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"x"`) unless `x` is `float32`;
    ///   `.shapeMismatch` (`"x"`) for a rank below 2 or a last dimension
    ///   other than ``embeddingSize``; `.invalidArgument` (`"positionOffset"`) for a negative
    ///   offset; the kernel's errors.
    public func callAsFunction(_ x: Tensor, positionOffset: Int = 0) throws -> Tensor {
        var y = x
        try rotate(&y, positionOffset: positionOffset)
        return y
    }

    /// Applies the embedding in place to `(L, embeddingSize)` or `(..., L, embeddingSize)`.
    ///
    /// - Throws: as ``callAsFunction(_:positionOffset:)``; on error `x` is unchanged.
    public func rotate(_ x: inout Tensor, positionOffset: Int = 0) throws {
        try rotate(&x, positionOffset: positionOffset, inverse: false)
    }

    /// ``rotate(_:positionOffset:)``, or with `inverse` the rotation by minus the angles: its
    /// gradient (the rotation is orthogonal).
    func rotate(_ x: inout Tensor, positionOffset: Int, inverse: Bool) throws {
        try x.requireFloat32("x")
        guard x.rank >= 2, x.shape[x.rank - 1] == embeddingSize else {
            throw AttentionError.shapeMismatch(
                argument: "x", expected: "[..., L, \(embeddingSize)] (..., L, embeddingSize)", actual: x.shape)
        }
        try checkOffset(positionOffset)
        if x.count == 0 { return }
        let length = x.shape[x.rank - 2]
        let batch = x.count / (length * embeddingSize)
        var rows = StridedHeads(rows: x, batch: batch, length: length, rowWidth: embeddingSize, heads: 1, dim: embeddingSize)
        try rotate(&rows, positionOffset: positionOffset, starts: nil, inverse: inverse)
        x = rows.tensor
    }

    /// Applies the embedding in place to every head of projected attention heads, as Equinox's
    /// `jax.vmap(rope, in_axes=1, out_axes=1)` inside `process_heads`: each head is a sequence
    /// of its own, rotated by position.
    ///
    /// ```swift
    /// var heads = AttentionHeads(query: q, key: k, value: v)     // (L, H, 64) each
    /// try rope.rotateHeads(&heads.query)
    /// try rope.rotateHeads(&heads.key)
    /// // Heads first, (B, H, L, D), as scaledDotProductAttention's default layout:
    /// try rope.rotateHeads(&q4, layout: .heads)
    /// ```
    ///
    /// - Parameters:
    ///   - heads: `.sequence` layout (the default): `(L, H, embeddingSize)` or
    ///     `(B, L, H, embeddingSize)`; `.heads` layout: `(H, L, embeddingSize)` or
    ///     `(B, H, L, embeddingSize)`.
    ///   - layout: where the position axis is.
    ///   - positionOffset: the position of the first row; 0 by default.
    /// - Throws: `AttentionError.unsupportedDType` (`"heads"`) unless `heads` is `float32`;
    ///   `.shapeMismatch` (`"heads"`) for a rank other than 3 or 4 or a last
    ///   dimension other than ``embeddingSize``; `.invalidArgument` (`"positionOffset"`); the
    ///   kernel's errors. On error `heads` is unchanged.
    public func rotateHeads(_ heads: inout Tensor, layout: AttentionLayout = .sequence, positionOffset: Int = 0) throws {
        try heads.requireFloat32("heads")
        let names = layout == .sequence ? "(B, L, H, embeddingSize)" : "(B, H, L, embeddingSize)"
        guard (3...4).contains(heads.rank), heads.shape[heads.rank - 1] == embeddingSize else {
            throw AttentionError.shapeMismatch(
                argument: "heads", expected: "rank 3 or 4 \(names) with embeddingSize \(embeddingSize)",
                actual: heads.shape)
        }
        try checkOffset(positionOffset)
        let shape = heads.rank == 3 ? [1] + heads.shape : heads.shape
        let (batch, d) = (shape[0], embeddingSize)
        let (headCount, length) = layout == .sequence ? (shape[2], shape[1]) : (shape[1], shape[2])
        if heads.count == 0 { return }
        var view = StridedHeads(dense: heads, layout: layout, batch: batch, length: length, heads: headCount, dim: d)
        try rotate(&view, positionOffset: positionOffset, starts: nil)
        heads = view.tensor
    }

    /// Rotates, in place, heads that live inside the rows of a projection: `rows` is
    /// `(B, L, rowWidth)` and holds `heads` heads of ``embeddingSize`` features at columns
    /// `offset ..< offset + heads · embeddingSize` of every row (a fused query|key|value
    /// projection's queries or keys, rotated where the product left them, without a copy). Row l
    /// of sequence b is at position `starts[b] + l`, so sequences of different lengths share a
    /// decoding step.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"rows"`) unless `float32`;
    ///   `.shapeMismatch` (`"rows"`) unless rank 3 with room for the heads at `offset`;
    ///   `.invalidArgument` (`"starts"`) unless it has B entries, none negative; the kernel's
    ///   errors. On error `rows` is unchanged.
    package func rotate(
        projection rows: inout Tensor, offset: Int, heads: Int, starts: [Int], inverse: Bool = false
    ) throws(AttentionError) {
        try rows.requireFloat32("rows")
        guard rows.rank == 3, offset >= 0, heads >= 0, offset + heads * embeddingSize <= rows.shape[2] else {
            throw .shapeMismatch(
                argument: "rows", expected: "(B, L, rowWidth) with \(heads) heads of \(embeddingSize) at column \(offset)",
                actual: rows.shape)
        }
        let (batch, length, width) = (rows.shape[0], rows.shape[1], rows.shape[2])
        guard starts.count == batch, starts.allSatisfy({ $0 >= 0 }) else {
            throw .invalidArgument(argument: "starts", reason: "must be \(batch) positions, none negative, got \(starts)")
        }
        if rows.count == 0 { return }
        // The view takes `rows` over (a second reference would make the kernel call copy the rows
        // first) and gives it back however the call ends.
        var view = StridedHeads(
            rows: consume rows, batch: batch, length: length, rowWidth: width, offset: offset, heads: heads,
            dim: embeddingSize)
        defer { rows = view.tensor }
        try rotate(&view, positionOffset: 0, starts: starts, inverse: inverse)
    }

    /// Rotates, in place, the first ``embeddingSize`` features of every row of `view` (its tensor
    /// is made unique first); row (b, h, l) gets position `starts[b] + l`, or `positionOffset + l`
    /// without `starts`: the kernel call every entry point ends in. With `inverse`, the rotation
    /// by minus the angles: the gradient of the rotation.
    func rotate(
        _ view: inout StridedHeads, positionOffset: Int, starts: [Int]? = nil, inverse: Bool = false
    ) throws(AttentionError) {
        try rotary(
            &view, dim: embeddingSize, theta: theta, pairing: pairing == .halfSplit ? .half : .interleaved,
            angles: anglePrecision == .double ? .double : .float, positionOffset: positionOffset, starts: starts,
            inverse: inverse)
    }

    private func checkOffset(_ positionOffset: Int) throws(AttentionError) {
        guard positionOffset >= 0 else {
            throw .invalidArgument(argument: "positionOffset", reason: "must not be negative, got \(positionOffset)")
        }
    }
}

extension RotaryPositionalEmbedding: Layer {
    /// The embedding applied at positions `0 ..< L`: as `callAsFunction(x, positionOffset: 0)`.
    ///
    /// - Throws: as ``callAsFunction(_:positionOffset:)``.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(x, positionOffset: 0)
    }
}
