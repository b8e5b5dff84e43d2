import KubernetesClient
import NIOCore
import Testing

@Suite struct LineSplitterTests {
    func lines(_ chunks: [String], limit: Int = 1 << 20) throws -> [String] {
        var splitter = LineSplitter(maximumLineLength: limit)
        var out: [String] = []
        for chunk in chunks {
            splitter.append(ByteBuffer(string: chunk))
            while let line = try splitter.nextLine() { out.append(String(buffer: line)) }
        }
        if let rest = splitter.finish() { out.append(String(buffer: rest)) }
        return out
    }

    @Test func splitsLinesAcrossChunkBoundaries() throws {
        #expect(try lines(["{\"a\":", "1}\n{\"b\"", ":2}\n"]) == ["{\"a\":1}", "{\"b\":2}"])
        #expect(try lines(["one\ntwo\nthr", "ee\n"]) == ["one", "two", "three"])
    }

    @Test func skipsEmptyLinesAndKeepsAFinalUnterminatedLine() throws {
        #expect(try lines(["\n\nx\n\n", "tail"]) == ["x", "tail"])
    }

    @Test func reassemblesAnObjectLargerThan64KiBFromSmallChunks() throws {
        let big = String(repeating: "x", count: 200 * 1024)
        let text = "{\"v\":\"\(big)\"}\n"
        let chunks = stride(from: 0, to: text.utf8.count, by: 1000).map { start in
            String(decoding: Array(text.utf8)[start..<min(start + 1000, text.utf8.count)], as: UTF8.self)
        }
        let result = try lines(chunks)
        #expect(result.count == 1)
        #expect(result.first?.utf8.count == text.utf8.count - 1)
    }

    @Test func refusesALineLongerThanTheLimit() {
        #expect(throws: KubeClientError.self) { try lines([String(repeating: "y", count: 100), "more"], limit: 64) }
        #expect(throws: KubeClientError.self) { try lines([String(repeating: "y", count: 100) + "\n"], limit: 64) }
    }
}

@Suite struct WatchDecodingTests {
    @Test func decodesEachEventType() throws {
        let added = try WatchDecoding.decode(Array(#"{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}"#.utf8), as: UntypedObject.self)
        guard case .added(let object) = added else { Issue.record("not ADDED"); return }
        #expect(object.name == "a")

        let bookmark = try WatchDecoding.decode(Array(#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"77"}}}"#.utf8), as: UntypedObject.self)
        guard case .bookmark(let rv) = bookmark else { Issue.record("not BOOKMARK"); return }
        #expect(rv == "77")
    }

    @Test func errorEventWithExpiredIsGone() {
        let line = #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}}"#
        #expect { try WatchDecoding.decode(Array(line.utf8), as: UntypedObject.self) } throws: { error in
            guard let error = error as? KubeError else { return false }
            return error.reason == .gone && error.message.contains("too old")
        }
    }

    @Test(arguments: [
        #"{"type":"ADDED","object":{"metadata":{"name":"#,  // truncated
        #"{"type":"EXPLODED","object":{}}"#,  // unknown type
        #"not json"#,
        #"{"object":{}}"#,  // no type
        #"[]"#,
    ])
    func malformedFramesAreErrorsNotCrashes(line: String) {
        #expect(throws: (any Error).self) { try WatchDecoding.decode(Array(line.utf8), as: UntypedObject.self) }
    }
}
