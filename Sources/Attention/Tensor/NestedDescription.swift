// The nested, NumPy-style text of a dense row-major array, shared by `Tensor` and `IndexArray`:
// brackets per dimension, elements right-aligned to the widest, rows of the last axis wrapped at
// 75 columns, one blank line between blocks per dimension above the last two, and beyond 1000
// elements each axis longer than 6 summarised as its first 3 and last 3 with `...` between (so a
// huge tensor prints only the elements shown).

/// Arrays with more elements than this are summarised (NumPy's `threshold`).
let summaryThreshold = 1000
/// Elements shown at each end of a summarised axis (NumPy's `edgeitems`).
let summaryEdgeItems = 3
/// The line width rows are wrapped at (NumPy's `linewidth`).
let descriptionLineWidth = 75

/// The nested text of an array of `shape` holding `count` elements, its first line starting at
/// column `indent`. `render` gets the row-major offsets of the elements shown, in order, and
/// returns their texts (aligned here). A rank-0 array is its one element; an empty one `[]`.
func nestedDescription(shape: [Int], count: Int, indent: Int, render: ([Int]) -> [String]) -> String {
    if shape.isEmpty { return render([0]).first ?? "" }
    if count == 0 { return "[]" }
    let layout = NestedLayout(shape: shape, summarised: count > summaryThreshold)
    var offsets: [Int] = []
    layout.collectOffsets(axis: 0, base: 0, into: &offsets)
    let texts = render(offsets)
    let width = texts.map(\.count).max() ?? 0
    var aligned = texts.map { String(repeating: " ", count: width - $0.count) + $0 }.makeIterator()
    return layout.text(axis: 0, column: indent, elements: &aligned)
}

/// How a shape is shown: which indices of each axis, and the text of a block.
private struct NestedLayout {
    let shape: [Int]
    let strides: [Int]
    let summarised: Bool

    init(shape: [Int], summarised: Bool) {
        self.shape = shape
        self.strides = contiguousStrides(of: shape)
        self.summarised = summarised
    }

    /// The indices shown along `axis`, `nil` standing for the `...` of a summarised axis.
    func shown(_ axis: Int) -> [Int?] {
        let n = shape[axis]
        guard summarised, n > 2 * summaryEdgeItems else { return (0..<n).map { $0 } }
        return (0..<summaryEdgeItems).map { $0 } + [nil] + ((n - summaryEdgeItems)..<n).map { $0 }
    }

    /// Appends the offsets of the elements shown in the block at `base` of `axis`, in order.
    func collectOffsets(axis: Int, base: Int, into offsets: inout [Int]) {
        for case let index? in shown(axis) {
            let offset = base + index * strides[axis]
            if axis == shape.count - 1 {
                offsets.append(offset)
            } else {
                collectOffsets(axis: axis + 1, base: offset, into: &offsets)
            }
        }
    }

    /// The text of a block of `axis` whose `[` is at `column`, taking element texts in order.
    func text(axis: Int, column: Int, elements: inout IndexingIterator<[String]>) -> String {
        let indices = shown(axis)
        if axis == shape.count - 1 {
            let items = indices.map { $0 == nil ? "..." : elements.next()! }
            var result = "[", length = column + 1
            for (k, item) in items.enumerated() {
                let piece = item + (k + 1 < items.count ? "," : "")
                if k > 0 {
                    if length + 1 + piece.count > descriptionLineWidth {
                        result += "\n" + String(repeating: " ", count: column + 1)
                        length = column + 1
                    } else {
                        result += " "
                        length += 1
                    }
                }
                result += piece
                length += piece.count
            }
            return result + "]"
        }
        let separator = "," + String(repeating: "\n", count: shape.count - 1 - axis)
            + String(repeating: " ", count: column + 1)
        let blocks = indices.map { index in
            index == nil ? "..." : text(axis: axis + 1, column: column + 1, elements: &elements)
        }
        return "[" + blocks.joined(separator: separator) + "]"
    }
}
