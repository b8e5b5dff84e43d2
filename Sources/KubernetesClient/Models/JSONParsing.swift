#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// Parses JSON text straight into `JSONValue`, and decodes `Decodable` models from a `JSONValue`.
///
/// Why not `JSONDecoder` alone: decoding a schemaless `JSONValue` through `Decodable` has to probe each
/// value's type by trying and failing (`Bool`? `Double`? `String`? ...), and every failed try builds a
/// `DecodingError` with its coding path. Watched Deployments are ~12 KB of nested JSON each, and that
/// probing was half of cwo's CPU time under load. Here the parser knows each value's type from its first
/// byte, and models whose fields are `JSONValue` take their subtree as it is, without copying or probing.
public enum JSONParser {
    /// Nesting deeper than this is refused (Kubernetes objects are far shallower; this bounds the stack).
    public static let maximumDepth = 512

    /// `dropManagedFields`: leave out `metadata.managedFields` (caches never read it, and it is often the
    /// largest part of an object).
    public static func parse(_ bytes: UnsafeRawBufferPointer, dropManagedFields: Bool = false) throws -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.dropManagedFields = dropManagedFields
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    public static func parse(_ data: some ContiguousBytes, dropManagedFields: Bool = false) throws -> JSONValue {
        try data.withUnsafeBytes { try parse($0, dropManagedFields: dropManagedFields) }
    }

    public static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0)) }
    }
}

public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public var offset: Int
    public var message: String
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

private struct Parser {
    let bytes: UnsafeRawBufferPointer
    var index = 0
    var dropManagedFields = false

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func error(_ message: String) -> JSONParseError { JSONParseError(offset: index, message: message) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int, key: String? = nil) throws -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            let text = try string()
            return .string(key.map(StringInterner.sharedValueMembers.contains) == true ? StringInterner.intern(text) : text)
        case UInt8(ascii: "{"): return try object(depth: depth + 1, isMetadata: dropManagedFields && key == "metadata")
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[index])))'")
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    mutating func object(depth: Int, isMetadata: Bool = false) throws -> JSONValue {
        guard depth <= JSONParser.maximumDepth else { throw error("nested deeper than \(JSONParser.maximumDepth)") }
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = StringInterner.intern(try string())
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            if isMetadata && key == "managedFields" {
                _ = try value(depth: depth)
            } else {
                members[key] = try value(depth: depth, key: key)
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            } else {
                throw error("expected ',' or '}'")
            }
        }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        guard depth <= JSONParser.maximumDepth else { throw error("nested deeper than \(JSONParser.maximumDepth)") }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an array") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            } else {
                throw error("expected ',' or ']'")
            }
        }
    }

    mutating func string() throws -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes.
        let (end, nonASCII) = JSONStringScan.plainRun(bytes, from: start)
        index = end
        if index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = try validated(start, index, nonASCII: nonASCII)
                index += 1
                return text
            }
            if byte < 0x20 { throw error("control character in a string") }
        }
        var buffer = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: buffer, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): buffer.append(0x22)
                case UInt8(ascii: "\\"): buffer.append(0x5C)
                case UInt8(ascii: "/"): buffer.append(0x2F)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("unpaired surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    buffer.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    index -= 1
                    throw error("invalid escape")
                }
            default:
                if byte < 0x20 { throw error("control character in a string") }
                buffer.append(byte)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    func validated(_ start: Int, _ end: Int, nonASCII: Bool) throws -> String {
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        // ASCII (nearly everything in Kubernetes objects) needs no validation beyond the checks above.
        if !nonASCII { return String(decoding: slice, as: UTF8.self) }
        guard let text = String(validating: slice, as: UTF8.self) else { throw JSONParseError(offset: start, message: "invalid UTF-8 in a string") }
        return text
    }

    mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("unexpected end of input in a \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func number() throws -> Double {
        let start = index
        var integer = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { throw error("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integer = false
            index += 1
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw error("invalid number") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integer = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw error("invalid number") }
        }
        let text = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        if integer, text.count <= 15 {
            // Exact in a Double; no string conversion.
            var value: Int64 = 0
            var negative = false
            for byte in text {
                if byte == UInt8(ascii: "-") { negative = true } else { value = value * 10 + Int64(byte - UInt8(ascii: "0")) }
            }
            return Double(negative ? -value : value)
        }
        guard let value = Double(String(decoding: text, as: UTF8.self)), value.isFinite else { throw JSONParseError(offset: start, message: "number out of range") }
        return value
    }
}

// MARK: - Decoding models from a JSONValue

/// A `Decoder` over a `JSONValue` tree. `JSONValue` fields of a model take their subtree as is.
struct JSONValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ value: JSONValue, codingPath: [any CodingKey] = []) {
        self.value = value
        self.codingPath = codingPath
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else {
            throw DecodingError.typeMismatch([String: JSONValue].self, .init(codingPath: codingPath, debugDescription: "expected an object, found \(value.kindName)"))
        }
        return KeyedDecodingContainer(KeyedContainer(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let array) = value else {
            throw DecodingError.typeMismatch([JSONValue].self, .init(codingPath: codingPath, debugDescription: "expected an array, found \(value.kindName)"))
        }
        return UnkeyedContainer(array: array, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValue(value: value, codingPath: codingPath) }

    /// `codingPath` is evaluated only when a decoder is made: most members are leaves (a string, a
    /// number, a map of strings), read straight from the tree without one.
    static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue, codingPath: @autoclosure () -> [any CodingKey]) throws -> T {
        if let leaf = leaf(T.self, value) { return leaf }
        return try T(from: JSONValueDecoder(value, codingPath: codingPath()))
    }

    /// The value for the leaf types models mostly hold, when `value` is of that type; nil for any other
    /// type or a mismatch, which the decoder then reads (and reports) as it always does. Each case gives
    /// what the decoder would: a string, a whole number that fits, a map or list of strings only.
    @inline(__always)
    static func leaf<T>(_ type: T.Type, _ value: JSONValue) -> T? {
        if T.self == JSONValue.self { return unsafeBitCast(value, to: T.self) }
        switch value {
        case .string(let text):
            if T.self == String.self { return unsafeBitCast(text, to: T.self) }
        case .number(let number):
            guard number.rounded() == number || T.self == Double.self else { return nil }
            if T.self == Int64.self, let exact = Int64(exactly: number) { return unsafeBitCast(exact, to: T.self) }
            if T.self == Int.self, let exact = Int(exactly: number) { return unsafeBitCast(exact, to: T.self) }
            if T.self == Double.self { return unsafeBitCast(number, to: T.self) }
        case .bool(let flag):
            if T.self == Bool.self { return unsafeBitCast(flag, to: T.self) }
        case .object(let members):
            if T.self == [String: String].self {
                var strings: [String: String] = Dictionary(minimumCapacity: members.count)
                for (key, member) in members {
                    guard case .string(let text) = member else { return nil }
                    strings[key] = text
                }
                return unsafeBitCast(strings, to: T.self)
            }
        case .array(let items):
            if T.self == [String].self {
                var strings: [String] = []
                strings.reserveCapacity(items.count)
                for item in items {
                    guard case .string(let text) = item else { return nil }
                    strings.append(text)
                }
                return unsafeBitCast(strings, to: T.self)
            }
        case .null:
            break
        }
        return nil
    }

    struct Index: CodingKey {
        var stringValue: String { "Index \(intValue ?? 0)" }
        var intValue: Int?
        init(_ index: Int) { intValue = index }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let object: [String: JSONValue]
        let codingPath: [any CodingKey]

        var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }
        func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

        func child(_ key: Key) throws -> JSONValue {
            guard let value = object[key.stringValue] else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for \"\(key.stringValue)\""))
            }
            return value
        }

        func decodeNil(forKey key: Key) throws -> Bool { object[key.stringValue]?.isNull ?? true }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try JSONValueDecoder.decode(T.self, from: try child(key), codingPath: codingPath + [key])
        }

        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
            guard let value = object[key.stringValue], !value.isNull else { return nil }
            return try JSONValueDecoder.decode(T.self, from: value, codingPath: codingPath + [key])
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            try JSONValueDecoder(try child(key), codingPath: codingPath + [key]).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try JSONValueDecoder(try child(key), codingPath: codingPath + [key]).unkeyedContainer()
        }

        func superDecoder() throws -> any Decoder { JSONValueDecoder(.object(object), codingPath: codingPath) }
        func superDecoder(forKey key: Key) throws -> any Decoder { JSONValueDecoder(object[key.stringValue] ?? .null, codingPath: codingPath + [key]) }
    }

    struct UnkeyedContainer: UnkeyedDecodingContainer {
        let array: [JSONValue]
        let codingPath: [any CodingKey]
        var currentIndex = 0

        var count: Int? { array.count }
        var isAtEnd: Bool { currentIndex >= array.count }

        mutating func next() throws -> JSONValue {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(JSONValue.self, .init(codingPath: codingPath + [Index(currentIndex)], debugDescription: "the array has no more elements"))
            }
            defer { currentIndex += 1 }
            return array[currentIndex]
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, array[currentIndex].isNull else { return false }
            currentIndex += 1
            return true
        }

        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let index = currentIndex
            return try JSONValueDecoder.decode(T.self, from: try next(), codingPath: codingPath + [Index(index)])
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            let path = codingPath + [Index(currentIndex)]
            return try JSONValueDecoder(try next(), codingPath: path).container(keyedBy: type)
        }

        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            let path = codingPath + [Index(currentIndex)]
            return try JSONValueDecoder(try next(), codingPath: path).unkeyedContainer()
        }

        mutating func superDecoder() throws -> any Decoder {
            let path = codingPath + [Index(currentIndex)]
            return JSONValueDecoder(try next(), codingPath: path)
        }
    }

    struct SingleValue: SingleValueDecodingContainer {
        let value: JSONValue
        let codingPath: [any CodingKey]

        func mismatch<T>(_ type: T.Type) -> DecodingError {
            DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(type), found \(value.kindName)"))
        }

        func decodeNil() -> Bool { value.isNull }

        func decode(_ type: Bool.Type) throws -> Bool {
            guard case .bool(let flag) = value else { throw mismatch(type) }
            return flag
        }

        func decode(_ type: String.Type) throws -> String {
            guard case .string(let text) = value else { throw mismatch(type) }
            return text
        }

        func decode(_ type: Double.Type) throws -> Double {
            guard case .number(let number) = value else { throw mismatch(type) }
            return number
        }

        func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

        func integer<T: BinaryInteger>(_ type: T.Type) throws -> T {
            guard case .number(let number) = value, number.rounded() == number, let exact = T(exactly: number) else {
                throw mismatch(type)
            }
            return exact
        }

        func decode(_ type: Int.Type) throws -> Int { try integer(type) }
        func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
        func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
        func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
        func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
        func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
        func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
        func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
        func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
        func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try JSONValueDecoder.decode(T.self, from: value, codingPath: codingPath)
        }
    }
}

extension JSONValue {
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

// MARK: - Writing

extension JSONValue {
    /// Compact JSON with object keys sorted (the same value always gives the same bytes), written
    /// straight into `buffer`: request bodies skip `JSONEncoder`'s generic path.
    public func serialize(into buffer: inout ByteBuffer) { write(into: &buffer) }

    /// The same bytes into an array: for what is only hashed (an intent digest), a `ByteBuffer`'s checked
    /// access to its storage on every small write cost more than the hash.
    public func serialize(into bytes: inout [UInt8]) { write(into: &bytes) }

    private func write<Output: JSONOutput>(into out: inout Output) {
        switch self {
        case .null: out.write("null")
        case .bool(let flag): out.write(flag ? "true" : "false")
        case .number(let number):
            var text = Self.canonical(number)
            text.withUTF8 { out.write(bytes: UnsafeRawBufferPointer($0)) }
        case .string(let text): Self.writeQuoted(text, into: &out)
        case .array(let items):
            out.write(byte: UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.write(byte: UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.write(byte: UInt8(ascii: "]"))
        case .object(let members):
            out.write(byte: UInt8(ascii: "{"))
            for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.write(byte: UInt8(ascii: ",")) }
                Self.writeQuoted(member.key, into: &out)
                out.write(byte: UInt8(ascii: ":"))
                member.value.write(into: &out)
            }
            out.write(byte: UInt8(ascii: "}"))
        }
    }

    /// A number as canonical JSON writes it: whole numbers below 10^15 without a fraction, others as
    /// Swift prints a `Double` (shortest round-trip form).
    public static func canonical(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : "\(number)"
    }

    /// `serialize` as a string.
    public var compactJSON: String {
        var buffer = ByteBuffer()
        serialize(into: &buffer)
        return String(buffer: buffer)
    }

    static func writeQuoted<Output: JSONOutput>(_ text: String, into out: inout Output) {
        out.write(byte: UInt8(ascii: "\""))
        JSONStringScan.escaped(text) { out.write(bytes: $0) }
        out.write(byte: UInt8(ascii: "\""))
    }
}

/// Where compact JSON is written: a request body, or bytes to hash.
protocol JSONOutput {
    mutating func write(byte: UInt8)
    mutating func write(bytes: UnsafeRawBufferPointer)
}

extension JSONOutput {
    mutating func write(_ literal: StaticString) {
        literal.withUTF8Buffer { write(bytes: UnsafeRawBufferPointer($0)) }
    }
}

extension ByteBuffer: JSONOutput {
    mutating func write(byte: UInt8) { writeInteger(byte) }
    mutating func write(bytes: UnsafeRawBufferPointer) { writeBytes(bytes) }
}

extension [UInt8]: JSONOutput {
    mutating func write(byte: UInt8) { append(byte) }
    mutating func write(bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
}

/// For answers nobody reads (the status write, an event): the body is not parsed at all.
public struct Discarded: Decodable, Sendable {
    public init() {}
    public init(from decoder: any Decoder) {}
}
