import Foundation

/// The shape and settings of a Llama decoder (`transformers`' `LlamaConfig`), as a Hugging Face
/// `config.json` gives them.
///
/// ```swift
/// let configuration = try LlamaConfiguration(contentsOf: folder.appendingPathComponent("config.json"))
/// print(configuration.headCount, configuration.keyValueHeadCount)   // 14 2: grouped-query
/// ```
///
/// Reading is strict: a setting this implementation does not compute (a `rope_scaling` or
/// `rope_type` other than the default, an activation other than SiLU, a `model_type` other than
/// `llama`) is an error naming it, never a silently different model.
public struct LlamaConfiguration: Sendable, Equatable, Hashable {
    /// The number of tokens (`vocab_size`): rows of the embedding and of the LM head.
    public var vocabularySize: Int
    /// The width of every hidden state (`hidden_size`).
    public var hiddenSize: Int
    /// The width of the SwiGLU feed-forward layer (`intermediate_size`).
    public var intermediateSize: Int
    /// The number of decoder layers (`num_hidden_layers`).
    public var layerCount: Int
    /// The number of query heads per layer (`num_attention_heads`).
    public var headCount: Int
    /// The number of key/value heads (`num_key_value_heads`; `headCount` when absent); divides
    /// ``headCount``: query head h reads key/value head `h / (headCount / keyValueHeadCount)`.
    public var keyValueHeadCount: Int
    /// The width of one head (`head_dim`; `hiddenSize / headCount` when absent). Even.
    public var headSize: Int
    /// The epsilon of every RMS norm (`rms_norm_eps`).
    public var rmsNormEpsilon: Float
    /// The base of the rotary frequencies (`rope_theta`, or `rope_parameters.rope_theta`).
    public var ropeTheta: Float
    /// Whether the query, key, value and output projections have a bias (`attention_bias`).
    public var attentionBias: Bool
    /// Whether the feed-forward projections have a bias (`mlp_bias`).
    public var mlpBias: Bool
    /// Whether the LM head is the token embedding (`tie_word_embeddings`).
    public var tieWordEmbeddings: Bool
    /// The longest sequence the model was trained for (`max_position_embeddings`); informative.
    public var maxPositions: Int
    /// The ids that end a generation (`eos_token_id`: one id or a list); empty for none.
    public var endOfSequenceTokenIDs: [Int]
    /// The standard deviation of a new model's matrices (`initializer_range`).
    public var initializerRange: Float

    /// The `config.json` key of each argument of the memberwise initialiser, for errors.
    static let configKeys = [
        "vocabularySize": "vocab_size", "hiddenSize": "hidden_size", "intermediateSize": "intermediate_size",
        "layerCount": "num_hidden_layers", "headCount": "num_attention_heads",
        "keyValueHeadCount": "num_key_value_heads", "headSize": "head_dim", "rmsNormEpsilon": "rms_norm_eps",
        "ropeTheta": "rope_theta", "maxPositions": "max_position_embeddings",
        "initializerRange": "initializer_range",
    ]

    /// Creates a configuration from its values.
    ///
    /// - Throws: `ModelError.invalidArgument` naming a size below 1, a key/value head count that
    ///   does not divide the head count, an odd head size, or an epsilon, theta or initializer
    ///   range out of range.
    public init(
        vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
        keyValueHeadCount: Int? = nil, headSize: Int? = nil, rmsNormEpsilon: Float = 1e-6, ropeTheta: Float = 10_000,
        attentionBias: Bool = false, mlpBias: Bool = false, tieWordEmbeddings: Bool = false,
        maxPositions: Int = 2048, endOfSequenceTokenIDs: [Int] = [], initializerRange: Float = 0.02
    ) throws(ModelError) {
        let keyValueHeadCount = keyValueHeadCount ?? headCount
        let headSize = headSize ?? (headCount > 0 ? hiddenSize / headCount : 0)
        let sizes = [
            ("vocabularySize", vocabularySize), ("hiddenSize", hiddenSize), ("intermediateSize", intermediateSize),
            ("layerCount", layerCount), ("headCount", headCount), ("keyValueHeadCount", keyValueHeadCount),
            ("headSize", headSize), ("maxPositions", maxPositions),
        ]
        for (name, size) in sizes where size < 1 {
            throw .invalidArgument(argument: name, reason: "must be at least 1, got \(size)")
        }
        guard headCount % keyValueHeadCount == 0 else {
            throw .invalidArgument(
                argument: "keyValueHeadCount",
                reason: "\(keyValueHeadCount) key/value heads do not divide the \(headCount) query heads")
        }
        guard headSize % 2 == 0 else {
            throw .invalidArgument(argument: "headSize", reason: "must be even for the rotary pairs, got \(headSize)")
        }
        guard rmsNormEpsilon.isFinite, rmsNormEpsilon >= 0 else {
            throw .invalidArgument(argument: "rmsNormEpsilon", reason: "must be finite and non-negative, got \(rmsNormEpsilon)")
        }
        guard ropeTheta.isFinite, ropeTheta > 0 else {
            throw .invalidArgument(argument: "ropeTheta", reason: "must be positive and finite, got \(ropeTheta)")
        }
        guard initializerRange.isFinite, initializerRange >= 0 else {
            throw .invalidArgument(
                argument: "initializerRange", reason: "must be finite and non-negative, got \(initializerRange)")
        }
        if let bad = endOfSequenceTokenIDs.first(where: { !(0..<vocabularySize).contains($0) }) {
            throw .invalidArgument(argument: "endOfSequenceTokenIDs", reason: "\(bad) is not in 0..<\(vocabularySize)")
        }
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount
        self.headSize = headSize
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.tieWordEmbeddings = tieWordEmbeddings
        self.maxPositions = maxPositions
        self.endOfSequenceTokenIDs = endOfSequenceTokenIDs
        self.initializerRange = initializerRange
    }

    /// Reads a Hugging Face `config.json` of a Llama model, as `transformers` 4 writes it
    /// (`rope_theta`, `rope_scaling`) or 5 (`rope_parameters`).
    ///
    /// - Throws: `ModelError.missingFile`; `.invalidFile` naming a missing or mistyped key or an
    ///   inconsistent size; `.unsupported` naming the setting for a `model_type` other than
    ///   `llama`, a `hidden_act` other than `silu`, a `rope_scaling` or `rope_parameters.rope_type`
    ///   other than the default, or a `pretraining_tp` other than 1.
    public init(contentsOf url: URL) throws(ModelError) {
        let file = try JSONFile(contentsOf: url, name: url.lastPathComponent)
        _ = try file.choice("model_type", default: "(none)", supported: ["llama"])
        _ = try file.choice("hidden_act", default: "silu", supported: ["silu"])
        let theta = try Self.ropeTheta(in: file)
        do {
            try self.init(
                vocabularySize: file.requiredInteger("vocab_size"),
                hiddenSize: file.requiredInteger("hidden_size"),
                intermediateSize: file.requiredInteger("intermediate_size"),
                layerCount: file.requiredInteger("num_hidden_layers"),
                headCount: file.requiredInteger("num_attention_heads"),
                keyValueHeadCount: file.integer("num_key_value_heads"),
                headSize: file.integer("head_dim"),
                rmsNormEpsilon: Float(file.number("rms_norm_eps") ?? 1e-6),
                ropeTheta: theta,
                attentionBias: file.boolean("attention_bias") ?? false,
                mlpBias: file.boolean("mlp_bias") ?? false,
                tieWordEmbeddings: file.boolean("tie_word_embeddings") ?? false,
                maxPositions: file.integer("max_position_embeddings") ?? 2048,
                endOfSequenceTokenIDs: file.integers("eos_token_id") ?? [],
                initializerRange: Float(file.number("initializer_range") ?? 0.02))
        } catch let ModelError.invalidArgument(argument, reason) {
            throw .invalidFile(file: file.name, reason: "\(Self.configKeys[argument] ?? argument): \(reason)")
        }
    }

    /// `rope_theta` from either layout, after checking that no scaling is asked for.
    private static func ropeTheta(in file: JSONFile) throws(ModelError) -> Float {
        if let scaling = try file.object("rope_scaling") {
            _ = try scaling.choice(
                "rope_type", default: try scaling.string("type") ?? "(none)", supported: ["default"],
                setting: "rope_scaling.rope_type")
        }
        var theta = try file.number("rope_theta")
        if let parameters = try file.object("rope_parameters") {
            _ = try parameters.choice(
                "rope_type", default: "default", supported: ["default"], setting: "rope_parameters.rope_type")
            if let value = try parameters.number("rope_theta") { theta = value }
        }
        if let parallel = try file.integer("pretraining_tp"), parallel != 1 {
            throw .unsupported(file: file.name, setting: "pretraining_tp", value: "\(parallel)", supported: ["1"])
        }
        return Float(theta ?? 10_000)
    }
}
