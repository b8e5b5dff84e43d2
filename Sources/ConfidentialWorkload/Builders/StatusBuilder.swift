#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KubernetesClient

/// What the status is computed from: everything observed, nothing remembered.
public struct Observation: Sendable {
    public var generation: Int64
    public var deploymentName: String
    /// nil: the workload is valid; otherwise why not.
    public var specErrors: SpecErrors?
    public var runtimeClassName: String?
    public var runtimeClassExists: Bool
    public var deployment: Deployment?
    /// Extra conditions from the artifact builders (policy, attestation, key release), in order.
    public var artifactConditions: [ConditionInput] = []
    public var policyHash: String?
    public var policyMode: String?
    public var keyRelease: KeyReleaseStatus?
    public var platform: String?
    public var initDataDigest: String?
    public var teeRegister: TEERegister?
    public var images: [ImageStatus]?
    /// Why the API server refused cwo's write of the Deployment (its message), if it did.
    public var deploymentRejection: String?

    public init(
        generation: Int64, deploymentName: String, specErrors: SpecErrors?, runtimeClassName: String?, runtimeClassExists: Bool,
        deployment: Deployment?
    ) {
        self.generation = generation
        self.deploymentName = deploymentName
        self.specErrors = specErrors
        self.runtimeClassName = runtimeClassName
        self.runtimeClassExists = runtimeClassExists
        self.deployment = deployment
    }
}

/// A condition before its transition time is known.
public struct ConditionInput: Sendable, Hashable {
    public var type: String
    public var status: ConditionStatus
    public var reason: String
    public var message: String

    public init(_ type: String, _ status: ConditionStatus, _ reason: String, _ message: String) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
    }
}

public enum StatusBuilder {
    /// The status to write. `previous` supplies transition times: a condition whose status did not
    /// flip keeps its `lastTransitionTime`, so an unchanged world yields an identical status.
    public static func status(_ observation: Observation, previous: WorkloadStatus?, now: String) -> WorkloadStatus {
        var inputs: [ConditionInput] = []
        if let errors = observation.specErrors {
            let message = String(errors.description.prefix(32_000))
            if errors.reason == Reason.initDataTooLarge {
                inputs.append(ConditionInput(ConditionType.initDataReady, .false, errors.reason, message))
            } else if errors.reason != Reason.invalidSpec {
                // The spec is fine but its policy cannot be had (e.g. the Provided ConfigMap is missing).
                inputs.append(ConditionInput(ConditionType.policyReady, .false, errors.reason, message))
            }
            inputs.append(ConditionInput(ConditionType.ready, .false, errors.reason, message))
        } else {
            if observation.runtimeClassExists {
                inputs.append(ConditionInput(ConditionType.runtimeClassAvailable, .true, Reason.runtimeClassFound, "RuntimeClass \(observation.runtimeClassName ?? "") exists"))
            } else {
                inputs.append(ConditionInput(
                    ConditionType.runtimeClassAvailable, .false, Reason.runtimeClassNotFound,
                    "RuntimeClass \(observation.runtimeClassName ?? "") does not exist: install confidential containers on a node pool (AKS: --workload-runtime KataCcIsolation)"))
            }
            inputs.append(contentsOf: observation.artifactConditions)
            inputs.append(deploymentAvailable(observation))
            let blocking = inputs.first { $0.status != .true }
            if let blocking {
                inputs.append(ConditionInput(ConditionType.ready, blocking.status == .unknown ? .unknown : .false, blocking.reason, "\(blocking.type): \(blocking.message)"))
            } else {
                inputs.append(ConditionInput(ConditionType.ready, .true, Reason.ready, "the workload runs on the confidential runtime"))
            }
        }

        var status = WorkloadStatus()
        status.observedGeneration = observation.generation
        status.deploymentName = observation.specErrors == nil || observation.deployment != nil ? observation.deploymentName : nil
        status.replicas = observation.deployment?.status?.replicas ?? 0
        status.readyReplicas = observation.deployment?.status?.readyReplicas ?? 0
        // While the spec is invalid the running Deployment is left alone, and so is what status says about it.
        let keep = observation.specErrors != nil
        status.policyHash = keep ? previous?.policyHash : observation.policyHash
        status.policyMode = keep ? previous?.policyMode : observation.policyMode
        status.keyRelease = keep ? previous?.keyRelease : observation.keyRelease
        status.platform = keep ? previous?.platform : observation.platform
        status.initDataDigest = keep ? previous?.initDataDigest : observation.initDataDigest
        status.teeRegister = keep ? previous?.teeRegister : observation.teeRegister
        status.images = keep ? previous?.images : observation.images
        status.conditions = inputs.map { input in
            let old = previous?.condition(input.type)
            let time = old.flatMap { $0.status == input.status ? $0.lastTransitionTime : nil } ?? now
            return Condition(
                type: input.type, status: input.status, observedGeneration: observation.generation, lastTransitionTime: time,
                reason: input.reason, message: input.message)
        }
        return status
    }

    /// Mirrors the Deployment's own `Available` condition, once the Deployment controller has seen the current spec.
    static func deploymentAvailable(_ observation: Observation) -> ConditionInput {
        if let rejection = observation.deploymentRejection {
            return ConditionInput(
                ConditionType.deploymentAvailable, .false, Reason.deploymentRejected,
                "the API server refused Deployment \(observation.deploymentName): \(rejection.prefix(4096))")
        }
        guard let deployment = observation.deployment else {
            return ConditionInput(ConditionType.deploymentAvailable, .false, Reason.deploymentPending, "Deployment \(observation.deploymentName) does not exist yet")
        }
        let observed = deployment.status?.observedGeneration ?? 0
        guard observed >= (deployment.metadata.generation ?? 0),
            let available = deployment.status?.conditions?.first(where: { $0.type == "Available" })
        else {
            return ConditionInput(
                ConditionType.deploymentAvailable, .unknown, Reason.deploymentNotObserved,
                "the Deployment controller has not reported on generation \(deployment.metadata.generation ?? 0) yet")
        }
        let status = ConditionStatus(rawValue: available.status) ?? .unknown
        let reason = available.reason.flatMap { $0.isEmpty ? nil : $0 } ?? (status == .true ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable")
        return ConditionInput(ConditionType.deploymentAvailable, status, reason, available.message ?? "")
    }

    /// RFC 3339 in UTC, second precision, as metav1.Time.
    public static func timestamp(_ date: Date = Date()) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
    }
}
