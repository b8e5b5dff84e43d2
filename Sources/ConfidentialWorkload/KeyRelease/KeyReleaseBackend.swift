import ControllerRuntime
import KubernetesClient
import Logging

/// Where a workload's secrets are released from, kept in step with its policy hashes: Azure Key Vault
/// today, a Trustee KBS for upstream Confidential Containers next. The reconciler decides the order
/// (the new hash is allowed before the Deployment carries it, old ones go once the rollout is over);
/// a backend does its side of it and says how it went.
protocol KeyReleaseBackend: Sendable {
    /// Brings the release policy to `state.allowedHashes`. nil when this workload has no release managed
    /// by this backend (then any finalizer of the backend is removed).
    func sync(_ workload: ConfidentialWorkload, key: ObjectKey, state: DesiredState, logger: Logger) async throws -> KeyReleaseOutcome?

    /// A workload being deleted: withdraw its hashes, then let it go (bounded in time).
    func finalize(_ workload: ConfidentialWorkload, key: ObjectKey, logger: Logger) async throws -> ReconcileResult
}

/// How a key release sync went: the `KeyReleaseBound` condition, what status says about the release,
/// and when to look again.
struct KeyReleaseOutcome: Sendable {
    var condition: ConditionInput
    var publishedHashes: [String]?
    var keyVersion: String?
    var recheck: Duration

    /// Whether the broker allows the new hash: until then the Deployment keeps its old template.
    var allowsNewHash: Bool { condition.status == .true }
}
