/// PyTorch's `torch.nn.TransformerEncoder`: a stack of ``TransformerEncoderLayer``s run in turn,
/// then an optional final layer norm. noxton's `noxton.nn.TransformerEncoder` (pre-norm layers and
/// a final norm by default) is the same stack with `normFirst: true` layers of
/// ``TransformerEncoderLayer/Convention/noxton`` and a `norm`.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let layer = try TransformerEncoderLayer(dModel: 64, heads: 4, feedForwardSize: 256, batchFirst: true, using: &rng)
/// let encoder = try TransformerEncoder(layer: layer, count: 6, norm: LayerNorm(size: 64))
/// let y = try encoder(x, keyPaddingMask: padding)     // x (N, L, 64)
/// ```
///
/// ## Names
///
/// | PyTorch / noxton                                  | Swift                                      |
/// |---------------------------------------------------|--------------------------------------------|
/// | `TransformerEncoder(encoder_layer, num_layers, norm)` | ``init(layer:count:norm:)``            |
/// | `layers` (`layers.{i}.…` in the `state_dict`)     | ``layers``                                 |
/// | `norm` (`norm.weight`, `norm.bias`)               | ``norm``                                   |
/// | `forward(src, mask, src_key_padding_mask, is_causal)` | ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)`` |
/// | `enable_nested_tensor`, `mask_check`              | not applicable: there is no nested-tensor fast path, so padded positions get ordinary values (PyTorch's slow path) |
/// | noxton `TransformerEncoder(d_model, n_heads, num_layers, ..., norm_first, use_bias, use_final_norm)` | ``init(layers:norm:)`` with `convention: .noxton` layers and `norm: use_final_norm ? LayerNorm(size: d_model, epsilon: layer_norm_eps, bias: use_bias) : nil` |
public struct TransformerEncoder: TransformerLayerStack, Equatable {
    /// The layers, run in order (`layers`).
    public var layers: [TransformerEncoderLayer]

    /// The final layer norm, applied after the last layer, or `nil` (`norm`).
    public var norm: LayerNorm?

    /// An encoder of the given layers (each with its own parameters, as noxton initialises them)
    /// and an optional final norm.
    ///
    /// ```swift
    /// // noxton.nn.TransformerEncoder(16, 2, num_layers=2, dim_feedforward=32)
    /// let layers = try (0..<2).map { _ in
    ///     try TransformerEncoderLayer(dModel: 16, heads: 2, feedForwardSize: 32, normFirst: true, convention: .noxton, using: &rng)
    /// }
    /// var encoder = try TransformerEncoder(layers: layers, norm: LayerNorm(size: 16))
    /// try encoder.loadParameters(from: noxtonCheckpoint)
    /// ```
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"layers"`) for no layers, or layers of
    ///   different widths; `.shapeMismatch` (`"norm"`) for a norm whose size is not their `dModel`.
    public init(layers: [TransformerEncoderLayer], norm: LayerNorm? = nil) throws {
        self.layers = layers
        self.norm = norm
        try validateTransformerStack(layers, norm: norm)
    }

    /// Runs every layer with the same masks, then the final norm. The shapes and masks are the
    /// layers' (see ``TransformerEncoderLayer/callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)``).
    ///
    /// - Parameters:
    ///   - source: `src`, as the layers take it.
    ///   - mask: `mask`, passed to every layer.
    ///   - keyPaddingMask: `src_key_padding_mask`, passed to every layer.
    ///   - isCausal: passed to every layer; `nil` (the default, as PyTorch) detects it: `true`
    ///     exactly when `mask` is PyTorch's causal `(L, L)` mask (``TorchMask/isCausal(length:)``).
    ///   - training: dropout in every layer.
    ///   - dropoutSeed: layer i uses a seed derived from this one and i.
    /// - Throws: the layers' errors; `.invalidArgument` (`"layers"`, `"norm"`) when the stored
    ///   layers or norm were changed to inconsistent values.
    public func callAsFunction(
        _ source: Tensor, mask: TorchMask? = nil, keyPaddingMask: TorchMask? = nil, isCausal: Bool? = nil,
        training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> Tensor {
        try validateTransformerStack(layers, norm: norm)
        let causal = TorchMask.resolvedIsCausal(isCausal, mask: mask, input: source, batchFirst: layers[0].batchFirst)
        var x = source
        for (index, layer) in layers.enumerated() {
            x = try layer(
                x, mask: mask, keyPaddingMask: keyPaddingMask, isCausal: causal, training: training,
                dropoutSeed: derivedSeed(dropoutSeed, stream: UInt64(index)))
        }
        if let norm { x = try norm(x) }
        return x
    }
}

extension TransformerEncoder: Layer {
    /// The stack without masks, in evaluation mode: as `callAsFunction(source, mask: nil)`.
    ///
    /// - Throws: as ``callAsFunction(_:mask:keyPaddingMask:isCausal:training:dropoutSeed:)``.
    public func callAsFunction(_ source: Tensor) throws -> Tensor {
        try callAsFunction(source, mask: nil)
    }
}
