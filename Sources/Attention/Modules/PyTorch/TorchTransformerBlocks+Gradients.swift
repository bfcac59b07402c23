// The pullbacks of the blocks PyTorch's transformer layers share (TorchTransformerBlocks.swift):
// the feed-forward block, the residual connection with its norm, and the attention block (self-
// or cross-attention).

/// What the block pullbacks of one layer call write: the layer's parameters' gradients and, for
/// a decoder layer, the memory's (the cross-attention's keys and values), summed over the blocks
/// that read it.
struct BlockGradients<Layer: ParameterizedModule>: Sendable {
    var parameters: ParameterGradients<Layer>
    /// The gradient of the memory in its layout, `nil` until a cross-attention block adds one.
    var memory: Tensor? = nil

    /// Zero gradients for every parameter of `layer`, and none for the memory yet.
    init(zerosFor layer: Layer) throws {
        parameters = try ParameterGradients(zerosFor: layer)
    }

    /// Adds `gradient` to the memory's.
    mutating func addMemoryGradient(_ gradient: Tensor) throws {
        memory = try memory.map { try $0 + gradient } ?? gradient
    }
}

/// A block's backward pass: from the gradient of its output to its parameters' gradients (and
/// the memory's), written into the layer's, and its input's gradient.
typealias BlockPullback<Layer: ParameterizedModule> = @Sendable (Tensor, inout BlockGradients<Layer>) throws -> Tensor

extension TorchTransformerLayer where Self: DifferentiableLayer {
    /// ``feedForwardBlock(_:_:)`` with its pullback, which writes the gradients of `linear1` and
    /// `linear2` (at `linear1Path` and `linear2Path`).
    func feedForwardBlockWithPullback(
        _ x: Tensor, _ call: TransformerLayerCall, linear1Path: WritableKeyPath<Self, Linear> & Sendable,
        linear2Path: WritableKeyPath<Self, Linear> & Sendable
    ) throws -> (Tensor, BlockPullback<Self>) {
        let (hidden, back1) = try linear1.callWithPullback(x)
        let (active, backActivation) = try activation.callWithPullback(hidden)
        let hiddenDropout = try call.dropout(at: .feedForwardHidden, probability: dropout)
        let (out, back2) = try linear2.callWithPullback(try hiddenDropout.map { try $0(active) } ?? active)
        let outputDropout = try call.dropout(at: .feedForwardOutput, probability: dropout)
        let y = try outputDropout.map { try $0(out) } ?? out
        return (y, { dy, gradients in
            let g2 = try back2(try outputDropout.map { try $0(dy) } ?? dy)
            let dActive = try hiddenDropout.map { try $0(g2.input) } ?? g2.input
            let g1 = try back1(try backActivation(dActive).input)
            gradients.parameters.assign(g2.parameters, to: linear2Path)
            gradients.parameters.assign(g1.parameters, to: linear1Path)
            return g1.input
        })
    }

    /// ``residual(_:norm:_:)`` with its pullback: `x + block(norm(x))` pre-norm,
    /// `norm(x + block(x))` post-norm; the norm's gradients go to `normPath`.
    func residualWithPullback(
        _ x: Tensor, norm: LayerNorm, normPath: WritableKeyPath<Self, LayerNorm> & Sendable,
        _ block: (Tensor) throws -> (Tensor, BlockPullback<Self>)
    ) throws -> (Tensor, BlockPullback<Self>) {
        if normFirst {
            let (normalized, backNorm) = try norm.callWithPullback(x)
            let (y, backBlock) = try block(normalized)
            return (try x.adding(y), { dy, gradients in
                let g = try backNorm(try backBlock(dy, &gradients))
                gradients.parameters.assign(g.parameters, to: normPath)
                return try dy + g.input
            })
        }
        let (y, backBlock) = try block(x)
        let (out, backNorm) = try norm.callWithPullback(try x.adding(y))
        return (out, { dy, gradients in
            let g = try backNorm(dy)
            gradients.parameters.assign(g.parameters, to: normPath)
            return try g.input + backBlock(g.input, &gradients)
        })
    }
}

extension TorchMultiheadAttention {
    /// ``transformerBlock(query:memory:mask:keyPaddingMask:causal:maskedRows:call:sites:outputDropout:names:)``
    /// with its pullback: the attention's gradients go to `path` of the layer. For
    /// self-attention (`memory` `nil`: the query itself) the input's gradient is the sum over the
    /// query, key and value; for cross-attention it is the query's, and the key's and value's
    /// are added to the memory's.
    func attentionBlockWithPullback<Layer: ParameterizedModule>(
        _ x: Tensor, memory: Tensor? = nil, mask: TorchMask?, keyPaddingMask: TorchMask?, causal: CausalMasking,
        maskedRows: MaskedRowPolicy, call: TransformerLayerCall,
        sites: (weights: TransformerDropoutSite, output: TransformerDropoutSite), outputDropout: Float,
        names: [String: String], path: WritableKeyPath<Layer, TorchMultiheadAttention> & Sendable
    ) throws -> (Tensor, BlockPullback<Layer>) {
        let result: AttentionResult, backward: TorchAttentionBackward?
        do {
            (result, backward) = try forward(
                query: x, key: memory ?? x, value: memory ?? x, keyPaddingMask: keyPaddingMask, needWeights: false,
                attentionMask: mask, averageAttentionWeights: true, causal: causal, maskedRows: maskedRows,
                dropout: call.dropout(at: sites.weights, probability: dropout), recording: true)
        } catch let error as AttentionError {
            throw error.renamingArgument { names[$0] ?? $0 }
        }
        let drop = try call.dropout(at: sites.output, probability: outputDropout)
        let y = try drop.map { try $0(result.output) } ?? result.output
        let crossAttention = memory != nil
        return (y, { dy, gradients in
            // Cross-attention keeps the query's gradient apart from the memory's (key and value).
            let g = try backward!(try drop.map { try $0(dy) } ?? dy, summingShared: !crossAttention)
            gradients.parameters.assign(g.parameters, to: path)
            if crossAttention { try gradients.addMemoryGradient(try g.key! + g.value!) }
            return g.query
        })
    }
}
