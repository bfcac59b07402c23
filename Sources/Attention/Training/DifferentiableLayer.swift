/// A ``Layer`` that can also give its gradients: ``callWithPullback(_:)`` returns the output
/// together with a pullback, a function from the gradient of a loss with respect to the output to
/// the gradients with respect to the parameters and the input.
///
/// The library's modules conform, and they compose: a module built of others calls their
/// `callWithPullback` in its forward pass and their pullbacks in reverse order in its own, so no
/// one writes backward code for a library module. A stack of your own composes the same way:
///
/// ```swift
/// struct FeedForward: DifferentiableLayer {
///     var up: Linear
///     var down: Linear
///     var activation = Activation.gelu
///
///     var parameterPaths: [ParameterPath<Self>] {
///         parameterPaths(of: \.up, prefixedBy: "up") + parameterPaths(of: \.down, prefixedBy: "down")
///     }
///
///     func callAsFunction(_ x: Tensor) throws -> Tensor { try down(activation(up(x))) }
///
///     func callWithPullback(_ x: Tensor) throws -> (output: Tensor, pullback: LayerPullback<Self>) {
///         let (hidden, upBack) = try up.callWithPullback(x)
///         let (active, activationBack) = try activation.callWithPullback(hidden)
///         let (y, downBack) = try down.callWithPullback(active)
///         return (y, LayerPullback(self, outputShape: y.shape) { dy in
///             let down = try downBack(dy)
///             let up = try upBack(activationBack(down.input).input)
///             var parameters = ParameterGradients(zerosFor: self)
///             parameters.assign(down.parameters, to: \.down)
///             parameters.assign(up.parameters, to: \.up)
///             return LayerGradients(parameters: parameters, input: up.input)
///         })
///     }
/// }
/// ```
public protocol DifferentiableLayer: Layer {
    /// The gradient with respect to the input: a `Tensor` for layers of a tensor, the query's,
    /// key's and value's (``AttentionGradients``) for the attention modules.
    associatedtype InputGradient: Sendable = Tensor

    /// Runs the module on `input` and returns its output, exactly what ``Layer/callAsFunction(_:)``
    /// returns, with the pullback of the call.
    ///
    /// The pullback keeps what the backward pass needs (the input, the normalisation statistics,
    /// the attention's log-sum-exp) and may be called any number of times.
    ///
    /// - Throws: the errors of ``Layer/callAsFunction(_:)``.
    func callWithPullback(_ input: Input) throws -> (output: Output, pullback: LayerPullback<Self>)
}

/// The gradients of one call of a ``DifferentiableLayer``: with respect to each parameter, by
/// name, and with respect to the input.
public struct LayerGradients<Module: DifferentiableLayer>: Sendable {
    /// The gradient of every parameter, by the names of ``ParameterizedModule/parameterPaths``.
    public var parameters: ParameterGradients<Module>
    /// The gradient with respect to the input.
    public var input: Module.InputGradient

    /// Gradients from their parts.
    public init(parameters: ParameterGradients<Module>, input: Module.InputGradient) {
        (self.parameters, self.input) = (parameters, input)
    }
}

/// The backward pass of one call of a ``DifferentiableLayer``: from the gradient of a loss with
/// respect to the call's output tensor to ``LayerGradients``.
///
/// ```swift
/// let (y, pullback) = try linear.callWithPullback(x)
/// let gradients = try pullback(outputGradient)      // outputGradient shaped as y
/// let dWeight = gradients.parameters["weight"]      // shaped as linear.weight
/// let dx = gradients.input                          // shaped as x
/// ```
public struct LayerPullback<Module: DifferentiableLayer>: Sendable {
    /// The shape the output gradient must have.
    public let outputShape: [Int]
    private let body: @Sendable (Tensor) throws -> LayerGradients<Module>

    /// A pullback that checks the output gradient against `outputShape` (and its dtype) and then
    /// runs `body` on it.
    ///
    /// - Parameters:
    ///   - module: the module the gradients are of (it fixes `Module`).
    ///   - outputShape: the shape of the call's output tensor (for an attention module, of
    ///     ``AttentionResult/output``).
    ///   - body: the backward pass, given a `float32` gradient of `outputShape`.
    public init(
        _ module: Module, outputShape: [Int], body: @escaping @Sendable (Tensor) throws -> LayerGradients<Module>
    ) {
        (self.outputShape, self.body) = (outputShape, body)
    }

    /// The gradients for `outputGradient`, the gradient of the loss with respect to the output.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (argument `"outputGradient"`) when its shape is
    ///   not ``outputShape``; `.unsupportedDType` (`"outputGradient"`) unless it is `float32`; the
    ///   module's backward errors.
    public func callAsFunction(_ outputGradient: Tensor) throws -> LayerGradients<Module> {
        try checkOutputGradient(outputGradient, shape: outputShape)
        return try body(outputGradient)
    }
}

/// Throws unless `gradient` is a `float32` tensor of `shape`: the check every backward pass makes
/// on the gradient it is given.
func checkOutputGradient(_ gradient: Tensor, shape: [Int], argument: String = "outputGradient") throws(AttentionError) {
    guard gradient.shape == shape else {
        throw .shapeMismatch(argument: argument, expected: "\(shape), the output's shape", actual: gradient.shape)
    }
    try gradient.requireFloat32(argument, reason: "gradients are float32")
}
