import Attention
import AttentionModels
import CommandLineSupport
import Foundation

import Dispatch

/// `attention-embed`: sentence embeddings and their similarities from the command line.
@main
enum AttentionEmbed {
    static func main() {
        CommandRunner.main(named: "attention-embed", parsing: Options.self, run)
    }

    static func run(_ options: Options) throws {
        try CommandRunner.useThreads(options.threads)
        var sentences = options.sentences
        if let path = options.inputPath { sentences += try SentenceFile.read(path) }
        guard !sentences.isEmpty else { throw UsageError("no sentences: give some as arguments or with --input FILE") }

        let embedder = try CommandRunner.loadModel(
            at: options.model!, hint: "make model-minilm downloads all-MiniLM-L6-v2", SentenceEmbedder.init(contentsOf:))

        let ids = try embedder.tokenize(sentences)
        var embeddings = try embedder.embed(tokenIDs: ids, batchSize: options.batchSize)
        if let repeats = options.repeats {
            var times: [Double] = []
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                embeddings = try embedder.embed(sentences, batchSize: options.batchSize)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            let median = CommandRunner.median(times)
            CommandRunner.printLine("median encode time: \(String(format: "%.3f", median)) ms")
            CommandRunner.printLine("tokens: \(ids.reduce(0) { $0 + $1.count }) in \(sentences.count) sentences")
        }
        let scalars = embeddings.scalars
        let rows = (0..<sentences.count).map { index in
            Array(scalars[(index * embedder.dimension)..<((index + 1) * embedder.dimension)])
        }
        if let path = options.outputPath { try SentenceFile.write(path, ids: ids, embeddings: rows) }
        print(SimilarityReport.render(sentences: sentences, ids: ids, embeddings: rows))
    }
}
