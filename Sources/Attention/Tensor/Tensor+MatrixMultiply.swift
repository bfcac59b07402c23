/// The matrix product of the last two dimensions of `a` and `b`, batched over the others with
/// NumPy broadcasting (`a @ b`, `torch.matmul` and `mlx.matmul` for ranks of 2 or more).
///
/// `a` is `[batch..., M, K]` (or `[batch..., K, M]` with `transposingA`) and `b` is
/// `[batch..., K, N]` (or `[batch..., N, K]` with `transposingB`); their batch dimensions
/// broadcast against each other, and the result is `[broadcast batch..., M, N]`. Each matrix of
/// the batch is one call of the library's matrix-multiply kernel, reading `b` in place either way;
/// a transposed `a` is copied once first. An empty dimension gives an empty result, and `K = 0`
/// gives zeros.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let q = try Tensor(randomNormal: [2, 8, 16, 64], using: &rng)   // (B, H, L, D)
/// let k = try Tensor(randomNormal: [2, 8, 24, 64], using: &rng)   // (B, H, S, D)
/// let scores = try matmul(q, k, transposingB: true)               // (B, H, L, S): q kᵀ
/// let weights = try scores.scaled(by: 0.125).softmax()
/// ```
///
/// `b` may be `float32`, `float16` or `bfloat16` (weights kept in half precision, read in place
/// and widened exactly; a `bfloat16` `b` with `products` ``MatrixProducts/bfloat16`` multiplies
/// `a` rounded to bf16); `a` must be `float32`, and the result is `float32`.
///
/// - Throws: `AttentionError.unsupportedDType` (`"a"`) for a half-precision `a`;
///   `.shapeMismatch` naming `"a"` or `"b"` for a rank below 2, and naming
///   `"b"` (with both shapes) when the inner dimensions differ or the batch dimensions do not
///   broadcast; `.overflow` or `.outOfMemory` for the result; the kernel's errors.
public func matmul(
    _ a: Tensor, _ b: Tensor, transposingA: Bool = false, transposingB: Bool = false,
    products: MatrixProducts = .float32
) throws -> Tensor {
    for (name, tensor) in [("a", a), ("b", b)] where tensor.rank < 2 {
        throw AttentionError.shapeMismatch(argument: name, expected: "rank 2 or more: [batch..., rows, columns]", actual: tensor.shape)
    }
    try a.requireFloat32("a", reason: "matmul takes a float32 left operand (only b, the weights, may be half precision)")
    let left = transposingA ? try a.transposed() : a
    let (m, inner) = (left.shape[left.rank - 2], left.shape[left.rank - 1])
    let (bRows, bColumns) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
    let (innerB, n) = transposingB ? (bColumns, bRows) : (bRows, bColumns)
    let aDescription = "a \(a.shape)" + (transposingA ? " transposed" : "")
    guard innerB == inner else {
        let expected = transposingB ? "[batch..., N, \(inner)]" : "[batch..., \(inner), N]"
        throw AttentionError.shapeMismatch(
            argument: "b", expected: "\(expected): its inner dimension matching the \(inner) columns of \(aDescription)",
            actual: b.shape)
    }
    let batchA = Array(left.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
    guard let batchShape = broadcastShape(batchA, batchB),
          let stridesA = broadcastStrides(of: batchA, to: batchShape),
          let stridesB = broadcastStrides(of: batchB, to: batchShape)
    else {
        throw AttentionError.shapeMismatch(
            argument: "b", expected: "batch dimensions broadcastable with \(batchA), those of \(aDescription)",
            actual: b.shape)
    }
    if inner == 0 { return try Tensor(zeros: batchShape + [m, n]) }
    let result = try Tensor(uninitializedShape: batchShape + [m, n], argument: "b")
    if result.count == 0 { return result }
    let context = "\(aDescription), b \(b.shape)" + (transposingB ? " transposed" : "")
    var failure: AttentionError?
    withExtendedLifetime((left, b, result)) {
        let aBase = UnsafePointer(left.storage.buffer.baseAddress!), bBase = UnsafeRawPointer(b.storage.bytes.baseAddress!)
        let cBase = result.storage.buffer.baseAddress!
        forEachBroadcastElement(of: batchShape, stridesA: stridesA, stridesB: stridesB) { index, matrixA, matrixB in
            guard failure == nil else { return }
            do throws(AttentionError) {
                try multiplyMatrices(
                    m: m, n: n, k: inner,
                    a: aBase + matrixA * m * inner, lda: inner,
                    b: bBase + matrixB * inner * n * b.dtype.byteSize, ldb: bColumns, bTransposed: transposingB,
                    bType: b.dtype,
                    c: cBase + index * m * n, ldc: n, products: products, context: context)
            } catch {
                failure = error
            }
        }
    }
    if let failure { throw failure }
    return result
}
