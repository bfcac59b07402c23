import Attention

/// Several projections of the same input stored as one `Linear` whose weight stacks theirs row
/// by row, so one matrix product (one pass over the input, one hand-out to the threads) computes
/// them all: Llama's query, key and value projections, or its gate and up projections. Each part
/// keeps its own checkpoint name through ``weight(of:)`` and ``bias(of:)``.
struct FusedLinear: Sendable, Equatable {
    /// The stacked weight `(Σ outputs, inputs)` and bias `(Σ outputs,)`.
    var linear: Linear
    /// Each part's output width, in stacking order.
    let widths: [Int]

    /// Stacks the parts' weights (all of one type) and biases (all or none).
    init(weights: [Tensor], biases: [Tensor]?) throws {
        widths = weights.map { $0.shape[0] }
        let weight = try Tensor.concatenated(weights, axis: 0)
        linear = try Linear(weight: weight, bias: try biases.map { try Tensor.concatenated($0, axis: 0) })
    }

    /// The rows of part `index` within the stacked output.
    func rows(of index: Int) -> Range<Int> {
        let start = widths[..<index].reduce(0, +)
        return start..<(start + widths[index])
    }

    /// Part `index`'s weight (a copy); setting it replaces those rows.
    func weight(of index: Int) -> Tensor {
        (try? linear.weight.sliced(rows(of: index), axis: 0)) ?? linear.weight
    }

    /// Part `index`'s bias (a copy); `nil` without biases.
    func bias(of index: Int) -> Tensor? {
        linear.bias.flatMap { try? $0.sliced(rows(of: index), axis: 0) }
    }

    /// Replaces part `index`'s weight or bias, converted to the stacked type. A replacement of
    /// another shape leaves the layer unchanged (`loadParameters` checks shapes before setting).
    mutating func replace(_ index: Int, weight: Tensor? = nil, bias: Tensor? = nil) {
        let dtype = linear.weight.dtype
        let weight = weight.flatMap { try? $0.converted(to: dtype) }
        let bias = bias.flatMap { try? $0.converted(to: .float32) }
        let parts = widths.indices.map { $0 == index ? weight ?? self.weight(of: $0) : self.weight(of: $0) }
        let biases = linear.bias.map { _ in widths.indices.map { $0 == index ? bias ?? self.bias(of: $0)! : self.bias(of: $0)! } }
        if let rebuilt = try? FusedLinear(weights: parts, biases: biases) { self = rebuilt }
    }

    /// Part `index`'s weight, read from and written to the stacked rows: the key path a parameter
    /// name maps to (`\.projection[weight: 0]` is `q_proj.weight`).
    subscript(weight index: Int) -> Tensor {
        get { weight(of: index) }
        set { replace(index, weight: newValue) }
    }

    /// Part `index`'s bias, read from and written to the stacked bias; the layer has biases.
    subscript(bias index: Int) -> Tensor {
        get { bias(of: index)! }
        set { replace(index, bias: newValue) }
    }

    /// `(..., inputs)` → each part's `(..., outputs)`, as separate dense f32 tensors (each copied
    /// out of the stacked product row by row), after `transform` has changed the stacked product
    /// `(..., Σ outputs)` in place (Llama's rotary embedding on its query and key columns).
    func callAsFunction(
        _ input: Tensor, products: MatrixProducts, transform: (inout Tensor) throws -> Void = { _ in }
    ) throws -> [Tensor] {
        var stacked = try linear(input, products: products)
        try transform(&stacked)
        return try widths.indices.map { try stacked.sliced(rows(of: $0), axis: -1) }
    }
}
