/// GPT-2's table between the 256 byte values and 256 printable characters: a byte-level
/// vocabulary spells every token with these characters, one per byte.
///
/// The bytes of printable Latin-1 characters (`!` to `~`, `¡` to `¬`, `®` to `ÿ`) stand for
/// themselves; the 68 others (controls, the space, U+00A0, the soft hyphen) take U+0100 onwards
/// in byte order, so the space is `Ġ` (U+0120) and the line feed `Ċ` (U+010A).
enum ByteLevelAlphabet {
    /// The character of each byte value.
    static let characters: [Unicode.Scalar] = {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(256)
        var shifted: UInt32 = 0
        for byte in UInt32(0)...255 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                result.append(Unicode.Scalar(byte)!)
            } else {
                result.append(Unicode.Scalar(256 + shifted)!)
                shifted += 1
            }
        }
        return result
    }()

    /// The byte each character of the table stands for, by the character's value (all below 324).
    private static let bytesByCharacter: [UInt8?] = {
        var result = [UInt8?](repeating: nil, count: 324)
        for (byte, character) in characters.enumerated() { result[Int(character.value)] = UInt8(byte) }
        return result
    }()

    /// The byte `character` stands for; `nil` for a character outside the table.
    static func byte(of character: Unicode.Scalar) -> UInt8? {
        let value = Int(character.value)
        return value < bytesByCharacter.count ? bytesByCharacter[value] : nil
    }

    /// The bytes `token` spells when every character of it is in the table; `nil` otherwise.
    static func bytes(spelledBy token: String) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(token.unicodeScalars.count)
        for character in token.unicodeScalars {
            guard let byte = byte(of: character) else { return nil }
            result.append(byte)
        }
        return result
    }
}
