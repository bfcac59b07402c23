import Attention

/// The SwiGLU feed-forward block of one Llama layer (`mlp`):
/// `down_proj(silu(gate_proj(x)) · up_proj(x))`.
struct LlamaMLP: ParameterizedModule, Equatable {
    /// `gate_proj` and `up_proj` stacked: one product per call.
    var gateUp: FusedLinear
    var down: Linear

    /// Reads `prefix.gate_proj.weight`, `up_proj`, `down_proj` (and biases with `mlp_bias`).
    /// Weights in `weightDType` (`nil`: as stored), biases in f32.
    init(configuration c: LlamaConfiguration, checkpoint: LlamaCheckpoint, prefix: String, weightDType: Tensor.DType?) throws {
        func linear(_ name: String, _ outputs: Int, _ inputs: Int) throws -> Linear {
            let weight = try checkpoint.tensor("\(prefix).\(name).weight", shape: [outputs, inputs], dtype: weightDType)
            let bias = c.mlpBias
                ? try checkpoint.tensor("\(prefix).\(name).bias", shape: [outputs], dtype: .float32) : nil
            return try Linear(weight: weight, bias: bias)
        }
        let gate = try linear("gate_proj", c.intermediateSize, c.hiddenSize)
        let up = try linear("up_proj", c.intermediateSize, c.hiddenSize)
        gateUp = try FusedLinear(weights: [gate.weight, up.weight], biases: c.mlpBias ? [gate.bias!, up.bias!] : nil)
        down = try linear("down_proj", c.hiddenSize, c.intermediateSize)
    }

    /// `transformers`' names: `gate_proj` and `up_proj` (read from and written to the stacked
    /// projection), `down_proj`.
    var parameterPaths: [ParameterPath<LlamaMLP>] {
        var paths: [ParameterPath<LlamaMLP>] = [ParameterPath("gate_proj.weight", \.gateUp[weight: 0])]
        if gateUp.linear.bias != nil { paths.append(ParameterPath("gate_proj.bias", \.gateUp[bias: 0])) }
        paths.append(ParameterPath("up_proj.weight", \.gateUp[weight: 1]))
        if gateUp.linear.bias != nil { paths.append(ParameterPath("up_proj.bias", \.gateUp[bias: 1])) }
        return paths + parameterPaths(of: \.down, prefixedBy: "down_proj")
    }

    /// `residual` plus the block of `input`, `(..., hiddenSize)` → `(..., hiddenSize)` (the addition
    /// fused into `down_proj`), bf16 weights multiplied as `products` says.
    func callAsFunction(_ input: Tensor, adding residual: Tensor, products: MatrixProducts) throws -> Tensor {
        let gated = try Activation.silu.gated(gateUp.linear(input, products: products))
        return try down(gated, products: products, adding: residual)
    }
}
