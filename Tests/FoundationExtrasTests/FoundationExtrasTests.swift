import Foundation
import FoundationExtras
import Testing

/// The stand-ins answer what the full-Foundation calls they replace answered (the tests may use Foundation).
@Suite struct FoundationExtrasTests {
    static let samples = [
        "", "plain", "  both ends \n", "\t\r\n x \u{85}", "\u{A0}nbsp\u{3000}", "\u{2028}ls\u{2029}", "inner  space", "   ",
        "ns/with/slashes", "a b+c&d=e?f#g", "żółw 🐢", "100%", "~user_name-1.2", "[::1]", "'quote\"", ":@!$&'()*+,;=",
    ]

    @Test(arguments: samples)
    func trimmingMatchesCharacterSets(text: String) {
        #expect(text.trimmingWhitespace() == text.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(text.trimming { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator } == text.trimmingCharacters(in: .whitespaces))
    }

    @Test(arguments: samples)
    func percentEncodingMatchesFoundation(text: String) {
        let segment = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))
        #expect(text.percentEncoded(allowing: URLCharacters.pathSegment) == text.addingPercentEncoding(withAllowedCharacters: segment))
        var unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        unreserved.insert(charactersIn: "-._~")
        #expect(text.percentEncoded(allowing: URLCharacters.unreserved) == text.addingPercentEncoding(withAllowedCharacters: unreserved))
    }

    /// Every substring of every sample, cut at its characters (and a few that are not substrings), found
    /// as `contains` finds it. (A byte search also finds half a character, e.g. the "\n" of a "\r\n":
    /// it is meant for names and digests.)
    @Test(arguments: samples)
    func byteSearchAgreesWithContains(text: String) {
        let characters = Array(text)
        var needles = ["x", "zz", text + "!", "@sha256:", ":"]
        for start in 0..<characters.count {
            for end in (start + 1)...characters.count { needles.append(String(characters[start..<end])) }
        }
        for needle in needles {
            #expect(text.containsBytes(needle) == text.contains(needle), "\(needle) in \(text)")
            #expect(text.dropFirst().containsBytes(needle) == text.dropFirst().contains(needle), "\(needle) in the rest of \(text)")
        }
        #expect(!text.containsBytes(""))  // as `contains` answers: the empty text is in none
        // A first byte that repeats before the match: the search goes on from the next byte, not past it.
        #expect("aaab".containsBytes("aab"))
        #expect(!"abab".containsBytes("abb"))
        #expect("w-1-condition names w-17".containsBytes("w-17"))
    }

    @Test func paddedNumbersMatchStringFormat() {
        for value: UInt32 in [0, 1, 0x1F, 0xABC, 0xFFFF, 0x1_0000] {
            #expect(value.hex(width: 4) == String(format: "%04x", value))
        }
        for value: UInt8 in [0, 9, 0x10, 0xFF] { #expect(value.hex(width: 2) == String(format: "%02x", value)) }
        for value in [0, 7, 123_456, 999_999] { #expect(value.decimal(width: 6) == String(format: "%06d", value)) }
    }

    @Test func anyJSONGivesWhatJSONSerializationGave() throws {
        let text = #"{"config":{"Entrypoint":["/bin/sh","-c"],"Env":["A=1"],"User":""},"n":3,"ok":true,"none":null,"errors":[{"code":"X","message":"m"}]}"#
        let ours = try #require(try AnyJSON.parse(Array(text.utf8)) as? [String: Any])
        let theirs = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let config = ours["config"] as? [String: Any]
        #expect(config?["Entrypoint"] as? [String] == (theirs["config"] as? [String: Any])?["Entrypoint"] as? [String])
        #expect(config?["Env"] as? [String] == ["A=1"] && config?["User"] as? String == "")
        #expect((ours["errors"] as? [[String: Any]])?.first?["code"] as? String == "X")
        #expect(ours["ok"] as? Bool == true && ours["n"] as? Double == 3 && ours["none"] is AnyJSON.Null)
        #expect(try AnyJSON.parse(Array(#""just text""#.utf8)) as? String == "just text")
        #expect(throws: (any Error).self) { try AnyJSON.parse(Array("{not json".utf8)) }
    }

    @Test func childProcessCollectsOutputAndStatus() throws {
        let result = try ChildProcess.run(["sh", "-c", #"printf '%s' "$GREETING"; echo oops >&2; exit 3"#], environment: ["GREETING": "hi there", "PATH": "/usr/bin:/bin"], discardStandardError: true)
        #expect(result.status == 3)
        #expect(String(decoding: result.output, as: UTF8.self) == "hi there")
        let missing = try ChildProcess.run(["no-such-program-cwo"], environment: ["PATH": "/usr/bin:/bin"], discardStandardError: true)
        #expect(missing.status == 127)
    }

    @Test func fileErrorsReadAsTheSystemSaysThem() {
        #expect(throws: (any Error).self) { try String(contentsOfFile: "/nonexistent/cwo", encoding: .utf8) }
        do {
            _ = try String(contentsOfFile: "/nonexistent/cwo", encoding: .utf8)
        } catch {
            #expect(FileError.reason(error) == "No such file or directory")
        }
    }
}
