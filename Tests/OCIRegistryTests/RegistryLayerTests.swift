import Foundation
import Logging
import Testing
import TestSupport
@testable import OCIRegistry

/// Layer root hashes through the real reference registry: an image of two gzip layers pushed over the
/// distribution API, resolved with its layers, each root hash compared with veritysetup's for the
/// decompressed tar with the tarfs index appended.
@Suite("Registry client: AKS layer root hashes")
struct RegistryLayerTests {
    struct Pushed {
        var reference: String
        var tars: [[UInt8]]
    }

    /// Two gzip layers (GNU tar, gzip(1)), their config's diff IDs, an OCI manifest tagged `tag`.
    static func pushTwoLayerImage(_ registry: TestRegistry, repository: String, tag: String,
                                  layerType: String = "application/vnd.oci.image.layer.v1.tar+gzip") async throws -> Pushed {
        let base = TarfsLayerTests.Tree(directories: ["etc"], files: [("etc/os-release", Array("ID=test\n".utf8)), ("bin/app", TarfsLayerTests.randomBytes(600_000, seed: 1))],
                                        symlinks: [("bin/sh", "app")])
        let top = TarfsLayerTests.Tree(files: [("srv/index.html", Array("<h1>hi</h1>\n".utf8)), ("etc/.wh.os-release", [])])
        var tars: [[UInt8]] = []
        var descriptors: [[String: Any]] = []
        for tree in [base, top] {
            let tar = try await tree.tar()
            let compressed = try await TarfsLayerTests.gzip(tar)
            let digest = try await registry.pushBlob(repository, compressed)
            tars.append(tar)
            descriptors.append(["mediaType": layerType, "digest": digest, "size": compressed.count])
        }
        let config = try JSONSerialization.data(withJSONObject: [
            "architecture": "amd64", "os": "linux", "config": ["Entrypoint": ["/bin/app"]],
            "rootfs": ["type": "layers", "diff_ids": tars.map(TestRegistry.digest)],
        ] as [String: Any], options: [.sortedKeys])
        let configDigest = try await registry.pushBlob(repository, Array(config))
        let manifest = try JSONSerialization.data(withJSONObject: [
            "schemaVersion": 2, "mediaType": TestRegistry.manifestType,
            "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": config.count],
            "layers": descriptors,
        ] as [String: Any], options: [.sortedKeys])
        try await registry.pushManifest(repository, reference: tag, Array(manifest), mediaType: TestRegistry.manifestType)
        return Pushed(reference: "\(registry.host)/\(repository):\(tag)", tars: tars)
    }

    func withRegistry(tokenAuth: Bool = false, _ body: (TestRegistry, RegistryClient) async throws -> Void) async throws {
        let registry = try await TestRegistry.start(tokenAuth: tokenAuth)
        let client = try RegistryClient(options: .init(caFile: registry.caFile), logger: Logger(label: "test"))
        var failure: (any Error)?
        do { try await body(registry, client) } catch { failure = error }
        try? await client.shutdown()
        await registry.stop()
        if let failure { throw failure }
    }

    @Test(.enabled(if: TarfsLayerTests.veritysetup != nil, TarfsLayerTests.skipMessage))
    func layerRootHashesAreVeritysetups() async throws {
        try await withRegistry { registry, client in
            let credentials = RegistryClient.Credentials(username: registry.username, password: registry.password)
            let image = try await Self.pushTwoLayerImage(registry, repository: "team/layered", tag: "v1")
            let facts = try await client.resolve(image.reference, credentials: credentials, tarfsLayers: true)
            let layers = try #require(facts.tarfsLayers)
            #expect(layers.count == 2)
            for (layer, tar) in zip(layers, image.tars) {
                #expect(layer.diffID == TestRegistry.digest(tar))
                #expect(layer.rootHash == (try await TarfsLayerTests.veritysetupRootHash(try TarfsLayerHasher.device(tar: tar))))
            }
            // Hashed once: a second resolution (a tag resync) takes the hashes from the cache.
            #expect(await client.tarfsCache.count == 2)
            #expect(try await client.resolve(image.reference, credentials: credentials, tarfsLayers: true) == facts)
            #expect(await client.tarfsCache.count == 2)

            // Guest-pull platforms do not download layers.
            let plain = try await client.resolve(image.reference, credentials: credentials)
            #expect(plain.tarfsLayers == nil)
            #expect(plain.layers == facts.layers)
        }
    }

    /// Blobs are read with the bearer token the manifest's challenge obtained.
    @Test func layersAreReadWithBearerTokens() async throws {
        try await withRegistry(tokenAuth: true) { registry, client in
            let credentials = RegistryClient.Credentials(username: registry.username, password: registry.password)
            let image = try await Self.pushTwoLayerImage(registry, repository: "team/tokens", tag: "v1")
            let facts = try await client.resolve(image.reference, credentials: credentials, tarfsLayers: true)
            #expect(facts.tarfsLayers?.map(\.diffID) == image.tars.map(TestRegistry.digest))
            #expect(facts.tarfsLayers?.map(\.rootHash) == (try image.tars.map { try TarfsLayerHasher.layer(tar: $0).rootHash }))
        }
    }

    @Test func layersTheNodeCannotMountAreRefused() async throws {
        try await withRegistry { registry, client in
            let credentials = RegistryClient.Credentials(username: registry.username, password: registry.password)
            let image = try await Self.pushTwoLayerImage(registry, repository: "team/zstd", tag: "v1",
                                                         layerType: "application/vnd.oci.image.layer.v1.tar+zstd")
            let error = await #expect(throws: RegistryError.self) {
                try await client.resolve(image.reference, credentials: credentials, tarfsLayers: true)
            }
            #expect(error?.kind == .manifestUnsupported)
            #expect(error?.message.contains("gzip layers only") == true)
            // Without layer hashes the image resolves as before.
            #expect(try await client.resolve(image.reference, credentials: credentials).layers.count == 2)
        }
    }
}
