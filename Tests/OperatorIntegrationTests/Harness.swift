import ConfidentialWorkload
import ControllerRuntime
import Foundation
import KubernetesClient
import Logging
import Synchronization
import TestSupport

/// Counts the operator's own API requests by method.
final class RequestCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    func record(_ method: String) { counts.withLock { $0[method, default: 0] += 1 } }
    var writes: Int { counts.withLock { $0.filter { ["POST", "PUT", "PATCH", "DELETE"].contains($0.key) }.values.reduce(0, +) } }
    var snapshot: [String: Int] { counts.withLock { $0 } }
}

/// One operator, in this process, watching one namespace of the shared test cluster.
final class Harness: Sendable {
    let cluster: TestCluster
    let admin: KubeClient
    let operatorClient: KubeClient
    let namespace: String
    let requests = RequestCounter()
    let workloadOperator: WorkloadOperator
    let events: EventRecorder?
    private let task = Mutex<Task<Void, Never>?>(nil)

    static let workloads = ConfidentialWorkload.resource

    /// A fresh namespace named after `name`, or `namespace` when given (a second operator over the same workloads).
    init(
        _ name: String, concurrency: Int = 4, keyRelease: KeyReleaseManager? = nil, kbs: KBSBroker? = nil, recordEvents: Bool = false,
        namespace existing: String? = nil, images: ImageResolver? = nil
    ) async throws {
        cluster = try await TestCluster.shared()
        admin = try cluster.adminClient()
        try await cluster.installCRDs(admin)
        if let existing { namespace = existing } else { namespace = try await admin.makeTestNamespace(name) }
        let counter = requests
        operatorClient = try KubeClient(
            configuration: try ClientConfiguration.load(kubeconfig: cluster.adminKubeconfig),
            observer: { method, _, _, _ in counter.record(method) })
        var logger = Logger(label: "cwo.test")
        logger.logLevel = .warning
        var options = WorkloadOperator.Options(namespace: namespace, concurrency: concurrency)
        options.reflector.idleTimeout = .seconds(60)
        events = recordEvents ? EventRecorder(client: operatorClient, controller: "cwo", instance: "cwo-test", logger: logger) : nil
        workloadOperator = WorkloadOperator(
            client: operatorClient, options: options, logger: logger, events: events, keyRelease: keyRelease, kbs: kbs, images: images)
    }

    /// Runs `body` with a started operator and stops it before returning, however `body` ends: one
    /// test's operator never runs into the next.
    static func with<T>(
        _ name: String, concurrency: Int = 4, keyRelease: KeyReleaseManager? = nil, kbs: KBSBroker? = nil, recordEvents: Bool = false,
        start: Bool = true, namespace: String? = nil, images: ImageResolver? = nil, _ body: (Harness) async throws -> T
    ) async throws -> T {
        let harness = try await Harness(
            name, concurrency: concurrency, keyRelease: keyRelease, kbs: kbs, recordEvents: recordEvents, namespace: namespace, images: images)
        try await harness.ensureRuntimeClass("kata-cc")
        return try await harness.running(start: start) { try await body(harness) }
    }

    /// Starts the operator (unless `start` is false), runs `body`, and stops the operator and the clients
    /// before returning, however `body` ends.
    func running<T>(start: Bool = true, _ body: () async throws -> T) async throws -> T {
        if start { self.start() }
        do {
            let result = try await body()
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    /// Replaces the workload's spec (as `kubectl apply` of a whole manifest does, or a GitOps sync).
    func replaceSpec(_ name: String, _ spec: JSONValue) async throws {
        let _: UntypedObject = try await admin.patch(
            Self.workloads, namespace: namespace, name: name, .json([["op": "replace", "path": "/spec", "value": spec]]))
    }

    /// What `cwo render` prints for the workload as it now is (against this 1.20 server: no native sidecars).
    func rendered(_ name: String) async throws -> DesiredState {
        try DesiredState.build(try await workload(name), context: BuildContext(nativeSidecars: false)).get()
    }

    /// Waits until the live Deployment holds exactly what cwo renders for the workload, and returns it.
    func waitForRenderedDeployment(_ name: String, timeout: Duration = .seconds(20)) async throws -> UntypedObject {
        let desired = try await rendered(name).deployment
        return try await eventually(timeout: timeout, "\(name): the Deployment as rendered") { () -> UntypedObject? in
            guard let live = try await self.deployment(name),
                live.metadata.annotations?[Names.intentAnnotation] == desired[path: ["metadata", "annotations", Names.intentAnnotation]]?.stringValue,
                AppliedState.contains(live.raw, desired)
            else { return nil }
            return live
        }
    }

    func start() {
        let workloadOperator = self.workloadOperator
        task.withLock { $0 = Task { await workloadOperator.run() } }
    }

    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
        await events?.shutdown()
        try? await operatorClient.shutdown()
        try? await admin.shutdown()
    }

    /// Makes sure a RuntimeClass exists (cluster-scoped, shared by tests).
    func ensureRuntimeClass(_ name: String) async throws {
        let body: JSONValue = ["apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": ["name": .string(name)], "handler": "kata-cc"]
        let _: UntypedObject = try await admin.apply(.runtimeClasses, name: name, body, fieldManager: "cwo-tests", force: true)
    }

    func createWorkload(_ name: String, spec: JSONValue) async throws -> ConfidentialWorkload {
        let body: JSONValue = ["apiVersion": "cwo.dev/v1alpha1", "kind": "ConfidentialWorkload", "metadata": ["name": .string(name)], "spec": spec]
        return try await admin.create(Self.workloads, namespace: namespace, try body.decode(as: ConfidentialWorkload.self))
    }

    func workload(_ name: String) async throws -> ConfidentialWorkload {
        try await admin.get(Self.workloads, namespace: namespace, name: name)
    }

    /// Waits until the workload no longer exists (only NotFound counts; other errors are thrown).
    func waitGone(_ name: String, timeout: Duration) async throws {
        _ = try await eventually(timeout: timeout, "\(name) is gone") { () -> Bool? in
            do {
                _ = try await self.workload(name)
                return nil
            } catch let error as KubeError where error.reason == .notFound {
                return true
            }
        }
    }

    /// Waits for an Event with `reason` in the namespace (the harness must record events).
    func waitForEvent(reason: String, timeout: Duration = .seconds(10)) async throws -> UntypedObject {
        try await eventually(timeout: timeout, "a \(reason) event") { () -> UntypedObject? in
            let list: ObjectList<UntypedObject> = try await self.admin.list(.events, namespace: self.namespace)
            return list.items.first { $0.raw["reason"] == .string(reason) }
        }
    }

    func deployment(_ name: String) async throws -> UntypedObject? {
        do {
            return try await admin.get(.deployments, namespace: namespace, name: name)
        } catch let error as KubeError where error.reason == .notFound {
            return nil
        }
    }

    /// The live Deployment's generation, what its controller observed, and its version (for timeouts' messages).
    func deploymentState(_ name: String) async -> String {
        guard let deployment = try? await self.deployment(name) else { return "none" }
        let observed = deployment.raw[path: ["status", "observedGeneration"]].map { "\($0)" } ?? "-"
        return "generation \(deployment.metadata.generation.map(String.init) ?? "-"), observed \(observed), resourceVersion \(deployment.metadata.resourceVersion ?? "-")"
    }

    /// Waits until the workload's status was written for its current generation and `check` holds; a
    /// timeout says what the workload and its Deployment last showed.
    func waitForStatus(_ name: String, _ what: String, timeout: Duration = .seconds(30), _ check: @escaping @Sendable (WorkloadStatus) -> Bool) async throws -> ConfidentialWorkload {
        do {
            return try await eventually(timeout: timeout, "\(name): \(what)") { () -> ConfidentialWorkload? in
                let workload = try await self.workload(name)
                guard let status = workload.status, status.observedGeneration == workload.metadata.generation, check(status) else { return nil }
                return workload
            }
        } catch let error as TestClusterError {
            // Say what the workload last showed: a timeout alone does not tell a slow server from a wrong status.
            let last = try? await workload(name)
            let conditions = last?.status?.conditions?.map { "\($0.type)=\($0.status.rawValue) \($0.reason): \($0.message)" } ?? []
            throw TestClusterError(message: error.message + "; last seen: generation \(last?.metadata.generation.map(String.init) ?? "-"), observed "
                + "\(last?.status?.observedGeneration.map(String.init) ?? "-"), conditions \(conditions); its Deployment: \(await deploymentState(name))")
        }
    }
}

func container(_ name: String = "app", image: String = "nginx:1.27") -> JSONValue {
    ["name": .string(name), "image": .string(image)]
}

func simpleSpec(replicas: Int = 0, image: String = "nginx:1.27", runtimeClass: String? = nil) -> JSONValue {
    var spec: JSONValue = ["replicas": .number(Double(replicas)), "template": ["spec": ["containers": [container(image: image)]]]]
    if let runtimeClass { spec["runtimeClassName"] = .string(runtimeClass) }
    return spec
}
