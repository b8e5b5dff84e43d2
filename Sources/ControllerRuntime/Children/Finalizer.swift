import KubernetesClient

/// One finalizer of one resource, added and removed as a compare-and-swap on `resourceVersion`, so a
/// concurrent edit of the list (another controller's finalizer) is never lost: the write fails with a
/// conflict and the reconcile runs again on fresh data.
///
/// Like kube-rs's `finalizer` helper, minus the policy: the caller decides when the finalizer is
/// needed (cwo adds its own just before its first external write, not on every object).
public struct Finalizer: Sendable {
    public let name: String
    let client: KubeClient
    let resource: Resource

    public init(_ name: String, resource: Resource, client: KubeClient) {
        self.name = name
        self.resource = resource
        self.client = client
    }

    public func isSet(on metadata: ObjectMeta) -> Bool {
        metadata.finalizers?.contains(name) == true
    }

    /// Adds the finalizer unless the object has it.
    public func add(to metadata: ObjectMeta) async throws {
        guard !isSet(on: metadata) else { return }
        try await write((metadata.finalizers ?? []) + [name], of: metadata)
    }

    /// Removes the finalizer; an object already gone is fine.
    public func remove(from metadata: ObjectMeta) async throws {
        guard isSet(on: metadata) else { return }
        do {
            try await write((metadata.finalizers ?? []).filter { $0 != name }, of: metadata)
        } catch let error as KubeError where error.reason == .notFound {
            // Already gone.
        }
    }

    private func write(_ finalizers: [String], of metadata: ObjectMeta) async throws {
        let patch: JSONValue = [
            "metadata": ["finalizers": .array(finalizers.map { .string($0) }), "resourceVersion": .string(metadata.resourceVersion ?? "")],
        ]
        let _: Discarded = try await client.patch(resource, namespace: metadata.namespace, name: metadata.name ?? "", .merge(patch))
    }
}
