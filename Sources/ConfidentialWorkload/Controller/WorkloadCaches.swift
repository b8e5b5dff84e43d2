import ControllerRuntime
import FoundationExtras
import KubernetesClient

/// The caches a reconcile reads; only the workload's own objects are in them.
public struct WorkloadCaches: Sendable {
    public var workloads: Store<ConfidentialWorkload>
    public var deployments: Store<Deployment>
    public var replicaSets: Store<ReplicaSetSummary>
    public var configMaps: Store<UntypedObject>
    public var serviceAccounts: Store<UntypedObject>
    public var runtimeClasses: Store<UntypedObject>

    public init() {
        // Workloads with their spec serialized (read a few times per reconcile, kept for every workload).
        workloads = Store(transform: Self.cached)
        // A status or metadata update of a settled Deployment keeps its spec summary (same generation).
        deployments = Store(transform: Self.cached, carry: { $0.carryingSpecSummary(of: $1) })
        // ReplicaSets carry the pod template's labels: index them by the workload they run.
        replicaSets = Store(index: { replicaSet in
            replicaSet.metadata.labels?[Names.workloadLabel].map { "\(replicaSet.metadata.namespace ?? "")/\($0)" }
        })
        configMaps = Store()
        serviceAccounts = Store()
        runtimeClasses = Store()
    }

    /// kubectl's client-side apply (and tools that use it, Argo CD's default sync among them) keeps the
    /// whole manifest applied in this annotation: a second copy of the spec that cwo never reads.
    static let lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

    /// A workload as a watch event brings it into the cache: its spec serialized, without kubectl's copy
    /// of its manifest (cwo reads no annotation of the workload, and writes its metadata only by patches
    /// of the fields it sets: finalizers).
    /// Its conditions are shared with other workloads' equal ones, but for those that name the workload
    /// (its Deployment's, and `Ready` when it repeats that one), which only it holds.
    public static func cached(_ workload: ConfidentialWorkload) -> ConfidentialWorkload {
        var cached = workload.compacted()
        if cached.metadata.annotations?.removeValue(forKey: lastAppliedAnnotation) != nil, cached.metadata.annotations?.isEmpty == true {
            cached.metadata.annotations = nil
        }
        if let conditions = cached.status?.conditions {
            let name = cached.metadata.name ?? ""
            cached.status?.conditions = conditions.map { !name.isEmpty && $0.message.containsBytes(name) ? $0 : $0.shared() }
        }
        return cached
    }

    /// A Deployment as a watch event brings it into the cache: projected, its spec serialized, its status
    /// conditions shared with other Deployments' equal ones but for those that name it (`Progressing`
    /// names its ReplicaSet).
    public static func cached(_ deployment: Deployment) -> Deployment {
        var cached = project(deployment).compacted()
        if let conditions = cached.status?.conditions {
            let name = cached.metadata.name ?? ""
            cached.status?.conditions = conditions.map { !name.isEmpty && ($0.message ?? "").containsBytes(name) ? $0 : $0.shared() }
        }
        return cached
    }

    /// A Deployment as the cache compares it: the policy annotation (~50 KB) replaced by its digest.
    static func project(_ deployment: Deployment) -> Deployment {
        guard !deployment.specUnread else { return deployment }  // read as JSON when a reconcile needs it
        var projected = deployment
        projected.spec = PolicyDigest.project(deployment: deployment.spec)
        return projected
    }

    /// Once a reconcile found the cached Deployment at `resourceVersion` to contain cwo's intent, only
    /// its digest annotation (in the metadata) is compared until the Deployment changes: its spec (~2 KB
    /// serialized) is replaced by what the reconciler still reads (the template's short annotations, the
    /// images). A newer version from the watch arrives whole and is checked whole again.
    @discardableResult
    func settleDeployment(_ key: ObjectKey, at resourceVersion: String?) -> Bool {
        deployments.update(key, ifVersion: resourceVersion, Self.settled)
    }

    /// A cached Deployment as it is kept once settled: the summary of its spec a reconcile still reads.
    public static func settled(_ deployment: Deployment) -> Deployment {
        guard !deployment.specIsSummary, let template = deployment.spec?["template"] else { return deployment }
        var summary: [String: JSONValue] = [:]
        if let annotations = template[path: ["metadata", "annotations"]]?.objectValue {
            let short = annotations.filter { ($0.value.stringValue?.utf8.count ?? 0) <= ReplicaSetSummary.maximumKeptValue }
            summary["metadata"] = ["annotations": .object(short)]
        }
        var podSpec: [String: JSONValue] = [:]
        for list in ["initContainers", "containers"] {
            guard let containers = template[path: ["spec", list]]?.arrayValue else { continue }
            podSpec[list] = .array(containers.map { ["name": $0["name"] ?? .null, "image": $0["image"] ?? .null] })
        }
        summary["spec"] = .object(podSpec)
        return deployment.withSpecSummary(["template": .object(summary)])
    }
}
