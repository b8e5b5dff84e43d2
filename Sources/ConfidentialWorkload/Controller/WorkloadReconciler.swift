import ControllerRuntime
import KubernetesClient
import Logging
import OCIRegistry
import Synchronization

/// Reconciles one ConfidentialWorkload, in five steps:
///
/// 1. read the workload and what its desired state depends on (`buildContext`);
/// 2. build the desired state with the pure builders (`desiredState`, memoized);
/// 3. apply the bindings it needs and delete those it no longer needs (`reconcileBindings`);
/// 4. bring the key release to the new policy hash (a `KeyReleaseBackend`) before
/// 5. the Deployment gets it (`reconcileDeployment`), then write status and record events.
///
/// Every object is applied when cwo's intent for it changed (its digest annotation), or when a field
/// cwo owns was changed by hand; nothing is written when nothing changed.
public final class WorkloadReconciler: Reconciler {
    let client: KubeClient
    let caches: WorkloadCaches
    let logger: Logger
    let now: @Sendable () -> String
    let events: WorkloadEventSink
    let memories = WorkloadMemories()
    /// Key Vault (AKS) and the Trustee KBS (CoCo): each answers for the workloads it serves.
    let keyReleases: [any KeyReleaseBackend]
    /// Image facts from the registry (`cwo run --resolve-images`), looked up off the workers.
    let images: ImageResolver?
    /// The credentials each workload pulls its images with (its pull secrets), when resolving images.
    let pullCredentials: PullCredentials?
    private let serverSupportsNativeSidecars = Mutex<Bool?>(nil)
    /// Reconciles running now (see `reconcileDeployment`).
    private let reconciling = Atomic<Int>(0)
    /// How long a lone reconcile lets its new Deployment reach the watches before writing status.
    static let deliveryWait: Duration = .milliseconds(50)

    /// How often a workload with a Provided policy re-reads its ConfigMap (which cwo does not watch).
    public let providedPolicyRefresh: Duration = .seconds(60)

    public init(
        client: KubeClient, caches: WorkloadCaches, logger: Logger, events: EventRecorder? = nil,
        keyRelease: KeyReleaseManager? = nil, kbs: KBSBroker? = nil, images: ImageResolver? = nil,
        now: @escaping @Sendable () -> String = { StatusBuilder.timestamp() }
    ) {
        self.client = client
        self.images = images
        pullCredentials = images.map { _ in PullCredentials(client: client, logger: logger) }
        self.caches = caches
        self.logger = logger
        self.events = WorkloadEventSink(recorder: events)
        self.now = now
        let keyVault = KeyVaultRelease(
            manager: keyRelease ?? KeyReleaseManager(unavailable: "cwo runs without Key Vault access"), memories: memories, events: self.events,
            client: client)
        let trustee = TrusteeRelease(
            broker: kbs ?? KBSBroker(unmanaged: "cwo runs without a managed KBS (cwo run --kbs-url, --kbs-admin-key)"), caches: caches,
            memories: memories, events: self.events, client: client, resync: keyRelease?.options.resync ?? .seconds(600))
        self.keyReleases = [keyVault, trustee]
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        reconciling.add(1, ordering: .relaxed)
        defer { reconciling.subtract(1, ordering: .relaxed) }
        guard let workload = caches.workloads.get(key)?.expanded() else {
            // Deleted: owner references let the garbage collector remove the children.
            memories.forget(key)
            return .done
        }
        var logger = self.logger
        logger[metadataKey: "workload"] = "\(key)"
        if workload.metadata.deletionTimestamp != nil {
            var result = ReconcileResult.done
            for backend in keyReleases { result = result.sooner(try await backend.finalize(workload, key: key, logger: logger)) }
            return result
        }

        let (context, refresh) = try await buildContext(workload, key: key)
        var result = refresh
        var observation = Observation(
            generation: workload.metadata.generation ?? 0, deploymentName: key.name, specErrors: nil, runtimeClassName: nil,
            runtimeClassExists: false, deployment: caches.deployments.get(key))
        var warnings: [String] = []
        var rejection: KubeError?
        let (desired, body) = desiredState(workload, key: key, context: context)
        switch desired {
        case .failure(let errors):
            // Leave a running Deployment alone: an invalid edit must not take a working workload down.
            observation.specErrors = errors
            logger.info("invalid spec", metadata: ["reason": "\(errors.reason)", "error": "\(errors)"])
        case .success(let state):
            warnings = state.spec.warnings
            try await reconcileBindings(workload, state: state, key: key, logger: logger)
            var release: KeyReleaseOutcome?
            for backend in keyReleases {
                // Every backend runs: one that no longer serves the workload cleans up after itself.
                if let outcome = try await backend.sync(workload, key: key, state: state, logger: logger) { release = outcome }
            }
            if let release { result = result.sooner(.requeue(after: release.recheck)) }
            let deployment: Deployment?, keyReleaseCondition: ConditionInput?
            do {
                let next: ReconcileResult
                (deployment, keyReleaseCondition, next) = try await reconcileDeployment(
                    workload, state: state, body: body, context: context, release: release, key: key, logger: logger)
                result = result.sooner(next)
            } catch let error as KubeError where Self.isRejection(error) {
                // The API server refused the Deployment itself: the status says why (of the Deployment
                // cached before the attempt), and the queue retries.
                (deployment, keyReleaseCondition) = (observation.deployment, release?.condition)
                observation.deploymentRejection = error.message
                rejection = error
            }
            observation.record(state, keyReleaseCondition: keyReleaseCondition, release: release, deployment: deployment, workload: key.name)
            observation.runtimeClassExists = caches.runtimeClasses.get(ObjectKey(namespace: "", name: state.spec.runtimeClassName)) != nil
        }

        let status = StatusBuilder.status(observation, previous: workload.status, now: now())
        if try await writeStatus(status, workload: workload, key: key, logger: logger) {
            for event in WorkloadEvent.transitions(from: workload.status, to: status, specErrors: observation.specErrors, warnings: warnings) {
                events.emit(event, on: workload)
            }
        }
        if let rejection { throw rejection }
        return result
    }

    /// A refusal of the Deployment that retrying soon will not change and the user must hear of: an
    /// admission webhook or policy, a quota, RBAC, a field the server finds invalid. (Conflicts, a server
    /// that is down or still starting, are retried without a word in the status.)
    static func isRejection(_ error: KubeError) -> Bool {
        [.forbidden, .invalid, .badRequest].contains(error.reason) && !error.isServerTransient
    }

    // MARK: - 1. What the desired state depends on

    /// The build context, and when to look again (a Provided policy's ConfigMap is re-read periodically).
    func buildContext(_ workload: ConfidentialWorkload, key: ObjectKey) async throws -> (BuildContext, ReconcileResult) {
        var context = BuildContext(nativeSidecars: try await nativeSidecars())
        context.runningHashes = runningHashes(key)
        var ignored: [SpecError] = []  // the full validation reports them
        var refresh = ReconcileResult.done
        if let images {
            // What is known now; the rest is looked up elsewhere, and the workload requeued when it arrives.
            let (references, hostPulled) = imageNeeds(workload, key: key)
            let layers = hostPulled && images.hashLayersForHostPull
            let pulls = await pullCredentials?.secrets(podSpec: workload.spec?[path: ["template", "spec"]], namespace: key.namespace) ?? PullSecrets()
            func request(_ reference: String) -> ImageResolver.Request {
                ImageResolver.Request(reference, credentials: ImageReference(reference).flatMap(pulls.credentials(for:)), tarfsLayers: layers)
            }
            // The node pulls the pause image's layers too; its facts only serve the policy (no condition,
            // no hold: without them the policy denies those layers and PolicyReady says so).
            let pause = layers ? [HostPulledLayers.aksPauseImage] : []
            let outcomes = await images.facts(for: (references + pause).map(request), waiter: key)
            for reference in pause { context.imageFacts[reference] = outcomes[reference]?.facts }
            var problems: [String: ImageProblem] = [:]
            for reference in references {
                if let outcome = outcomes[reference] {
                    context.imageFacts[reference] = outcome.facts
                    problems[reference] = outcome.failure
                } else {
                    problems[reference] = .resolving
                }
            }
            context.imageProblems = problems
            // A tag may move: look again when its answer is due for renewal.
            refresh = .requeue(after: images.ttl)
        }
        if let ca = KBSSettings.parse(workload.spec?["kbs"], errors: &ignored)?.caConfigMap {
            switch try await readConfigMap(ca.name, key: ca.key, namespace: key.namespace) {
            case .success(let pem): context.kbsCertificate = pem
            case .failure(let problem): context.kbsCertificateProblem = problem.message
            }
            refresh = .requeue(after: providedPolicyRefresh)
        }
        let policy = PolicySettings.parse(workload.spec?["policy"], errors: &ignored)
        guard policy.mode == .provided, let name = policy.configMapName, !name.isEmpty else { return (context, refresh) }
        switch try await readConfigMap(name, key: policy.configMapKey ?? "", namespace: key.namespace) {
        case .success(let text): context.providedPolicy = text
        case .failure(let problem): context.providedPolicyProblem = problem.message
        }
        return (context, .requeue(after: providedPolicyRefresh))
    }

    /// `DesiredState.imageNeeds`, read again only when the spec changed.
    func imageNeeds(_ workload: ConfidentialWorkload, key: ObjectKey) -> (references: [String], hostPulledLayers: Bool) {
        let spec = workload.compactSpec
        if let known = memories.recall(key, uid: workload.metadata.uid).imageNeeds, known.spec == spec {
            return (known.references, known.hostPulledLayers)
        }
        let needs = DesiredState.imageNeeds(workload)
        memories.update(key, uid: workload.metadata.uid) {
            $0.imageNeeds = .init(spec: spec, references: needs.references, hostPulledLayers: needs.hostPulledLayers)
            $0.buildUsed = true
        }
        return needs
    }

    struct ConfigMapProblem: Error { var message: String }


    /// One key of a ConfigMap the workload names (cwo does not watch them: read when reconciling, and
    /// again every `providedPolicyRefresh`).
    func readConfigMap(_ name: String, key: String, namespace: String) async throws -> Result<String, ConfigMapProblem> {
        do {
            let configMap: UntypedObject = try await client.get(.configMaps, namespace: namespace, name: name)
            guard let value = configMap.raw[path: ["data", key]]?.stringValue else { return .failure(.init(message: "ConfigMap \(name) has no key \(key)")) }
            return .success(value)
        } catch let error as KubeError where error.reason == .notFound {
            return .failure(.init(message: "ConfigMap \(name) was not found in namespace \(namespace)"))
        }
    }

    /// Policy hashes of the workload's ReplicaSets that still have pods: the templates still running.
    func runningHashes(_ key: ObjectKey) -> [String] {
        caches.replicaSets.indexed("\(key.namespace)/\(key.name)").compactMap { replicaSet in
            replicaSet.replicas > 0
                ? replicaSet.templateAnnotations[InitData.digestAnnotation] ?? replicaSet.templateAnnotations[AgentPolicy.hashAnnotationKey] : nil
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

    // MARK: - 2. The desired state

    /// The desired state, built again only when the workload's spec, identity or context changed. Its
    /// Deployment is in the cache's form (see `PolicyDigest`): compare it with the cache, and call
    /// `DesiredState.build` again for the body to write.
    /// `body`: the full Deployment to write, when this call built it (a new or changed workload: the
    /// write that follows needs no second build); nil when the memo answered.
    func desiredState(_ workload: ConfidentialWorkload, key: ObjectKey, context: BuildContext) -> (Result<DesiredState, SpecErrors>, body: JSONValue?) {
        let uid = workload.metadata.uid
        // The spec as serialized bytes: exact, and a quarter of the memory of a second tree (the cache's
        // copy is replaced by every watch event, so the memo would otherwise hold its own).
        let spec = workload.compactSpec
        if let memo = memories.recall(key, uid: uid).build, memo.context == context, memo.spec == spec {
            return (memo.state, nil)
        }
        let built = Self.timedBuild(workload, context: context)
        let result = built.map(\.comparable)
        var memo = WorkloadMemory.BuildMemo(spec: spec, context: context, result: result)
        if case .success(let state) = result {
            let (kept, deployment) = state.remembered
            memo.deployment = deployment
            memo.result = .success(kept)
        }
        memories.update(key, uid: uid) { [memo] in
            $0.build = memo
            $0.buildUsed = true
        }
        return (result, try? built.get().deployment)
    }

    /// `DesiredState.build`, timed into `cwo_policy_generation_seconds`: the memo's builds and the rebuilds
    /// of a Deployment the memo no longer holds alike.
    static func timedBuild(_ workload: ConfidentialWorkload, context: BuildContext) -> Result<DesiredState, SpecErrors> {
        let start = ContinuousClock.now
        defer { WorkloadMetrics.policyGenerated(seconds: (ContinuousClock.now - start).seconds) }
        return DesiredState.build(workload, context: context)
    }

    // MARK: - 3. Bindings (ServiceAccount, release-policy ConfigMap)

    /// Applies the objects the features in the spec need, and deletes the ones cwo made for a feature
    /// that was switched off (only objects cwo created: controlled by this workload and labelled by cwo).
    func reconcileBindings(_ workload: ConfidentialWorkload, state: DesiredState, key: ObjectKey, logger: Logger) async throws {
        let configKey = ObjectKey(namespace: key.namespace, name: KeyVaultBuilder.configMapName(workload: key.name))
        let uid = workload.metadata.uid
        // cwo's last write of each, read before the cache (see `apply`).
        let bindings: [(Resource, JSONValue?, ObjectKey, WorkloadMemory.Written?, UntypedObject?)] = [
            (.serviceAccounts, state.serviceAccount, key, memories.written(key, uid: uid, Resource.serviceAccounts.plural), caches.serviceAccounts.get(key)),
            (.configMaps, state.configMap, configKey, memories.written(key, uid: uid, Resource.configMaps.plural), caches.configMaps.get(configKey)),
        ]
        for (resource, desired, childKey, pending, live) in bindings {
            if let desired {
                let _: Discarded? = try await apply(resource, desired, live: live?.raw, pending: pending, child: childKey, of: workload, logger: logger)
            } else if let live, Self.createdByCwo(live.metadata, for: workload) {
                try await delete(resource, live.metadata, child: childKey, of: workload, logger: logger)
            }
        }
    }

    /// cwo created the object for this workload: it controls it and carries cwo's label.
    static func createdByCwo(_ metadata: ObjectMeta, for workload: ConfidentialWorkload) -> Bool {
        metadata.labels?[Names.managedByLabel] == Names.managedByValue
            && metadata.ownerReferences?.contains { $0.controller == true && $0.uid == workload.metadata.uid && $0.kind == ConfidentialWorkload.kind } == true
    }

    func delete(_ resource: Resource, _ metadata: ObjectMeta, child: ObjectKey, of workload: ConfidentialWorkload, logger: Logger) async throws {
        do {
            // The uid precondition: never delete an object of the same name created since the cache saw it.
            _ = try await client.delete(resource, namespace: child.namespace, name: child.name, options: DeleteOptions(preconditions: .init(uid: metadata.uid)))
        } catch let error as KubeError where error.reason == .notFound {
            return
        }
        memories.update(ObjectKey(workload), uid: workload.metadata.uid) { _ = $0.written.removeValue(forKey: resource.plural) }
        logger.info("deleted \(resource.kind)", metadata: ["name": "\(child.name)"])
        events.emit(.childDeleted(kind: resource.kind, name: child.name, feature: "spec.keyVault"), on: workload)
    }

    // MARK: - 5. The Deployment

    /// Applies the Deployment unless the key release holds the rollout; returns the Deployment as it now
    /// is, the `KeyReleaseBound` condition to show, and a requeue when someone else changed the
    /// Deployment while cwo wrote it (an event held for the apply that was not its echo).
    func reconcileDeployment(
        _ workload: ConfidentialWorkload, state: DesiredState, body: JSONValue?, context: BuildContext, release: KeyReleaseOutcome?, key: ObjectKey,
        logger: Logger
    ) async throws -> (Deployment?, ConditionInput?, ReconcileResult) {
        // cwo's last write of the Deployment, read before the cache (see `apply`).
        let pending = memories.written(key, uid: workload.metadata.uid, Resource.deployments.plural)
        var cached = caches.deployments.get(key)
        if let unread = cached, unread.specUnread {
            cached = try await readWhole(unread, key: key)
        }
        // The cache keeps the Deployment's spec serialized: parse it once for this reconcile.
        let live = cached?.comparable
        var condition = release?.condition
        if let release, !release.allowsNewHash {
            // The key broker must allow the new measurement before the Deployment carries it.
            let (annotation, what, broker) = state.initData == nil
                ? (AgentPolicy.hashAnnotationKey, "policy", "Key Vault") : (InitData.digestAnnotation, "initdata", "the KBS")
            let measured = state.allowedHashes.first ?? ""
            let liveHash = live?[path: ["spec", "template", "metadata", "annotations", annotation]]?.stringValue
            if liveHash != measured {
                condition?.message += cached == nil
                    ? "; the Deployment is not created until \(broker) allows \(what) \(measured)"
                    : "; rollout held: the Deployment keeps \(what) \(liveHash ?? "(none)") until \(broker) allows \(measured)"
                return (cached, condition, .done)
            }
        }
        if let hold = ImageLock.hold(problems: context.imageProblems, lock: state.spec.images.lockDigests, live: live) {
            logger.info("deployment held for image facts", metadata: ["why": "\(hold)"])
            return (cached, condition, .done)
        }
        // A memo kept from a settled Deployment has no spec (`deploymentSettled`): only a settled summary
        // can be compared with it; a Deployment that changed or went needs the whole desired Deployment.
        // The body to write is that build's Deployment too, not a second build.
        var desired = state.deployment
        var rebuilt: DesiredState?
        if desired["spec"] == nil, cached?.specIsSummary != true {
            rebuilt = try? Self.timedBuild(workload, context: context).get()
            desired = rebuilt?.comparable.deployment ?? desired
        }
        // A digest other than cwo's may be an older cwo's stamp of the same intent (before digests were
        // condensed, they covered the whole body): that Deployment is not rewritten for its stamp alone.
        var olderIntent: String?
        if let live, pending == nil, let liveDigest = Names.intent.digest(of: live), liveDigest != Names.intent.digest(of: desired) {
            olderIntent = uncondensedIntent(workload, key: key, body: body, rebuilt: &rebuilt, context: context)
        }
        var decision: AppliedIntent.Decision?
        // The Deployment's watch events that come while the apply is in flight are held until its answer
        // tells whether they are its echo (`WorkloadMemories.echo`); a failed apply releases them.
        memories.writing(key)
        var answer: WorkloadMemories.Answer?
        defer { if answer == nil { _ = memories.answered(key, version: nil, applied: nil) } }
        let applied: PartialObjectMetadata? = try await apply(
            .deployments, desired, live: live, pending: pending, child: key, of: workload, logger: logger,
            verified: cached?.specIsSummary == true, olderIntent: olderIntent, decided: { decision = $0 },
            body: { body ?? (rebuilt ?? (try? Self.timedBuild(workload, context: context).get()))?.deployment ?? desired })
        let version = applied?.metadata.resourceVersion
        answer = memories.answered(key, version: version, applied: applied == nil ? nil : desired)
        var next = ReconcileResult.done
        switch answer {
        case .changedMeanwhile:
            next = .requeue(after: .zero)
        case .echoCame:
            // The watch brought the echo first (the store is updated before its handler runs).
            if let echo = caches.deployments.get(key), echo.resourceVersion == version, settleEcho(echo, applied: desired, of: key) {
                next = .requeue(after: .zero)
            }
        case .nothingCame where applied != nil && reconciling.load(ordering: .relaxed) == 1:
            // Nothing else to do: let the API server deliver the Deployment to its watchers (the
            // Deployment controller, which starts the pods) before the status write competes with it
            // for the server's CPU. Under load the status is written at once, as always.
            let before = cached?.resourceVersion
            let deployments = caches.deployments
            await memories.awaitDelivery(key, within: Self.deliveryWait) { deployments.get(key)?.resourceVersion != before }
        default:
            if applied == nil, let cached, !cached.specIsSummary, decision == .upToDate {
                if caches.settleDeployment(key, at: cached.resourceVersion) { memories.deploymentSettled(key) }
            }
        }
        guard let applied else { return (cached, condition, next) }
        // The answer holds the metadata alone: the rollout's status is the cache's (of this same Deployment;
        // the apply changed none of it), and any change of it comes back through the watch and reconciles.
        let status = cached?.metadata.uid == applied.metadata.uid ? cached?.status : nil
        return (Deployment(metadata: applied.metadata, status: status), condition, next)
    }

    /// The watch event of cwo's own apply of `applied` (the Deployment as the cache compares it), whether it
    /// came after the apply's answer (the Deployment watch's handler) or before (`reconcileDeployment`):
    /// settled in the cache if the server kept all cwo applied (nothing, e.g. a mutating webhook, changed a
    /// field cwo sets). Returns whether the workload still needs a reconcile: a spec the protobuf schema
    /// could not read, which the reconcile reads as JSON.
    func settleEcho(_ echo: Deployment, applied: JSONValue, of key: ObjectKey) -> Bool {
        if echo.specUnread { return true }
        if Names.intent.decide(desired: applied, live: echo.comparable) == .upToDate,
            caches.settleDeployment(ObjectKey(echo), at: echo.resourceVersion)
        {
            memories.deploymentSettled(key)
        }
        return false
    }

    /// The Deployment whose spec the protobuf watch could not read (a field of a newer API server), read
    /// as JSON; the cache takes it in place of the unread one if that is still the cached version.
    func readWhole(_ unread: Deployment, key: ObjectKey) async throws -> Deployment? {
        let json: UntypedObject
        do {
            json = try await client.get(.deployments, namespace: key.namespace, name: key.name)
        } catch let error as KubeError where error.reason == .notFound {
            return nil
        }
        let whole = WorkloadCaches.cached(try json.raw.decode(as: Deployment.self))
        caches.deployments.update(key, ifVersion: unread.resourceVersion) { _ in whole }
        return whole
    }

    /// The intent digest of the workload's Deployment as a cwo before digests were condensed stamped it,
    /// remembered with the desired state: from this reconcile's full Deployment (`body`, or `rebuilt`, which
    /// is built here if need be, and then also serves as the body to write).
    func uncondensedIntent(_ workload: ConfidentialWorkload, key: ObjectKey, body: JSONValue?, rebuilt: inout DesiredState?, context: BuildContext) -> String? {
        let uid = workload.metadata.uid
        if let known = memories.recall(key, uid: uid).build?.uncondensedDigest { return known }
        if body == nil, rebuilt == nil { rebuilt = try? Self.timedBuild(workload, context: context).get() }
        guard let full = body ?? rebuilt?.deployment else { return nil }
        let digest = Names.intent.uncondensedDigest(of: full)
        memories.update(key, uid: uid) { $0.build?.uncondensedDigest = digest }
        return digest
    }

    // MARK: - Writing

    /// Applies `desired` (stamped with its intent) when the intent changed or the live object drifted.
    /// Returns the server's answer when it wrote.
    ///
    /// `desired` is compared with `live` (both as the cache keeps them; `verified`: `live` is a summary of a
    /// child already found to contain its intent); `body`, when given, makes the full object to write.
    /// `pending`: cwo's last write of the child the cache does not show yet, read *before* `live` (see
    /// `WorkloadMemories.childEvent`): `live` is then older than what the server holds, and only that write
    /// can make this one redundant (an edit undone before the watch brought its apply back finds `live`
    /// equal to the undone spec).
    /// `olderIntent`: the digest an older cwo stamped on this same intent (see `AppliedIntent.decide`).
    func apply<T: Decodable & Sendable>(
        _ resource: Resource, _ desired: JSONValue, live: JSONValue?, pending: WorkloadMemory.Written?, child: ObjectKey,
        of workload: ConfidentialWorkload, logger: Logger, verified: Bool = false, olderIntent: String? = nil,
        decided: ((AppliedIntent.Decision) -> Void)? = nil, body: (() -> JSONValue)? = nil
    ) async throws -> T? {
        // What was meant, whatever form `desired` takes (a memo keeps a settled Deployment's metadata only).
        let intent = desired[path: ["metadata", "annotations", Names.intentAnnotation]] ?? desired
        var decision = Names.intent.decide(desired: desired, live: live, verified: verified, olderDigest: olderIntent)
        if decision == .upToDate, let pending, !pending.matches(intent) { decision = .intentChanged }
        decided?(decision)
        guard decision.needsWrite, pending?.matches(intent) != true else { return nil }
        let key = ObjectKey(workload)
        let uid = workload.metadata.uid
        // Remembered as it is sent: the child's next watch event, even one before the answer (a deletion
        // right after a create), drops it. A failed request may or may not have written: the cache decides.
        memories.setWritten(key, uid: uid, resource.plural, .init(intent))
        let applied: T
        do {
            applied = try await client.apply(
                resource, namespace: child.namespace, name: child.name, body?() ?? desired, fieldManager: Names.fieldManager, force: true)
        } catch {
            memories.setWritten(key, uid: uid, resource.plural, nil)
            throw error
        }
        logger.info(decision == .create ? "created \(resource.kind)" : "updated \(resource.kind)", metadata: ["name": "\(child.name)", "why": "\(decision)"])
        return applied
    }

    /// Takes status fields that are objects and no longer apply (e.g. `keyRelease` once Key Vault is
    /// switched off) out with a merge patch first. Server-side apply would drop them itself, but a 1.20
    /// API server drops an object field by setting it to null, which the CRD's schema refuses (422), and
    /// a `nullable` schema would leave `keyRelease: null` behind for every reader.
    func removeVanishedObjects(from workload: ConfidentialWorkload, now status: JSONValue, key: ObjectKey) async throws {
        guard let previous = workload.status else { return }
        let before = try JSONValue(encoding: previous).objectValue ?? [:]
        let vanished = before.filter { $0.value.objectValue != nil && status[$0.key] == nil }.map(\.key)
        guard !vanished.isEmpty else { return }
        let patch: JSONValue = ["status": .object(Dictionary(uniqueKeysWithValues: vanished.map { ($0, JSONValue.null) }))]
        let _: Discarded = try await client.patch(
            ConfidentialWorkload.resource, namespace: key.namespace, name: key.name, subresource: "status", .merge(patch))
    }

    /// Writes status when it differs from what the workload has; returns whether it wrote.
    func writeStatus(_ status: WorkloadStatus, workload: ConfidentialWorkload, key: ObjectKey, logger: Logger) async throws -> Bool {
        let uid = workload.metadata.uid
        // cwo's last status write (remembered until the workload goes quiet): cwo alone writes its status
        // fields, so that write, not the cached status, is what the server holds of them. The cache may not
        // show it yet, even at a newer version (a label edited meanwhile): a status that went 0 -> 3 -> 0
        // replicas while the cache still held 0 must write 0 again.
        let normalized = status.normalized
        if let last = memories.written(key, uid: uid, "status") {
            if last.matches(normalized) { return false }
        } else if let current = workload.status, current.normalized.ownConditions == normalized {
            // Conditions of other types belong to other writers (server-side apply keeps them): not a difference.
            return false
        }
        let body: JSONValue = [
            "apiVersion": .string(ConfidentialWorkload.apiVersion), "kind": .string(ConfidentialWorkload.kind),
            "metadata": ["name": .string(key.name), "namespace": .string(key.namespace)],
            "status": try JSONValue(encoding: status),
        ]
        do {
            try await removeVanishedObjects(from: workload, now: body["status"] ?? [:], key: key)
            let _: Discarded = try await client.apply(
                ConfidentialWorkload.resource, namespace: key.namespace, name: key.name, subresource: "status", body,
                fieldManager: Names.fieldManager, force: true)
        } catch {
            // The write may or may not have landed (a timeout after the commit): the cache decides.
            memories.setWritten(key, uid: uid, "status", nil)
            if let error = error as? KubeError, error.reason == .notFound { return false }  // deleted meanwhile
            throw error
        }
        memories.setWritten(key, uid: uid, "status", .init(normalized))
        let before = workload.status?.condition(ConditionType.ready)
        let after = status.condition(ConditionType.ready)
        if before?.status != after?.status || before?.reason != after?.reason {
            logger.info("status", metadata: ["ready": "\(after?.status.rawValue ?? "")", "reason": "\(after?.reason ?? "")"])
        }
        return true
    }
}

extension Observation {
    /// What a valid spec's reconcile found: the artifacts' conditions (the key release's as the backend
    /// reported it), the policy, the key release status and the Deployment.
    mutating func record(_ state: DesiredState, keyReleaseCondition: ConditionInput?, release: KeyReleaseOutcome?, deployment: Deployment?, workload: String) {
        runtimeClassName = state.spec.runtimeClassName
        self.deployment = deployment
        artifactConditions = state.conditions.map { condition in
            condition.type == ConditionType.keyReleaseBound ? keyReleaseCondition ?? condition : condition
        }
        policyHash = state.policy.hash
        policyMode = state.policy.mode.rawValue
        platform = state.spec.platform.rawValue
        images = state.images
        if let initData = state.initData {
            initDataDigest = initData.digestHex
            let tee = state.spec.coco?.tee ?? .snp
            teeRegister = initData.register(tee).map { TEERegister(tee: tee.rawValue, name: $0.name, value: $0.value.hexString) }
        }
        if let kbs = state.spec.kbs {
            var status = KeyReleaseStatus(allowedHashes: state.allowedHashes, configMapName: nil, keyID: kbs.url)
            status.resources = kbs.resources.map(\.path)
            status.publishedHashes = release?.publishedHashes
            keyRelease = status
        } else if let keyVault = state.spec.keyVault {
            var status = KeyReleaseStatus(
                allowedHashes: state.allowedHashes, configMapName: KeyVaultBuilder.configMapName(workload: workload), keyID: keyVault.keyID,
                releasePolicy: keyVault.releasePolicy.rawValue)
            status.publishedHashes = release?.publishedHashes
            status.keyVersion = release?.keyVersion
            keyRelease = status
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
