/// The projected query, key and value heads of an attention module, as handed to a
/// `processHeads` hook (Equinox's `process_heads`) between the projections and the attention.
///
/// Shapes, positions before heads: `query (L, H, qkSize)`, `key (S, H, qkSize)`,
/// `value (S, H, voSize)`, each with a leading batch dimension `B` for batched calls. A hook may
/// change the values but not the shapes (the module throws otherwise, as Equinox raises
/// `ValueError("process_heads must not change the shape of the heads.")`).
///
/// ```swift
/// let out = try attention(query: x, key: x, value: x) { heads in
///     try rope.rotateHeads(&heads.query)
///     try rope.rotateHeads(&heads.key)
/// }
/// ```
public struct AttentionHeads: Sendable, Equatable {
    /// The query heads, `(L, H, qkSize)` or `(B, L, H, qkSize)`.
    public var query: Tensor

    /// The key heads, `(S, H, qkSize)` or `(B, S, H, qkSize)`.
    public var key: Tensor

    /// The value heads, `(S, H, voSize)` or `(B, S, H, voSize)`.
    public var value: Tensor

    /// Creates a set of heads.
    public init(query: Tensor, key: Tensor, value: Tensor) {
        self.query = query
        self.key = key
        self.value = value
    }
}
