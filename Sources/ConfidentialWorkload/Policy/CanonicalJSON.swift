import KubernetesClient

/// JSON with sorted keys and two-space indentation, the same bytes on every platform (the hash depends on them).
public enum CanonicalJSON {
    public static func pretty(_ value: JSONValue, indent: String = "") -> String {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(value, indent: Array(indent.utf8), depth: 0, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `prefix`, then the object of `fields` and of members written before by `member(_:)` (values the same
    /// in every object, written once), then a newline: the bytes of `prefix + pretty(all of them) + "\n"`,
    /// written into one buffer (a policy is ~55 KB, and each concatenation copied all of it).
    static func text(after prefix: [UInt8], object fields: [String: JSONValue], rendered: [String: [UInt8]]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(prefix.count + 8192 + rendered.values.reduce(0) { $0 + $1.count })
        out.append(contentsOf: prefix)
        let members = fields.map { (key: $0.key, value: Optional($0.value)) } + rendered.keys.filter { fields[$0] == nil }.map { (key: $0, value: JSONValue?.none) }
        writeObject(members.sorted { $0.key < $1.key }, indent: [], depth: 0, into: &out) { key, value, out in
            if let value { write(value, indent: [], depth: 1, into: &out) } else { out.append(contentsOf: rendered[key] ?? []) }
        }
        out.append(UInt8(ascii: "\n"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `value` written as the member of a top-level object (for `text(after:object:rendered:)`).
    static func member(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        write(value, indent: [], depth: 1, into: &out)
        return out
    }

    /// An array of `objects` written as the member of a top-level object (for `text(after:object:rendered:)`).
    static func member(_ objects: [CanonicalObject]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096 * objects.count)
        writeArray(objects, indent: [], depth: 1, into: &out) { object, out in write(object, indent: [], depth: 2, into: &out) }
        return out
    }

    /// Without whitespace: `JSONValue.serialize`, the same bytes cwo sends in request bodies.
    public static func compact(_ value: JSONValue) -> String { value.compactJSON }

    /// Appends UTF-8 to one buffer: the policy's data is built for every new or changed workload; a string
    /// per nested value (joined level by level) was a tenth of cwo's CPU while converging, and appending
    /// to a `String` piece by piece still a twentieth of a build.
    private static func newline(depth: Int, indent: [UInt8], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\n"))
        if !indent.isEmpty { out.append(contentsOf: indent) }
        // Copied from a run of spaces: appending a `repeatElement` went a byte at a time.
        var count = 2 * depth
        while count > 0 {
            let run = min(count, spaces.count)
            out.append(contentsOf: spaces[..<run])
            count -= run
        }
    }

    private static let spaces = [UInt8](repeating: UInt8(ascii: " "), count: 32)

    /// Literals as bytes: appending a short `String`'s UTF-8 took three times as long (18 against 6 ns).
    private enum Literal {
        static let null = Array("null".utf8)
        static let `true` = Array("true".utf8)
        static let `false` = Array("false".utf8)
    }

    private static func write(_ value: JSONValue, indent: [UInt8], depth: Int, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: Literal.null)
        case .bool(let flag): out.append(contentsOf: flag ? Literal.true : Literal.false)
        case .number(let number): out.append(contentsOf: JSONValue.canonical(number).utf8)
        case .string(let text): appendQuoted(text, to: &out)
        case .array(let items):
            writeArray(items, indent: indent, depth: depth, into: &out) { item, out in write(item, indent: indent, depth: depth + 1, into: &out) }
        case .object(let fields):
            guard !fields.isEmpty else { out.append(contentsOf: "{}".utf8); return }
            writeObject(fields.sorted { $0.key < $1.key }, indent: indent, depth: depth, into: &out) { _, value, out in
                write(value, indent: indent, depth: depth + 1, into: &out)
            }
        }
    }

    private static func write(_ object: CanonicalObject, indent: [UInt8], depth: Int, into out: inout [UInt8]) {
        guard !object.members.isEmpty else { out.append(contentsOf: "{}".utf8); return }
        writeObject(object.sortedMembers, indent: indent, depth: depth, into: &out) { _, value, out in
            write(value, indent: indent, depth: depth + 1, into: &out)
        }
    }

    /// `items` as an array at `depth`, each on its own line, written by `writeItem`.
    private static func writeArray<Item>(
        _ items: [Item], indent: [UInt8], depth: Int, into out: inout [UInt8], item writeItem: (Item, inout [UInt8]) -> Void
    ) {
        guard !items.isEmpty else { out.append(contentsOf: "[]".utf8); return }
        out.append(UInt8(ascii: "["))
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            newline(depth: depth + 1, indent: indent, into: &out)
            writeItem(item, &out)
        }
        newline(depth: depth, indent: indent, into: &out)
        out.append(UInt8(ascii: "]"))
    }

    /// `members` (in the order given) as an object at `depth`, each on its own line, its value written by `value`.
    private static func writeObject<Value>(
        _ members: [(key: String, value: Value)], indent: [UInt8], depth: Int, into out: inout [UInt8],
        value writeValue: (String, Value, inout [UInt8]) -> Void
    ) {
        out.append(UInt8(ascii: "{"))
        for (index, member) in members.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            newline(depth: depth + 1, indent: indent, into: &out)
            appendQuoted(member.key, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(UInt8(ascii: " "))
            writeValue(member.key, member.value, &out)
        }
        newline(depth: depth, indent: indent, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func quote(_ text: String) -> String {
        var out: [UInt8] = []
        appendQuoted(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `text` as a JSON string: quote, backslash and control characters escaped, all else as it is.
    private static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        JSONStringScan.escaped(text) { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\""))
    }
}

/// An object that is only ever written (a container's expectation in `policy_data`): its members kept in
/// the order they were set, with no hashing, and sorted once when written. A dictionary per container,
/// merged with another and then sorted, was a tenth of a policy's build. Each key is set once.
struct CanonicalObject: ExpressibleByDictionaryLiteral {
    private(set) var members: [(key: String, value: JSONValue)]

    init(dictionaryLiteral elements: (String, JSONValue)...) {
        members = []
        members.reserveCapacity(elements.count + 8)
        for (key, value) in elements { members.append((key, value)) }
    }

    subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            let index = members.firstIndex { $0.key == key }
            switch (index, newValue) {
            case (let index?, let value?): members[index].value = value
            case (let index?, nil): members.remove(at: index)
            case (nil, let value?): members.append((key, value))
            case (nil, nil): break
            }
        }
    }

    /// `self` with the members of `other` (which win where both have a key).
    func adding(_ other: CanonicalObject) -> CanonicalObject {
        var merged = other
        for member in members where other[member.key] == nil { merged.members.append(member) }
        return merged
    }

    var sortedMembers: [(key: String, value: JSONValue)] {
        let sorted = members.sorted { $0.key < $1.key }
        // A literal with a key twice would be written twice (a dictionary literal traps on it): debug builds check.
        assert(zip(sorted, sorted.dropFirst()).allSatisfy { $0.key != $1.key }, "a key set twice in \(sorted.map(\.key))")
        return sorted
    }
}
