import ControllerRuntime
import KubernetesClient

/// Every event cwo records on a workload, typed: reasons are a contract (`kubectl describe`, alerts),
/// and nothing decides on an event by reading a message.
enum WorkloadEvent: Sendable, Equatable {
    case policyGenerated(mode: String, hash: String)
    case rolloutStarted(hash: String, previous: String)
    /// The spec cannot run (`InvalidSpec`) or its policy cannot be had (`PolicyConfigMapNotFound`, `InvalidPolicy`).
    case specRejected(reason: String, message: String)
    case specWarning([String])
    case insecurePolicy(message: String)
    case keyReleaseFailed(reason: String, message: String)
    case keyCreated(keyID: String, version: String, hashes: [String])
    case releasePolicyUpdated(keyID: String, version: String, hashes: [String])
    case keyReleaseLeftBehind(keyID: String, oldKeyID: String, hashes: [String])
    case keyReleaseUnmanaged(stillAllowed: [String])
    case releasePolicyCleanedUp(keyID: String, hashes: [String])
    case keyReleaseCleanupFailed(keyID: String, waited: Int, message: String, hashes: [String])
    case cleanupRefused(reason: String, keyID: String, message: String)
    case childDeleted(kind: String, name: String, feature: String)
    case resourcePolicyUpdated(kbs: String, digests: [String])
    /// A tag now resolves to another digest: the container rolls out to it.
    case imageDigestChanged(container: String, reference: String, digest: String, previous: String)

    var type: EventRecorder.EventType {
        switch self {
        case .policyGenerated, .rolloutStarted, .keyCreated, .releasePolicyUpdated, .keyReleaseUnmanaged, .releasePolicyCleanedUp, .childDeleted,
            .resourcePolicyUpdated, .imageDigestChanged:
            .normal
        case .specRejected, .specWarning, .insecurePolicy, .keyReleaseFailed, .keyReleaseLeftBehind, .keyReleaseCleanupFailed, .cleanupRefused:
            .warning
        }
    }

    var reason: String {
        switch self {
        case .policyGenerated: "PolicyGenerated"
        case .rolloutStarted: "RolloutStarted"
        case .specRejected(let reason, _), .keyReleaseFailed(let reason, _), .cleanupRefused(let reason, _, _): reason
        case .specWarning: "SpecWarning"
        case .insecurePolicy: "InsecurePolicy"
        case .keyCreated: "KeyCreated"
        case .releasePolicyUpdated: "ReleasePolicyUpdated"
        case .keyReleaseLeftBehind: "KeyReleaseLeftBehind"
        case .keyReleaseUnmanaged: "KeyReleaseUnmanaged"
        case .releasePolicyCleanedUp: "ReleasePolicyCleanedUp"
        case .keyReleaseCleanupFailed: "KeyReleaseCleanupFailed"
        case .childDeleted: "ChildDeleted"
        case .resourcePolicyUpdated: "ResourcePolicyUpdated"
        case .imageDigestChanged: "ImageDigestChanged"
        }
    }

    var note: String {
        switch self {
        case .policyGenerated(let mode, let hash):
            "\(mode) policy \(hash)"
        case .rolloutStarted(let hash, let previous):
            "pod template now runs policy \(hash) (was \(previous)); key release allows both until the rollout completes"
        case .specRejected(_, let message), .insecurePolicy(let message), .keyReleaseFailed(_, let message):
            message
        case .specWarning(let warnings):
            warnings.joined(separator: "; ")
        case .keyCreated(let keyID, let version, let hashes), .releasePolicyUpdated(let keyID, let version, let hashes):
            "\(keyID) (version \(version)) releases to \(Self.policyHashes(hashes))"
        case .keyReleaseLeftBehind(let keyID, let oldKeyID, let hashes):
            "cwo now manages \(keyID); the release policy of \(oldKeyID) still allows \(Self.policyHashes(hashes)): remove \(hashes.count == 1 ? "it" : "them") once no pod uses that key"
        case .keyReleaseUnmanaged(let hashes):
            "cwo no longer manages the key's release policy\(hashes.isEmpty ? "" : "; it still allows " + hashes.joined(separator: ", "))"
        case .releasePolicyCleanedUp(let keyID, let hashes):
            "removed \(Self.policyHashes(hashes)) from the release policy of \(keyID)"
        case .keyReleaseCleanupFailed(let keyID, let waited, let message, let hashes):
            "gave up after \(waited) s: \(message); the release policy of \(keyID) still allows \(hashes.joined(separator: ", ")): remove them by hand"
        case .cleanupRefused(_, let keyID, let message):
            "cleaning up the release policy of \(keyID): \(message)"
        case .childDeleted(let kind, let name, let feature):
            "deleted \(kind) \(name): \(feature) is no longer in the spec"
        case .resourcePolicyUpdated(let kbs, let digests):
            digests.isEmpty
                ? "withdrew this workload's resources from the resource policy of \(kbs)"
                : "the resource policy of \(kbs) releases this workload's resources to initdata \(digests.count == 1 ? "digest" : "digests") \(digests.joined(separator: ", "))"
        case .imageDigestChanged(let container, let reference, let digest, let previous):
            "container \(container): \(reference) now resolves to \(digest) (was \(previous))"
        }
    }

    /// "policy hash a" or "policy hashes a, b", for messages.
    static func policyHashes(_ hashes: [String]) -> String {
        "policy \(hashes.count == 1 ? "hash" : "hashes") \(hashes.joined(separator: ", "))"
    }

    /// What a user should see in `kubectl describe cw` for a status change: transitions only, never one
    /// event per reconcile, and nothing every new workload would get that its status already says.
    static func transitions(from old: WorkloadStatus?, to new: WorkloadStatus, specErrors: SpecErrors?, warnings: [String]) -> [WorkloadEvent] {
        var events: [WorkloadEvent] = []
        // A new workload's policy is in its status; only a change of an existing one is news.
        if let hash = new.policyHash, let previous = old?.policyHash, hash != previous {
            events.append(.policyGenerated(mode: new.policyMode ?? "", hash: hash))
            events.append(.rolloutStarted(hash: hash, previous: previous))
        }
        if let errors = specErrors, let ready = new.condition(ConditionType.ready), old?.condition(ConditionType.ready)?.message != ready.message {
            events.append(.specRejected(reason: errors.reason, message: ready.message))
        }
        if let bound = new.condition(ConditionType.keyReleaseBound), bound.status == .false,
            old?.condition(ConditionType.keyReleaseBound)?.reason != bound.reason
        {
            events.append(.keyReleaseFailed(reason: bound.reason, message: bound.message))
        }
        for image in new.images ?? [] {
            if let before = old?.images?.first(where: { $0.name == image.name && $0.reference == image.reference }), before.digest != image.digest {
                events.append(.imageDigestChanged(container: image.name, reference: image.reference, digest: image.digest, previous: before.digest))
            }
        }
        // Said again for each new policy (its hash is not in the message).
        if let policy = new.condition(ConditionType.policyReady),
            policy.message != old?.condition(ConditionType.policyReady)?.message || new.policyHash != old?.policyHash
        {
            if policy.reason == Reason.allowAllInsecure { events.append(.insecurePolicy(message: policy.message)) }
            if !warnings.isEmpty { events.append(.specWarning(warnings)) }
        }
        return events
    }
}

/// Records workload events; without a recorder (tests, `cwo render`) it does nothing.
struct WorkloadEventSink: Sendable {
    let recorder: EventRecorder?

    func emit(_ event: WorkloadEvent, on workload: ConfidentialWorkload) {
        recorder?.record(
            regarding: workload.metadata, apiVersion: ConfidentialWorkload.apiVersion, kind: ConfidentialWorkload.kind, type: event.type,
            reason: event.reason, action: "Reconcile", note: event.note)
    }
}
