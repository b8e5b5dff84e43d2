import ControllerRuntime
import Foundation
import KubernetesClient
import Logging
import Synchronization

/// Reconciles one ConfidentialWorkload: reads the caches, computes the desired objects with the pure
/// builders, applies only what differs, and writes status only when it changed.
public final class WorkloadReconciler: Reconciler {
    let client: KubeClient
    let workloads: Store<ConfidentialWorkload>
    let deployments: Store<Deployment>
    let runtimeClasses: Store<UntypedObject>
    let logger: Logger
    let now: @Sendable () -> String
    /// Our last writes per workload, to recognise a cache that has not yet caught up with them.
    private let memo = Mutex<[ObjectKey: Memo]>([:])

    struct Memo {
        var deploymentBody: JSONValue?
        var deploymentVersionBefore: String?
        var status: WorkloadStatus?
        var statusVersionBefore: String?
    }

    public init(
        client: KubeClient, workloads: Store<ConfidentialWorkload>, deployments: Store<Deployment>, runtimeClasses: Store<UntypedObject>,
        logger: Logger, now: @escaping @Sendable () -> String = { StatusBuilder.timestamp() }
    ) {
        self.client = client
        self.workloads = workloads
        self.deployments = deployments
        self.runtimeClasses = runtimeClasses
        self.logger = logger
        self.now = now
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard let workload = workloads.get(key) else {
            // Deleted: owner references let the garbage collector remove the children.
            memo.withLock { _ = $0.removeValue(forKey: key) }
            return .done
        }
        if workload.metadata.deletionTimestamp != nil { return .done }
        var logger = self.logger
        logger[metadataKey: "workload"] = "\(key)"

        var deployment = deployments.get(key)
        let desired = DesiredState.build(workload)
        var observation = Observation(
            generation: workload.metadata.generation ?? 0, deploymentName: key.name, specErrors: nil, runtimeClassName: nil,
            runtimeClassExists: false, deployment: deployment)

        switch desired {
        case .failure(let errors):
            // Leave a running Deployment alone: an invalid edit must not take a working workload down.
            observation.specErrors = errors
            logger.info("invalid spec", metadata: ["reason": "\(errors.reason)", "error": "\(errors)"])
        case .success(let state):
            observation.runtimeClassName = state.spec.runtimeClassName
            observation.runtimeClassExists = runtimeClasses.get(ObjectKey(namespace: "", name: state.spec.runtimeClassName)) != nil
            if let applied = try await applyDeployment(state.deployment, live: deployment, key: key, logger: logger) {
                deployment = applied
                observation.deployment = applied
            }
        }

        let status = StatusBuilder.status(observation, previous: workload.status, now: now())
        try await writeStatus(status, workload: workload, key: key, logger: logger)
        return .done
    }

    /// Applies the Deployment unless the live one already has every field of the body. Returns the
    /// server's answer when it wrote.
    func applyDeployment(_ body: JSONValue, live: Deployment?, key: ObjectKey, logger: Logger) async throws -> Deployment? {
        if let live, AppliedState.contains(live.comparable, body) { return nil }
        let version = live?.metadata.resourceVersion
        let alreadyWritten = memo.withLock { $0[key].map { $0.deploymentBody == body && $0.deploymentVersionBefore == version } ?? false }
        if alreadyWritten { return nil }
        let applied: Deployment = try await client.apply(
            .deployments, namespace: key.namespace, name: key.name, body, fieldManager: Names.fieldManager, force: true)
        memo.withLock {
            $0[key, default: Memo()].deploymentBody = body
            $0[key, default: Memo()].deploymentVersionBefore = version
        }
        logger.info(live == nil ? "created deployment" : "updated deployment", metadata: ["generation": "\(applied.metadata.generation ?? 0)"])
        return applied
    }

    func writeStatus(_ status: WorkloadStatus, workload: ConfidentialWorkload, key: ObjectKey, logger: Logger) async throws {
        if let current = workload.status, current.normalized == status.normalized { return }
        let version = workload.metadata.resourceVersion
        let alreadyWritten = memo.withLock { $0[key].map { $0.status == status && $0.statusVersionBefore == version } ?? false }
        if alreadyWritten { return }
        let body: JSONValue = [
            "apiVersion": .string(ConfidentialWorkload.apiVersion), "kind": .string(ConfidentialWorkload.kind),
            "metadata": ["name": .string(key.name), "namespace": .string(key.namespace)],
            "status": try JSONValue(encoding: status),
        ]
        do {
            let _: UntypedObject = try await client.apply(
                ConfidentialWorkload.resource, namespace: key.namespace, name: key.name, subresource: "status", body,
                fieldManager: Names.fieldManager, force: true)
        } catch let error as KubeError where error.reason == .notFound {
            return  // deleted meanwhile
        }
        memo.withLock {
            $0[key, default: Memo()].status = status
            $0[key, default: Memo()].statusVersionBefore = version
        }
        if workload.status?.condition(ConditionType.ready)?.status != status.condition(ConditionType.ready)?.status
            || workload.status?.condition(ConditionType.ready)?.reason != status.condition(ConditionType.ready)?.reason
        {
            let ready = status.condition(ConditionType.ready)
            logger.info("status", metadata: ["ready": "\(ready?.status.rawValue ?? "")", "reason": "\(ready?.reason ?? "")"])
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
