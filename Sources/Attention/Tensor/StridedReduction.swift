// Reductions along an axis other than the last (Tensor+ReductionLayout.swift): for each of `outer`
// blocks, `inner` lines side by side, each `length` long with stride `inner`. The block is read in
// storage order, one contiguous run of `inner` elements per step along the axis, with `inner`
// running sums (in Double) or extrema kept meanwhile: the arithmetic of attn_reduce_rows (sums in
// Double rounded once, so the two paths agree to the last bit but for the rare rounding tie the
// summation order decides; extrema exactly, indices included).

/// Reduces (outer, length, inner) elements at `x` (every count at least 1, inner > 1) into
/// `values` and/or `indices`, each (outer, inner).
///
/// - Throws: `AttentionError.outOfMemory` when the `inner` running values cannot be allocated.
func reduceStrided(
    _ x: UnsafePointer<Float>, _ layout: ReductionLayout, _ kind: KernelReduction,
    values: UnsafeMutablePointer<Float>?, indices: UnsafeMutablePointer<Int64>?
) throws(AttentionError) {
    let (outer, length, inner) = (layout.outer, layout.length, layout.inner)
    if kind == .sum || kind == .mean {
        try checkAllocatable(inner, of: Double.self, argument: "self")
        var sums = [Double](repeating: 0, count: inner)
        sums.withUnsafeMutableBufferPointer { sums in
            for o in 0..<outer {
                let block = x + o * length * inner
                for i in 0..<inner { sums[i] = Double(block[i]) }
                for l in 1..<Swift.max(length, 1) {
                    let line = block + l * inner
                    for i in 0..<inner { sums[i] += Double(line[i]) }
                }
                let divisor = kind == .mean ? Double(length) : 1
                for i in 0..<inner { values![o * inner + i] = Float(sums[i] / divisor) }
            }
        }
        return
    }
    try checkAllocatable(inner, of: Int64.self, argument: "self")
    var best = [Int64](repeating: 0, count: inner)
    let largest = kind == .max
    best.withUnsafeMutableBufferPointer { best in
        for o in 0..<outer {
            let block = x + o * length * inner
            for i in 0..<inner { best[i] = 0 }
            for l in 1..<Swift.max(length, 1) {
                let line = block + l * inner
                for i in 0..<inner {
                    let current = block[Int(best[i]) * inner + i], v = line[i]
                    // The first NaN stays; otherwise a NaN or a strictly better value replaces.
                    if !current.isNaN && (v.isNaN || (largest ? v > current : v < current)) { best[i] = Int64(l) }
                }
            }
            for i in 0..<inner {
                values?[o * inner + i] = block[Int(best[i]) * inner + i]
                indices?[o * inner + i] = best[i]
            }
        }
    }
}
