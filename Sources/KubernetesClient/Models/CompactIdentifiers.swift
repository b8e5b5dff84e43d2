/// An object's UID held in 16 bytes: the API server writes UIDs as RFC 4122 UUIDs (36 lowercase
/// characters), which a `String` keeps on the heap (80 bytes with its header); a cache holds three per
/// workload (the workload's, its Deployment's and the Deployment's owner reference). Text in any other
/// form is kept as it is, so reading it back always gives the text that was stored.
struct CompactUID: Sendable, Hashable, CodedAsText {
    private enum Storage: Sendable, Hashable {
        case uuid(UInt64, UInt64)
        case text(String)
    }

    private let storage: Storage

    init(_ text: String) {
        if let words = LowercaseHex.parse(text, words: 2, dashes: Self.dashes) { storage = .uuid(words.0, words.1) } else { storage = .text(text) }
    }

    var text: String {
        switch storage {
        case .text(let text): text
        case .uuid(let high, let low): LowercaseHex.format((high, low, 0, 0), words: 2, dashes: Self.dashes)
        }
    }

    /// Whether the UID is held as 16 bytes (it has the API server's form), not as text.
    var isPacked: Bool { if case .uuid = storage { true } else { false } }

    /// Where a UUID's dashes are: after its 8th, 12th, 16th and 20th hex digit (offsets 8, 13, 18, 23).
    private static let dashes: UInt64 = 1 << 8 | 1 << 13 | 1 << 18 | 1 << 23
}

/// A SHA-256 digest written as 64 lowercase hex characters (a policy hash, an initdata digest) held in
/// 32 bytes instead of a 112-byte heap string; any other text is kept as it is.
public struct CompactDigest: Sendable, Hashable, CodedAsText {
    private enum Storage: Sendable, Hashable {
        case sha256(UInt64, UInt64, UInt64, UInt64)
        case text(String)
    }

    private let storage: Storage

    public init(_ text: String) {
        if let words = LowercaseHex.parse(text, words: 4, dashes: 0) { storage = .sha256(words.0, words.1, words.2, words.3) } else { storage = .text(text) }
    }

    public var text: String {
        switch storage {
        case .text(let text): text
        case .sha256(let a, let b, let c, let d): LowercaseHex.format((a, b, c, d), words: 4, dashes: 0)
        }
    }

    /// Whether the digest is held as 32 bytes (64 lowercase hex digits), not as text.
    var isPacked: Bool { if case .sha256 = storage { true } else { false } }
}

/// A value held in a form of its own and coded as its text (a JSON string), which it reads back as written.
public protocol CodedAsText: Codable {
    init(_ text: String)
    var text: String { get }
}

extension CodedAsText {
    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

/// Lowercase hex digits (with dashes at fixed offsets) read into and written from up to four 64-bit
/// words, most significant digit first: uppercase digits are not read, as they would not be written back
/// the same. Dash offsets are a bit mask (bit n: a dash at offset n). Nothing is allocated but the text
/// that `format` returns.
enum LowercaseHex {
    typealias Words = (UInt64, UInt64, UInt64, UInt64)

    static func parse(_ text: String, words count: Int, dashes: UInt64) -> Words? {
        var text = text
        return text.withUTF8 { bytes -> Words? in
            guard bytes.count == count * 16 + dashes.nonzeroBitCount else { return nil }
            var words: Words = (0, 0, 0, 0)
            let read = withUnsafeMutableBytes(of: &words) { raw -> Bool in
                let words = raw.bindMemory(to: UInt64.self)
                var digit = 0
                for offset in bytes.indices {
                    let byte = bytes[offset]
                    if dashes >> UInt64(offset) & 1 == 1 {
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
            return read ? words : nil
        }
    }

    static func format(_ words: Words, words count: Int, dashes: UInt64) -> String {
        var words = words
        let length = count * 16 + dashes.nonzeroBitCount
        return withUnsafeBytes(of: &words) { raw in
            let words = raw.bindMemory(to: UInt64.self)
            return String(unsafeUninitializedCapacity: length) { buffer in
                var digit = 0
                for offset in 0..<length {
                    if dashes >> UInt64(offset) & 1 == 1 {
                        buffer[offset] = UInt8(ascii: "-")
                        continue
                    }
                    let nibble = UInt8(truncatingIfNeeded: words[digit / 16] >> UInt64(60 - 4 * (digit % 16)) & 0xF)
                    buffer[offset] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
                    digit += 1
                }
                return length
            }
        }
    }
}

/// A value kept out of line: 8 bytes where it is held (nothing but the pointer when absent, as an
/// optional), for a member most objects leave unset whose value is large inline (a struct of strings).
/// Coded as the value itself; compared and hashed by value. Immutable: a change stores a new box.
public final class Indirect<Value: Sendable & Hashable & Codable>: Sendable, Hashable, Codable {
    public let value: Value

    public init(_ value: Value) { self.value = value }

    /// A new box holding the value as `edit` changes it: one shared box never changes under its holders.
    public func with(_ edit: (inout Value) -> Void) -> Indirect {
        var changed = value
        edit(&changed)
        return Indirect(changed)
    }

    public convenience init(from decoder: any Decoder) throws { self.init(try Value(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }

    public static func == (lhs: Indirect, rhs: Indirect) -> Bool { lhs === rhs || lhs.value == rhs.value }
    public func hash(into hasher: inout Hasher) { value.hash(into: &hasher) }
}
