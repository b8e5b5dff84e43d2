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

/// Reads image facts over the OCI distribution API v2, as containerd would pull the image: the manifest
/// a reference resolves to (its bytes checked against their digest), the `linux/amd64` entry of an index,
/// and the image config. Anonymous, basic and bearer-token access (`WWW-Authenticate: Bearer`, with the
/// basic credentials when given); bounded retries honouring `Retry-After`.
public final class RegistryClient: Sendable {
    public struct Credentials: Sendable, Hashable {
        public var username: String
        public var password: String

        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    public struct Options: Sendable {
        /// A PEM file of extra CAs to trust besides the system's (a private registry's CA).
        public var caFile: String?
        public var requestTimeout: Duration = .seconds(15)
        public var maxAttempts = 3
        /// The longest `Retry-After` waited out inside one call; a longer one fails the call.
        public var maxRetryAfter: Duration = .seconds(5)
        public var userAgent = "cwo"
        /// Told of every HTTP response (its status code, or "error" for a failed connection): for metrics.
        public var observer: (@Sendable (String) -> Void)?

        public init(caFile: String? = nil) {
            self.caFile = caFile
        }
    }

    static let indexTypes = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]
    static let manifestTypes = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]
    static let maxDocument = 4 * 1024 * 1024

    public let options: Options
    let http: HTTPClient
    let logger: Logger
    /// Layer root hashes by blob digest, for the lifetime of this client.
    let tarfsCache = TarfsLayerCache()

    public init(options: Options = Options(), logger: Logger) throws {
        self.options = options
        self.logger = logger
        var tls = TLSConfiguration.makeClientConfiguration()
        if let file = options.caFile { tls.additionalTrustRoots = [.file(file)] }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(Int64(options.requestTimeout.components.seconds)))
        // Blob redirects are followed by hand: the registry's credentials must not go to the storage host.
        configuration.redirectConfiguration = .disallow
        // A refused or untrusted connection fails at once; `send` retries (boundedly) itself.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    deinit {
        _ = http.shutdown()
    }

    /// The facts of `reference` (as a pod template writes it) for `linux/amd64`. With `tarfsLayers` (the
    /// AKS platform only: it downloads every layer once) also each layer's dm-verity root hash as the node
    /// computes it.
    public func resolve(_ reference: String, credentials: Credentials? = nil, tarfsLayers: Bool = false) async throws(RegistryError) -> ImageFacts {
        guard let image = ImageReference(reference) else {
            throw RegistryError(kind: .notFound, message: "\"\(reference)\" is not an image reference", request: reference)
        }
        var session = Session(image: image, credentials: credentials)
        let top = try await manifest(image.manifestReference, session: &session)
        var manifest = top
        if Self.indexTypes.contains(top.mediaType) {
            guard let entry = Self.platformEntry(top.json) else {
                throw RegistryError(kind: .manifestUnsupported, message: "the index has no linux/amd64 image", request: "\(image)")
            }
            manifest = try await self.manifest(entry, session: &session)
        }
        guard Self.manifestTypes.contains(manifest.mediaType) else {
            throw RegistryError(kind: .manifestUnsupported, message: "media type \"\(manifest.mediaType)\" is not an image manifest cwo reads", request: "\(image)")
        }
        guard let configDigest = (manifest.json["config"] as? [String: Any])?["digest"] as? String, ImageReference.isDigest(configDigest) else {
            throw RegistryError(kind: .manifestUnsupported, message: "the manifest has no sha256 config digest", request: "\(image)")
        }
        let layers = ((manifest.json["layers"] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String }
        let config = try await blob(configDigest, session: &session)
        guard let object = try? AnyJSON.parse(config) as? [String: Any] else {
            throw RegistryError(kind: .manifestUnsupported, message: "the image config \(configDigest) is not a JSON object", request: "\(image)")
        }
        let settings = object["config"] as? [String: Any] ?? [:]
        let hashed = tarfsLayers ? try await self.tarfsLayers(manifest: manifest.json, config: object, session: session) : nil
        return ImageFacts(
            digest: top.digest, manifestDigest: manifest.digest,
            entrypoint: settings["Entrypoint"] as? [String], cmd: settings["Cmd"] as? [String], env: settings["Env"] as? [String] ?? [],
            user: settings["User"] as? String ?? "", workingDir: settings["WorkingDir"] as? String ?? "", layers: layers, tarfsLayers: hashed)
    }

    /// The `linux/amd64` entry of an index (any variant).
    static func platformEntry(_ index: [String: Any]) -> String? {
        let entries = index["manifests"] as? [[String: Any]] ?? []
        return entries.first { entry in
            let platform = entry["platform"] as? [String: Any] ?? [:]
            return platform["os"] as? String == "linux" && platform["architecture"] as? String == "amd64"
        }?["digest"] as? String
    }

    struct Manifest {
        var digest: String
        var mediaType: String
        var json: [String: Any]
    }

    /// One manifest or index, its bytes checked against the digest asked for (or the one the registry states).
    func manifest(_ reference: String, session: inout Session) async throws(RegistryError) -> Manifest {
        let path = "/v2/\(session.image.repository)/manifests/\(reference)"
        let accept = (Self.indexTypes + Self.manifestTypes).joined(separator: ", ")
        let response = try await get(path, accept: accept, session: &session)
        let label = "GET \(session.image.apiHost)\(path)"
        let digest = Self.sha256(response.body)
        let expected = ImageReference.isDigest(reference) ? reference : response.headers.first(name: "Docker-Content-Digest")
        if let expected, expected != digest {
            throw RegistryError(kind: .manifestUnsupported, message: "the manifest's bytes have digest \(digest), not \(expected)", request: label)
        }
        guard let json = try? AnyJSON.parse(response.body) as? [String: Any] else {
            throw RegistryError(kind: .manifestUnsupported, message: "the manifest is not a JSON object", request: label)
        }
        // The body's own mediaType wins over the header (some registries answer a generic Content-Type).
        let contentType = response.headers.first(name: "Content-Type")?.split(separator: ";").first.map(String.init) ?? ""
        return Manifest(digest: digest, mediaType: json["mediaType"] as? String ?? contentType, json: json)
    }

    /// A blob, checked against its digest.
    func blob(_ digest: String, session: inout Session) async throws(RegistryError) -> [UInt8] {
        let path = "/v2/\(session.image.repository)/blobs/\(digest)"
        let response = try await get(path, accept: "*/*", session: &session)
        guard Self.sha256(response.body) == digest else {
            throw RegistryError(kind: .manifestUnsupported, message: "the blob's bytes do not have digest \(digest)", request: "GET \(session.image.apiHost)\(path)")
        }
        return response.body
    }

    /// What one resolution carries from request to request: the image and the authorization obtained.
    struct Session {
        let image: ImageReference
        let credentials: Credentials?
        var authorization: String?
    }

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// GET on the registry; on a 401 obtains the authorization the challenge asks for and tries once more;
    /// follows a blob's redirect without the registry's authorization.
    func get(_ path: String, accept: String, session: inout Session) async throws(RegistryError) -> Response {
        let url = "https://\(session.image.apiHost)\(path)"
        let label = "GET \(session.image.apiHost)\(path)"
        var response = try await send(url, accept: accept, authorization: session.authorization, label: label)
        if response.status == 401, let challenge = response.headers.first(name: "WWW-Authenticate") {
            session.authorization = try await authorize(challenge, session: session, label: label)
            response = try await send(url, accept: accept, authorization: session.authorization, label: label)
        }
        if [301, 302, 303, 307, 308].contains(response.status), let location = response.headers.first(name: "Location") {
            let target = location.hasPrefix("/") ? "https://\(session.image.apiHost)\(location)" : location
            response = try await send(target, accept: accept, authorization: nil, label: label + " (redirected)")
        }
        guard (200..<300).contains(response.status) else {
            throw RegistryError(kind: RegistryError.kind(forStatus: response.status), status: response.status,
                                message: Self.detail(response.body) ?? "HTTP \(response.status)", request: label)
        }
        return response
    }

    /// The Authorization header a `WWW-Authenticate` challenge asks for.
    func authorize(_ challenge: String, session: Session, label: String) async throws(RegistryError) -> String {
        let (scheme, parameters) = Self.parseChallenge(challenge)
        let basic = session.credentials.map { "Basic " + Data("\($0.username):\($0.password)".utf8).base64EncodedString() }
        switch scheme.lowercased() {
        case "basic":
            guard let basic else { throw RegistryError(kind: .unauthorized, status: 401, message: "the registry requires credentials", request: label) }
            return basic
        case "bearer":
            guard let realm = parameters["realm"], var components = URLComponents(string: realm) else {
                throw RegistryError(kind: .unauthorized, status: 401, message: "the bearer challenge has no realm", request: label)
            }
            let scope = parameters["scope"] ?? "repository:\(session.image.repository):pull"
            components.queryItems = (components.queryItems ?? []) + [parameters["service"].map { URLQueryItem(name: "service", value: $0) }, URLQueryItem(name: "scope", value: scope)].compactMap { $0 }
            let tokenLabel = "GET token \(components.host ?? "")"
            let response = try await send(components.string ?? realm, accept: "application/json", authorization: basic, label: tokenLabel)
            guard (200..<300).contains(response.status) else {
                throw RegistryError(kind: .unauthorized, status: response.status, message: Self.detail(response.body) ?? "the token service refused", request: tokenLabel)
            }
            let object = try? AnyJSON.parse(response.body) as? [String: Any]
            guard let token = (object?["token"] as? String) ?? (object?["access_token"] as? String) else {
                throw RegistryError(kind: .unauthorized, message: "the token service answered no token", request: tokenLabel)
            }
            return "Bearer " + token
        default:
            throw RegistryError(kind: .unauthorized, status: 401, message: "unsupported authentication scheme \(scheme)", request: label)
        }
    }

    /// `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull,push"`:
    /// the scheme and its parameters (quoted values may hold commas).
    static func parseChallenge(_ header: String) -> (scheme: String, parameters: [String: String]) {
        let trimmed = header.trimming { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator }
        let space = trimmed.firstIndex(of: " ") ?? trimmed.endIndex
        var parameters: [String: String] = [:]
        var rest = trimmed[space...]
        while let equals = rest.firstIndex(of: "=") {
            let name = rest[..<equals].trimming { $0 == " " || $0 == "," }.lowercased()
            var value = ""
            var index = rest.index(after: equals)
            if index < rest.endIndex, rest[index] == "\"" {
                index = rest.index(after: index)
                while index < rest.endIndex, rest[index] != "\"" {
                    if rest[index] == "\\" { index = rest.index(after: index) }
                    if index < rest.endIndex { value.append(rest[index]); index = rest.index(after: index) }
                }
                if index < rest.endIndex { index = rest.index(after: index) }
            } else {
                while index < rest.endIndex, rest[index] != "," { value.append(rest[index]); index = rest.index(after: index) }
            }
            parameters[name] = value
            rest = rest[index...]
        }
        return (String(trimmed[..<space]), parameters)
    }

    /// One request, retried on 429, 5xx and transport failures (GETs only, so always safe) up to
    /// `maxAttempts`, waiting `Retry-After` when the registry sends one and it is short enough.
    func send(_ url: String, accept: String, authorization: String?, label: String) async throws(RegistryError) -> Response {
        var attempt = 0
        while true {
            attempt += 1
            let failure: RegistryError
            do {
                var request = HTTPClientRequest(url: url)
                request.headers.add(name: "Accept", value: accept)
                request.headers.add(name: "User-Agent", value: options.userAgent)
                if let authorization { request.headers.add(name: "Authorization", value: authorization) }
                let response = try await http.execute(request, timeout: .seconds(Int64(options.requestTimeout.components.seconds)))
                let body = Array((try await response.body.collect(upTo: Self.maxDocument)).readableBytesView)
                let code = Int(response.status.code)
                options.observer?(String(code))
                logger.debug("registry request", metadata: ["request": "\(label)", "code": "\(code)"])
                guard code == 429 || code >= 500 else { return Response(status: code, headers: response.headers, body: body) }
                let retryAfter = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds(max($0, 0)) }
                failure = RegistryError(kind: .unreachable, status: code, message: Self.detail(body) ?? "HTTP \(code)", request: label, retryAfter: retryAfter)
            } catch {
                if error is CancellationError || Task.isCancelled {
                    throw RegistryError(kind: .unreachable, message: "cancelled", request: label)
                }
                options.observer?("error")
                failure = RegistryError(kind: .unreachable, message: "\(error)", request: label)
            }
            let delay = failure.retryAfter ?? Self.backoff(attempt: attempt)
            guard attempt < options.maxAttempts, delay <= options.maxRetryAfter else { throw failure }
            logger.debug("registry retry", metadata: ["request": "\(label)", "delay": "\(delay)"])
            do { try await Task.sleep(for: delay) } catch { throw RegistryError(kind: .unreachable, message: "cancelled", request: label) }
        }
    }

    static func backoff(attempt: Int) -> Duration {
        min(Duration.milliseconds(250) * (1 << min(attempt - 1, 6)), .seconds(4)) * Double.random(in: 0.5...1.0)
    }

    /// The distribution API answers `{"errors":[{"code","message"}]}`.
    static func detail(_ body: [UInt8]) -> String? {
        guard let object = try? AnyJSON.parse(body) as? [String: Any],
              let first = (object["errors"] as? [[String: Any]])?.first else { return nil }
        return [first["code"] as? String, first["message"] as? String].compactMap { $0 }.joined(separator: ": ")
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { $0.hex(width: 2) }.joined()
    }
}
