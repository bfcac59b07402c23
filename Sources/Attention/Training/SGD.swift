import Foundation

/// Stochastic gradient descent, `torch.optim.SGD`: `g = grad + weightDecay · param`; with
/// momentum, `buf = momentum · buf + (1 - dampening) · g` (`g` itself at the first step) and
/// `g = buf`, or `g + momentum · buf` with Nesterov; then `param -= lr · g`. The same formulas as
/// torch's, in float.
///
/// ```swift
/// var optimizer = SGD(learningRate: 0.1, momentum: 0.9, nesterov: true)
/// try optimizer.update(&model, along: gradients.parameters)
/// ```
public struct SGD: Sendable {
    /// The step size (torch's `lr`).
    public var learningRate: Float
    /// The momentum factor; 0 for none.
    public let momentum: Float
    /// The dampening of the momentum.
    public var dampening: Float
    /// Whether the Nesterov momentum is used (needs momentum and no dampening, as torch).
    public var nesterov: Bool
    /// The L2 penalty added to the gradient (torch's `weight_decay`).
    public var weightDecay: Float
    private var state = OptimizerState()

    /// The number of steps taken.
    public var step: Int { state.step }

    /// An optimiser with torch's defaults apart from the learning rate, which torch requires too.
    public init(learningRate: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        (self.learningRate, self.momentum, self.dampening) = (learningRate, momentum, dampening)
        (self.nesterov, self.weightDecay) = (nesterov, weightDecay)
    }

    private var bufferNames: [String] { momentum == 0 ? [] : ["momentum_buffer"] }

    /// Takes one step: updates every parameter of `module` in place from `gradients`.
    ///
    /// - Throws: as ``AdamW/update(_:along:)``; the kernel's errors for a negative or non-finite
    ///   learning rate, momentum or weight decay, or Nesterov without momentum or with dampening.
    public mutating func update<Module: ParameterizedModule>(
        _ module: inout Module, along gradients: ParameterGradients<Module>
    ) throws {
        let step = KernelOptimizerStep(
            kind: .sgd, step: 0, learningRate: learningRate, weightDecay: weightDecay, momentum: momentum,
            dampening: dampening, nesterov: nesterov)
        try state.apply(step, bufferNames: bufferNames, to: &module, along: gradients)
    }

    /// Writes the step count and the momentum buffers (`name.momentum_buffer`) to a safetensors
    /// file, atomically.
    ///
    /// - Throws: the file system's error.
    public func saveState(to url: URL) throws {
        try state.safeTensors(
            optimizer: "SGD", bufferNames: bufferNames,
            hyperparameters: ["learning_rate": "\(learningRate)", "momentum": "\(momentum)", "dampening": "\(dampening)",
                              "nesterov": "\(nesterov)", "weight_decay": "\(weightDecay)"]
        ).write(to: url)
    }

    /// Replaces the step count and the momentum buffers with those saved by ``saveState(to:)``.
    ///
    /// - Throws: as ``AdamW/loadState(from:)``.
    public mutating func loadState(from url: URL) throws {
        state = try OptimizerState(SafeTensors(contentsOf: url), optimizer: "SGD", bufferNames: bufferNames)
    }
}
