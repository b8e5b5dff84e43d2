/// One event of a watch stream.
public enum WatchEvent<Object: Decodable & Sendable>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// A progress marker: only the resourceVersion is meaningful.
    case bookmark(resourceVersion: String)
}

/// The frame `{"type": ..., "object": ...}` of a watch stream, decoded in one pass: the `type` decides
/// what `object` is (the watched kind, a `Status` for `ERROR`, bare metadata for `BOOKMARK`).
struct WatchFrame<Object: Decodable & Sendable>: Decodable {
    enum Payload {
        case event(WatchEvent<Object>)
        case error(Status)
    }
    var payload: Payload

    private enum CodingKeys: String, CodingKey { case type, object }
    private struct Bookmark: Decodable {
        struct Meta: Decodable { var resourceVersion: String? }
        var metadata: Meta?
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "ADDED": payload = .event(.added(try container.decode(Object.self, forKey: .object)))
        case "MODIFIED": payload = .event(.modified(try container.decode(Object.self, forKey: .object)))
        case "DELETED": payload = .event(.deleted(try container.decode(Object.self, forKey: .object)))
        case "BOOKMARK":
            let bookmark = try container.decode(Bookmark.self, forKey: .object)
            payload = .event(.bookmark(resourceVersion: bookmark.metadata?.resourceVersion ?? ""))
        case "ERROR": payload = .error(try container.decode(Status.self, forKey: .object))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown watch event type \(type)")
        }
    }
}
