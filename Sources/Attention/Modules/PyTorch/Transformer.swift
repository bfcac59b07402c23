/// PyTorch's `torch.nn.Transformer`: a ``TransformerEncoder`` over the source and a
/// ``TransformerDecoder`` over the target that attends to the encoder's output, each with its
/// final layer norm, as PyTorch always builds them.
///
/// ```
/// memory = encoder(src, src_mask, src_key_padding_mask, src_is_causal)      // then encoder.norm
/// output = decoder(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
///                  memory_key_padding_mask, tgt_is_causal, memory_is_causal)  // then decoder.norm
/// ```
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let model = try Transformer(dModel: 64, heads: 4, encoderLayerCount: 2, decoderLayerCount: 2,
///                             feedForwardSize: 128, batchFirst: true, using: &rng)
/// let source = try Tensor(randomNormal: [2, 12, 64], using: &rng)     // (N, S, E)
/// let target = try Tensor(randomNormal: [2, 7, 64], using: &rng)      // (N, L, E)
/// let y = try model(source, target: target, targetMask: TorchMask.squareSubsequent(7))   // (2, 7, 64)
/// ```
///
/// ## Names
///
/// | PyTorch                                      | Swift                                          |
/// |----------------------------------------------|------------------------------------------------|
/// | `Transformer(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048, dropout=0.1, activation, layer_norm_eps, batch_first, norm_first, bias)` | ``init(dModel:heads:encoderLayerCount:decoderLayerCount:feedForwardSize:dropout:activation:layerNormEpsilon:batchFirst:normFirst:bias:using:)`` |
/// | `custom_encoder`, `custom_decoder`           | ``init(encoder:decoder:)``                     |
/// | `encoder`, `decoder` (`encoder.layers.{i}.…`, `encoder.norm.weight`, `decoder.norm.bias`, ...) | ``encoder``, ``decoder`` |
/// | `d_model`, `nhead`, `batch_first`            | ``dModel``, ``heads``, ``batchFirst``          |
/// | `forward(src, tgt, src_mask, tgt_mask, memory_mask, src_key_padding_mask, tgt_key_padding_mask, memory_key_padding_mask, src_is_causal, tgt_is_causal, memory_is_causal)` | ``callAsFunction(_:target:sourceMask:targetMask:memoryMask:sourceKeyPaddingMask:targetKeyPaddingMask:memoryKeyPaddingMask:sourceIsCausal:targetIsCausal:memoryIsCausal:training:dropoutSeed:)`` |
/// | `generate_square_subsequent_mask(sz)`        | ``TorchMask/squareSubsequent(_:)``             |
public struct Transformer: ParameterizedModule, Equatable {
    /// The encoder (`encoder`), with its final norm (`encoder.norm`) when built by
    /// ``init(dModel:heads:encoderLayerCount:decoderLayerCount:feedForwardSize:dropout:activation:layerNormEpsilon:batchFirst:normFirst:bias:using:)``.
    public var encoder: TransformerEncoder

    /// The decoder (`decoder`), with its final norm (`decoder.norm`) when built by
    /// ``init(dModel:heads:encoderLayerCount:decoderLayerCount:feedForwardSize:dropout:activation:layerNormEpsilon:batchFirst:normFirst:bias:using:)``.
    public var decoder: TransformerDecoder

    /// The model width E (`d_model`): the encoder's first layer's (0 when the encoder was left
    /// without layers, which a call rejects).
    public var dModel: Int { encoder.layers.first?.dModel ?? 0 }

    /// The number of attention heads of the encoder's first layer (`nhead`; 0 without layers).
    public var heads: Int { encoder.layers.first?.heads ?? 0 }

    /// Whether batched inputs are `(N, L, E)` rather than `(L, N, E)` (`batch_first`), as the
    /// encoder's first layer says.
    public var batchFirst: Bool { encoder.layers.first?.batchFirst ?? false }

    /// Creates the model PyTorch's `nn.Transformer` builds: `encoderLayerCount` clones of a
    /// ``TransformerEncoderLayer`` and a final ``LayerNorm``, `decoderLayerCount` clones of a
    /// ``TransformerDecoderLayer`` and a final norm, then PyTorch's `_reset_parameters`: every
    /// parameter of two or more dimensions (the projection and linear weights) redrawn
    /// Xavier-uniform, layer by layer, so the clones differ. Biases keep the layers'
    /// initialisation.
    ///
    /// - Parameters:
    ///   - dModel: E, at least 1; 512 by default.
    ///   - heads: H, dividing E; 8 by default.
    ///   - encoderLayerCount: the encoder layers (`num_encoder_layers`), at least 1; 6 by default.
    ///   - decoderLayerCount: the decoder layers (`num_decoder_layers`), at least 1; 6 by default.
    ///   - feedForwardSize: every layer's feed-forward width; 2048 by default.
    ///   - dropout: every dropout probability in training, in `[0, 1)`; 0.1 by default.
    ///   - activation: the layers' feed-forward activation, `.relu` by default.
    ///   - layerNormEpsilon: every layer norm's epsilon; 1e-5 by default.
    ///   - batchFirst: `(N, L, E)` batched inputs.
    ///   - normFirst: pre-norm layers.
    ///   - bias: whether the projections, linear layers and layer norms have biases.
    ///   - generator: the source of the initial parameters.
    /// - Throws: the layers' `AttentionError.invalidArgument` (`"dModel"`, `"heads"`,
    ///   `"feedForwardSize"`, `"dropout"`, `"epsilon"`); `.invalidArgument`
    ///   (`"encoderLayerCount"`, `"decoderLayerCount"`) for a count below 1, `.overflow` or
    ///   `.outOfMemory` for one too large to allocate.
    public init(
        dModel: Int = 512, heads: Int = 8, encoderLayerCount: Int = 6, decoderLayerCount: Int = 6,
        feedForwardSize: Int = 2048, dropout: Float = 0.1, activation: Activation = .relu,
        layerNormEpsilon: Float = 1e-5, batchFirst: Bool = false, normFirst: Bool = false, bias: Bool = true,
        using generator: inout some RandomNumberGenerator
    ) throws {
        for (name, count) in [("encoderLayerCount", encoderLayerCount), ("decoderLayerCount", decoderLayerCount)]
        where count < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(count)")
        }
        try checkAllocatable(encoderLayerCount, of: TransformerEncoderLayer.self, argument: "encoderLayerCount")
        try checkAllocatable(decoderLayerCount, of: TransformerDecoderLayer.self, argument: "decoderLayerCount")
        let encoderLayer = try TransformerEncoderLayer(
            dModel: dModel, heads: heads, feedForwardSize: feedForwardSize, dropout: dropout, activation: activation,
            layerNormEpsilon: layerNormEpsilon, batchFirst: batchFirst, normFirst: normFirst, bias: bias,
            using: &generator)
        let decoderLayer = try TransformerDecoderLayer(
            dModel: dModel, heads: heads, feedForwardSize: feedForwardSize, dropout: dropout, activation: activation,
            layerNormEpsilon: layerNormEpsilon, batchFirst: batchFirst, normFirst: normFirst, bias: bias,
            using: &generator)
        let norm = try LayerNorm(size: dModel, epsilon: layerNormEpsilon, bias: bias)
        encoder = try TransformerEncoder(layer: encoderLayer, count: encoderLayerCount, norm: norm)
        decoder = try TransformerDecoder(layer: decoderLayer, count: decoderLayerCount, norm: norm)
        try redrawMatrixParameters(using: &generator)
    }

    /// A model of a given encoder and decoder (PyTorch's `custom_encoder` and `custom_decoder`),
    /// used as they are: no parameter is redrawn.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"decoder"`) when the decoder's width or batch
    ///   layout is not the encoder's, (`"encoder.layers"`, `"decoder.layers"`) for a stack without
    ///   layers or of mixed widths; `.shapeMismatch` (`"encoder.norm"`, `"decoder.norm"`) for a
    ///   final norm of another width.
    public init(encoder: TransformerEncoder, decoder: TransformerDecoder) throws {
        (self.encoder, self.decoder) = (encoder, decoder)
        try validate()
    }

    /// Checks the encoder and the decoder (changed through their public properties, say) and that
    /// they agree on the width and the batch layout.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"encoder.layers"`, `"decoder.layers"`,
    ///   `"decoder"`); `.shapeMismatch` (`"encoder.norm"`, `"decoder.norm"`).
    func validate() throws(AttentionError) {
        do {
            try validateTransformerStack(encoder.layers, norm: encoder.norm)
        } catch {
            throw error.renamingArgument { "encoder.\($0)" }
        }
        do {
            try validateTransformerStack(decoder.layers, norm: decoder.norm)
        } catch {
            throw error.renamingArgument { "decoder.\($0)" }
        }
        let (first, last) = (encoder.layers[0], decoder.layers[0])
        guard last.dModel == first.dModel, last.batchFirst == first.batchFirst else {
            throw .invalidArgument(
                argument: "decoder",
                reason: "has dModel \(last.dModel) and batchFirst \(last.batchFirst), the encoder "
                    + "\(first.dModel) and \(first.batchFirst)")
        }
    }

    /// PyTorch's `_reset_parameters`: `xavier_uniform_` on every parameter of two or more
    /// dimensions, in `state_dict` order (fan in the second dimension, fan out the first).
    private mutating func redrawMatrixParameters(using generator: inout some RandomNumberGenerator) throws {
        for entry in parameterPaths where entry.storage == .whole {
            let shape = self[keyPath: entry.path].shape
            guard shape.count == 2 else { continue }
            self[keyPath: entry.path] = try .xavierUniform(shape, fanIn: shape[1], fanOut: shape[0], using: &generator)
        }
    }

    /// The encoder's and the decoder's ``ParameterizedModule/matrixWeightNames``, prefixed.
    public var matrixWeightNames: Set<String> {
        matrixWeightNames(of: \.encoder, prefixedBy: "encoder").union(matrixWeightNames(of: \.decoder, prefixedBy: "decoder"))
    }

    /// PyTorch's `state_dict` names, in its order: `encoder.layers.{i}.…`, `encoder.norm.weight`,
    /// `encoder.norm.bias`, `decoder.layers.{i}.…`, `decoder.norm.weight`, `decoder.norm.bias`.
    public var parameterPaths: [ParameterPath<Transformer>] {
        parameterPaths(of: \.encoder, prefixedBy: "encoder") + parameterPaths(of: \.decoder, prefixedBy: "decoder")
    }
}
