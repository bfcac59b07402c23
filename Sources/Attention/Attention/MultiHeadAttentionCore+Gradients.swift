// The backward pass of the one multi-head attention: the in-projection's, the attention's and the
// rotation's pullbacks, which every attention module composes with its own conventions (the
// output projection is a plain Linear, differentiated as one).

/// The gradients of the projected heads, each dense rows `(B, L, heads · dim)`: the query's
/// `(B, Lq, Hq·Dqk)`, the key's `(B, Lk, Hkv·Dqk)`, the value's `(B, Lk, Hkv·Dv)`.
package struct HeadGradients: Sendable {
    var query: Tensor
    var key: Tensor
    var value: Tensor
}

/// The gradients of an in-projection's layers, as ``InputProjections`` holds them.
package enum InputProjectionGradients: Sendable {
    case packed(ParameterGradients<Linear>)
    case separate(query: ParameterGradients<Linear>, key: ParameterGradients<Linear>, value: ParameterGradients<Linear>)
}

/// The backward pass of ``MultiHeadAttentionCore/projectWithPullback(query:key:value:with:rotary:starts:)``.
package struct ProjectionPullback: Sendable {
    let core: MultiHeadAttentionCore
    let query: Tensor, key: Tensor, value: Tensor
    let projections: InputProjections
    let rotary: RotaryPositionalEmbedding?
    let starts: [Int]?
    let products: MatrixProducts

    /// The layers' gradients and the inputs' (batch-major, as given to the projection). With
    /// `summingShared`, an input given for several arguments gets one gradient, their sum, in the
    /// first of them (the others `nil`): what a module whose input is that one tensor needs.
    /// Otherwise each argument gets its own.
    package func callAsFunction(
        _ heads: HeadGradients, summingShared: Bool
    ) throws -> (layers: InputProjectionGradients, query: Tensor, key: Tensor?, value: Tensor?) {
        var (dq, dk, dv) = (heads.query, heads.key, heads.value)
        if let rotary {
            let starts = starts ?? Array(repeating: 0, count: query.shape[0])
            try rotary.rotate(projection: &dq, offset: 0, heads: core.heads, starts: starts, inverse: true)
            try rotary.rotate(projection: &dk, offset: 0, heads: core.keyValueHeads, starts: starts, inverse: true)
        }
        let keyIsQuery = summingShared && isSameTensor(query, key)
        let valueIsKey = summingShared && isSameTensor(key, value)
        switch projections {
        case let .packed(linear):
            let (q, k, v) = core.widths
            let blocks = [0..<q, q..<(q + k), (q + k)..<(q + k + v)]
            var weight = try Tensor(uninitializedShape: linear.weight.shape, argument: "weight")
            var bias = linear.bias == nil ? nil : try Tensor(uninitializedShape: linear.outputShape, argument: "bias")
            for (index, block) in blocks.enumerated() {
                try linear.parameterGradients(
                    input: [query, key, value][index], outputGradient: [dq, dk, dv][index], outputs: block,
                    weight: &weight, bias: &bias, products: products)
            }
            var values = linear
            (values.weight, values.bias) = (weight, bias)
            let inputs = try inputGradients(
                (linear, linear, linear), blocks: blocks, dq: dq, dk: dk, dv: dv, keyIsQuery: keyIsQuery, valueIsKey: valueIsKey)
            return (.packed(ParameterGradients(values: values)), inputs.0, inputs.1, inputs.2)
        case let .separate(queryLayer, keyLayer, valueLayer):
            func gradients(_ layer: Linear, _ input: Tensor, _ dy: Tensor) throws -> ParameterGradients<Linear> {
                var weight = try Tensor(uninitializedShape: layer.weight.shape, argument: "weight")
                var bias = layer.bias == nil ? nil : try Tensor(uninitializedShape: layer.outputShape, argument: "bias")
                try layer.parameterGradients(
                    input: input, outputGradient: dy, weight: &weight, bias: &bias, products: products)
                var values = layer
                (values.weight, values.bias) = (weight, bias)
                return ParameterGradients(values: values)
            }
            let layers = InputProjectionGradients.separate(
                query: try gradients(queryLayer, query, dq), key: try gradients(keyLayer, key, dk),
                value: try gradients(valueLayer, value, dv))
            let inputs = try inputGradients(
                (queryLayer, keyLayer, valueLayer), blocks: [nil, nil, nil], dq: dq, dk: dk, dv: dv,
                keyIsQuery: keyIsQuery, valueIsKey: valueIsKey)
            return (layers, inputs.0, inputs.1, inputs.2)
        }
    }

    /// `dy · W` for each argument, summed into the first of the arguments that are one tensor
    /// when `keyIsQuery` or `valueIsKey` say so.
    private func inputGradients(
        _ layers: (Linear, Linear, Linear), blocks: [Range<Int>?], dq: Tensor, dk: Tensor, dv: Tensor, keyIsQuery: Bool,
        valueIsKey: Bool
    ) throws -> (Tensor, Tensor?, Tensor?) {
        var dQuery = try layers.0.inputGradient(dq, inputShape: query.shape, outputs: blocks[0], products: products)
        var dKey: Tensor? = nil
        if keyIsQuery {
            try layers.1.addInputGradient(dk, outputs: blocks[1], to: &dQuery, accumulate: true, products: products)
        } else {
            dKey = try layers.1.inputGradient(dk, inputShape: key.shape, outputs: blocks[1], products: products)
        }
        var dValue: Tensor? = nil
        if valueIsKey && keyIsQuery {
            try layers.2.addInputGradient(dv, outputs: blocks[2], to: &dQuery, accumulate: true, products: products)
        } else if valueIsKey {
            try layers.2.addInputGradient(dv, outputs: blocks[2], to: &dKey!, accumulate: true, products: products)
        } else {
            dValue = try layers.2.inputGradient(dv, inputShape: value.shape, outputs: blocks[2], products: products)
        }
        return (dQuery, dKey, dValue)
    }
}

/// The backward pass of ``MultiHeadAttentionCore/attendWithPullback(_:mask:scale:dropout:broadcastDropout:maskedRows:returningWeights:context:)``:
/// from the gradient of the attention's output `(B, Lq, Hq·Dv)` to the heads' gradients.
package struct AttentionHeadsPullback: Sendable {
    let call: AttentionKernelCall
    let output: Tensor
    let logSumExp: Tensor

    package func callAsFunction(_ outputGradient: Tensor) throws(AttentionError) -> HeadGradients {
        let (q, k, v) = (call.query, call.key, call.value)
        func dense(_ heads: StridedHeads) throws(AttentionError) -> Tensor {
            try Tensor(uninitializedShape: [heads.batch, heads.length, heads.heads * heads.dim], argument: "heads")
        }
        let gradients = HeadGradients(query: try dense(q), key: try dense(k), value: try dense(v))
        if q.batch == 0 || q.length == 0 || k.length == 0 || q.heads == 0 {
            return HeadGradients(
                query: gradients.query.filled(with: 0), key: gradients.key.filled(with: 0),
                value: gradients.value.filled(with: 0))
        }
        func view(_ tensor: Tensor, like heads: StridedHeads) -> StridedHeads {
            StridedHeads(
                dense: tensor, layout: .sequence, batch: heads.batch, length: heads.length, heads: heads.heads, dim: heads.dim)
        }
        let outputHeads = StridedHeads(
            dense: output, layout: .sequence, batch: q.batch, length: q.length, heads: q.heads, dim: v.dim)
        try call.backward(
            output: outputHeads, logSumExp: logSumExp,
            outputGradient: StridedHeads(
                dense: outputGradient, layout: .sequence, batch: q.batch, length: q.length, heads: q.heads, dim: v.dim),
            into: AttentionGradientHeads(
                query: view(gradients.query, like: q), key: view(gradients.key, like: k),
                value: view(gradients.value, like: v), bias: nil),
            context: "the attention backward of query heads \(q.summary), key heads \(k.summary)")
        return gradients
    }
}

extension MultiHeadAttentionCore {
    /// ``project(query:key:value:with:products:rotary:starts:)``, with the pullback of the
    /// projection (and of the rotation), whose products are formed as the forward's.
    ///
    /// - Throws: as ``project(query:key:value:with:products:rotary:starts:)``.
    package func projectWithPullback(
        query: Tensor, key: Tensor, value: Tensor, with projections: InputProjections, products: MatrixProducts = .float32,
        rotary: RotaryPositionalEmbedding? = nil, starts: [Int]? = nil
    ) throws -> (heads: ProjectedHeads, pullback: ProjectionPullback) {
        let heads = try project(
            query: query, key: key, value: value, with: projections, products: products, rotary: rotary, starts: starts)
        return (heads, ProjectionPullback(
            core: self, query: query, key: key, value: value, projections: projections, rotary: rotary, starts: starts,
            products: products))
    }

    /// ``attend(_:mask:scale:dropout:broadcastDropout:maskedRows:returningWeights:algorithm:context:)``
    /// with `algorithm` (the fused kernel by default; the pullback's backward kernel is its
    /// pair), keeping the log-sum-exp, with the pullback of the attention.
    ///
    /// - Throws: `AttentionError.unsupported` before any work for a call the backward kernels do
    ///   not differentiate (broadcast dropout over grouped-query heads); otherwise as that method.
    func attendWithPullback(
        _ heads: ProjectedHeads, mask: KernelMask = KernelMask(), scale: Float? = nil, dropout: Dropout? = nil,
        broadcastDropout: Bool = false, maskedRows: MaskedRowPolicy, returningWeights: Bool = false,
        algorithm: AttentionAlgorithm = .fused, context: @autoclosure () -> String
    ) throws -> (output: Tensor, weights: Tensor?, pullback: AttentionHeadsPullback) {
        try AttentionKernelCall.requireBackward(
            dropout: dropout, broadcastDropout: broadcastDropout, queryHeads: heads.query.heads,
            keyValueHeads: heads.key.heads)
        let (call, output, logSumExp, weights) = try run(
            heads, mask: mask, scale: scale, dropout: dropout, broadcastDropout: broadcastDropout, maskedRows: maskedRows,
            returningWeights: returningWeights, algorithm: algorithm, savingLogSumExp: true, context: context())
        return (output, weights, AttentionHeadsPullback(call: call, output: output, logSumExp: logSumExp!))
    }

    /// The package's ``attend(_:mask:outputDType:context:)`` under a public ``AttentionMask``,
    /// in `float32`, with the pullback of the attention (a model's own masks: Llama's causal one).
    ///
    /// - Throws: as that method.
    package func attendWithPullback(
        _ heads: ProjectedHeads, mask: AttentionMask, context: @autoclosure () -> String
    ) throws -> (output: Tensor, pullback: AttentionHeadsPullback) {
        let scores = [heads.query.batch, heads.query.heads, heads.query.length, heads.key.length]
        let result = try attendWithPullback(
            heads, mask: try KernelMask(mask, scores: scores), maskedRows: .zero, context: context())
        return (result.output, result.pullback)
    }
}

/// The backward pass of ``MultiHeadAttentionCore/attendWithPullback(_:sequenceLengths:causal:context:)``:
/// one backward call per packed sequence, on views of its rows.
package struct PackedAttentionPullback: Sendable {
    let call: AttentionKernelCall
    let heads: ProjectedHeads
    let output: Tensor
    let sequenceLengths: [Int]
    /// Each sequence's log-sum-exp, `(1, Hq, length)`.
    let logSumExps: [Tensor]

    package func callAsFunction(_ outputGradient: Tensor) throws(AttentionError) -> HeadGradients {
        let (q, k, v) = (heads.query, heads.key, heads.value)
        func dense(_ heads: StridedHeads) throws(AttentionError) -> Tensor {
            try Tensor(uninitializedShape: [heads.batch, heads.length, heads.heads * heads.dim], argument: "heads")
                .filled(with: 0)
        }
        let gradients = HeadGradients(query: try dense(q), key: try dense(k), value: try dense(v))
        func view(_ tensor: Tensor, like heads: StridedHeads) -> StridedHeads {
            StridedHeads(dense: tensor, layout: .sequence, batch: 1, length: heads.length, heads: heads.heads, dim: heads.dim)
        }
        let outputHeads = StridedHeads(dense: output, layout: .sequence, batch: 1, length: q.length, heads: q.heads, dim: v.dim)
        let outputGradientHeads = StridedHeads(
            dense: outputGradient, layout: .sequence, batch: 1, length: q.length, heads: q.heads, dim: v.dim)
        var call = call
        var offset = 0
        for (length, logSumExp) in zip(sequenceLengths, logSumExps) where length > 0 {
            let rows = { (view: StridedHeads) in view.rows(offset, length) }
            (call.query, call.key, call.value) = (rows(q), rows(k), rows(v))
            try call.backward(
                output: rows(outputHeads), logSumExp: logSumExp, outputGradient: rows(outputGradientHeads),
                into: AttentionGradientHeads(
                    query: rows(view(gradients.query, like: q)), key: rows(view(gradients.key, like: k)),
                    value: rows(view(gradients.value, like: v)), bias: nil),
                context: "the attention backward of a sequence of \(length) tokens at row \(offset)")
            offset += length
        }
        return gradients
    }
}

extension StridedHeads {
    /// The view of positions `start ..< start + count`.
    func rows(_ start: Int, _ count: Int) -> StridedHeads {
        var view = self
        view.offset += start * positionStride
        view.length = count
        return view
    }
}

extension MultiHeadAttentionCore {
    /// ``attend(_:sequenceLengths:causal:scale:threads:outputDType:context:)`` in `float32` at
    /// the default scale, keeping each sequence's log-sum-exp, with the pullback of the attention.
    ///
    /// - Throws: as that method.
    package func attendWithPullback(
        _ heads: ProjectedHeads, sequenceLengths: [Int], causal: AttentionMask.Causal = .none,
        context: @autoclosure () -> String
    ) throws(AttentionError) -> (output: Tensor, pullback: PackedAttentionPullback) {
        var call = AttentionKernelCall(query: heads.query, key: heads.key, value: heads.value)
        call.mask.causal = causal
        call.scale = 1 / Float(heads.query.dim).squareRoot()
        let total = heads.query.length
        let output = try Tensor(uninitializedShape: [total, heads.query.heads * heads.value.dim], argument: "output")
        let written = StridedHeads(
            dense: output, layout: .sequence, batch: 1, length: total, heads: heads.query.heads, dim: heads.value.dim)
        var logSumExps: [Tensor] = []
        var offset = 0
        for length in sequenceLengths {
            let logSumExp = try Tensor(uninitializedShape: [1, heads.query.heads, length], argument: "logSumExp")
            logSumExps.append(logSumExp)
            if length > 0 {
                (call.query, call.key, call.value) = (
                    heads.query.rows(offset, length), heads.key.rows(offset, length), heads.value.rows(offset, length))
                try call.write(
                    into: written.rows(offset, length), logSumExp: logSumExp,
                    context: "sequence of \(length) tokens at row \(offset) of \(context())")
            }
            offset += length
        }
        return (output, PackedAttentionPullback(
            call: call, heads: heads, output: output, sequenceLengths: sequenceLengths, logSumExps: logSumExps))
    }
}
