import ControllerRuntime
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient
import Logging

/// Managed key release on Azure Key Vault (`spec.keyVault.releasePolicy: Managed`): the reconciler's
/// side of `KeyReleaseManager`, with memory of what Key Vault was brought to (a converged workload costs
/// no Key Vault call until the resync), backoff on failures, and the `cwo.dev/key-release` finalizer.
struct KeyVaultRelease: KeyReleaseBackend {
    let manager: KeyReleaseManager
    let memories: WorkloadMemories
    let events: WorkloadEventSink
    let finalizer: Finalizer

    init(manager: KeyReleaseManager, memories: WorkloadMemories, events: WorkloadEventSink, client: KubeClient) {
        self.manager = manager
        self.memories = memories
        self.events = events
        self.finalizer = Finalizer(KeyReleaseManager.finalizer, resource: ConfidentialWorkload.resource, client: client)
    }

    func sync(_ workload: ConfidentialWorkload, key: ObjectKey, state: DesiredState, logger: Logger) async throws -> KeyReleaseOutcome? {
        guard let settings = state.spec.keyVault, settings.releasePolicy == .managed, let maa = state.spec.attestation.maaEndpoint else {
            // Switched off (no keyVault, or Unmanaged): cwo stops managing the key and says what it still allows.
            if finalizer.isSet(on: workload.metadata) {
                try await memories.release(finalizer, from: workload)
                events.emit(.keyReleaseUnmanaged(stillAllowed: workload.status?.keyRelease?.publishedHashes ?? []), on: workload)
            }
            return nil
        }
        let uid = workload.metadata.uid
        let allowed = state.allowedHashes
        // Another key than before: cwo manages the new one and leaves the old one's release policy alone
        // (pods started with the old key may still need it), so say what it still allows.
        if let old = workload.status?.keyRelease, old.keyID != settings.keyID, let hashes = old.publishedHashes, !hashes.isEmpty {
            events.emit(.keyReleaseLeftBehind(keyID: settings.keyID, oldKeyID: old.keyID, hashes: hashes), on: workload)
        }
        let memory = memories.read(key, uid: uid)
        let remembered = memory.keyRelease.flatMap { $0.keyID == settings.keyID ? $0 : nil }
        let previous = workload.status?.keyRelease.flatMap { $0.keyID == settings.keyID ? $0 : nil }
        if let remembered, remembered.allowed == allowed, ContinuousClock.now - remembered.at < manager.options.resync {
            return Self.synced(settings, remembered.published, remembered.keyVersion, recheck: manager.options.resync - (ContinuousClock.now - remembered.at))
        }
        if let hold = memory.keyReleaseHold, ContinuousClock.now < hold.until, hold.serverAsked || hold.generation == workload.metadata.generation {
            var outcome = hold.outcome
            outcome.recheck = hold.until - ContinuousClock.now
            return outcome
        }
        let published = Self.union(previous?.publishedHashes, remembered?.published)
        let result = try await manager.sync(settings, maaEndpoint: maa, allowed: allowed, published: published) {
            // Added just before cwo first changes Key Vault for this workload, never otherwise.
            try await memories.ensure(finalizer, on: workload)
        }
        switch result {
        case .success(let synced):
            memories.update(key, uid: uid) { memory in
                memory.keyReleaseFailures = 0
                memory.keyReleaseHold = nil
                memory.keyRelease = .init(keyID: settings.keyID, allowed: allowed, published: synced.published, keyVersion: synced.keyVersion, at: .now)
            }
            if synced.wrote {
                logger.info(synced.created ? "created key" : "updated release policy", metadata: ["key": "\(settings.keyID)", "hashes": "\(allowed)"])
                let event: WorkloadEvent = synced.created
                    ? .keyCreated(keyID: settings.keyID, version: synced.keyVersion, hashes: allowed)
                    : .releasePolicyUpdated(keyID: settings.keyID, version: synced.keyVersion, hashes: allowed)
                events.emit(event, on: workload)
            }
            return Self.synced(settings, synced.published, synced.keyVersion, recheck: manager.options.resync)
        case .failure(let failure):
            logger.warning("key release", metadata: ["reason": "\(failure.reason)", "error": "\(failure.message)"])
            return memories.update(key, uid: uid) { memory in
                memory.keyRelease = nil
                memory.keyReleaseFailures += 1
                let delay = failure.retryAfter ?? Backoff.jittered(base: .seconds(1), attempt: memory.keyReleaseFailures, cap: .seconds(300))
                let outcome = KeyReleaseOutcome(
                    condition: ConditionInput(ConditionType.keyReleaseBound, .false, failure.reason, failure.message),
                    publishedHashes: published.isEmpty ? nil : published, keyVersion: previous?.keyVersion, recheck: delay)
                memory.keyReleaseHold = .init(
                    until: .now + delay, generation: workload.metadata.generation ?? 0, serverAsked: failure.retryAfter != nil, outcome: outcome)
                return outcome
            }
        }
    }

    static func synced(_ settings: KeyVaultSettings, _ hashes: [String], _ version: String, recheck: Duration) -> KeyReleaseOutcome {
        KeyReleaseOutcome(
            condition: ConditionInput(
                ConditionType.keyReleaseBound, .true, "ReleasePolicySynced",
                "Key Vault key \(settings.keyID) (version \(version)) releases to \(WorkloadEvent.policyHashes(hashes)); cwo keeps its release policy in sync"),
            publishedHashes: hashes, keyVersion: version, recheck: recheck)
    }

    /// Takes the workload's hashes out of the release policy, then lets it go. Bounded by
    /// `cleanupTimeout` from the deletion, so a broken Key Vault never leaves a workload stuck.
    func finalize(_ workload: ConfidentialWorkload, key: ObjectKey, logger: Logger) async throws -> ReconcileResult {
        guard finalizer.isSet(on: workload.metadata) else { return .done }
        let memory = memories.read(key, uid: workload.metadata.uid)
        let status = workload.status?.keyRelease
        let hashes = Self.union(status?.publishedHashes, memory.keyRelease?.published)
        let keyID = memory.keyRelease?.keyID ?? status?.keyID ?? ""
        guard let range = keyID.firstRange(of: "/keys/") else {
            try await memories.release(finalizer, from: workload)
            return .done
        }
        let vault = String(keyID[..<range.lowerBound])
        let keyName = String(keyID[range.upperBound...])
        switch try await manager.cleanup(vault: vault, keyName: keyName, hashes: hashes) {
        case .success(let wrote):
            try await memories.release(finalizer, from: workload)
            if wrote {
                logger.info("removed hashes from release policy", metadata: ["key": "\(keyID)", "hashes": "\(hashes)"])
                events.emit(.releasePolicyCleanedUp(keyID: keyID, hashes: hashes), on: workload)
            }
            return .done
        case .failure(let failure):
            let deleted = workload.metadata.deletionTimestamp.flatMap { try? Date($0, strategy: .iso8601) } ?? Date()
            let waited = Date().timeIntervalSince(deleted)
            let limit = Double(manager.options.cleanupTimeout.components.seconds)
            if waited >= limit {
                try await memories.release(finalizer, from: workload)
                logger.warning("gave up cleaning the release policy", metadata: ["key": "\(keyID)", "reason": "\(failure.reason)"])
                events.emit(.keyReleaseCleanupFailed(keyID: keyID, waited: Int(waited), message: failure.message, hashes: hashes), on: workload)
                return .done
            }
            let attempts = memories.recordFailure(workload)
            if attempts == 1 { events.emit(.cleanupRefused(reason: failure.reason, keyID: keyID, message: failure.message), on: workload) }
            let delay = failure.retryAfter ?? Backoff.jittered(base: .seconds(1), attempt: attempts, cap: .seconds(60))
            return .requeue(after: min(delay, .seconds(max(1, Int64(limit - waited) + 1))))
        }
    }


    /// The hashes cwo published: what status says, plus what it published since (status may lag).
    static func union(_ status: [String]?, _ remembered: [String]?) -> [String] {
        Array(Set(status ?? []).union(remembered ?? [])).sorted()
    }
}
