#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A kind that can be read from the API server's protobuf encoding (built-in kinds only: custom
/// resources are always JSON). The client asks for protobuf when listing and watching such a kind,
/// and reads JSON as before when the server answers with it.
public protocol ProtobufDecodable {
    /// Reads the object from its message (what the `k8s\0` envelope wraps).
    init(protobuf message: ProtobufReader) throws
    /// The Accept header of a request (not a watch) answered with this kind.
    static var protobufAccept: String { get }
}

extension ProtobufDecodable {
    public static var protobufAccept: String { KubernetesProtobuf.accept }
}

/// The API server's protobuf encoding (`application/vnd.kubernetes.protobuf`): each object is the
/// 4 bytes `k8s\0` and a `runtime.Unknown` whose `raw` field holds the object's message; a watch
/// stream is a sequence of `metav1.WatchEvent` messages, each after its 4-byte big-endian length.
///
/// Kinds use the field numbers of k8s.io/api's generated.proto; the ones cwo reads are below.
public enum KubernetesProtobuf {
    public static let mediaType = "application/vnd.kubernetes.protobuf"
    /// What a list or any other request answered with such a kind asks for: protobuf, else JSON (the
    /// server picks the first it can give).
    static let accept = "\(mediaType), application/json"
    static let watchAccept = "\(mediaType);stream=watch, application/json"
    private static let magic: [UInt8] = [0x6B, 0x38, 0x73, 0x00]

    /// Whether `bytes` are an enveloped protobuf object (and not JSON).
    public static func isEnvelope(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= magic.count && zip(bytes, magic).allSatisfy { $0 == $1 }
    }

    /// The kind and the object's message inside an envelope.
    public static func unwrap(_ bytes: UnsafeRawBufferPointer) throws -> (kind: String, message: ProtobufReader) {
        guard isEnvelope(bytes) else { throw ProtobufError("no k8s envelope") }
        var unknown = ProtobufReader(UnsafeRawBufferPointer(rebasing: bytes[magic.count...]))
        var kind = ""
        var raw: ProtobufReader?
        while let (field, value) = try unknown.next() {
            switch field {
            case 1:  // typeMeta
                try value.message.forEach([2]) { kind = try $0.string }
            case 2: raw = try value.message
            default: break
            }
        }
        guard let raw else { throw ProtobufError("envelope of \(kind) without an object") }
        return (kind, raw)
    }

    /// One watch event (a frame without its length prefix).
    static func watchFrame<Object>(_ bytes: UnsafeRawBufferPointer, as type: Object.Type) throws -> WatchFrame<Object>.Payload {
        guard let objectType = Object.self as? any ProtobufDecodable.Type else { throw ProtobufError("\(Object.self) cannot be read from protobuf") }
        var event = ProtobufReader(bytes)
        var eventType = ""
        var object: UnsafeRawBufferPointer?
        while let (field, value) = try event.next() {
            switch field {
            case 1: eventType = try value.string
            case 2: try value.message.forEach([1]) { object = try $0.rawBytes }  // runtime.RawExtension
            default: break
            }
        }
        guard let object else { throw ProtobufError("watch event \(eventType) without an object") }
        let (kind, message) = try unwrap(object)
        func read() throws -> Object { try objectType.init(protobuf: message) as! Object }  // objectType is Object.self
        switch eventType {
        case "ADDED": return .event(.added(try read()))
        case "MODIFIED": return .event(.modified(try read()))
        case "DELETED": return .event(.deleted(try read()))
        case "BOOKMARK":
            // Every kind's message has its ObjectMeta in field 1.
            var version = ""
            try message.forEach([1]) { version = try ObjectMeta(protobuf: $0.message).resourceVersion ?? "" }
            return .event(.bookmark(resourceVersion: version))
        case "ERROR":
            guard kind == "Status" else { throw ProtobufError("ERROR event carrying a \(kind)") }
            return .error(try Status(protobuf: message))
        default:
            throw ProtobufError("unknown watch event type \(eventType)")
        }
    }

    /// `metav1.Time` (seconds 1, nanos 2) as the JSON encoding writes it: RFC 3339, UTC, whole seconds.
    static func timestamp(_ message: ProtobufReader) throws -> String {
        var seconds: Int64 = 0
        try message.forEach([1]) { seconds = try $0.integer }
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = String(year)
        return String(repeating: "0", count: max(0, 4 - yearText.count)) + yearText + "-\(two(month))-\(two(day))"
            + "T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (in 400-year cycles of 146 097 days,
    /// with years starting on March 1st so that the leap day is the last of its year).
    static func civilDate(daysSinceEpoch days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let shifted = days + 719_468  // days from 0000-03-01
        let cycle = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfCycle = shifted - cycle * 146_097
        let yearOfCycle = (dayOfCycle - dayOfCycle / 1_460 + dayOfCycle / 36_524 - dayOfCycle / 146_096) / 365
        let dayOfYear = dayOfCycle - (365 * yearOfCycle + yearOfCycle / 4 - yearOfCycle / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        return (yearOfCycle + cycle * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// A map field's entry (key 1, value 2), both strings.
    static func mapEntry(_ value: ProtobufReader.Value) throws -> (key: String, value: String) {
        var entry = try value.message
        var key = ""
        var text = ""
        while let (field, value) = try entry.next() {
            if field == 1 { key = try value.string } else if field == 2 { text = try value.string }
        }
        return (key, text)
    }
}

/// A list response (`FooList`: metadata 1, items 2) of a protobuf-decodable kind.
extension ObjectList: ProtobufDecodable where Item: ProtobufDecodable {
    public init(protobuf message: ProtobufReader) throws {
        var message = message
        var metadata = ListMeta()
        var items: [Item] = []
        while let (field, value) = try message.next() {
            switch field {
            case 1: metadata = try ListMeta(protobuf: value.message)
            case 2: items.append(try Item(protobuf: value.message))
            default: break
            }
        }
        self.init(metadata: metadata, items: items)
    }
}

extension ObjectMeta: ProtobufDecodable {
    /// `metav1.ObjectMeta`; managedFields (17) are read past.
    public init(protobuf message: ProtobufReader) throws {
        self.init()
        var message = message
        while let (field, value) = try message.next() {
            switch field {
            case 1: name = try value.string
            case 2: generateName = try value.string.nonEmpty
            case 3: namespace = try value.string.nonEmpty.map(StringInterner.intern)
            case 5: uid = try value.string
            case 6: resourceVersion = try value.string
            case 7: generation = try value.integer
            case 8: creationTimestamp = StringInterner.intern(try KubernetesProtobuf.timestamp(value.message))
            case 9: deletionTimestamp = try KubernetesProtobuf.timestamp(value.message)
            // Label and annotation keys repeat across objects: shared, as the JSON parser shares them.
            case 11:
                let (key, text) = try KubernetesProtobuf.mapEntry(value)
                labels = labels ?? [:]
                labels?[StringInterner.intern(key)] = text
            case 12:
                let (key, text) = try KubernetesProtobuf.mapEntry(value)
                annotations = annotations ?? [:]
                annotations?[StringInterner.intern(key)] = text
            case 13: ownerReferences = (ownerReferences ?? []) + [try OwnerReference(protobuf: value.message)]
            case 14: finalizers = (finalizers ?? []) + [try value.string]
            default: break
            }
        }
    }
}

extension OwnerReference {
    init(protobuf message: ProtobufReader) throws {
        self.init(apiVersion: "", kind: "", name: "", uid: "")
        var message = message
        while let (field, value) = try message.next() {
            switch field {
            case 1: kind = StringInterner.intern(try value.string)
            case 3: name = try value.string
            case 4: uid = try value.string
            case 5: apiVersion = StringInterner.intern(try value.string)
            case 6: controller = try value.bool
            case 7: blockOwnerDeletion = try value.bool
            default: break
            }
        }
    }
}

extension ListMeta {
    init(protobuf message: ProtobufReader) throws {
        self.init()
        var message = message
        while let (field, value) = try message.next() {
            switch field {
            case 2: resourceVersion = try value.string
            case 3: `continue` = try value.string.nonEmpty
            case 4: remainingItemCount = try value.integer
            default: break
            }
        }
    }
}

extension Status {
    /// `metav1.Status`: status 2, message 3, reason 4, details 5, code 6.
    init(protobuf message: ProtobufReader) throws {
        self.init()
        var message = message
        while let (field, value) = try message.next() {
            switch field {
            case 2: status = try value.string
            case 3: self.message = try value.string
            case 4: reason = try value.string
            case 5:
                var details = StatusDetails()
                var fields = try value.message
                while let (field, value) = try fields.next() {
                    switch field {
                    case 1: details.name = try value.string
                    case 2: details.group = try value.string
                    case 3: details.kind = try value.string
                    case 5: details.retryAfterSeconds = Int(try value.integer)
                    case 6: details.uid = try value.string
                    default: break
                    }
                }
                self.details = details
            case 6: code = Int(try value.integer)
            default: break
            }
        }
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
