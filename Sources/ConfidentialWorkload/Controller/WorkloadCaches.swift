import ControllerRuntime
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
        workloads = Store(transform: { $0.compacted() })
        // Deployments are kept with the policy annotation (~10 KB each) replaced by its digest, and the
        // spec serialized (a quarter of the memory of the tree; parsed once per reconcile).
        deployments = Store(transform: { deployment in
            var projected = deployment
            projected.spec = PolicyDigest.project(deployment: deployment.spec)
            return projected.compacted()
        })
        // ReplicaSets carry the pod template's labels: index them by the workload they run.
        replicaSets = Store(index: { replicaSet in
            replicaSet.metadata.labels?[Names.workloadLabel].map { "\(replicaSet.metadata.namespace ?? "")/\($0)" }
        })
        configMaps = Store()
        serviceAccounts = Store()
        runtimeClasses = Store()
    }
}
