@testable import ConfidentialWorkload
@testable import ControllerRuntime
import Foundation
@testable import KubernetesClient
import Logging
import Synchronization
import Testing
import TestSupport

/// Each branch of the reconcile, as the exact requests it sends for given cached objects: a recording
/// stand-in of the API server answers, and the caches are filled by hand. (That the server makes of
/// these requests what cwo means is proven against the real control plane in OperatorIntegrationTests.)
@Suite("Reconcile branches: exact requests out for given objects in")
struct ReconcileBranchTests {
    static let namespace = "team"
    static let key = ObjectKey(namespace: namespace, name: "web")

    /// One reconciler over hand-filled caches, talking to a fresh recording server.
    final class Bench: Sendable {
        let server: FakeAPIServer
        let client: KubeClient
        let caches = WorkloadCaches()
        let reconciler: WorkloadReconciler

        init() async throws {
            server = try await FakeAPIServer.start()
            client = try KubeClient(configuration: try server.configuration())
            var logger = Logger(label: "cwo.test")
            logger.logLevel = .critical
            reconciler = WorkloadReconciler(client: client, caches: caches, logger: logger, now: { "2026-12-01T00:00:00Z" })
            caches.workloads.replace(with: [])
            caches.deployments.replace(with: [])
            caches.replicaSets.replace(with: [])
            caches.configMaps.replace(with: [])
            caches.serviceAccounts.replace(with: [])
            caches.runtimeClasses.replace(with: [try UntypedObject(["apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": ["name": "kata-cc"]])])
        }

        func close() async {
            try? await client.shutdown()
            await server.stop()
        }

        /// Sets the cached workload, reconciles it, and returns the requests it sent.
        func reconcile(_ workload: ConfidentialWorkload) async throws -> [String] {
            caches.workloads.replace(with: [workload])
            server.clear()
            _ = try await reconciler.reconcile(ReconcileBranchTests.key)
            return server.lines
        }

        /// Puts `deployment` in the cache as its watch event would (the handler's part included).
        func deliver(_ deployment: Deployment) {
            caches.deployments.upsert(deployment)
            reconciler.memories.childEvent(ReconcileBranchTests.key, Resource.deployments.plural)
        }

        /// Makes the caches hold what the server was last sent (as a watch would deliver it).
        func settle(_ workload: inout ConfidentialWorkload, version: Int) throws {
            for request in server.requests where request.method == "PATCH" {
                var object = try JSONParser.parse(request.body)
                object["metadata"]?["resourceVersion"] = .string("\(version)")
                object["metadata"]?["uid"] = .string("child-\(request.path.split(separator: "/").last ?? "")")
                if request.path.hasSuffix("/status") {
                    workload.status = try object["status"]?.decode(as: WorkloadStatus.self)
                } else if request.path.contains("/deployments/") {
                    deliver(try object.decode(as: Deployment.self))
                } else if request.path.contains("/configmaps/") {
                    caches.configMaps.upsert(try UntypedObject(object))
                    reconciler.memories.childEvent(ReconcileBranchTests.key, Resource.configMaps.plural)
                } else if request.path.contains("/serviceaccounts/") {
                    caches.serviceAccounts.upsert(try UntypedObject(object))
                    reconciler.memories.childEvent(ReconcileBranchTests.key, Resource.serviceAccounts.plural)
                }
            }
            workload.metadata.resourceVersion = "\(version)"
        }
    }

    static func workload(_ spec: JSONValue, generation: Int64 = 1) -> ConfidentialWorkload {
        var metadata = ObjectMeta(name: "web", namespace: namespace)
        metadata.uid = "uid-web"
        metadata.generation = generation
        metadata.resourceVersion = "1"
        return ConfidentialWorkload(metadata: metadata, spec: spec)
    }

    static let deploymentPath = "/apis/apps/v1/namespaces/team/deployments/web"
    static let statusPath = "/apis/cwo.dev/v1alpha1/namespaces/team/confidentialworkloads/web/status"

    static var spec: JSONValue {
        ["replicas": 0, "nodeSelector": ["zone": "a", "disk": "ssd"], "template": ["spec": ["containers": [["name": "app", "image": "nginx:1.27"]]]]]
    }

    @Test func aNewWorkloadIsOneApplyAndOneStatus() async throws {
        let bench = try await Bench()
        let sent = try await bench.reconcile(Self.workload(Self.spec))
        await bench.close()
        #expect(sent == ["PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])
    }

    @Test func aConvergedWorkloadSendsNothingAndARemovalIsOneApply() async throws {
        let bench = try await Bench()
        var workload = Self.workload(Self.spec)
        _ = try await bench.reconcile(workload)
        try bench.settle(&workload, version: 2)
        #expect(try await bench.reconcile(workload) == [], "converged: nothing to write")

        // A removed nodeSelector entry: the live Deployment still contains all the new intent, yet it is applied.
        var edited = Self.spec
        edited["nodeSelector"] = ["zone": "a"]
        workload.spec = edited
        workload.metadata.generation = 2
        let sent = try await bench.reconcile(workload)
        let body = try JSONParser.parse(bench.server.requests.first?.body ?? "")
        await bench.close()
        #expect(sent == ["PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])
        #expect(body[path: ["spec", "template", "spec", "nodeSelector"]] == ["zone": "a"])
    }

    /// A cached Deployment whose spec the protobuf watch could not read (a field of a newer API server) is
    /// read as JSON before it is compared: nothing is written when that shows the intent, one apply when
    /// it shows a hand edit.
    @Test func aDeploymentWhoseSpecProtobufCouldNotReadIsReadAsJSON() async throws {
        let bench = try await Bench()
        var workload = Self.workload(Self.spec)
        _ = try await bench.reconcile(workload)
        try bench.settle(&workload, version: 2)
        let whole = try #require(bench.caches.deployments.get(Self.key))
        var json = try JSONParser.parse(try #require(bench.server.requests.first { $0.path == Self.deploymentPath }?.body))
        json["metadata"]?["uid"] = .string(whole.metadata.uid ?? "")
        var version = 2
        // A new version of the spec (a new generation: at the same one the cache keeps the settled summary)
        // arrives through the watch, its spec unread; the server serves it as JSON.
        func serve() {
            version += 1
            json["metadata"]?["resourceVersion"] = .string("\(version)")
            json["metadata"]?["generation"] = .number(Double(version))
            var bytes: [UInt8] = []
            json.serialize(into: &bytes)
            bench.server.stored.withLock { $0[Self.deploymentPath] = String(decoding: bytes, as: UTF8.self) }
        }
        func unread() {
            var unread = whole
            unread.metadata.resourceVersion = "\(version)"
            unread.metadata.generation = Int64(version)
            unread.spec = nil
            unread.specUnread = true
            bench.deliver(unread)
        }

        serve()
        unread()
        let first = try await bench.reconcile(workload)
        // No apply; the status says the rollout of the new generation has not been observed yet.
        #expect(first == ["GET \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])
        #expect(bench.caches.deployments.get(Self.key)?.specUnread == false, "the cache holds the Deployment read whole")
        #expect(try await bench.reconcile(workload) == [], "and reads it no more")

        var containers = try #require(json[path: ["spec", "template", "spec", "containers"]]?.arrayValue)
        containers[0]["image"] = "registry.example/edited:1"
        json["spec"]?["template"]?["spec"]?["containers"] = .array(containers)
        serve()
        unread()
        let sent = try await bench.reconcile(workload)
        await bench.close()
        #expect(sent == ["GET \(Self.deploymentPath)", "PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])
    }

    /// A Deployment stamped by a cwo from before intent digests were condensed (the digest of the whole
    /// body): the same intent is not rewritten for its stamp alone, after a restart too; an older stamp
    /// of another intent is.
    @Test func aDeploymentStampedByAnOlderCwoIsRewrittenOnlyForAnotherIntent() async throws {
        let bench = try await Bench()
        var workload = Self.workload(Self.spec)
        _ = try await bench.reconcile(workload)
        let applied = try JSONParser.parse(try #require(bench.server.requests.first { $0.path == Self.deploymentPath }).body)
        try bench.settle(&workload, version: 2)
        func olderStamp(of body: JSONValue, version: Int) throws -> Deployment {
            var older = body
            older["metadata"]?["annotations"]?[Names.intentAnnotation] = .string(Names.intent.uncondensedDigest(of: body))
            older["metadata"]?["resourceVersion"] = .string("\(version)")
            older["metadata"]?["uid"] = "child-web"
            return try older.decode(as: Deployment.self)
        }
        #expect(Names.intent.uncondensedDigest(of: applied) != Names.intent.digest(of: applied))
        bench.deliver(try olderStamp(of: applied, version: 3))
        #expect(try await bench.reconcile(workload) == [], "the same intent under an older stamp: nothing to write")
        #expect(try await bench.reconcile(workload) == [], "and again, its Deployment now settled in the cache")
        bench.reconciler.memories.forget(Self.key)  // as after a restart
        #expect(try await bench.reconcile(workload) == [])

        // The older cwo applied a nodeSelector entry the workload no longer has: its stamp names that intent.
        var olderIntent = applied
        olderIntent["spec"]?["template"]?["spec"]?["nodeSelector"]?["rack"] = "r1"
        bench.deliver(try olderStamp(of: olderIntent, version: 4))
        let sent = try await bench.reconcile(workload)
        let body = try JSONParser.parse(bench.server.requests.first?.body ?? "")
        await bench.close()
        #expect(sent.first == "PATCH \(Self.deploymentPath)")
        #expect(body[path: ["spec", "template", "spec", "nodeSelector", "rack"]] == nil)
        #expect(Names.intent.digest(of: body) == Names.intent.digest(of: applied), "written with the current stamp")
    }

    /// An edit and its undo within one watch round trip: the cache still holds the Deployment from before
    /// cwo applied the edit, which equals the undone spec, yet the server holds the edit: it is applied again.
    @Test func anEditUndoneBeforeTheCacheShowedItsApplyIsAppliedAgain() async throws {
        let bench = try await Bench()
        var workload = Self.workload(Self.spec)
        _ = try await bench.reconcile(workload)
        try bench.settle(&workload, version: 2)

        workload.spec?["template"]?["spec"]?["containers"] = [["name": "app", "image": "nginx:1.28"]]
        workload.metadata.generation = 2
        let edit = try await bench.reconcile(workload)
        #expect(edit == ["PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])

        // The watch has brought neither write back: the caches hold versions 2.
        workload.spec = Self.spec
        workload.metadata.generation = 3
        let undo = try await bench.reconcile(workload)
        let deployment = try bench.server.requests.first { $0.path == Self.deploymentPath }.map { try JSONParser.parse($0.body) }
        // Applied once: the same undo again, before the cache caught up, writes nothing.
        #expect(try await bench.reconcile(workload) == [])
        await bench.close()
        #expect(undo == ["PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])
        #expect(deployment?[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first?["image"] == "nginx:1.27")
    }

    /// The watch brings the Deployment cwo creates, and its deletion, before the create's answer (the
    /// echo often beats the answer): the next reconcile, finding no Deployment, creates it again.
    @Test func aDeploymentDeletedBeforeTheCreatesAnswerIsCreatedAgain() async throws {
        let bench = try await Bench()
        let memories = bench.reconciler.memories
        bench.server.onRequest.withLock {
            $0 = { request in
                // The watch handler's part (the store has the Deployment and loses it again: no change).
                if request.path == Self.deploymentPath { memories.childEvent(Self.key, Resource.deployments.plural) }
            }
        }
        let workload = Self.workload(Self.spec)
        #expect(try await bench.reconcile(workload) == ["PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])
        bench.server.onRequest.withLock { $0 = nil }
        let again = try await bench.reconcile(workload)
        await bench.close()
        #expect(again.first == "PATCH \(Self.deploymentPath)", "the deleted Deployment is created again")
    }

    /// The watch brings the Deployment cwo applies before the apply's answer (the server sends both at
    /// once, on two connections, and the event often wins). The handler holds it for the reconcile, which
    /// knows from the answer that it was its own write: no second reconcile, and the cache keeps the
    /// settled summary. Another writer's version that comes meanwhile does reconcile again.
    @Test func anEchoBeforeTheAnswerCostsNoSecondReconcile() async throws {
        for (event, answer, expected) in [("7", "7", ReconcileResult.done), ("6", "7", .requeue(after: .zero))] {
            let bench = try await Bench()
            let memories = bench.reconciler.memories
            let caches = bench.caches
            bench.server.writtenVersion.withLock { $0 = answer }
            let held = Mutex<[WorkloadMemories.Echo]>([])
            bench.server.onRequest.withLock {
                $0 = { request in
                    guard request.path == Self.deploymentPath, var object = try? JSONParser.parse(request.body) else { return }
                    // The watch's part: the store takes the Deployment (projecting it), then its handler asks about it.
                    object["metadata"]?["resourceVersion"] = .string(event)
                    guard let deployment = try? object.decode(as: Deployment.self) else { return }
                    caches.deployments.upsert(deployment)
                    memories.childEvent(Self.key, Resource.deployments.plural)
                    held.withLock { $0.append(memories.echo(Self.key, version: event)) }
                }
            }
            let workload = Self.workload(Self.spec)
            caches.workloads.replace(with: [workload])
            let result = try await bench.reconciler.reconcile(Self.key)
            await bench.close()
            #expect(held.withLock { $0 } == [.held], "the handler leaves the event to the reconcile writing the Deployment")
            #expect(result == expected, "event \(event), answer \(answer)")
            #expect(caches.deployments.get(Self.key)?.specIsSummary == (event == answer), "its own echo is settled")
            #expect(memories.echo(Self.key, version: "8") == .none, "nothing is held after the answer")
        }
    }

    /// The Deployment's status goes 0 -> 3 -> 0 replicas faster than the watch brings back cwo's status
    /// write of 3: the cached workload still says 0 (even at a newer version), yet the server holds 3, so 0
    /// is written again.
    @Test func aStatusChangedBackBeforeTheCacheShowedCwosWriteIsWrittenAgain() async throws {
        let bench = try await Bench()
        var workload = Self.workload(Self.spec)
        _ = try await bench.reconcile(workload)
        // The Deployment as the watch brings it (whole, as applied), in later versions.
        let applied = try #require(bench.server.requests.first { $0.path == Self.deploymentPath })
        var settled = try JSONParser.parse(applied.body).decode(as: Deployment.self)
        settled.metadata.uid = "child-web"
        try bench.settle(&workload, version: 2)
        #expect(try await bench.reconcile(workload) == [], "converged: nothing to write")

        var scaled = settled
        scaled.status = DeploymentStatus()
        scaled.status?.replicas = 3
        scaled.metadata.resourceVersion = "3"
        bench.deliver(scaled)
        let second = try await bench.reconcile(workload)
        #expect(second == ["PATCH \(Self.statusPath)"])
        #expect(try JSONParser.parse(bench.server.requests.last?.body ?? "")[path: ["status", "replicas"]] == 3)

        // The cache still holds the workload's status from before the 3, at a newer version: a label was
        // edited before cwo's status write landed. The Deployment is back.
        workload.metadata.resourceVersion = "3"
        workload.metadata.labels = ["team": "payments"]
        var back = settled
        back.metadata.resourceVersion = "4"
        bench.deliver(back)
        let sent = try await bench.reconcile(workload)
        let body = bench.server.requests.last?.body
        // The same answer again, before the cache caught up, is not written twice.
        let third = try await bench.reconcile(workload)
        #expect(third == [])
        await bench.close()
        #expect(sent == ["PATCH \(Self.statusPath)"], "the server holds 3 replicas, the Deployment has none")
        let status = try JSONParser.parse(try #require(body))
        #expect(status[path: ["status", "replicas"]] != 3)
        #expect(status[path: ["status", "replicas"]] == (workload.status?.replicas).map { .number(Double($0)) }, "what the cache already says")
    }

    @Test func switchingKeyVaultOffDeletesOnlyWhatCwoCreated() async throws {
        let bench = try await Bench()
        var spec = Self.spec
        spec["attestation"] = ["maaEndpoint": "sharedeus.eus.attest.azure.net"]
        spec["keyVault"] = ["name": "vault", "keyName": "k", "clientID": "0000"]
        var workload = Self.workload(spec)
        let first = try await bench.reconcile(workload)
        #expect(first == [
            "PATCH /api/v1/namespaces/team/serviceaccounts/web", "PATCH /api/v1/namespaces/team/configmaps/web-key-release",
            "PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)",
        ])
        try bench.settle(&workload, version: 2)
        // The ServiceAccount was taken over by someone else (no owner reference): cwo must leave it.
        var account = try #require(bench.caches.serviceAccounts.get(Self.key))
        account.metadata.ownerReferences = nil
        bench.caches.serviceAccounts.upsert(account)

        spec["keyVault"] = nil
        workload.spec = spec
        workload.metadata.generation = 2
        let sent = try await bench.reconcile(workload)
        let requests = bench.server.requests
        let delete = requests.first { $0.method == "DELETE" }
        let status = try JSONParser.parse(requests.last?.body ?? "")
        await bench.close()
        #expect(sent == [
            "DELETE /api/v1/namespaces/team/configmaps/web-key-release", "PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)",
            "PATCH \(Self.statusPath)",
        ])
        #expect(delete?.body.contains(#""uid":"child-web-key-release""#) == true, "the delete is preconditioned on the uid cwo saw")
        // keyRelease leaves status by a merge patch, then the apply no longer names it.
        #expect(requests[2].headers["content-type"] == "application/merge-patch+json")
        #expect(try JSONParser.parse(requests[2].body) == ["status": ["keyRelease": nil]])
        #expect(requests[3].headers["content-type"]?.hasPrefix("application/apply-patch") == true)
        #expect(status[path: ["status", "keyRelease"]] == nil, "no null, no stale key release in status")
        #expect(status[path: ["status", "observedGeneration"]] == 2)
    }

    @Test func anInvalidEditLeavesTheDeploymentAndSaysWhy() async throws {
        let bench = try await Bench()
        var workload = Self.workload(Self.spec)
        _ = try await bench.reconcile(workload)
        try bench.settle(&workload, version: 2)
        workload.spec?["template"]?["spec"]?["shareProcessNamespace"] = true
        workload.metadata.generation = 2
        let sent = try await bench.reconcile(workload)
        let status = try JSONParser.parse(bench.server.requests.last?.body ?? "")
        await bench.close()
        #expect(sent == ["PATCH \(Self.statusPath)"])
        let ready = status[path: ["status", "conditions"]]?.arrayValue?.first { $0["type"] == "Ready" }
        #expect(ready?["reason"] == "InvalidSpec")
    }

    /// A Deployment the API server refuses (an admission webhook, a quota): the status says so with the
    /// server's answer, and the reconcile still fails so the queue retries it.
    @Test func aRefusedDeploymentIsReportedAndRetried() async throws {
        let bench = try await Bench()
        bench.server.fail("PATCH", "/deployments/", status: 403, reason: "Forbidden")
        await #expect(throws: KubeError.self) { _ = try await bench.reconcile(Self.workload(Self.spec)) }
        #expect(bench.server.lines == ["PATCH \(Self.deploymentPath)", "PATCH \(Self.statusPath)"])
        let status = try JSONParser.parse(bench.server.requests.last?.body ?? "")
        await bench.close()
        let conditions = status[path: ["status", "conditions"]]?.arrayValue ?? []
        let available = conditions.first { $0["type"] == "DeploymentAvailable" }
        #expect(available?["status"] == "False" && available?["reason"] == "DeploymentRejected")
        #expect(available?["message"]?.stringValue?.hasSuffix(": scripted") == true, "the server's answer")
        #expect(conditions.first { $0["type"] == "Ready" }?["reason"] == "DeploymentRejected")
    }

    @Test func aFailedWriteIsRetriedByTheQueueAndAGoneWorkloadSendsNothing() async throws {
        let bench = try await Bench()
        bench.server.fail("PATCH", "/deployments/", status: 500, reason: "InternalError")
        await #expect(throws: KubeError.self) { _ = try await bench.reconcile(Self.workload(Self.spec)) }
        #expect(bench.server.lines == ["PATCH \(Self.deploymentPath)"], "no status claiming success after a failed apply")

        bench.caches.workloads.replace(with: [])
        bench.server.clear()
        #expect(try await bench.reconciler.reconcile(Self.key) == .done)
        #expect(bench.server.lines.isEmpty)
        await bench.close()
    }
}
