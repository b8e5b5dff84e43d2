/// An object's UID held in 16 bytes: the API server writes UIDs as RFC 4122 UUIDs (36 lowercase
/// characters), which a `String` keeps on the heap (80 bytes with its header); a cache holds three per
/// workload (the workload's, its Deployment's and the Deployment's owner reference). Text in any other
/// form is kept as it is, so reading it back always gives the text that was stored. Coded as that text.
struct CompactUID: Sendable, Hashable, Codable {
    private enum Storage: Sendable, Hashable {
        case uuid(UInt64, UInt64)
        case text(String)
    }

    private let storage: Storage

    init(_ text: String) {
        var words: [UInt64] = []
        storage = LowercaseHex.parse(text, words: 2, dashes: Self.dashes, into: &words) ? .uuid(words[0], words[1]) : .text(text)
    }

    var text: String {
        switch storage {
        case .text(let text): text
        case .uuid(let high, let low): LowercaseHex.format([high, low], dashes: Self.dashes)
        }
    }

    /// Where a UUID's dashes are: after its 8th, 12th, 16th and 20th hex digit.
    private static let dashes = [8, 13, 18, 23]

    init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

/// A SHA-256 digest written as 64 lowercase hex characters (a policy hash, an initdata digest) held in
/// 32 bytes instead of a 112-byte heap string; any other text is kept as it is. Coded as that text.
public struct CompactDigest: Sendable, Hashable, Codable {
    private enum Storage: Sendable, Hashable {
        case sha256(UInt64, UInt64, UInt64, UInt64)
        case text(String)
    }

    private let storage: Storage

    public init(_ text: String) {
        var words: [UInt64] = []
        storage = LowercaseHex.parse(text, words: 4, dashes: [], into: &words) ? .sha256(words[0], words[1], words[2], words[3]) : .text(text)
    }

    public var text: String {
        switch storage {
        case .text(let text): text
        case .sha256(let a, let b, let c, let d): LowercaseHex.format([a, b, c, d], dashes: [])
        }
    }

    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

/// Lowercase hex digits (with dashes at fixed offsets) read into and written from 64-bit words, most
/// significant digit first: uppercase digits are not read, as they would not be written back the same.
enum LowercaseHex {
    static func parse(_ text: String, words count: Int, dashes: [Int], into words: inout [UInt64]) -> Bool {
        let utf8 = text.utf8
        guard utf8.count == count * 16 + dashes.count else { return false }
        words = [UInt64](repeating: 0, count: count)
        var digit = 0
        for (offset, byte) in utf8.enumerated() {
            if dashes.contains(offset) {
                guard byte == UInt8(ascii: "-") else { return false }
                continue
            }
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            default: return false
            }
            words[digit / 16] = words[digit / 16] << 4 | UInt64(nibble)
            digit += 1
        }
        return true
    }

    static func format(_ words: [UInt64], dashes: [Int]) -> String {
        let length = words.count * 16 + dashes.count
        return String(unsafeUninitializedCapacity: length) { buffer in
            var digit = 0
            for offset in 0..<length {
                if dashes.contains(offset) {
                    buffer[offset] = UInt8(ascii: "-")
                    continue
                }
                let nibble = Int(words[digit / 16] >> UInt64(60 - 4 * (digit % 16)) & 0xF)
                buffer[offset] = nibble < 10 ? UInt8(ascii: "0") + UInt8(nibble) : UInt8(ascii: "a") + UInt8(nibble - 10)
                digit += 1
            }
            return length
        }
    }
}
