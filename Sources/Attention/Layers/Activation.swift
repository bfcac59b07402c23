/// An element-wise activation function, computed by the C kernels.
///
/// ```swift
/// let hidden = try Activation.gelu(linear1(x))
/// let gate = try Activation.sigmoid(logits)
/// ```
///
/// The names follow PyTorch: ``gelu`` is the exact erf form (`F.gelu`, `approximate="none"`);
/// JAX's `jax.nn.gelu` defaults to the tanh approximation, ``geluTanh``.
public enum Activation: String, Sendable, Equatable, Hashable, CaseIterable, ParameterizedModule {
    /// `x`.
    case identity
    /// `max(x, 0)`.
    case relu
    /// `x/2 · (1 + erf(x/√2))`: PyTorch's `F.gelu`, `jax.nn.gelu(approximate=False)`.
    case gelu
    /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`: `jax.nn.gelu`'s default,
    /// PyTorch's `F.gelu(approximate="tanh")`.
    case geluTanh
    /// `1 / (1 + exp(-x))`.
    case sigmoid
    /// `x · sigmoid(x)`, also called swish.
    case silu
    /// `tanh(x)`.
    case tanh

    /// An activation has no parameters.
    public var parameterPaths: [ParameterPath<Activation>] { [] }

    /// Applies the function to every element; the result has the input's shape.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (`"input"`) unless `input` is `float32`; the
    ///   kernel's errors (`.outOfMemory` when the result cannot be allocated).
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try activate(input, kind: kernel)
    }

    /// The gated form (the GLU family of transformer MLPs): the last dimension of `input` holds a
    /// gate then a linear half, `(..., 2 · width)`, and the result is `self(gate) · linear`,
    /// `(..., width)`. `.silu` gives Llama's SwiGLU, `.gelu` GEGLU:
    ///
    /// ```swift
    /// let both = try gateAndUp(x)                    // (..., 2 · intermediate): gate_proj, up_proj
    /// let hidden = try Activation.silu.gated(both)   // (..., intermediate)
    /// ```
    ///
    /// Each element is this activation's value times the linear element, rounded once.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"input"`) for a scalar or an odd last dimension;
    ///   `.unsupportedDType` (`"input"`) unless `input` is `float32`; the kernel's errors.
    public func gated(_ input: Tensor) throws -> Tensor {
        guard input.rank >= 1, input.shape[input.rank - 1] % 2 == 0 else {
            throw AttentionError.shapeMismatch(
                argument: "input", expected: "[..., 2 · width]: a gate then a linear half", actual: input.shape)
        }
        return try activateGated(input, kind: kernel)
    }

    /// The kernels' name for this function.
    var kernel: KernelActivation {
        switch self {
        case .identity: .identity
        case .relu: .relu
        case .gelu: .gelu
        case .geluTanh: .geluTanh
        case .sigmoid: .sigmoid
        case .silu: .silu
        case .tanh: .tanh
        }
    }
}

extension Activation: Layer {}
