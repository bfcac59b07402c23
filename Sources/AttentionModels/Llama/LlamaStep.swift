import Attention

/// What every layer of one forward call shares: how many new tokens each sequence brings, where
/// they start (the rotary embedding's positions), the attention mask over the cache and how the
/// projections multiply.
struct LlamaStep {
    /// The number of new tokens of each sequence (each at least 1).
    let counts: [Int]
    /// The positions each sequence held before this call: where its new tokens go.
    let starts: [Int]
    /// The rows of the padded `(batch, rows, ...)` activations: the largest count.
    let rows: Int
    /// Which cached keys each new query sees.
    let mask: AttentionMask
    /// How every projection multiplies by bf16 weights.
    let products: MatrixProducts

    init(counts: [Int], starts: [Int], capacity: Int, products: MatrixProducts) throws {
        self.counts = counts
        self.products = products
        self.starts = starts
        let rows = counts.max() ?? 0
        self.rows = rows
        let ends = zip(starts, counts).map { $0 + $1 }
        if rows == 1 {
            // One new token per sequence: it sees its whole sequence, itself included.
            mask = AttentionMask(keyLengths: ends)
        } else if starts.allSatisfy({ $0 == 0 }) {
            // A prompt into an empty cache: query i sees keys 0...i, padding keys never.
            mask = AttentionMask(causal: .topLeft, keyLengths: ends)
        } else {
            // New tokens after cached ones: query i of sequence b sees keys 0...(starts[b] + i),
            // an alignment that differs per sequence, so it is spelled out.
            let shape = [counts.count, 1, rows, capacity]
            mask = AttentionMask(
                keyLengths: ends,
                booleanMask: try BooleanMask(shape: shape) { index in index[3] <= starts[index[0]] + index[2] })
        }
    }
}
