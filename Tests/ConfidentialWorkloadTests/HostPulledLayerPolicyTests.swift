@testable import ConfidentialWorkload
import Foundation
import KubernetesClient
import OCIRegistry
import Testing
import TestSupport

/// On AKS the node may pull an image itself and give the guest one dm-verity tar device per layer: the
/// generated policy allows that only with the root hashes cwo computed for the image's layers, pinned in
/// order, as both regorus engines evaluate it. The requests are written here from the runtime's shapes
/// (layer names hashed by coreutils), not from the builder's code.
@Suite("Host-pulled (tarfs) layers in the policy")
struct HostPulledLayerPolicyTests {
    static let diffIDs = ["sha256:" + String(repeating: "1", count: 64), "sha256:" + String(repeating: "2", count: 64)]
    static let rootHashes = [String(repeating: "a", count: 63) + "0", String(repeating: "b", count: 63) + "1"]
    static var layeredFacts: ImageFacts {
        var facts = ImageFactsTests.appFacts
        facts.tarfsLayers = zip(diffIDs, rootHashes).map { TarfsLayer(diffID: $0, rootHash: $1) }
        return facts
    }
    static let id = String(repeating: "1", count: 64)
    static let prefix = "io.katacontainers.fs-opt."

    /// Layer names, lowest first: the SHA-256 of each layer's chain ID.
    typealias Layer = (name: String, hash: String)

    /// genpolicy's test suite and its ExecProcess case as the request base, the desired state with the layered app image, and
    /// its two layers, topmost first (as the snapshotter walks from the top layer to its parents).
    static func fixture() async throws -> (suite: URL, base: JSONValue, state: DesiredState, top: Layer, bottom: Layer) {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let base = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" }?.cases.first).request
        let state = try ImageFactsTests.build(facts: [ImageFactsTests.appImage: Self.layeredFacts, ImageFactsTests.sideImage: ImageFactsTests.sideFacts])
        let names = try await Self.names()
        return (suite, base, state, (names[1], rootHashes[1]), (names[0], rootHashes[0]))
    }

    static func names() async throws -> [String] {
        let chain1 = "sha256:" + (try await sha256sum(diffIDs[0] + " " + diffIDs[1]))
        return [try await sha256sum(diffIDs[0]), try await sha256sum(chain1)]
    }

    static func layerStorage(name: String, hash: String, shared: Bool = true) -> JSONValue {
        var storage: JSONValue = [
            "driver": "blk", "driver_options": [], "source": "02/00", "fstype": "tar",
            "options": .array(["ro", prefix + "block_device=file", prefix + "is-layer", prefix + "root-hash=" + hash].map { .string($0) }),
            "mount_point": .string("/run/kata-containers/sandbox/layers/" + name), "fs_group": nil,
        ]
        if shared { storage["shared"] = false }
        return storage
    }

    /// The overlay the runtime makes the container's root, its options as the snapshotter writes them.
    static func overlayStorage(_ layers: [(name: String, hash: String)], root: String = "/run/kata-containers/shared/containers/\(id)/rootfs") -> JSONValue {
        let described = layers.map { layer in
            prefix + "layer=" + Data("\(layer.name),tar,ro,\(prefix)block_device=file,\(prefix)is-layer,\(prefix)root-hash=\(layer.hash)".utf8).base64EncodedString()
        }
        let options = [prefix + "layer-src-prefix=/var/lib/containerd/io.containerd.snapshotter.v1.tardev/layers"] + described
            + [prefix + "overlay-rw", "lowerdir=" + layers.map(\.name).joined(separator: ":")]
        return [
            "driver": "overlayfs", "driver_options": [], "source": "none", "fstype": "fuse3.kata-overlay",
            "options": .array(options.map { .string($0) }), "mount_point": .string(root),
            "fs_group": nil, "shared": false,
        ]
    }

    /// The app container's CreateContainer with the image's process, its root the overlay of `layers`
    /// (topmost first) and these storages.
    static func request(_ state: DesiredState, storages: [JSONValue], root: String = "/run/kata-containers/shared/containers/\(id)/rootfs",
                        base: JSONValue) throws -> AgentSimulator.Request {
        let env = ["PATH=/usr/bin:/bin", "MODE=production", "FOO=bar", "HOSTNAME=web-7d9c5f8b6-abcde"]
        var request = try ImageFactsTests.request(state, "app", args: ["/bin/server", "--listen", ":8080"], env: env, uid: 1000, gid: 1001, cwd: "/srv", base: base)
        request.input["OCI"]?["Root"]?["Path"] = .string(root)
        request.input["storages"] = .array(storages)
        return request
    }

    @Test func layersAreAllowedOnlyWithTheirRootHashesInOrder() async throws {
        let (_, base, state, top, bottom) = try await Self.fixture()
        let other = String(repeating: "c", count: 64)
        let layer = { (l: (name: String, hash: String)) in Self.layerStorage(name: l.name, hash: l.hash) }
        let guestPull = try ImageFactsTests.request(state, "app", args: ["/bin/server", "--listen", ":8080"],
                                                    env: ["PATH=/usr/bin:/bin", "MODE=production", "FOO=bar", "HOSTNAME=web-7d9c5f8b6-abcde"],
                                                    uid: 1000, gid: 1001, cwd: "/srv", base: base)
        let request = { (storages: [JSONValue]) in try Self.request(state, storages: storages, base: base) }
        let cases: [(String, AgentSimulator.Request, Bool)] = [
            ("the node's layers with cwo's root hashes", try request([layer(top), layer(bottom), Self.overlayStorage([top, bottom])]), true),
            ("from an agent whose Storage has no shared field", try request([Self.layerStorage(name: top.name, hash: top.hash, shared: false),
                                                                               Self.layerStorage(name: bottom.name, hash: bottom.hash, shared: false),
                                                                               Self.overlayStorage([top, bottom])]), true),
            ("the image pulled in the guest instead", guestPull, true),
            ("one layer device with another root hash", try request([layer((top.name, other)), layer(bottom), Self.overlayStorage([top, bottom])]), false),
            ("the overlay naming another root hash", try request([layer(top), layer(bottom), Self.overlayStorage([(top.name, other), bottom])]), false),
            ("both with another root hash", try request([layer((top.name, other)), layer(bottom), Self.overlayStorage([(top.name, other), bottom])]), false),
            ("a layer missing", try request([layer(top), Self.overlayStorage([top])]), false),
            ("an extra layer", try request([layer(top), layer(bottom), layer((other, other)), Self.overlayStorage([top, bottom, (other, other)])]), false),
            ("the layers reordered", try request([layer(bottom), layer(top), Self.overlayStorage([bottom, top])]), false),
            ("the layer devices reordered", try request([layer(bottom), layer(top), Self.overlayStorage([top, bottom])]), false),
            ("no overlay", try request([layer(top), layer(bottom)]), false),
            ("the overlay elsewhere than the root", try Self.request(state, storages: [layer(top), layer(bottom), Self.overlayStorage([top, bottom])],
                                                                      root: "/run/kata-containers/\(Self.id)/rootfs", base: base), false),
            ("a guest-pulled image under the host layers' root path", try Self.request(state, storages: guestPull.input["storages"]?.arrayValue ?? [], base: base), false),
        ]
        let results = try await AgentSimulator.verdicts(policy: state.policy.text, cases.map(\.1))
        for engine in AgentSimulator.engines {
            for (index, (name, _, allowed)) in cases.enumerated() {
                #expect(results[engine]?[index] == .bool(allowed), "\(engine): \(name)")
            }
        }
    }

    /// `cwo policy explain` names the storage checks when a layer's root hash is not cwo's, and nothing
    /// when the layers are right.
    @Test func explainNamesTheStorageChecks() async throws {
        let (suite, base, state, top, bottom) = try await Self.fixture()
        let explain = { (storages: [JSONValue]) in
            try await AgentSimulator.failedChecks(policy: state.policy.text, endpoint: "CreateContainerRequest",
                                                  input: try Self.request(state, storages: storages, base: base).input,
                                                  protos: suite.appendingPathComponent("protos").path)
        }
        let right = try await explain([Self.layerStorage(name: top.name, hash: top.hash), Self.layerStorage(name: bottom.name, hash: bottom.hash),
                                       Self.overlayStorage([top, bottom])])
        let changed = try await explain([Self.layerStorage(name: top.name, hash: String(repeating: "c", count: 64)),
                                         Self.layerStorage(name: bottom.name, hash: bottom.hash), Self.overlayStorage([top, bottom])])
        for engine in AgentSimulator.engines {
            #expect(right[engine] == [], "\(engine)")
            #expect(changed[engine]?.count == 2 && changed[engine]?.allSatisfy { $0.contains("storages") } == true, "\(engine): \(changed[engine] ?? [])")
        }
    }

    /// Without layer hashes (guest-pull platforms, or cwo run without --hash-image-layers) the policy is
    /// today's: host-pulled layers are denied, and PolicyReady names the containers.
    @Test func withoutLayerHashesHostPulledLayersAreDenied() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let base = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" }?.cases.first).request
        let state = try ImageFactsTests.build()
        let names = try await Self.names()
        let top = (name: names[1], hash: Self.rootHashes[1])
        let bottom = (name: names[0], hash: Self.rootHashes[0])
        let request = try Self.request(state, storages: [Self.layerStorage(name: top.name, hash: top.hash), Self.layerStorage(name: bottom.name, hash: bottom.hash),
                                                         Self.overlayStorage([top, bottom])], base: base)
        let results = try await AgentSimulator.verdicts(policy: state.policy.text, [request])
        #expect(results == Dictionary(uniqueKeysWithValues: AgentSimulator.engines.map { ($0, [false]) }))
        let message = { (state: DesiredState) in state.conditions.first { $0.type == ConditionType.policyReady }?.message ?? "" }
        #expect(message(state).contains("must be pulled in the guest: the pause container, app, side"))
        let layered = try ImageFactsTests.build(facts: [ImageFactsTests.appImage: Self.layeredFacts, ImageFactsTests.sideImage: ImageFactsTests.sideFacts])
        #expect(message(layered).contains("must be pulled in the guest: the pause container, side"))
    }

    /// The node pulls its pause image too: with facts for it, the pause container's layer is pinned like
    /// the template's (genpolicy's recorded pause request, its image moved to host-pulled layers).
    @Test func thePauseContainersLayersArePinnedWhenTheFactsNameThem() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let directory = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/createcontainer" })
        let documents = try YAMLDocuments.parse(String(contentsOf: suite.appendingPathComponent("testdata/state/createcontainer/pod.yaml"), encoding: .utf8))
        let pod = try #require(documents.first { ["Pod", "Deployment"].contains($0["kind"]?.stringValue) })
        let pauseFacts = ImageFacts(digest: "sha256:" + String(repeating: "9", count: 64), manifestDigest: "sha256:" + String(repeating: "9", count: 64),
                                    tarfsLayers: [TarfsLayer(diffID: Self.diffIDs[0], rootHash: Self.rootHashes[0])])
        let pinned = GenpolicyConformanceTests.policy(pod, cases: directory.cases, images: [HostPulledLayers.aksPauseImage: pauseFacts])
        var request = try #require(directory.cases.first).request
        #expect(request[path: ["OCI", "Annotations", "io.kubernetes.cri.container-type"]] == "sandbox")
        let bundle = try #require(request[path: ["OCI", "Root", "Path"]]?.stringValue?.split(separator: "/").dropLast().last)
        let root = "/run/kata-containers/shared/containers/\(bundle)/rootfs"
        request["OCI"]?["Root"]?["Path"] = .string(root)
        let layer = (name: try await sha256sum(Self.diffIDs[0]), hash: Self.rootHashes[0])
        let storages = { (hash: String) -> JSONValue in
            [Self.layerStorage(name: layer.name, hash: hash), Self.overlayStorage([(layer.name, hash)], root: root)]
        }
        var changed = request
        request["storages"] = storages(layer.hash)
        changed["storages"] = storages(String(repeating: "c", count: 64))
        let protos = suite.appendingPathComponent("protos").path
        let create = { (input: JSONValue) in [AgentSimulator.Request(endpoint: "CreateContainerRequest", input: input)] }
        let withFacts = try await AgentSimulator.run(policy: pinned.text, sequences: [create(request), create(changed)], protos: protos)
        let withoutFacts = try await AgentSimulator.run(policy: directory.policy.text, sequences: [create(request)], protos: protos)
        for engine in AgentSimulator.engines {
            #expect(withFacts[engine]?.map(\.first) == [.bool(true), .bool(false)], "\(engine): the pause layer with cwo's root hash, then another")
            #expect(withoutFacts[engine]?.map(\.first) == [.bool(false)], "\(engine): no facts for the pause image")
        }
    }

    /// The facts file `cwo render --image-facts` reads: written before layer hashes existed, it still
    /// decodes; with them, they round-trip, and without them nothing new is written.
    @Test func imageFactsFilesStayCompatible() throws {
        let old = #"{"digest":"sha256:1","manifestDigest":"sha256:1","env":[],"user":"","workingDir":"","layers":["sha256:2"]}"#
        let decoded = try JSONDecoder().decode(ImageFacts.self, from: Data(old.utf8))
        #expect(decoded.tarfsLayers == nil)
        #expect(decoded.layers == ["sha256:2"])
        #expect(!String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self).contains("tarfsLayers"))
        let layered = Self.layeredFacts
        #expect(try JSONDecoder().decode(ImageFacts.self, from: JSONEncoder().encode(layered)) == layered)
    }
}
