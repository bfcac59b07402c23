/// A squeeze-and-excitation block (Hu et al., 2018), as `noxton.nn.SqueezeExcitation` and
/// `torchvision.ops.SqueezeExcitation`: the channels of a feature map are averaged over the
/// spatial dimensions, passed through two 1×1 convolutions into a per-channel scale, and the
/// input is multiplied by that scale.
///
/// ```
/// scale = scaleActivation(fc2(activation(fc1(mean_hw(x)))))     // (C,) per example
/// out   = scale · x                                               // (C, H, W)
/// ```
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let se = try SqueezeExcitation(inputChannels: 64, squeezeChannels: 16, using: &rng)
/// let x = try Tensor(randomNormal: [64, 28, 28], using: &rng)    // (C, H, W), or (N, C, H, W)
/// let y = try se(x)                                                // (64, 28, 28)
/// ```
///
/// ## Names
///
/// | noxton / torchvision                       | Swift                                   |
/// |--------------------------------------------|-----------------------------------------|
/// | `input_channels`                           | `inputChannels:` (``inputChannels``)    |
/// | `squeeze_channels`                         | `squeezeChannels:` (``squeezeChannels``)|
/// | `fc1.weight` (S, C, 1, 1), `fc1.bias` (S, 1, 1) | ``fc1Weight``, ``fc1Bias``         |
/// | `fc2.weight` (C, S, 1, 1), `fc2.bias` (C, 1, 1) | ``fc2Weight``, ``fc2Bias``         |
/// | `activation` (`jax.nn.relu`, torchvision `nn.ReLU`) | ``activation`` (`.relu`)        |
/// | `scale_activation` (`jax.nn.sigmoid`, `nn.Sigmoid`) | ``scaleActivation`` (`.sigmoid`) |
///
/// The parameters have Equinox's `Conv2d` layout, as noxton's checkpoints: weights `(out, in, 1,
/// 1)` and biases `(out, 1, 1)`. (torchvision's `state_dict` stores the biases as `(out,)`:
/// reshape them to `(out, 1, 1)` before loading.) noxton takes the activations at the call,
/// torchvision in the constructor; here they are properties set by the initialiser and
/// overridable per call.
public struct SqueezeExcitation: ParameterizedModule, Equatable {
    /// The first 1×1 convolution's weight, `(S, C, 1, 1)` (`fc1.weight`).
    public var fc1Weight: Tensor

    /// The first 1×1 convolution's bias, `(S, 1, 1)` (`fc1.bias`).
    public var fc1Bias: Tensor

    /// The second 1×1 convolution's weight, `(C, S, 1, 1)` (`fc2.weight`).
    public var fc2Weight: Tensor

    /// The second 1×1 convolution's bias, `(C, 1, 1)` (`fc2.bias`).
    public var fc2Bias: Tensor

    /// Applied after `fc1` (`activation`); ReLU by default.
    public var activation: Activation

    /// Applied after `fc2` to give the scale (`scale_activation`); sigmoid by default.
    public var scaleActivation: Activation

    /// The number of channels C of the input and output.
    public var inputChannels: Int { fc1Weight.rank == 4 ? fc1Weight.shape[1] : 0 }

    /// The bottleneck width S.
    public var squeezeChannels: Int { fc1Weight.shape.first ?? 0 }

    /// Creates the block with Equinox's (and PyTorch's) `Conv2d` initialisation: each weight and
    /// bias from `U(±1/√fanIn)` with fanIn the convolution's input channels (C for `fc1`, S for
    /// `fc2`), drawn in the order fc1 weight, fc1 bias, fc2 weight, fc2 bias.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"inputChannels"`, `"squeezeChannels"`) for a
    ///   count below 1.
    public init(
        inputChannels: Int, squeezeChannels: Int, activation: Activation = .relu,
        scaleActivation: Activation = .sigmoid, using generator: inout some RandomNumberGenerator
    ) throws {
        for (name, count) in [("inputChannels", inputChannels), ("squeezeChannels", squeezeChannels)] where count < 1 {
            throw AttentionError.invalidArgument(argument: name, reason: "must be at least 1, got \(count)")
        }
        let limit1 = 1 / Float(inputChannels).squareRoot(), limit2 = 1 / Float(squeezeChannels).squareRoot()
        fc1Weight = try .uniform([squeezeChannels, inputChannels, 1, 1], limit: limit1, using: &generator)
        fc1Bias = try .uniform([squeezeChannels, 1, 1], limit: limit1, using: &generator)
        fc2Weight = try .uniform([inputChannels, squeezeChannels, 1, 1], limit: limit2, using: &generator)
        fc2Bias = try .uniform([inputChannels, 1, 1], limit: limit2, using: &generator)
        self.activation = activation
        self.scaleActivation = scaleActivation
    }

    /// `fc1.weight` and `fc2.weight`, the 1×1 convolutions computed as matrix multiplies.
    public var matrixWeightNames: Set<String> { ["fc1.weight", "fc2.weight"] }

    /// `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`.
    public var parameterPaths: [ParameterPath<SqueezeExcitation>] {
        [ParameterPath("fc1.weight", \.fc1Weight), ParameterPath("fc1.bias", \.fc1Bias), ParameterPath("fc2.weight", \.fc2Weight), ParameterPath("fc2.bias", \.fc2Bias)]
    }

    private func validateParameters() throws(AttentionError) {
        guard fc1Weight.rank == 4, fc1Weight.shape[2] == 1, fc1Weight.shape[3] == 1,
              fc1Weight.shape[0] >= 1, fc1Weight.shape[1] >= 1
        else {
            throw .shapeMismatch(argument: "fc1Weight", expected: "(S, C, 1, 1), S and C at least 1", actual: fc1Weight.shape)
        }
        let (s, c) = (fc1Weight.shape[0], fc1Weight.shape[1])
        for (name, tensor, shape) in [
            ("fc1Bias", fc1Bias, [s, 1, 1]), ("fc2Weight", fc2Weight, [c, s, 1, 1]), ("fc2Bias", fc2Bias, [c, 1, 1]),
        ] where tensor.shape != shape {
            throw .shapeMismatch(argument: name, expected: "\(shape) for fc1Weight \(fc1Weight.shape)", actual: tensor.shape)
        }
    }

    /// Rescales the channels of `input`, `(C, H, W)` or a batch `(N, C, H, W)`; the result has the
    /// input's shape.
    ///
    /// - Parameters:
    ///   - input: `(C, H, W)` or `(N, C, H, W)`.
    ///   - activation: overrides ``activation`` for this call.
    ///   - scaleActivation: overrides ``scaleActivation`` for this call.
    /// The weights `fc1Weight` and `fc2Weight` may be half precision (they are matrix-multiply
    /// weights); the input and the biases must be `float32`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"input"`, `"fc1Bias"`, `"fc2Bias"`) for a
    ///   half-precision input or bias; `.shapeMismatch` (`"input"`) for a rank other than 3 or 4 or a
    ///   channel count other than ``inputChannels``; (`"fc1Weight"`, ...) when the parameters
    ///   were changed to inconsistent shapes; the kernels' errors.
    public func callAsFunction(
        _ input: Tensor, activation: Activation? = nil, scaleActivation: Activation? = nil
    ) throws -> Tensor {
        try forward(input, activation: activation, scaleActivation: scaleActivation).output
    }

    /// The forward pass with its backward (`nil` for an empty input): the excitation's layers
    /// run through their pullbacks, which cost nothing but the tensors they keep.
    func forward(
        _ input: Tensor, activation: Activation?, scaleActivation: Activation?
    ) throws -> (output: Tensor, backward: SqueezeExcitationBackward?) {
        try validateParameters()
        let c = fc1Weight.shape[1]
        guard input.rank == 3 || input.rank == 4, input.shape[input.rank - 3] == c else {
            throw AttentionError.shapeMismatch(
                argument: "input", expected: "(\(c), H, W) or (N, \(c), H, W): \(c) input channels", actual: input.shape)
        }
        // Checked before the empty case, so that a half-precision input or bias is refused whatever its size.
        try input.requireFloat32("input")
        try fc1Bias.requireFloat32("fc1Bias", reason: "a matrix multiply's bias is float32, whatever the weight's dtype")
        try fc2Bias.requireFloat32("fc2Bias", reason: "a matrix multiply's bias is float32, whatever the weight's dtype")
        // An empty input is its own result; otherwise every product below is at most its count.
        if input.count == 0 { return (input, nil) }
        let batch = input.rank == 4 ? input.shape[0] : 1
        let spatial = input.shape[input.rank - 2] * input.shape[input.rank - 1]
        // Squeeze: the mean of each (example, channel) plane.
        let pooled = try meanRows(input, rows: batch * c, length: spatial, outputShape: [batch, c])
        // Excite: the 1×1 convolutions are linear layers over channels, their (out, in, 1, 1)
        // weights read as (out, in) and their (out, 1, 1) biases as (out,).
        let (fc1, fc2) = (try convolution(fc1Weight, fc1Bias), try convolution(fc2Weight, fc2Bias))
        let (squeezed, back1) = try fc1.callWithPullback(pooled)
        let (hidden, backActivation) = try (activation ?? self.activation).callWithPullback(squeezed)
        let (excited, back2) = try fc2.callWithPullback(hidden)
        let (scale, backScale) = try (scaleActivation ?? self.scaleActivation).callWithPullback(excited)
        let output = try Self.scalingPlanes(input, by: scale, spatial: spatial)
        return (output, SqueezeExcitationBackward(
            module: self, input: input, scale: scale, spatial: spatial, fc1: back1, activation: backActivation, fc2: back2,
            scaleActivation: backScale))
    }

    /// A 1×1 convolution `(out, in, 1, 1)` with its bias `(out, 1, 1)` as a linear layer.
    private func convolution(_ weight: Tensor, _ bias: Tensor) throws -> Linear {
        try Linear(weight: weight.reshaped(Array(weight.shape.prefix(2))), bias: bias.reshaped([bias.shape[0]]))
    }

    /// Every plane `(spatial,)` of `x` times its (example, channel) factor in `factors`.
    static func scalingPlanes(_ x: Tensor, by factors: Tensor, spatial: Int) throws -> Tensor {
        let output = try Tensor(uninitializedShape: x.shape, argument: "input")
        withExtendedLifetime((x, factors, output)) {
            let source = x.storage.buffer.baseAddress!, scale = factors.storage.buffer.baseAddress!
            let out = output.storage.buffer.baseAddress!
            for plane in 0..<factors.count {
                let factor = scale[plane], offset = plane * spatial
                for index in offset..<(offset + spatial) { out[index] = factor * source[index] }
            }
        }
        return output
    }
}

extension SqueezeExcitation: Layer {
    /// The block with its own activations: as `callAsFunction(input, activation: nil, scaleActivation: nil)`.
    ///
    /// - Throws: as ``callAsFunction(_:activation:scaleActivation:)``.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try callAsFunction(input, activation: nil, scaleActivation: nil)
    }
}
