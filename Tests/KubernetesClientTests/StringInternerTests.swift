@testable import KubernetesClient
import Testing

@Suite("String interning")
struct StringInternerTests {
    /// A fresh heap copy of `text` (longer than 15 bytes, so not stored inline).
    static func copy(_ text: String) -> String { String(decoding: Array(text.utf8), as: UTF8.self) }

    /// Where a native string keeps its bytes: equal for two strings exactly when they share storage.
    static func storage(_ text: String) -> UnsafeRawPointer? {
        var text = text
        return text.withUTF8 { UnsafeRawPointer($0.baseAddress) }
    }

    static let a = "2026-12-02T09:41:11Z-a", b = "2026-12-02T09:41:11Z-b", c = "2026-12-02T09:41:11Z-c"
    static let d = "2026-12-02T09:41:11Z-d", e = "2026-12-02T09:41:11Z-e"

    @Test func equalStringsShareOneCopy() {
        var table = InternTable<String>(capacity: 4)
        let first = table.intern(Self.copy(Self.a))
        let second = Self.copy(Self.a)
        #expect(Self.storage(first) != Self.storage(second))
        #expect(Self.storage(table.intern(second)) == Self.storage(first))
    }

    @Test func stringsStillRepeatedStaySharedAndForgottenOnesAgeOut() {
        var table = InternTable<String>(capacity: 2)
        let a1 = table.intern(Self.copy(Self.a))
        let b1 = table.intern(Self.copy(Self.b))
        _ = table.intern(Self.copy(Self.c))  // young full: {a, b} becomes old
        #expect(table.young == [Self.c] && table.old == [Self.a, Self.b])
        // a is asked for again: back in the young generation, still the first copy.
        #expect(Self.storage(table.intern(Self.copy(Self.a))) == Self.storage(a1))
        _ = table.intern(Self.copy(Self.d))  // {c, a} becomes old; b, asked for by no one, is dropped
        _ = table.intern(Self.copy(Self.e))
        #expect(!table.young.contains(Self.b) && !table.old.contains(Self.b))
        let b2 = Self.copy(Self.b)
        #expect(Self.storage(table.intern(b2)) == Self.storage(b2))
        #expect(Self.storage(b2) != Self.storage(b1))
        #expect(table.young.count + table.old.count <= 4)
    }

    @Test func objectsOfOneNamespaceShareItsName() throws {
        // As two watch events bring a workload and its Deployment: the namespace is parsed twice.
        let workload = try JSONParser.parse(#"{"metadata":{"name":"w","namespace":"payments-production"}}"#)
        let deployment = try JSONParser.parse(#"{"metadata":{"name":"w","namespace":"payments-production","labels":{"namespace":"payments-production"}}}"#)
        let first = try #require(workload[path: ["metadata", "namespace"]]?.stringValue)
        let second = try #require(deployment[path: ["metadata", "namespace"]]?.stringValue)
        #expect(Self.storage(first) == Self.storage(second))
    }

    @Test func longStringsAreNotKept() {
        let long = String(repeating: "x", count: StringInterner.longestInterned + 1)
        _ = StringInterner.intern(Self.copy(long))
        let again = Self.copy(long)
        #expect(Self.storage(StringInterner.intern(again)) == Self.storage(again))
    }
}

extension StringInternerTests {
    @Test func aGenerationIsAlsoBoundedByBytes() {
        var table = InternTable<String>(capacity: 100, bytes: 50)
        _ = table.intern(Self.a)  // 22 bytes
        _ = table.intern(Self.b)  // 44
        _ = table.intern(Self.c)  // 66 > 50: {a, b} becomes old
        #expect(table.young == [Self.c] && table.old == [Self.a, Self.b])
    }

    /// A workload's `Ready` repeats the message of the condition not met: one copy for both.
    @Test func repeatedConditionMessagesAreSharedWithinAnObject() throws {
        let message = String(repeating: "registry unreachable; ", count: 20)  // 440 bytes
        let json = #"{"status":{"conditions":[{"type":"ImagesResolved","message":"\#(message)"},{"type":"Ready","message":"\#(message)"}]}}"#
        let parsed = try JSONParser.parse(json)
        let conditions = parsed[path: ["status", "conditions"]]?.arrayValue ?? []
        let messages = conditions.compactMap { $0["message"]?.stringValue }
        #expect(messages.count == 2 && messages[0] == message)
        #expect(Self.storage(messages[0]) == Self.storage(messages[1]))
    }
}
