// The backward pass of SqueezeExcitation: out = s · x with s = σ(fc2(act(fc1(mean_hw(x))))), so
// dx = s · dy + (the gradient of the pooled mean) / (H·W), the excitation's layers differentiated
// by their own pullbacks.

/// What the backward pass of one ``SqueezeExcitation`` call keeps: the input, the per-channel
/// scale and the pullbacks of the excitation's four layers.
struct SqueezeExcitationBackward: Sendable {
    let module: SqueezeExcitation
    let input: Tensor
    /// The scale of every (example, channel), `(N, C)`.
    let scale: Tensor
    /// H·W, the elements of one plane.
    let spatial: Int
    let fc1: LayerPullback<Linear>
    let activation: LayerPullback<Activation>
    let fc2: LayerPullback<Linear>
    let scaleActivation: LayerPullback<Activation>

    /// The gradients of the four parameters and of the input for `outputGradient`, shaped as
    /// the input.
    func callAsFunction(_ outputGradient: Tensor) throws -> LayerGradients<SqueezeExcitation> {
        let g2 = try fc2(try scaleActivation(try planeSums(outputGradient)).input)
        let g1 = try fc1(try activation(g2.input).input)
        var parameters = try ParameterGradients(zerosFor: module)
        try parameters.assign(g1.parameters.values.weight.reshaped(module.fc1Weight.shape), to: \.fc1Weight)
        try parameters.assign(g1.parameters.values.bias!.reshaped(module.fc1Bias.shape), to: \.fc1Bias)
        try parameters.assign(g2.parameters.values.weight.reshaped(module.fc2Weight.shape), to: \.fc2Weight)
        try parameters.assign(g2.parameters.values.bias!.reshaped(module.fc2Bias.shape), to: \.fc2Bias)
        return LayerGradients(parameters: parameters, input: try inputGradient(outputGradient, pooled: g1.input))
    }

    /// The gradient of the scale, `(N, C)`: `Σ_hw dy · x` over each plane.
    private func planeSums(_ dy: Tensor) throws -> Tensor {
        try (dy * input).reshaped([scale.count, spatial]).sum(alongAxis: -1).reshaped(scale.shape)
    }

    /// `s · dy` plus the pooled mean's gradient `(N, C)` spread over its plane, `/ (H·W)`.
    private func inputGradient(_ dy: Tensor, pooled: Tensor) throws -> Tensor {
        var dx = try SqueezeExcitation.scalingPlanes(dy, by: scale, spatial: spatial)
        try meanRowsBackward(pooled, rows: pooled.count, length: spatial, into: &dx, accumulate: true)
        return dx
    }
}

extension SqueezeExcitation: DifferentiableLayer {
    /// The block with its own activations, as ``callAsFunction(_:)``, with its pullback.
    ///
    /// - Throws: as ``callAsFunction(_:activation:scaleActivation:)``.
    public func callWithPullback(_ input: Tensor) throws -> (output: Tensor, pullback: LayerPullback<SqueezeExcitation>) {
        try callWithPullback(input, activation: nil, scaleActivation: nil)
    }

    /// The block, as ``callAsFunction(_:activation:scaleActivation:)``, with its pullback: the
    /// gradients of `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias` (`float32`, shaped as
    /// the parameters) and of the input, for the gradient of the output.
    ///
    /// ```swift
    /// let (y, pullback) = try se.callWithPullback(x)          // x: (N, C, H, W)
    /// let gradients = try pullback(dy)                        // dy shaped as y
    /// gradients.parameters["fc1.weight"]                      // (S, C, 1, 1)
    /// gradients.input                                         // shaped as x
    /// ```
    ///
    /// - Throws: as ``callAsFunction(_:activation:scaleActivation:)``.
    public func callWithPullback(
        _ input: Tensor, activation: Activation?, scaleActivation: Activation?
    ) throws -> (output: Tensor, pullback: LayerPullback<SqueezeExcitation>) {
        let (output, backward) = try forward(input, activation: activation, scaleActivation: scaleActivation)
        return (output, LayerPullback(self, outputShape: output.shape) { outputGradient in
            guard let backward else {   // an empty input: zero parameter gradients
                return LayerGradients(parameters: try ParameterGradients(zerosFor: self), input: outputGradient)
            }
            return try backward(outputGradient)
        })
    }
}
