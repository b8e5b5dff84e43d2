import KubernetesClient
import Testing

@Suite("Scanning JSON strings a word at a time")
struct JSONStringScanTests {
    /// The byte-at-a-time answer the word-at-a-time scan must give.
    static func reference(_ bytes: [UInt8], from start: Int) -> (end: Int, nonASCII: Bool) {
        var index = start
        var nonASCII = false
        while index < bytes.count, bytes[index] >= 0x20, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
            nonASCII = nonASCII || bytes[index] >= 0x80
            index += 1
        }
        return (index, nonASCII)
    }

    static func scan(_ bytes: [UInt8], from start: Int) -> (end: Int, nonASCII: Bool) {
        bytes.withUnsafeBytes { JSONStringScan.plainRun($0, from: start) }
    }

    /// Every byte value as the stop, at every offset of two words and a tail, after ASCII or not.
    @Test func everyStopByteAtEveryOffset() {
        for prefix: UInt8 in [UInt8(ascii: "a"), 0xC3, 0x7F, 0x80, 0xFF, 0x20, 0x21, 0x23, 0x5B, 0x5D] {
            for length in 0..<19 {
                for stop in UInt8.min...UInt8.max {
                    var bytes = [UInt8](repeating: prefix, count: length)
                    bytes.append(stop)
                    bytes.append(contentsOf: [UInt8](repeating: UInt8(ascii: "z"), count: 9))
                    for start in [0, min(3, length)] {
                        let (end, nonASCII) = Self.scan(bytes, from: start)
                        let expected = Self.reference(bytes, from: start)
                        #expect(end == expected.end && nonASCII == expected.nonASCII, "prefix \(prefix) length \(length) stop \(stop) start \(start)")
                    }
                }
            }
        }
    }

    /// Random bytes, biased towards the ones that stop a run and the ones that borrow.
    @Test func randomInputsAgreeWithTheByteLoop() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x00, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x5C, 0x5B, 0x7F, 0x80, 0xA0, 0xC3, 0xE2, 0xFF, 0x41, 0x61, 0x30]
        for _ in 0..<5000 {
            let bytes = (0..<Int.random(in: 0..<40, using: &generator)).map { _ in
                Bool.random(using: &generator) ? alphabet.randomElement(using: &generator)! : UInt8(ascii: "x")
            }
            var start = 0
            while start <= bytes.count {
                let (end, nonASCII) = Self.scan(bytes, from: start)
                let expected = Self.reference(bytes, from: start)
                #expect(end == expected.end && nonASCII == expected.nonASCII, "\(bytes) from \(start)")
                start = end + 1
            }
        }
    }

    @Test func serializedStringsRoundTrip() throws {
        let texts = ["", "plain", String(repeating: "QUJD", count: 5000), "a\"b\\c\nd\te\r\u{1}\u{1F}", "ünïcödé ✓ \u{1F600} \"q\"", String(repeating: "é\"", count: 9)]
        for text in texts {
            let json = JSONValue.string(text).compactJSON
            #expect(try JSONParser.parse(json) == .string(text))
        }
        #expect(JSONValue.string("a\"\\\n\u{1}").compactJSON == #""a\"\\\n\u0001""#)
    }
}
