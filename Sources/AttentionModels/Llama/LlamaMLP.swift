import Attention
import Foundation

/// The SwiGLU feed-forward block of one Llama layer (`mlp`):
/// `down_proj(silu(gate_proj(x)) · up_proj(x))`.
struct LlamaMLP: ParameterizedModule, Equatable {
    var gate: Linear
    var up: Linear
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
        gate = try linear("gate_proj", c.intermediateSize, c.hiddenSize)
        up = try linear("up_proj", c.intermediateSize, c.hiddenSize)
        down = try linear("down_proj", c.hiddenSize, c.intermediateSize)
    }

    var parameterPaths: [ParameterPath<LlamaMLP>] {
        parameterPaths(of: \.gate, prefixedBy: "gate_proj") + parameterPaths(of: \.up, prefixedBy: "up_proj")
            + parameterPaths(of: \.down, prefixedBy: "down_proj")
    }

    /// `(..., hiddenSize)` → `(..., hiddenSize)`.
    func callAsFunction(_ input: Tensor) throws -> Tensor {
        var gated = try gate(input)
        let linear = try up(input)
        gated.withUnsafeMutableBufferPointer { g in
            linear.withUnsafeBufferPointer { u in
                for index in g.indices {
                    let x = g[index]
                    g[index] = x / (1 + expf(-x)) * u[index]
                }
            }
        }
        return try down(gated)
    }
}
