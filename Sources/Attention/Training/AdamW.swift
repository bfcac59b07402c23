import Foundation

/// Adam with decoupled weight decay, `torch.optim.AdamW`: each step multiplies every parameter by
/// `1 - lr · weightDecay`, then moves it by `lr · m̂ / (√v̂ + ε)`, the bias-corrected moments of
/// the gradients (with AMSGrad, the running maximum of `v`). The same formulas as torch's, in
/// float, so a step is torch's to within an ulp.
///
/// ```swift
/// var optimizer = AdamW(learningRate: 3e-4, weightDecay: 0.01)
/// for batch in batches {
///     let (output, pullback) = try model.callWithPullback(batch.input)
///     let loss = try crossEntropy(logits: output, targets: batch.targets)
///     var gradients = try pullback(loss.gradient).parameters
///     try clipGradientNorm(&gradients, maxNorm: 1)
///     try optimizer.update(&model, along: gradients)
/// }
/// ```
public struct AdamW: Sendable {
    /// The step size (torch's `lr`); change it between steps to follow a schedule.
    public var learningRate: Float
    /// The decay rate of the first moment (torch's `betas[0]`).
    public var beta1: Float
    /// The decay rate of the second moment (torch's `betas[1]`).
    public var beta2: Float
    /// Added to `√v̂` (torch's `eps`).
    public var epsilon: Float
    /// The decoupled weight decay (torch's `weight_decay`).
    public var weightDecay: Float
    /// Whether the running maximum of the second moment is used (torch's `amsgrad`).
    public let amsgrad: Bool
    private var state = OptimizerState()

    /// The number of steps taken (torch's `state["step"]`).
    public var step: Int { state.step }

    /// An optimiser with torch's defaults: learning rate 1e-3, betas 0.9 and 0.999, epsilon 1e-8,
    /// weight decay 0.01, no AMSGrad.
    public init(
        learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
        weightDecay: Float = 0.01, amsgrad: Bool = false
    ) {
        (self.learningRate, self.beta1, self.beta2, self.epsilon) = (learningRate, beta1, beta2, epsilon)
        (self.weightDecay, self.amsgrad) = (weightDecay, amsgrad)
    }

    private var bufferNames: [String] { amsgrad ? ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["exp_avg", "exp_avg_sq"] }

    /// Takes one step: updates every parameter of `module` in place from `gradients`.
    ///
    /// Nothing is applied unless every gradient is finite and of its parameter's shape.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"gradients"`) naming a parameter whose
    ///   gradient holds a NaN or an infinity; `.shapeMismatch` (`"gradients[name]"`) for a
    ///   gradient of another shape; `.unsupportedDType` for a half-precision parameter; the
    ///   kernel's errors for a negative or non-finite learning rate, weight decay or epsilon, or
    ///   betas outside `[0, 1)`. The module and the optimiser are then unchanged.
    public mutating func update<Module: ParameterizedModule>(
        _ module: inout Module, along gradients: ParameterGradients<Module>
    ) throws {
        let step = KernelOptimizerStep(
            kind: .adamW, step: 0, learningRate: learningRate, weightDecay: weightDecay, beta1: beta1, beta2: beta2,
            epsilon: epsilon)
        try state.apply(step, bufferNames: bufferNames, to: &module, along: gradients)
    }

    /// Writes the step count and the moments to a safetensors file (atomically), as
    /// `name.exp_avg`, `name.exp_avg_sq` (and `name.max_exp_avg_sq`) for each parameter.
    ///
    /// - Throws: the file system's error.
    public func saveState(to url: URL) throws {
        try state.safeTensors(
            optimizer: "AdamW", bufferNames: bufferNames,
            hyperparameters: ["learning_rate": "\(learningRate)", "betas": "\(beta1),\(beta2)", "eps": "\(epsilon)",
                              "weight_decay": "\(weightDecay)", "amsgrad": "\(amsgrad)"]
        ).write(to: url)
    }

    /// Replaces the step count and the moments with those saved by ``saveState(to:)``, to resume
    /// training; the hyperparameters stay this value's.
    ///
    /// - Throws: `AttentionError.invalidCheckpoint` for a file of another optimiser, or one
    ///   missing a buffer (an AMSGrad state needs `max_exp_avg_sq`); the errors of reading it.
    ///   A buffer whose shape is not its parameter's is reported by the next ``update(_:along:)``.
    public mutating func loadState(from url: URL) throws {
        state = try OptimizerState(SafeTensors(contentsOf: url), optimizer: "AdamW", bufferNames: bufferNames)
    }
}
