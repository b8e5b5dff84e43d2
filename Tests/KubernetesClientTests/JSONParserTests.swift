import Foundation
@testable import KubernetesClient
import NIOCore
import Testing
import TestSupport

@Suite("JSON parser and JSONValue decoder")
struct JSONParserTests {
    static let document = #"""
        {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","namespace":"ns","generation":3,
        "annotations":{"managedFields":"kept","ünïcödé":"✓ \u00e9\ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"},
        "managedFields":[{"manager":"cwo","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:replicas":{}}}}]},
        "spec":{"replicas":0,"paused":false,"minReadySeconds":-12,"ratio":1.5e3,"tiny":-0.25,"big":12345678901234567890,
        "list":[],"obj":{},"nothing":null,"nested":[[1,[2,[3]]],{"x":[true,false,null]}]}}
        """#

    /// The same tree as Foundation's JSONDecoder produces through `JSONValue`'s generic decoding.
    @Test func theTreeMatchesFoundationsDecoding() throws {
        let fast = try JSONParser.parse(Self.document)
        let slow = try JSONDecoder().decode(JSONValue.self, from: Data(Self.document.utf8))
        #expect(fast == slow)
        #expect(fast[path: ["metadata", "annotations", "ünïcödé"]]?.stringValue == "✓ é😀 \"q\" \\ / \u{8}\u{c}\n\r\t")
        #expect(fast[path: ["spec", "big"]]?.doubleValue == 12345678901234567890)
        #expect(fast[path: ["spec", "ratio"]]?.doubleValue == 1500)
        #expect(fast[path: ["spec", "minReadySeconds"]]?.intValue == -12)
    }

    @Test func managedFieldsAreDroppedOnlyFromMetadata() throws {
        let dropped = try JSONParser.parse(Data(Self.document.utf8), dropManagedFields: true)
        #expect(dropped[path: ["metadata", "managedFields"]] == nil)
        #expect(dropped[path: ["metadata", "annotations", "managedFields"]] == "kept")
        let kept = try JSONParser.parse(Data(Self.document.utf8))
        #expect(kept[path: ["metadata", "managedFields"]]?.arrayValue?.count == 1)
        var withoutManaged = kept
        withoutManaged["metadata"]?["managedFields"] = nil
        #expect(dropped == withoutManaged)
    }

    /// Every prefix and every single-byte corruption is accepted exactly when Foundation accepts it,
    /// and when accepted yields the same value: never a crash, never a different reading.
    @Test func truncatedAndCorruptedInputAgreesWithFoundation() throws {
        let bytes = Array(Self.document.utf8)
        var variants: [[UInt8]] = (0...bytes.count).map { Array(bytes[..<$0]) }
        var generator = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            var corrupted = bytes
            corrupted[Int(generator.next() % UInt64(bytes.count))] = [UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "]"), UInt8(ascii: ","), 0x00, 0xFF, UInt8(ascii: "\\"), UInt8(ascii: "1")][Int(generator.next() % 8)]
            variants.append(corrupted)
        }
        var accepted = 0
        for variant in variants {
            let ours = try? JSONParser.parse(variant)
            let theirs = try? JSONDecoder().decode(JSONValue.self, from: Data(variant))
            #expect(ours == theirs, "\(String(decoding: variant, as: UTF8.self))")
            if ours != nil { accepted += 1 }
        }
        #expect(accepted > 0 && accepted < variants.count)
    }

    /// Writing and reading back gives the same value, and Foundation reads the same bytes the same way.
    @Test func serializedBodiesReadBackUnchanged() throws {
        var value = try JSONParser.parse(Self.document)
        value["control"] = .string("\u{1}\u{1f} tab\t quote\" back\\ é 😀")
        value["fraction"] = .number(0.1)
        var buffer = ByteBuffer()
        value.serialize(into: &buffer)
        let bytes = Array(buffer.readableBytesView)
        #expect(try JSONParser.parse(bytes) == value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(bytes)) == value)
        // Keys sorted: the same value always gives the same bytes.
        var again = ByteBuffer()
        try JSONParser.parse(bytes).serialize(into: &again)
        #expect(again == buffer)
        #expect(String(buffer: buffer).hasPrefix(#"{"apiVersion":"apps/v1","control":"\u0001\u001f tab\t quote\" back\\ é 😀","fraction":0.1,"#))
    }

    @Test func errorsSayWhereAndDepthIsBounded() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"a":}"#) }
        let error = #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"a": tru}"#) }
        #expect(error?.description == "invalid JSON at byte 6: invalid literal")
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect((try? JSONParser.parse(fine)) != nil)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#""\ud83d""#) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("1 2") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("01") }
    }

    @Test func modelsDecodeFromTheTreeWithFieldPathsInErrors() throws {
        struct Model: Decodable, Equatable {
            var name: String
            var count: Int
            var ratio: Double?
            var flags: [Bool]
            var spec: JSONValue
        }
        let model = try JSONCoding.decode(Model.self, from: Data(#"{"name":"x","count":3.0,"flags":[true],"spec":{"a":[1]}}"#.utf8))
        #expect(model == Model(name: "x", count: 3, ratio: nil, flags: [true], spec: ["a": [1]]))
        do {
            _ = try JSONCoding.decode(Model.self, from: Data(#"{"name":"x","count":3.5,"flags":[],"spec":{}}"#.utf8))
            Issue.record("3.5 decoded as an Int")
        } catch let DecodingError.typeMismatch(_, context) {
            #expect(context.codingPath.map(\.stringValue) == ["count"])
        }
        do {
            _ = try JSONCoding.decode(Model.self, from: Data(#"{"name":"x","count":1,"flags":[true,"no"],"spec":{}}"#.utf8))
            Issue.record("a string decoded as a Bool")
        } catch let DecodingError.typeMismatch(_, context) {
            #expect(context.codingPath.map(\.stringValue) == ["flags", "Index 1"])
        }
        #expect(throws: DecodingError.self) { try JSONCoding.decode(Model.self, from: Data(#"{"count":1,"flags":[],"spec":{}}"#.utf8)) }
    }
}
