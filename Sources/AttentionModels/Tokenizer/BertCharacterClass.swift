/// How BERT's normaliser and pre-tokeniser see one Unicode scalar, as the `tokenizers` library
/// (the "fast" tokenizer of `transformers`) classifies it.
///
/// That library mixes two Unicode versions, and matching its ids exactly means doing the same:
/// whitespace, lower-casing and NFD follow the current standard (Rust's `char` methods and the
/// `unicode-normalization` crate, like Swift's), but "control", "punctuation" and "non-spacing
/// mark" come from a table frozen at Unicode 8.0 (the `unicode_categories` crate). A scalar
/// assigned after 8.0 is none of the three there, and a few scalars have changed category since
/// (`categoryChangesSince8`). This was checked against the library over every code point
/// (`Tests/AttentionModelsTests/Fixtures/generate_bert_fixtures.py --sweep`).
enum BertCharacterClass {
    /// The Unicode version of the category table behind control, punctuation and mark tests.
    static let categoryTableVersion = (major: 8, minor: 0)

    /// The scalars assigned by Unicode 8.0 whose category has changed since, with their 8.0
    /// category (found by comparing with the library over every code point).
    private static let categoryChangesSince8: [UInt32: Unicode.GeneralCategory] = [
        0x1734: .nonspacingMark,  // HANUNOO SIGN PAMUDPOD, now Mc
        0x1171E: .nonspacingMark,  // AHOM CONSONANT SIGN MEDIAL RA, now Mc
        0x1885: .otherLetter,  // MONGOLIAN LETTER ALI GALI BALUDA, now Mn
        0x1886: .otherLetter,  // MONGOLIAN LETTER ALI GALI THREE BALUDA, now Mn
        0xA9BD: .spacingMark,  // JAVANESE CONSONANT SIGN KERET, now Mn
        0x111C9: .otherPunctuation,  // SHARADA SANDHI MARK, now Mn
        0x166D: .otherPunctuation,  // CANADIAN SYLLABICS CHI SIGN, now So
    ]

    /// The scalar's general category in the Unicode 8.0 table, or `nil` when it was unassigned.
    private static func category8(_ scalar: Unicode.Scalar) -> Unicode.GeneralCategory? {
        guard let age = scalar.properties.age,
            (age.major, age.minor) <= categoryTableVersion
        else { return nil }
        return categoryChangesSince8[scalar.value] ?? scalar.properties.generalCategory
    }

    /// Dropped by `clean_text`: NUL, U+FFFD, and Cc, Cf and Co (as of Unicode 8.0) other than tab,
    /// line feed and carriage return.
    static func isRemovedByCleaning(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0, 0xFFFD: return true
        case 0x09, 0x0A, 0x0D: return false
        default:
            switch category8(scalar) {
            case .control, .format, .privateUse: return true
            default: return false
            }
        }
    }

    /// Whitespace: tab, line feed, carriage return and the White_Space property (current Unicode).
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace
    }

    /// Split off as a token of its own: ASCII punctuation (including `$+<=>^`|~`, which Unicode
    /// calls symbols) and the P* categories as of Unicode 8.0.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 33...47, 58...64, 91...96, 123...126: return true
        default: break
        }
        switch category8(scalar) {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// Removed when accents are stripped (after NFD): Mn as of Unicode 8.0.
    static func isNonspacingMark(_ scalar: Unicode.Scalar) -> Bool {
        category8(scalar) == .nonspacingMark
    }

    /// A CJK ideograph, surrounded by spaces so it becomes a token of its own: the CJK Unified
    /// Ideographs block, extensions A to E (as the library spells the ranges, including its
    /// U+2B920 start of extension E), and the compatibility ideographs, assigned or not.
    static func isChineseCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
            0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
