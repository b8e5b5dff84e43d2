import AsyncHTTPClient
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// A Kubernetes REST client for any resource: CRUD, patch, server-side apply, status, watch.
///
/// One instance holds one connection pool; share it. Call `shutdown()` when done.
public final class KubeClient: Sendable {
    public let configuration: ClientConfiguration
    let http: HTTPClient
    let logger: Logger
    private let credentials: CredentialProvider
    private let rateLimiter: TokenBucket?
    private let observer: RequestObserver?

    /// Called once per HTTP response (or transport failure, code "<error>"): the hook for `rest_client_*` metrics.
    public typealias RequestObserver = @Sendable (_ method: String, _ code: String, _ host: String, _ duration: Duration) -> Void

    public init(configuration: ClientConfiguration, logger: Logger = Logger(label: "cwo.kube"), observer: RequestObserver? = nil) throws {
        self.configuration = configuration
        self.logger = logger
        self.observer = observer
        self.credentials = CredentialProvider(configuration.credentials)
        self.rateLimiter = configuration.qps.map { TokenBucket(qps: $0, burst: configuration.burst) }

        var tls = TLSConfiguration.makeClientConfiguration()
        if configuration.insecureSkipTLSVerify {
            tls.certificateVerification = .none
            logger.warning("TLS verification of the API server is disabled (insecure-skip-tls-verify in kubeconfig)")
        }
        do {
            if let ca = configuration.certificateAuthority {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
            if let cert = configuration.clientCertificate, let key = configuration.clientKey {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch {
            throw KubeClientError.configuration("invalid TLS material in configuration: \(error)")
        }
        var http = HTTPClient.Configuration(tlsConfiguration: tls)
        http.timeout = .init(connect: .seconds(10), read: nil)
        // Watches hold a connection each on HTTP/1.1; leave room for workers beside them.
        http.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        http.decompression = .disabled
        http.httpVersion = configuration.http2 ? .automatic : .http1Only
        http.redirectConfiguration = .disallow
        // cwo bootstraps no tracer: without this AsyncHTTPClient opens a span on the no-op tracer for every
        // request and computes its attributes (the URL parsed again), ~1.6 % of cwo's CPU while converging.
        http.tracing.tracer = nil
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    deinit {
        // A client dropped without `shutdown()` (e.g. on an error path) still closes its connections.
        _ = http.shutdown()
    }

    // MARK: - Typed operations

    public func get<T: Decodable & Sendable>(
        _ resource: Resource, namespace: String? = nil, name: String, subresource: String? = nil, as type: T.Type = T.self
    ) async throws -> T {
        try await request(.GET, resource.path(namespace: namespace, name: name, subresource: subresource), idempotent: true)
    }

    /// One page of a list; pass `limit` and `continue` to page.
    public func list<T: Decodable & Sendable>(
        _ resource: Resource, namespace: String? = nil, options: ListOptions = ListOptions(), as type: T.Type = T.self
    ) async throws -> ObjectList<T> {
        // A list of a kind read from protobuf is itself read from protobuf (see `request`).
        try await request(.GET, resource.path(namespace: namespace), query: options.queryItems, idempotent: true, dropManagedFields: options.dropManagedFields)
    }

    /// All pages of a list, `pageSize` items per request. The result carries the last page's resourceVersion.
    public func listAll<T: Decodable & Sendable>(
        _ resource: Resource, namespace: String? = nil, options: ListOptions = ListOptions(), pageSize: Int = 500,
        as type: T.Type = T.self
    ) async throws -> ObjectList<T> {
        var options = options
        options.limit = pageSize
        var items: [T] = []
        while true {
            let page: ObjectList<T> = try await list(resource, namespace: namespace, options: options)
            items.append(contentsOf: page.items)
            guard let next = page.metadata.continue, !next.isEmpty else {
                return ObjectList(metadata: page.metadata, items: items)
            }
            options.continue = next
        }
    }

    public func create<T: Codable & Sendable>(_ resource: Resource, namespace: String? = nil, _ object: T) async throws -> T {
        try await request(.POST, resource.path(namespace: namespace), body: try Self.encode(object), idempotent: false)
    }

    /// POST, reading the answer as `R` (e.g. `Discarded` when nobody reads it).
    public func create<T: Encodable & Sendable, R: Decodable & Sendable>(
        _ resource: Resource, namespace: String? = nil, _ object: T, as type: R.Type
    ) async throws -> R {
        try await request(.POST, resource.path(namespace: namespace), body: try Self.encode(object), idempotent: false)
    }

    /// PUT: optimistic concurrency through the object's `metadata.resourceVersion`.
    public func replace<T: Codable & Sendable>(
        _ resource: Resource, namespace: String? = nil, name: String, subresource: String? = nil, _ object: T
    ) async throws -> T {
        try await request(
            .PUT, resource.path(namespace: namespace, name: name, subresource: subresource), body: try Self.encode(object),
            idempotent: false)
    }

    /// DELETE; returns the server's answer (the object, or a `Status`) as JSON.
    @discardableResult
    public func delete(
        _ resource: Resource, namespace: String? = nil, name: String, options: DeleteOptions = DeleteOptions()
    ) async throws -> JSONValue {
        try await request(.DELETE, resource.path(namespace: namespace, name: name), body: try Self.encode(options), idempotent: true)
    }

    /// DELETE on a collection: every object of `resource` in `namespace`. The server answers with what it
    /// deleted; asked for their metadata alone, that is ~1 KB per object instead of the objects.
    public func deleteCollection(_ resource: Resource, namespace: String?) async throws {
        _ = try await send(
            .DELETE, resource.path(namespace: namespace), query: [], body: nil, contentType: "application/json", idempotent: true,
            accept: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json")
    }

    public func patch<T: Decodable & Sendable>(
        _ resource: Resource, namespace: String? = nil, name: String, subresource: String? = nil, _ patch: Patch,
        fieldManager: String? = nil, as type: T.Type = T.self
    ) async throws -> T {
        var query: [(String, String)] = []
        if let fieldManager { query.append(("fieldManager", fieldManager)) }
        // A JSON patch with a `test` op is a precondition; retrying it after a 5xx is still safe.
        return try await request(
            .PATCH, resource.path(namespace: namespace, name: name, subresource: subresource), query: query,
            body: try Self.encode(patch.body), contentType: patch.contentType, idempotent: false)
    }

    /// Server-side apply: the body states the fields `fieldManager` owns; `force` takes them from other managers.
    /// Applying the same body twice is a no-op on the server, so it is retried like a read.
    public func apply<T: Decodable & Sendable>(
        _ resource: Resource, namespace: String? = nil, name: String, subresource: String? = nil, _ body: some Encodable,
        fieldManager: String, force: Bool = false, as type: T.Type = T.self
    ) async throws -> T {
        var query = [("fieldManager", fieldManager)]
        if force { query.append(("force", "true")) }
        return try await request(
            .PATCH, resource.path(namespace: namespace, name: name, subresource: subresource), query: query,
            body: try Self.encode(body), contentType: "application/apply-patch+yaml", idempotent: true)
    }

    /// `GET /version`.
    public func serverVersion() async throws -> ServerVersion {
        try await request(.GET, "/version", idempotent: true)
    }

    // MARK: - Transport

    static func encode(_ value: some Encodable) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        if let json = value as? JSONValue {
            json.serialize(into: &buffer)
        } else if let object = value as? UntypedObject {
            object.raw.serialize(into: &buffer)
        } else {
            buffer.writeBytes(try JSONCoding.encoder.encode(value))
        }
        return buffer
    }

    func url(path: String, query: [(String, String)]) -> String {
        var components = URLComponents()
        components.queryItems = query.isEmpty ? nil : query.map { URLQueryItem(name: $0.0, value: $0.1) }
        // `+` is literal in URLQueryItem but means space to the apiserver: escape it (label selectors use it rarely, RVs never).
        let encodedQuery = components.percentEncodedQuery?.replacing("+", with: "%2B")
        var base = configuration.server.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return base + path + (encodedQuery.map { "?" + $0 } ?? "")
    }

    func request<T: Decodable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: ByteBuffer? = nil,
        contentType: String = "application/json", idempotent: Bool, dropManagedFields: Bool = false
    ) async throws -> T {
        // A kind read from protobuf: ask for it (whatever the verb), and read JSON if that is what the server sends.
        let protobufType = T.self as? any ProtobufDecodable.Type
        let buffer = try await send(
            method, path, query: query, body: body, contentType: contentType, idempotent: idempotent,
            accept: protobufType?.protobufAccept ?? "application/json")
        if let nothing = Discarded() as? T { return nothing }
        do {
            return try buffer.withUnsafeReadableBytes { bytes in
                if let protobufType, KubernetesProtobuf.isEnvelope(bytes) {
                    return try protobufType.init(protobuf: KubernetesProtobuf.unwrap(bytes).message) as! T  // protobufType is T.self
                }
                return try JSONCoding.decode(T.self, from: bytes, dropManagedFields: dropManagedFields)
            }
        } catch {
            throw KubeClientError.decoding(method: method.rawValue, path: path, underlying: "\(error)")
        }
    }

    /// Sends a request and returns the body of a 2xx answer, retrying what is safe to retry.
    func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], body: ByteBuffer?, contentType: String,
        idempotent: Bool, accept: String = "application/json"
    ) async throws -> ByteBuffer {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try await execute(
                    method, path, query: query, body: body, contentType: contentType, timeout: configuration.requestTimeout, accept: accept)
                let data = try await response.body.collect(upTo: 256 * 1024 * 1024)
                if (200..<300).contains(response.status.code) { return data }
                throw Self.error(response: response, body: data, method: method.rawValue, path: path)
            } catch let error as KubeError {
                if error.reason == .unauthorized { await credentials.invalidate() }
                guard attempt < configuration.maxAttempts, let delay = retryDelay(error, idempotent: idempotent, attempt: attempt)
                else { throw error }
                logger.debug("retrying", metadata: ["request": "\(method.rawValue) \(path)", "code": "\(error.code)", "delay": "\(delay)"])
                try await Task.sleep(for: delay)
            } catch let error as KubeClientError {
                // Transport errors: the request may or may not have reached the server.
                guard idempotent, attempt < configuration.maxAttempts, !Task.isCancelled else { throw error }
                try await Task.sleep(for: Backoff.jittered(base: .milliseconds(200), attempt: attempt, cap: .seconds(5)))
            }
        }
    }

    /// 429 is always safe to retry (the server did nothing), after a short Retry-After; 5xx only for
    /// idempotent requests, with backoff that a Retry-After can shorten but not lengthen: a starting
    /// kube-apiserver answers 503 with `Retry-After: 10` and is often ready well within it.
    private func retryDelay(_ error: KubeError, idempotent: Bool, attempt: Int) -> Duration? {
        switch error.reason {
        case .tooManyRequests:
            // A longer pause than `maxRetryWait` is the caller's to take (a controller requeues the key),
            // so no worker sleeps for a minute inside a request.
            let delay = error.retryAfter ?? Backoff.jittered(base: .milliseconds(500), attempt: attempt, cap: configuration.maxRetryWait)
            return delay <= configuration.maxRetryWait ? delay : nil
        case .serverError, .serviceUnavailable, .timeout:
            guard idempotent else { return nil }
            let backoff = Backoff.jittered(base: .milliseconds(200), attempt: attempt, cap: .seconds(5))
            return min(backoff, error.retryAfter ?? backoff)
        case .unauthorized where attempt == 1 && configuration.credentials.isRotating:
            return .zero
        default:
            return nil
        }
    }

    /// One HTTP exchange; the response body is left to the caller to consume.
    func execute(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], body: ByteBuffer?, contentType: String,
        timeout: Duration, accept: String = "application/json"
    ) async throws -> HTTPClientResponse {
        if let rateLimiter { try await rateLimiter.acquire() }
        var request = HTTPClientRequest(url: url(path: path, query: query))
        request.method = method
        request.headers.add(name: "Accept", value: accept)
        request.headers.add(name: "User-Agent", value: configuration.userAgent)
        if let user = configuration.impersonateUser {
            request.headers.add(name: "Impersonate-User", value: user)
            for group in configuration.impersonateGroups { request.headers.add(name: "Impersonate-Group", value: group) }
        }
        if let authorization = try await credentials.authorization() {
            request.headers.add(name: "Authorization", value: authorization)
        }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(body)
        }
        let start = ContinuousClock.now
        let host = configuration.server.host ?? ""
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
            observer?(method.rawValue, String(response.status.code), host, ContinuousClock.now - start)
            return response
        } catch {
            observer?(method.rawValue, "<error>", host, ContinuousClock.now - start)
            if error is CancellationError || Task.isCancelled { throw CancellationError() }
            throw KubeClientError.transport(method: method.rawValue, path: path, underlying: "\(error)")
        }
    }

    static func error(response: HTTPClientResponse, body: ByteBuffer, method: String, path: String) -> KubeError {
        let status = try? body.withUnsafeReadableBytes { bytes in
            KubernetesProtobuf.isEnvelope(bytes)
                ? try Status(protobuf: KubernetesProtobuf.unwrap(bytes).message) : try JSONCoding.decode(Status.self, from: bytes)
        }
        let retryAfter = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds($0) }
        return KubeError.classify(code: Int(response.status.code), status: status?.kind == "Status" ? status : nil, method: method, path: path, retryAfter: retryAfter)
    }
}

extension ClientConfiguration.Credentials {
    var isRotating: Bool {
        switch self {
        case .tokenFile, .exec: true
        case .none, .token: false
        }
    }
}

/// `GET /version`.
public struct ServerVersion: Codable, Sendable, Hashable {
    public var major: String
    public var minor: String
    public var gitVersion: String

    /// Major and minor as numbers; "1" and "29+" give (1, 29).
    public var numeric: (major: Int, minor: Int) {
        func number(_ text: String) -> Int { Int(text.prefix(while: \.isNumber)) ?? 0 }
        return (number(major), number(minor))
    }

    public func isAtLeast(major wantedMajor: Int, minor wantedMinor: Int) -> Bool {
        let (major, minor) = numeric
        return major > wantedMajor || (major == wantedMajor && minor >= wantedMinor)
    }
}
