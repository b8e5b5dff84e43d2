@testable import ConfidentialWorkload
import KubernetesClient
import Testing

/// Events come from typed transitions of status, never from reading messages.
@Suite struct WorkloadEventTests {
    func status(hash: String? = nil, mode: String = "Generated", _ conditions: [(String, ConditionStatus, String, String)]) -> WorkloadStatus {
        var status = WorkloadStatus()
        status.policyHash = hash
        status.policyMode = hash == nil ? nil : mode
        status.conditions = conditions.map { Condition(type: $0.0, status: $0.1, observedGeneration: 1, lastTransitionTime: "t", reason: $0.2, message: $0.3) }
        return status
    }

    @Test func aNewHashIsAPolicyAndARollout() {
        let old = status(hash: "a", [])
        let new = status(hash: "b", [])
        #expect(WorkloadEvent.transitions(from: nil, to: old, specErrors: nil, warnings: []).isEmpty, "a new workload's hash is in its status")
        #expect(WorkloadEvent.transitions(from: old, to: new, specErrors: nil, warnings: []) == [
            .policyGenerated(mode: "Generated", hash: "b"), .rolloutStarted(hash: "b", previous: "a"),
        ])
        #expect(WorkloadEvent.transitions(from: new, to: new, specErrors: nil, warnings: []).isEmpty, "nothing changed, no event")
    }

    @Test func aMovedTagIsAnImageDigestChange() {
        var old = status([])
        old.images = [ImageStatus(name: "app", reference: "r/app:v1", digest: "sha256:1"), ImageStatus(name: "side", reference: "r/side:v1", digest: "sha256:s")]
        var new = old
        new.images?[0].digest = "sha256:2"
        let events = WorkloadEvent.transitions(from: old, to: new, specErrors: nil, warnings: [])
        #expect(events == [.imageDigestChanged(container: "app", reference: "r/app:v1", digest: "sha256:2", previous: "sha256:1")])
        #expect(events.first?.reason == "ImageDigestChanged" && events.first?.type == .normal)
        // A first resolution, or another reference in the template, is no move.
        #expect(WorkloadEvent.transitions(from: status([]), to: new, specErrors: nil, warnings: []).isEmpty)
        var edited = new
        edited.images?[0] = ImageStatus(name: "app", reference: "r/app:v2", digest: "sha256:3")
        #expect(WorkloadEvent.transitions(from: new, to: edited, specErrors: nil, warnings: []).isEmpty)
    }

    @Test func aRejectedSpecIsOneWarningPerMessage() {
        let errors = SpecErrors([SpecError("spec.policy.configMapRef", "ConfigMap p was not found", reason: "PolicyConfigMapNotFound")])
        let rejected = status([("Ready", .false, "PolicyConfigMapNotFound", "ConfigMap p was not found")])
        let events = WorkloadEvent.transitions(from: nil, to: rejected, specErrors: errors, warnings: [])
        #expect(events == [.specRejected(reason: "PolicyConfigMapNotFound", message: "ConfigMap p was not found")])
        #expect(events.first?.type == .warning && events.first?.reason == "PolicyConfigMapNotFound")
        #expect(WorkloadEvent.transitions(from: rejected, to: rejected, specErrors: errors, warnings: []).isEmpty)
    }

    @Test func warningsAndInsecurePoliciesAreSaidWhenPolicyReadyChanges() {
        let insecure = status(hash: "h", mode: "AllowAll", [("PolicyReady", .true, "AllowAllInsecure", "INSECURE; warnings: no limits")])
        let events = WorkloadEvent.transitions(from: nil, to: insecure, specErrors: nil, warnings: ["no limits"])
        #expect(events.map(\.reason) == ["InsecurePolicy", "SpecWarning"])
        #expect(events.last?.note == "no limits")
    }

    @Test func aNewPolicyWithTheSameMessageWarnsAgain() {
        let before = status(hash: "a", mode: "AllowAll", [("PolicyReady", .true, "AllowAllInsecure", "INSECURE; warnings: no limits")])
        var after = before
        after.policyHash = "b"
        #expect(WorkloadEvent.transitions(from: before, to: before, specErrors: nil, warnings: ["no limits"]).isEmpty)
        #expect(WorkloadEvent.transitions(from: before, to: after, specErrors: nil, warnings: ["no limits"]).map(\.reason)
            == ["PolicyGenerated", "RolloutStarted", "InsecurePolicy", "SpecWarning"])
    }

    @Test func aKeyReleaseFailureIsSaidOncePerReason() {
        let failing = status([("KeyReleaseBound", .false, "KeyVaultForbidden", "no role")])
        #expect(WorkloadEvent.transitions(from: nil, to: failing, specErrors: nil, warnings: []) == [.keyReleaseFailed(reason: "KeyVaultForbidden", message: "no role")])
        let again = status([("KeyReleaseBound", .false, "KeyVaultForbidden", "no role, still")])
        #expect(WorkloadEvent.transitions(from: failing, to: again, specErrors: nil, warnings: []).isEmpty)
    }
}
