import ConfidentialWorkload
import Foundation
import KubernetesClient
import Logging
import Synchronization
import Testing
import TestSupport
import TrusteeKBS

/// CoCo workloads end to end against the real control plane, with a Trustee KBS stand-in that checks
/// admin tokens and records every request.
@Suite("Upstream Confidential Containers with a Trustee KBS")
struct CoCoIntegrationTests {
    static func broker(_ kbs: FakeKBS, key: String? = nil) throws -> KBSBroker {
        let client = try KBSAdminClient(
            options: .init(url: kbs.url, caFile: kbs.caFile), adminKey: try KBSAdminClient.adminKey(pem: key ?? kbs.adminKeyPEM),
            logger: Logger(label: "cwo.kbs.test"))
        return KBSBroker(client: client)
    }

    static func spec(_ kbs: FakeKBS, image: String = "nginx:1.27", replicas: Int = 0, path: String = "shop/key/web") -> JSONValue {
        [
            "replicas": .number(Double(replicas)), "runtimeClassName": "kata-qemu-snp",
            "kbs": ["url": .string(kbs.url), "resources": [["path": .string(path)]]],
            "template": ["spec": ["containers": [["name": "app", "image": .string(image), "resources": ["limits": ["memory": "256Mi"]]]]]],
        ]
    }

    /// The digests the KBS's current policy grants to `workload`.
    static func granted(_ kbs: FakeKBS, _ workload: String) -> [String] {
        guard let policy = kbs.policy else { return [] }
        return policy.split(separator: "\n").filter { $0.contains("\"workload\":\"\(workload)\"") }.flatMap { line -> [String] in
            guard let entry = try? JSONParser.parse(String(line.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ",")))) else { return [] }
            return entry["init_data"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
    }

    @Test func aCoCoWorkloadGetsMeasuredInitDataAndItsKBSGrant() async throws {
        let kbs = try await FakeKBS.start()
        let broker = try Self.broker(kbs)
        try await Harness.with("coco", kbs: broker) { harness in
            try await harness.ensureRuntimeClass("kata-qemu-snp")
            _ = try await harness.createWorkload("web", spec: Self.spec(kbs))
            let ready = try await harness.waitForStatus("web", "Ready with its KBS grant", timeout: .seconds(40)) { $0.condition("Ready")?.status == .true }
            let status = try #require(ready.status)
            let rendered = try await harness.rendered("web")
            let initData = try #require(rendered.initData)
            #expect(status.platform == "CoCo")
            #expect(status.initDataDigest == initData.digestHex)
            #expect(status.teeRegister == TEERegister(tee: "snp", name: "HOST_DATA", value: String(initData.digestHex.prefix(64))))
            #expect(status.condition("InitDataReady")?.reason == "InitDataGenerated")
            #expect(status.condition("KeyReleaseBound")?.reason == "ResourcePolicySynced")
            #expect(status.keyRelease?.allowedHashes == [initData.digestHex] && status.keyRelease?.resources == ["shop/key/web"])
            let deployment = try await harness.waitForRenderedDeployment("web")
            let annotations = deployment.raw[path: ["spec", "template", "metadata", "annotations"]]
            #expect(annotations?["io.katacontainers.config.hypervisor.cc_init_data"] == .string(initData.annotationValue))
            #expect(annotations?["io.katacontainers.config.agent.policy"] == nil)
            #expect(Self.granted(kbs, "\(harness.namespace)/web") == [initData.digestHex])
            #expect(ready.metadata.finalizers?.contains("cwo.dev/kbs-resource-policy") == true)

            // Deleting the workload withdraws its grant before the finalizer lets it go.
            try await harness.admin.delete(Harness.workloads, namespace: harness.namespace, name: "web")
            try await harness.waitGone("web", timeout: .seconds(15))
            #expect(Self.granted(kbs, "\(harness.namespace)/web").isEmpty)
            #expect(kbs.policy?.contains("package policy") == true)
        }
        try await broker.shutdown()
        await kbs.stop()
    }

    @Test func theNewDigestIsGrantedBeforeTheRolloutAndTheOldOneWithdrawnAfterIt() async throws {
        let kbs = try await FakeKBS.start()
        let broker = try Self.broker(kbs)
        try await Harness.with("coco-roll", kbs: broker) { harness in
            try await harness.ensureRuntimeClass("kata-qemu-snp")
            // At each policy write: which digest did the Deployment carry?
            let seen = Mutex<[(granted: [String], deployment: String?)]>([])
            let admin = harness.admin
            let namespace = harness.namespace
            kbs.beforePolicyWrite.withLock {
                $0 = { policy in
                    let deployment: UntypedObject? = try? await admin.get(.deployments, namespace: namespace, name: "roll")
                    let digest = deployment?.raw[path: ["spec", "template", "metadata", "annotations", "cwo.dev/initdata-digest"]]?.stringValue
                    let line = policy.split(separator: "\n").first { $0.contains("\"workload\":\"\(namespace)/roll\"") }
                    let entry = line.flatMap { try? JSONParser.parse(String($0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ",")))) }
                    seen.withLock { $0.append((entry?["init_data"]?.arrayValue?.compactMap(\.stringValue) ?? [], digest)) }
                }
            }
            _ = try await harness.createWorkload("roll", spec: Self.spec(kbs, replicas: 1))
            let first = try await eventually(timeout: .seconds(30), "the first pods ready") { () -> ConfidentialWorkload? in
                try await harness.markPodsReady("roll")
                let workload = try await harness.workload("roll")
                return workload.status?.condition("DeploymentAvailable")?.status == .true ? workload : nil
            }
            let old = try #require(first.status?.initDataDigest)
            try await harness.replaceSpec("roll", Self.spec(kbs, image: "nginx:1.28", replicas: 1))
            let during = try await harness.waitForStatus("roll", "two digests during the rollout") { ($0.keyRelease?.allowedHashes.count ?? 0) == 2 }
            let new = try #require(during.status?.initDataDigest)
            #expect(new != old && Set(Self.granted(kbs, "\(harness.namespace)/roll")) == [old, new])
            _ = try await eventually(timeout: .seconds(45), "only the new digest after the rollout") { () -> Bool? in
                try await harness.markPodsReady("roll")
                return Self.granted(kbs, "\(harness.namespace)/roll") == [new] ? true : nil
            }
            let writes = seen.withLock { $0 }
            // The write that first granted the new digest happened while the Deployment still ran the old one.
            let granting = try #require(writes.first { $0.granted.contains(new) })
            #expect(granting.deployment == old, "the new digest was granted after the Deployment changed: \(writes)")
            #expect(granting.granted.contains(old))
            // The write that withdrew the old digest came after the Deployment moved to the new one.
            let withdrawing = try #require(writes.last)
            #expect(withdrawing.granted == [new] && withdrawing.deployment == new)
            print("KBS policy writes for one template change: \(writes.map { "granted \($0.granted.map { String($0.prefix(12)) }) while the Deployment ran \($0.deployment.map { String($0.prefix(12)) } ?? "nothing")" })")
            print("KBS requests: \(kbs.requests.map(\.description))")
        }
        try await broker.shutdown()
        await kbs.stop()
    }

    @Test func twoWorkloadsShareTheKBSAndARestartRewritesNothing() async throws {
        let kbs = try await FakeKBS.start()
        let name = "coco-share"
        let firstBroker = try Self.broker(kbs)
        let namespace = try await Harness.with(name, kbs: firstBroker) { harness in
            try await harness.ensureRuntimeClass("kata-qemu-snp")
            _ = try await harness.createWorkload("a", spec: Self.spec(kbs, path: "shop/key/a"))
            _ = try await harness.createWorkload("b", spec: Self.spec(kbs, image: "nginx:1.28", path: "shop/key/b"))
            for workload in ["a", "b"] {
                _ = try await harness.waitForStatus(workload, "synced") { $0.condition("KeyReleaseBound")?.reason == "ResourcePolicySynced" }
            }
            #expect(Self.granted(kbs, "\(harness.namespace)/a").count == 1 && Self.granted(kbs, "\(harness.namespace)/b").count == 1)
            return harness.namespace
        }
        try await firstBroker.shutdown()

        // Another operator (a restart) over the same cluster: it reads the KBS once and writes nothing.
        kbs.clearRequests()
        let secondBroker = try Self.broker(kbs)
        try await Harness.with(name, kbs: secondBroker, namespace: namespace) { harness in
            try await Task.sleep(for: .seconds(3))
            _ = try await harness.waitForStatus("a", "still synced") { $0.condition("KeyReleaseBound")?.reason == "ResourcePolicySynced" }
            #expect(kbs.requests.filter { $0.method == "POST" }.isEmpty, "a restart rewrote the KBS: \(kbs.requests.map(\.description))")
            #expect(kbs.requests.filter { $0.method == "GET" }.count <= 1)
        }
        try await secondBroker.shutdown()
        await kbs.stop()
    }

    @Test func anUnreachableOrRefusingKBSHoldsTheRolloutAndSaysWhy() async throws {
        let kbs = try await FakeKBS.start()
        let stranger = try Self.broker(kbs, key: FakeKBS.strangerKeyPEM())
        try await Harness.with("coco-refused", kbs: stranger) { harness in
            try await harness.ensureRuntimeClass("kata-qemu-snp")
            _ = try await harness.createWorkload("web", spec: Self.spec(kbs))
            let refused = try await harness.waitForStatus("web", "KBSUnauthorized") { $0.condition("KeyReleaseBound")?.reason == "KBSUnauthorized" }
            #expect(refused.status?.condition("KeyReleaseBound")?.message.contains("is not created until the KBS allows") == true)
            #expect(try await harness.deployment("web") == nil, "no pods before the KBS allows their digest")
        }
        try await stranger.shutdown()

        let broker = try Self.broker(kbs)
        try await Harness.with("coco-outage", kbs: broker) { harness in
            try await harness.ensureRuntimeClass("kata-qemu-snp")
            kbs.fail("POST", "resource-policy", status: 503, times: 2)
            _ = try await harness.createWorkload("web", spec: Self.spec(kbs))
            _ = try await harness.waitForStatus("web", "KBSUnreachable") { $0.condition("KeyReleaseBound")?.reason == "KBSUnreachable" }
            // cwo retries with backoff and converges once the KBS answers.
            _ = try await harness.waitForStatus("web", "synced after the outage", timeout: .seconds(30)) {
                $0.condition("KeyReleaseBound")?.reason == "ResourcePolicySynced"
            }
            _ = try await harness.waitForRenderedDeployment("web")
            let failed = kbs.requests.filter { $0.headers["x-fault"] != nil }
            #expect(failed.count == 2)
        }
        try await broker.shutdown()
        await kbs.stop()
    }
}
