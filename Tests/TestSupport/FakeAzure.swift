import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A local HTTPS stand-in for Microsoft Entra ID's token endpoint and the Key Vault data plane, for the
/// calls cwo makes (token exchange, get key, create key, update release policy), answering as the
/// documented services do, including their error bodies. Every request is recorded; faults can be
/// scripted per method and path; `beforeWrite` runs before a key change is answered, so a test can look
/// at the cluster at the moment Key Vault is changed.
public final class FakeAzure: Sendable {
    public typealias Request = RecordedRequest

    public struct Fault: Sendable {
        public var method: String
        public var pathContains: String
        public var status: Int
        public var code: String
        public var retryAfter: Int?
        public var remaining: Int
    }

    public struct StoredKey: Sendable {
        public var versions: [String]
        public var policy: Data?
        public var immutable = false
        public var exportable = true
        public var kty = "RSA-HSM"
    }

    struct State {
        var requests: [Request] = []
        var keys: [String: StoredKey] = [:]
        var faults: [Fault] = []
        var issued: Set<String> = []
        var deletedKeys: Set<String> = []
        var counter = 0
    }

    public let port: Int
    public let caFile: String
    public let federatedToken = "federated-\(UUID().uuidString)"
    public let clientID = "99999999-0000-0000-0000-000000000001"
    public let tenantID = "tenant-\(UUID().uuidString.prefix(8).lowercased())"
    /// Seconds each access token is valid for.
    public static let tokenLifetime = 3600
    private let state = Mutex(State())
    private let channel: any Channel
    private let https: LoopbackHTTPS
    /// Runs before a create or release-policy update is answered (the change is applied after it).
    public let beforeWrite = Mutex<(@Sendable (Request) async -> Void)?>(nil)

    public var url: String { "https://localhost:\(port)" }

    /// Starts on a free loopback port with a fresh self-signed certificate (in `caFile`).
    public static func start() async throws -> FakeAzure {
        try await FakeAzure(https: try await LoopbackHTTPS.make(prefix: "cwo-fake-azure"))
    }

    private init(https: LoopbackHTTPS) async throws {
        self.https = https
        self.caFile = https.caFile
        let holder = LateBound<FakeAzure>()
        channel = try await https.listen(backlog: 64) { RecordingHandler { await holder.value?.answer($0) } }
        port = channel.localAddress?.port ?? 0
        holder.value = self
    }

    public func stop() async {
        try? await channel.close()
        https.remove()
    }

    /// Writes the federated token to a file, as the workload identity webhook does, and returns its path.
    public func writeFederatedTokenFile() throws -> String {
        let path = "\(https.directory)/federated-token"
        try Data(federatedToken.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    // MARK: - Inspecting and scripting

    public var requests: [Request] { state.withLock { $0.requests } }
    public func clearRequests() { state.withLock { $0.requests = [] } }

    public func key(_ name: String) -> StoredKey? { state.withLock { $0.keys[name] } }

    /// Puts a key in the vault (as a user would have created it).
    public func setKey(_ name: String, policy: String?, immutable: Bool = false, exportable: Bool = true) {
        state.withLock { state in
            state.counter += 1
            state.keys[name] = StoredKey(versions: [Self.version(state.counter)], policy: policy.map { Data($0.utf8) }, immutable: immutable, exportable: exportable)
        }
    }

    /// Makes a create of `name` answer 409, as a deleted-but-recoverable key does.
    public func markDeleted(_ name: String, _ deleted: Bool = true) {
        state.withLock { if deleted { $0.deletedKeys.insert(name) } else { $0.deletedKeys.remove(name) } }
    }

    /// The next `times` requests matching `method` and `pathContains` get `status` with the service's error body.
    public func fail(_ method: String, _ pathContains: String, status: Int, code: String, times: Int = 1, retryAfter: Int? = nil) {
        state.withLock { $0.faults.append(Fault(method: method, pathContains: pathContains, status: status, code: code, retryAfter: retryAfter, remaining: times)) }
    }


    /// Tokens issued so far are refused from now on (as after a revocation).
    public func revokeTokens() { state.withLock { $0.issued = [] } }

    /// The policy hashes (`x-ms-sevsnpvm-hostdata` values) the key's release policy allows, in order.
    public func releaseHashes(_ name: String) -> [String] {
        Self.hashes(inPolicy: key(name)?.policy)
    }

    /// The hashes in the release policy a create or update request sends.
    public static func hashes(in request: Request) -> [String] {
        guard case .some(.some(let policy)) = decodePolicy(request) else { return [] }
        return hashes(inPolicy: policy)
    }

    static func hashes(inPolicy policy: Data?) -> [String] {
        guard let policy, let object = (try? JSONSerialization.jsonObject(with: policy)) as? [String: Any] else { return [] }
        return ((object["anyOf"] as? [[String: Any]]) ?? []).flatMap { entry in
            ((entry["allOf"] as? [[String: Any]]) ?? []).compactMap { condition in
                condition["claim"] as? String == "x-ms-sevsnpvm-hostdata" ? condition["equals"] as? String : nil
            }
        }
    }

    // MARK: - Answering

    typealias Answer = CannedAnswer

    static func version(_ n: Int) -> String { String(format: "%032x", n * 7919) }

    static func error(_ status: Int, _ code: String, _ message: String, retryAfter: Int? = nil) -> Answer {
        let body = try? JSONSerialization.data(withJSONObject: ["error": ["code": code, "message": message]])
        var answer = Answer(status: status, body: String(decoding: body ?? Data(), as: UTF8.self))
        if let retryAfter { answer.headers.append(("Retry-After", "\(retryAfter)")) }
        return answer
    }

    func answer(_ request: Request) async -> Answer {
        let fault = state.withLock { state -> Fault? in
            state.requests.append(request)
            guard let index = state.faults.firstIndex(where: { $0.method == request.method && request.path.contains($0.pathContains) && $0.remaining > 0 }) else {
                return nil
            }
            state.faults[index].remaining -= 1
            return state.faults[index]
        }
        if let fault {
            if request.path.hasSuffix("/oauth2/v2.0/token") {
                let body = try? JSONSerialization.data(withJSONObject: ["error": fault.code, "error_description": "AADSTS50000: scripted \(fault.code)"])
                var answer = Answer(status: fault.status, body: String(decoding: body ?? Data(), as: UTF8.self))
                if let retryAfter = fault.retryAfter { answer.headers.append(("Retry-After", "\(retryAfter)")) }
                return answer
            }
            return Self.error(fault.status, fault.code, "scripted \(fault.code)", retryAfter: fault.retryAfter)
        }
        if request.method == "POST", request.path == "/\(tenantID)/oauth2/v2.0/token" { return token(request) }
        guard request.path.hasPrefix("/keys/") else { return Self.error(404, "NotFound", "no route \(request.path)") }
        guard let version = request.query["api-version"], version >= "7.4" else {
            return Self.error(400, "BadParameter", "api-version 7.4 or later is required")
        }
        let bearer = request.headers["authorization"] ?? ""
        let known = state.withLock { $0.issued.contains(String(bearer.dropFirst("Bearer ".count))) }
        guard bearer.hasPrefix("Bearer "), known else {
            var answer = Self.error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
            answer.headers.append(("WWW-Authenticate", "Bearer authorization=\"\(url)/\(tenantID)\", resource=\"https://vault.azure.net\""))
            return answer
        }
        let parts = request.path.split(separator: "/").map(String.init)  // ["keys", name, ...]
        let name = parts.count > 1 ? parts[1] : ""
        switch (request.method, parts.count) {
        case ("GET", 2):
            return bundle(name).map { Answer(status: 200, body: $0) } ?? Self.error(404, "KeyNotFound", "A key with (name/id) \(name) was not found in this key vault.")
        case ("POST", 3) where parts[2] == "create":
            return await create(name, request)
        case ("PATCH", 3):
            return await update(name, version: parts[2], request)
        default:
            return Self.error(405, "MethodNotAllowed", "\(request.method) \(request.path)")
        }
    }

    func token(_ request: Request) -> Answer {
        let form = request.form
        func refuse(_ code: String, _ text: String) -> Answer {
            let body = try? JSONSerialization.data(withJSONObject: ["error": code, "error_description": text])
            return Answer(status: 401, body: String(decoding: body ?? Data(), as: UTF8.self))
        }
        guard form["grant_type"] == "client_credentials" else { return refuse("unsupported_grant_type", "AADSTS70003: grant_type") }
        guard form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" else {
            return refuse("invalid_request", "AADSTS90014: client_assertion_type")
        }
        guard form["client_id"] == clientID else { return refuse("unauthorized_client", "AADSTS700016: Application not found") }
        guard form["client_assertion"] == federatedToken else { return refuse("invalid_client", "AADSTS70021: No matching federated identity record found") }
        guard let scope = form["scope"], scope.hasSuffix("/.default") else { return refuse("invalid_scope", "AADSTS1002012: scope") }
        let token = state.withLock { state -> String in
            state.counter += 1
            let token = "access-\(state.counter)-\(UUID().uuidString.prefix(8))"
            state.issued.insert(token)
            return token
        }
        let body = try? JSONSerialization.data(withJSONObject: ["token_type": "Bearer", "expires_in": Self.tokenLifetime, "ext_expires_in": Self.tokenLifetime, "access_token": token])
        return Answer(status: 200, body: String(decoding: body ?? Data(), as: UTF8.self))
    }

    func bundle(_ name: String) -> String? {
        guard let key = key(name), let version = key.versions.last else { return nil }
        var object: [String: Any] = [
            "key": ["kid": "\(url)/keys/\(name)/\(version)", "kty": key.kty, "key_ops": ["wrapKey", "unwrapKey", "encrypt", "decrypt"], "n": "sXch", "e": "AQAB"],
            "attributes": ["enabled": true, "exportable": key.exportable, "recoveryLevel": "Recoverable+Purgeable"],
        ]
        if let policy = key.policy {
            let data = policy.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            object["release_policy"] = ["contentType": "application/json; charset=utf-8", "data": data, "immutable": key.immutable]
        }
        return (try? JSONSerialization.data(withJSONObject: object)).map { String(decoding: $0, as: UTF8.self) }
    }

    static func decodePolicy(_ request: Request) -> Data?? {
        guard let policy = request.json?["release_policy"] as? [String: Any] else { return .some(nil) }
        guard let text = policy["data"] as? String else { return nil }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        guard let data = Data(base64Encoded: standard), (try? JSONSerialization.jsonObject(with: data)) != nil else { return nil }
        return .some(data)
    }

    func create(_ name: String, _ request: Request) async -> Answer {
        if state.withLock({ $0.deletedKeys.contains(name) }) {
            return Self.error(409, "Conflict", "Key \(name) is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.")
        }
        guard let body = request.json, let kty = body["kty"] as? String else { return Self.error(400, "BadParameter", "kty is required") }
        guard let policy = Self.decodePolicy(request) else { return Self.error(400, "BadParameter", "release_policy.data must be base64url JSON") }
        if policy != nil, (body["attributes"] as? [String: Any])?["exportable"] as? Bool != true {
            return Self.error(400, "BadParameter", "Non-exportable keys must not have release policy")
        }
        await beforeWrite.withLock { $0 }?(request)
        state.withLock { state in
            state.counter += 1
            var key = state.keys[name] ?? StoredKey(versions: [])
            key.versions.append(Self.version(state.counter))
            key.policy = policy
            key.kty = kty
            key.exportable = true
            state.keys[name] = key
        }
        return Answer(status: 200, body: bundle(name) ?? "{}")
    }

    func update(_ name: String, version: String, _ request: Request) async -> Answer {
        guard let key = key(name), key.versions.contains(version) else {
            return Self.error(404, "KeyNotFound", "A key with (name/id) \(name)/\(version) was not found in this key vault.")
        }
        guard let policy = Self.decodePolicy(request), let policy else { return Self.error(400, "BadParameter", "release_policy.data must be base64url JSON") }
        if key.immutable { return Self.error(400, "BadParameter", "The release policy of this key is immutable.") }
        await beforeWrite.withLock { $0 }?(request)
        state.withLock { $0.keys[name]?.policy = policy }
        return Answer(status: 200, body: bundle(name) ?? "{}")
    }
}
