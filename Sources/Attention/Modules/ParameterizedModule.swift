import Foundation

/// A value with named tensor parameters, which can be listed, saved and loaded under the names
/// PyTorch's `state_dict`, Equinox's fields or Flax's parameter tree use.
///
/// A conforming type lists its parameters once, as key paths; everything else (loading with
/// full validation, saving, counting) comes from the protocol extension:
///
/// ```swift
/// struct FeedForward: ParameterizedModule {
///     var linear1: Linear
///     var linear2: Linear
///     var norm: LayerNorm
///
///     var parameterPaths: [ParameterPath<Self>] {
///         parameterPaths(of: \.linear1, prefixedBy: "linear1")
///             + parameterPaths(of: \.linear2, prefixedBy: "linear2")
///             + parameterPaths(of: \.norm, prefixedBy: "norm1")
///     }
/// }
///
/// var block = try FeedForward(...)
/// try block.loadParameters(from: SafeTensors(contentsOf: url), prefix: "encoder.layers.0")
/// ```
///
/// Rules for ``parameterPaths``:
/// - names are unique, in a stable order (the order of the reference module's `state_dict`);
/// - an optional parameter is listed only when present, through a forced unwrap
///   (`if bias != nil { paths.append(ParameterPath("bias", \.bias!)) }`), so a checkpoint that has it when the
///   module does not is reported as unexpected, and the reverse as missing;
/// - nested modules are listed with ``parameterPaths(of:prefixedBy:)``, arrays of modules with
///   their index (`parameterPaths(of: \.layers[i], prefixedBy: "layers.\(i)")`), and a parameter
///   may be listed under a name of the parent's choosing (`ParameterPath("query_ln.scale", \.queryNorm.weight!)`).
///
/// Key paths keep the protocol free of reference types and of any registration step: a module is
/// a plain `Sendable` struct, copies are independent, and loading writes through
/// `self[keyPath:]`. The paths are computed on demand and never stored, so they need not be
/// `Sendable` themselves.
public protocol ParameterizedModule: Sendable {
    /// Every parameter under its reference library's name (`"out_proj.weight"`), in a stable
    /// order, with the key path to it.
    var parameterPaths: [ParameterPath<Self>] { get }

    /// The names (as in ``parameterPaths``) of the parameters consumed only as matrix-multiply
    /// weights (``Linear``'s weight, the attention modules' projection kernels): the ones that may
    /// be `float16` or `bfloat16`. Every other parameter must be `float32`. Empty by default;
    /// nested modules are listed with ``matrixWeightNames(of:prefixedBy:)``.
    var matrixWeightNames: Set<String> { get }
}

/// How ``ParameterizedModule/loadParameters(from:prefix:strict:precision:)-(SafeTensors,_,_,_)``
/// treats the dtypes of a checkpoint's tensors. Nothing is ever widened silently.
///
/// ```swift
/// // bf16 projection weights kept as they are; a bf16 layer norm would throw.
/// try model.loadParameters(from: file)
/// // Everything widened to float32 (exactly), as before half-precision tensors existed.
/// try model.loadParameters(from: file, precision: .float32)
/// // Projection weights in bfloat16 whatever the file holds; the rest in float32.
/// try model.loadParameters(from: file, precision: .converting(matrixWeightsTo: .bfloat16))
/// ```
public enum ParameterPrecision: Sendable, Hashable {
    /// Tensors as stored: matrix-multiply weights (``ParameterizedModule/matrixWeightNames``)
    /// keep a half-precision dtype; any other parameter stored in half precision throws
    /// `AttentionError.unsupportedDType` naming it. The default.
    case asStored
    /// Matrix-multiply weights converted to the given dtype, every other parameter to `float32`
    /// (exact widening; rounding to nearest even when narrowing).
    case converting(matrixWeightsTo: Tensor.DType)

    /// Every parameter converted to `float32`: `.converting(matrixWeightsTo: .float32)`.
    public static let float32 = ParameterPrecision.converting(matrixWeightsTo: .float32)
}

/// `prefix.name`; the prefix may already end with a dot, and an empty prefix adds nothing.
func parameterName(_ name: String, prefixedBy prefix: String) -> String {
    if prefix.isEmpty { return name }
    return prefix.hasSuffix(".") ? prefix + name : prefix + "." + name
}

extension ParameterizedModule {
    /// No matrix-multiply weights: every parameter must be `float32`.
    public var matrixWeightNames: Set<String> { [] }

    /// A nested module's ``matrixWeightNames``, prefixed by `prefix` and a dot.
    ///
    /// ```swift
    /// var matrixWeightNames: Set<String> {
    ///     ["in_proj_weight"].union(matrixWeightNames(of: \.outProjection, prefixedBy: "out_proj"))
    /// }
    /// ```
    public func matrixWeightNames<Child: ParameterizedModule>(
        of child: KeyPath<Self, Child>, prefixedBy prefix: String
    ) -> Set<String> {
        Set(self[keyPath: child].matrixWeightNames.map { parameterName($0, prefixedBy: prefix) })
    }

    /// This module with its matrix-multiply weights (``matrixWeightNames``) converted to `dtype`
    /// and every other parameter unchanged: the explicit way to run a module on `float16` or
    /// `bfloat16` weights (rounded to nearest even), or to widen them back.
    ///
    /// ```swift
    /// let half = try mha.convertingWeights(to: .bfloat16)
    /// let y = try half(query: x, key: x, value: x)   // activations stay float32
    /// ```
    ///
    /// - Throws: `AttentionError.outOfMemory` when a converted weight cannot be allocated.
    public func convertingWeights(to dtype: Tensor.DType) throws -> Self {
        let names = matrixWeightNames
        var result = self
        var converted: Set<WritableKeyPath<Self, Tensor>> = []
        // A tensor stacking several parameters is converted once.
        for entry in parameterPaths where names.contains(entry.name) && converted.insert(entry.path).inserted {
            result[keyPath: entry.path] = try self[keyPath: entry.path].converting(to: dtype, argument: entry.name)
        }
        return result
    }

    /// Throws unless every parameter outside ``matrixWeightNames`` is `float32`: the check each
    /// module's forward pass makes before its `float32`-only operations, on the stored dtypes
    /// (no parameter is read), so that a half-precision parameter assigned through a public
    /// property is reported under its full name at the level that checks.
    ///
    /// - Parameter reason: the error's explanation.
    /// - Throws: `AttentionError.unsupportedDType` naming the first such parameter.
    package func requireFloat32Parameters(
        reason: @autoclosure () -> String = "only matrix-multiply weights may be half precision; this parameter must be float32"
    ) throws(AttentionError) {
        let names = matrixWeightNames
        for entry in parameterPaths where !names.contains(entry.name) && entry.dtype(in: self) != .float32 {
            throw .unsupportedDType(argument: entry.name, dtype: entry.dtype(in: self), reason: reason())
        }
    }

    /// A nested module's parameters, as paths from this module, with names prefixed by
    /// `prefix` and a dot.
    ///
    /// ```swift
    /// var parameterPaths: [ParameterPath<Self>] {
    ///     [ParameterPath("in_proj_weight", \.inProjectionWeight)]
    ///         + parameterPaths(of: \.outProjection, prefixedBy: "out_proj")   // "out_proj.weight", ...
    /// }
    /// ```
    public func parameterPaths<Child: ParameterizedModule>(
        of child: WritableKeyPath<Self, Child>, prefixedBy prefix: String
    ) -> [ParameterPath<Self>] {
        self[keyPath: child].parameterPaths.map { $0.appending(to: child, name: parameterName($0.name, prefixedBy: prefix)) }
    }

    /// Every parameter with its name, in the order of ``parameterPaths``.
    public var namedParameters: [(name: String, tensor: Tensor)] {
        parameterPaths.map { (name: $0.name, tensor: $0.value(in: self)) }
    }

    /// Every parameter's name and shape, in the order of ``parameterPaths``.
    public var parameterShapes: [(name: String, shape: [Int])] {
        parameterPaths.map { (name: $0.name, shape: $0.shape(in: self)) }
    }

    /// The total number of scalars in the parameters.
    public var parameterCount: Int {
        parameterPaths.reduce(0) { $0 + $1.shape(in: self).reduce(1, *) }
    }

    /// The parameters by full name (`prefix.name`), like PyTorch's `state_dict(prefix=...)`.
    public func parameterDictionary(prefix: String = "") -> [String: Tensor] {
        var dictionary: [String: Tensor] = [:]
        for entry in parameterPaths {
            dictionary[parameterName(entry.name, prefixedBy: prefix)] = entry.value(in: self)
        }
        return dictionary
    }

    /// Replaces the parameters with the tensors named `prefix.name`, after checking all of them.
    ///
    /// Every parameter must be present with its exact shape, and (when `strict`) every name
    /// under the prefix must be a parameter. All problems are reported together in one error,
    /// and on error nothing is changed. Dtypes are handled as `precision` says: by default
    /// matrix-multiply weights keep theirs and any other half-precision parameter is an error.
    ///
    /// - Parameters:
    ///   - tensors: tensors by full name; names outside the prefix are ignored.
    ///   - prefix: the module's path in the checkpoint, with or without a final dot; empty for
    ///     the root.
    ///   - strict: `false` ignores missing and unexpected names (as PyTorch's
    ///     `load_state_dict(strict=False)`); shapes are always checked.
    ///   - precision: ``ParameterPrecision/asStored`` (the default) or a conversion.
    /// - Throws: `AttentionError.checkpointMismatch` listing the missing names, the unexpected
    ///   names and the shape mismatches; `.unsupportedDType` (argument: the full name) for a
    ///   half-precision parameter outside ``matrixWeightNames`` with `.asStored`;
    ///   `.invalidArgument` (argument `"parameterPaths"`) when the module lists a name twice.
    public mutating func loadParameters(
        from tensors: [String: Tensor], prefix: String = "", strict: Bool = true, precision: ParameterPrecision = .asStored
    ) throws {
        try loadParameters(
            names: Array(tensors.keys), prefix: prefix, strict: strict, precision: precision,
            shape: { tensors[$0]?.shape }, tensor: { tensors[$0]! })
    }

    /// Replaces the parameters with the tensors of a safetensors file named `prefix.name`, after
    /// checking all of them. Only the module's tensors are read: `F32`, `F16` and `BF16` as
    /// stored (then as `precision` says), any other type converted to `float32`.
    ///
    /// - Throws: as ``loadParameters(from:prefix:strict:precision:)-([String:Tensor],_,_,_)``.
    public mutating func loadParameters(
        from file: SafeTensors, prefix: String = "", strict: Bool = true, precision: ParameterPrecision = .asStored
    ) throws {
        try loadParameters(
            names: file.names, prefix: prefix, strict: strict, precision: precision,
            shape: { file.contains($0) ? try? file.shape(of: $0) : nil },
            tensor: { try file.tensor(named: $0) })
    }

    /// Reads a safetensors file and loads the parameters from it.
    ///
    /// - Throws: the errors of ``SafeTensors/init(contentsOf:)`` and of loading.
    public mutating func loadParameters(
        contentsOf url: URL, prefix: String = "", strict: Bool = true, precision: ParameterPrecision = .asStored
    ) throws {
        try loadParameters(from: SafeTensors(contentsOf: url), prefix: prefix, strict: strict, precision: precision)
    }

    private mutating func loadParameters(
        names: [String], prefix: String, strict: Bool, precision: ParameterPrecision,
        shape: (String) -> [Int]?, tensor: (String) throws -> Tensor
    ) throws {
        let assignments = try matchedParameters(names: names, prefix: prefix, strict: strict, shape: shape)
        // Convert everything first, so that a failure (a dtype, out of memory) leaves the module
        // unchanged.
        let matrixWeights = matrixWeightNames
        let loaded = try assignments.map { assignment in
            let stored = try tensor(assignment.name)
            let isMatrixWeight = matrixWeights.contains(assignment.entry.name)
            switch precision {
            case .asStored:
                if !isMatrixWeight {
                    try stored.requireFloat32(
                        assignment.name,
                        reason: "only matrix-multiply weights may be loaded in half precision; "
                            + "pass precision: .float32 to widen the other parameters explicitly")
                }
                return (entry: assignment.entry, tensor: stored)
            case let .converting(weightType):
                let dtype = isMatrixWeight ? weightType : .float32
                return (entry: assignment.entry, tensor: try stored.converting(to: dtype, argument: assignment.name))
            }
        }
        var blocks: [WritableKeyPath<Self, Tensor>: [(rows: Range<Int>, tensor: Tensor)]] = [:]
        for (entry, value) in loaded {
            switch entry.storage {
            case .whole: self[keyPath: entry.path] = value
            case let .rows(rows): blocks[entry.path, default: []].append((rows, value))
            case .transposed: self[keyPath: entry.path] = try value.transposed()
            }
        }
        for (path, parts) in blocks { self[keyPath: path] = try self[keyPath: path].replacingRows(parts) }
    }

    /// The parameters the checkpoint's `names` give (with `prefix`), after checking names and
    /// shapes: every problem reported together.
    ///
    /// - Throws: `AttentionError.checkpointMismatch`; `.invalidArgument` (`"parameterPaths"`)
    ///   for a name listed twice.
    private func matchedParameters(
        names: [String], prefix: String, strict: Bool, shape: (String) -> [Int]?
    ) throws -> [(entry: ParameterPath<Self>, name: String)] {
        var expected: Set<String> = []
        var assignments: [(entry: ParameterPath<Self>, name: String)] = []
        var missing: [String] = []
        var mismatches: [ParameterShapeMismatch] = []
        for entry in parameterPaths {
            let fullName = parameterName(entry.name, prefixedBy: prefix)
            guard expected.insert(fullName).inserted else {
                throw AttentionError.invalidArgument(
                    argument: "parameterPaths",
                    reason: "\(Self.self) lists the parameter \(entry.name.jsonLiteral) more than once")
            }
            guard let actual = shape(fullName) else {
                missing.append(fullName)
                continue
            }
            let current = entry.shape(in: self)
            if actual != current {
                mismatches.append(ParameterShapeMismatch(name: fullName, expected: current, actual: actual))
            } else {
                assignments.append((entry, fullName))
            }
        }
        let scope = prefix.isEmpty ? "" : (prefix.hasSuffix(".") ? prefix : prefix + ".")
        let unexpected = names.filter { $0.utf8.starts(with: scope.utf8) && !expected.contains($0) }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        if !mismatches.isEmpty || (strict && (!missing.isEmpty || !unexpected.isEmpty)) {
            throw AttentionError.checkpointMismatch(
                missing: strict ? missing : [], unexpected: strict ? unexpected : [], shapeMismatches: mismatches)
        }
        return assignments
    }

    /// The parameters as a ``SafeTensors`` value, named `prefix.name` and stored as `dtype`
    /// (`nil`, the default: each in its own dtype, half-precision weights bit for bit).
    ///
    /// ```swift
    /// var file = try encoder.safeTensors(prefix: "encoder")
    /// try file.insert(headWeight, named: "head.weight")
    /// try file.write(to: url)
    /// ```
    ///
    /// - Throws: the errors of ``SafeTensors/insert(_:named:as:)``.
    public func safeTensors(
        prefix: String = "", metadata: [String: String] = [:], as dtype: SafeTensors.DType? = nil
    ) throws -> SafeTensors {
        try SafeTensors(parameterDictionary(prefix: prefix), as: dtype, metadata: metadata)
    }

    /// Writes the parameters to a safetensors file, named `prefix.name` and stored as `dtype`
    /// (`nil`, the default: each in its own dtype).
    ///
    /// - Throws: the errors of ``safeTensors(prefix:metadata:as:)`` and the file system's error.
    public func saveParameters(
        to url: URL, prefix: String = "", metadata: [String: String] = [:], as dtype: SafeTensors.DType? = nil
    ) throws {
        try safeTensors(prefix: prefix, metadata: metadata, as: dtype).write(to: url)
    }
}
