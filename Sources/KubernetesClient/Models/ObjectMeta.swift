/// `metav1.ObjectMeta`: the fields an operator reads and writes. Unset fields are omitted on encode.
public struct ObjectMeta: Codable, Sendable, Hashable {
    public var name: String?
    public var generateName: String?
    public var namespace: String?
    /// Held as 16 bytes when it is a UUID (see `CompactUID`); read, it is the text the server sent.
    public var uid: String? {
        get { storedUID?.text }
        set { storedUID = newValue.map(CompactUID.init) }
    }
    public var resourceVersion: String?
    public var generation: Int64?
    public var creationTimestamp: String?
    public var deletionTimestamp: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var ownerReferences: [OwnerReference]?
    public var finalizers: [String]?
    public var managedFields: [ManagedFieldsEntry]?
    private var storedUID: CompactUID?

    public init(
        name: String? = nil, namespace: String? = nil, labels: [String: String]? = nil,
        annotations: [String: String]? = nil, ownerReferences: [OwnerReference]? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.ownerReferences = ownerReferences
    }

    /// The synthesized coding, with the UID under its own name.
    private enum CodingKeys: String, CodingKey {
        case name, generateName, namespace, storedUID = "uid", resourceVersion, generation, creationTimestamp, deletionTimestamp,
            labels, annotations, ownerReferences, finalizers, managedFields
    }
}

public struct OwnerReference: Codable, Sendable, Hashable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    /// Held as 16 bytes when it is a UUID (see `CompactUID`).
    public var uid: String {
        get { storedUID.text }
        set { storedUID = CompactUID(newValue) }
    }
    private var storedUID: CompactUID
    public var controller: Bool?
    public var blockOwnerDeletion: Bool?

    public init(apiVersion: String, kind: String, name: String, uid: String, controller: Bool? = nil, blockOwnerDeletion: Bool? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.storedUID = CompactUID(uid)
        self.controller = controller
        self.blockOwnerDeletion = blockOwnerDeletion
    }

    private enum CodingKeys: String, CodingKey { case apiVersion, kind, name, storedUID = "uid", controller, blockOwnerDeletion }
}

public struct ManagedFieldsEntry: Codable, Sendable, Hashable {
    public var manager: String?
    public var operation: String?
    public var apiVersion: String?
    public var subresource: String?
    public var fieldsType: String?
    public var fieldsV1: JSONValue?
}

/// `metav1.ListMeta`.
public struct ListMeta: Codable, Sendable, Hashable {
    public var resourceVersion: String?
    public var `continue`: String?
    public var remainingItemCount: Int64?
}

/// Any list response (`FooList`).
public struct ObjectList<Item: Decodable & Sendable>: Decodable, Sendable {
    public var metadata: ListMeta
    public var items: [Item]

    enum CodingKeys: String, CodingKey { case metadata, items }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decodeIfPresent(ListMeta.self, forKey: .metadata) ?? ListMeta()
        // The server sends `"items": null` for an empty list.
        items = try container.decodeIfPresent([Item].self, forKey: .items) ?? []
    }

    public init(metadata: ListMeta, items: [Item]) {
        self.metadata = metadata
        self.items = items
    }
}

/// An object that has Kubernetes metadata: what reflectors, stores and watches need of it.
public protocol KubernetesObject: Codable, Sendable {
    var metadata: ObjectMeta { get }
}

extension KubernetesObject {
    public var name: String { metadata.name ?? "" }
    public var namespace: String? { metadata.namespace }
    public var resourceVersion: String? { metadata.resourceVersion }
}

/// An object of any kind: typed metadata, everything else kept as JSON.
public struct UntypedObject: KubernetesObject, Hashable {
    public var metadata: ObjectMeta
    /// The whole object, including `metadata`, as received.
    public var raw: JSONValue

    public init(from decoder: any Decoder) throws {
        raw = try JSONValue(from: decoder)
        metadata = try raw["metadata"]?.decode(as: ObjectMeta.self) ?? ObjectMeta()
    }

    public init(_ raw: JSONValue) throws {
        self.raw = raw
        self.metadata = try raw["metadata"]?.decode(as: ObjectMeta.self) ?? ObjectMeta()
    }

    public func encode(to encoder: any Encoder) throws { try raw.encode(to: encoder) }
}

/// An object's metadata alone (`meta.k8s.io/v1` PartialObjectMetadata): what the API server sends when
/// asked for it (`;as=PartialObjectMetadata` in the Accept header; honoured for reads and for the answers
/// to writes, an apply's PATCH among them), for a caller that needs the new resourceVersion and generation
/// of what it wrote, not the object it sent: the answer to a Deployment apply is then ~1 KB instead of
/// the ~55 KB pod template with its policy, which neither side encodes, encrypts or reads. A server that
/// ignores the request sends the whole object, and it reads the same (every kind's metadata is its field
/// 1, or its `metadata` in JSON).
public struct PartialObjectMetadata: KubernetesObject, ProtobufDecodable, Hashable {
    public var metadata: ObjectMeta

    public init(metadata: ObjectMeta) {
        self.metadata = metadata
    }

    public init(protobuf message: ProtobufReader) throws {
        metadata = ObjectMeta()
        try message.forEach([1]) { metadata = try ObjectMeta(protobuf: $0.message) }
    }

    private static let asMetadata = ";as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
    public static var protobufAccept: String {
        "\(KubernetesProtobuf.mediaType)\(asMetadata), application/json\(asMetadata), application/json"
    }

    private enum CodingKeys: String, CodingKey { case metadata }
}
