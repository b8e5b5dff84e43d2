#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads the protobuf wire format: the fields of one message, in order, each a varint, a fixed-size
/// number or a length-delimited slice (a string, bytes, a nested message, a map entry).
///
/// Only what reading Kubernetes objects needs. A field the reader is not asked about costs a jump over
/// its length: a 50 KB annotation value nobody keeps is never copied, scanned or turned into a String,
/// which is why cwo reads the kinds it only summarizes as protobuf.
///
/// The reader borrows its bytes: use it inside the `withUnsafe...Bytes` call that lent them.
public struct ProtobufReader {
    public enum Value {
        case varint(UInt64)
        case bytes(UnsafeRawBufferPointer)
        case fixed(UInt64)
    }

    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The next field's number and value; nil at the end of the message.
    public mutating func next() throws -> (field: Int, value: Value)? {
        guard offset < bytes.count else { return nil }
        let tag = try varint()
        let field = Int(tag >> 3)
        guard field > 0 else { throw ProtobufError("field number 0 at byte \(offset)") }
        switch tag & 7 {
        case 0:
            return (field, .varint(try varint()))
        case 1:
            return (field, .fixed(try fixed(8)))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.count - offset) else { throw ProtobufError("field \(field) runs past the end of its message") }
            let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(length)])
            offset += Int(length)
            return (field, .bytes(slice))
        case 5:
            return (field, .fixed(try fixed(4)))
        default:
            throw ProtobufError("field \(field) has wire type \(tag & 7), which Kubernetes objects do not use")
        }
    }

    /// Calls `body` with every value at `path` (field numbers, each but the last a nested message), in
    /// order: `forEach([3, 1, 12])` visits the map entries of field 12 of the message in field 1 of the
    /// message in field 3. Everything else is jumped over.
    public func forEach(_ path: [Int], _ body: (Value) throws -> Void) throws {
        guard let first = path.first else { return }
        var reader = self
        while let (field, value) = try reader.next() {
            guard field == first else { continue }
            if path.count == 1 { try body(value) } else { try value.message.forEach(Array(path.dropFirst()), body) }
        }
    }

    /// The next varint of a packed repeated field's bytes; nil at their end.
    public mutating func nextVarint() throws -> UInt64? {
        offset < bytes.count ? try varint() : nil
    }

    private mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw ProtobufError("truncated or overlong varint")
    }

    private mutating func fixed(_ size: Int) throws -> UInt64 {
        guard bytes.count - offset >= size else { throw ProtobufError("truncated fixed-size field") }
        var result: UInt64 = 0
        for index in 0..<size { result |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        offset += size
        return result
    }
}

extension ProtobufReader.Value {
    public var string: String {
        get throws {
            guard case .bytes(let slice) = self else { throw ProtobufError("expected a string") }
            return String(decoding: slice, as: UTF8.self)
        }
    }

    /// A nested message (or map entry).
    public var message: ProtobufReader {
        get throws {
            guard case .bytes(let slice) = self else { throw ProtobufError("expected a message") }
            return ProtobufReader(slice)
        }
    }

    public var rawBytes: UnsafeRawBufferPointer {
        get throws {
            guard case .bytes(let slice) = self else { throw ProtobufError("expected bytes") }
            return slice
        }
    }

    /// An int32/int64 field (two's complement in a varint).
    public var integer: Int64 {
        get throws {
            guard case .varint(let value) = self else { throw ProtobufError("expected an integer") }
            return Int64(bitPattern: value)
        }
    }

    public var bool: Bool {
        get throws { try integer != 0 }
    }

    /// The length of a length-delimited value, without reading it.
    public var length: Int {
        if case .bytes(let slice) = self { return slice.count }
        return 0
    }
}

public struct ProtobufError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = "protobuf: " + description }
}
