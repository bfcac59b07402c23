import ArgumentParser
import Attention
import AttentionModels
import Dispatch
import Foundation

extension AttentionEmbed {
    /// Embeds the sentences, prints the report, and writes `--output`.
    ///
    /// With `--output -` the JSON goes to standard output and the report to standard error.
    ///
    /// - Throws: `ValidationError` when there are no sentences at all; ``CommandFailure`` for a
    ///   file that cannot be read or written (an unwritable `--output` before any work), a model
    ///   that cannot be loaded, or an embedding that is not finite.
    package func run() throws {
        if let outputPath { try OutputFile.checkWritable(outputPath, option: "--output") }
        try threads.apply()
        var sentences = sentences
        if let inputPath { sentences += try SentenceFile.read(inputPath) }
        guard !sentences.isEmpty else {
            throw ValidationError("no sentences: give some as arguments or with --input FILE")
        }
        let embedder = try ModelFolder.load(
            model, hint: "make model-minilm downloads all-MiniLM-L6-v2", SentenceEmbedder.init(contentsOf:))

        let ids = try embedder.tokenize(sentences)
        var embeddings = try embedder.embed(tokenIDs: ids, batchSize: batchSize)
        if let repeats {
            var times: [Double] = []
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                embeddings = try embedder.embed(sentences, batchSize: batchSize)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            CommandMain.printLine("median encode time: \(String(format: "%.3f", times.median)) ms")
            CommandMain.printLine("tokens: \(ids.reduce(0) { $0 + $1.count }) in \(sentences.count) sentences")
        }
        let rows = try Self.rows(of: embeddings, count: sentences.count, dimension: embedder.dimension)
        if let outputPath { try SentenceFile.write(outputPath, ids: ids, embeddings: rows) }
        OutputFile.printReport(
            SimilarityReport.render(sentences: sentences, ids: ids, embeddings: rows), outputPath: outputPath)
    }

    /// The embeddings of `count` sentences, one row each.
    ///
    /// - Throws: ``CommandFailure`` naming the first sentence whose embedding is not finite.
    static func rows(of embeddings: Tensor, count: Int, dimension: Int) throws(CommandFailure) -> [[Float]] {
        let scalars = embeddings.scalars
        var rows: [[Float]] = []
        for index in 0..<count {
            let row = Array(scalars[(index * dimension)..<((index + 1) * dimension)])
            guard row.allSatisfy(\.isFinite) else {
                throw CommandFailure("the embedding of sentence \(index + 1) is not finite (NaN or infinity)")
            }
            rows.append(row)
        }
        return rows
    }
}
