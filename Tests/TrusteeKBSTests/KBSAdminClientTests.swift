import Crypto
import Foundation
import Logging
import Testing
import TestSupport
@testable import TrusteeKBS

/// The KBS admin client against a local HTTPS stand-in that checks admin tokens as the KBS does.
@Suite("KBS admin client")
struct KBSAdminClientTests {
    func client(_ kbs: FakeKBS, key: Curve25519.Signing.PrivateKey? = nil) throws -> KBSAdminClient {
        var options = KBSAdminClient.Options(url: kbs.url + "/", caFile: kbs.caFile)
        // The stand-in answers from Swift's thread pool, which the test run's first half minute keeps busy
        // (every suite starting at once, control planes booting beside it on two cores): a GET once waited
        // past the 15 s default in CI. These tests check what is sent and answered, not how fast.
        options.requestTimeout = .seconds(120)
        return try KBSAdminClient(
            options: options, adminKey: key ?? (try KBSAdminClient.adminKey(pem: kbs.adminKeyPEM)), logger: Logger(label: "test"))
    }

    @Test func thePolicyRoundTripsAndResourcesAreStored() async throws {
        let kbs = try await FakeKBS.start()
        let client = try client(kbs)
        #expect(try await client.resourcePolicy() == nil, "a KBS without a policy")
        let rego = "package policy\n\ndefault allow := false\n# é and ''' survive\n"
        try await client.setResourcePolicy(rego)
        #expect(kbs.policy == rego)
        #expect(try await client.resourcePolicy() == rego)
        try await client.setResource("default/key/web", Array("s3cr3t".utf8))
        #expect(kbs.resource("default/key/web") == Array("s3cr3t".utf8))
        let requests = kbs.requests
        #expect(requests.map(\.description) == [
            "GET /kbs/v0/resource-policy", "POST /kbs/v0/resource-policy", "GET /kbs/v0/resource-policy", "POST /kbs/v0/resource/default/key/web",
        ])
        #expect(requests[1].headers["content-type"] == "application/json")
        #expect(requests[3].headers["content-type"] == "application/octet-stream")
        #expect(requests.allSatisfy { $0.headers["authorization"]?.hasPrefix("Bearer ey") == true }, "each request carries a token the KBS accepted")
        try await client.shutdown()
        await kbs.stop()
    }

    @Test func failuresAreSortedForTheCondition() async throws {
        let kbs = try await FakeKBS.start()
        let stranger = try client(kbs, key: Curve25519.Signing.PrivateKey())
        await #expect { try await stranger.setResourcePolicy("package policy") } throws: { ($0 as? KBSError)?.kind == .unauthorized }
        #expect(kbs.policy == nil)
        let client = try client(kbs)
        kbs.fail("POST", "resource-policy", status: 503)
        await #expect { try await client.setResourcePolicy("package policy") } throws: { ($0 as? KBSError)?.kind == .unreachable }
        await #expect { try await client.setResourcePolicy("not rego") } throws: { error in
            (error as? KBSError)?.kind == .rejected && "\(error)".contains("package policy")
        }
        try await client.shutdown()
        try await stranger.shutdown()
        await kbs.stop()
        let gone = try self.client(kbs)
        await #expect { try await gone.resourcePolicy() } throws: { ($0 as? KBSError)?.kind == .unreachable }
        try await gone.shutdown()
    }

    @Test func theAdminKeyIsReadAsOpenSSLWritesIt() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-ed25519-\(UUID().uuidString).pem").path
        _ = try await runCommand(["openssl", "genpkey", "-algorithm", "ed25519", "-out", path])
        let pem = try String(contentsOfFile: path, encoding: .utf8)
        let key = try KBSAdminClient.adminKey(pem: pem)
        // openssl derives the same public key.
        let publicDER = try await runCommand(["sh", "-c", "openssl pkey -in \(path) -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \\n'"])
        #expect(publicDER == key.publicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined())
        #expect(throws: KBSError.self) { try KBSAdminClient.adminKey(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") }
    }

    @Test func tokensAreEdDSAJWTsWithABoundedLifetime() throws {
        let key = Curve25519.Signing.PrivateKey()
        let client = try KBSAdminClient(options: .init(url: "https://kbs"), adminKey: key, logger: Logger(label: "test"))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let parts = try client.adminToken(now: now).split(separator: ".").map(String.init)
        #expect(parts.count == 3)
        #expect(Base64URL.decode(parts[0]).map { String(decoding: $0, as: UTF8.self) } == #"{"alg":"EdDSA","typ":"JWT"}"#)
        #expect(Base64URL.decode(parts[1]).map { String(decoding: $0, as: UTF8.self) } == #"{"exp":1800000300,"iat":1800000000,"nbf":1799999940}"#)
        #expect(key.publicKey.isValidSignature(Base64URL.decode(parts[2]) ?? [], for: Array("\(parts[0]).\(parts[1])".utf8)))
    }
}
