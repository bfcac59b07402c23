/// Scales every gradient so that their global 2-norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_`: with `n` the norm of all the gradients together, each is
/// multiplied by `min(1, maxNorm / (n + 1e-6))`. Returns `n`, the norm before clipping.
///
/// ```swift
/// var gradients = try pullback(loss.gradient).parameters
/// let norm = try clipGradientNorm(&gradients, maxNorm: 1)
/// ```
///
/// The norm is summed in double. Nothing trains on a non-finite norm: it is reported, and the
/// gradients are left as they are.
///
/// - Throws: `AttentionError.invalidArgument` (`"maxNorm"`) unless it is positive and finite;
///   (`"gradients"`) when the norm is NaN or infinite, naming the first such parameter.
@discardableResult
public func clipGradientNorm<Module>(_ gradients: inout ParameterGradients<Module>, maxNorm: Float) throws -> Float {
    guard maxNorm.isFinite, maxNorm > 0 else {
        throw AttentionError.invalidArgument(argument: "maxNorm", reason: "must be positive and finite, got \(maxNorm)")
    }
    let norm = try gradientNorm(gradients)
    let coefficient = maxNorm / (norm + 1e-6)
    if coefficient < 1 {
        for (_, path) in gradients.values.storedParameters {
            gradients.values[keyPath: path].withUnsafeMutableBufferPointer { values in
                for index in values.indices { values[index] *= coefficient }
            }
        }
    }
    return norm
}

/// The global 2-norm of all the gradients together, summed in double: what
/// ``clipGradientNorm(_:maxNorm:)`` compares with its bound, for logging without clipping.
///
/// - Throws: `AttentionError.invalidArgument` (`"gradients"`) when the norm is NaN or infinite,
///   naming the first such parameter.
public func gradientNorm<Module>(_ gradients: ParameterGradients<Module>) throws -> Float {
    var squares = 0.0
    for (name, path) in gradients.values.storedParameters {
        let sum = gradients.values[keyPath: path].squaredNorm
        guard sum.isFinite else {
            throw AttentionError.invalidArgument(
                argument: "gradients", reason: "the gradient norm is not finite (\(name.jsonLiteral) holds a NaN or an infinity)")
        }
        squares += sum
    }
    return Float(squares.squareRoot())
}
