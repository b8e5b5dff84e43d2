import AzureKeyVault
import ConfidentialWorkload
import Foundation
import KubernetesClient
import Synchronization
import Testing
import TestSupport

/// `releasePolicy: Managed` end to end: the real control plane, the operator in this process, and the
/// local HTTPS stand-in for Key Vault and the identity endpoint.
@Suite("Managed key release against the real control plane")
struct KeyReleaseIntegrationTests {
    /// What the cluster looked like when Key Vault was about to be changed.
    struct Snapshot: Sendable {
        var request: String
        var hashes: [String]
        var deploymentHash: String?
        /// Policy hash → pods (status.replicas) of the workload's ReplicaSets.
        var replicaSets: [String: Int]
    }

    static func manager(_ fake: FakeAzure, cleanupTimeout: Duration = .seconds(60)) throws -> KeyReleaseManager {
        let identity = WorkloadIdentity(clientID: fake.clientID, tenantID: fake.tenantID, federatedTokenFile: try fake.writeFederatedTokenFile(), authorityHost: fake.url)
        var options = KeyReleaseManager.Options()
        options.cleanupTimeout = cleanupTimeout
        return KeyReleaseManager(client: try KeyVaultClient(identity: identity, options: AzureOptions(additionalCAFile: fake.caFile)), options: options)
    }

    static func spec(_ fake: FakeAzure, key: String, image: String = "nginx:1.27", replicas: Int = 0, create: Bool = true) -> JSONValue {
        [
            "replicas": .number(Double(replicas)),
            "attestation": ["maaEndpoint": "sharedeus.eus.attest.azure.net"],
            "keyVault": [
                "url": .string(fake.url), "keyName": .string(key), "clientID": "11111111-2222-3333-4444-555555555555",
                "releasePolicy": "Managed", "create": .bool(create),
            ],
            "template": ["spec": ["containers": [["name": "app", "image": .string(image), "command": ["/app"]]]]],
        ]
    }

    static func setImage(_ harness: Harness, _ name: String, _ image: String) async throws {
        let _: UntypedObject = try await harness.admin.patch(
            Harness.workloads, namespace: harness.namespace, name: name,
            .merge(["spec": ["template": ["spec": ["containers": [["name": "app", "image": .string(image), "command": ["/app"]]]]]]]))
    }

    final class Snapshots: Sendable {
        let items = Mutex<[Snapshot]>([])
        func withLock<T: Sendable>(_ body: (inout [Snapshot]) -> T) -> T { items.withLock { body(&$0) } }
    }

    /// Records the Deployment's policy hash and the ReplicaSets at the moment of each Key Vault write.
    static func recordWrites(_ fake: FakeAzure, _ harness: Harness, workload: String) -> Snapshots {
        let snapshots = Snapshots()
        let admin = harness.admin
        let namespace = harness.namespace
        fake.beforeWrite.withLock {
            $0 = { request in
                let deployment: UntypedObject? = try? await admin.get(.deployments, namespace: namespace, name: workload)
                let sets: ObjectList<UntypedObject>? = try? await admin.list(.replicaSets, namespace: namespace, options: .init(labelSelector: "cwo.dev/workload=\(workload)"))
                var replicaSets: [String: Int] = [:]
                for set in sets?.items ?? [] {
                    let hash = set.raw[path: ["spec", "template", "metadata", "annotations", "cwo.dev/policy-hash"]]?.stringValue ?? "?"
                    replicaSets[hash, default: 0] += set.raw[path: ["status", "replicas"]]?.intValue ?? 0
                }
                let hash = deployment?.raw[path: ["spec", "template", "metadata", "annotations", "cwo.dev/policy-hash"]]?.stringValue
                snapshots.withLock {
                    $0.append(Snapshot(request: request.description, hashes: FakeAzure.hashes(in: request), deploymentHash: hash, replicaSets: replicaSets))
                }
            }
        }
        return snapshots
    }

    @Test func theNewHashIsAllowedBeforeTheRolloutAndTheOldOneDroppedAfterIt() async throws {
        let fake = try await FakeAzure.start()
        let harness = try await Harness("managed", keyRelease: try Self.manager(fake))
        try await harness.ensureRuntimeClass("kata-cc")
        let snapshots = Self.recordWrites(fake, harness, workload: "roll")
        defer { Task { await fake.stop() } }
        try await harness.running {

            // A new workload: the key is created with the release policy before any Deployment exists.
            _ = try await harness.createWorkload("roll", spec: Self.spec(fake, key: "roll-key", replicas: 1))
            let first = try await eventually(timeout: .seconds(30), "roll Ready with its key") { () -> ConfidentialWorkload? in
                try await harness.markPodsReady("roll")
                let workload = try await harness.workload("roll")
                return workload.status?.condition("Ready")?.status == .true ? workload : nil
            }
            let oldHash = try #require(first.status?.policyHash)
            #expect(first.status?.condition("KeyReleaseBound")?.reason == "ReleasePolicySynced")
            #expect(first.status?.keyRelease?.publishedHashes == [oldHash])
            #expect(first.status?.keyRelease?.releasePolicy == "Managed")
            #expect(first.status?.keyRelease?.keyVersion == fake.key("roll-key")?.versions.last)
            #expect(first.metadata.finalizers == ["cwo.dev/key-release"])
            #expect(fake.releaseHashes("roll-key") == [oldHash])
            let created = try #require(snapshots.withLock { $0.first })
            #expect(created.request == "POST /keys/roll-key/create")
            #expect(created.deploymentHash == nil, "the Deployment existed before its key allowed it")

            // One template change.
            fake.clearRequests()
            try await Self.setImage(harness, "roll", "nginx:1.28")
            let after = try await eventually(timeout: .seconds(60), "the rollout done and the old hash dropped") { () -> ConfidentialWorkload? in
                try await harness.markPodsReady("roll")
                let workload = try await harness.workload("roll")
                guard let hash = workload.status?.policyHash, hash != oldHash, fake.releaseHashes("roll-key") == [hash],
                    workload.status?.condition("Ready")?.status == .true, workload.status?.keyRelease?.publishedHashes == [hash]
                else { return nil }
                return workload
            }
            let newHash = try #require(after.status?.policyHash)
            let writes = snapshots.withLock { Array($0.dropFirst()) }
            #expect(writes.map(\.request) == Array(repeating: "PATCH /keys/roll-key/\(fake.key("roll-key")?.versions.last ?? "")", count: 2))
            #expect(writes.first?.hashes == [oldHash, newHash], "the new hash is added beside the old one")
            #expect(writes.first?.deploymentHash == oldHash, "the Deployment changed before Key Vault allowed the new hash")
            #expect(writes.last?.hashes == [newHash])
            #expect(writes.last?.deploymentHash == newHash)
            #expect(writes.last?.replicaSets[oldHash] == 0, "the old hash was dropped while its pods still ran: \(writes.last?.replicaSets ?? [:])")
            #expect(after.status?.keyRelease?.publishedHashes == [newHash])
            let sequence = fake.requests.map { "\($0.method) \($0.path)\($0.method == "GET" ? "" : " hashes=\(FakeAzure.hashes(in: $0).map { String($0.prefix(12)) })")" }
            print("Key Vault requests for one template change (\(String(oldHash.prefix(12))) → \(String(newHash.prefix(12)))):\n  " + sequence.joined(separator: "\n  "))

            // Deleted: this workload's hash leaves the release policy, then the finalizer goes.
            try await harness.admin.delete(Harness.workloads, namespace: harness.namespace, name: "roll")
            try await harness.waitGone("roll", timeout: .seconds(30))
            #expect(fake.releaseHashes("roll-key") == [])
            #expect(snapshots.withLock { $0.last?.hashes } == [])
        }
    }

    /// Another key: cwo manages the new one, leaves the old one's release policy as it is (pods started
    /// with the old key may still need it), and says what the old one still allows.
    @Test func switchingKeysLeavesTheOldPolicyAloneAndSaysSo() async throws {
        let fake = try await FakeAzure.start()
        let harness = try await Harness("switch", keyRelease: try Self.manager(fake), recordEvents: true)
        try await harness.ensureRuntimeClass("kata-cc")
        defer { Task { await fake.stop() } }
        try await harness.running {

            _ = try await harness.createWorkload("switch", spec: Self.spec(fake, key: "old-key"))
            let first = try await harness.waitForStatus("switch", "Ready with old-key", timeout: .seconds(30)) { $0.condition("Ready")?.status == .true }
            let hash = try #require(first.status?.policyHash)
            #expect(fake.releaseHashes("old-key") == [hash])

            let _: UntypedObject = try await harness.admin.patch(
                Harness.workloads, namespace: harness.namespace, name: "switch", .merge(["spec": ["keyVault": ["keyName": "new-key"]]]))
            let switched = try await harness.waitForStatus("switch", "bound to new-key", timeout: .seconds(30)) {
                $0.keyRelease?.keyID.hasSuffix("/keys/new-key") == true && $0.condition("KeyReleaseBound")?.status == .true
            }
            let newHash = try #require(switched.status?.policyHash)
            #expect(fake.releaseHashes("new-key") == [newHash])
            #expect(fake.releaseHashes("old-key") == [hash], "the old key's release policy was changed")
            let warning = try await harness.waitForEvent(reason: "KeyReleaseLeftBehind")
            let note = try #require(warning.raw["note"]?.stringValue)
            #expect(warning.raw["type"] == "Warning")
            #expect(note.contains("/keys/old-key still allows policy hash \(hash)"), "\(note)")
            #expect(note.contains("now manages \(fake.url)/keys/new-key"), "\(note)")
        }
    }

    @Test func aForbiddenWriteHoldsTheRolloutUntilKeyVaultAllowsIt() async throws {
        let fake = try await FakeAzure.start()
        let harness = try await Harness("held", keyRelease: try Self.manager(fake))
        try await harness.ensureRuntimeClass("kata-cc")
        // A key the user made, shared with something else: cwo must keep that entry.
        fake.setKey("shared-key", policy: #"{"version":"1.0.0","anyOf":[{"authority":"https://other.attest.azure.net","allOf":[{"claim":"x-ms-sevsnpvm-hostdata","equals":"ffff"}]}]}"#)
        defer { Task { await fake.stop() } }
        try await harness.running {

            _ = try await harness.createWorkload("held", spec: Self.spec(fake, key: "shared-key", create: false))
            let first = try await harness.waitForStatus("held", "Ready", timeout: .seconds(30)) { $0.condition("Ready")?.status == .true }
            let oldHash = try #require(first.status?.policyHash)
            #expect(fake.releaseHashes("shared-key") == ["ffff", oldHash])

            fake.fail("PATCH", "/keys/shared-key", status: 403, code: "Forbidden", times: 3)
            try await Self.setImage(harness, "held", "nginx:1.28")
            let held = try await harness.waitForStatus("held", "KeyVaultForbidden") { $0.condition("KeyReleaseBound")?.reason == "KeyVaultForbidden" }
            let condition = try #require(held.status?.condition("KeyReleaseBound"))
            #expect(condition.status == .false)
            #expect(condition.message.contains("rollout held"))
            #expect(condition.message.contains("Key Vault Crypto Officer"))
            #expect(held.status?.condition("Ready")?.reason == "KeyVaultForbidden")
            let deployment = try #require(try await harness.deployment("held"))
            #expect(deployment.raw[path: ["spec", "template", "metadata", "annotations", "cwo.dev/policy-hash"]]?.stringValue == oldHash, "the rollout went ahead without the key")

            // Once Key Vault accepts the write, the rollout proceeds; the other entry is untouched.
            let done = try await harness.waitForStatus("held", "Ready after the refusals", timeout: .seconds(40)) {
                $0.condition("Ready")?.status == .true && $0.policyHash != oldHash
            }
            let newHash = try #require(done.status?.policyHash)
            #expect(fake.releaseHashes("shared-key") == ["ffff", newHash])
            let live = try #require(try await harness.deployment("held"))
            #expect(live.raw[path: ["spec", "template", "metadata", "annotations", "cwo.dev/policy-hash"]]?.stringValue == newHash)
            // Three refusals, then one write that went through: retried with backoff, never in a hot loop.
            let patches = fake.requests.filter { $0.method == "PATCH" }
            #expect(patches.count == 5, "\(patches.count) PATCHes: 1 initial, 3 refused, 1 accepted")
        }
    }

    @Test func throttlingIsHonouredAndEachKeyVaultErrorHasItsReason() async throws {
        let fake = try await FakeAzure.start()
        let harness = try await Harness("kverrors", keyRelease: try Self.manager(fake))
        try await harness.ensureRuntimeClass("kata-cc")
        fake.setKey("frozen-key", policy: #"{"version":"1.0.0","anyOf":[]}"#, immutable: true)
        fake.markDeleted("deleted-key")
        // The first token exchange is refused; 429 with a Retry-After longer than the client waits in a call.
        fake.fail("POST", "/oauth2/v2.0/token", status: 401, code: "invalid_client", times: 1)
        defer { Task { await fake.stop() } }
        try await harness.running {

            _ = try await harness.createWorkload("absent", spec: Self.spec(fake, key: "absent-key", create: false))
            _ = try await harness.createWorkload("frozen", spec: Self.spec(fake, key: "frozen-key", create: false))
            _ = try await harness.createWorkload("deleted", spec: Self.spec(fake, key: "deleted-key"))
            for (name, reason) in [("absent", "KeyNotFound"), ("frozen", "ReleasePolicyImmutable"), ("deleted", "KeyVaultConflict")] {
                let workload = try await harness.waitForStatus(name, reason, timeout: .seconds(30)) { $0.condition("KeyReleaseBound")?.reason == reason }
                #expect(workload.status?.condition("Ready")?.reason == reason)
                #expect(try await harness.deployment(name) == nil, "\(name) got a Deployment its key does not allow")
                #expect(workload.status?.keyRelease?.publishedHashes == nil, "\(name)")
                // No write was tried, so no finalizer. (A refused create is preceded by one; see below.)
                if name != "deleted" { #expect(workload.metadata.finalizers == nil, "\(name)") }
            }
            // The finalizer added before the refused create costs nothing at deletion: nothing was published,
            // so the workload goes at once without reading the key. (A backoff retry of the refused create may be
            // in flight when the delete lands: that is a GET followed by its POST .../create, never a lone GET.)
            let beforeDelete = fake.requests.count
            try await harness.admin.delete(Harness.workloads, namespace: harness.namespace, name: "deleted")
            try await harness.waitGone("deleted", timeout: .seconds(10))
            let afterDelete = fake.requests.dropFirst(beforeDelete).filter { $0.path.contains("deleted-key") }
            let reads = afterDelete.filter { $0.method == "GET" }.count, creates = afterDelete.filter { $0.path.hasSuffix("/create") }.count
            #expect(reads <= creates && afterDelete.allSatisfy { $0.method != "PATCH" }, "\(afterDelete.map { "\($0.method) \($0.path)" })")
            // The refused token exchange, then the one that worked: no Key Vault call without a token.
            #expect(fake.requests.prefix(2).map { "\($0.method) \($0.path)" } == Array(repeating: "POST /\(fake.tenantID)/oauth2/v2.0/token", count: 2))

            // Throttled for 6 s (longer than one call waits): the next try comes no sooner.
            fake.clearRequests()
            fake.fail("GET", "/keys/absent-key", status: 429, code: "Throttled", times: 1, retryAfter: 6)
            fake.setKey("absent-key", policy: nil)
            _ = try await harness.waitForStatus("absent", "KeyVaultThrottled", timeout: .seconds(30)) { $0.condition("KeyReleaseBound")?.reason == "KeyVaultThrottled" }
            let ready = try await harness.waitForStatus("absent", "Ready once the key exists", timeout: .seconds(30)) { $0.condition("Ready")?.status == .true }
            #expect(fake.releaseHashes("absent-key") == [try #require(ready.status?.policyHash)])
            let gets = fake.requests.filter { $0.method == "GET" && $0.path == "/keys/absent-key" }
            let throttledAt = try #require(gets.first?.at)
            let retriedAt = try #require(gets.dropFirst().first?.at)
            #expect(retriedAt.timeIntervalSince(throttledAt) >= 5.9, "retried \(retriedAt.timeIntervalSince(throttledAt)) s after a Retry-After of 6")
        }
    }

    @Test func aDeletedWorkloadIsReleasedEvenWhenKeyVaultKeepsRefusing() async throws {
        let fake = try await FakeAzure.start()
        let harness = try await Harness("stuck", keyRelease: try Self.manager(fake, cleanupTimeout: .seconds(4)), recordEvents: true)
        try await harness.ensureRuntimeClass("kata-cc")
        defer { Task { await fake.stop() } }
        try await harness.running {
            _ = try await harness.createWorkload("stuck", spec: Self.spec(fake, key: "stuck-key"))
            let ready = try await harness.waitForStatus("stuck", "Ready", timeout: .seconds(30)) { $0.condition("Ready")?.status == .true }
            let hash = try #require(ready.status?.policyHash)

            fake.fail("PATCH", "/keys/stuck-key", status: 403, code: "Forbidden", times: 1000)
            let start = ContinuousClock.now
            try await harness.admin.delete(Harness.workloads, namespace: harness.namespace, name: "stuck")
            try await harness.waitGone("stuck", timeout: .seconds(30))
            let waited = ContinuousClock.now - start
            #expect(waited >= .seconds(3), "the finalizer went before the cleanup timeout: \(waited)")
            // The hash could not be removed; cwo let go anyway and says so in a Warning event.
            #expect(fake.releaseHashes("stuck-key") == [hash])
            let gaveUp = try await harness.waitForEvent(reason: "KeyReleaseCleanupFailed")
            #expect(gaveUp.raw["type"] == "Warning")
            #expect(gaveUp.raw["note"]?.stringValue?.contains("still allows \(hash)") == true, "\(gaveUp.raw["note"] ?? .null)")
            let refused = fake.requests.filter { $0.method == "PATCH" }.count
            #expect(refused >= 2 && refused <= 8, "\(refused) cleanup attempts in ~4 s")
        }
    }
}
