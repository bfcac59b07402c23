/// PyTorch's `torch.nn.TransformerDecoder`: a stack of ``TransformerDecoderLayer``s run in turn on
/// the target, each attending to the same memory, then an optional final layer norm.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let layer = try TransformerDecoderLayer(dModel: 64, heads: 4, feedForwardSize: 256, batchFirst: true, using: &rng)
/// let decoder = try TransformerDecoder(layer: layer, count: 6, norm: LayerNorm(size: 64))
/// let y = try decoder(target, memory: memory, targetMask: TorchMask.squareSubsequent(target.shape[1]))
/// ```
///
/// ## Names
///
/// | PyTorch                                            | Swift                                      |
/// |----------------------------------------------------|--------------------------------------------|
/// | `TransformerDecoder(decoder_layer, num_layers, norm)` | ``init(layer:count:norm:)``             |
/// | `layers` (`layers.{i}.…` in the `state_dict`)      | ``layers``                                 |
/// | `norm` (`norm.weight`, `norm.bias`)                | ``norm``                                   |
/// | `forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal, memory_is_causal)` | ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)`` |
public struct TransformerDecoder: TransformerLayerStack, Equatable {
    /// The layers, run in order (`layers`).
    public var layers: [TransformerDecoderLayer]

    /// The final layer norm, applied after the last layer, or `nil` (`norm`).
    public var norm: LayerNorm?

    /// A decoder of the given layers (each with its own parameters) and an optional final norm.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"layers"`) for no layers, or layers of
    ///   different widths; `.shapeMismatch` (`"norm"`) for a norm whose size is not their `dModel`.
    public init(layers: [TransformerDecoderLayer], norm: LayerNorm? = nil) throws {
        self.layers = layers
        self.norm = norm
        try validateTransformerStack(layers, norm: norm)
    }

    /// Runs every layer with the same memory and masks, then the final norm. The shapes and masks
    /// are the layers' (see ``TransformerDecoderLayer/callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``).
    ///
    /// - Parameters:
    ///   - target: `tgt`, the input of the first layer.
    ///   - memory: `memory`, which every layer's cross-attention attends to.
    ///   - targetMask: `tgt_mask`, passed to every layer's self-attention.
    ///   - memoryMask: `memory_mask`, passed to every layer's cross-attention.
    ///   - targetKeyPaddingMask: `tgt_key_padding_mask`, passed to every layer.
    ///   - memoryKeyPaddingMask: `memory_key_padding_mask`, passed to every layer.
    ///   - targetIsCausal: passed to every layer; `nil` (the default, as PyTorch) detects it: `true`
    ///     exactly when `targetMask` is PyTorch's causal `(L, L)` mask (``TorchMask/isCausal(length:)``).
    ///   - memoryIsCausal: passed to every layer (`false` by default, as PyTorch).
    ///   - training: dropout in every layer.
    ///   - dropoutSeed: layer i uses a seed derived from this one and i.
    /// - Throws: the layers' errors; `.invalidArgument` (`"layers"`) or `.shapeMismatch` (`"norm"`)
    ///   when the stored layers or norm were changed to inconsistent values; `.unsupportedDType`
    ///   under the full name (`"layers.1.norm2.weight"`) for a half-precision parameter other than a
    ///   matrix weight.
    public func callAsFunction(
        _ target: Tensor, memory: Tensor, targetMask: TorchMask? = nil, memoryMask: TorchMask? = nil,
        targetKeyPaddingMask: TorchMask? = nil, memoryKeyPaddingMask: TorchMask? = nil,
        targetIsCausal: Bool? = nil, memoryIsCausal: Bool = false, training: Bool = false, dropoutSeed: UInt64 = 0
    ) throws -> Tensor {
        try validateTransformerStack(layers, norm: norm)
        try requireFloat32Parameters()
        let causal = TorchMask.resolvedIsCausal(
            targetIsCausal, mask: targetMask, input: target, batchFirst: layers[0].batchFirst)
        var x = target
        for (index, layer) in layers.enumerated() {
            x = try layer(
                x, memory: memory, targetMask: targetMask, memoryMask: memoryMask,
                targetKeyPaddingMask: targetKeyPaddingMask, memoryKeyPaddingMask: memoryKeyPaddingMask,
                targetIsCausal: causal, memoryIsCausal: memoryIsCausal, training: training,
                dropoutSeed: derivedSeed(dropoutSeed, stream: UInt64(index)))
        }
        if let norm { x = try norm(x) }
        return x
    }
}

extension TransformerDecoder: Layer {
    /// What the protocol call takes: the target and the memory, as for one layer.
    public typealias Input = TransformerDecoderLayer.Inputs

    /// The stack without masks, in evaluation mode: as `callAsFunction(inputs.target, memory: inputs.memory)`.
    ///
    /// - Throws: as ``callAsFunction(_:memory:targetMask:memoryMask:targetKeyPaddingMask:memoryKeyPaddingMask:targetIsCausal:memoryIsCausal:training:dropoutSeed:)``.
    public func callAsFunction(_ inputs: TransformerDecoderLayer.Inputs) throws -> Tensor {
        try callAsFunction(inputs.target, memory: inputs.memory)
    }
}
