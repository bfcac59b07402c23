extension Linear: DifferentiableLayer {
    /// The layer's output for `input`, as ``callAsFunction(_:)``, with its pullback: the gradients
    /// of the weight (`xᵀ·dy` in the weight's own layout), of the bias (`dy` summed over the
    /// rows) and of the input (`dy·Wᵀ`), each one kernel call.
    ///
    /// ```swift
    /// let (y, pullback) = try linear.callWithPullback(x)
    /// let gradients = try pullback(dy)
    /// // gradients.parameters["weight"]: (outputSize, inputSize); gradients.input: x.shape
    /// ```
    ///
    /// A half-precision weight is read as stored; its gradient is `float32`.
    ///
    /// - Throws: as ``callAsFunction(_:)``.
    public func callWithPullback(_ input: Tensor) throws -> (output: Tensor, pullback: LayerPullback<Linear>) {
        try callWithPullback(input, products: .float32)
    }

    /// ``callWithPullback(_:)`` with a `bfloat16` weight's products formed as `products` says,
    /// in the forward pass and in both gradients: with ``MatrixProducts/bfloat16`` every product
    /// is of two bf16 values (the input, the output gradient and, for the weight's gradient, the
    /// saved input rounded to bf16), summed in float32, as `torch.autocast` trains on a CPU. For
    /// other weights `products` changes nothing.
    ///
    /// - Throws: as ``callAsFunction(_:products:)``.
    public func callWithPullback(
        _ input: Tensor, products: MatrixProducts
    ) throws -> (output: Tensor, pullback: LayerPullback<Linear>) {
        let output = try self(input, products: products)
        return (output, LayerPullback(self, outputShape: output.shape) {
            try backward(input: input, outputGradient: $0, products: products)
        })
    }

    /// The gradients of a call on `input` whose output gradient is `outputGradient`: the
    /// pullback's body, for modules that keep the input of their output projection.
    package func backward(
        input: Tensor, outputGradient: Tensor, products: MatrixProducts = .float32
    ) throws(AttentionError) -> LayerGradients<Linear> {
        var values = self
        var weightGradient = try Tensor(uninitializedShape: weight.shape, argument: "weight")
        var biasGradient = bias == nil ? nil : try Tensor(uninitializedShape: outputShape, argument: "bias")
        try parameterGradients(
            input: input, outputGradient: outputGradient, weight: &weightGradient, bias: &biasGradient, products: products)
        (values.weight, values.bias) = (weightGradient, biasGradient)
        return LayerGradients(
            parameters: ParameterGradients(values: values),
            input: try inputGradient(outputGradient, inputShape: input.shape, products: products))
    }

    /// Whether `products` makes this layer's products bf16 pairs: a bf16 weight and
    /// ``MatrixProducts/bfloat16``.
    func bfloat16Products(_ products: MatrixProducts) -> Bool {
        products == .bfloat16 && weight.dtype == .bfloat16
    }

    /// The weight's and the bias's gradients for the outputs `outputs` (all of them when `nil`)
    /// of a call on `input` whose output gradient is `dy`, `(..., outputs.count)`: written into
    /// their block of `weight` and `bias` (gradients shaped as the parameters). The caller has
    /// checked the shapes (the forward did). With bf16 products the matrix in the kernel's `b`
    /// place (the input, or for an `(inputs, outputs)` kernel the output gradient) is rounded to
    /// bf16 first, and the kernel rounds the other.
    func parameterGradients(
        input: Tensor, outputGradient dy: Tensor, outputs: Range<Int>? = nil, weight weightGradient: inout Tensor,
        bias biasGradient: inout Tensor?, products: MatrixProducts = .float32
    ) throws(AttentionError) {
        let (k, n) = (inputSize, outputSize)
        let block = outputs ?? 0..<n
        let rows = k == 0 ? 0 : input.count / k
        let byInputs = layout == .outputsByInputs
        // The block's first element: rows of an (N, K) weight, columns of a (K, N) one.
        let first = byInputs ? block.lowerBound * k : block.lowerBound
        let context = "input \(input.shape), \(weightName) \(weight.shape), output gradient \(dy.shape)"
        let x = input.storage.buffer.baseAddress.map { UnsafePointer($0) }
        let g = dy.storage.buffer.baseAddress.map { UnsafePointer($0) }
        if rows == 0 {
            weightGradient.fill(block, outputsByInputs: byInputs, inputs: k, outputs: n, with: 0)
        } else {
            let pairs = bfloat16Products(products)
            let operand = try pairs ? (byInputs ? input : dy).converting(to: .bfloat16, argument: "input") : (byInputs ? input : dy)
            let b = operand.storage.bytes.baseAddress.map { UnsafeRawPointer($0) }
            let bType: Tensor.DType = pairs ? .bfloat16 : .float32
            try weightGradient.withUnsafeMutableBufferPointer { (buffer) throws(AttentionError) in
                try withExtendedLifetime((input, dy, operand)) { () throws(AttentionError) in
                    if byInputs {  // dW[block] (b, K) = dyᵀ·x
                        try multiplyMatrices(
                            m: block.count, n: k, k: rows, a: g, lda: block.count, aTransposed: true,
                            b: b, ldb: k, bTransposed: false, bType: bType, c: buffer.baseAddress! + first, ldc: k,
                            products: products, context: context)
                    } else {  // dW[:, block] (K, b) = xᵀ·dy
                        try multiplyMatrices(
                            m: k, n: block.count, k: rows, a: x, lda: k, aTransposed: true,
                            b: b, ldb: block.count, bTransposed: false, bType: bType, c: buffer.baseAddress! + first,
                            ldc: n, products: products, context: context)
                    }
                }
            }
        }
        if biasGradient != nil {
            try biasGradient!.withUnsafeMutableBufferPointer { (buffer) throws(AttentionError) in
                if rows == 0 { buffer[block].initialize(repeating: 0); return }
                try withExtendedLifetime(dy) { () throws(AttentionError) in
                    try sumColumns(
                        g, rows: rows, n: block.count, ld: block.count, into: buffer.baseAddress! + block.lowerBound,
                        accumulate: false, context: context)
                }
            }
        }
    }

    /// The input's gradient `dy · W[outputs]`, shaped `inputShape`, for the output gradient `dy`
    /// of the outputs `outputs` (all of them when `nil`).
    func inputGradient(
        _ dy: Tensor, inputShape: [Int], outputs: Range<Int>? = nil, products: MatrixProducts = .float32
    ) throws(AttentionError) -> Tensor {
        var dx = try Tensor(uninitializedShape: inputShape, argument: "input")
        try addInputGradient(dy, outputs: outputs, to: &dx, accumulate: false, products: products)
        return dx
    }

    /// Writes `dy · W[outputs]` into `dx` (shaped as the input), or adds it with `accumulate`:
    /// several projections of one input (self-attention's query, key and value).
    func addInputGradient(
        _ dy: Tensor, outputs: Range<Int>? = nil, to dx: inout Tensor, accumulate: Bool, products: MatrixProducts = .float32
    ) throws(AttentionError) {
        let (k, n) = (inputSize, outputSize)
        let block = outputs ?? 0..<n
        let byInputs = layout == .outputsByInputs
        let first = byInputs ? block.lowerBound * k : block.lowerBound
        let rows = k == 0 ? 0 : dx.count / k
        if rows == 0 { return }
        if block.isEmpty {
            if !accumulate { dx = dx.filled(with: 0) }
            return
        }
        let context = "input \(dx.shape), \(weightName) \(weight.shape), output gradient \(dy.shape)"
        let g = dy.storage.buffer.baseAddress.map { UnsafePointer($0) }
        try dx.withUnsafeMutableBufferPointer { (buffer) throws(AttentionError) in
            try withExtendedLifetime((dy, weight)) { () throws(AttentionError) in
                // dx (rows, K) = dy · W[block]: the block is (b, K) in PyTorch's layout, (K, b) in Flax's.
                try multiplyMatrices(
                    m: rows, n: k, k: block.count, a: g, lda: block.count,
                    b: weight.storage.bytes.baseAddress.map { UnsafeRawPointer($0 + first * weight.dtype.byteSize) },
                    ldb: byInputs ? k : n, bTransposed: !byInputs, bType: weight.dtype,
                    c: buffer.baseAddress, ldc: k, accumulate: accumulate, products: products, context: context)
            }
        }
    }
}

extension Tensor {
    /// Sets the block `outputs` of a weight gradient to `value`: rows of an `(outputs, inputs)`
    /// tensor, columns of an `(inputs, outputs)` one.
    fileprivate mutating func fill(_ block: Range<Int>, outputsByInputs: Bool, inputs: Int, outputs: Int, with value: Float) {
        withUnsafeMutableBufferPointer { buffer in
            if outputsByInputs {
                buffer[(block.lowerBound * inputs)..<(block.upperBound * inputs)].initialize(repeating: value)
            } else {
                for row in 0..<inputs { buffer[(row * outputs + block.lowerBound)..<(row * outputs + block.upperBound)].initialize(repeating: value) }
            }
        }
    }
}

extension Linear {
    /// The layer of the outputs `outputs` alone, for a layer of one input and one output axis:
    /// rows of an `(outputs, inputs)` weight or columns of an `(inputs, outputs)` kernel, and
    /// those entries of the bias. A packed projection's gradients (a layer whose tensors are
    /// gradients) split into the gradients of the layers it packs.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"range"`) for outputs beyond the layer's.
    func outputBlock(_ outputs: Range<Int>) throws -> Linear {
        var block = self
        block.weight = try weight.sliced(outputs, axis: layout == .outputsByInputs ? 0 : 1)
        block.bias = try bias?.sliced(outputs, axis: 0)
        return block
    }
}
