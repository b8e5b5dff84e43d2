/// Decodes a `Decodable` straight from a composed YAML document, reading each scalar as the field asks:
/// a `String` takes any scalar's text, a `Bool` YAML 1.1's spellings (not a quoted one), numbers only plain
/// scalars. A key that is absent or null is nil for an optional field.
struct YAMLNodeDecoder: Decoder {
    let node: YAMLNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let pairs, _) = node else { throw mismatch([String: Any].self, node, codingPath, expected: "a mapping") }
        var fields: [String: YAMLNode] = [:]
        for (key, value) in pairs {
            let name = try key.keyName(in: codingPath.map(\.stringValue).joined(separator: "."))
            guard fields[name] == nil else {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(key.mark): \(name) appears twice in the same mapping"))
            }
            fields[name] = value
        }
        return KeyedDecodingContainer(Keyed(fields: fields, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .sequence(let items, _) = node else { throw mismatch([Any].self, node, codingPath, expected: "a sequence") }
        return Unkeyed(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(node: node, codingPath: codingPath) }

    static func decode<T: Decodable>(_ type: T.Type, from node: YAMLNode, codingPath: [any CodingKey]) throws -> T {
        try T(from: YAMLNodeDecoder(node: node, codingPath: codingPath))
    }

    static func isNull(_ node: YAMLNode) -> Bool {
        if case .scalar(let scalar) = node { return scalar.resolvedType == .null }
        return false
    }

    struct Index: CodingKey {
        var stringValue: String { "[\(intValue ?? 0)]" }
        var intValue: Int?
        init(_ index: Int) { intValue = index }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let fields: [String: YAMLNode]
        let codingPath: [any CodingKey]
        var allKeys: [Key] { fields.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { fields[key.stringValue] != nil }

        func child(_ key: Key) throws -> YAMLNode {
            guard let node = fields[key.stringValue] else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for \"\(key.stringValue)\""))
            }
            return node
        }

        func decodeNil(forKey key: Key) throws -> Bool { fields[key.stringValue].map(YAMLNodeDecoder.isNull) ?? true }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try YAMLNodeDecoder.decode(T.self, from: try child(key), codingPath: codingPath + [key])
        }

        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
            guard let node = fields[key.stringValue], !YAMLNodeDecoder.isNull(node) else { return nil }
            return try YAMLNodeDecoder.decode(T.self, from: node, codingPath: codingPath + [key])
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            try YAMLNodeDecoder(node: try child(key), codingPath: codingPath + [key]).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try YAMLNodeDecoder(node: try child(key), codingPath: codingPath + [key]).unkeyedContainer()
        }

        func superDecoder() throws -> any Decoder {
            YAMLNodeDecoder(node: .mapping([], YAMLMark(line: 0, column: 0)), codingPath: codingPath)
        }

        func superDecoder(forKey key: Key) throws -> any Decoder { YAMLNodeDecoder(node: try child(key), codingPath: codingPath + [key]) }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let items: [YAMLNode]
        let codingPath: [any CodingKey]
        var currentIndex = 0
        var count: Int? { items.count }
        var isAtEnd: Bool { currentIndex >= items.count }

        mutating func next() throws -> (YAMLNode, [any CodingKey]) {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(YAMLNode.self, .init(codingPath: codingPath, debugDescription: "the sequence has no more items"))
            }
            defer { currentIndex += 1 }
            return (items[currentIndex], codingPath + [Index(currentIndex)])
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, YAMLNodeDecoder.isNull(items[currentIndex]) else { return false }
            currentIndex += 1
            return true
        }

        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let (node, path) = try next()
            return try YAMLNodeDecoder.decode(T.self, from: node, codingPath: path)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            let (node, path) = try next()
            return try YAMLNodeDecoder(node: node, codingPath: path).container(keyedBy: type)
        }

        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            let (node, path) = try next()
            return try YAMLNodeDecoder(node: node, codingPath: path).unkeyedContainer()
        }

        mutating func superDecoder() throws -> any Decoder {
            let (node, path) = try next()
            return YAMLNodeDecoder(node: node, codingPath: path)
        }
    }

    struct Single: SingleValueDecodingContainer {
        let node: YAMLNode
        let codingPath: [any CodingKey]

        func decodeNil() -> Bool { YAMLNodeDecoder.isNull(node) }

        private func scalar(expected: String) throws -> YAMLScalar {
            guard case .scalar(let scalar) = node else { throw mismatch(Any.self, node, codingPath, expected: expected) }
            return scalar
        }

        func decode(_ type: String.Type) throws -> String { try scalar(expected: "a string").text }

        func decode(_ type: Bool.Type) throws -> Bool {
            let scalar = try scalar(expected: "a boolean")
            guard scalar.tag != "tag:yaml.org,2002:str", let value = scalar.boolValue else {
                throw mismatch(type, node, codingPath, expected: "a boolean")
            }
            return value
        }

        func decode(_ type: Double.Type) throws -> Double {
            guard let value = try scalar(expected: "a number").doubleValue else { throw mismatch(type, node, codingPath, expected: "a number") }
            return value
        }

        func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

        func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
            guard let value = try scalar(expected: "an integer").intValue, let exact = T(exactly: value) else {
                throw mismatch(type, node, codingPath, expected: "an integer that fits \(type)")
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
            try YAMLNodeDecoder.decode(T.self, from: node, codingPath: codingPath)
        }
    }
}

private func mismatch(_ type: Any.Type, _ node: YAMLNode, _ codingPath: [any CodingKey], expected: String) -> DecodingError {
    DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "\(node.mark): expected \(expected), found \(node.kindName)"))
}
