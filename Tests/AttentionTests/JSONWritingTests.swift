import Foundation
import Testing
@testable import Attention

@Suite("JSON writing")
struct JSONWritingTests {
    @Test func nonFiniteNumbersCannotBeWritten() {
        #expect(JSONValue(Float.nan) == nil)
        #expect(JSONValue(Float.infinity) == nil)
        #expect(JSONValue(-Float.infinity) == nil)
        #expect(JSONValue.array(of: [1, .nan, 2] as [Float]) == nil)
        #expect(JSONValue.array(of: [1, 2] as [Float]) == .array([.number("1.0"), .number("2.0")]))
    }

    @Test func serializedTextParsesBackToTheSameValue() throws {
        let value = JSONValue.object([
            "ids": .array(of: [0, 7, Int.max, Int.min]),
            "numbers": try #require(JSONValue.array(of: [0.1, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 3e38, -2.5e-12])),
            "text": .string("quote \" backslash \\ newline \n tab \t bell \u{07} é 🧠"),
            "nested": .array([.null, .bool(true), .bool(false), .object([:]), .array([])]),
        ])
        let text = value.serialized
        #expect(try JSONParser.parse(utf8: Array(text.utf8)) == value)
        // Foundation reads it too: the text is JSON, not only what this parser accepts.
        _ = try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    @Test func floatsRoundTripExactly() throws {
        let values: [Float] = [0.1, 1 / 3, -0.0, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, 16_777_216, 1e-8]
        for value in values {
            let element = try #require(JSONValue(value))
            guard case let .number(literal) = element else { Issue.record("\(element) is not a number"); continue }
            #expect(Float(literal)?.bitPattern == value.bitPattern, "\(value) written as \(literal)")
        }
    }

    @Test func objectMembersAreWrittenInKeyOrder() {
        let value = JSONValue.object(["b": .null, "a": .bool(true), "c": .string("x")])
        #expect(value.serialized == #"{"a":true,"b":null,"c":"x"}"#)
    }

    @Test func parsingFromBytesChecksUTF8AndSkipsAByteOrderMark() throws {
        #expect(try JSONParser.parse(utf8: [0xEF, 0xBB, 0xBF] + Array("[1]".utf8)) == .array([.number("1")]))
        #expect(throws: JSONSyntaxError(message: "duplicate key \"a\"", offset: 10)) {
            try JSONParser.parse(utf8: [0xEF, 0xBB, 0xBF] + Array(#"{"a":1,"a":2}"#.utf8))
        }
        #expect(throws: JSONSyntaxError(message: "not valid UTF-8", offset: 0)) {
            try JSONParser.parse(utf8: Array("[\"".utf8) + [0xFF] + Array("\"]".utf8))
        }
    }
}
