/// A mask for ``TorchMultiheadAttention`` and PyTorch's transformer modules (``TransformerEncoderLayer``,
/// ``TransformerEncoder``, ``TransformerDecoderLayer``, ``TransformerDecoder``, ``Transformer``), in the
/// forms PyTorch accepts for `attn_mask`, `key_padding_mask`, `src_mask`, `tgt_mask`, `memory_mask`
/// and the `*_key_padding_mask`s, plus the opposite boolean polarity that Equinox and noxton use.
///
/// PyTorch tells its two mask kinds apart by dtype; here each kind is a case:
///
/// | PyTorch / noxton                                   | `TorchMask`                              |
/// |----------------------------------------------------|------------------------------------------|
/// | `dtype=torch.bool`, `True` = not allowed / ignored | ``disallowed(_:)``                       |
/// | floating point, added to the scores (`-inf` masks) | ``additive(_:)``                         |
/// | Equinox / noxton bool, `True` = attend             | ``allowed(_:)`` (``BooleanMask``'s own polarity) |
///
/// ```swift
/// // torch: attn_mask = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
/// let causal = try TorchMask.disallowed(BooleanMask(shape: [l, l]) { $0[1] > $0[0] })
/// // torch: key_padding_mask = tensor([[False, False, True]])   (the last key is padding)
/// let padding = try TorchMask.disallowed(BooleanMask(shape: [1, 3], values: [false, false, true]))
/// let (out, weights) = try mha(query: x, key: x, value: x, keyPaddingMask: padding, attentionMask: causal)
/// ```
///
/// Masks are never expanded to `(N·H, L, S)` floats: a boolean mask is read by the kernels as it
/// is (broadcast through strides), a key padding mask becomes per-batch key lengths or an
/// `(N, 1, 1, S)` bias, and a float mask whose entries are all `0` or `-infinity` is treated as
/// the boolean mask it is (adding 0 changes nothing and adding `-infinity` masks, so the result
/// is identical).
public enum TorchMask: Sendable, Equatable {
    /// PyTorch's boolean mask: `true` marks a position that may **not** be attended (an
    /// `attn_mask` entry) or a key to ignore (a `key_padding_mask` entry). The opposite of
    /// ``BooleanMask``'s own polarity.
    case disallowed(BooleanMask)

    /// Equinox's and noxton's boolean mask (`eqx.nn.MultiheadAttention`, noxton's encoder
    /// layers): `true` marks a position that **may** be attended.
    case allowed(BooleanMask)

    /// PyTorch's floating-point mask: added to the scaled scores; `-Float.infinity` masks.
    case additive(Tensor)

    /// The dimensions of the mask.
    public var shape: [Int] {
        switch self {
        case let .disallowed(mask), let .allowed(mask): mask.shape
        case let .additive(tensor): tensor.shape
        }
    }

    /// Throws unless an additive mask is `float32` (it is added to the `float32` scores).
    func requireFloat32(_ argument: String) throws(AttentionError) {
        if case let .additive(tensor) = self {
            try tensor.requireFloat32(argument, reason: "an additive mask is float32, whatever the weights' dtype")
        }
    }

    /// PyTorch's `nn.Transformer.generate_square_subsequent_mask(size)`: a float `(size, size)`
    /// mask with `-infinity` above the diagonal and `0` elsewhere, so position i attends to
    /// positions `0...i`.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"size"`) for a negative size, `.overflow`
    ///   (`"size"`) when `size²` does not fit in `Int`, `.outOfMemory` when the mask cannot be
    ///   allocated.
    public static func squareSubsequent(_ size: Int) throws -> TorchMask {
        guard size >= 0 else {
            throw AttentionError.invalidArgument(argument: "size", reason: "must be non-negative, got \(size)")
        }
        var mask = try Tensor(uninitializedShape: [size, size], argument: "size")
        mask.withUnsafeMutableBufferPointer { scalars in
            for i in 0..<size {
                for j in 0..<size { scalars[i * size + j] = j > i ? -.infinity : 0 }
            }
        }
        return .additive(mask)
    }

    /// Whether this is PyTorch's causal mask for `length` positions: exactly `(length, length)`
    /// with position i allowed to attend to `0...i` only. PyTorch's
    /// `nn.modules.transformer._detect_is_causal_mask`, which ``TransformerEncoder`` uses when
    /// its `isCausal` is `nil`.
    public func isCausal(length: Int) -> Bool {
        guard shape == [length, length] else { return false }
        func future(_ index: Int) -> Bool { index % length > index / length }
        switch self {
        case let .disallowed(mask):
            return mask.values.indices.allSatisfy { mask.values[$0] == future($0) }
        case let .allowed(mask):
            return mask.values.indices.allSatisfy { mask.values[$0] != future($0) }
        case let .additive(tensor):
            return tensor.withUnsafeBufferPointer { values in
                values.indices.allSatisfy { values[$0] == (future($0) ? -Float.infinity : 0) }
            }
        }
    }
}
