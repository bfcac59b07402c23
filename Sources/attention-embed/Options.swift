import CommandLineSupport
import Foundation

/// The command line of `attention-embed`, parsed by hand (no dependency).
struct Options: CommandOptions {
    var model: String?
    var sentences: [String] = []
    var inputPath: String?
    var outputPath: String?
    var threads: Int?
    var batchSize = 32
    var repeats: Int?
    var showHelp = false

    static let usage = """
        usage: attention-embed --model DIR [options] [SENTENCE ...]

        Sentence embeddings with a sentence-transformers BERT model folder (e.g. the one
        `make model-minilm` writes to models/all-MiniLM-L6-v2): prints each sentence's token count
        and the cosine similarity of every pair.

        options:
          --model DIR        the model folder (config.json, model.safetensors, vocab.txt, modules.json, ...)
          --input FILE       more sentences: a JSON array of strings
          --output FILE      write a JSON array, in input order, of {"ids": [...], "embedding": [...]}
          --threads N        threads for the kernels (default: all cores)
          --batch-size N     sentences encoded together, their tokens packed without padding (default 32)
          --repeat N         encode everything N times after one warm-up; print the median time on stderr
          -h, --help         this text
        """

    /// Parses `arguments` (without the program name).
    init(_ arguments: [String]) throws(UsageError) {
        var reader = ArgumentReader(arguments)
        var onlySentences = false
        while let argument = reader.next() {
            if onlySentences || !argument.hasPrefix("-") || argument == "-" {
                sentences.append(argument)
                continue
            }
            switch argument {
            case "--": onlySentences = true
            case "--model": model = try reader.value(for: argument)
            case "--input": inputPath = try reader.value(for: argument)
            case "--output": outputPath = try reader.value(for: argument)
            case "--threads": threads = try reader.count(for: argument, minimum: 1)
            case "--batch-size": batchSize = try reader.count(for: argument, minimum: 1)
            case "--repeat": repeats = try reader.count(for: argument, minimum: 1)
            case "-h", "--help": showHelp = true
            default: throw UsageError("unknown option \(argument)")
            }
        }
        if showHelp { return }
        guard model != nil else { throw UsageError("--model DIR is required") }
    }
}
