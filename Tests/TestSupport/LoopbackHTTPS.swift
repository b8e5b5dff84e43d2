import Foundation
import Synchronization
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A scratch directory with a fresh self-signed certificate for `localhost`/`127.0.0.1` (`caFile`), and
/// HTTPS listeners with it on free loopback ports: the base of the test servers (FakeAzure, FaultProxy).
struct LoopbackHTTPS {
    let directory: String
    var caFile: String { "\(directory)/cert.pem" }

    static func make(prefix: String) async throws -> LoopbackHTTPS {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try await runCommand([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem",
        ])
        return LoopbackHTTPS(directory: directory)
    }

    /// Serves HTTP/1.1 over TLS on 127.0.0.1 (a free port), with `handler()` after the HTTP codec of each connection.
    func listen(backlog: Int32, handler: @escaping @Sendable () -> any ChannelHandler) async throws -> any Channel {
        let tls = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(caFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: "\(directory)/key.pem", format: .pem))))
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(handler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Lets channel handlers reach the server object that owns their channel once it exists (the handlers
/// are made before `listen` returns).
final class LateBound<Value: Sendable>: Sendable {
    private let stored = Mutex<Value?>(nil)
    var value: Value? {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
