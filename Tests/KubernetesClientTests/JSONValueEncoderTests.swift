import Foundation
@testable import KubernetesClient
import Testing

/// `JSONValue(encoding:)` builds the tree directly; the reference is what Foundation's JSONEncoder writes
/// (cwo's shared encoder), parsed back.
@Suite("Encoding models straight into JSONValue")
struct JSONValueEncoderTests {
    enum Phase: String, Codable { case pending, ready }

    struct Sample: Codable {
        var flag = true
        var name = "w-1 \"quoted\" ünïcödé"
        var count = 3
        var small: Int8 = -7
        var big: Int64 = 9_007_199_254_740_993
        var unsigned: UInt64 = 18_000_000_000
        var ratio = 0.25
        var single: Float = 1.5
        var absent: String? = nil
        var present: String? = "here"
        var phase = Phase.ready
        var data = Data([0, 1, 2, 250, 255])
        var url = URL(string: "https://vault.example/keys/k?api-version=7.4")!
        var date = Date(timeIntervalSinceReferenceDate: 123.5)
        var list = [1, 2, 3]
        var empty: [String] = []
        var nested: [[String: [Int?]]] = [["a": [1, nil]], [:]]
        var json: JSONValue = ["x": [true, .null, .number(2.5)], "y": "z"]
        var conditions = [Condition(type: "Ready", status: .true, observedGeneration: 2, lastTransitionTime: "2026-12-04T20:00:00Z", reason: "Deployed", message: "all 3 replicas ready")]
        var metadata = ObjectMeta(name: "w-1", namespace: "ns", labels: ["app": "w"])
    }

    /// A type that writes through every kind of container, as hand-written `encode(to:)`s do.
    struct Handwritten: Encodable {
        enum Key: String, CodingKey { case items, pair, inner }
        func encode(to encoder: any Encoder) throws {
            var keyed = encoder.container(keyedBy: Key.self)
            var items = keyed.nestedUnkeyedContainer(forKey: .items)
            try items.encode("one")
            try items.encodeNil()
            var deeper = items.nestedUnkeyedContainer()
            try deeper.encode(2)
            var inner = items.nestedContainer(keyedBy: Key.self)
            try inner.encode(false, forKey: .pair)
            var pair = keyed.nestedContainer(keyedBy: Key.self, forKey: .pair)
            try pair.encodeNil(forKey: .inner)
            try pair.encode([3.5], forKey: .items)
            var single = keyed.superEncoder(forKey: .inner).singleValueContainer()
            try single.encode("via superEncoder")
        }
    }

    static func reference(_ value: some Encodable) throws -> JSONValue {
        try JSONParser.parse(JSONCoding.encoder.encode(value))
    }

    @Test func modelsEncodeAsJSONEncoderWritesThem() throws {
        #expect(try JSONValue(encoding: Sample()) == Self.reference(Sample()))
        #expect(try JSONValue(encoding: Handwritten()) == Self.reference(Handwritten()))
        #expect(try JSONValue(encoding: [Sample(), Sample()]) == Self.reference([Sample(), Sample()]))
        let direct = try JSONValue(encoding: Sample())
        #expect(direct["data"] == "AAEC+v8=")
        #expect(direct["url"] == "https://vault.example/keys/k?api-version=7.4")
        #expect(direct["absent"] == nil)
        #expect(direct[path: ["nested", "0", "a"]] == nil)  // a path reads objects; the array is checked whole
        #expect(direct["nested"] == [["a": [.number(1), .null]], [:]])
    }

    @Test func topLevelValuesOfEveryKind() throws {
        #expect(try JSONValue(encoding: "text") == .string("text"))
        #expect(try JSONValue(encoding: 42) == .number(42))
        #expect(try JSONValue(encoding: Optional<Int>.none) == .null)
        #expect(try JSONValue(encoding: ["k": 1]) == Self.reference(["k": 1]))
    }

    @Test func aNumberJSONCannotHoldIsAnErrorNamingItsPlace() throws {
        struct Bad: Encodable { var values = [1.0, .nan] }
        #expect(throws: EncodingError.self) { try JSONValue(encoding: Bad()) }
        #expect(throws: EncodingError.self) { try Self.reference(Bad()) }
    }
}
