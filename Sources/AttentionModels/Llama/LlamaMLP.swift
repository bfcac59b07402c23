import Attention

/// The feed-forward block of one Llama layer (`mlp`): `down(silu(gate(x)) · up(x))`, with the
/// gate and up projections stacked into one product and the gated activation applied to it.
struct LlamaMLP: ParameterizedModule, Equatable {
    /// `gate_proj` and `up_proj` stacked row by row, `(2·intermediate, hidden)`; each keeps its
    /// checkpoint name as a block of rows.
    var gateUp: Linear
    var down: Linear

    /// Reads `prefix.gate_proj.weight`, ... (and their biases when the configuration has them).
    init(configuration c: LlamaConfiguration, checkpoint: some LlamaWeightSource, prefix: String, weightDType: Tensor.DType?) throws {
        func part(_ name: String, _ outputs: Int, _ inputs: Int) throws -> (Tensor, Tensor?) {
            let weight = try checkpoint.tensor("\(prefix).\(name).weight", shape: [outputs, inputs], dtype: weightDType)
            let bias = c.mlpBias
                ? try checkpoint.tensor("\(prefix).\(name).bias", shape: [outputs], dtype: .float32) : nil
            return (weight, bias)
        }
        gateUp = try Linear(stacking: [
            part("gate_proj", c.intermediateSize, c.hiddenSize), part("up_proj", c.intermediateSize, c.hiddenSize),
        ])
        let (weight, bias) = try part("down_proj", c.hiddenSize, c.intermediateSize)
        down = try Linear(weight: weight, bias: bias)
    }

    /// `transformers`' names: `gate_proj` and `up_proj` (blocks of the stacked rows), `down_proj`.
    var parameterPaths: [ParameterPath<LlamaMLP>] {
        let width = gateUp.outputSize / 2
        let blocks = [("gate_proj", 0..<width), ("up_proj", width..<(2 * width))]
        let paths = blocks.flatMap { name, rows in
            [ParameterPath<LlamaMLP>("\(name).weight", \.gateUp.weight, storage: .rows(rows))]
                + (gateUp.bias == nil ? [] : [ParameterPath("\(name).bias", \.gateUp.bias!, storage: .rows(rows))])
        }
        return paths + parameterPaths(of: \.down, prefixedBy: "down_proj")
    }

    /// `input` `(..., hidden)` through the block, plus `residual` (summed by the last product).
    func callAsFunction(_ input: Tensor, adding residual: Tensor, products: MatrixProducts) throws -> Tensor {
        let gated = try Activation.silu.gated(gateUp(input, products: products))
        return try down(gated, products: products, adding: residual)
    }
}
