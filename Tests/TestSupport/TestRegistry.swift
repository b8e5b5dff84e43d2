import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// The real reference registry (Debian's `docker-registry`, the distribution project's server) on a free
/// loopback port, with TLS (a fresh self-signed certificate, `caFile`) and either htpasswd basic auth or,
/// with `tokenAuth`, bearer tokens from a token service (`WWW-Authenticate: Bearer`, as Docker Hub does);
/// and the pushes a client makes over the distribution API, so tests build their own small images.
public final class TestRegistry: Sendable {
    public static let binary = "/usr/bin/docker-registry"
    public let port: Int
    public let caFile: String
    public let username = "pusher"
    public let password: String
    private let https: LoopbackHTTPS
    private let process: BackgroundProcess
    private let http: HTTPClient
    private let tokens: RegistryTokenService?

    /// `127.0.0.1:<port>`: the registry part of the references tests resolve.
    public var host: String { "127.0.0.1:\(port)" }

    public static func start(tokenAuth: Bool = false) async throws -> TestRegistry {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestClusterError(message: "\(binary) is missing: apt-get install docker-registry (scripts/test does)")
        }
        // The free port is released before the registry binds it, and the parallel suites' outgoing
        // connections draw source ports from the same range: one of them may take it in between.
        var attempt = 1
        while true {
            do {
                return try await startOnce(tokenAuth: tokenAuth)
            } catch let error as TestClusterError where attempt < 3 && error.message.contains("address already in use") {
                attempt += 1
            }
        }
    }

    private static func startOnce(tokenAuth: Bool) async throws -> TestRegistry {
        let https = try await LoopbackHTTPS.make(prefix: "cwo-registry")
        let password = UUID().uuidString
        let entry = try await runCommand(["htpasswd", "-Bbn", "pusher", password])
        try entry.trimmingCharacters(in: .whitespacesAndNewlines).write(toFile: "\(https.directory)/htpasswd", atomically: true, encoding: .utf8)
        let port = freePort()
        let tokens = tokenAuth ? try await RegistryTokenService(https: https, username: "pusher", password: password) : nil
        let auth = tokens.map {
            """
              token:
                realm: \($0.realm)
                service: \(RegistryTokenService.service)
                issuer: \(RegistryTokenService.issuer)
                rootcertbundle: \($0.certificateFile)
            """
        } ?? """
              htpasswd:
                realm: cwo-test
                path: \(https.directory)/htpasswd
            """
        let config = """
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: \(https.directory)/data
            http:
              addr: 127.0.0.1:\(port)
              secret: \(UUID().uuidString)
              tls:
                certificate: \(https.directory)/cert.pem
                key: \(https.directory)/key.pem
            auth:
            \(auth)

            """
        try config.write(toFile: "\(https.directory)/config.yml", atomically: true, encoding: .utf8)
        let process = try BackgroundProcess([binary, "serve", "\(https.directory)/config.yml"])
        let registry = try TestRegistry(https: https, process: process, port: port, password: password, tokens: tokens)
        do {
            try await registry.waitUntilServing()
        } catch {
            await registry.stop()
            throw error
        }
        return registry
    }

    private init(https: LoopbackHTTPS, process: BackgroundProcess, port: Int, password: String, tokens: RegistryTokenService?) throws {
        self.https = https
        self.tokens = tokens
        self.process = process
        self.port = port
        self.password = password
        caFile = https.caFile
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.additionalTrustRoots = [.file(https.caFile)]
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
    }

    /// Until `/v2/` answers at all (401 without credentials); the registry starts in well under a second.
    private func waitUntilServing() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if await process.wait(timeout: .zero) != nil { break }
            if (try? await request(.GET, "/v2/", authorized: false)) != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestClusterError(message: "docker-registry did not start: \(process.log)")
    }

    public func stop() async {
        try? await http.shutdown()
        await tokens?.stop()
        process.stop()
        https.remove()
    }

    public struct Answer: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: [UInt8]
    }

    /// One request to the registry, as the pusher (basic credentials, or a token for the path's repository
    /// minted directly) unless `authorized` is false.
    public func request(_ method: HTTPMethod, _ pathOrURL: String, body: [UInt8]? = nil, contentType: String? = nil,
                        authorized: Bool = true) async throws -> Answer {
        let url = pathOrURL.hasPrefix("https://") ? pathOrURL : "https://\(host)\(pathOrURL)"
        var request = HTTPClientRequest(url: url)
        request.method = method
        if authorized, let tokens {
            // /v2/<repository>/blobs/… or /v2/<repository>/manifests/…
            let path = URLComponents(string: url)?.path ?? ""
            let repository = path.dropFirst("/v2/".count).components(separatedBy: "/blobs/")[0].components(separatedBy: "/manifests/")[0]
            request.headers.add(name: "Authorization", value: "Bearer " + (try tokens.token(repository: repository, actions: ["pull", "push"])))
        } else if authorized {
            request.headers.add(name: "Authorization", value: "Basic " + Data("\(username):\(password)".utf8).base64EncodedString())
        }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let data = Array((try await response.body.collect(upTo: 16 * 1024 * 1024)).readableBytesView)
        return Answer(status: Int(response.status.code), headers: response.headers, body: data)
    }

    /// A monolithic blob upload (POST, then PUT with `?digest=`); the blob's digest.
    @discardableResult
    public func pushBlob(_ repository: String, _ bytes: [UInt8]) async throws -> String {
        let digest = Self.digest(bytes)
        let start = try await request(.POST, "/v2/\(repository)/blobs/uploads/")
        guard start.status == 202, let location = start.headers.first(name: "Location") else {
            throw TestClusterError(message: "blob upload to \(repository) did not start: HTTP \(start.status) \(String(decoding: start.body, as: UTF8.self))")
        }
        let separator = location.contains("?") ? "&" : "?"
        let put = try await request(.PUT, location + separator + "digest=" + digest, body: bytes, contentType: "application/octet-stream")
        guard put.status == 201 else {
            throw TestClusterError(message: "blob upload to \(repository) failed: HTTP \(put.status) \(String(decoding: put.body, as: UTF8.self))")
        }
        return digest
    }

    /// PUTs a manifest or index under `reference` (a tag or its digest); its digest.
    @discardableResult
    public func pushManifest(_ repository: String, reference: String, _ bytes: [UInt8], mediaType: String) async throws -> String {
        let answer = try await request(.PUT, "/v2/\(repository)/manifests/\(reference)", body: bytes, contentType: mediaType)
        guard answer.status == 201 else {
            throw TestClusterError(message: "manifest push to \(repository):\(reference) failed: HTTP \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
        }
        return Self.digest(bytes)
    }

    public struct Image: Sendable {
        /// The manifest's digest.
        public var digest: String
        public var configDigest: String
        public var layers: [String]
        public var manifest: [UInt8]
    }

    public static let manifestType = "application/vnd.oci.image.manifest.v1+json"
    public static let indexType = "application/vnd.oci.image.index.v1+json"

    /// Builds and pushes a one-layer image: a gzip'd tar of one file holding `content` (as images are
    /// pushed, and as the AKS node's snapshotter requires), an image config with `config` (Entrypoint,
    /// Cmd, Env, User, WorkingDir as the OCI config names them) for `architecture`, and its manifest,
    /// tagged `tag` (by digest only when nil).
    @discardableResult
    public func pushImage(_ repository: String, tag: String?, config: [String: Any], content: String = UUID().uuidString,
                          architecture: String = "amd64") async throws -> Image {
        let tar = try await Self.layerTar(file: "hello.txt", content: content)
        let layer = try await Self.gzip(tar)
        let layerDigest = try await pushBlob(repository, layer)
        let configJSON: [String: Any] = [
            "architecture": architecture, "os": "linux", "config": config,
            "rootfs": ["type": "layers", "diff_ids": [Self.digest(tar)]],
        ]
        let configBytes = try Self.json(configJSON)
        let configDigest = try await pushBlob(repository, configBytes)
        let manifest = try Self.json([
            "schemaVersion": 2, "mediaType": Self.manifestType,
            "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configBytes.count],
            "layers": [["mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest, "size": layer.count]],
        ])
        let digest = try await pushManifest(repository, reference: tag ?? Self.digest(manifest), manifest, mediaType: Self.manifestType)
        return Image(digest: digest, configDigest: configDigest, layers: [layerDigest], manifest: manifest)
    }

    /// `bytes` through gzip(1) without a name or time stamp.
    static func gzip(_ bytes: [UInt8]) async throws -> [UInt8] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-gzip-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path); try? FileManager.default.removeItem(atPath: path + ".gz") }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        _ = try await runCommand(["gzip", "-n", "-f", path])
        return Array(try Data(contentsOf: URL(fileURLWithPath: path + ".gz")))
    }

    /// Pushes an index of already pushed images, one per `(image, architecture)`, tagged `tag`; its digest.
    @discardableResult
    public func pushIndex(_ repository: String, tag: String, _ entries: [(image: Image, architecture: String)]) async throws -> String {
        let index = try Self.json([
            "schemaVersion": 2, "mediaType": Self.indexType,
            "manifests": entries.map { entry -> [String: Any] in
                ["mediaType": Self.manifestType, "digest": entry.image.digest, "size": entry.image.manifest.count,
                 "platform": ["os": "linux", "architecture": entry.architecture]]
            },
        ])
        return try await pushManifest(repository, reference: tag, index, mediaType: Self.indexType)
    }

    /// A tar archive (made by tar(1)) of one file.
    static func layerTar(file: String, content: String) async throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-layer-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/root", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try content.write(toFile: "\(directory)/root/\(file)", atomically: true, encoding: .utf8)
        _ = try await runCommand(["tar", "-C", "\(directory)/root", "-cf", "\(directory)/layer.tar", file])
        return Array(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/layer.tar")))
    }

    static func json(_ object: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    public static func digest(_ bytes: [UInt8]) -> String {
        "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}
