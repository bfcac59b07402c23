import Foundation

/// What an optimiser keeps between steps: the step count and, per stored parameter tensor, its
/// buffers (SGD's momentum, AdamW's moments), under PyTorch's state names. Shared by ``SGD`` and
/// ``AdamW``, which differ only in their hyperparameters.
struct OptimizerState: Sendable {
    /// The steps taken.
    var step = 0
    /// Each parameter's buffers by its name (the first name of the tensor that stores it), in the
    /// order of `bufferNames`.
    var buffers: [String: [Tensor]] = [:]

    /// No step taken yet.
    init() {}

    /// Applies one step to every parameter tensor of `module` from `gradients`, or to none.
    ///
    /// Every gradient is checked first (shape, dtype, finiteness), so a step either updates every
    /// parameter or throws with the module and the state unchanged.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"gradients[name]"`) for a gradient of another
    ///   shape, or a loaded buffer of another shape; `.unsupportedDType` (the parameter's name)
    ///   for a parameter that is not `float32`; `.invalidArgument` (`"gradients"`) when a
    ///   gradient holds a NaN or an infinity (nothing is applied); the kernel's errors for
    ///   invalid hyperparameters.
    mutating func apply<Module: ParameterizedModule>(
        _ hyperparameters: KernelOptimizerStep, bufferNames: [String], to module: inout Module,
        along gradients: ParameterGradients<Module>
    ) throws {
        let tensors = module.storedParameters
        for (name, path) in tensors {
            try checkUpdate(of: module[keyPath: path], by: gradients.values[keyPath: path], name: name, bufferCount: bufferNames.count)
        }
        var step = hyperparameters
        step.step = self.step + 1
        var updated = buffers
        for (name, path) in tensors {
            var state = try updated[name] ?? bufferNames.map { _ in try Tensor(zeros: module[keyPath: path].shape) }
            try optimizerStep(step, parameter: &module[keyPath: path], gradient: gradients.values[keyPath: path], state: &state, name: name)
            updated[name] = state
        }
        (self.step, buffers) = (step.step, updated)
    }

    private func checkUpdate(of parameter: Tensor, by gradient: Tensor, name: String, bufferCount: Int) throws {
        guard gradient.shape == parameter.shape else {
            throw AttentionError.shapeMismatch(
                argument: "gradients[\(name.jsonLiteral)]", expected: "\(parameter.shape), the parameter's shape", actual: gradient.shape)
        }
        try parameter.requireFloat32(name, reason: "optimisers update float32 parameters; convert the module with convertingWeights(to: .float32)")
        try gradient.requireFloat32("gradients[\(name.jsonLiteral)]", reason: "gradients are float32")
        if !gradient.squaredNorm.isFinite {
            let nonFinite = gradient.withUnsafeBufferPointer { $0.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
            throw AttentionError.invalidArgument(
                argument: "gradients",
                reason: "\(name.jsonLiteral) holds \(nonFinite) NaN or infinite values; the step was not applied")
        }
        if let loaded = buffers[name], loaded.count != bufferCount || loaded.contains(where: { $0.shape != parameter.shape }) {
            throw AttentionError.shapeMismatch(
                argument: "state[\(name.jsonLiteral)]", expected: "\(bufferCount) buffers of \(parameter.shape)",
                actual: loaded.first?.shape ?? [])
        }
    }

    /// The state as a safetensors file: each buffer as `name.bufferName` (PyTorch's state names:
    /// `momentum_buffer`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`), with `optimizer`, `step`
    /// and `hyperparameters` in the metadata.
    func safeTensors(optimizer: String, bufferNames: [String], hyperparameters: [String: String]) throws -> SafeTensors {
        var file = SafeTensors(metadata: hyperparameters.merging(["optimizer": optimizer, "step": String(step)]) { $1 })
        for (name, tensors) in buffers {
            for (bufferName, tensor) in zip(bufferNames, tensors) { try file.insert(tensor, named: "\(name).\(bufferName)") }
        }
        return file
    }

    /// The state saved by ``safeTensors(optimizer:bufferNames:hyperparameters:)``.
    ///
    /// - Throws: `AttentionError.invalidCheckpoint` when the file is of another optimiser, has
    ///   no valid step, or a parameter lacks one of its buffers.
    init(_ file: SafeTensors, optimizer: String, bufferNames: [String]) throws {
        guard file.metadata["optimizer"] == optimizer else {
            throw AttentionError.invalidCheckpoint(
                reason: "the state is of optimizer \(file.metadata["optimizer"].map(\.jsonLiteral) ?? "none"), not \(optimizer)")
        }
        guard let step = file.metadata["step"].flatMap({ Int($0) }), step >= 0 else {
            throw AttentionError.invalidCheckpoint(reason: "the state's metadata has no step count")
        }
        self.step = step
        let suffix = "." + (bufferNames.first ?? "")
        for key in file.names where key.hasSuffix(suffix) {
            let name = String(key.dropLast(suffix.count))
            buffers[name] = try bufferNames.map { bufferName in
                let full = "\(name).\(bufferName)"
                guard file.contains(full) else {
                    throw AttentionError.invalidCheckpoint(reason: "the state lacks \(full.jsonLiteral)")
                }
                return try file.tensor(named: full, as: .float32)
            }
        }
    }
}

extension ParameterizedModule {
    /// Each tensor the module stores, once, with the name of its first parameter: what an
    /// optimiser updates (a tensor stacking several parameters is updated as one).
    var storedParameters: [(name: String, path: WritableKeyPath<Self, Tensor>)] {
        var seen: Set<WritableKeyPath<Self, Tensor>> = []
        return parameterPaths.compactMap { seen.insert($0.path).inserted ? ($0.name, $0.path) : nil }
    }
}
