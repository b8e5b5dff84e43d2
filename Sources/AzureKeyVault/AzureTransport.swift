import AsyncHTTPClient
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

/// HTTPS to Azure endpoints: one connection pool, bounded retries that honour `Retry-After`.
///
/// Endpoints are never hard-coded here: the identity endpoint and the vault URLs come from the caller,
/// so a private cloud, a proxy or a local test server works the same way.
final class AzureTransport: Sendable {
    struct Response: Sendable {
        var status: Int
        var body: ByteBuffer
    }

    let http: HTTPClient
    let options: AzureOptions
    let logger: Logger

    init(options: AzureOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        var tls = TLSConfiguration.makeClientConfiguration()
        if let file = options.additionalCAFile {
            tls.additionalTrustRoots = [.file(file)]
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(Int64(options.requestTimeout.components.seconds)))
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async throws {
        try await http.shutdown()
    }

    deinit {
        _ = http.shutdown()
    }

    /// Sends a request, retrying 429 always (the server did nothing) and 5xx or transport failures only
    /// when `idempotent`. A `Retry-After` longer than `options.maxRetryAfter` is not waited out here: the
    /// error carries it, so the caller can requeue instead of holding a worker.
    func send(
        _ method: HTTPMethod, url: String, headers: HTTPHeaders, body: ByteBuffer?, idempotent: Bool, label: String
    ) async throws -> Response {
        var attempt = 0
        while true {
            attempt += 1
            let failure: AzureError
            do {
                var request = HTTPClientRequest(url: url)
                request.method = method
                request.headers = headers
                request.headers.replaceOrAdd(name: "User-Agent", value: options.userAgent)
                if let body { request.body = .bytes(body) }
                let start = ContinuousClock.now
                let response = try await http.execute(request, timeout: .seconds(Int64(options.requestTimeout.components.seconds)))
                let data = try await response.body.collect(upTo: 4 * 1024 * 1024)
                let code = Int(response.status.code)
                options.observer?(method.rawValue, String(code), ContinuousClock.now - start)
                logger.debug("azure request", metadata: ["request": "\(label)", "code": "\(code)"])
                if (200..<300).contains(code) { return Response(status: code, body: data) }
                failure = Self.error(status: code, body: data, headers: response.headers, request: label)
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                options.observer?(method.rawValue, "<error>", .zero)
                failure = AzureError(kind: .unavailable, message: "\(error)", request: label)
            }
            let retryable = failure.kind == .throttled || (idempotent && failure.kind == .unavailable)
            guard retryable, attempt < options.maxAttempts else { throw failure }
            let delay = failure.retryAfter ?? Self.backoff(attempt: attempt)
            guard delay <= options.maxRetryAfter else { throw failure }
            logger.debug("azure retry", metadata: ["request": "\(label)", "delay": "\(delay)"])
            try await Task.sleep(for: delay)
        }
    }

    static func backoff(attempt: Int) -> Duration {
        let base = Duration.milliseconds(250) * (1 << min(attempt - 1, 6))
        return min(base, .seconds(4)) * Double.random(in: 0.5...1.0)
    }

    /// Key Vault answers `{"error":{"code","message"}}`; the identity endpoint `{"error","error_description"}`.
    static func error(status: Int, body: ByteBuffer, headers: HTTPHeaders, request: String) -> AzureError {
        var code: String?
        var message = "HTTP \(status)"
        if let object = try? AnyJSON.parse(body.readableBytesView) as? [String: Any] {
            if let inner = object["error"] as? [String: Any] {
                code = inner["code"] as? String
                message = (inner["message"] as? String) ?? message
            } else if let text = object["error"] as? String {
                code = text
                message = (object["error_description"] as? String) ?? message
            }
        }
        // Retry-After is seconds here (both services); an HTTP date is treated as absent.
        let retryAfter = headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds(max($0, 0)) }
        return AzureError(kind: AzureError.kind(forStatus: status), status: status, code: code, message: message, request: request, retryAfter: retryAfter)
    }
}

/// Settings shared by the identity and Key Vault clients.
public struct AzureOptions: Sendable {
    /// A PEM file of extra CAs to trust besides the system's (a TLS-inspecting proxy, a test server).
    public var additionalCAFile: String?
    public var requestTimeout: Duration = .seconds(30)
    public var maxAttempts = 3
    /// The longest `Retry-After` waited out inside one call.
    public var maxRetryAfter: Duration = .seconds(5)
    public var apiVersion = "7.4"
    public var userAgent = "cwo"
    /// Called once per HTTP answer (code "<error>" for transport failures): the metrics hook.
    public var observer: (@Sendable (_ method: String, _ code: String, _ duration: Duration) -> Void)?

    public init(additionalCAFile: String? = nil) {
        self.additionalCAFile = additionalCAFile
    }
}
