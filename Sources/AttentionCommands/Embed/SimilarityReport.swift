/// The human-readable summary: each sentence's token count, then the cosine similarities.
enum SimilarityReport {
    /// At most this many sentences get the matrix; more would not fit a terminal.
    static let largestMatrix = 16

    /// Each sentence's token count and shortened text, then the matrix of cosine similarities
    /// (up to ``largestMatrix`` sentences).
    static func render(sentences: [String], ids: [[Int]], embeddings: [[Float]]) -> String {
        var lines: [String] = []
        for (index, sentence) in sentences.enumerated() {
            let shown = sentence.count > 60 ? String(sentence.prefix(57)) + "..." : sentence
            lines.append("[\(index + 1)] \(ids[index].count) tokens  \(shown.debugDescription)")
        }
        guard sentences.count > 1 else { return lines.joined(separator: "\n") }
        guard sentences.count <= largestMatrix else {
            lines.append("(cosine similarities of more than \(largestMatrix) sentences: see --output)")
            return lines.joined(separator: "\n")
        }
        lines.append("")
        lines.append("cosine similarity")
        let header = "     " + sentences.indices.map { pad("[\($0 + 1)]", 7) }.joined()
        lines.append(header)
        for row in sentences.indices {
            var line = pad("[\(row + 1)]", 5, left: true)
            for column in sentences.indices {
                line += pad(format(cosine(embeddings[row], embeddings[column])), 7)
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The cosine similarity of `a` and `b`, in double precision; 0 when either is zero.
    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, normA = 0.0, normB = 0.0
        for index in a.indices {
            dot += Double(a[index]) * Double(b[index])
            normA += Double(a[index]) * Double(a[index])
            normB += Double(b[index]) * Double(b[index])
        }
        let norms = (normA * normB).squareRoot()
        return norms > 0 ? dot / norms : 0
    }

    /// Three decimals, without Foundation's locale-dependent formatting.
    static func format(_ value: Double) -> String {
        let thousandths = Int((abs(value) * 1000).rounded())
        let digits = String(thousandths % 1000)
        return (value < 0 && thousandths > 0 ? "-" : "") + "\(thousandths / 1000)."
            + String(repeating: "0", count: 3 - digits.count) + digits
    }

    /// `text` filled with spaces to `width`, on the left (right-aligned) unless `left`.
    static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + fill : fill + text
    }
}
