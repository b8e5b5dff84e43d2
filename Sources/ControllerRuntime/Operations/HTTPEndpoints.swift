import FoundationExtras
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 server for `/metrics`, `/healthz` and `/readyz`: GET only, one answer per path.
public final class HTTPEndpoints: Sendable {
    public typealias Handler = @Sendable () -> (status: HTTPResponseStatus, contentType: String, body: String)
    let routes: [String: Handler]
    let host: String
    let port: Int
    let logger: Logger

    /// `address` as controller-runtime takes it: ":8080", "127.0.0.1:8080" or "0" (disabled).
    public init?(address: String, routes: [String: Handler], logger: Logger) {
        guard address != "0", let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
        let host = String(address[..<colon])
        self.host = host.isEmpty ? "0.0.0.0" : host.trimming { $0 == "[" || $0 == "]" }
        self.port = port
        self.routes = routes
        self.logger = logger
    }

    /// Serves until the task is cancelled. `onBound` receives the bound port (useful with port 0).
    public func run(onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let routes = self.routes
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(EndpointHandler(routes: routes))
                }
            }
            .bind(host: host, port: port).get()
        onBound(channel.localAddress?.port ?? port)
        logger.info("serving", metadata: ["address": "\(host):\(channel.localAddress?.port ?? port)", "paths": "\(routes.keys.sorted())"])
        await withTaskCancellationHandler {
            try? await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

private final class EndpointHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let routes: [String: HTTPEndpoints.Handler]
    private var head: HTTPRequestHead?

    init(routes: [String: HTTPEndpoints.Handler]) { self.routes = routes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request): head = request
        case .body: break
        case .end:
            guard let request = head else { return }
            head = nil
            let path = String(request.uri.split(separator: "?", maxSplits: 1).first ?? "")
            let answer: (status: HTTPResponseStatus, contentType: String, body: String)
            if request.method != .GET && request.method != .HEAD {
                answer = (.methodNotAllowed, "text/plain", "GET only\n")
            } else if let handler = routes[path] {
                answer = handler()
            } else {
                answer = (.notFound, "text/plain", "not found\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: answer.contentType)
            headers.add(name: "Content-Length", value: String(answer.body.utf8.count))
            headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: answer.status, headers: headers))), promise: nil)
            if request.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer.body)))), promise: nil)
            }
            let keepAlive = request.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
