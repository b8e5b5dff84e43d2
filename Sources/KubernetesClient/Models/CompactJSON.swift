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
