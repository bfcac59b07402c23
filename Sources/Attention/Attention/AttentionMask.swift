/// Which scores of an attention problem are masked out, and what is added to the others.
///
/// Score (b, h, i, j), for batch b, query head h, query i and key j, is masked (it gets weight 0)
/// when any of the mechanisms below masks it; each is optional, and they combine:
///
/// - ``causal``: query i sees only keys up to its own position (see ``Causal`` for how the
///   positions align when there are more keys than queries);
/// - ``window``: a sliding window of keys around each query's aligned position;
/// - ``keyLengths``: batch b sees only its first `keyLengths[b]` keys (padding at the end);
/// - ``booleanMask``: an explicit `true` (attend) / `false` (masked) per score;
/// - ``bias``: added to the scaled score; `-Float.infinity` masks.
///
/// The boolean mask and the bias are broadcast to `(B, Hq, Lq, Lk)` with NumPy's rules (shapes
/// aligned on the right; a missing or size-1 dimension repeats), so `(Lq, Lk)`, `(Hq, Lq, Lk)` and
/// `(B, 1, 1, Lk)` are all accepted without materialising the full mask. For a query of rank 3
/// `(Hq, Lq, D)` or rank 2 `(Lq, D)`, B (and Hq) are 1.
///
/// ```swift
/// // A decoder step: 4 new queries after a cache of 100 keys, attending to at most the
/// // 32 most recent keys, with the second sequence of the batch padded after 60 keys.
/// let mask = AttentionMask(
///     causal: .bottomRight,
///     window: .init(left: 31, right: 0),
///     keyLengths: [100, 60])
/// let out = try scaledDotProductAttention(query: q, key: k, value: v, mask: mask)
/// ```
///
/// A row whose every score is masked produces what ``MaskedRowPolicy`` says.
public struct AttentionMask: Sendable, Equatable {
    /// Causal masking, and how query positions line up with key positions when `Lq != Lk`.
    ///
    /// Query i (0-based, of Lq) sees key j (of Lk) when:
    /// - ``topLeft``: `j <= i` (PyTorch's `is_causal`, `tril(ones(Lq, Lk))`);
    /// - ``bottomRight``: `j <= i + (Lk - Lq)`: the Lq queries are the newest positions after
    ///   a cache of keys (FlashAttention's causal). With `Lq == Lk` both are the same.
    ///
    /// ```swift
    /// let prefill = AttentionMask(causal: .topLeft)
    /// let decode = AttentionMask(causal: .bottomRight)
    /// ```
    public enum Causal: Sendable, Equatable, Hashable, CaseIterable {
        /// No causal masking.
        case none
        /// Query i sees keys `0...i`.
        case topLeft
        /// Query i sees keys `0...(i + Lk - Lq)`.
        case bottomRight
    }

    /// A sliding window of visible keys around each query's aligned position.
    ///
    /// The aligned position of query i is `a = i` for ``Causal/topLeft`` and `a = i + (Lk - Lq)`
    /// otherwise (``Causal/bottomRight`` and ``Causal/none``). Key j is visible when
    /// `a - left <= j <= a + right`; `nil` leaves that side unbounded. So
    /// `Window(left: 127, right: 0)` with causal masking is Mistral's 128-key sliding window.
    ///
    /// ```swift
    /// let local = AttentionMask(window: .init(left: 2, right: 2))   // 5 keys around each query
    /// ```
    public struct Window: Sendable, Equatable, Hashable {
        /// How many keys before the aligned position are visible; `nil` for all of them.
        /// Must be non-negative.
        public var left: Int?
        /// How many keys after the aligned position are visible; `nil` for all of them.
        /// Must be non-negative.
        public var right: Int?

        /// Creates a window; `nil` leaves a side unbounded.
        public init(left: Int? = nil, right: Int? = nil) {
            self.left = left
            self.right = right
        }

        /// No window: every key is within reach.
        public static let unbounded = Window()
    }

    /// Causal masking; `.none` by default.
    public var causal: Causal

    /// The sliding window; unbounded by default.
    public var window: Window

    /// Per-batch numbers of valid keys, `B` values each in `0...Lk`: batch b sees keys
    /// `0..<keyLengths[b]`. `nil` for all keys.
    public var keyLengths: [Int]?

    /// An explicit mask broadcastable to `(B, Hq, Lq, Lk)`: `true` attends, `false` masks.
    public var booleanMask: BooleanMask?

    /// An additive bias broadcastable to `(B, Hq, Lq, Lk)`, added to the scaled scores
    /// (ALiBi, relative positions, or a float mask with `-Float.infinity`).
    public var bias: Tensor?

    /// Creates a mask from its parts; by default nothing is masked.
    public init(
        causal: Causal = .none,
        window: Window = .unbounded,
        keyLengths: [Int]? = nil,
        booleanMask: BooleanMask? = nil,
        bias: Tensor? = nil
    ) {
        self.causal = causal
        self.window = window
        self.keyLengths = keyLengths
        self.booleanMask = booleanMask
        self.bias = bias
    }

    /// No masking and no bias: every query attends to every key.
    public static let unmasked = AttentionMask()

    /// Causal masking alone, with the given alignment.
    public static func causal(_ alignment: Causal) -> AttentionMask {
        AttentionMask(causal: alignment)
    }
}
