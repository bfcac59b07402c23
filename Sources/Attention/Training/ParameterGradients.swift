/// The gradient of every parameter of a module, laid out as the module itself: each tensor the
/// module stores replaced by the `float32` gradient of the same shape.
///
/// Read a gradient by the parameter's checkpoint name, or iterate over all of them in
/// ``ParameterizedModule/parameterPaths`` order (mlx-swift's `ModuleParameters`, keyed the way
/// checkpoints are):
///
/// ```swift
/// let gradients = try pullback(outputGradient)
/// let dInProjection = gradients.parameters["in_proj_weight"]      // nil for a name not in the module
/// for (name, gradient) in gradients.parameters { print(name, gradient.shape) }
/// ```
///
/// A module's backward pass starts from ``init(zerosFor:)`` and assigns its own gradients and its
/// children's; a parameter nothing assigns has a zero gradient. A child used more than once (tied
/// weights) adds its gradients with ``add(_:to:)-(ParameterGradients<Child>,_)``.
public struct ParameterGradients<Module: ParameterizedModule>: Sendable {
    /// The gradients, stored where the module stores the parameters.
    package var values: Module

    /// Zero gradients for every parameter of `module`.
    ///
    /// Parameters of one shape share one zero tensor until assigned (tensors are values), so
    /// this allocates once per distinct shape.
    ///
    /// - Throws: `AttentionError.outOfMemory` when a zero tensor cannot be allocated.
    public init(zerosFor module: Module) throws {
        var values = module
        var zeros: [[Int]: Tensor] = [:]
        for entry in module.parameterPaths {
            let shape = module[keyPath: entry.path].shape
            if zeros[shape] == nil { zeros[shape] = try Tensor(zeros: shape) }
            values[keyPath: entry.path] = zeros[shape]!
        }
        self.values = values
    }

    /// Gradients laid out as `values`, a module whose tensors are the gradients: a leaf module's
    /// backward pass, which computes every one of them.
    package init(values: Module) {
        self.values = values
    }

    /// The gradient of the parameter named `name` (as in ``ParameterizedModule/parameterPaths``),
    /// shaped as the parameter, or `nil` when the module has no parameter of that name.
    public subscript(name: String) -> Tensor? {
        values.parameterPaths.first { $0.name == name }.map { $0.value(in: values) }
    }

    /// The names of the parameters, in ``ParameterizedModule/parameterPaths`` order.
    public var names: [String] { values.parameterPaths.map(\.name) }

    /// Sets the gradient of the tensor at `parameter`.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (argument `"gradient"`) unless `gradient` has the
    ///   stored tensor's shape; `.unsupportedDType` unless it is `float32`.
    public mutating func assign(_ gradient: Tensor, to parameter: WritableKeyPath<Module, Tensor>) throws {
        try checkGradient(gradient, for: parameter)
        values[keyPath: parameter] = gradient
    }

    /// Adds `gradient` to the gradient of the tensor at `parameter`.
    ///
    /// - Throws: as ``assign(_:to:)-(Tensor,_)``.
    public mutating func add(_ gradient: Tensor, to parameter: WritableKeyPath<Module, Tensor>) throws {
        try checkGradient(gradient, for: parameter)
        values[keyPath: parameter] = try values[keyPath: parameter] + gradient
    }

    /// Sets the gradients of the child module at `child` to `gradients`.
    public mutating func assign<Child>(_ gradients: ParameterGradients<Child>, to child: WritableKeyPath<Module, Child>) {
        values[keyPath: child] = gradients.values
    }

    /// Adds `gradients` to those of the child module at `child`: a module called more than once
    /// in one forward pass.
    ///
    /// - Throws: `AttentionError.shapeMismatch` when the child's parameters changed shape.
    public mutating func add<Child>(_ gradients: ParameterGradients<Child>, to child: WritableKeyPath<Module, Child>) throws {
        for path in Set(gradients.values.parameterPaths.map(\.path)) {
            try add(gradients.values[keyPath: path], to: child.appending(path: path))
        }
    }

    private func checkGradient(_ gradient: Tensor, for parameter: WritableKeyPath<Module, Tensor>) throws(AttentionError) {
        let shape = values[keyPath: parameter].shape
        guard gradient.shape == shape else {
            throw .shapeMismatch(argument: "gradient", expected: "\(shape), the parameter's shape", actual: gradient.shape)
        }
        try gradient.requireFloat32("gradient", reason: "gradients are float32")
    }
}

extension ParameterGradients: Sequence {
    /// Every gradient with its parameter's name, in ``ParameterizedModule/parameterPaths`` order.
    public func makeIterator() -> IndexingIterator<[(name: String, gradient: Tensor)]> {
        values.parameterPaths.map { (name: $0.name, gradient: $0.value(in: values)) }.makeIterator()
    }
}
