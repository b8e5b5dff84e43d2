import ControllerRuntime
import KubernetesClient
import Logging

/// The running operator: caches of workloads and of the objects cwo made for them (selected by the
/// `app.kubernetes.io/managed-by=cwo` label, never all of a kind), wired to the workload controller.
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

    public let caches = WorkloadCaches()
    public let controller: Controller
    public let reconciler: WorkloadReconciler

    public init(
        client: KubeClient, options: Options, logger: Logger, queueObserver: (any WorkQueueObserver)? = nil,
        observer: (any ControllerObserver)? = nil, events: EventRecorder? = nil,
        keyRelease: KeyReleaseManager? = nil, kbs: KBSBroker? = nil, images: ImageResolver? = nil
    ) {
        reconciler = WorkloadReconciler(
            client: client, caches: caches, logger: logger, events: events, keyRelease: keyRelease, kbs: kbs, images: images)
        controller = Controller(
            name: Self.controllerName, reconciler: reconciler, options: .init(concurrency: options.concurrency), logger: logger,
            queueObserver: queueObserver, observer: observer)

        func reflectorOptions<T>(_ type: T.Type, namespace: String?, managed: Bool) -> Reflector<T>.Options {
            var result = Reflector<T>.Options(namespace: namespace, labelSelector: managed ? "\(Names.managedByLabel)=\(Names.managedByValue)" : nil)
            result.idleTimeout = options.reflector.idleTimeout
            return result
        }
        var workloadOptions = options.reflector
        workloadOptions.namespace = options.namespace
        let workloads = Reflector(client: client, resource: ConfidentialWorkload.resource, options: workloadOptions, store: caches.workloads, logger: logger)
        let deployments = Reflector(client: client, resource: .deployments, options: reflectorOptions(Deployment.self, namespace: options.namespace, managed: true), store: caches.deployments, logger: logger)
        let replicaSets = Reflector(client: client, resource: .replicaSets, options: reflectorOptions(ReplicaSetSummary.self, namespace: options.namespace, managed: true), store: caches.replicaSets, logger: logger)
        let configMaps = Reflector(client: client, resource: .configMaps, options: reflectorOptions(UntypedObject.self, namespace: options.namespace, managed: true), store: caches.configMaps, logger: logger)
        let serviceAccounts = Reflector(client: client, resource: .serviceAccounts, options: reflectorOptions(UntypedObject.self, namespace: options.namespace, managed: true), store: caches.serviceAccounts, logger: logger)
        let runtimeClasses = Reflector(client: client, resource: .runtimeClasses, options: reflectorOptions(UntypedObject.self, namespace: nil, managed: false), store: caches.runtimeClasses, logger: logger)

        let owner: @Sendable (StoreChange<Deployment>) -> [ObjectKey] = Controller.controllerOwner(kind: ConfidentialWorkload.kind, apiVersion: ConfidentialWorkload.apiVersion)
        // cwo's own status writes come back as updates: they need no reconcile.
        controller.watch(workloads) { change in change.changesSpecOrMetadata ? [ObjectKey(change.object)] : [] }
        // The echo of cwo's own apply needs no reconcile (it reconciled from the apply's answer); any other
        // change of its Deployment (a rollout's status, a hand edit, a deletion) does. An echo that holds
        // all cwo applied (nothing, e.g. a mutating webhook, changed a field cwo sets) is settled: the
        // cache keeps its summary only. An event that comes while the apply is in flight (often its echo,
        // which the server sends as it answers) is left to the reconcile writing it, which knows from the
        // answer whether it was the echo.
        let memories = reconciler.memories
        let reconciler = reconciler
        controller.watch(deployments) { change in
            let keys = owner(change)
            let version = change.object.metadata.resourceVersion
            for key in keys { memories.childEvent(key, Resource.deployments.plural) }
            if case .deleted = change { return keys }
            return keys.filter { key in
                switch memories.echo(key, version: version) {
                case .none: return true
                case .held: return false
                case .echo(let applied): return reconciler.settleEcho(change.object, applied: applied, of: key)
                }
            }
        }
        let bindingOwner: @Sendable (StoreChange<UntypedObject>) -> [ObjectKey] = Controller.controllerOwner(
            kind: ConfidentialWorkload.kind, apiVersion: ConfidentialWorkload.apiVersion)
        for (reflector, resource) in [(configMaps, Resource.configMaps), (serviceAccounts, Resource.serviceAccounts)] {
            controller.watch(reflector) { change in
                let keys = bindingOwner(change)
                for key in keys { memories.childEvent(key, resource.plural) }
                return keys
            }
        }
        // ReplicaSets carry the pod template's labels: a rollout's progress changes the allowed hashes.
        controller.watch(replicaSets) { change in
            guard let name = change.object.metadata.labels?[Names.workloadLabel] else { return [] }
            return [ObjectKey(namespace: change.object.metadata.namespace ?? "", name: name)]
        }
        let workloadStore = caches.workloads
        controller.watch(runtimeClasses) { change in
            // A RuntimeClass appearing or going changes RuntimeClassAvailable of every workload that names it.
            let name = change.object.metadata.name ?? ""
            return workloadStore.list().compactMap { workload in
                let wanted = workload.spec?["runtimeClassName"]?.stringValue ?? Names.defaultRuntimeClass
                return wanted == name ? ObjectKey(workload) : nil
            }
        }
    }

    /// Runs until cancelled (and the image resolver beside the controller, telling it of facts that
    /// arrive), forgetting the desired states of workloads that went quiet every `sweep`.
    public func run(sweep: Duration = .seconds(30)) async {
        let images = reconciler.images
        let queue = controller.queue
        await images?.notify { await queue.add($0) }
        let memories = reconciler.memories
        await withTaskGroup(of: Void.self) { group in
            if let images { group.addTask { await images.run() } }
            group.addTask {
                while (try? await Task.sleep(for: sweep)) != nil { memories.forgetQuietDesiredStates() }
            }
            await controller.run()
            images?.finish()
            group.cancelAll()
        }
    }

    /// One sweep of `run`'s: forgets the desired states no reconcile used since the previous sweep (they
    /// are built again when needed); returns how many.
    @discardableResult
    public func forgetQuietDesiredStates() -> Int {
        reconciler.memories.forgetQuietDesiredStates()
    }

    /// True once every cache has listed.
    public var hasSynced: Bool { controller.hasSynced }

    /// Workloads by the status of their Ready condition (for the `cwo_workloads` gauge).
    /// Counted in place: every scrape of /metrics asks, and copying 10 000 cached workloads out for it
    /// cost megabytes of heap each time.
    public func workloadsByReady() -> [String: Int] {
        caches.workloads.reduce(into: [:]) { counts, workload in
            counts[workload.status?.condition(ConditionType.ready)?.status.rawValue ?? "Unknown", default: 0] += 1
        }
    }
}
