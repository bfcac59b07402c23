import Attention
import Foundation

/// The shape and settings of a BERT encoder, as a Hugging Face `config.json` gives them.
///
/// ```swift
/// let configuration = try BertConfiguration(contentsOf: URL(fileURLWithPath: "models/all-MiniLM-L6-v2/config.json"))
/// print(configuration.hiddenSize, configuration.layerCount)   // 384 6
/// ```
public struct BertConfiguration: Sendable, Equatable, Hashable {
    /// The number of tokens (`vocab_size`): rows of the word embedding table.
    public var vocabularySize: Int
    /// The width of every hidden state (`hidden_size`).
    public var hiddenSize: Int
    /// The number of encoder layers (`num_hidden_layers`).
    public var layerCount: Int
    /// The number of attention heads per layer (`num_attention_heads`); divides ``hiddenSize``.
    public var headCount: Int
    /// The width of the feed-forward layer (`intermediate_size`).
    public var intermediateSize: Int
    /// The longest sequence the position table covers (`max_position_embeddings`).
    public var maxPositions: Int
    /// The number of token types (`type_vocab_size`).
    public var tokenTypeCount: Int
    /// The epsilon of every layer norm (`layer_norm_eps`).
    public var layerNormEpsilon: Float
    /// The feed-forward activation (`hidden_act`): `gelu` is the exact erf form.
    public var activation: Activation

    /// The width of one head: ``hiddenSize`` / ``headCount``.
    public var headSize: Int { hiddenSize / headCount }

    /// The `hidden_act` names accepted, and the activation each one means.
    static let activations: [String: Activation] = [
        "gelu": .gelu, "gelu_new": .geluTanh, "gelu_pytorch_tanh": .geluTanh, "relu": .relu, "silu": .silu,
        "swish": .silu,
    ]

    /// The `config.json` key of each argument of ``init(vocabularySize:hiddenSize:layerCount:headCount:intermediateSize:maxPositions:tokenTypeCount:layerNormEpsilon:activation:)``.
    static let configKeys = [
        "vocabularySize": "vocab_size", "hiddenSize": "hidden_size", "layerCount": "num_hidden_layers",
        "headCount": "num_attention_heads", "intermediateSize": "intermediate_size",
        "maxPositions": "max_position_embeddings", "tokenTypeCount": "type_vocab_size",
        "layerNormEpsilon": "layer_norm_eps",
    ]

    /// Creates a configuration from its values.
    ///
    /// - Throws: `ModelError.invalidArgument` naming a size below 1, a head count that does not
    ///   divide the hidden size, or an epsilon that is negative or not finite.
    public init(
        vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int, intermediateSize: Int,
        maxPositions: Int = 512, tokenTypeCount: Int = 2, layerNormEpsilon: Float = 1e-12,
        activation: Activation = .gelu
    ) throws(ModelError) {
        let sizes = [
            ("vocabularySize", vocabularySize), ("hiddenSize", hiddenSize), ("layerCount", layerCount),
            ("headCount", headCount), ("intermediateSize", intermediateSize), ("maxPositions", maxPositions),
            ("tokenTypeCount", tokenTypeCount),
        ]
        for (name, size) in sizes where size < 1 {
            throw .invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        guard hiddenSize % headCount == 0 else {
            throw .invalidArgument(
                argument: "headCount", reason: "\(headCount) heads do not divide the hidden size \(hiddenSize)")
        }
        guard layerNormEpsilon.isFinite, layerNormEpsilon >= 0 else {
            throw .invalidArgument(argument: "layerNormEpsilon", reason: "must be finite and non-negative, got \(layerNormEpsilon)")
        }
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.tokenTypeCount = tokenTypeCount
        self.layerNormEpsilon = layerNormEpsilon
        self.activation = activation
    }

    /// Reads a Hugging Face `config.json` of a BERT model.
    ///
    /// - Throws: `ModelError.missingFile`; `.invalidFile` naming a missing or mistyped key or an
    ///   inconsistent size; `.unsupported` for a `model_type` other than `bert`, a `hidden_act`
    ///   other than `gelu`, `gelu_new`, `gelu_pytorch_tanh`, `relu`, `silu` and `swish` (those of `activations`), or a `position_embedding_type` other than `absolute`.
    public init(contentsOf url: URL) throws(ModelError) {
        let file = try JSONFile(contentsOf: url, name: url.lastPathComponent)
        _ = try file.choice("model_type", default: "(none)", supported: ["bert"])
        // `choice` accepts only keys of `activations`, so the lookup below finds one.
        let activationName = try file.choice("hidden_act", default: "gelu", supported: Self.activations.keys.sorted())
        _ = try file.choice("position_embedding_type", default: "absolute", supported: ["absolute"])
        let epsilon = try file.number("layer_norm_eps") ?? 1e-12
        do {
            try self.init(
                vocabularySize: file.requiredInteger("vocab_size"),
                hiddenSize: file.requiredInteger("hidden_size"),
                layerCount: file.requiredInteger("num_hidden_layers"),
                headCount: file.requiredInteger("num_attention_heads"),
                intermediateSize: file.requiredInteger("intermediate_size"),
                maxPositions: file.integer("max_position_embeddings") ?? 512,
                tokenTypeCount: file.integer("type_vocab_size") ?? 2,
                layerNormEpsilon: Float(epsilon), activation: Self.activations[activationName]!)
        } catch let ModelError.invalidArgument(argument, reason) {
            throw .invalidFile(file: file.name, reason: "\(Self.configKeys[argument] ?? argument): \(reason)")
        }
    }
}

/// Why a BERT model refuses a half-precision parameter other than a projection weight.
let bertFloat32Reason = "the embedding tables, biases and layer norms are float32 (only the layers' projection weights "
    + "may be half precision); convert explicitly with converted(to: .float32)"
