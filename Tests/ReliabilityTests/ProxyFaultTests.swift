import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

/// Slow and failing API calls: `cwo run` talks to the API server through a loopback proxy that delays
/// requests, drops connections and answers 429/500/503 for a while. cwo must back off, honour
/// `Retry-After`, never loop hot, and converge afterwards. (Long: about a minute.)
@Suite("Slow and failing API calls (through a fault proxy)", .serialized)
struct ProxyFaultTests {
    static func setImage(_ admin: KubeClient, _ namespace: String, _ name: String, _ image: String) async throws {
        let _: UntypedObject = try await admin.patch(ConfidentialWorkload.resource, namespace: namespace, name: name,
            .merge(["spec": ["template": ["spec": ["containers": [["name": "app", "image": .string(image), "resources": ["limits": ["memory": "128Mi"]]]]]]]]))
    }

    @Test func cwoBacksOffHonoursRetryAfterAndConvergesAfterTheFaults() async throws {
        let cluster = try await TestCluster.shared()
        let admin = try cluster.adminClient()
        defer { Task { try? await admin.shutdown() } }
        try await cluster.installCRDs(admin)
        try await FaultTests.ensureRuntimeClass(admin)
        let namespace = try await admin.makeTestNamespace("proxy")
        let apiserverPort = try #require(Int(try String(contentsOfFile: cluster.directory + "/apiserver.port", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let token = try String(contentsOfFile: cluster.directory + "/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let proxy = try await FaultProxy.start(upstreamPort: apiserverPort, upstreamCAFile: cluster.directory + "/ca.crt")
        defer { Task { await proxy.stop() } }
        let cwo = try BackgroundProcess([try cwoBinary, "run", "--no-resolve-images", "--kubeconfig", try proxy.writeKubeconfig(token: token), "--namespace", namespace,
            "--metrics-bind-address", "0", "--health-probe-bind-address", "0"])
        defer { cwo.stop() }
        for index in 0..<5 { let _: UntypedObject = try await admin.create(ConfidentialWorkload.resource, namespace: namespace, try UntypedObject(workloadBody("w\(index)"))) }
        _ = try await eventually(timeout: .seconds(30), "the first 5 converged through the proxy") { try await converged(admin, namespace, expected: 5) ? true : nil }

        // 1. Every write answered 429 with Retry-After: 2 for 5 s, while 10 workloads are created.
        proxy.set(.respond(status: 429, retryAfter: 2), methods: ["POST", "PATCH", "PUT"])
        let throttledFrom = ContinuousClock.now
        for index in 5..<15 { let _: UntypedObject = try await admin.create(ConfidentialWorkload.resource, namespace: namespace, try UntypedObject(workloadBody("w\(index)"))) }
        try await Task.sleep(for: .seconds(5))
        proxy.set(.pass)
        _ = try await eventually(timeout: .seconds(30), "converged after 429s") { try await converged(admin, namespace, expected: 15) ? true : nil }
        let log = proxy.log.filter { $0.at >= throttledFrom }
        let throttled = log.filter { $0.fault == .respond(status: 429, retryAfter: 2) }
        #expect(!throttled.isEmpty, "no write was throttled")
        // After a 429 for a path, that path is not tried again before Retry-After has passed.
        var early: [String] = []
        for refused in throttled {
            if let next = log.first(where: { $0.at > refused.at && $0.path == refused.path && $0.method == refused.method }), next.at - refused.at < .milliseconds(1900) {
                early.append("\(refused.method) \(refused.path) again after \(next.at - refused.at)")
            }
        }
        #expect(early.isEmpty, "Retry-After not honoured: \(early.prefix(5))")
        // No hot loop: ten new workloads, at most one try per write path and Retry-After period (2 s in
        // 5 s), well under what retrying as soon as possible would send.
        #expect(throttled.count <= 10 * 3 + 10, "\(throttled.count) throttled writes in 5 s")
        print("429 phase: \(throttled.count) throttled writes, \(log.count) requests in all")

        // 2. Every request (reads, watches, writes) answered 503 without Retry-After for 4 s, after all
        //    connections were dropped, while every workload is edited.
        proxy.set(.respond(status: 503, retryAfter: nil))
        proxy.dropConnections()
        let unavailableFrom = ContinuousClock.now
        for index in 0..<15 { try await Self.setImage(admin, namespace, "w\(index)", "nginx:1.28") }
        try await Task.sleep(for: .seconds(4))
        let during = proxy.log.filter { $0.at >= unavailableFrom }.count
        proxy.set(.pass)
        let recovered = ContinuousClock.now
        _ = try await eventually(timeout: .seconds(30), "converged after 503s") { try await converged(admin, namespace, expected: 15, image: "nginx:1.28") ? true : nil }
        print("503 phase: \(during) requests in 4 s; converged \(ContinuousClock.now - recovered) after the faults ended")
        #expect(during <= 150, "\(during) requests in 4 s of 503s: a hot loop")

        // 3. 500 on writes for 3 s, then connections dropped and new ones refused for 3 s.
        proxy.set(.respond(status: 500, retryAfter: nil), methods: ["POST", "PATCH", "PUT"])
        for index in 15..<20 { let _: UntypedObject = try await admin.create(ConfidentialWorkload.resource, namespace: namespace, try UntypedObject(workloadBody("w\(index)"))) }
        try await Task.sleep(for: .seconds(3))
        proxy.set(.drop)
        proxy.dropConnections()
        for index in 0..<20 { try await Self.setImage(admin, namespace, "w\(index)", "nginx:1.29") }
        try await Task.sleep(for: .seconds(3))
        proxy.set(.pass)
        _ = try await eventually(timeout: .seconds(30), "converged after 500s and dropped connections") {
            try await converged(admin, namespace, expected: 20, image: "nginx:1.29") ? true : nil
        }

        // 4. Every request delayed by 300 ms: slower, still correct.
        proxy.set(.delay(.milliseconds(300)))
        // With Key Vault settings, so each also gets a ServiceAccount and a ConfigMap (checked below).
        for index in 20..<25 {
            let _: UntypedObject = try await admin.create(
                ConfidentialWorkload.resource, namespace: namespace, try UntypedObject(workloadBody("w\(index)", image: "nginx:1.29", keyVault: true)))
        }
        _ = try await eventually(timeout: .seconds(30), "converged with slow calls") { try await converged(admin, namespace, expected: 25, image: "nginx:1.29") ? true : nil }
        proxy.set(.pass)

        // Nothing duplicated (converged checks exactly one Deployment per workload), and cwo never exited.
        let managed = ListOptions(labelSelector: "app.kubernetes.io/managed-by=cwo")
        let accounts: ObjectList<UntypedObject> = try await admin.list(.serviceAccounts, namespace: namespace, options: managed)
        let maps: ObjectList<UntypedObject> = try await admin.list(.configMaps, namespace: namespace, options: managed)
        #expect(Set(accounts.items.map(\.name)) == Set((20..<25).map { "w\($0)" }) && accounts.items.count == 5)
        #expect(maps.items.count == 5)
        #expect(!cwo.log.contains("stopped"), "cwo exited:\n\(cwo.log.suffix(1500))")
    }
}
