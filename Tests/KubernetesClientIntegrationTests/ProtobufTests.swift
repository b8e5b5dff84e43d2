import Foundation
@testable import KubernetesClient
import Testing
import TestSupport

/// ReplicaSets are listed and watched as protobuf (`ReplicaSetSummary` is `ProtobufDecodable`): what the
/// client reads must be exactly what the JSON encoding of the same objects says.
@Suite("Protobuf lists and watches against the real control plane")
struct ProtobufTests {
    /// Longer than `ReplicaSetSummary.maximumKeptValue`: an agent policy's size.
    let longValue = String(repeating: "cG9saWN5", count: 6_000)

    func replicaSet(_ name: String, replicas: Int, owner: UntypedObject? = nil) -> JSONValue {
        var metadata: JSONValue = [
            "name": .string(name), "labels": ["app": .string(name), "cwo.dev/workload": "w"],
            "annotations": ["note": "kept", "deployment.kubernetes.io/revision": "3"],
        ]
        if let owner {
            metadata["ownerReferences"] = [["apiVersion": "v1", "kind": "ConfigMap", "name": .string(owner.name), "uid": .string(owner.metadata.uid ?? ""),
                "controller": true, "blockOwnerDeletion": true]]
        }
        return [
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata,
            "spec": [
                "replicas": .number(Double(replicas)), "selector": ["matchLabels": ["app": .string(name)]],
                "template": [
                    "metadata": ["labels": ["app": .string(name)], "annotations": ["cwo.dev/policy-hash": "abc123", "policy": .string(longValue), "empty": ""]],
                    "spec": ["containers": [["name": "app", "image": "registry.example/app:1"]]],
                ],
            ],
        ]
    }

    /// The JSON encoding of the namespace's ReplicaSets, read through the JSON path of `ReplicaSetSummary`.
    func fromJSON(_ client: KubeClient, _ namespace: String) async throws -> [ReplicaSetSummary] {
        let list: ObjectList<UntypedObject> = try await client.list(.replicaSets, namespace: namespace)
        return try list.items.map { try $0.raw.decode(as: ReplicaSetSummary.self) }
    }

    @Test func aListReadAsProtobufEqualsTheJSONEncoding() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("protobuf-list")
        let owner: UntypedObject = try await client.create(.configMaps, namespace: ns, try UntypedObject(["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "owner"]]))
        for (index, replicas) in [2, 0, 1].enumerated() {
            let _: UntypedObject = try await client.create(.replicaSets, namespace: ns, try UntypedObject(replicaSet("rs-\(index)", replicas: replicas, owner: owner)))
        }
        // The controller manager creates the pods; wait until every ReplicaSet counts them.
        let json = try await eventually(timeout: .seconds(30), "ReplicaSets counting their pods") { () -> [ReplicaSetSummary]? in
            let summaries = try await fromJSON(client, ns)
            return summaries.map(\.replicas).sorted() == [0, 1, 2] ? summaries : nil
        }
        // One item a page: the continue token of a protobuf list pages like JSON's.
        let paged: ObjectList<ReplicaSetSummary> = try await client.listAll(.replicaSets, namespace: ns, pageSize: 1)
        #expect(paged.items.sorted { $0.name < $1.name } == json.sorted { $0.name < $1.name })
        #expect(paged.metadata.resourceVersion?.isEmpty == false)

        let first = try #require(paged.items.first { $0.name == "rs-0" })
        #expect(first.replicas == 2)
        #expect(first.templateAnnotations == ["cwo.dev/policy-hash": "abc123", "empty": ""])
        #expect(first.metadata.ownerReferences?.first?.uid == owner.metadata.uid)
        #expect(first.metadata.ownerReferences?.first?.controller == true)
        #expect(first.metadata.labels?["cwo.dev/workload"] == "w")
        #expect(first.metadata.creationTimestamp?.hasSuffix("Z") == true)
    }

    @Test func aWatchReadAsProtobufDeliversEveryChange() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("protobuf-watch")
        let list: ObjectList<ReplicaSetSummary> = try await client.list(.replicaSets, namespace: ns)
        let stream: WatchStream<ReplicaSetSummary> = try await client.watch(
            .replicaSets, namespace: ns, options: .init(resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 60))
        let _: UntypedObject = try await client.create(.replicaSets, namespace: ns, try UntypedObject(replicaSet("rs", replicas: 0)))
        let _: UntypedObject = try await client.patch(.replicaSets, namespace: ns, name: "rs", .merge(["metadata": ["annotations": ["note": "changed"]]]))
        try await client.delete(.replicaSets, namespace: ns, name: "rs")

        var seen: [String] = []
        for try await event in stream {
            switch event {
            case .added(let object): seen.append("ADDED \(object.name) \(object.metadata.annotations?["note"] ?? "")")
            case .modified(let object): seen.append("MODIFIED \(object.name) \(object.metadata.annotations?["note"] ?? "")")
            case .deleted(let object): seen.append("DELETED \(object.name)")
            case .bookmark: continue
            }
            if seen.last?.hasPrefix("DELETED") == true { break }
        }
        // The controller manager may write the status in between; the changes we made arrive in order.
        #expect(seen.first == "ADDED rs kept")
        #expect(seen.contains("MODIFIED rs changed"))
        #expect(seen.last == "DELETED rs")
    }

    /// Deployment `web` with a pod template annotation as long as an agent policy.
    func deployment(tier: String) -> JSONValue {
        [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": ["name": "web", "labels": ["tier": .string(tier)], "annotations": ["note": "kept"]],
            "spec": [
                "replicas": 1, "selector": ["matchLabels": ["app": "web"]],
                "template": [
                    "metadata": ["labels": ["app": "web"], "annotations": ["policy": .string(longValue)]],
                    "spec": ["containers": [["name": "app", "image": "registry.example/app:1"]]],
                ],
            ],
        ]
    }

    /// The answer to an apply, read as `DeploymentOutline` (protobuf): the metadata and the rollout's status
    /// the JSON encoding of the same version has; the spec (its long annotation) is not read.
    @Test func anApplyAnswerReadAsProtobufEqualsTheJSONEncoding() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("protobuf-apply")
        let created: DeploymentOutline = try await client.apply(.deployments, namespace: ns, name: "web", deployment(tier: "1"), fieldManager: "test", force: true)
        #expect(created.metadata.generation == 1)
        #expect(created.metadata.labels == ["tier": "1"])
        #expect(created.metadata.annotations?["note"] == "kept")
        // The controller manager reports on the rollout (its pods never run here: Progressing, not Available).
        _ = try await eventually(timeout: .seconds(30), "the Deployment's status") { () -> Bool? in
            let json: UntypedObject = try await client.get(.deployments, namespace: ns, name: "web")
            return (json.raw[path: ["status", "conditions"]]?.arrayValue?.count ?? 0) >= 1 ? true : nil
        }
        // A label change keeps the generation; the answer carries the status as it is.
        let changed: DeploymentOutline = try await client.apply(.deployments, namespace: ns, name: "web", deployment(tier: "2"), fieldManager: "test", force: true)
        #expect(changed.metadata.generation == 1)
        #expect(changed.metadata.labels == ["tier": "2"])
        // The same version as JSON: equal metadata (but the managed fields, never read) and status.
        let (outline, json) = try await eventually("protobuf and JSON reads of one version") { () -> (DeploymentOutline, Deployment)? in
            let outline: DeploymentOutline = try await client.get(.deployments, namespace: ns, name: "web")
            let json: UntypedObject = try await client.get(.deployments, namespace: ns, name: "web")
            let deployment = try json.raw.decode(as: Deployment.self)
            return outline.metadata.resourceVersion == deployment.metadata.resourceVersion ? (outline, deployment) : nil
        }
        var jsonMetadata = json.metadata
        jsonMetadata.managedFields = nil
        #expect(outline.metadata == jsonMetadata)
        #expect(outline.status == json.status)
        #expect(outline.status?.conditions?.isEmpty == false)
        #expect(outline.status?.conditions?.allSatisfy { $0.lastUpdateTime?.hasSuffix("Z") == true && $0.lastTransitionTime != nil } == true)
    }

    /// The answer to an apply asked for as metadata alone (`PartialObjectMetadata`, as cwo applies its
    /// Deployments): the server sends the metadata, not the pod template with its long annotation, and it
    /// says what the JSON encoding of the object says.
    @Test func anApplyAnswerAskedForAsMetadataHoldsTheMetadataAlone() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let ns = try await client.makeTestNamespace("protobuf-metadata")
        // The bytes the server sends for that Accept header.
        let answer = try await client.send(
            .PATCH, Resource.deployments.path(namespace: ns, name: "web", subresource: nil), query: [("fieldManager", "test"), ("force", "true")],
            body: try KubeClient.encode(deployment(tier: "1")), contentType: "application/apply-patch+yaml", idempotent: true,
            accept: PartialObjectMetadata.protobufAccept)
        let (kind, size) = try answer.withUnsafeReadableBytes { (try KubernetesProtobuf.unwrap($0).kind, $0.count) }
        #expect(kind == "PartialObjectMetadata")
        #expect(size < 4096, "the answer holds the metadata alone, not the \(longValue.utf8.count)-byte annotation")

        let changed: PartialObjectMetadata = try await client.apply(.deployments, namespace: ns, name: "web", deployment(tier: "2"), fieldManager: "test", force: true)
        #expect(changed.metadata.generation == 1)
        #expect(changed.metadata.labels == ["tier": "2"])
        // The same version read whole as JSON has the same metadata (but the managed fields, never read).
        // Read at exactly that version: the Deployment controller may have written a newer one already
        // (its status and revision annotation), which a plain GET would return.
        let version = try #require(changed.metadata.resourceVersion)
        let exact: ObjectList<UntypedObject> = try await client.request(
            .GET, Resource.deployments.path(namespace: ns),
            query: [("fieldSelector", "metadata.name=web"), ("resourceVersion", version), ("resourceVersionMatch", "Exact")], idempotent: true)
        let json = try #require(exact.items.first).raw.decode(as: Deployment.self)
        #expect(json.metadata.resourceVersion == version)
        var jsonMetadata = json.metadata
        jsonMetadata.managedFields = nil
        #expect(changed.metadata == jsonMetadata)
    }

    @Test func anErrorAnswerIsReadFromItsProtobufStatus() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        // A list of a namespace that does not exist is an empty list; a malformed selector is a 400 Status.
        await #expect {
            let _: ObjectList<ReplicaSetSummary> = try await client.list(.replicaSets, namespace: "default", options: .init(labelSelector: "a in (b"))
        } throws: { error in
            guard let error = error as? KubeError else { return false }
            return error.code == 400 && error.message.contains("unable to parse requirement")
        }
    }

    /// A watch from a version etcd has compacted away ends with 410 Gone, after which a reflector lists
    /// again; read here from the protobuf the API server sends. ReplicaSets bypass the watch cache in the
    /// test cluster (`scripts/control-plane`), so the version is gone once etcd compacts (every 10 s).
    @Test func aWatchFromACompactedVersionEndsWithGone() async throws {
        let client = try await TestCluster.shared().adminClient()
        defer { Task { try? await client.shutdown() } }
        let namespace = try await client.makeTestNamespace("protobuf-gone")
        let created: UntypedObject = try await client.create(.replicaSets, namespace: namespace, try UntypedObject(replicaSet("old", replicas: 0)))
        let stale = try #require(created.metadata.resourceVersion)
        for index in 0..<5 {
            let _: UntypedObject = try await client.patch(.replicaSets, namespace: namespace, name: "old", .merge(["metadata": ["labels": ["step": .string("\(index)")]]]))
        }
        let error = try await client.goneError(.replicaSets, namespace: namespace, from: stale, as: ReplicaSetSummary.self)
        #expect(error.code == 410)
    }
}
