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
        try activate(input)
    }
}

extension Activation: Layer {}
