import ControllerRuntime
import KubernetesClient

/// The `ConfidentialWorkload` custom resource (`cwo.dev/v1alpha1`).
///
/// `spec` is kept as the JSON the server sent: the validator reads it field by field, so a workload
/// whose spec cannot be understood becomes an `InvalidSpec` condition instead of a decoding failure
/// that would stall the watch for every other workload.
public struct ConfidentialWorkload: KubernetesObject, Hashable {
    public static let group = "cwo.dev"
    public static let version = "v1alpha1"
    public static let apiVersion = "cwo.dev/v1alpha1"
    public static let kind = "ConfidentialWorkload"
    public static let resource = Resource(group: group, version: version, plural: "confidentialworkloads", kind: kind, namespaced: true)

    public var apiVersion: String?
    public var kind: String?
    public var metadata: ObjectMeta
    /// nil when absent or not understood (cwo rewrites it then).
    public var status: WorkloadStatus?
    private var storedSpec: StoredJSON

    /// The spec; for a `compacted()` workload (the cache's), parsed from its bytes on each read.
    public var spec: JSONValue? {
        get { storedSpec.value }
        set { storedSpec.value = newValue }
    }

    /// The spec as canonical serialized bytes (without serializing again when the workload is compacted).
    public var compactSpec: CompactJSON? { storedSpec.compact }

    /// The same workload with its spec held as serialized JSON: for the cache, where thousands are kept
    /// and each spec is read a few times per reconcile (a quarter of the memory of the tree).
    public func compacted() -> ConfidentialWorkload {
        var copy = self
        copy.storedSpec = storedSpec.compacted()
        return copy
    }

    /// A compacted workload with its spec parsed once, for a reconcile that reads it many times.
    public func expanded() -> ConfidentialWorkload {
        var copy = self
        copy.storedSpec = storedSpec.expanded()
        return copy
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, spec, status }

    public static func == (lhs: ConfidentialWorkload, rhs: ConfidentialWorkload) -> Bool {
        lhs.apiVersion == rhs.apiVersion && lhs.kind == rhs.kind && lhs.metadata == rhs.metadata && lhs.status == rhs.status
            && lhs.compactSpec == rhs.compactSpec
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(apiVersion)
        hasher.combine(kind)
        hasher.combine(metadata)
        hasher.combine(status)
        hasher.combine(compactSpec)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(apiVersion, forKey: .apiVersion)
        try container.encodeIfPresent(kind, forKey: .kind)
        try container.encode(metadata, forKey: .metadata)
        try container.encodeIfPresent(spec, forKey: .spec)
        try container.encodeIfPresent(status, forKey: .status)
    }

    public init(metadata: ObjectMeta, spec: JSONValue, status: WorkloadStatus? = nil) {
        self.apiVersion = Self.apiVersion
        self.kind = Self.kind
        self.metadata = metadata
        self.storedSpec = StoredJSON(spec)
        self.status = status
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion)
        kind = try container.decodeIfPresent(String.self, forKey: .kind)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        storedSpec = StoredJSON(try container.decodeIfPresent(JSONValue.self, forKey: .spec))
        status = try? container.decodeIfPresent(WorkloadStatus.self, forKey: .status)
    }

    public var key: (namespace: String, name: String) { (metadata.namespace ?? "", metadata.name ?? "") }
}

/// `status` of a ConfidentialWorkload; written only by cwo, through the status subresource.
public struct WorkloadStatus: Codable, Sendable, Hashable {
    public var observedGeneration: Int64?
    public var deploymentName: String?
    public var replicas: Int?
    public var readyReplicas: Int?
    /// Held as 32 bytes (see `CompactDigest`): every cached workload has one, unique to it.
    public var policyHash: String? {
        get { storedPolicyHash?.text }
        set { storedPolicyHash = newValue.map(CompactDigest.init) }
    }
    public var policyMode: String?
    /// Held out of line (see `Indirect`), as is `teeRegister`: 8 bytes in a cached workload without one.
    public var keyRelease: KeyReleaseStatus? {
        get { storedKeyRelease?.value }
        set { storedKeyRelease = newValue.map(Indirect.init) }
    }
    /// AKS or CoCo.
    public var platform: String?
    /// CoCo: the initdata digest (lowercase hex) and what the TEE reports for it.
    public var initDataDigest: String?
    public var teeRegister: TEERegister? {
        get { storedTEERegister?.value }
        set { storedTEERegister = newValue.map(Indirect.init) }
    }
    /// With image resolution on: the digest each container's image resolved to.
    public var images: [ImageStatus]?
    public var conditions: [Condition]?
    private var storedPolicyHash: CompactDigest?
    private var storedKeyRelease: Indirect<KeyReleaseStatus>?
    private var storedTEERegister: Indirect<TEERegister>?

    public init() {}

    /// The synthesized coding, with the stored members under their own names.
    private enum CodingKeys: String, CodingKey {
        case observedGeneration, deploymentName, replicas, readyReplicas, storedPolicyHash = "policyHash", policyMode,
            storedKeyRelease = "keyRelease", platform, initDataDigest, storedTEERegister = "teeRegister", images, conditions
    }

    public func condition(_ type: String) -> Condition? {
        conditions?.first { $0.type == type }
    }
}

/// One container's image as the registry resolved it.
public struct ImageStatus: Codable, Sendable, Hashable {
    /// The container's name.
    public var name: String
    /// The image as the template writes it.
    public var reference: String
    public var digest: String

    public init(name: String, reference: String, digest: String) {
        self.name = name
        self.reference = reference
        self.digest = digest
    }
}

/// The register a TEE measures initdata into, and the value a verifier must expect there.
public struct TEERegister: Codable, Sendable, Hashable {
    /// snp, tdx or az-snp-vtpm.
    public var tee: String
    /// HOST_DATA, MRCONFIGID or PCR8.
    public var name: String
    /// Lowercase hex.
    public var value: String

    public init(tee: String, name: String, value: String) {
        self.tee = tee
        self.name = name
        self.value = value
    }
}

public struct KeyReleaseStatus: Codable, Sendable, Hashable {
    /// Policy hashes (AKS) or initdata digests (CoCo) the key release allows.
    public var allowedHashes: [String]
    /// Unmanaged Key Vault: the ConfigMap holding release-policy.json.
    public var configMapName: String?
    /// The Key Vault key's URL, or the KBS's URL (CoCo).
    public var keyID: String
    /// CoCo: the KBS resources (repository/type/tag) bound to this workload.
    public var resources: [String]?
    /// "Managed" or "Unmanaged".
    public var releasePolicy: String?
    /// Managed: this workload's hashes that cwo put in the key's release policy.
    public var publishedHashes: [String]?
    /// Managed: the key version cwo last wrote or checked.
    public var keyVersion: String?

    public init(allowedHashes: [String], configMapName: String?, keyID: String, releasePolicy: String? = nil) {
        self.allowedHashes = allowedHashes
        self.configMapName = configMapName
        self.keyID = keyID
        self.releasePolicy = releasePolicy
    }
}

/// Names that other tools rely on: labels, annotations, field manager, condition types and reasons.
public enum Names {
    public static let fieldManager = "cwo"
    public static let managedByLabel = "app.kubernetes.io/managed-by"
    public static let managedByValue = "cwo"
    public static let workloadLabel = "cwo.dev/workload"
    public static let defaultRuntimeClass = "kata-cc"
    /// On every object cwo applies: the digest of what cwo last meant it to be (see `AppliedIntent`).
    public static let intentAnnotation = "cwo.dev/applied-intent"
    /// Digests are taken with a pod template's policy annotation (~50 KB) replaced by its own digest, as
    /// the cache keeps Deployments (`PolicyDigest`).
    public static let intent = AppliedIntent(annotation: intentAnnotation, condense: PolicyDigest.project(object:))
}

public enum ConditionType {
    public static let ready = "Ready"
    public static let runtimeClassAvailable = "RuntimeClassAvailable"
    public static let deploymentAvailable = "DeploymentAvailable"
    public static let policyReady = "PolicyReady"
    public static let attestationConfigured = "AttestationConfigured"
    public static let keyReleaseBound = "KeyReleaseBound"
    /// CoCo: the initdata document is on the pod template.
    public static let initDataReady = "InitDataReady"
    /// With image resolution on: the registry gave the facts of every template image.
    public static let imagesResolved = "ImagesResolved"

    /// Every condition type cwo writes.
    public static let all: Set<String> = [
        ready, runtimeClassAvailable, deploymentAvailable, policyReady, attestationConfigured, keyReleaseBound, initDataReady, imagesResolved,
    ]
}

public enum Reason {
    public static let invalidSpec = "InvalidSpec"
    public static let runtimeClassFound = "RuntimeClassFound"
    public static let runtimeClassNotFound = "RuntimeClassNotFound"
    public static let deploymentPending = "DeploymentPending"
    public static let deploymentNotObserved = "DeploymentNotObserved"
    /// The API server refused cwo's Deployment (admission, quota, RBAC, validation); the message is its answer.
    public static let deploymentRejected = "DeploymentRejected"
    public static let ready = "Ready"
    public static let policyGenerated = "PolicyGenerated"
    public static let policyProvided = "PolicyProvided"
    public static let allowAllInsecure = "AllowAllInsecure"
    public static let initDataGenerated = "InitDataGenerated"
    public static let initDataTooLarge = "InitDataTooLarge"
}
