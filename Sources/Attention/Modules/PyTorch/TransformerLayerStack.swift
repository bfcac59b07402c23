/// A stack of transformer layers run in order, then an optional final layer norm: what PyTorch's
/// `nn.TransformerEncoder` and `nn.TransformerDecoder` share (``TransformerEncoder``,
/// ``TransformerDecoder``). Cloning a layer, the parameter names (`layers.{i}.…`, `norm.…`) and the
/// matrix weights are written once here; each stack's call is its own.
public protocol TransformerLayerStack: ParameterizedModule {
    /// The type of the stacked layers.
    associatedtype StackedLayer: ParameterizedModule

    /// The layers, run in order (`layers`).
    var layers: [StackedLayer] { get set }

    /// The final layer norm, applied after the last layer, or `nil` (`norm`).
    var norm: LayerNorm? { get set }

    /// A stack of the given layers (each with its own parameters) and an optional final norm,
    /// checked to fit together.
    init(layers: [StackedLayer], norm: LayerNorm?) throws
}

extension TransformerLayerStack {
    /// `count` copies of `layer`, all with **identical** parameters, as PyTorch's `deepcopy`
    /// clones (re-initialise or load them to make them differ), and an optional final norm.
    ///
    /// - Throws: `AttentionError.invalidArgument` (`"count"`) for a count below 1, `.outOfMemory`
    ///   for a count that cannot be allocated; `.shapeMismatch` (`"norm"`) for a norm whose size
    ///   is not the layer's `dModel`.
    public init(layer: StackedLayer, count: Int, norm: LayerNorm? = nil) throws {
        guard count >= 1 else {
            throw AttentionError.invalidArgument(argument: "count", reason: "must be at least 1, got \(count)")
        }
        try checkAllocatable(count, of: StackedLayer.self, argument: "count")
        try self.init(layers: Array(repeating: layer, count: count), norm: norm)
    }

    /// Every layer's matrix weights, under `layers.{i}.`.
    public var matrixWeightNames: Set<String> {
        layers.indices.reduce(into: Set<String>()) { names, index in
            names.formUnion(matrixWeightNames(of: \.layers[index], prefixedBy: "layers.\(index)"))
        }
    }

    /// `layers.{i}.…` (each under its layer's own names), then `norm.weight` and `norm.bias` when
    /// there is a final norm.
    public var parameterPaths: [ParameterPath<Self>] {
        var paths: [ParameterPath<Self>] = []
        for index in layers.indices {
            paths += parameterPaths(of: \.layers[index], prefixedBy: "layers.\(index)")
        }
        if norm != nil { paths += parameterPaths(of: \.norm!, prefixedBy: "norm") }
        return paths
    }
}
