#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOHTTP1

/// The Key Vault / Managed HSM data-plane calls cwo makes: read a key, create one, set its release policy.
///
/// Authenticated with the operator's workload identity; the access token is requested for the vault's
/// own audience (`https://vault.azure.net` or `https://managedhsm.azure.net`, per cloud).
public final class KeyVaultClient: Sendable {
    let transport: AzureTransport
    let tokens: TokenCache
    let options: AzureOptions

    public init(identity: WorkloadIdentity, options: AzureOptions = AzureOptions(), logger: Logger = Logger(label: "cwo.azure")) throws {
        transport = try AzureTransport(options: options, logger: logger)
        tokens = TokenCache(identity: identity, transport: transport)
        self.options = options
    }

    public func shutdown() async throws {
        try await transport.shutdown()
    }

    /// The key's latest version, or nil when the vault has no key of that name.
    public func getKey(vault: String, name: String) async throws -> KeyBundle? {
        do {
            return try await call(.GET, vault: vault, path: "/keys/\(name)", body: String?.none, idempotent: true)
        } catch let error as AzureError where error.kind == .notFound {
            return nil
        }
    }

    /// Creates the key (or a new version of it) with `parameters`.
    public func createKey(vault: String, name: String, parameters: KeyCreateParameters) async throws -> KeyBundle {
        // Not idempotent: a retried create after a lost answer would add a second version.
        try await call(.POST, vault: vault, path: "/keys/\(name)/create", body: parameters, idempotent: false)
    }

    /// Replaces the release policy of one key version. Setting a whole value is idempotent.
    public func updateReleasePolicy(vault: String, name: String, version: String, policy: KeyReleasePolicy) async throws -> KeyBundle {
        struct Update: Encodable { var release_policy: KeyReleasePolicy }
        return try await call(.PATCH, vault: vault, path: "/keys/\(name)/\(version)", body: Update(release_policy: policy), idempotent: true)
    }

    func call<Body: Encodable, Answer: Decodable>(
        _ method: HTTPMethod, vault: String, path: String, body: Body?, idempotent: Bool
    ) async throws -> Answer {
        var base = vault
        while base.hasSuffix("/") { base.removeLast() }
        let url = "\(base)\(path)?api-version=\(options.apiVersion)"
        let label = "\(method.rawValue) \(path)"
        let scope = Self.scope(forVault: base)
        var payload: ByteBuffer?
        if let body { payload = ByteBuffer(bytes: try JSONEncoder().encode(body)) }
        var refreshed = false
        while true {
            var headers = HTTPHeaders()
            headers.add(name: "Authorization", value: "Bearer \(try await tokens.token(scope: scope))")
            headers.add(name: "Accept", value: "application/json")
            if payload != nil { headers.add(name: "Content-Type", value: "application/json") }
            do {
                let response = try await transport.send(method, url: url, headers: headers, body: payload, idempotent: idempotent, label: label)
                do {
                    return try JSONDecoder().decode(Answer.self, from: Data(response.body.readableBytesView))
                } catch {
                    throw AzureError(kind: .decoding, status: response.status, message: "unexpected answer: \(error)", request: label)
                }
            } catch let error as AzureError where error.kind == .unauthorized && !refreshed {
                // A revoked or expired token: exchange a fresh one once.
                refreshed = true
                await tokens.invalidate(scope: scope)
            }
        }
    }

    /// The token audience for a vault URL: Managed HSM or Key Vault, in the vault's own cloud.
    public static func scope(forVault url: String) -> String {
        let host = URL(string: url)?.host ?? ""
        for (service, resource) in [(".managedhsm.", "managedhsm"), (".vault.", "vault")] {
            if let range = host.firstRange(of: service) {
                return "https://\(resource).\(host[range.upperBound...])/.default"
            }
        }
        return "https://vault.azure.net/.default"
    }
}

/// A key as Key Vault returns it (the fields cwo reads).
public struct KeyBundle: Codable, Sendable, Hashable {
    public struct Key: Codable, Sendable, Hashable {
        public var kid: String?
        public var kty: String?
    }

    public struct Attributes: Codable, Sendable, Hashable {
        public var enabled: Bool?
        public var exportable: Bool?
    }

    public var key: Key?
    public var attributes: Attributes?
    public var release_policy: KeyReleasePolicy?

    /// The version: the last path segment of `kid`.
    public var version: String {
        (key?.kid).flatMap { URL(string: $0)?.lastPathComponent } ?? ""
    }
}

/// `release_policy` on the wire: the policy JSON, base64url-encoded, with its content type.
public struct KeyReleasePolicy: Codable, Sendable, Hashable {
    public static let contentType = "application/json; charset=utf-8"

    public var contentType: String?
    public var data: String?
    public var immutable: Bool?

    public init(policy: Data, immutable: Bool = false) {
        contentType = Self.contentType
        data = Base64URL.encode(policy)
        self.immutable = immutable
    }

    /// The policy JSON; the service may answer in base64url or standard base64, padded or not.
    public var policy: Data? {
        data.flatMap(Base64URL.decode)
    }
}

/// Body of `POST /keys/{name}/create`.
public struct KeyCreateParameters: Encodable, Sendable {
    public var kty: String
    public var key_size: Int?
    public var crv: String?
    public var key_ops: [String]?
    public var attributes: KeyBundle.Attributes
    public var release_policy: KeyReleasePolicy

    /// An exportable key (required for a release policy) of `keyType` and `size`.
    public init(keyType: String, size: Int, releasePolicy: KeyReleasePolicy) {
        kty = keyType
        switch keyType {
        case "EC", "EC-HSM":
            crv = size <= 256 ? "P-256" : size <= 384 ? "P-384" : "P-521"
            key_ops = ["sign", "verify"]
        default:  // RSA, RSA-HSM, oct-HSM
            key_size = size
            key_ops = ["wrapKey", "unwrapKey", "encrypt", "decrypt"]
        }
        attributes = KeyBundle.Attributes(enabled: true, exportable: true)
        release_policy = releasePolicy
    }
}

public enum Base64URL {
    public static func encode(_ data: Data) -> String {
        data.base64EncodedString()
            .replacing("+", with: "-")
            .replacing("/", with: "_")
            .replacing("=", with: "")
    }

    public static func decode(_ text: String) -> Data? {
        var standard = text.replacing("-", with: "+").replacing("_", with: "/")
        standard = standard.replacing("=", with: "")
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        return Data(base64Encoded: standard)
    }
}
