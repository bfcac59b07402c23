import Attention

/// A fully connected layer, `y = x Wᵀ + b`, that keeps its weight transposed, as an
/// `(inputSize, outputSize)` kernel, for the library's matrix multiply to read without a
/// transposing pack.
///
/// `Linear` stores PyTorch's `(outputSize, inputSize)` weight, which the matrix multiply packs with
/// a strided gather on every call: for a short sentence that packing was most of the encode time.
/// A kernel in `(inputSize, outputSize)` order is packed with contiguous row copies instead (it is
/// applied through `MultiHeadDotProductAttention.Projection`, the public projection that takes
/// that layout). Checkpoints still see PyTorch's names and layout: ``weight`` reads and writes
/// the kernel transposed, so `weight` of a `transformers` checkpoint loads as it is.
///
/// ```swift
/// var dense = try DenseLayer(inputSize: 384, outputSize: 1536)
/// try dense.loadParameters(from: checkpoint, prefix: "encoder.layer.0.intermediate.dense")
/// let y = try dense(x)   // (..., 384) → (..., 1536)
/// ```
public struct DenseLayer: ParameterizedModule, Equatable {
    /// The kernel, `(inputSize, outputSize)`: the transpose of PyTorch's weight.
    public var kernel: Tensor
    /// The bias, `(outputSize,)`, or `nil`.
    public var bias: Tensor?

    /// A layer of zeros with a bias, to be loaded.
    ///
    /// - Throws: `AttentionError.invalidArgument` for a size below 1, `.outOfMemory`.
    public init(inputSize: Int, outputSize: Int) throws {
        guard inputSize >= 1, outputSize >= 1 else {
            throw AttentionError.invalidArgument(
                argument: inputSize < 1 ? "inputSize" : "outputSize",
                reason: "must be at least 1, got \(min(inputSize, outputSize))")
        }
        kernel = try Tensor(zeros: [inputSize, outputSize])
        bias = try Tensor(zeros: [outputSize])
    }

    /// The size of the last dimension of the input.
    public var inputSize: Int { kernel.rank == 2 ? kernel.shape[0] : 0 }

    /// The size of the last dimension of the output.
    public var outputSize: Int { kernel.rank == 2 ? kernel.shape[1] : 0 }

    /// PyTorch's weight, `(outputSize, inputSize)`: the kernel transposed (a copy). Setting it
    /// stores its transpose as the kernel.
    public var weight: Tensor {
        get { (try? kernel.transposed()) ?? kernel }
        set { kernel = (try? newValue.transposed()) ?? newValue }
    }

    /// `weight` and `bias`, PyTorch's names.
    /// `weight` (the kernel): the one parameter that may be half precision.
    public var matrixWeightNames: Set<String> { ["weight"] }

    public var parameterPaths: [ParameterPath<DenseLayer>] {
        var paths: [ParameterPath<DenseLayer>] = [("weight", \.weight)]
        if bias != nil { paths.append(("bias", \.bias!)) }
        return paths
    }

    /// Applies the layer to the last dimension: `(..., inputSize)` → `(..., outputSize)`.
    ///
    /// - Throws: `AttentionError.shapeMismatch` (`"input"`) when the last dimension is not
    ///   ``inputSize``, (`"kernel"`, `"bias"`) when the parameters were set to inconsistent shapes.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        guard kernel.rank == 2 else {
            throw AttentionError.shapeMismatch(
                argument: "kernel", expected: "(inputSize, outputSize)", actual: kernel.shape)
        }
        return try MultiHeadDotProductAttention.Projection(kernel: kernel, bias: bias, inputAxes: 1)(input)
    }
}
