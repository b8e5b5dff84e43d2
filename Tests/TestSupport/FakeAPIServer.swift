import Foundation
import KubernetesClient
import NIOCore
import Synchronization

/// A recording stand-in for the kube-apiserver, for tests of which requests a reconcile sends for given
/// objects in (the way kube-rs's controller-rs tests its reconciler). It answers the way the API server
/// does for the calls a reconcile makes — server-side apply and create echo the object back, delete
/// answers a Success status, reads of anything else are 404 — and records every request. It proves
/// request sequences only; what the server makes of them is proven against the real control plane.
public final class FakeAPIServer: Sendable {
    public let port: Int
    private let requestsSeen = Mutex<[RecordedRequest]>([])
    private let faults = Mutex<[(method: String, pathContains: String, status: Int, reason: String, retryAfter: Int?)]>([])
    private let channel: any Channel
    private let https: LoopbackHTTPS

    public static func start() async throws -> FakeAPIServer {
        try await FakeAPIServer(https: try await LoopbackHTTPS.make(prefix: "cwo-fake-apiserver"))
    }

    private init(https: LoopbackHTTPS) async throws {
        self.https = https
        let holder = LateBound<FakeAPIServer>()
        channel = try await https.listen(backlog: 16) { RecordingHandler { await holder.value?.answer($0) } }
        port = channel.localAddress?.port ?? 0
        holder.value = self
    }

    public func stop() async {
        try? await channel.close()
        https.remove()
    }

    /// A client configuration for this server (trusting its certificate).
    public func configuration() throws -> ClientConfiguration {
        var configuration = ClientConfiguration(server: URL(string: "https://127.0.0.1:\(port)")!)
        configuration.certificateAuthority = Array(try Data(contentsOf: URL(fileURLWithPath: https.caFile)))
        configuration.credentials = .token("test")
        configuration.maxAttempts = 1
        return configuration
    }

    /// Requests so far, without the `/version` discovery call.
    public var requests: [RecordedRequest] { requestsSeen.withLock { $0.filter { $0.path != "/version" } } }

    /// Requests so far as "METHOD path", the shape the tests compare.
    public var lines: [String] { requests.map { "\($0.method) \($0.path)" } }

    public func clear() { requestsSeen.withLock { $0 = [] } }

    /// How long each answer takes from now on (a slow server).
    public let delay = Mutex<Duration>(.zero)

    /// Called with each request before it is answered (e.g. to play a watch event that arrives before
    /// the answer).
    public let onRequest = Mutex<(@Sendable (RecordedRequest) -> Void)?>(nil)

    /// The resourceVersion that answers to writes carry from now on (nil: none, the body as it was sent).
    public let writtenVersion = Mutex<String?>(nil)

    /// Bodies that GETs of these paths are answered with (200), instead of 404.
    public let stored = Mutex<[String: String]>([:])

    /// Answers requests matching `method` and `pathContains` with `status` and a Status of `reason` from now on.
    public func fail(_ method: String, _ pathContains: String, status: Int, reason: String, retryAfter: Int? = nil) {
        faults.withLock { $0.append((method, pathContains, status, reason, retryAfter)) }
    }

    func answer(_ request: RecordedRequest) async -> CannedAnswer {
        requestsSeen.withLock { $0.append(request) }
        onRequest.withLock { $0 }?(request)
        let delay = self.delay.withLock { $0 }
        if delay > .zero { try? await Task.sleep(for: delay) }
        if let fault = faults.withLock({ $0.first { $0.method == request.method && request.path.contains($0.pathContains) } }) {
            var answer = Self.status(fault.status, reason: fault.reason)
            if let seconds = fault.retryAfter { answer.headers.append(("Retry-After", "\(seconds)")) }
            return answer
        }
        switch request.method {
        case "GET" where request.path == "/version":
            return CannedAnswer(status: 200, body: #"{"major":"1","minor":"20","gitVersion":"v1.20.2"}"#)
        case "GET" where stored.withLock({ $0[request.path] }) != nil:
            return CannedAnswer(status: 200, body: stored.withLock { $0[request.path] } ?? "")
        case "PATCH", "POST", "PUT":
            // Apply and create answer the object as stored; a merge patch's answer is not read by cwo.
            var body = request.body.isEmpty ? "{}" : request.body
            if let version = writtenVersion.withLock({ $0 }), var object = try? JSONParser.parse(body), object["metadata"] != nil {
                object["metadata"]?["resourceVersion"] = .string(version)
                if let stamped = try? JSONCoding.encoder.encode(object) { body = String(decoding: stamped, as: UTF8.self) }
            }
            return CannedAnswer(status: request.method == "POST" ? 201 : 200, body: body)
        case "DELETE":
            return CannedAnswer(status: 200, body: #"{"kind":"Status","apiVersion":"v1","status":"Success"}"#)
        default:
            return Self.status(404, reason: "NotFound")
        }
    }

    static func status(_ code: Int, reason: String) -> CannedAnswer {
        CannedAnswer(
            status: code,
            body: #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"scripted","reason":"\#(reason)","code":\#(code)}"#)
    }
}
