internal import CAttention

/// Cross-entropy of each row of `classes` logits against its target (`attn_cross_entropy`): the
/// loss, reduced as `reduction` says, and its gradient with respect to the logits (of the sum of
/// the losses for `.none`): the loss into a new tensor, the gradient over `logits` when no other
/// value shares their storage, else into a new tensor. The caller has checked the shapes and the
/// dtype.
func crossEntropyRows(
    _ logits: inout Tensor, classes: Int, targets: [Int], ignoreIndex: Int, labelSmoothing: Float, reduction: LossReduction,
    lossShape: [Int]
) throws(AttentionError) -> (loss: Tensor, gradient: Tensor) {
    let rows = targets.count
    let loss = try Tensor(uninitializedShape: lossShape, argument: "targets")
    // The kernel writes the gradient over the logits when nothing else holds them.
    let gradient = isKnownUniquelyReferenced(&logits.storage)
        ? logits : try Tensor(uninitializedShape: logits.shape, argument: "logits")
    var params = attn_cross_entropy_params_default()
    (params.rows, params.classes, params.ld_logits, params.ld_dlogits) = (Int64(rows), Int64(classes), Int64(classes), Int64(classes))
    params.ignore_index = Int64(ignoreIndex)
    params.label_smoothing = labelSmoothing
    params.reduction = switch reduction {
    case .mean: ATTN_LOSS_MEAN
    case .sum: ATTN_LOSS_SUM
    case .none: ATTN_LOSS_NONE
    }
    let wide = targets.map { Int64($0) }
    let status = wide.withUnsafeBufferPointer { targets in
        withExtendedLifetime((logits, loss, gradient)) {
            params.logits = UnsafePointer(logits.storage.buffer.baseAddress)
            params.targets = targets.baseAddress
            params.loss = loss.storage.buffer.baseAddress
            params.dlogits = gradient.storage.buffer.baseAddress
            return attn_cross_entropy(&params)
        }
    }
    if let error = AttentionError(
        status: status, function: "attn_cross_entropy", context: "logits \(logits.shape), \(rows) targets")
    {
        throw error
    }
    return (loss, gradient)
}
