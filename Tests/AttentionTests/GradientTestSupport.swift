import Testing

@testable import Attention

/// `Σ output ∘ weights` in double: the scalar whose gradient a pullback of `weights` gives.
func weightedSum(_ output: Tensor, _ weights: Tensor) -> Double {
    zip(output.scalars, weights.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// Checks `analytic`, the gradient of `loss` with respect to `tensor`, against central finite
/// differences on up to `samples` elements spread over the tensor: `loss` is evaluated with the
/// element moved by ±`step` (in float32, so the tolerance is loose: the test catches a wrong
/// formula, a wrong index or a missing term, not an ulp).
func expectFiniteDifferences(
    of loss: (Tensor) throws -> Double, at tensor: Tensor, analytic: Tensor?, samples: Int = 8, step: Float = 1e-2,
    tolerance: Double = 2e-2, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let analytic = try #require(analytic, "\(what): no gradient", sourceLocation: sourceLocation)
    #expect(analytic.shape == tensor.shape, "\(what): gradient shape", sourceLocation: sourceLocation)
    let values = analytic.scalars
    let stride = max(1, tensor.count / samples)
    for index in Swift.stride(from: 0, to: tensor.count, by: stride) {
        var plus = tensor, minus = tensor
        plus.withUnsafeMutableBufferPointer { $0[index] += step }
        minus.withUnsafeMutableBufferPointer { $0[index] -= step }
        let numeric = (try loss(plus) - loss(minus)) / (Double(plus.scalars[index]) - Double(minus.scalars[index]))
        let error = abs(numeric - Double(values[index]))
        #expect(
            error <= tolerance * max(1, abs(numeric)),
            "\(what)[\(index)]: analytic \(values[index]), finite differences \(numeric)", sourceLocation: sourceLocation)
    }
}

/// Checks every parameter gradient of `gradients` against finite differences of
/// `Σ module(input) ∘ outputGradient`, perturbing the stored tensors of `module`.
func expectParameterGradients<Module: ParameterizedModule>(
    of module: Module, _ gradients: ParameterGradients<Module>, samples: Int = 6, tolerance: Double = 2e-2,
    sourceLocation: SourceLocation = #_sourceLocation, loss: (Module) throws -> Double
) throws {
    var seen: Set<WritableKeyPath<Module, Tensor>> = []
    for entry in module.parameterPaths where seen.insert(entry.path).inserted {
        try expectFiniteDifferences(
            of: { value in
                var perturbed = module
                perturbed[keyPath: entry.path] = value
                return try loss(perturbed)
            },
            at: module[keyPath: entry.path], analytic: gradients.values[keyPath: entry.path], samples: samples,
            tolerance: tolerance, entry.name, sourceLocation: sourceLocation)
    }
}

/// Checks an attention module's query, key and value gradients against finite differences of
/// `Σ output(q, k, v) ∘ outputGradient`, each argument perturbed on its own (the others fixed).
func expectAttentionInputGradients(
    _ gradients: AttentionGradients, query: Tensor, key: Tensor, value: Tensor, outputGradient: Tensor,
    tolerance: Double = 2e-2, sourceLocation: SourceLocation = #_sourceLocation,
    output: (Tensor, Tensor, Tensor) throws -> Tensor
) throws {
    try expectFiniteDifferences(
        of: { weightedSum(try output($0, key, value), outputGradient) }, at: query, analytic: gradients.query,
        tolerance: tolerance, "query", sourceLocation: sourceLocation)
    try expectFiniteDifferences(
        of: { weightedSum(try output(query, $0, value), outputGradient) }, at: key, analytic: gradients.key,
        tolerance: tolerance, "key", sourceLocation: sourceLocation)
    try expectFiniteDifferences(
        of: { weightedSum(try output(query, key, $0), outputGradient) }, at: value, analytic: gradients.value,
        tolerance: tolerance, "value", sourceLocation: sourceLocation)
}
