import ControllerRuntime
import Foundation
import KubernetesClient
import Logging
import Synchronization

/// The caches a reconcile reads; only the workload's own objects are in them.
public struct WorkloadCaches: Sendable {
    public var workloads: Store<ConfidentialWorkload>
    public var deployments: Store<Deployment>
    public var replicaSets: Store<ReplicaSetSummary>
    public var configMaps: Store<UntypedObject>
    public var serviceAccounts: Store<UntypedObject>
    public var runtimeClasses: Store<UntypedObject>

    public init() {
        workloads = Store()
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

/// Reconciles one ConfidentialWorkload: reads the caches, computes the desired objects with the pure
/// builders, applies only what differs, and writes status only when it changed.
public final class WorkloadReconciler: Reconciler {
    let client: KubeClient
    let caches: WorkloadCaches
    let logger: Logger
    let now: @Sendable () -> String
    let events: EventRecorder?
    let metrics: OperatorMetrics?
    let keyRelease: KeyReleaseManager
    /// Our last writes, to recognise a cache that has not caught up with them yet.
    private let memo = Mutex<[String: Written]>([:])
    private let serverSupportsNativeSidecars = Mutex<Bool?>(nil)
    /// Per workload: what Key Vault was last brought to, so a converged workload costs no Key Vault call.
    private let keyReleaseMemo = Mutex<[ObjectKey: KeyReleaseMemo]>([:])
    /// Per workload: consecutive Key Vault failures (for the retry delay).
    private let keyReleaseFailures = Mutex<[ObjectKey: Int]>([:])
    /// Per workload: the last Key Vault failure and when to try again. Reconciles before then (e.g. the
    /// one cwo's own status write triggers) report it without calling Key Vault.
    private let keyReleaseHold = Mutex<[ObjectKey: KeyReleaseHold]>([:])

    struct KeyReleaseHold {
        var until: ContinuousClock.Instant
        var generation: Int64
        /// The server asked for the wait (Retry-After): kept even across spec edits.
        var serverAsked: Bool
        var condition: ConditionInput
        var release: KeyReleaseStatus
    }
    /// Per workload: the last desired state and what it was built from. Most reconciles (the ones cwo's
    /// own writes trigger) have the same inputs, and the policy need not be generated again.
    private let builds = Mutex<[ObjectKey: BuildMemo]>([:])

    struct BuildMemo {
        var uid: String?
        var spec: JSONValue?
        var context: BuildContext
        /// Without the Rego text and with an empty `deployment`: small enough to keep for every workload.
        var result: Result<DesiredState, SpecErrors>
        /// The Deployment as the cache keeps it (policy annotation as a digest), serialized. The full
        /// Deployment is built again to write it.
        var deployment: CompactJSON?

        var state: Result<DesiredState, SpecErrors> {
            result.map { kept in
                var state = kept
                state.deployment = deployment?.value ?? [:]
                return state
            }
        }
    }

    /// UIDs of workloads cwo has added its finalizer to (the cache may not show it yet).
    private let finalizerAdded = Mutex<Set<String>>([])

    struct KeyReleaseMemo {
        var keyID: String
        var allowed: [String]
        var published: [String]
        var keyVersion: String
        var at: ContinuousClock.Instant
    }

    /// A write cwo made: what it wrote (as a hash: the bodies themselves would double the memory per
    /// workload) and the resourceVersion the object had before. A hash collision could only delay a
    /// write until the cache catches up with the previous one.
    struct Written {
        var digest: Int
        var versionBefore: String?

        init(body: JSONValue, versionBefore: String?) {
            self.digest = body.hashValue
            self.versionBefore = versionBefore
        }

        func matches(_ body: JSONValue, versionBefore version: String?) -> Bool {
            versionBefore == version && digest == body.hashValue
        }
    }

    /// How often a workload with a Provided policy re-reads its ConfigMap (which cwo does not watch).
    public let providedPolicyRefresh: Duration = .seconds(60)

    public init(
        client: KubeClient, caches: WorkloadCaches, logger: Logger, events: EventRecorder? = nil, metrics: OperatorMetrics? = nil,
        keyRelease: KeyReleaseManager? = nil, now: @escaping @Sendable () -> String = { StatusBuilder.timestamp() }
    ) {
        self.client = client
        self.caches = caches
        self.logger = logger
        self.events = events
        self.metrics = metrics
        self.keyRelease = keyRelease ?? KeyReleaseManager(unavailable: "cwo runs without Key Vault access")
        self.now = now
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard let workload = caches.workloads.get(key) else {
            // Deleted: owner references let the garbage collector remove the children.
            memo.withLock { memo in memo = memo.filter { !$0.key.hasSuffix("|\(key)") } }
            keyReleaseMemo.withLock { _ = $0.removeValue(forKey: key) }
            keyReleaseFailures.withLock { _ = $0.removeValue(forKey: key) }
            keyReleaseHold.withLock { _ = $0.removeValue(forKey: key) }
            builds.withLock { _ = $0.removeValue(forKey: key) }
            return .done
        }
        var logger = self.logger
        logger[metadataKey: "workload"] = "\(key)"
        if workload.metadata.deletionTimestamp != nil {
            return try await finalize(workload, key: key, logger: logger)
        }

        var context = BuildContext(nativeSidecars: try await nativeSidecars())
        context.runningHashes = runningHashes(key)
        var result = ReconcileResult.done
        if workload.spec?[path: ["policy", "mode"]]?.stringValue == PolicySettings.Mode.provided.rawValue {
            try await readProvidedPolicy(workload, into: &context)
            result = .requeue(after: providedPolicyRefresh)
        }

        var deployment = caches.deployments.get(key)
        var observation = Observation(
            generation: workload.metadata.generation ?? 0, deploymentName: key.name, specErrors: nil, runtimeClassName: nil,
            runtimeClassExists: false, deployment: deployment)

        let desired = build(workload, key: key, context: context)
        switch desired {
        case .failure(let errors):
            // Leave a running Deployment alone: an invalid edit must not take a working workload down.
            observation.specErrors = errors
            logger.info("invalid spec", metadata: ["reason": "\(errors.reason)", "error": "\(errors)"])
        case .success(let state):
            // The cache keeps the Deployment's spec serialized: parse it once for this reconcile.
            let live = deployment?.comparable
            observation.runtimeClassName = state.spec.runtimeClassName
            observation.runtimeClassExists = caches.runtimeClasses.get(ObjectKey(namespace: "", name: state.spec.runtimeClassName)) != nil
            if let account = state.serviceAccount {
                try await apply(.serviceAccounts, account, live: caches.serviceAccounts.get(key)?.raw, version: caches.serviceAccounts.get(key)?.resourceVersion, key: key, logger: logger)
            }
            if let configMap = state.configMap {
                let configKey = ObjectKey(namespace: key.namespace, name: KeyVaultBuilder.configMapName(workload: key.name))
                let live = caches.configMaps.get(configKey)
                try await apply(.configMaps, configMap, live: live?.raw, version: live?.resourceVersion, key: configKey, logger: logger)
            }
            var conditions = state.conditions
            if let keyVault = state.spec.keyVault {
                observation.keyRelease = KeyReleaseStatus(
                    allowedHashes: state.allowedHashes, configMapName: KeyVaultBuilder.configMapName(workload: key.name), keyID: keyVault.keyID,
                    releasePolicy: keyVault.releasePolicy.rawValue)
            }
            // Managed key release: Key Vault must allow the new hash before the Deployment carries it.
            var holdRollout = false
            if let keyVault = state.spec.keyVault, keyVault.releasePolicy == .managed, let maa = state.spec.attestation.maaEndpoint {
                let (condition, release, delay) = try await syncKeyRelease(workload, key: key, settings: keyVault, maaEndpoint: maa, state: state, logger: logger)
                observation.keyRelease?.publishedHashes = release.publishedHashes
                observation.keyRelease?.keyVersion = release.keyVersion
                let liveHash = live?[path: ["spec", "template", "metadata", "annotations", AgentPolicy.hashAnnotationKey]]?.stringValue
                holdRollout = condition.status != .true && liveHash != state.policy.hash
                var shown = condition
                if holdRollout {
                    shown.message += deployment == nil
                        ? "; the Deployment is not created until Key Vault allows policy \(state.policy.hash)"
                        : "; rollout held: the Deployment keeps policy \(liveHash ?? "(none)") until Key Vault allows \(state.policy.hash)"
                }
                conditions = conditions.map { $0.type == ConditionType.keyReleaseBound ? shown : $0 }
                result = result.sooner(.requeue(after: delay))
            } else if hasFinalizer(workload) {
                try await removeFinalizer(workload, key: key)
                let hashes = workload.status?.keyRelease?.publishedHashes ?? []
                await emit(workload, .normal, "KeyReleaseUnmanaged", "cwo no longer manages the key's release policy\(hashes.isEmpty ? "" : "; it still allows " + hashes.joined(separator: ", "))")
            }
            if !holdRollout {
                let applied: Deployment? = try await apply(
                    .deployments, state.deployment, live: live, version: deployment?.resourceVersion, key: key, logger: logger,
                    body: { (try? DesiredState.build(workload, context: context).get().deployment) ?? state.deployment })
                if let applied {
                    deployment = applied
                    observation.deployment = applied
                }
            }
            observation.artifactConditions = conditions
            observation.policyHash = state.policy.hash
            observation.policyMode = state.policy.mode.rawValue
        }

        let status = StatusBuilder.status(observation, previous: workload.status, now: now())
        try await writeStatus(status, workload: workload, key: key, logger: logger)
        return result
    }

    /// The desired state, built again only when the workload's spec, identity or context changed. Its
    /// Deployment is in the cache's form (see `PolicyDigest`): compare it with the cache, and call
    /// `DesiredState.build` again for the body to write.
    func build(_ workload: ConfidentialWorkload, key: ObjectKey, context: BuildContext) -> Result<DesiredState, SpecErrors> {
        if let memo = builds.withLock({ $0[key] }), memo.uid == workload.metadata.uid, memo.context == context, memo.spec == workload.spec {
            return memo.state
        }
        let start = ContinuousClock.now
        let result = DesiredState.build(workload, context: context).map { state in
            var kept = state
            kept.policy.text = ""
            kept.deployment["spec"] = PolicyDigest.project(deployment: state.deployment["spec"])
            return kept
        }
        metrics?.policyGenerated(seconds: (ContinuousClock.now - start).seconds)
        var memo = BuildMemo(uid: workload.metadata.uid, spec: workload.spec, context: context, result: result)
        if case .success(let state) = result {
            memo.deployment = CompactJSON(state.deployment)
            memo.result = .success({ var kept = state; kept.deployment = [:]; return kept }())
        }
        builds.withLock { [memo] in $0[key] = memo }
        return result
    }

    // MARK: - Managed key release

    /// Brings the key's release policy to the allowed hashes; returns the KeyReleaseBound condition, the
    /// key release status fields, and when to look again.
    func syncKeyRelease(
        _ workload: ConfidentialWorkload, key: ObjectKey, settings: KeyVaultSettings, maaEndpoint: String, state: DesiredState, logger: Logger
    ) async throws -> (ConditionInput, KeyReleaseStatus, Duration) {
        let allowed = state.allowedHashes
        var release = KeyReleaseStatus(allowedHashes: allowed, configMapName: "", keyID: settings.keyID)
        // Another key than before: cwo manages the new one and leaves the old one's release policy alone
        // (pods started with the old key may still need it), so say what it still allows.
        if let old = workload.status?.keyRelease, old.keyID != settings.keyID, let hashes = old.publishedHashes, !hashes.isEmpty {
            await emit(
                workload, .warning, "KeyReleaseLeftBehind",
                "cwo now manages \(settings.keyID); the release policy of \(old.keyID) still allows \(Self.policyHashes(hashes)): remove \(hashes.count == 1 ? "it" : "them") once no pod uses that key")
        }
        let remembered = keyReleaseMemo.withLock { $0[key] }.flatMap { $0.keyID == settings.keyID ? $0 : nil }
        let previous = workload.status?.keyRelease.flatMap { $0.keyID == settings.keyID ? $0 : nil }
        if let remembered, remembered.allowed == allowed, ContinuousClock.now - remembered.at < keyRelease.options.resync {
            release.publishedHashes = remembered.published
            release.keyVersion = remembered.keyVersion
            return (Self.synced(settings, remembered.published, remembered.keyVersion), release, keyRelease.options.resync - (ContinuousClock.now - remembered.at))
        }
        if let hold = keyReleaseHold.withLock({ $0[key] }), ContinuousClock.now < hold.until,
            hold.serverAsked || hold.generation == workload.metadata.generation
        {
            return (hold.condition, hold.release, hold.until - ContinuousClock.now)
        }
        let published = Self.union(previous?.publishedHashes, remembered?.published)
        let outcome = try await keyRelease.sync(settings, maaEndpoint: maaEndpoint, allowed: allowed, published: published) {
            try await self.addFinalizer(workload, key: key)
        }
        switch outcome {
        case .success(let synced):
            keyReleaseFailures.withLock { _ = $0.removeValue(forKey: key) }
            keyReleaseHold.withLock { _ = $0.removeValue(forKey: key) }
            keyReleaseMemo.withLock { $0[key] = KeyReleaseMemo(keyID: settings.keyID, allowed: allowed, published: synced.published, keyVersion: synced.keyVersion, at: .now) }
            release.publishedHashes = synced.published
            release.keyVersion = synced.keyVersion
            if synced.wrote {
                logger.info(synced.created ? "created key" : "updated release policy", metadata: ["key": "\(settings.keyID)", "hashes": "\(allowed)"])
                await emit(
                    workload, .normal, synced.created ? "KeyCreated" : "ReleasePolicyUpdated",
                    "\(settings.keyID) (version \(synced.keyVersion)) releases to \(Self.policyHashes(allowed))")
            }
            return (Self.synced(settings, synced.published, synced.keyVersion), release, keyRelease.options.resync)
        case .failure(let failure):
            keyReleaseMemo.withLock { _ = $0.removeValue(forKey: key) }
            let attempts = recordKeyReleaseFailure(key)
            release.publishedHashes = published.isEmpty ? nil : published
            release.keyVersion = previous?.keyVersion
            logger.warning("key release", metadata: ["reason": "\(failure.reason)", "error": "\(failure.message)"])
            let delay = failure.retryAfter ?? Backoff.jittered(base: .seconds(1), attempt: attempts, cap: .seconds(300))
            let condition = ConditionInput(ConditionType.keyReleaseBound, .false, failure.reason, failure.message)
            keyReleaseHold.withLock {
                $0[key] = KeyReleaseHold(
                    until: .now + delay, generation: workload.metadata.generation ?? 0, serverAsked: failure.retryAfter != nil, condition: condition,
                    release: release)
            }
            return (condition, release, delay)
        }
    }

    static func synced(_ settings: KeyVaultSettings, _ hashes: [String], _ version: String) -> ConditionInput {
        ConditionInput(
            ConditionType.keyReleaseBound, .true, "ReleasePolicySynced",
            "Key Vault key \(settings.keyID) (version \(version)) releases to \(Self.policyHashes(hashes)); cwo keeps its release policy in sync")
    }

    /// A deleted workload: take its hashes out of the release policy, then let it go. Bounded by
    /// `cleanupTimeout` from the deletion, so a broken Key Vault never leaves a workload stuck.
    func finalize(_ workload: ConfidentialWorkload, key: ObjectKey, logger: Logger) async throws -> ReconcileResult {
        guard hasFinalizer(workload) else { return .done }
        let status = workload.status?.keyRelease
        let remembered = keyReleaseMemo.withLock { $0[key] }
        let hashes = Self.union(status?.publishedHashes, remembered?.published)
        let keyID = remembered?.keyID ?? status?.keyID ?? ""
        guard let range = keyID.range(of: "/keys/") else {
            try await removeFinalizer(workload, key: key)
            return .done
        }
        let vault = String(keyID[..<range.lowerBound])
        let keyName = String(keyID[range.upperBound...])
        switch try await keyRelease.cleanup(vault: vault, keyName: keyName, hashes: hashes) {
        case .success(let wrote):
            try await removeFinalizer(workload, key: key)
            if wrote {
                logger.info("removed hashes from release policy", metadata: ["key": "\(keyID)", "hashes": "\(hashes)"])
                await emit(workload, .normal, "ReleasePolicyCleanedUp", "removed \(Self.policyHashes(hashes)) from the release policy of \(keyID)")
            }
            return .done
        case .failure(let failure):
            let deleted = workload.metadata.deletionTimestamp.flatMap { try? Date($0, strategy: .iso8601) } ?? Date()
            let waited = Date().timeIntervalSince(deleted)
            let limit = Double(keyRelease.options.cleanupTimeout.components.seconds)
            if waited >= limit {
                try await removeFinalizer(workload, key: key)
                logger.warning("gave up cleaning the release policy", metadata: ["key": "\(keyID)", "reason": "\(failure.reason)"])
                await emit(
                    workload, .warning, "KeyReleaseCleanupFailed",
                    "gave up after \(Int(waited)) s: \(failure.message); the release policy of \(keyID) still allows \(hashes.joined(separator: ", ")): remove them by hand")
                return .done
            }
            let attempts = recordKeyReleaseFailure(key)
            if attempts == 1 { await emit(workload, .warning, failure.reason, "cleaning up the release policy of \(keyID): \(failure.message)") }
            let delay = failure.retryAfter ?? Backoff.jittered(base: .seconds(1), attempt: attempts, cap: .seconds(60))
            return .requeue(after: min(delay, .seconds(max(1, Int64(limit - waited) + 1))))
        }
    }

    func hasFinalizer(_ workload: ConfidentialWorkload) -> Bool {
        workload.metadata.finalizers?.contains(KeyReleaseManager.finalizer) == true
    }

    /// Added before cwo first changes Key Vault for this workload, never otherwise.
    func addFinalizer(_ workload: ConfidentialWorkload, key: ObjectKey) async throws {
        let uid = workload.metadata.uid ?? "\(key)"
        if hasFinalizer(workload) || finalizerAdded.withLock({ $0.contains(uid) }) { return }
        try await setFinalizers((workload.metadata.finalizers ?? []) + [KeyReleaseManager.finalizer], of: workload, key: key)
        finalizerAdded.withLock { _ = $0.insert(uid) }
    }

    func removeFinalizer(_ workload: ConfidentialWorkload, key: ObjectKey) async throws {
        do {
            try await setFinalizers((workload.metadata.finalizers ?? []).filter { $0 != KeyReleaseManager.finalizer }, of: workload, key: key)
        } catch let error as KubeError where error.reason == .notFound {
            // Already gone.
        }
        finalizerAdded.withLock { _ = $0.remove(workload.metadata.uid ?? "\(key)") }
        keyReleaseMemo.withLock { _ = $0.removeValue(forKey: key) }
        keyReleaseFailures.withLock { _ = $0.removeValue(forKey: key) }
        keyReleaseHold.withLock { _ = $0.removeValue(forKey: key) }
    }

    /// resourceVersion makes this a compare-and-swap: a concurrent edit of finalizers is never lost.
    func setFinalizers(_ finalizers: [String], of workload: ConfidentialWorkload, key: ObjectKey) async throws {
        let patch: JSONValue = ["metadata": ["finalizers": .array(finalizers.map { .string($0) }), "resourceVersion": .string(workload.metadata.resourceVersion ?? "")]]
        let _: Discarded = try await client.patch(ConfidentialWorkload.resource, namespace: key.namespace, name: key.name, .merge(patch))
    }

    /// Counts a consecutive Key Vault failure of `key`; returns how many there have been.
    func recordKeyReleaseFailure(_ key: ObjectKey) -> Int {
        keyReleaseFailures.withLock { failures in
            failures[key, default: 0] += 1
            return failures[key] ?? 1
        }
    }

    /// The hashes cwo published: what status says, plus what it published since (status may lag).
    static func union(_ status: [String]?, _ remembered: [String]?) -> [String] {
        Array(Set(status ?? []).union(remembered ?? [])).sorted()
    }

    /// "policy hash a" or "policy hashes a, b", for messages.
    static func policyHashes(_ hashes: [String]) -> String {
        "policy \(hashes.count == 1 ? "hash" : "hashes") \(hashes.joined(separator: ", "))"
    }

    func emit(_ workload: ConfidentialWorkload, _ type: EventRecorder.EventType, _ reason: String, _ note: String) async {
        await events?.record(
            regarding: workload.metadata, apiVersion: ConfidentialWorkload.apiVersion, kind: ConfidentialWorkload.kind, type: type,
            reason: reason, action: "Reconcile", note: note)
    }

    /// Policy hashes of the workload's ReplicaSets that still have pods: the templates still running.
    func runningHashes(_ key: ObjectKey) -> [String] {
        caches.replicaSets.indexed("\(key.namespace)/\(key.name)").compactMap { replicaSet in
            replicaSet.replicas > 0 ? replicaSet.templateAnnotations[AgentPolicy.hashAnnotationKey] : nil
        }
    }

    func readProvidedPolicy(_ workload: ConfidentialWorkload, into context: inout BuildContext) async throws {
        let name = workload.spec?[path: ["policy", "configMapRef", "name"]]?.stringValue ?? ""
        let key = workload.spec?[path: ["policy", "configMapRef", "key"]]?.stringValue ?? ""
        guard !name.isEmpty else { return }
        do {
            let configMap: UntypedObject = try await client.get(.configMaps, namespace: workload.metadata.namespace, name: name)
            if let value = configMap.raw[path: ["data", key]]?.stringValue {
                context.providedPolicy = value
            } else {
                context.providedPolicyProblem = "ConfigMap \(name) has no key \(key)"
            }
        } catch let error as KubeError where error.reason == .notFound {
            context.providedPolicyProblem = "ConfigMap \(name) was not found in namespace \(workload.metadata.namespace ?? "")"
        }
    }

    func nativeSidecars() async throws -> Bool {
        if let known = serverSupportsNativeSidecars.withLock({ $0 }) { return known }
        let version = try await client.serverVersion()
        let supported = version.isAtLeast(major: 1, minor: 29)
        serverSupportsNativeSidecars.withLock { $0 = supported }
        logger.info("server version", metadata: ["version": "\(version.gitVersion)", "nativeSidecars": "\(supported)"])
        return supported
    }

    /// Applies `body` unless the live object already has every field of it. Returns the server's answer when it wrote.
    ///
    /// `desired` is compared with `live` (both as the cache keeps them); `body`, when given, makes the full
    /// object to write.
    @discardableResult
    func apply<T: Decodable & Sendable>(
        _ resource: Resource, _ desired: JSONValue, live: JSONValue?, version: String?, key: ObjectKey, logger: Logger,
        body: (() -> JSONValue)? = nil
    ) async throws -> T? {
        // Items of a list response carry no apiVersion/kind; they name the type, not a field, so skip them.
        var fields = desired
        fields["apiVersion"] = nil
        fields["kind"] = nil
        let difference = live.flatMap { AppliedState.difference($0, fields) }
        if live != nil && difference == nil { return nil }
        let memoKey = "\(resource.plural)|\(key)"
        let alreadyWritten = memo.withLock { $0[memoKey]?.matches(desired, versionBefore: version) ?? false }
        if alreadyWritten { return nil }
        let applied: T = try await client.apply(resource, namespace: key.namespace, name: key.name, body?() ?? desired, fieldManager: Names.fieldManager, force: true)
        memo.withLock { $0[memoKey] = Written(body: desired, versionBefore: version) }
        logger.info(live == nil ? "created \(resource.kind)" : "updated \(resource.kind)", metadata: ["name": "\(key.name)", "field": "\(difference ?? "")"])
        return applied
    }

    func apply(_ resource: Resource, _ body: JSONValue, live: JSONValue?, version: String?, key: ObjectKey, logger: Logger) async throws {
        let _: Discarded? = try await apply(resource, body, live: live, version: version, key: key, logger: logger)
    }

    func writeStatus(_ status: WorkloadStatus, workload: ConfidentialWorkload, key: ObjectKey, logger: Logger) async throws {
        // Conditions of other types belong to other writers (server-side apply keeps them): not a difference.
        if let current = workload.status, current.normalized.ownConditions == status.normalized { return }
        let version = workload.metadata.resourceVersion
        let body: JSONValue = [
            "apiVersion": .string(ConfidentialWorkload.apiVersion), "kind": .string(ConfidentialWorkload.kind),
            "metadata": ["name": .string(key.name), "namespace": .string(key.namespace)],
            "status": try JSONValue(encoding: status),
        ]
        let memoKey = "status|\(key)"
        let alreadyWritten = memo.withLock { $0[memoKey]?.matches(body, versionBefore: version) ?? false }
        if alreadyWritten { return }
        do {
            let _: Discarded = try await client.apply(
                ConfidentialWorkload.resource, namespace: key.namespace, name: key.name, subresource: "status", body,
                fieldManager: Names.fieldManager, force: true)
        } catch let error as KubeError where error.reason == .notFound {
            return  // deleted meanwhile
        }
        memo.withLock { $0[memoKey] = Written(body: body, versionBefore: version) }
        let before = workload.status?.condition(ConditionType.ready)
        let after = status.condition(ConditionType.ready)
        if before?.status != after?.status || before?.reason != after?.reason {
            logger.info("status", metadata: ["ready": "\(after?.status.rawValue ?? "")", "reason": "\(after?.reason ?? "")"])
        }
        await recordEvents(workload: workload, old: workload.status, new: status)
    }

    /// Events for what a user should see in `kubectl describe cw`: only on transitions, never per reconcile.
    func recordEvents(workload: ConfidentialWorkload, old: WorkloadStatus?, new: WorkloadStatus) async {
        guard let events else { return }
        func emit(_ type: EventRecorder.EventType, _ reason: String, _ note: String) async {
            await events.record(
                regarding: workload.metadata, apiVersion: ConfidentialWorkload.apiVersion, kind: ConfidentialWorkload.kind, type: type,
                reason: reason, action: "Reconcile", note: note)
        }
        if let hash = new.policyHash, hash != old?.policyHash {
            await emit(.normal, "PolicyGenerated", "\(new.policyMode ?? "") policy \(hash)")
            if let previous = old?.policyHash {
                await emit(.normal, "RolloutStarted", "pod template now runs policy \(hash) (was \(previous)); key release allows both until the rollout completes")
            }
        }
        let ready = new.condition(ConditionType.ready)
        if let ready, ready.status == .false, [Reason.invalidSpec, "PolicyConfigMapNotFound", "InvalidPolicy"].contains(ready.reason),
            old?.condition(ConditionType.ready)?.message != ready.message
        {
            await emit(.warning, ready.reason, ready.message)
        }
        let keyRelease = new.condition(ConditionType.keyReleaseBound)
        if let keyRelease, keyRelease.status == .false, old?.condition(ConditionType.keyReleaseBound)?.reason != keyRelease.reason {
            await emit(.warning, keyRelease.reason, keyRelease.message)
        }
        let policy = new.condition(ConditionType.policyReady)
        if let policy, policy.message != old?.condition(ConditionType.policyReady)?.message {
            if policy.reason == "AllowAllInsecure" { await emit(.warning, "InsecurePolicy", policy.message) }
            if let range = policy.message.range(of: "warnings: ") {
                await emit(.warning, "SpecWarning", String(policy.message[range.upperBound...]))
            }
        }
    }
}

extension WorkloadStatus {
    /// Conditions in a fixed order, so the server's ordering never makes equal statuses differ.
    var normalized: WorkloadStatus {
        var copy = self
        copy.conditions = conditions?.sorted { $0.type < $1.type }
        return copy
    }

    /// Without the conditions of types cwo never writes.
    var ownConditions: WorkloadStatus {
        var copy = self
        copy.conditions = conditions?.filter { ConditionType.all.contains($0.type) }
        return copy
    }
}

extension Deployment {
    /// The fields of a live Deployment an apply body can set, as JSON.
    var comparable: JSONValue {
        var metadata: [String: JSONValue] = [
            "name": .string(self.metadata.name ?? ""), "namespace": .string(self.metadata.namespace ?? ""),
        ]
        if let labels = self.metadata.labels { metadata["labels"] = .object(labels.mapValues { .string($0) }) }
        if let annotations = self.metadata.annotations { metadata["annotations"] = .object(annotations.mapValues { .string($0) }) }
        if let owners = self.metadata.ownerReferences {
            metadata["ownerReferences"] = .array(owners.map { owner in
                var reference: [String: JSONValue] = [
                    "apiVersion": .string(owner.apiVersion), "kind": .string(owner.kind), "name": .string(owner.name), "uid": .string(owner.uid),
                ]
                if let controller = owner.controller { reference["controller"] = .bool(controller) }
                if let block = owner.blockOwnerDeletion { reference["blockOwnerDeletion"] = .bool(block) }
                return .object(reference)
            })
        }
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": .object(metadata), "spec": spec ?? [:]]
    }
}
