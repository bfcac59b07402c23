/// A parameter's name under the reference library's naming (`"out_proj.weight"`) and where it
/// is stored: the tensor at a key path, or a block of that tensor's rows (its first dimension)
/// when several parameters are stored stacked as one, as a decoder stacks its query, key and value
/// projections so that one matrix multiply computes them.
///
/// ```swift
/// var parameterPaths: [ParameterPath<Self>] {
///     [ParameterPath("weight", \.weight)] + (bias == nil ? [] : [ParameterPath("bias", \.bias!)])
/// }
/// // q_proj.weight is rows 0..<512 of the stacked (768, 512) projection:
/// ParameterPath("q_proj.weight", \.projection.weight, rows: 0..<512)
/// ```
///
/// A block is read as a copy of its rows and written in place into them; the stored tensor is
/// never recomputed from its parts.
public struct ParameterPath<Root> {
    /// The parameter's name, relative to the module that lists it.
    public var name: String
    /// The key path to the tensor the parameter is stored in.
    public var path: WritableKeyPath<Root, Tensor>
    /// The block of rows of that tensor the parameter is, or `nil` for the whole tensor.
    public var rows: Range<Int>?

    /// A parameter named `name` stored at `path`, whole or as the block `rows` of its rows.
    public init(_ name: String, _ path: WritableKeyPath<Root, Tensor>, rows: Range<Int>? = nil) {
        (self.name, self.path, self.rows) = (name, path, rows)
    }

    /// The same parameter reached from a parent through `child` under `name`.
    func appending<Parent>(to child: WritableKeyPath<Parent, Root>, name: String) -> ParameterPath<Parent> {
        ParameterPath<Parent>(name, child.appending(path: path), rows: rows)
    }

    /// The parameter's value in `root` (a copy of its rows for a block).
    func value(in root: Root) -> Tensor {
        let stored = root[keyPath: path]
        guard let rows else { return stored }
        return (try? stored.sliced(rows, axis: 0)) ?? stored
    }

    /// The parameter's shape in `root`, read without copying.
    func shape(in root: Root) -> [Int] {
        let shape = root[keyPath: path].shape
        guard let rows, !shape.isEmpty else { return shape }
        return [rows.count] + shape.dropFirst()
    }

    /// The dtype the parameter is stored in.
    func dtype(in root: Root) -> Tensor.DType { root[keyPath: path].dtype }
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
