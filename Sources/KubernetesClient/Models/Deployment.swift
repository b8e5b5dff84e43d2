/// `apps/v1` Deployment, as read back from the server: typed metadata and status, the spec kept as JSON
/// (its pod template is the user's, and cwo never drops a field of it).
public struct Deployment: KubernetesObject {
    public var apiVersion: String?
    public var kind: String?
    public var metadata: ObjectMeta
    public var status: DeploymentStatus?
    private var storedSpec: StoredJSON
    /// True when `spec` is a summary (`withSpecSummary`), not the whole spec.
    public private(set) var specIsSummary = false
    /// True when the Deployment was read as protobuf and its spec has a field `ProtobufSchema` does not
    /// know (a newer API server's): `spec` is nil, and a reader that needs it reads the Deployment as JSON.
    public internal(set) var specUnread = false

    /// The spec; for a `compacted()` Deployment, parsed from its bytes on each read.
    public var spec: JSONValue? {
        get { storedSpec.value }
        set {
            storedSpec.value = newValue
            specIsSummary = false
            specUnread = false
        }
    }

    public init(metadata: ObjectMeta, spec: JSONValue? = nil, status: DeploymentStatus? = nil) {
        self.apiVersion = "apps/v1"
        self.kind = "Deployment"
        self.metadata = metadata
        self.storedSpec = StoredJSON(spec)
        self.status = status
    }

    /// The same Deployment with its spec held as serialized JSON (see `CompactJSON`): for caches, where
    /// thousands of Deployments are kept and each spec is read once per reconcile.
    public func compacted() -> Deployment {
        var copy = self
        copy.storedSpec = storedSpec.compacted()
        return copy
    }

    /// The same Deployment with `summary` (serialized) in place of its spec: for a cache whose reader
    /// has checked the whole spec and needs only a few of its fields until the Deployment changes.
    public func withSpecSummary(_ summary: JSONValue) -> Deployment {
        var copy = self
        copy.storedSpec = StoredJSON(summary).compacted()
        copy.specIsSummary = true
        copy.specUnread = false
        return copy
    }

    /// This Deployment (its metadata and status) with the spec summary of `older`, when `older` is a
    /// summary of the same spec: the same object at the same generation (any change of a Deployment's
    /// spec increments its generation; a status or metadata update does not).
    public func carryingSpecSummary(of older: Deployment) -> Deployment {
        guard older.specIsSummary, !specIsSummary, let generation = metadata.generation, generation == older.metadata.generation,
            metadata.uid != nil, metadata.uid == older.metadata.uid
        else { return self }
        var copy = self
        copy.storedSpec = older.storedSpec
        copy.specIsSummary = true
        copy.specUnread = false
        return copy
    }

    private enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, spec, status }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion)
        kind = try container.decodeIfPresent(String.self, forKey: .kind)
        metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
        storedSpec = StoredJSON(try container.decodeIfPresent(JSONValue.self, forKey: .spec))
        status = try container.decodeIfPresent(DeploymentStatus.self, forKey: .status)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(apiVersion, forKey: .apiVersion)
        try container.encodeIfPresent(kind, forKey: .kind)
        try container.encode(metadata, forKey: .metadata)
        try container.encodeIfPresent(spec, forKey: .spec)
        try container.encodeIfPresent(status, forKey: .status)
    }
}

public struct DeploymentStatus: Codable, Sendable, Hashable {
    public var observedGeneration: Int64?
    public var replicas: Int?
    public var updatedReplicas: Int?
    public var readyReplicas: Int?
    public var availableReplicas: Int?
    public var unavailableReplicas: Int?
    public var conditions: [DeploymentCondition]?

    public init() {}
}

/// `apps/v1` DeploymentCondition. Held in one immutable, shareable box, as `Condition` is: the cache
/// shares the conditions Deployments repeat (`Available`, "Deployment has minimum availability.").
public struct DeploymentCondition: Codable, Sendable, Hashable {
    private var fields: Indirect<Values>

    public var type: String {
        get { fields.value.type }
        set { fields = fields.with { $0.type = newValue } }
    }
    public var status: String {
        get { fields.value.status }
        set { fields = fields.with { $0.status = newValue } }
    }
    public var reason: String? {
        get { fields.value.reason }
        set { fields = fields.with { $0.reason = newValue } }
    }
    public var message: String? {
        get { fields.value.message }
        set { fields = fields.with { $0.message = newValue } }
    }
    public var lastUpdateTime: String? {
        get { fields.value.lastUpdateTime }
        set { fields = fields.with { $0.lastUpdateTime = newValue } }
    }
    public var lastTransitionTime: String? {
        get { fields.value.lastTransitionTime }
        set { fields = fields.with { $0.lastTransitionTime = newValue } }
    }

    public init(type: String, status: String, reason: String? = nil, message: String? = nil) {
        fields = Indirect(Values(type: type, status: status, reason: reason, message: message))
    }

    /// This condition with the one copy of it the process shares among the objects it caches.
    public func shared() -> DeploymentCondition {
        var copy = self
        copy.fields = ConditionInterner.intern(fields)
        return copy
    }

    /// True when both hold the same copy of their fields; for tests.
    func isSameCopy(as other: DeploymentCondition) -> Bool { fields === other.fields }

    public init(from decoder: any Decoder) throws { fields = try Indirect(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try fields.encode(to: encoder) }

    struct Values: Codable, Sendable, Hashable {
        var type: String
        var status: String
        var reason: String?
        var message: String?
        var lastUpdateTime: String?
        var lastTransitionTime: String?
    }
}

extension Deployment: ProtobufDecodable {
    /// `apps/v1` Deployment: metadata 1, spec 2 (through `ProtobufSchema`), status 3.
    public init(protobuf message: ProtobufReader) throws {
        self.init(metadata: ObjectMeta())
        var message = message
        while let (field, value) = try message.next() {
            switch field {
            case 1: metadata = try ObjectMeta(protobuf: value.message)
            case 2:
                do {
                    spec = try ProtobufSchema.json(value.message, message: "DeploymentSpec")
                } catch is ProtobufSchema.UnknownField {
                    spec = nil
                    specUnread = true
                }
            case 3: status = try DeploymentStatus(protobuf: value.message)
            default: break
            }
        }
    }
}

/// A Deployment's metadata and status, without its spec: a read (a get, a list, or an answer) for the
/// rollout's status. Read as protobuf, the spec (a pod template with a ~50 KB policy annotation) is
/// skipped by its length, never scanned or copied; and the server encodes protobuf for about half the
/// CPU of JSON. (cwo's own applies need less: `PartialObjectMetadata`, where the server sends no spec.)
public struct DeploymentOutline: KubernetesObject, ProtobufDecodable, Hashable {
    public var metadata: ObjectMeta
    public var status: DeploymentStatus?

    public init(metadata: ObjectMeta, status: DeploymentStatus? = nil) {
        self.metadata = metadata
        self.status = status
    }

    /// As a `Deployment` without a spec.
    public var deployment: Deployment { Deployment(metadata: metadata, status: status) }

    private enum CodingKeys: String, CodingKey { case metadata, status }

    /// `apps/v1` Deployment: metadata 1, spec 2 (skipped), status 3.
    public init(protobuf message: ProtobufReader) throws {
        metadata = ObjectMeta()
        try message.forEach([1]) { metadata = try ObjectMeta(protobuf: $0.message) }
        try message.forEach([3]) { status = try DeploymentStatus(protobuf: $0.message) }
    }
}

extension DeploymentStatus {
    /// observedGeneration 1, replicas 2, updatedReplicas 3, availableReplicas 4, unavailableReplicas 5,
    /// conditions 6, readyReplicas 7. The server writes these numbers even when zero; its JSON leaves
    /// them out (`omitempty`), and so does this.
    init(protobuf message: ProtobufReader) throws {
        self.init()
        var message = message
        func count(_ value: ProtobufReader.Value) throws -> Int? {
            let number = try value.integer
            return number == 0 ? nil : Int(number)
        }
        while let (field, value) = try message.next() {
            switch field {
            case 1: observedGeneration = try count(value).map(Int64.init)
            case 2: replicas = try count(value)
            case 3: updatedReplicas = try count(value)
            case 4: availableReplicas = try count(value)
            case 5: unavailableReplicas = try count(value)
            case 6: conditions = (conditions ?? []) + [try DeploymentCondition(protobuf: value.message)]
            case 7: readyReplicas = try count(value)
            default: break
            }
        }
    }
}

extension DeploymentCondition {
    /// type 1, status 2, reason 4, message 5, lastUpdateTime 6, lastTransitionTime 7.
    init(protobuf message: ProtobufReader) throws {
        var values = Values(type: "", status: "")
        var message = message
        while let (field, value) = try message.next() {
            switch field {
            case 1: values.type = try value.string
            case 2: values.status = try value.string
            case 4: values.reason = try value.string
            case 5: values.message = try value.string
            case 6: values.lastUpdateTime = try KubernetesProtobuf.timestamp(value.message)
            case 7: values.lastTransitionTime = try KubernetesProtobuf.timestamp(value.message)
            default: break
            }
        }
        fields = Indirect(values)
    }
}
