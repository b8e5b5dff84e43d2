import AsyncHTTPClient
import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FoundationExtras
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// The Trustee KBS admin API calls cwo makes, as trustee's own `kbs-client` makes them: read and write
/// the resource policy, and upload a resource. Each request carries a fresh admin token: a JWT signed
/// EdDSA with the KBS admin's Ed25519 key (the KBS holds the public key).
public final class KBSAdminClient: Sendable {
    public struct Options: Sendable {
        /// The KBS base URL, e.g. `https://kbs.confidential.svc:8080`.
        public var url: String
        /// A PEM file of extra CAs to trust besides the system's (the KBS's own CA).
        public var caFile: String?
        public var requestTimeout: Duration = .seconds(15)
        public var userAgent = "cwo"

        public init(url: String, caFile: String? = nil) {
            var url = url
            while url.hasSuffix("/") { url.removeLast() }
            self.url = url
            self.caFile = caFile
        }
    }

    public let options: Options
    let key: Curve25519.Signing.PrivateKey
    let http: HTTPClient
    let logger: Logger

    public init(options: Options, adminKey: Curve25519.Signing.PrivateKey, logger: Logger) throws {
        self.options = options
        self.key = adminKey
        self.logger = logger
        var tls = TLSConfiguration.makeClientConfiguration()
        if let file = options.caFile { tls.additionalTrustRoots = [.file(file)] }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(Int64(options.requestTimeout.components.seconds)))
        configuration.redirectConfiguration = .disallow
        // An unreachable KBS fails at once: the reconcile's backoff decides when to try again.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    deinit {
        _ = http.shutdown()
    }

    /// The resource policy in force (its Rego text), nil when the KBS has none set.
    public func resourcePolicy() async throws(KBSError) -> String? {
        let body = try await send(.GET, "/kbs/v0/resource-policy", body: nil, contentType: nil)
        guard !body.isEmpty else { return nil }
        // The KBS answers the base64url (no padding) of the Rego text, bare or as {"policy": ...}.
        var encoded = String(decoding: body, as: UTF8.self).trimmingWhitespace()
        if let object = try? AnyJSON.parse(body) as? [String: Any], let policy = object["policy"] as? String {
            encoded = policy
        } else if let text = try? AnyJSON.parse(body) as? String {
            encoded = text
        }
        guard let bytes = Base64URL.decode(encoded) else {
            throw KBSError(kind: .rejected, message: "the KBS's resource policy is not base64url", request: "GET resource-policy")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Replaces the resource policy.
    public func setResourcePolicy(_ rego: String) async throws(KBSError) {
        // base64url has no characters JSON would escape.
        let body = #"{"policy":""# + Base64URL.encode(Array(rego.utf8)) + #""}"#
        _ = try await send(.POST, "/kbs/v0/resource-policy", body: Array(body.utf8), contentType: "application/json")
    }

    /// Stores `value` as the resource at `path` (repository/type/tag).
    public func setResource(_ path: String, _ value: [UInt8]) async throws(KBSError) {
        _ = try await send(.POST, "/kbs/v0/resource/\(path)", body: value, contentType: "application/octet-stream")
    }

    /// A token for one request: valid from a minute ago (clock skew) for five minutes.
    func adminToken(now: Date = Date()) throws -> String {
        let seconds = Int(now.timeIntervalSince1970)
        let header = Base64URL.encode(Array(#"{"alg":"EdDSA","typ":"JWT"}"#.utf8))
        let claims = Base64URL.encode(Array(#"{"exp":\#(seconds + 300),"iat":\#(seconds),"nbf":\#(seconds - 60)}"#.utf8))
        let signature = try key.signature(for: Array("\(header).\(claims)".utf8))
        return "\(header).\(claims).\(Base64URL.encode(Array(signature)))"
    }

    func send(_ method: HTTPMethod, _ path: String, body: [UInt8]?, contentType: String?) async throws(KBSError) -> [UInt8] {
        let label = "\(method.rawValue) \(path)"
        do {
            var request = HTTPClientRequest(url: options.url + path)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(try adminToken())")
            request.headers.add(name: "User-Agent", value: options.userAgent)
            if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response = try await http.execute(request, timeout: .seconds(Int64(options.requestTimeout.components.seconds)))
            let data = Array((try await response.body.collect(upTo: 4 * 1024 * 1024)).readableBytesView)
            let code = Int(response.status.code)
            logger.debug("kbs request", metadata: ["request": "\(label)", "code": "\(code)"])
            guard (200..<300).contains(code) else {
                throw KBSError(kind: KBSError.kind(forStatus: code), status: code, message: Self.detail(data) ?? "HTTP \(code)", request: label)
            }
            return data
        } catch let error as KBSError {
            throw error
        } catch {
            throw KBSError(kind: .unreachable, message: "\(error)", request: label)
        }
    }

    /// The KBS answers errors as `{"type": ..., "detail": ...}`.
    static func detail(_ body: [UInt8]) -> String? {
        guard let object = try? AnyJSON.parse(body) as? [String: Any] else {
            let text = String(decoding: body.prefix(300), as: UTF8.self)
            return text.isEmpty ? nil : text
        }
        return (object["detail"] as? String) ?? (object["type"] as? String)
    }

    /// Reads the KBS admin's Ed25519 private key: PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    public static func adminKey(pem: String) throws(KBSError) -> Curve25519.Signing.PrivateKey {
        let base64 = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        // PKCS#8 of an Ed25519 key: a fixed 16-byte prefix, then the 32-byte seed.
        let prefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
        guard let der = Data(base64Encoded: base64).map(Array.init), der.count == 48, Array(der.prefix(16)) == prefix,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        else {
            throw KBSError(kind: .configuration, message: "the KBS admin key must be an Ed25519 private key in PKCS#8 PEM (openssl genpkey -algorithm ed25519)", request: "")
        }
        return key
    }
}

/// A failed KBS admin call, sorted into what the workload's condition says.
public struct KBSError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case unreachable, unauthorized, rejected, configuration
    }

    public var kind: Kind
    public var status: Int?
    public var message: String
    public var request: String

    public init(kind: Kind, status: Int? = nil, message: String, request: String) {
        self.kind = kind
        self.status = status
        self.message = message
        self.request = request
    }

    static func kind(forStatus status: Int) -> Kind {
        switch status {
        case 401, 403: .unauthorized
        case 500...: .unreachable
        default: .rejected
        }
    }

    public var description: String { "\(request): \(status.map { "HTTP \($0): " } ?? "")\(message)" }
}

/// base64url without padding (RFC 7515), as JWTs and the KBS admin API use it.
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacing("+", with: "-").replacing("/", with: "_")
            .replacing("=", with: "")
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var base64 = text.replacing("-", with: "+").replacing("_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map(Array.init)
    }
}
