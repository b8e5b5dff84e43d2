import NIOCore

/// A JSON value kept as its canonical serialized bytes (keys sorted, no whitespace) rather than as a
/// tree: about a quarter of the memory of a `JSONValue` of the same content, for values held long and
/// read seldom (a cached Deployment's spec, a remembered desired state). `value` parses it again.
public struct CompactJSON: Sendable, Hashable {
    public let bytes: [UInt8]

    public init(_ value: JSONValue) {
        var buffer = ByteBuffer()
        value.serialize(into: &buffer)
        bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// The value again. The bytes were written by `serialize`, so they always parse.
    public var value: JSONValue {
        (try? JSONParser.parse(bytes)) ?? .null
    }
}

/// A JSON value kept as a tree, as its serialized bytes (`compacted()`: for values cached long and read
/// seldom), or as both (`expanded()`: parsed once for a stretch of reads, the bytes still at hand).
public struct StoredJSON: Sendable {
    private enum Form: Sendable {
        case tree(JSONValue?)
        case compact(CompactJSON?)
        case both(JSONValue?, CompactJSON?)
    }

    private var form: Form

    public init(_ value: JSONValue?) {
        form = .tree(value)
    }

    /// The value; parsed from the bytes on each read when compacted.
    public var value: JSONValue? {
        get {
            switch form {
            case .tree(let value), .both(let value, _): value
            case .compact(let compact): compact?.value
            }
        }
        set { form = .tree(newValue) }
    }

    /// The canonical bytes (serialized on each read when held only as a tree).
    public var compact: CompactJSON? {
        switch form {
        case .tree(let value): value.map(CompactJSON.init)
        case .compact(let compact), .both(_, let compact): compact
        }
    }

    public func compacted() -> StoredJSON {
        guard case .tree(let value) = form else { return self }
        var copy = self
        copy.form = .compact(value.map(CompactJSON.init))
        return copy
    }

    public func expanded() -> StoredJSON {
        guard case .compact(let compact) = form else { return self }
        var copy = self
        copy.form = .both(compact?.value, compact)
        return copy
    }
}
