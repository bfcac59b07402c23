// The blocks PyTorch's transformer layers share, written once for TransformerEncoderLayer and
// TransformerDecoderLayer and their stacks: an attention block over TorchMultiheadAttention, the
// feed-forward block, the residual connection with its norm before or after the block, the
// dropout sites of one call, the stacks' checks and their causal-mask detection.

/// A dropout site of a transformer layer; each draws from its own stream of the call's seed. The
/// encoder layer has the first four, the decoder layer all six.
enum TransformerDropoutSite: UInt64 {
    /// The self-attention's weights (`self_attn.dropout`).
    case selfAttentionWeights = 0
    /// After the self-attention (`dropout1`).
    case selfAttentionOutput = 1
    /// Inside the feed-forward network, after the activation (`dropout`).
    case feedForwardHidden = 2
    /// After the feed-forward network (the encoder's `dropout2`, the decoder's `dropout3`).
    case feedForwardOutput = 3
    /// The cross-attention's weights (`multihead_attn.dropout`).
    case crossAttentionWeights = 4
    /// After the cross-attention (the decoder's `dropout2`).
    case crossAttentionOutput = 5
}

/// One call of a transformer layer: whether it trains (PyTorch's `train()` mode) and the seed of
/// its dropout sites.
struct TransformerLayerCall {
    var training: Bool
    var dropoutSeed: UInt64

    /// The dropout of `site` in this call: `nil` out of training or at probability 0.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"dropout"`) for a probability outside `[0, 1)`.
    func dropout(at site: TransformerDropoutSite, probability: Float) throws(AttentionError) -> Dropout? {
        try Dropout.forCall(
            probability: probability, probabilityArgument: "dropout", training: training,
            seed: derivedSeed(dropoutSeed, stream: site.rawValue))
    }

    /// `x` after the dropout of `site` (`x` itself when there is none).
    func applyingDropout(at site: TransformerDropoutSite, probability: Float, to x: Tensor) throws -> Tensor {
        try dropout(at: site, probability: probability).map { try $0(x) } ?? x
    }
}

/// What PyTorch's transformer layers have in common: the feed-forward network
/// `linear2(dropout(activation(linear1(x))))`, where the norms sit (`norm_first`), the width and
/// the batch layout.
protocol TorchTransformerLayer: ParameterizedModule {
    /// `linear1`, `(dim_feedforward, d_model)`.
    var linear1: Linear { get }
    /// `linear2`, `(d_model, dim_feedforward)`.
    var linear2: Linear { get }
    /// The feed-forward activation.
    var activation: Activation { get }
    /// The probability of the layer's own dropout sites.
    var dropout: Float { get }
    /// Pre-norm (`true`) or post-norm.
    var normFirst: Bool { get }
    /// E (`d_model`).
    var dModel: Int { get }
    /// Whether batched inputs are `(N, L, E)`.
    var batchFirst: Bool { get }
}

extension TorchTransformerLayer {
    /// PyTorch's `_ff_block`: `dropoutOut(linear2(dropout(activation(linear1(x)))))`, the last
    /// dropout being the encoder's `dropout2` or the decoder's `dropout3`.
    func feedForwardBlock(_ x: Tensor, _ call: TransformerLayerCall) throws -> Tensor {
        let hidden = try call.applyingDropout(at: .feedForwardHidden, probability: dropout, to: activation(linear1(x)))
        return try call.applyingDropout(at: .feedForwardOutput, probability: dropout, to: linear2(hidden))
    }

    /// A block with its residual connection and norm: `x + block(norm(x))` pre-norm,
    /// `norm(x + block(x))` post-norm.
    func residual(_ x: Tensor, norm: LayerNorm, _ block: (Tensor) throws -> Tensor) throws -> Tensor {
        normFirst ? try x.adding(block(norm(x))) : try norm(x.adding(block(x)))
    }
}

extension TorchMultiheadAttention {
    /// A transformer layer's attention block (PyTorch's `_sa_block` and `_mha_block`): attention of
    /// `query` over `memory` (keys and values; the query itself for self-attention) without
    /// weights, then the output dropout.
    ///
    /// - Parameters:
    ///   - causal: how `isCausal` combines with `mask`; `maskedRows`: what a fully masked row gives.
    ///   - sites: the dropout sites of the attention weights and of the block's output.
    ///   - names: the layer's names for the attention's arguments (`"attentionMask"`: `"memoryMask"`),
    ///     used in errors; arguments not in it keep their name.
    /// - Throws: the attention's errors, renamed.
    func transformerBlock(
        query: Tensor, memory: Tensor, mask: TorchMask?, keyPaddingMask: TorchMask?, causal: CausalMasking,
        maskedRows: MaskedRowPolicy, call: TransformerLayerCall,
        sites: (weights: TransformerDropoutSite, output: TransformerDropoutSite), outputDropout: Float,
        names: [String: String]
    ) throws -> Tensor {
        let attended: Tensor
        do {
            attended = try forward(
                query: query, key: memory, value: memory, keyPaddingMask: keyPaddingMask, needWeights: false,
                attentionMask: mask, averageAttentionWeights: true, causal: causal, maskedRows: maskedRows,
                dropout: call.dropout(at: sites.weights, probability: dropout)
            ).result.output
        } catch let error as AttentionError {
            throw error.renamingArgument { names[$0] ?? $0 }
        }
        return try call.applyingDropout(at: sites.output, probability: outputDropout, to: attended)
    }
}

/// The checks of a stack of transformer layers (``TransformerEncoder``, ``TransformerDecoder``):
/// at least one layer, one width, a final norm of that width.
///
/// - Throws: `AttentionError.invalidArgument` (`"layers"`); `.shapeMismatch` (`"norm"`).
func validateTransformerStack(_ layers: [some TorchTransformerLayer], norm: LayerNorm?) throws(AttentionError) {
    guard let first = layers.first else {
        throw .invalidArgument(argument: "layers", reason: "must hold at least one layer")
    }
    for (index, layer) in layers.enumerated() where layer.dModel != first.dModel {
        throw .invalidArgument(
            argument: "layers", reason: "layer \(index) has dModel \(layer.dModel), layer 0 has \(first.dModel)")
    }
    if let norm, norm.size != first.dModel {
        throw .shapeMismatch(argument: "norm", expected: "size \(first.dModel) (dModel)", actual: [norm.size])
    }
}

extension TorchMask {
    /// PyTorch's `_detect_is_causal_mask(mask, is_causal, _get_seq_len(input, batch_first))`:
    /// `isCausal` when given; otherwise whether `mask` is the causal mask of the input's length
    /// (L of `(L, E)`, of `(N, L, E)` with `batchFirst`, of `(L, N, E)` without).
    static func resolvedIsCausal(_ isCausal: Bool?, mask: TorchMask?, input: Tensor, batchFirst: Bool) -> Bool {
        if let isCausal { return isCausal }
        let length = switch input.rank {
        case 2: input.shape[0]
        case 3: batchFirst ? input.shape[1] : input.shape[0]
        default: 0  // the layers reject the shape
        }
        return mask?.isCausal(length: length) ?? false
    }
}
