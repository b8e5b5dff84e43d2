internal import CLibYAML

/// YAML documents to and from `JSONValue`, with YAML 1.1 scalar resolution as kubectl applies it
/// (a quoted "true" stays a string; a plain `true` is a boolean). A small layer over the system libyaml:
/// libyaml reads and writes the text; this file composes its events into values and back.
public enum YAMLDocuments {
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    /// Every non-empty document of a `---` separated stream.
    public static func parse(_ text: String) throws -> [JSONValue] {
        // A document that is empty or just `null` is skipped, as kubectl does.
        try YAMLComposer.documents(of: text).map { try $0.jsonValue(path: "") }.filter { !$0.isNull }
    }

    /// The first document of `text` as a `T`. Scalars are read as the field asks: a string field takes any
    /// scalar's text (`name: 1` is the name "1", as kubectl reads it), a boolean field YAML 1.1's spellings.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        let root = try YAMLComposer.documents(of: text).first ?? .scalar(YAMLScalar(text: "", plain: true, tag: nil, mark: YAMLMark(line: 1, column: 1)))
        return try T(from: YAMLNodeDecoder(node: root, codingPath: []))
    }

    /// A `---` separated stream, keys sorted, strings quoted where YAML would read them as something else.
    public static func dump(_ documents: [JSONValue]) throws -> String {
        try documents.map { "---\n" + (try YAMLWriter.document($0)) }.joined()
    }
}

// MARK: - The composed tree

/// Where a node starts in the text, counted from 1 as editors do.
struct YAMLMark: Sendable, CustomStringConvertible {
    var line: Int
    var column: Int
    var description: String { "line \(line), column \(column)" }
}

struct YAMLScalar: Sendable {
    var text: String
    /// Written without quotes or block indicators: only such scalars resolve to numbers.
    var plain: Bool
    /// The explicit tag, `tag:yaml.org,2002:str` for an untagged quoted or block scalar, nil for a plain one.
    var tag: String?
    var mark: YAMLMark
}

indirect enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case sequence([YAMLNode], YAMLMark)
    case mapping([(key: YAMLNode, value: YAMLNode)], YAMLMark)

    var mark: YAMLMark {
        switch self {
        case .scalar(let scalar): scalar.mark
        case .sequence(_, let mark), .mapping(_, let mark): mark
        }
    }

    var kindName: String {
        switch self {
        case .scalar: "a scalar"
        case .sequence: "a sequence"
        case .mapping: "a mapping"
        }
    }
}

/// Reads a stream with libyaml's event parser and composes each document into a `YAMLNode`.
/// Aliases are expanded (bounded, so a small text cannot expand into a huge tree); keys must be scalars
/// and unique.
struct YAMLComposer: ~Copyable {
    /// Nodes a stream may expand to through aliases, and how deep it may nest.
    static let nodeLimit = 1_000_000
    static let depthLimit = 512

    /// On the heap: libyaml's state must not move while it parses.
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private var anchors: [String: (node: YAMLNode, count: Int)] = [:]
    private var nodes = 0

    private init(parser: UnsafeMutablePointer<yaml_parser_t>) {
        self.parser = parser
    }

    static func documents(of text: String) throws -> [YAMLNode] {
        var bytes = Array(text.utf8)
        // libyaml wants a non-null input pointer, even for an empty stream.
        bytes.append(0)
        return try bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return [] }
            let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
            defer { parser.deallocate() }
            guard yaml_parser_initialize(parser) == 1 else {
                throw YAMLDocuments.Error(message: "not valid YAML: the parser could not start (out of memory)")
            }
            defer { yaml_parser_delete(parser) }
            yaml_parser_set_input_string(parser, base, buffer.count - 1)
            yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
            var composer = YAMLComposer(parser: parser)
            return try composer.stream()
        }
    }

    private mutating func stream() throws -> [YAMLNode] {
        var documents: [YAMLNode] = []
        var event = try next()
        defer { yaml_event_delete(&event) }
        guard event.type == YAML_STREAM_START_EVENT else { throw unexpected(event) }
        while true {
            yaml_event_delete(&event)
            event = try next()
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return documents
            case YAML_DOCUMENT_START_EVENT:
                anchors = [:]
                yaml_event_delete(&event)
                event = try next()
                let (root, _) = try node(from: &event, depth: 0)
                yaml_event_delete(&event)
                event = try next()
                guard event.type == YAML_DOCUMENT_END_EVENT else { throw unexpected(event) }
                documents.append(root)
            default:
                throw unexpected(event)
            }
        }
    }

    /// The node that starts with `event`, and how many nodes it holds (aliases counted in full).
    /// Leaves the node's last event in `event` (the caller deletes it).
    private mutating func node(from event: inout yaml_event_t, depth: Int) throws -> (YAMLNode, Int) {
        let mark = Self.mark(event.start_mark)
        guard depth < Self.depthLimit else {
            throw YAMLDocuments.Error(message: "not valid YAML: \(mark): nested more than \(Self.depthLimit) levels deep")
        }
        switch event.type {
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor)
            guard let target = anchors[name] else {
                throw YAMLDocuments.Error(message: "not valid YAML: \(mark): alias *\(name) names no anchor before it")
            }
            try count(target.count, at: mark)
            return target
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            // An untagged quoted or block scalar is a string; a plain one resolves by its text.
            let tag = scalar.quoted_implicit == 1 ? "tag:yaml.org,2002:str" : scalar.tag.map { Self.string($0) }
            try count(1, at: mark)
            let node = YAMLNode.scalar(YAMLScalar(text: text, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE, tag: tag, mark: mark))
            if let anchor = scalar.anchor { anchors[Self.string(anchor)] = (node, 1) }
            return (node, 1)
        case YAML_SEQUENCE_START_EVENT:
            let name = event.data.sequence_start.anchor.map { Self.string($0) }
            try count(1, at: mark)
            var items: [YAMLNode] = []
            var total = 1
            while true {
                yaml_event_delete(&event)
                event = try next()
                if event.type == YAML_SEQUENCE_END_EVENT { break }
                let (item, size) = try node(from: &event, depth: depth + 1)
                items.append(item)
                total += size
            }
            if let name { anchors[name] = (.sequence(items, mark), total) }
            return (.sequence(items, mark), total)
        case YAML_MAPPING_START_EVENT:
            let name = event.data.mapping_start.anchor.map { Self.string($0) }
            try count(1, at: mark)
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            var total = 1
            while true {
                yaml_event_delete(&event)
                event = try next()
                if event.type == YAML_MAPPING_END_EVENT { break }
                let (key, keySize) = try node(from: &event, depth: depth + 1)
                yaml_event_delete(&event)
                event = try next()
                let (value, valueSize) = try node(from: &event, depth: depth + 1)
                pairs.append((key, value))
                total += keySize + valueSize
            }
            if let name { anchors[name] = (.mapping(pairs, mark), total) }
            return (.mapping(pairs, mark), total)
        default:
            throw unexpected(event)
        }
    }

    private mutating func count(_ added: Int, at mark: YAMLMark) throws {
        nodes += added
        guard nodes <= Self.nodeLimit else {
            throw YAMLDocuments.Error(message: "not valid YAML: \(mark): the stream expands to more than \(Self.nodeLimit) nodes")
        }
    }

    private mutating func next() throws -> yaml_event_t {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw parserError() }
        return event
    }

    /// libyaml's own words, with where it found the problem and what it was reading.
    private func parserError() -> YAMLDocuments.Error {
        let state = parser.pointee
        let problem = state.problem.map { String(cString: $0) } ?? "unknown problem"
        var message: String
        if state.error == YAML_READER_ERROR {
            message = "byte \(state.problem_offset): \(problem)"
        } else {
            message = "\(Self.mark(state.problem_mark)): \(problem)"
        }
        if let context = state.context {
            message += " (\(String(cString: context)) at \(Self.mark(state.context_mark)))"
        }
        return YAMLDocuments.Error(message: "not valid YAML: \(message)")
    }

    private func unexpected(_ event: yaml_event_t) -> YAMLDocuments.Error {
        YAMLDocuments.Error(message: "not valid YAML: \(Self.mark(event.start_mark)): unexpected event \(event.type.rawValue)")
    }

    private static func mark(_ mark: yaml_mark_t) -> YAMLMark {
        YAMLMark(line: mark.line + 1, column: mark.column + 1)
    }

    private static func string(_ pointer: UnsafePointer<yaml_char_t>) -> String {
        String(decoding: UnsafeBufferPointer(start: pointer, count: cStringLength(pointer)), as: UTF8.self)
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>) -> String {
        string(UnsafePointer(pointer))
    }
}

private func cStringLength(_ pointer: UnsafePointer<yaml_char_t>) -> Int {
    var length = 0
    while pointer[length] != 0 { length += 1 }
    return length
}

// MARK: - Scalars as YAML 1.1 reads them

/// The type a scalar resolves to. YAML 1.1's other implicit types (timestamps, `<<`, `=`) stay strings in a
/// `JSONValue`, but a string that looks like one is still quoted when written.
enum YAMLScalarType: Equatable {
    case null, bool, int, float, string
}

extension YAMLScalar {
    var resolvedType: YAMLScalarType {
        switch tag {
        case nil: YAMLResolver.type(of: text)
        case "tag:yaml.org,2002:null": .null
        case "tag:yaml.org,2002:bool": .bool
        case "tag:yaml.org,2002:int": .int
        case "tag:yaml.org,2002:float": .float
        default: .string  // `!`, `!!str` and any other tag
        }
    }

    var boolValue: Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": true
        case "false", "no", "off": false
        default: nil
        }
    }

    /// Only plain scalars are numbers; a tagged quoted one (`!!int "3"`) stays text.
    var intValue: Int? { plain ? YAMLResolver.integer(text) : nil }
    var doubleValue: Double? { plain ? YAMLResolver.float(text) : nil }

    /// The value kubectl would send: typed as it resolves, the text where it does not construct (an
    /// integer too large for 64 bits, `.inf`).
    var jsonValue: JSONValue {
        switch resolvedType {
        case .null: return .null
        case .bool: return boolValue.map(JSONValue.bool) ?? .string(text)
        case .int: return intValue.map { .number(Double($0)) } ?? .string(text)
        case .float:
            if let value = doubleValue, value.isFinite { return .number(value) }
            return .string(text)
        case .string: return .string(text)
        }
    }
}

extension YAMLNode {
    func jsonValue(path: String) throws -> JSONValue {
        switch self {
        case .scalar(let scalar):
            return scalar.jsonValue
        case .sequence(let items, _):
            return .array(try items.enumerated().map { try $1.jsonValue(path: "\(path)[\($0)]") })
        case .mapping(let pairs, _):
            var object: [String: JSONValue] = [:]
            for (key, value) in pairs {
                let name = try key.keyName(in: path)
                // A merge key is not applied; its entries are dropped as before.
                if name == "<<" { continue }
                let child = path.isEmpty ? name : "\(path).\(name)"
                guard object[name] == nil else {
                    throw YAMLDocuments.Error(message: "\(key.mark): \(child) appears twice in the same mapping")
                }
                object[name] = try value.jsonValue(path: child)
            }
            return .object(object)
        }
    }

    func keyName(in path: String) throws -> String {
        guard case .scalar(let scalar) = self else {
            throw YAMLDocuments.Error(message: "\(mark): \(path.isEmpty ? "document" : path): mapping keys must be scalars, not \(kindName)")
        }
        return scalar.text
    }
}

/// YAML 1.1's implicit types, as regular languages over the scalar's text (the patterns of the YAML 1.1
/// type repository, first match wins: bool, int, float, merge, null, timestamp, value).
enum YAMLResolver {
    static func type(of text: String) -> YAMLScalarType {
        let bytes = Array(text.utf8)
        if isBool(bytes) { return .bool }
        if isInt(bytes) { return .int }
        if isFloat(bytes) { return .float }
        if isNull(bytes) { return .null }
        return .string
    }

    /// True when a plain scalar with this text would be read as anything but a string. As the regular
    /// expressions this replaces did, `$` also matches before one final line break ("true\n" is quoted too).
    static func isImplicitlyTyped(_ text: String) -> Bool {
        var scalars = Substring(text).unicodeScalars
        if matchesImplicitType(Array(String(scalars).utf8)) { return true }
        guard let last = scalars.last, [0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029].contains(last.value) else { return false }
        scalars.removeLast()
        if last.value == 0x0A, scalars.last?.value == 0x0D { scalars.removeLast() }
        return matchesImplicitType(Array(String(scalars).utf8))
    }

    private static func matchesImplicitType(_ bytes: [UInt8]) -> Bool {
        isBool(bytes) || isInt(bytes) || isFloat(bytes) || bytes == Array("<<".utf8) || isNull(bytes)
            || isTimestamp(bytes) || bytes == Array("=".utf8)
    }

    private static let bools: Set<String> = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF",
    ]
    private static let nulls: Set<String> = ["", "~", "null", "Null", "NULL"]

    private static func isBool(_ bytes: [UInt8]) -> Bool { bytes.count <= 5 && bools.contains(String(decoding: bytes, as: UTF8.self)) }
    private static func isNull(_ bytes: [UInt8]) -> Bool { bytes.count <= 4 && nulls.contains(String(decoding: bytes, as: UTF8.self)) }

    private static func digit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    private static func digitOrUnderscore(_ byte: UInt8) -> Bool { digit(byte) || byte == 0x5F }

    /// Reads bytes while `test` holds; returns how many.
    private static func run(_ bytes: [UInt8], from start: Int, _ test: (UInt8) -> Bool) -> Int {
        var index = start
        while index < bytes.count, test(bytes[index]) { index += 1 }
        return index - start
    }

    private static func sign(_ bytes: [UInt8], at index: Int) -> Int {
        index < bytes.count && (bytes[index] == 0x2B || bytes[index] == 0x2D) ? 1 : 0
    }

    /// `(?::[0-5]?[0-9])+` from `index`: where it ends, or nil when there is no such group.
    private static func sexagesimalGroups(_ bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        var groups = 0
        while index < bytes.count, bytes[index] == 0x3A {
            let digits = run(bytes, from: index + 1, digit)
            // One digit, or two whose first is 0-5; a longer run cannot end the group.
            if digits == 1 || (digits == 2 && bytes[index + 1] <= 0x35) {
                index += 1 + digits
                groups += 1
            } else {
                return nil
            }
        }
        return groups > 0 ? index : nil
    }

    static func isInt(_ bytes: [UInt8]) -> Bool {
        let start = sign(bytes, at: 0)
        let body = bytes[start...]
        guard let first = body.first else { return false }
        let rest = Array(body.dropFirst())
        if first == 0x30 {
            if rest.isEmpty { return true }  // 0
            if rest.first == 0x62 {  // 0b[0-1_]+
                return rest.count > 1 && rest.dropFirst().allSatisfy { $0 == 0x30 || $0 == 0x31 || $0 == 0x5F }
            }
            if rest.first == 0x78 {  // 0x[0-9a-fA-F_]+
                return rest.count > 1 && rest.dropFirst().allSatisfy { digitOrUnderscore($0) || (0x61...0x66).contains($0) || (0x41...0x46).contains($0) }
            }
            let octal = rest.first == 0x6F ? rest.dropFirst() : rest[...]  // 0o?[0-7_]+
            return !octal.isEmpty && octal.allSatisfy { (0x30...0x37).contains($0) || $0 == 0x5F }
        }
        guard (0x31...0x39).contains(first) else { return false }
        let end = start + 1 + run(bytes, from: start + 1, digitOrUnderscore)
        if end == bytes.count { return true }  // [1-9][0-9_]*
        return sexagesimalGroups(bytes, from: end) == bytes.count  // [1-9][0-9_]*(:[0-5]?[0-9])+
    }

    static func isFloat(_ bytes: [UInt8]) -> Bool {
        let start = sign(bytes, at: 0)
        guard start < bytes.count else { return false }
        if bytes[start] == 0x2E {  // .inf, .nan (unsigned), .5
            let word = String(decoding: bytes[(start + 1)...], as: UTF8.self)
            if ["inf", "Inf", "INF"].contains(word) { return true }
            if start == 0, ["nan", "NaN", "NAN"].contains(word) { return true }
            // \.[0-9_]+(?:[eE][-+][0-9]+)? takes no sign.
            guard start == 0 else { return false }
            let fraction = run(bytes, from: 1, digitOrUnderscore)
            guard fraction > 0 else { return false }
            return exponent(bytes, from: 1 + fraction, signRequired: true) == bytes.count
        }
        guard digit(bytes[start]) else { return false }
        let integer = start + 1 + run(bytes, from: start + 1, digitOrUnderscore)
        // [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
        if let groups = sexagesimalGroups(bytes, from: integer), groups < bytes.count, bytes[groups] == 0x2E {
            return groups + 1 + run(bytes, from: groups + 1, digitOrUnderscore) == bytes.count
        }
        // [-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?
        var index = integer
        if index < bytes.count, bytes[index] == 0x2E {
            index += 1 + run(bytes, from: index + 1, digitOrUnderscore)
        }
        return exponent(bytes, from: index, signRequired: false) == bytes.count
    }

    /// An optional `[eE][-+]?[0-9]+` at `index`: where the text ends after it.
    private static func exponent(_ bytes: [UInt8], from index: Int, signRequired: Bool) -> Int {
        guard index < bytes.count, bytes[index] == 0x65 || bytes[index] == 0x45 else { return index }
        let signed = sign(bytes, at: index + 1)
        if signRequired && signed == 0 { return index }
        let digits = run(bytes, from: index + 1 + signed, digit)
        return digits > 0 ? index + 1 + signed + digits : index
    }

    static func isTimestamp(_ bytes: [UInt8]) -> Bool {
        var index = 0
        func digits(_ minimum: Int, _ maximum: Int) -> Bool {
            let count = min(run(bytes, from: index, digit), maximum)
            guard count >= minimum else { return false }
            index += count
            return true
        }
        func byte(_ value: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == value else { return false }
            index += 1
            return true
        }
        guard digits(4, 4), byte(0x2D) else { return false }
        // A date alone: [0-9]{4}-[0-9]{2}-[0-9]{2}.
        if bytes.count == 10, run(bytes, from: 5, digit) == 2, bytes[7] == 0x2D, run(bytes, from: 8, digit) == 2 { return true }
        guard digits(1, 2), byte(0x2D), digits(1, 2) else { return false }
        // (?:[Tt]|[ \t]+)
        if !byte(0x54) && !byte(0x74) {
            let blanks = run(bytes, from: index) { $0 == 0x20 || $0 == 0x09 }
            guard blanks > 0 else { return false }
            index += blanks
        }
        guard digits(1, 2), byte(0x3A), digits(2, 2), byte(0x3A), digits(2, 2) else { return false }
        if byte(0x2E) { index += run(bytes, from: index, digit) }
        if index == bytes.count { return true }
        index += run(bytes, from: index) { $0 == 0x20 || $0 == 0x09 }
        if byte(0x5A) { return index == bytes.count }
        guard byte(0x2B) || byte(0x2D), digits(1, 2) else { return false }
        if byte(0x3A) { guard digits(2, 2) else { return false } }
        return index == bytes.count
    }

    /// An integer in YAML 1.1's notations: `_` separators, `0b`, `0x`, `0o` and leading-`0` octal, and
    /// base 60 (`1:30`). Nil when it does not fit in 64 bits.
    static func integer(_ text: String) -> Int? {
        let digits = text.filter { $0 != "_" }
        if digits == "0" { return 0 }
        let negative = digits.hasPrefix("-")
        let hasSign = negative || digits.hasPrefix("+")
        let body = digits.dropFirst(hasSign ? 1 : 0)
        let signPrefix = negative ? "-" : ""
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where body.hasPrefix(prefix) {
            return Int(signPrefix + body.dropFirst(prefix.count), radix: radix)
        }
        if body.contains(":") {
            var value = 0
            for part in body.split(separator: ":", omittingEmptySubsequences: false) {
                guard let digit = Int(part, radix: 10) else { return nil }
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 60)
                let (sum, overflowAgain) = shifted.addingReportingOverflow(digit)
                guard !overflow, !overflowAgain else { return nil }
                value = sum
            }
            return negative ? -value : value
        }
        return Int(digits)
    }

    /// A float in YAML 1.1's notations: `_` separators, `.inf`, `.nan`, and base 60 (`1:30.5`).
    static func float(_ text: String) -> Double? {
        switch text.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default: break
        }
        let digits = text.filter { $0 != "_" }
        guard digits.contains(":") else { return Double(digits) }
        let negative = digits.hasPrefix("-")
        let body = digits.dropFirst(negative || digits.hasPrefix("+") ? 1 : 0)
        var value = 0.0
        for part in body.split(separator: ":", omittingEmptySubsequences: false) {
            guard let digit = Double(part) else { return nil }
            value = value * 60 + digit
        }
        return negative ? -value : value
    }
}

// MARK: - Writing

/// Emits one document through libyaml: block style, keys sorted, no line width limit, unicode as is.
/// libyaml chooses each scalar's quoting; a string that would read back as another type is asked for in
/// single quotes.
final class YAMLWriter {
    /// On the heap: libyaml's state must not move while it writes.
    private let emitter: UnsafeMutablePointer<yaml_emitter_t>
    private var output: [UInt8] = []

    private init(emitter: UnsafeMutablePointer<yaml_emitter_t>) {
        self.emitter = emitter
    }

    static func document(_ value: JSONValue) throws -> String {
        let emitter = UnsafeMutablePointer<yaml_emitter_t>.allocate(capacity: 1)
        defer { emitter.deallocate() }
        guard yaml_emitter_initialize(emitter) == 1 else {
            throw YAMLDocuments.Error(message: "cannot write YAML: the emitter could not start (out of memory)")
        }
        defer { yaml_emitter_delete(emitter) }
        let writer = YAMLWriter(emitter: emitter)
        yaml_emitter_set_output(emitter, { context, buffer, size in
            guard let context, let buffer else { return 0 }
            let writer = Unmanaged<YAMLWriter>.fromOpaque(context).takeUnretainedValue()
            writer.output.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
            return 1
        }, Unmanaged.passUnretained(writer).toOpaque())
        yaml_emitter_set_canonical(emitter, 0)
        yaml_emitter_set_indent(emitter, 2)
        yaml_emitter_set_width(emitter, -1)
        yaml_emitter_set_unicode(emitter, 1)
        yaml_emitter_set_break(emitter, YAML_LN_BREAK)
        yaml_emitter_set_encoding(emitter, YAML_UTF8_ENCODING)

        var event = yaml_event_t()
        yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING)
        try writer.emit(&event)
        yaml_document_start_event_initialize(&event, nil, nil, nil, 1)
        try writer.emit(&event)
        try writer.write(value)
        yaml_document_end_event_initialize(&event, 1)
        try writer.emit(&event)
        yaml_stream_end_event_initialize(&event)
        try writer.emit(&event)
        return String(decoding: writer.output, as: UTF8.self)
    }

    private func write(_ value: JSONValue) throws {
        var event = yaml_event_t()
        switch value {
        case .null: try scalar("null", quoted: false)
        case .bool(let flag): try scalar(flag ? "true" : "false", quoted: false)
        case .number(let number): try scalar(YAMLNumber.text(number), quoted: false)
        case .string(let text): try scalar(text, quoted: YAMLResolver.isImplicitlyTyped(text))
        case .array(let items):
            yaml_sequence_start_event_initialize(&event, nil, nil, 1, YAML_ANY_SEQUENCE_STYLE)
            try emit(&event)
            for item in items { try write(item) }
            yaml_sequence_end_event_initialize(&event)
            try emit(&event)
        case .object(let fields):
            yaml_mapping_start_event_initialize(&event, nil, nil, 1, YAML_ANY_MAPPING_STYLE)
            try emit(&event)
            for (key, field) in fields.sorted(by: { $0.key < $1.key }) {
                // Keys are written as libyaml sees fit: `true:` stays a plain key, as before.
                try scalar(key, quoted: false)
                try write(field)
            }
            yaml_mapping_end_event_initialize(&event)
            try emit(&event)
        }
    }

    private func scalar(_ text: String, quoted: Bool) throws {
        var event = yaml_event_t()
        var bytes = Array(text.utf8)
        guard bytes.count < Int32.max else { throw YAMLDocuments.Error(message: "cannot write YAML: a string of \(bytes.count) bytes") }
        let length = Int32(bytes.count)
        bytes.append(0)
        let style = quoted ? YAML_SINGLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE
        let initialized = bytes.withUnsafeBufferPointer {
            yaml_scalar_event_initialize(&event, nil, nil, $0.baseAddress, length, 1, 1, style)
        }
        guard initialized == 1 else { throw YAMLDocuments.Error(message: "cannot write YAML: out of memory") }
        try emit(&event)
    }

    /// libyaml takes the event and frees it, whether or not it succeeds.
    private func emit(_ event: inout yaml_event_t) throws {
        guard yaml_emitter_emit(emitter, &event) == 1 else {
            let problem = emitter.pointee.problem.map { String(cString: $0) } ?? "unknown problem"
            throw YAMLDocuments.Error(message: "cannot write YAML: \(problem)")
        }
    }
}

/// Numbers as they have always been written: integers below 10^15 in full, anything else in scientific
/// notation with up to 15 significant digits (`1.5e+0`, `1e+15`, `2.5e-7`) — what the YAML writer cwo
/// used before printed, so rendered output does not change.
enum YAMLNumber {
    static func text(_ number: Double) -> String {
        if number.rounded() == number, abs(number) < 1e15 { return String(Int(number)) }
        if number.isNaN { return ".nan" }
        if number.isInfinite { return number < 0 ? "-.inf" : ".inf" }
        // The shortest digits that read back as this double, then rounded half-to-even to 15 of them.
        var (digits, exponent) = decimalDigits(abs(number))
        if digits.count > 15 {
            let kept = Array(digits.prefix(15))
            let dropped = Array(digits.dropFirst(15))
            let first = dropped[0]
            let beyondHalf = dropped.dropFirst().contains { $0 != 0 }
            let roundUp = first > 5 || (first == 5 && (beyondHalf || (kept[14] % 2 == 1)))
            digits = kept
            if roundUp {
                var index = digits.count - 1
                while index >= 0 {
                    if digits[index] == 9 {
                        digits[index] = 0
                        index -= 1
                    } else {
                        digits[index] += 1
                        break
                    }
                }
                if index < 0 {
                    digits.insert(1, at: 0)
                    digits.removeLast()
                    exponent += 1
                }
            }
        }
        while digits.count > 1, digits.last == 0 { digits.removeLast() }
        var text = number < 0 ? "-" : ""
        text += String(digits[0])
        if digits.count > 1 { text += "." + digits.dropFirst().map(String.init).joined() }
        text += exponent < 0 ? "e-\(-exponent)" : "e+\(exponent)"
        return text
    }

    /// Significant decimal digits of a positive finite double, shortest round-trip, and the power of ten of
    /// the first one.
    private static func decimalDigits(_ value: Double) -> ([UInt8], Int) {
        // Swift prints the shortest round-trip form: "1.5", "0.001", "1e-05", "1.2345e+20".
        let description = value.description
        let parts = description.split(separator: "e", maxSplits: 1)
        let mantissa = parts[0]
        let power = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        let pieces = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let integer = pieces[0]
        let fraction = pieces.count > 1 ? pieces[1] : ""
        var digits = (integer + fraction).compactMap { $0.wholeNumberValue }.map(UInt8.init)
        var exponent = power + integer.count - 1
        while digits.count > 1, digits.first == 0 {
            digits.removeFirst()
            exponent -= 1
        }
        return (digits, exponent)
    }
}
