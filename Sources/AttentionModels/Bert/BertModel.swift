import Attention
import Foundation

/// A BERT encoder (`transformers`' `BertModel` without its pooler): ``BertEmbeddings``, then
/// ``BertConfiguration/layerCount`` post-norm ``BertLayer``s, returning the last hidden states.
///
/// Built from this package's layers (the library's matrix multiply through `Linear`,
/// `LayerNorm`, `Activation` and `scaledDotProductAttention`), on a packed ``TokenBatch`` so
/// that sentences of different lengths cost only their own tokens.
///
/// ```swift
/// let model = try BertModel(contentsOf: URL(fileURLWithPath: "models/all-MiniLM-L6-v2"))
/// let batch = try TokenBatch([[101, 7592, 2088, 102], [101, 2748, 102]])
/// let hidden = try model(batch)   // (7, 384): rows 0..<4 the first sentence, 4..<7 the second
/// ```
public struct BertModel: ParameterizedModule, Equatable {
    /// The sizes and settings.
    public var configuration: BertConfiguration
    /// The input embeddings (`embeddings.*`).
    public var embeddings: BertEmbeddings
    /// The encoder layers (`encoder.layer.N.*`).
    public var layers: [BertLayer]

    /// A model of zeros with the configuration's shapes, to be loaded from a checkpoint.
    ///
    /// - Throws: `AttentionError.outOfMemory` when the parameters cannot be allocated.
    public init(configuration: BertConfiguration) throws {
        self.configuration = configuration
        embeddings = try BertEmbeddings(configuration: configuration)
        layers = try (0..<configuration.layerCount).map { _ in try BertLayer(configuration: configuration) }
    }

    /// Reads `config.json` and `model.safetensors` from a Hugging Face model folder.
    ///
    /// - Throws: the errors of ``BertConfiguration/init(contentsOf:)`` and of
    ///   ``init(configuration:checkpoint:file:precision:)``; `ModelError.missingFile` without `model.safetensors`;
    ///   `AttentionError.invalidCheckpoint` (naming the file) when it is malformed.
    public init(contentsOf folder: URL, precision: ParameterPrecision = .asStored) throws {
        let configuration = try BertConfiguration(contentsOf: folder.appendingPathComponent("config.json"))
        let weightsURL = folder.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw ModelError.missingFile(path: weightsURL.path)
        }
        try self.init(configuration: configuration, checkpoint: SafeTensors(contentsOf: weightsURL), precision: precision)
    }

    /// Builds a model from a checkpoint with `transformers`' parameter names, with or without the
    /// `bert.` prefix of a model saved with a head (`BertForMaskedLM`, ...). Other tensors (the
    /// pooler, a head, `position_ids`) are ignored.
    ///
    /// A half-precision checkpoint loads as `precision` says: by default the layers' projection
    /// weights keep their dtype and a half-precision embedding table or layer norm is an error;
    /// `ParameterPrecision.float32` widens everything explicitly.
    ///
    /// - Parameters:
    ///   - configuration: the model's `config.json`.
    ///   - checkpoint: the weights.
    ///   - file: how errors name the checkpoint.
    ///   - precision: `.asStored` (the default) or a conversion (`ParameterPrecision`).
    /// - Throws: `ModelError.missingTensor` for the first parameter absent from the checkpoint,
    ///   `.tensorShape` for the first whose shape differs from the configuration's;
    ///   `AttentionError.unsupportedDType` for a half-precision parameter outside the projection
    ///   weights with `.asStored`.
    public init(
        configuration: BertConfiguration, checkpoint: SafeTensors, file: String = "model.safetensors",
        precision: ParameterPrecision = .asStored
    ) throws {
        try self.init(configuration: configuration)
        let prefix = checkpoint.contains("bert.embeddings.word_embeddings.weight") ? "bert." : ""
        for (name, shape) in parameterShapes {
            let stored = prefix + name
            guard checkpoint.contains(stored) else { throw ModelError.missingTensor(name: stored, file: file) }
            let actual = try checkpoint.shape(of: stored)
            guard actual == shape else { throw ModelError.tensorShape(name: stored, expected: shape, actual: actual) }
        }
        try loadParameters(from: checkpoint, prefix: prefix, strict: false, precision: precision)
    }

    /// Every layer's projection weights (``BertLayer/matrixWeightNames``).
    public var matrixWeightNames: Set<String> {
        layers.indices.reduce(into: Set<String>()) { names, index in
            names.formUnion(matrixWeightNames(of: \.layers[index], prefixedBy: "encoder.layer.\(index)"))
        }
    }

    /// The names of `transformers`' `BertModel` without the pooler: `embeddings.*`, then
    /// `encoder.layer.N.*`.
    public var parameterPaths: [ParameterPath<BertModel>] {
        var paths = parameterPaths(of: \.embeddings, prefixedBy: "embeddings")
        for index in layers.indices {
            paths += parameterPaths(of: \.layers[index], prefixedBy: "encoder.layer.\(index)")
        }
        return paths
    }

    /// The last hidden states of every token, packed as the batch is: `(tokenCount, hiddenSize)`,
    /// sequence `i` in rows `batch.ranges[i]`.
    ///
    /// - Throws: `AttentionError.unsupportedDType` (naming the parameter, e.g.
    ///   `"encoder.layer.0.attention.output.LayerNorm.weight"`) for a half-precision parameter
    ///   other than a projection weight; the errors of ``BertEmbeddings/callAsFunction(_:)``
    ///   (token ids, lengths) and of the layers.
    public func callAsFunction(_ batch: TokenBatch) throws -> Tensor {
        try requireFloat32Parameters(reason: bertFloat32Reason)
        var hidden = try embeddings(batch)
        for layer in layers {
            hidden = try layer(hidden, batch: batch)
        }
        return hidden
    }
}
