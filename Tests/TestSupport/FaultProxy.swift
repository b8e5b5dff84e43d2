import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A loopback HTTPS proxy in front of the test kube-apiserver that can misbehave on request: delay
/// requests, drop connections, or answer 429/500/503 (with or without `Retry-After`) for a while.
///
/// It terminates TLS with its own self-signed certificate (`caFile`) and opens one upstream TLS
/// connection per client connection, relaying HTTP/1.1 message parts as they come, so watches stream
/// through it. Every request is logged with its time and what the proxy did with it.
public final class FaultProxy: Sendable {
    public enum Fault: Sendable, Equatable {
        case pass
        /// Forward after this long.
        case delay(Duration)
        /// Answer locally with a Kubernetes `Status` of this code.
        case respond(status: Int, retryAfter: Int?)
        /// Close the client connection without an answer.
        case drop
    }

    public struct Entry: Sendable, CustomStringConvertible {
        public var at: ContinuousClock.Instant
        public var method: String
        public var path: String
        public var fault: Fault
        public var description: String { "\(method) \(path) \(fault)" }
    }

    struct State {
        var fault: Fault = .pass
        /// Only requests with these methods get the fault (nil: all).
        var methods: Set<String>?
        var log: [Entry] = []
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    public let port: Int
    public let caFile: String
    private let state = Mutex(State())
    private let channel: any Channel
    private let https: LoopbackHTTPS

    public static func start(upstreamPort: Int, upstreamCAFile: String) async throws -> FaultProxy {
        try await FaultProxy(https: try await LoopbackHTTPS.make(prefix: "cwo-proxy"), upstreamPort: upstreamPort, upstreamCAFile: upstreamCAFile)
    }

    private init(https: LoopbackHTTPS, upstreamPort: Int, upstreamCAFile: String) async throws {
        self.https = https
        caFile = https.caFile
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .file(upstreamCAFile)
        clientConfiguration.certificateVerification = .noHostnameVerification
        let clientTLS = try NIOSSLContext(configuration: clientConfiguration)
        let holder = LateBound<FaultProxy>()
        channel = try await https.listen(backlog: 256) { DownstreamHandler(holder: holder, upstreamPort: upstreamPort, tls: clientTLS) }
        port = channel.localAddress?.port ?? 0
        holder.value = self
    }

    public func stop() async {
        dropConnections()
        try? await channel.close()
        https.remove()
    }

    /// From now on, requests (with one of `methods`, or all) get `fault`.
    public func set(_ fault: Fault, methods: Set<String>? = nil) {
        state.withLock {
            $0.fault = fault
            $0.methods = methods
        }
    }

    /// Closes every open client connection (watches included).
    public func dropConnections() {
        let open = state.withLock { state -> [any Channel] in
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for channel in open { channel.close(promise: nil) }
    }

    public var log: [Entry] { state.withLock { $0.log } }

    /// A kubeconfig that reaches the API server through this proxy with `token`.
    public func writeKubeconfig(token: String) throws -> String {
        let path = "\(https.directory)/kubeconfig"
        let text = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: proxied
              cluster:
                server: https://127.0.0.1:\(port)
                certificate-authority: \(caFile)
            users:
            - name: admin
              user:
                token: \(token)
            contexts:
            - name: proxied
              context: {cluster: proxied, user: admin}
            current-context: proxied

            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func opened(_ channel: any Channel) { state.withLock { $0.connections[ObjectIdentifier(channel)] = channel } }
    func closed(_ channel: any Channel) { state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(channel)) } }

    func decide(_ head: HTTPRequestHead) -> Fault {
        state.withLock { state in
            let applies = state.methods.map { $0.contains(head.method.rawValue) } ?? true
            let fault = applies ? state.fault : .pass
            state.log.append(Entry(at: .now, method: head.method.rawValue, path: head.uri, fault: fault))
            return fault
        }
    }
}

/// One client connection: relays each request to an upstream connection of its own, or applies the fault.
final class DownstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let holder: LateBound<FaultProxy>
    let upstreamPort: Int
    let tls: NIOSSLContext
    var upstream: (any Channel)?
    /// Parts waiting for the upstream connection or a delay.
    var pending: [HTTPClientRequestPart] = []
    var blocked = false
    /// The current request is answered here, not forwarded.
    var answering: Int?
    var retryAfter: Int?

    init(holder: LateBound<FaultProxy>, upstreamPort: Int, tls: NIOSSLContext) {
        self.holder = holder
        self.upstreamPort = upstreamPort
        self.tls = tls
    }

    func channelActive(context: ChannelHandlerContext) {
        holder.value?.opened(context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        holder.value?.closed(context.channel)
        upstream?.close(promise: nil)
        upstream = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            answering = nil
            switch holder.value?.decide(head) ?? .pass {
            case .pass:
                enqueue(.head(head), context: context)
            case .delay(let delay):
                blocked = true
                pending.append(.head(head))
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .nanoseconds(Int64(delay.components.seconds) * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)) {
                    let (handler, context) = loopBound.value
                    handler.blocked = false
                    handler.flush(context: context)
                }
            case .respond(let status, let after):
                answering = status
                retryAfter = after
            case .drop:
                context.close(promise: nil)
            }
        case .body(let buffer):
            if answering == nil { enqueue(.body(.byteBuffer(buffer)), context: context) }
        case .end(let trailers):
            if let status = answering {
                respond(context: context, status: status)
            } else {
                enqueue(.end(trailers), context: context)
            }
        }
    }

    func respond(context: ChannelHandlerContext, status: Int) {
        let reason = status == 429 ? "TooManyRequests" : status == 503 ? "ServiceUnavailable" : "InternalError"
        let body = #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"injected by the test proxy","reason":"\#(reason)","code":\#(status)}"#
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(body.utf8.count)")])
        if let retryAfter { headers.add(name: "Retry-After", value: "\(retryAfter)") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        answering = nil
    }

    func enqueue(_ part: HTTPClientRequestPart, context: ChannelHandlerContext) {
        pending.append(part)
        flush(context: context)
    }

    func flush(context: ChannelHandlerContext) {
        guard !blocked, !pending.isEmpty else { return }
        if let upstream, upstream.isActive {
            let parts = pending
            pending = []
            for part in parts { upstream.write(part, promise: nil) }
            upstream.flush()
            return
        }
        // Not connected (or the API server closed it): connect; parts queue meanwhile.
        upstream = nil
        blocked = true
        let downstream = context.channel
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let tls = self.tls
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(downstream: downstream))
                }
            }
            .connect(host: "127.0.0.1", port: upstreamPort)
            .whenComplete { result in
                let (handler, context) = loopBound.value
                handler.blocked = false
                switch result {
                case .success(let channel):
                    handler.upstream = channel
                    handler.flush(context: context)
                case .failure:
                    context.close(promise: nil)
                }
            }
    }
}

/// Relays the API server's answer back to the client connection, part by part.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let downstream: any Channel

    init(downstream: any Channel) { self.downstream = downstream }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            downstream.write(HTTPServerResponsePart.head(head), promise: nil)
        case .body(let buffer):
            downstream.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
        case .end(let trailers):
            downstream.writeAndFlush(HTTPServerResponsePart.end(trailers), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        downstream.close(promise: nil)
        context.fireChannelInactive()
    }
}
