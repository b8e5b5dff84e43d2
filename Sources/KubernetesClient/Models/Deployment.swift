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

    /// The spec; for a `compacted()` Deployment, parsed from its bytes on each read.
    public var spec: JSONValue? {
        get { storedSpec.value }
        set {
            storedSpec.value = newValue
            specIsSummary = false
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

public struct DeploymentCondition: Codable, Sendable, Hashable {
    public var type: String
    public var status: String
    public var reason: String?
    public var message: String?
    public var lastUpdateTime: String?
    public var lastTransitionTime: String?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
    }
}
