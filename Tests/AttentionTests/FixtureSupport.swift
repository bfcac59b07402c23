import Testing
import Attention

// Comparison of module outputs with the reference fixtures (PyTorch, Equinox, Flax, the tutorial),
// shared by every fixture-driven suite.

/// Checks `actual` against `expected` element by element: the same shape, NaN where NaN is
/// expected, otherwise `|a - e| <= atol + rtol·|e|`. Records one issue with the largest difference.
func expectFixtureClose(
    _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 2e-5, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard actual.shape == expected.shape else {
        Issue.record("shape \(actual.shape), expected \(expected.shape). \(comment?.rawValue ?? "")",
                     sourceLocation: sourceLocation)
        return
    }
    var worst: (index: Int, difference: Float)? = nil
    var bad = 0
    let a = actual.scalars, e = expected.scalars
    for index in a.indices {
        let ok = e[index].isNaN ? a[index].isNaN : abs(a[index] - e[index]) <= atol + rtol * abs(e[index])
        if !ok {
            bad += 1
            let difference = a[index].isNaN ? .infinity : abs(a[index] - e[index])
            if worst == nil || difference > worst!.difference { worst = (index, difference) }
        }
    }
    if let worst {
        let message = "\(bad) of \(a.count) elements differ; largest at \(worst.index): \(a[worst.index]) vs "
            + "\(e[worst.index]) (|diff| \(worst.difference)). \(comment?.rawValue ?? "")"
        Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    }
}
