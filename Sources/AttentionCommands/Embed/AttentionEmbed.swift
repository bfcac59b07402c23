import ArgumentParser

/// `attention-embed`: sentence embeddings and their cosine similarities from the command line.
///
/// ```sh
/// attention-embed --model models/all-MiniLM-L6-v2 "A man is eating food." "A man is eating bread."
/// ```
package struct AttentionEmbed: ParsableCommand {
    /// The name, the summary and the explanation `--help` prints.
    package static let configuration = CommandConfiguration(
        commandName: "attention-embed",
        abstract: "Sentence embeddings with a sentence-transformers BERT model folder.",
        discussion: """
            Prints each sentence's token count and the cosine similarity of every pair, with a \
            model folder such as the one `make model-minilm` writes to models/all-MiniLM-L6-v2. \
            An embedding that is not finite (NaN or infinity) is an error: no report is printed \
            and nothing is written.
            """)

    /// The model folder (`--model`).
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "The model folder (config.json, model.safetensors, vocab.txt, modules.json, ...).", valueName: "DIR"))
    package var model: String

    /// More sentences from a file (`--input`).
    @Option(
        name: .customLong("input"), parsing: .unconditional,
        help: ArgumentHelp("More sentences: a JSON array of strings.", valueName: "FILE"))
    package var inputPath: String?

    /// Where the embeddings go as JSON (`--output`).
    @Option(
        name: .customLong("output"), parsing: .unconditional,
        help: ArgumentHelp(
            #"Write a JSON array, in input order, of {"embedding": [...], "ids": [...]}; "-" for standard output (the report then goes to standard error)."#,
            valueName: "FILE"))
    package var outputPath: String?

    /// `--threads`.
    @OptionGroup package var threads: ThreadOptions

    /// How many sentences are encoded together (`--batch-size`).
    @Option(
        name: .customLong("batch-size"), parsing: .unconditional,
        help: ArgumentHelp("Sentences encoded together, their tokens packed without padding.", valueName: "N"))
    package var batchSize = 32

    /// How many timed encodings follow the first (`--repeat`); `nil` for none.
    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp(
            "Encode everything N times after one warm-up; print the median time on standard error.",
            valueName: "N"))
    package var repeats: Int?

    /// The sentences given as arguments; after `--`, arguments starting with `-` too.
    @Argument(help: ArgumentHelp("Sentences to embed.", valueName: "SENTENCE"))
    package var sentences: [String] = []

    /// No options: ArgumentParser fills them in.
    package init() {}

    /// Checks the counts (`--batch-size`, `--repeat`).
    package func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let repeats, repeats < 1 { throw ValidationError("--repeat must be at least 1, got \(repeats)") }
    }
}
