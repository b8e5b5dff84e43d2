import ControllerRuntime
import KubernetesClient
import Logging

/// The running operator: caches for workloads, their Deployments and RuntimeClasses, wired to the
/// workload controller.
public final class WorkloadOperator: Sendable {
    public struct Options: Sendable {
        /// Watch one namespace; nil watches all.
        public var namespace: String?
        public var concurrency = 4
        public var reflector = Reflector<ConfidentialWorkload>.Options()

        public init(namespace: String? = nil, concurrency: Int = 4) {
            self.namespace = namespace
            self.concurrency = concurrency
        }
    }

    public static let controllerName = "confidentialworkload"

    public let workloads: Reflector<ConfidentialWorkload>
    public let deployments: Reflector<Deployment>
    public let runtimeClasses: Reflector<UntypedObject>
    public let controller: Controller
    public let reconciler: WorkloadReconciler

    public init(
        client: KubeClient, options: Options, logger: Logger, queueObserver: (any WorkQueueObserver)? = nil,
        observer: (any ControllerObserver)? = nil
    ) {
        var workloadOptions = options.reflector
        workloadOptions.namespace = options.namespace
        workloads = Reflector(client: client, resource: ConfidentialWorkload.resource, options: workloadOptions, logger: logger)

        // Only Deployments cwo manages are cached: never every Deployment of the cluster.
        var deploymentOptions = Reflector<Deployment>.Options(
            namespace: options.namespace, labelSelector: "\(Names.managedByLabel)=\(Names.managedByValue)")
        deploymentOptions.idleTimeout = options.reflector.idleTimeout
        deployments = Reflector(client: client, resource: .deployments, options: deploymentOptions, logger: logger)

        var runtimeClassOptions = Reflector<UntypedObject>.Options()
        runtimeClassOptions.idleTimeout = options.reflector.idleTimeout
        runtimeClasses = Reflector(client: client, resource: .runtimeClasses, options: runtimeClassOptions, logger: logger)

        reconciler = WorkloadReconciler(
            client: client, workloads: workloads.store, deployments: deployments.store, runtimeClasses: runtimeClasses.store, logger: logger)
        controller = Controller(
            name: Self.controllerName, reconciler: reconciler, options: .init(concurrency: options.concurrency), logger: logger,
            queueObserver: queueObserver, observer: observer)

        controller.watch(workloads) { change in
            if case .deleted = change { return [ObjectKey(change.object)] }
            return [ObjectKey(change.object)]
        }
        controller.watch(deployments, map: Controller.controllerOwner(kind: ConfidentialWorkload.kind, apiVersion: ConfidentialWorkload.apiVersion))
        let workloadStore = workloads.store
        controller.watch(runtimeClasses) { change in
            // A RuntimeClass appearing or going changes RuntimeClassAvailable of every workload that names it.
            let name = change.object.metadata.name ?? ""
            return workloadStore.list().compactMap { workload in
                let wanted = workload.spec?["runtimeClassName"]?.stringValue ?? Names.defaultRuntimeClass
                return wanted == name ? ObjectKey(workload) : nil
            }
        }
    }

    /// Runs until cancelled.
    public func run() async {
        await controller.run()
    }

    /// True once every cache has listed.
    public var hasSynced: Bool { controller.hasSynced }
}
