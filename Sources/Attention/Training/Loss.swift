/// How a loss over many elements is reduced to what it returns, as PyTorch's `reduction`.
public enum LossReduction: Sendable, Hashable, CaseIterable {
    /// The mean over the counted elements (for cross-entropy, the rows not ignored).
    case mean
    /// The sum.
    case sum
    /// No reduction: one loss per element (per row for cross-entropy).
    case none
}

/// A loss and its gradient with respect to the prediction, computed together.
///
/// ```swift
/// let loss = try crossEntropy(logits: logits, targets: targets)
/// print(loss.value.scalars[0])                   // the mean loss
/// let gradients = try pullback(loss.gradient)    // into the model's backward pass
/// ```
public struct Loss: Sendable, Equatable {
    /// The loss: a scalar (shape `[]`) for ``LossReduction/mean`` and ``LossReduction/sum``, one
    /// value per element (or row) for ``LossReduction/none``.
    public var value: Tensor
    /// The gradient of ``value`` (of its sum, for ``LossReduction/none``) with respect to the
    /// prediction, shaped as the prediction.
    public var gradient: Tensor

    /// A loss from its parts.
    public init(value: Tensor, gradient: Tensor) {
        (self.value, self.gradient) = (value, gradient)
    }
}

/// The cross-entropy of `logits` against class `targets`, with its gradient, as
/// `torch.nn.functional.cross_entropy(logits, targets, ignore_index=, label_smoothing=, reduction=)`:
/// per row, `(1 - ε)(lse - x_t) + ε(lse - mean(x))`, in double.
///
/// The classes are the last axis: `logits` `(..., C)` with `targets` of shape `(...)` (torch's
/// `(N, C)` and `(N,)`; for torch's `(N, C, d₁, ...)` move the class axis last first). A row
/// whose target is `ignoreIndex` has loss 0 and gradient 0 and is not counted in the mean (the
/// mean of no rows is NaN, as torch's).
///
/// ```swift
/// let logits = try Tensor(randomNormal: [4, 10], using: &rng)
/// let loss = try crossEntropy(logits: logits, targets: IndexArray([3, 0, -100, 9]), labelSmoothing: 0.1)
/// ```
///
/// - Throws: `AttentionError.shapeMismatch` (`"targets"`) unless `targets.shape` is the logits'
///   shape without its last axis; `.shapeMismatch` (`"logits"`) for a scalar or no classes;
///   `.invalidArgument` (`"targets[i]"`) for a target outside `0..<C` that is not `ignoreIndex`,
///   (`"labelSmoothing"`) outside `[0, 1]`; `.unsupportedDType` (`"logits"`) unless `float32`.
///
/// `logits` is taken by value: when no other value shares its storage (`consume logits` at the
/// caller, a language model's large last use), the gradient is written over it rather than into a
/// new tensor of the same size. The results are the same either way.
public func crossEntropy(
    logits: consuming Tensor, targets: IndexArray, ignoreIndex: Int = -100, labelSmoothing: Float = 0,
    reduction: LossReduction = .mean
) throws -> Loss {
    try logits.requireFloat32("logits")
    guard logits.rank >= 1, let classes = logits.shape.last, classes >= 1 else {
        throw AttentionError.shapeMismatch(argument: "logits", expected: "(..., classes), classes at least 1", actual: logits.shape)
    }
    guard targets.shape == Array(logits.shape.dropLast()) else {
        throw AttentionError.shapeMismatch(
            argument: "targets", expected: "\(Array(logits.shape.dropLast())), the logits' shape without the classes",
            actual: targets.shape)
    }
    if let bad = targets.indices.firstIndex(where: { $0 != ignoreIndex && !(0..<classes).contains($0) }) {
        throw AttentionError.invalidArgument(
            argument: "targets[\(bad)]", reason: "\(targets.indices[bad]) is not a class in 0..<\(classes) nor ignoreIndex \(ignoreIndex)")
    }
    guard labelSmoothing >= 0, labelSmoothing <= 1 else {
        throw AttentionError.invalidArgument(argument: "labelSmoothing", reason: "must be in [0, 1], got \(labelSmoothing)")
    }
    if targets.count == 0 {
        let value: Tensor = reduction == .none ? try Tensor(zeros: targets.shape) : [reduction == .mean ? .nan : 0]
        return Loss(value: try value.reshaped(reduction == .none ? targets.shape : []), gradient: try Tensor(zeros: logits.shape))
    }
    let (value, gradient) = try crossEntropyRows(
        &logits, classes: classes, targets: targets.indices, ignoreIndex: ignoreIndex, labelSmoothing: labelSmoothing,
        reduction: reduction, lossShape: reduction == .none ? targets.shape : [])
    return Loss(value: value, gradient: gradient)
}

/// The mean squared error between `prediction` and `target`, with its gradient, as
/// `torch.nn.functional.mse_loss(prediction, target, reduction=)`: `(p - t)²` per element, its
/// gradient `2(p - t)` (divided by the count for the mean), each in double.
///
/// - Throws: `AttentionError.shapeMismatch` (`"target"`) unless the shapes are equal;
///   `.unsupportedDType` (`"prediction"`, `"target"`) unless both are `float32`.
public func meanSquaredError(prediction: Tensor, target: Tensor, reduction: LossReduction = .mean) throws -> Loss {
    try prediction.requireFloat32("prediction")
    try target.requireFloat32("target")
    guard prediction.shape == target.shape else {
        throw AttentionError.shapeMismatch(argument: "target", expected: "\(prediction.shape), the prediction's shape", actual: target.shape)
    }
    let n = prediction.count
    let divisor = reduction == .mean ? Double(n) : 1
    var losses = try Tensor(zeros: prediction.shape)
    var gradient = try Tensor(zeros: prediction.shape)
    var total = 0.0
    prediction.withUnsafeBufferPointer { p in
        target.withUnsafeBufferPointer { t in
            losses.withUnsafeMutableBufferPointer { l in
                gradient.withUnsafeMutableBufferPointer { g in
                    for i in 0..<n {
                        let difference = Double(p[i]) - Double(t[i])
                        l[i] = Float(difference * difference)
                        g[i] = Float(2 * difference / divisor)
                        total += difference * difference
                    }
                }
            }
        }
    }
    if reduction == .none { return Loss(value: losses, gradient: gradient) }
    let value = reduction == .mean ? total / Double(n) : total
    return Loss(value: try Tensor(shape: [], scalars: [Float(value)]), gradient: gradient)
}
