extension TransformerEncoderLayer {
    /// Which library's encoder layer this layer reproduces: PyTorch's
    /// `torch.nn.TransformerEncoderLayer` (the default) or noxton's
    /// `noxton.nn.TransformerEncoderLayer`.
    ///
    /// The two compute the same block (the same attention, feed-forward network, layer norms,
    /// residuals and dropout placement, pre-norm or post-norm); what differs is listed below, and
    /// the convention selects all of it at once:
    ///
    /// | | ``torch`` | ``noxton`` |
    /// |---|---|---|
    /// | self-attention parameters | `self_attn.in_proj_weight` (3E, E), `self_attn.in_proj_bias` (3E), `self_attn.out_proj.weight`/`.bias` | Equinox's `self_attn.query_proj.weight` (E, E), `.bias` (E), `key_proj`, `value_proj`, `output_proj` |
    /// | their initialisation | Xavier-uniform packed weight, zero biases, out-projection `U(±1/√E)` with zero bias | each projection `eqx.nn.Linear`: weight and bias from `U(±1/√E)` |
    /// | `isCausal` | PyTorch's hint: requires `mask`, which it replaces by the causal mask when there is no key padding mask | causal masking **and** `mask` (noxton's `mask & tril(ones)`); works without a mask |
    /// | a query with every key masked | zeros before the output projection (PyTorch ≥ 2.5's SDPA) | the mean of the values (Equinox masks with the most negative float, so its softmax is uniform) |
    /// | default `norm_first` | `False` (pass `normFirst: false`) | `True` (pass `normFirst: true`) |
    ///
    /// The separate Equinox projections are views of the packed in-projection: a noxton layer
    /// still projects self-attention with one matmul. So they share one dtype: one of them written
    /// (loading, a key path of ``parameterPaths``) in a dtype the other two cannot take exactly
    /// stores all three as `float32` (exact widening), never rounding the others; all three written
    /// in one dtype (``ParameterizedModule/convertingWeights(to:)``) keep it. Mask polarity is not
    /// part of the convention: it travels with the mask, so noxton's boolean masks (`True` =
    /// attend) are ``TorchMask/allowed(_:)`` and PyTorch's (`True` = masked)
    /// ``TorchMask/disallowed(_:)``, with either convention.
    ///
    /// ```swift
    /// // noxton.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32) and its checkpoint
    /// var layer = try TransformerEncoderLayer(
    ///     dModel: 16, heads: 4, feedForwardSize: 32, normFirst: true, convention: .noxton, using: &rng)
    /// try layer.loadParameters(from: file, prefix: "encoder")   // encoder.self_attn.query_proj.weight, ...
    /// let y = try layer(x, mask: .allowed(keep))                 // keep: true = attend
    /// ```
    ///
    /// A layer can change convention after loading (`layer.convention = .torch`), which renames
    /// its parameters (to save a noxton checkpoint under PyTorch's names, say) and switches the
    /// two behaviours above.
    public enum Convention: String, Sendable, Equatable, Hashable, CaseIterable {
        /// `torch.nn.TransformerEncoderLayer`.
        case torch
        /// `noxton.nn.TransformerEncoderLayer` (its self-attention is `equinox.nn.MultiheadAttention`
        /// with all four biases when `use_bias`).
        case noxton
    }

    /// The self-attention parameters under noxton's (Equinox's) names, as views of the packed
    /// in-projection.
    var noxtonAttentionPaths: [ParameterPath<TransformerEncoderLayer>] {
        var paths: [ParameterPath<TransformerEncoderLayer>] = []
        let hasBias = selfAttention.inProjectionBias != nil
        for (index, name) in ["query_proj", "key_proj", "value_proj"].enumerated() {
            paths.append(ParameterPath("self_attn.\(name).weight", \.selfAttention[equinoxWeight: index]))
            if hasBias { paths.append(ParameterPath("self_attn.\(name).bias", \.selfAttention[equinoxBias: index])) }
        }
        paths.append(ParameterPath("self_attn.output_proj.weight", \.selfAttention.outProjection.weight))
        if selfAttention.outProjection.bias != nil {
            paths.append(ParameterPath("self_attn.output_proj.bias", \.selfAttention.outProjection.bias!))
        }
        return paths
    }

    /// The noxton convention's matrix-multiply weights: the three projection weights (slices of
    /// the packed `in_proj_weight`) and the output projection's.
    var noxtonMatrixWeightNames: Set<String> {
        ["self_attn.query_proj.weight", "self_attn.key_proj.weight", "self_attn.value_proj.weight",
         "self_attn.output_proj.weight"]
    }
}

extension TorchMultiheadAttention {
    /// Equinox's separate `(E, E)` query (0), key (1) or value (2) projection weight: rows
    /// `[index·E, (index + 1)·E)` of the packed ``inProjectionWeight``, read and written in place.
    ///
    /// When the packed weight is absent or misshapen, reading gives zeros of the projection's
    /// shape (so loading checks a checkpoint's tensor against the shape the layer needs and reports
    /// any other as a shape mismatch), and writing first replaces it with zeros of the packed shape.
    /// A slice written in another dtype than the packed weight's changes the packed weight to that
    /// dtype only when the other two slices are exact in it, and to `float32` otherwise: no value
    /// is ever rounded.
    subscript(equinoxWeight index: Int) -> Tensor {
        get { packedSlice(inProjectionWeight, index: index, shape: [embedDim, embedDim]) }
        set { writePackedSlice(&inProjectionWeight, index: index, shape: [embedDim, embedDim], newValue) }
    }

    /// Equinox's separate `(E,)` query (0), key (1) or value (2) projection bias: elements
    /// `[index·E, (index + 1)·E)` of ``inProjectionBias``, read and written in place, as
    /// ``subscript(equinoxWeight:)``.
    subscript(equinoxBias index: Int) -> Tensor {
        get { packedSlice(inProjectionBias, index: index, shape: [embedDim]) }
        set { writePackedSlice(&inProjectionBias, index: index, shape: [embedDim], newValue) }
    }

    private func packedSlice(_ packed: Tensor?, index: Int, shape: [Int]) -> Tensor {
        let packedShape = [3 * shape[0]] + shape.dropFirst()
        if let packed, packed.shape == packedShape,
           let slice = try? packed.sliced((index * shape[0])..<((index + 1) * shape[0]))
        {
            return slice
        }
        // Only an allocation failure leaves no zeros, and an empty tensor allocates nothing.
        return (try? Tensor(zeros: shape)) ?? (try! Tensor(zeros: [0]))
    }

    private func writePackedSlice(_ packed: inout Tensor?, index: Int, shape: [Int], _ newValue: Tensor) {
        let packedShape = [3 * shape[0]] + shape.dropFirst()
        // Loading writes what the getter read, so the shape is the slice's unless memory ran out.
        guard newValue.shape == shape, (0..<3).contains(index) else { return }
        if packed?.shape != packedShape {
            guard let zeros = try? Tensor(zeros: packedShape) else { return }
            packed = zeros
        }
        // One packed tensor holds the three slices in one dtype, and no value is ever rounded:
        // it takes the slice's dtype when the other two slices are exact in it (as when loading
        // or convertingWeights(to:) writes all three in one dtype), and float32 otherwise, which
        // holds every dtype exactly (a half slice among float32 ones is widened).
        var newValue = newValue
        if packed!.dtype != newValue.dtype {
            let dtype = packed!.holdsExactly(in: newValue.dtype, outside: index * newValue.count, count: newValue.count)
                ? newValue.dtype : .float32
            guard let converted = try? packed!.converted(to: dtype), let value = try? newValue.converted(to: dtype)
            else { return }
            (packed, newValue) = (converted, value)
        }
        let bytes = newValue.count * newValue.dtype.byteSize
        packed!.withUnsafeMutableRawBufferPointer { target in
            newValue.withUnsafeRawBufferPointer { source in
                (target.baseAddress! + index * bytes).copyMemory(from: source.baseAddress!, byteCount: bytes)
            }
        }
    }

    /// A module initialised as noxton's layers initialise their `eqx.nn.MultiheadAttention`: each
    /// of the query, key, value and output projections an `eqx.nn.Linear` (weight, then bias, from
    /// `U(±1/√E)`), packed into PyTorch's layout.
    static func equinoxInitialized(
        embedDim: Int, heads: Int, dropout: Float, bias: Bool, batchFirst: Bool,
        using generator: inout some RandomNumberGenerator
    ) throws -> TorchMultiheadAttention {
        var module = try TorchMultiheadAttention(
            structure: embedDim, heads: heads, dropout: dropout, bias: bias, addBiasKV: false,
            addZeroAttention: false, keyDim: embedDim, valueDim: embedDim, batchFirst: batchFirst)
        for index in 0..<4 {
            let linear = try Linear(inputSize: embedDim, outputSize: embedDim, bias: bias, using: &generator)
            if index == 3 {
                module.outProjection = linear
            } else {
                module[equinoxWeight: index] = linear.weight
                if let linearBias = linear.bias { module[equinoxBias: index] = linearBias }
            }
        }
        return module
    }
}

extension Tensor {
    /// Whether converting to `dtype` keeps every element outside `start ..< start + count` bit for
    /// bit (converted back to this tensor's dtype), so a packed tensor can change dtype without
    /// rounding the slices it keeps. `false` when the conversion cannot be allocated.
    fileprivate func holdsExactly(in dtype: DType, outside start: Int, count: Int) -> Bool {
        guard let back = try? converted(to: dtype).converted(to: self.dtype) else { return false }
        let size = self.dtype.byteSize
        return withUnsafeRawBufferPointer { original in
            back.withUnsafeRawBufferPointer { roundTrip in
                original[..<(start * size)].elementsEqual(roundTrip[..<(start * size)])
                    && original[((start + count) * size)...].elementsEqual(roundTrip[((start + count) * size)...])
            }
        }
    }
}
