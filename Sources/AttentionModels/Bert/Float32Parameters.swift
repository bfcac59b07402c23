import Attention

extension ParameterizedModule {
    /// Throws unless every parameter outside ``ParameterizedModule/matrixWeightNames`` is
    /// `float32`: the check a model's forward pass makes first, so that a half-precision parameter
    /// assigned through a public property is reported under its full name at this level
    /// (`"encoder.layer.0.attention.output.LayerNorm.weight"`, not the nested layer norm's `"weight"`).
    ///
    /// - Throws: `AttentionError.unsupportedDType` naming the first such parameter.
    func requireFloat32Parameters() throws {
        let matrixWeights = matrixWeightNames
        for (name, tensor) in namedParameters where tensor.dtype != .float32 && !matrixWeights.contains(name) {
            throw AttentionError.unsupportedDType(
                argument: name, dtype: tensor.dtype,
                reason: "the embedding tables, biases and layer norms are float32 (only the layers' projection weights "
                    + "may be half precision); convert explicitly with converted(to: .float32)")
        }
    }
}
