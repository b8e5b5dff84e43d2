import Crypto
import Foundation
import NIOCore
import Synchronization

/// A local HTTPS stand-in for a Trustee KBS's admin API, for the calls cwo makes (read and set the
/// resource policy, set a resource), answering as the KBS does: admin tokens are checked the way the KBS
/// checks them (an EdDSA JWT whose signature verifies with the admin public key, within its exp and
/// nbf), errors come as `{"type","detail"}`. Every request is recorded; faults can be scripted; a hook
/// runs before a policy is stored, so a test can look at the cluster at that moment.
public final class FakeKBS: Sendable {
    public typealias Request = RecordedRequest

    struct State {
        var requests: [Request] = []
        var policy: String?
        var resources: [String: [UInt8]] = [:]
        var faults: [(method: String, pathContains: String, status: Int, remaining: Int)] = []
    }

    public let port: Int
    public let caFile: String
    /// The admin key cwo signs with (PKCS#8 PEM), and the public key the KBS checks against.
    public let adminKeyPEM: String
    private let publicKey: Curve25519.Signing.PublicKey
    private let state = Mutex(State())
    private let channel: any Channel
    private let https: LoopbackHTTPS
    public let beforePolicyWrite = Mutex<(@Sendable (String) async -> Void)?>(nil)

    public var url: String { "https://localhost:\(port)" }

    public static func start() async throws -> FakeKBS {
        try await FakeKBS(https: try await LoopbackHTTPS.make(prefix: "cwo-fake-kbs"))
    }

    private init(https: LoopbackHTTPS) async throws {
        self.https = https
        caFile = https.caFile
        let key = Curve25519.Signing.PrivateKey()
        publicKey = key.publicKey
        adminKeyPEM = Self.pem(key)
        let holder = LateBound<FakeKBS>()
        channel = try await https.listen(backlog: 16) { RecordingHandler { await holder.value?.answer($0) } }
        port = channel.localAddress?.port ?? 0
        holder.value = self
    }

    /// An Ed25519 private key as PKCS#8 PEM (what `openssl genpkey -algorithm ed25519` writes).
    static func pem(_ key: Curve25519.Signing.PrivateKey) -> String {
        let pkcs8 = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20] + Array(key.rawRepresentation)
        return "-----BEGIN PRIVATE KEY-----\n\(Data(pkcs8).base64EncodedString())\n-----END PRIVATE KEY-----\n"
    }

    /// A well-formed admin key this KBS does not trust.
    public static func strangerKeyPEM() -> String { pem(Curve25519.Signing.PrivateKey()) }

    public func stop() async {
        try? await channel.close()
        https.remove()
    }

    /// Writes the admin key to a file (as the KBS operator hands it out) and returns its path.
    public func writeAdminKeyFile() throws -> String {
        let path = "\(https.directory)/admin.key"
        try Data(adminKeyPEM.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    public var requests: [Request] { state.withLock { $0.requests } }
    public func clearRequests() { state.withLock { $0.requests = [] } }
    /// The resource policy in force.
    public var policy: String? { state.withLock { $0.policy } }
    public func setPolicy(_ text: String?) { state.withLock { $0.policy = text } }
    public func resource(_ path: String) -> [UInt8]? { state.withLock { $0.resources[path] } }

    /// The next `times` requests matching `method` and `pathContains` get `status`.
    public func fail(_ method: String, _ pathContains: String, status: Int, times: Int = 1) {
        state.withLock { $0.faults.append((method, pathContains, status, times)) }
    }

    /// Policy writes so far (`POST /kbs/v0/resource-policy` answered 200), decoded.
    public var policyWrites: [String] {
        requests.filter { $0.method == "POST" && $0.path == "/kbs/v0/resource-policy" }.compactMap(Self.decodePolicy)
    }

    static func decodePolicy(_ request: Request) -> String? {
        guard let encoded = request.json?["policy"] as? String else { return nil }
        return base64url(encoded).map { String(decoding: $0, as: UTF8.self) }
    }

    static func error(_ status: Int, _ type: String, _ detail: String) -> CannedAnswer {
        let body = (try? JSONSerialization.data(withJSONObject: ["type": "https://github.com/confidential-containers/kbs/errors/\(type)", "detail": detail])) ?? Data()
        return CannedAnswer(status: status, body: String(decoding: body, as: UTF8.self))
    }

    func answer(_ request: Request) async -> CannedAnswer {
        let fault = state.withLock { state -> Int? in
            guard let index = state.faults.firstIndex(where: { $0.method == request.method && request.path.contains($0.pathContains) && $0.remaining > 0 }) else {
                state.requests.append(request)
                return nil
            }
            state.faults[index].remaining -= 1
            var recorded = request
            recorded.headers["x-fault"] = "\(state.faults[index].status)"
            state.requests.append(recorded)
            return state.faults[index].status
        }
        if let fault { return Self.error(fault, "Scripted", "scripted failure \(fault)") }
        guard authorized(request.headers["authorization"]) else {
            return Self.error(401, "AdminAuth", "Admin auth error: Admin Token could not be verified for any admin persona")
        }
        switch (request.method, request.path) {
        case ("GET", "/kbs/v0/resource-policy"):
            let policy = state.withLock { $0.policy } ?? ""
            let encoded = Data(policy.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            return CannedAnswer(status: 200, body: encoded)
        case ("POST", "/kbs/v0/resource-policy"):
            guard let policy = Self.decodePolicy(request), policy.contains("package policy") else {
                return Self.error(400, "PolicyEndpoint", "the policy must be base64url Rego of package policy")
            }
            await beforePolicyWrite.withLock { $0 }?(policy)
            state.withLock { $0.policy = policy }
            return CannedAnswer(status: 200, body: "")
        case ("POST", let path) where path.hasPrefix("/kbs/v0/resource/"):
            let resource = String(path.dropFirst("/kbs/v0/resource/".count))
            guard resource.split(separator: "/").count == 3 else { return Self.error(400, "InvalidRequest", "resource path must be repo/type/tag") }
            state.withLock { $0.resources[resource] = Array(request.body.utf8) }
            return CannedAnswer(status: 200, body: "")
        default:
            return Self.error(404, "NotFound", "no route \(request.method) \(request.path)")
        }
    }

    /// As the KBS: an EdDSA JWT signed by the admin key, now within [nbf, exp).
    func authorized(_ header: String?) -> Bool {
        guard let header, header.hasPrefix("Bearer ") else { return false }
        let parts = header.dropFirst("Bearer ".count).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let head = Self.json(parts[0]), head["alg"] as? String == "EdDSA", let claims = Self.json(parts[1]),
            let signature = Self.base64url(parts[2]), publicKey.isValidSignature(signature, for: Array("\(parts[0]).\(parts[1])".utf8))
        else { return false }
        let now = Date().timeIntervalSince1970
        if let exp = claims["exp"] as? Double, now >= exp { return false }
        if let nbf = claims["nbf"] as? Double, now < nbf { return false }
        return true
    }

    static func base64url(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }

    static func json(_ part: String) -> [String: Any]? {
        base64url(part).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }
}
