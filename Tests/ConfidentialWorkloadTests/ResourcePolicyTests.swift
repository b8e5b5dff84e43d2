@testable import ConfidentialWorkload
import Foundation
import KubernetesClient
import Testing
import TestSupport

/// The KBS resource policy cwo composes, evaluated as the KBS evaluates it (regorus 0.2.8 and 0.9 with
/// Rego v1 defaults) on attestation-token claims shaped as the KBS builds them (EAR, per TEE).
@Suite("KBS resource policy under both regorus engines")
struct ResourcePolicyTests {
    struct Case {
        var name: String
        var tee: String
        var initData: String
        var path: JSONValue
        var plugin: String? = "resource"
        var allowed: Bool
    }

    static func digest(_ seed: String) -> String { InitData(policy: seed, kbs: nil, extra: [:], algorithm: .sha384).digestHex }

    /// Runs every case in both engines; returns the pairs of verdicts.
    static func evaluate(_ policy: String, _ cases: [Case]) async throws -> [[JSONValue]] {
        let request: JSONValue = [
            "policy": .string(policy),
            "cases": .array(cases.map { item in
                var data: JSONValue = ["resource-path": item.path]
                if let plugin = item.plugin { data["plugin"] = .string(plugin) }
                let evidence: JSONValue = .object([item.tee: ["init_data": .string(item.initData)]])
                return ["input": ["submods": ["cpu0": ["ear.veraison.annotated-evidence": evidence]]], "data": data]
            }),
        ]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-kbs-\(UUID().uuidString).json").path
        try Data(request.compactJSON.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Rego/resource_policy.py").path
        let output = try await runCommand(["python3", script, path])
        return try JSONParser.parse(output).arrayValue?.map { $0.arrayValue ?? [] } ?? []
    }

    @Test func eachWorkloadGetsItsOwnPathsWithItsOwnDigestsOnly() async throws {
        let (webNew, webOld, db, vtpm) = (Self.digest("web v2"), Self.digest("web v1"), Self.digest("db"), Self.digest("vtpm"))
        let retired = Self.digest("web v0")
        let policy = ResourcePolicy.compose([
            // During web's rollout both its digests are allowed; v0's pods are gone, so it is not.
            .init(workload: "shop/web", paths: ["shop/key/web", "shop/cert/web"], tee: .snp, digests: [webNew, webOld]),
            .init(workload: "shop/db", paths: ["shop/key/db"], tee: .tdx, digests: [db]),
            .init(workload: "edge/peer", paths: ["edge/key/peer"], tee: .azSNPvTPM, digests: [vtpm]),
        ])
        let vtpmClaim = Data(InitData.bytes(hex: vtpm)).base64EncodedString()
        let cases: [Case] = [
            Case(name: "web, new digest, its key", tee: "snp", initData: webNew, path: "shop/key/web", allowed: true),
            Case(name: "web, old digest while it still runs", tee: "snp", initData: webOld, path: "shop/cert/web", allowed: true),
            Case(name: "web, path as a list", tee: "snp", initData: webNew, path: ["shop", "key", "web"], allowed: true),
            Case(name: "web, an older KBS without plugins", tee: "snp", initData: webNew, path: "shop/key/web", plugin: nil, allowed: true),
            Case(name: "web, a retired digest", tee: "snp", initData: retired, path: "shop/key/web", allowed: false),
            Case(name: "web's digest asking for db's key", tee: "snp", initData: webNew, path: "shop/key/db", allowed: false),
            Case(name: "db's digest asking for web's key", tee: "tdx", initData: db, path: "shop/key/web", allowed: false),
            Case(name: "db, its key", tee: "tdx", initData: db, path: "shop/key/db", allowed: true),
            Case(name: "db's digest claimed by another TEE", tee: "snp", initData: db, path: "shop/key/db", allowed: false),
            Case(name: "a path nobody lists", tee: "snp", initData: webNew, path: "shop/key/other", allowed: false),
            Case(name: "another plugin", tee: "snp", initData: webNew, path: "shop/key/web", plugin: "pkcs11", allowed: false),
            Case(name: "vtpm, its key, base64 claim", tee: "az-snp-vtpm", initData: vtpmClaim, path: "edge/key/peer", allowed: true),
            Case(name: "vtpm, hex claim", tee: "az-snp-vtpm", initData: vtpm, path: "edge/key/peer", allowed: false),
        ]
        let verdicts = try await Self.evaluate(policy, cases)
        try #require(verdicts.count == cases.count, "\(verdicts)")
        for (item, verdict) in zip(cases, verdicts) {
            #expect(verdict == [.bool(item.allowed), .bool(item.allowed)], "\(item.name): regorus 0.2.8 / 0.9 said \(verdict)")
        }
    }

    @Test func anEmptyBookDeniesEverythingAndTheTextIsStable() async throws {
        let none = ResourcePolicy.compose([])
        let verdicts = try await Self.evaluate(none, [Case(name: "any", tee: "snp", initData: Self.digest("x"), path: "a/b/c", allowed: false)])
        #expect(verdicts == [[false, false]])
        let a = ResourcePolicy.Grant(workload: "n/a", paths: ["n/k/a"], tee: .snp, digests: ["01", "02"])
        let b = ResourcePolicy.Grant(workload: "n/b", paths: ["n/k/b", "n/c/b"], tee: .tdx, digests: ["03"])
        #expect(ResourcePolicy.compose([a, b]) == ResourcePolicy.compose([b, a]))
        var reordered = b
        reordered.paths.reverse()
        #expect(ResourcePolicy.compose([a, b]) == ResourcePolicy.compose([a, reordered]))
    }
}
