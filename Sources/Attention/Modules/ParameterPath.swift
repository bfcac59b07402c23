/// A parameter's name under the reference library's naming (`"out_proj.weight"`) and where it
/// is stored: the tensor at a key path, a block of that tensor's rows when several parameters are
/// stored stacked as one (a decoder's query, key and value projections, computed by one matrix
/// multiply), or its transpose when a weight named in PyTorch's `(outputs, inputs)` layout is
/// stored `(inputs, outputs)`, the layout the matrix multiply reads fastest for a few rows.
///
/// ```swift
/// var parameterPaths: [ParameterPath<Self>] {
///     [ParameterPath("weight", \.weight)] + (bias == nil ? [] : [ParameterPath("bias", \.bias!)])
/// }
/// // q_proj.weight is rows 0..<512 of the stacked (768, 512) projection:
/// ParameterPath("q_proj.weight", \.projection.weight, storage: .rows(0..<512))
/// ```
///
/// A block or a transpose is read as a copy and written once, when loaded; the stored tensor is
/// never recomputed from the names on a call.
public struct ParameterPath<Root> {
    /// The parameter's name, relative to the module that lists it.
    public var name: String
    /// The key path to the tensor the parameter is stored in.
    public var path: WritableKeyPath<Root, Tensor>
    /// How the parameter is laid out in that tensor.
    public var storage: ParameterStorage

    /// A parameter named `name` stored at `path` as `storage` says.
    public init(_ name: String, _ path: WritableKeyPath<Root, Tensor>, storage: ParameterStorage = .whole) {
        (self.name, self.path, self.storage) = (name, path, storage)
    }

    /// The same parameter reached from a parent through `child` under `name`.
    func appending<Parent>(to child: WritableKeyPath<Parent, Root>, name: String) -> ParameterPath<Parent> {
        ParameterPath<Parent>(name, child.appending(path: path), storage: storage)
    }

    /// The parameter's value in `root` (a copy for a block or a transpose).
    func value(in root: Root) -> Tensor {
        let stored = root[keyPath: path]
        switch storage {
        case .whole: return stored
        case let .rows(rows): return (try? stored.sliced(rows, axis: 0)) ?? stored
        case .transposed: return (try? stored.transposed()) ?? stored
        }
    }

    /// The parameter's shape in `root`, read without copying.
    func shape(in root: Root) -> [Int] {
        let shape = root[keyPath: path].shape
        switch storage {
        case .whole: return shape
        case let .rows(rows): return shape.isEmpty ? shape : [rows.count] + shape.dropFirst()
        case .transposed: return shape.reversed()
        }
    }

    /// The dtype the parameter is stored in.
    func dtype(in root: Root) -> Tensor.DType { root[keyPath: path].dtype }
}

/// How a named parameter is laid out in the tensor that stores it (``ParameterPath/storage``).
public enum ParameterStorage: Sendable, Hashable {
    /// The tensor itself.
    case whole
    /// A block of the tensor's rows (its first dimension): one of several parameters stacked.
    case rows(Range<Int>)
    /// The transpose of the 2-D tensor: a weight named `(outputs, inputs)`, stored `(inputs, outputs)`.
    case transposed
}

extension Tensor {
    /// This tensor with blocks of its rows (first dimension) replaced by `parts`: the parameters
    /// a stacked tensor holds, loaded together. When the parts cover every row and share a dtype
    /// the result has that dtype (a checkpoint's weights kept as stored); otherwise each part is
    /// converted to this tensor's dtype.
    ///
    /// - Throws: `AttentionError` from the conversions or the allocation.
    func replacingRows(_ parts: [(rows: Range<Int>, tensor: Tensor)]) throws -> Tensor {
        let sorted = parts.sorted { $0.rows.lowerBound < $1.rows.lowerBound }
        let covers = sorted.map(\.rows.count).reduce(0, +) == shape[0]
        let dtypes = Set(sorted.map(\.tensor.dtype))
        let dtype = covers && dtypes.count == 1 ? dtypes.first! : self.dtype
        var segments: [Tensor] = [], next = 0
        for part in sorted {
            if part.rows.lowerBound > next { segments.append(try sliced(next..<part.rows.lowerBound, axis: 0).converted(to: dtype)) }
            segments.append(try part.tensor.converted(to: dtype))
            next = part.rows.upperBound
        }
        if next < shape[0] { segments.append(try sliced(next..<shape[0], axis: 0).converted(to: dtype)) }
        return try Tensor.concatenated(segments, axis: 0)
    }
}
