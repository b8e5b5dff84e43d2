import ControllerRuntime
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient
import Logging
import TrusteeKBS

/// The Trustee KBS cwo manages (`cwo run --kbs-url ... --kbs-admin-key ...`): one resource policy for
/// every CoCo workload that names it, written only when it changed.
public actor KBSBroker {
    public nonisolated let url: String
    let client: KBSAdminClient?
    /// Why there is no client (cwo runs without a managed KBS).
    let unavailable: String?
    /// Each workload's grant (by `namespace/name`); nil until seeded from the cluster.
    var grants: [String: ResourcePolicy.Grant]?
    /// The policy the KBS holds, as last read or written; nil: not known.
    var held: String?
    /// The policy composed from `grants` last time.
    var composed: String?
    /// Writes are serialized: each compose-and-write waits for the one before.
    private var tail: Task<Void, Never>?

    public init(client: KBSAdminClient) {
        self.url = client.options.url
        self.client = client
        self.unavailable = nil
    }

    /// A broker for workloads that name a KBS cwo was not given an admin key for.
    public init(unmanaged reason: String) {
        self.url = ""
        self.client = nil
        self.unavailable = reason
    }

    public func shutdown() async throws {
        try await client?.shutdown()
    }

    public struct Failure: Error, Sendable {
        public var reason: String
        public var message: String
    }

    /// Sets (or with nil removes) one workload's grant and brings the KBS to the composed policy.
    /// `seed` gives every workload's grant as the cluster shows it, read only the first time.
    /// Returns whether the KBS was written.
    func update(_ workload: String, _ grant: ResourcePolicy.Grant?, seed: @escaping @Sendable () -> [String: ResourcePolicy.Grant]) async -> Result<Bool, Failure> {
        let previous = tail
        let task = Task { () -> Result<Bool, Failure> in
            await previous?.value
            return await self.write(workload, grant, seed: seed)
        }
        tail = Task { _ = await task.value }
        return await task.value
    }

    private func write(_ workload: String, _ grant: ResourcePolicy.Grant?, seed: @Sendable () -> [String: ResourcePolicy.Grant]) async -> Result<Bool, Failure> {
        guard let client else { return .failure(Failure(reason: "KBSNotManaged", message: unavailable ?? "")) }
        // Most reconciles change nothing: no need to compose the policy of every workload again.
        if let grants, let held, held == composed, grants[workload] == grant { return .success(false) }
        var book = grants ?? seed()
        book[workload] = grant
        grants = book
        let policy = ResourcePolicy.compose(Array(book.values))
        composed = policy
        do {
            if held == nil { held = try await client.resourcePolicy() ?? "" }
            if held == policy { return .success(false) }
            try await client.setResourcePolicy(policy)
            held = policy
            return .success(true)
        } catch {
            // What the KBS holds is unknown after a failure: read it again next time.
            held = nil
            return .failure(Self.failure(error))
        }
    }

    static func failure(_ error: KBSError) -> Failure {
        switch error.kind {
        case .unreachable: Failure(reason: "KBSUnreachable", message: "the KBS did not answer: \(error)")
        case .unauthorized: Failure(reason: "KBSUnauthorized", message: "the KBS refused cwo's admin token (is cwo's admin key the one the KBS trusts?): \(error)")
        case .rejected, .configuration: Failure(reason: "KBSRejected", message: "the KBS rejected the resource policy: \(error)")
        }
    }
}

/// Key release on upstream Confidential Containers: the KBS resource policy allows a workload's
/// resources only to its allowed initdata digests. The new digest is allowed before the Deployment
/// carries it, old ones are withdrawn once their pods are gone, and a deleted workload's grant is
/// withdrawn before its finalizer goes.
struct TrusteeRelease: KeyReleaseBackend {
    let broker: KBSBroker
    let caches: WorkloadCaches
    let memories: WorkloadMemories
    let events: WorkloadEventSink
    let finalizer: Finalizer
    let resync: Duration

    static let finalizerName = "cwo.dev/kbs-resource-policy"

    init(broker: KBSBroker, caches: WorkloadCaches, memories: WorkloadMemories, events: WorkloadEventSink, client: KubeClient, resync: Duration = .seconds(600)) {
        self.broker = broker
        self.caches = caches
        self.memories = memories
        self.events = events
        self.finalizer = Finalizer(Self.finalizerName, resource: ConfidentialWorkload.resource, client: client)
        self.resync = resync
    }

    func sync(_ workload: ConfidentialWorkload, key: ObjectKey, state: DesiredState, logger: Logger) async throws -> KeyReleaseOutcome? {
        guard state.spec.platform == .coco, let kbs = state.spec.kbs else {
            // Switched off: withdraw this workload's grant, then its finalizer.
            if finalizer.isSet(on: workload.metadata) { _ = try await finalize(workload, key: key, logger: logger) }
            return nil
        }
        let tee = state.spec.coco?.tee ?? .snp
        guard kbs.url == broker.url else {
            return KeyReleaseOutcome(
                condition: ConditionInput(
                    ConditionType.keyReleaseBound, .true, "KBSNotManaged",
                    "cwo does not manage \(kbs.url) (cwo run --kbs-url): apply this workload's resource policy yourself (cwo policy --output resource-policy)"),
                publishedHashes: nil, keyVersion: nil, recheck: resync)
        }
        let grant = ResourcePolicy.Grant(workload: "\(key)", paths: kbs.resources.map(\.path), tee: tee, digests: state.allowedHashes)
        let uid = workload.metadata.uid
        try await memories.ensure(finalizer, on: workload)
        let caches = self.caches
        let url = kbs.url
        switch await broker.update("\(key)", grant, seed: { Self.grants(in: caches, kbs: url) }) {
        case .success(let wrote):
            if memories.read(key, uid: uid).keyReleaseFailures > 0 { memories.update(key, uid: uid) { $0.keyReleaseFailures = 0 } }
            if wrote {
                logger.info("updated KBS resource policy", metadata: ["kbs": "\(kbs.url)", "digests": "\(state.allowedHashes)"])
                events.emit(.resourcePolicyUpdated(kbs: kbs.url, digests: state.allowedHashes), on: workload)
            }
            return KeyReleaseOutcome(
                condition: ConditionInput(
                    ConditionType.keyReleaseBound, .true, "ResourcePolicySynced",
                    "\(kbs.url) releases \(kbs.resources.map(\.path).joined(separator: ", ")) to initdata \(state.allowedHashes.count == 1 ? "digest" : "digests") \(state.allowedHashes.joined(separator: ", "))"),
                publishedHashes: state.allowedHashes, keyVersion: nil, recheck: resync)
        case .failure(let failure):
            logger.warning("kbs", metadata: ["reason": "\(failure.reason)", "error": "\(failure.message)"])
            let attempts = memories.recordFailure(workload)
            return KeyReleaseOutcome(
                condition: ConditionInput(ConditionType.keyReleaseBound, .false, failure.reason, failure.message),
                publishedHashes: workload.status?.keyRelease?.publishedHashes, keyVersion: nil,
                recheck: Backoff.jittered(base: .seconds(1), attempt: attempts, cap: .seconds(120)))
        }
    }

    func finalize(_ workload: ConfidentialWorkload, key: ObjectKey, logger: Logger) async throws -> ReconcileResult {
        guard finalizer.isSet(on: workload.metadata) else { return .done }
        let caches = self.caches
        let url = broker.url
        switch await broker.update("\(key)", nil, seed: { Self.grants(in: caches, kbs: url) }) {
        case .success(let wrote):
            if wrote { events.emit(.resourcePolicyUpdated(kbs: url, digests: []), on: workload) }
        case .failure(let failure) where failure.reason != "KBSNotManaged":
            let attempts = memories.recordFailure(workload)
            if attempts == 1 { events.emit(.cleanupRefused(reason: failure.reason, keyID: url, message: failure.message), on: workload) }
            return .requeue(after: Backoff.jittered(base: .seconds(1), attempt: attempts, cap: .seconds(60)))
        case .failure:
            break
        }
        try await memories.release(finalizer, from: workload)
        return .done
    }

    /// Every CoCo workload's grant on `kbs` as the cluster shows it: the digests its status allowed,
    /// plus those its pods still run. Read once, when cwo first writes the KBS, so a restart composes
    /// the same policy as before and writes nothing.
    static func grants(in caches: WorkloadCaches, kbs url: String) -> [String: ResourcePolicy.Grant] {
        var grants: [String: ResourcePolicy.Grant] = [:]
        for workload in caches.workloads.list() where workload.metadata.deletionTimestamp == nil {
            var ignored: [SpecError] = []
            let runtimeClass = workload.spec?["runtimeClassName"]?.stringValue ?? Names.defaultRuntimeClass
            guard let kbs = KBSSettings.parse(workload.spec?["kbs"], errors: &ignored), kbs.url == url else { continue }
            let key = ObjectKey(workload)
            let tee = CoCoSettings.parse(workload.spec?["coco"], runtimeClass: runtimeClass, errors: &ignored).tee
            let running = caches.replicaSets.indexed("\(key.namespace)/\(key.name)").compactMap { replicaSet in
                replicaSet.replicas > 0 ? replicaSet.templateAnnotations[InitData.digestAnnotation] : nil
            }
            let digests = Set(workload.status?.keyRelease?.allowedHashes ?? []).union(running)
            guard !digests.isEmpty else { continue }
            grants["\(key)"] = ResourcePolicy.Grant(workload: "\(key)", paths: kbs.resources.map(\.path), tee: tee, digests: digests.sorted())
        }
        return grants
    }
}
