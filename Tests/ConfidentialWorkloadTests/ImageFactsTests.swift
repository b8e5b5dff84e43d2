@testable import ConfidentialWorkload
import Foundation
import KubernetesClient
import Logging
import OCIRegistry
import Testing
import TestSupport

/// What resolved image facts change: digests locked in the Deployment, and the process pinned from the
/// image config in the policy, as both regorus engines evaluate it.
@Suite("Image facts in the Deployment and the policy")
struct ImageFactsTests {
    static let appImage = "127.0.0.1:5000/team/app:v1"
    static let sideImage = "busybox:1.36"
    static let appFacts = ImageFacts(
        digest: "sha256:" + String(repeating: "a", count: 64), manifestDigest: "sha256:" + String(repeating: "b", count: 64),
        entrypoint: ["/bin/server", "--listen"], cmd: [":8080"], env: ["PATH=/usr/bin:/bin", "MODE=production", "FOO=from-image"],
        user: "1000:1001", workingDir: "/srv", layers: ["sha256:" + String(repeating: "c", count: 64)])
    static let sideFacts = ImageFacts(
        digest: "sha256:" + String(repeating: "d", count: 64), manifestDigest: "sha256:" + String(repeating: "d", count: 64),
        entrypoint: ["/side"], cmd: ["--quiet"], env: ["PATH=/bin"])

    static let spec: JSONValue = [
        "attestation": ["enabled": false],
        "policy": ["allowedEnvVars": ["EXTRA"]],
        "template": ["spec": ["containers": [
            ["name": "app", "image": .string(appImage), "env": [["name": "FOO", "value": "bar"]], "resources": ["limits": ["memory": "64Mi"]]],
            ["name": "side", "image": .string(sideImage), "args": ["--verbose"], "resources": ["limits": ["memory": "64Mi"]]],
        ]]],
    ]

    static func build(_ spec: JSONValue = spec, facts: [String: ImageFacts] = [appImage: appFacts, sideImage: sideFacts]) throws -> DesiredState {
        var context = BuildContext()
        context.imageFacts = facts
        return try DesiredState.build(workload("web", spec: spec, namespace: PolicyEngineTests.namespace), context: context).get()
    }

    static func images(_ state: DesiredState) -> [String] {
        (state.deployment[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? []).compactMap { $0["image"]?.stringValue }
    }

    @Test func resolvedImagesRunByDigestUnlessTurnedOff() throws {
        #expect(Self.images(try Self.build()) == ["127.0.0.1:5000/team/app@" + Self.appFacts.digest, "busybox@" + Self.sideFacts.digest])
        // Only what was resolved is locked.
        #expect(Self.images(try Self.build(facts: [Self.sideImage: Self.sideFacts])) == [Self.appImage, "busybox@" + Self.sideFacts.digest])
        var spec = Self.spec
        spec["images"] = ["lockDigests": false]
        #expect(Self.images(try Self.build(spec)) == [Self.appImage, Self.sideImage])
        spec["images"] = ["lockDigests": "yes"]
        #expect(throws: SpecErrors.self) { try Self.build(spec) }
    }

    @Test func theAdviceToPinByDigestIsGivenOnlyForImagesThatDoNotRunByDigest() throws {
        let advice = { (state: DesiredState) in state.spec.warnings.filter { $0.contains("by digest") } }
        #expect(advice(try Self.build()).isEmpty)
        #expect(advice(try Self.build(facts: [Self.sideImage: Self.sideFacts])) == ["image \(Self.appImage) is not pinned by digest"])
        var spec = Self.spec
        spec["images"] = ["lockDigests": false]
        #expect(advice(try Self.build(spec)).count == 2)
    }

    @Test func imagesResolvedIsReportedOnlyWhenCwoResolvesAndCountsForReady() throws {
        let condition = { (state: DesiredState) in state.conditions.first { $0.type == ConditionType.imagesResolved } }
        #expect(condition(try Self.build()) == nil, "no resolver (offline render): no condition")
        let outcome = { (problems: [String: ImageProblem], facts: [String: ImageFacts]) throws -> ConditionInput? in
            var context = BuildContext()
            context.imageFacts = facts
            context.imageProblems = problems
            return condition(try DesiredState.build(workload("web", spec: Self.spec, namespace: "prod"), context: context).get())
        }
        var context = BuildContext()
        context.imageFacts = [Self.sideImage: Self.sideFacts]
        context.imageProblems = [Self.appImage: .resolving]
        let state = try DesiredState.build(workload("web", spec: Self.spec, namespace: "prod"), context: context).get()
        #expect(state.images == [ImageStatus(name: "side", reference: Self.sideImage, digest: Self.sideFacts.digest)])
        #expect(try Self.build().images == nil, "no resolver: no status.images")
        let resolved = try #require(try outcome([:], [Self.appImage: Self.appFacts, Self.sideImage: Self.sideFacts]))
        #expect(resolved.status == .true && resolved.reason == "Resolved" && resolved.message.contains(Self.appFacts.digest))
        let missing = try #require(try outcome([Self.appImage: ImageProblem(reason: "ImageNotFound", message: "HTTP 404")], [Self.sideImage: Self.sideFacts]))
        #expect(missing.status == .false && missing.reason == "ImageNotFound" && missing.message.hasPrefix("image \(Self.appImage): HTTP 404"))
        let pending = try #require(try outcome([Self.appImage: .resolving, Self.sideImage: .resolving], [:]))
        #expect(pending.status == .unknown && pending.reason == "Resolving" && pending.message.contains("(and 1 more)"))
    }

    @Test func theDeploymentWaitsOnlyWhereWritingItWouldRollPodsForNothing() {
        let tag = "127.0.0.1:5000/team/app:v1"
        let live = { (image: String) -> JSONValue in ["spec": ["template": ["spec": ["containers": [["name": "app", "image": .string(image)]]]]]] }
        let down = ImageProblem(reason: "RegistryUnreachable", message: "refused")
        // Not yet created: wait for the first answer, but not for an image the registry refuses.
        #expect(ImageLock.hold(problems: [tag: .resolving], lock: true, live: nil)?.contains("created once") == true)
        #expect(ImageLock.hold(problems: [tag: down], lock: true, live: nil) == nil)
        // Running by digest: keep it while there are no facts.
        #expect(ImageLock.hold(problems: [tag: down], lock: true, live: live("127.0.0.1:5000/team/app@sha256:" + String(repeating: "a", count: 64)))?
            .contains("keeps running \(tag) by digest") == true)
        #expect(ImageLock.hold(problems: [tag: .resolving], lock: true, live: live("127.0.0.1:5000/team/app@sha256:1")) != nil)
        // Running the tag (never resolved, e.g. a private registry): nothing to keep.
        #expect(ImageLock.hold(problems: [tag: down], lock: true, live: live(tag)) == nil)
        // Another repository's digest is not this image's.
        #expect(ImageLock.hold(problems: [tag: down], lock: true, live: live("127.0.0.1:5000/team/app2@sha256:1")) == nil)
        // Resolved, unlocked, or no resolver: write as usual.
        #expect(ImageLock.hold(problems: [:], lock: true, live: nil) == nil)
        #expect(ImageLock.hold(problems: [tag: .resolving], lock: false, live: nil) == nil)
        #expect(ImageLock.hold(problems: nil, lock: true, live: nil) == nil)
    }

    @Test(arguments: [
        ("localhost:5000/app:v1", "localhost:5000/app@sha256:1"), ("nginx", "nginx@sha256:1"),
        ("ghcr.io/org/app:1.0@sha256:0", "ghcr.io/org/app@sha256:1"), ("127.0.0.1:5000/app", "127.0.0.1:5000/app@sha256:1"),
    ])
    func lockedReferencesKeepTheRepositoryAsWritten(written: String, locked: String) {
        #expect(ImageLock.locked(written, digest: "sha256:1") == locked)
    }

    @Test func thePolicyNoLongerNamesWhatItNowPins() throws {
        let resolved = try Self.build()
        #expect(!resolved.policy.limits.contains { $0.contains("entrypoint") || $0.contains("imageEnvVars") })
        let unresolved = try Self.build(facts: [:])
        #expect(unresolved.policy.limits.contains { $0.contains("entrypoint is not pinned for containers without command (only their args are): app, side") })
        let message = { (state: DesiredState) in state.conditions.first { $0.type == ConditionType.policyReady }?.message ?? "" }
        #expect(!message(resolved).contains("runs as UID 0"))
        #expect(message(unresolved).contains("runs as UID 0 in / (images not resolved: app, side)"))
        var facts = Self.appFacts
        facts.user = "nobody"
        let named = try Self.build(facts: [Self.appImage: facts, Self.sideImage: Self.sideFacts])
        #expect(named.policy.limits.contains { $0.contains("assumed UID 0") && $0.contains("app (nobody)") })
    }

    /// A CreateContainer request for `name` of the built pod with this process.
    static func request(_ state: DesiredState, _ name: String, args: [String], env: [String], uid: Int, gid: Int, cwd: String,
                        base: JSONValue) throws -> AgentSimulator.Request {
        let containers = state.deployment[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? []
        let container = try #require(containers.first { $0["name"]?.stringValue == name })
        var input = PolicyEngineTests.create(container, env: env, id: String(repeating: "1", count: 64), base: base)
        input["OCI"]?["Process"]?["Args"] = .array(args.map { .string($0) })
        input["OCI"]?["Process"]?["User"] = ["UID": .number(Double(uid)), "GID": .number(Double(gid)), "AdditionalGids": [.number(Double(gid))], "Username": ""]
        input["OCI"]?["Process"]?["Cwd"] = .string(cwd)
        return .init(endpoint: "CreateContainerRequest", input: input)
    }

    @Test func theImageConfigIsPinnedExactly() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let base = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" }?.cases.first).request
        let state = try Self.build()
        let args = ["/bin/server", "--listen", ":8080"]
        // The template's FOO wins over the image's; HOSTNAME is the platform's.
        let env = ["PATH=/usr/bin:/bin", "MODE=production", "FOO=bar", "HOSTNAME=web-7d9c5f8b6-abcde"]
        let app = { (args: [String], env: [String], uid: Int, gid: Int, cwd: String) in
            try Self.request(state, "app", args: args, env: env, uid: uid, gid: gid, cwd: cwd, base: base)
        }
        let cases: [(String, AgentSimulator.Request, Bool)] = [
            ("the image's process", try app(args, env, 1000, 1001, "/srv"), true),
            ("policy.allowedEnvVars still allowed", try app(args, env + ["EXTRA=anything"], 1000, 1001, "/srv"), true),
            ("the args of the template override the cmd", try Self.request(state, "side", args: ["/side", "--verbose"], env: ["PATH=/bin"], uid: 0, gid: 0, cwd: "/", base: base), true),
            ("one arg changed", try app(["/bin/server", "--listen", ":9090"], env, 1000, 1001, "/srv"), false),
            ("an arg added", try app(args + ["--debug"], env, 1000, 1001, "/srv"), false),
            ("the image's cmd where the template's args replace it", try Self.request(state, "side", args: ["/side", "--quiet"], env: ["PATH=/bin"], uid: 0, gid: 0, cwd: "/", base: base), false),
            ("an image env value changed", try app(args, ["PATH=/usr/bin:/bin", "MODE=debug", "FOO=bar"], 1000, 1001, "/srv"), false),
            ("the image's value where the template sets its own", try app(args, ["PATH=/usr/bin:/bin", "MODE=production", "FOO=from-image"], 1000, 1001, "/srv"), false),
            ("a guessed image variable (policy.imageEnvVars) the image does not set", try app(args, env + ["LANG=C"], 1000, 1001, "/srv"), false),
            ("another user", try app(args, env, 0, 1001, "/srv"), false),
            ("another group", try app(args, env, 1000, 0, "/srv"), false),
            ("another working directory", try app(args, env, 1000, 1001, "/"), false),
        ]
        let results = try await AgentSimulator.verdicts(policy: state.policy.text, cases.map(\.1))
        for engine in AgentSimulator.engines {
            for (index, (name, _, allowed)) in cases.enumerated() {
                #expect(results[engine]?[index] == .bool(allowed), "\(engine): \(name)")
            }
        }
    }

    @Test func unresolvedImagesKeepTheGuesses() async throws {
        let suite = try #require(GenpolicyConformanceTests.suite, "shared/peer/genpolicy not found: set CWO_SHARED_DIR")
        let base = try #require(try GenpolicyConformanceTests.directories(suite).first { $0.name == "state/execprocessdeployment" }?.cases.first).request
        let state = try Self.build(facts: [Self.sideImage: Self.sideFacts])
        // Any entrypoint, any value of a guessed name, UID 0 in /: what the policy allowed before image facts.
        let env = ["PATH=/anything", "LANG=C", "FOO=bar", "HOSTNAME=web-7d9c5f8b6-abcde"]
        let results = try await AgentSimulator.verdicts(policy: state.policy.text, [
            try Self.request(state, "app", args: ["/whatever"], env: env, uid: 0, gid: 0, cwd: "/", base: base),
            try Self.request(state, "app", args: ["/whatever"], env: env + ["MODE=production"], uid: 0, gid: 0, cwd: "/", base: base),
        ])
        #expect(results == Dictionary(uniqueKeysWithValues: AgentSimulator.engines.map { ($0, [true, false]) }))
    }

    /// From the real registry to the rendered objects: facts resolved by the client, written as the file
    /// `cwo render --image-facts` reads, give the same bytes offline as the in-process build.
    @Test func registryFactsRenderOfflineAsInTheCluster() async throws {
        let registry = try await TestRegistry.start()
        var failure: (any Error)?
        do {
            let image = try await registry.pushImage("team/app", tag: "v1", config: ["Entrypoint": ["/app"], "Env": ["MODE=production"], "User": "7:7"])
            let client = try RegistryClient(options: .init(caFile: registry.caFile), logger: Logger(label: "test"))
            let reference = "\(registry.host)/team/app:v1"
            // With the layers' root hashes: the workload runs on AKS, whose node pulls the layers.
            let facts = try await client.resolve(reference, credentials: .init(username: registry.username, password: registry.password), tarfsLayers: true)
            try await client.shutdown()

            var spec = Self.spec
            spec["template"] = ["spec": ["containers": [["name": "app", "image": .string(reference), "resources": ["limits": ["memory": "64Mi"]]]]]]
            var workload = workload("web", spec: spec, namespace: "default")
            workload.metadata.uid = "00000000-0000-0000-0000-000000000000"
            workload.apiVersion = ConfidentialWorkload.apiVersion
            workload.kind = ConfidentialWorkload.kind
            let state = try Self.build(spec, facts: [reference: facts])
            #expect(Self.images(state) == ["\(registry.host)/team/app@\(image.digest)"])

            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cwo-facts-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            try JSONEncoder().encode([reference: facts]).write(to: directory.appendingPathComponent("facts.json"))
            try YAMLDocuments.dump([try JSONValue(encoding: workload)])
                .write(to: directory.appendingPathComponent("workload.yaml"), atomically: true, encoding: .utf8)
            // runCommand gives stdout and stderr together: the warnings (stderr) go.
            let output = try await runCommand([
                try cwoBinary, "render", "-f", directory.appendingPathComponent("workload.yaml").path,
                "--image-facts", directory.appendingPathComponent("facts.json").path,
            ])
            let rendered = output.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("warning: ") }.joined(separator: "\n")
            var context = BuildContext()
            context.imageFacts = [reference: facts]
            #expect(rendered == (try YAMLDocuments.dump(try DesiredState.build(workload, context: context).get().objects)))
            #expect(rendered.contains("@\(image.digest)"))

            // The CLI asks the registry itself (--resolve, with a docker config's login): the same bytes,
            // and the facts it records are the ones the offline render read.
            let auth = Data("\(registry.username):\(registry.password)".utf8).base64EncodedString()
            let config = directory.appendingPathComponent("config.json")
            try Data(#"{"auths":{"\#(registry.host)":{"auth":"\#(auth)"}}}"#.utf8).write(to: config)
            let online = ["-f", directory.appendingPathComponent("workload.yaml").path, "--resolve", "--registry-ca-file", registry.caFile, "--registry-config", config.path]
            let resolved = try await runCommand([try cwoBinary, "render"] + online)
            #expect(resolved.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("warning: ") }.joined(separator: "\n") == rendered)
            let recorded = try await runCommand([try cwoBinary, "policy"] + online + ["--output", "image-facts"])
                .split(separator: "\n").filter { !$0.hasPrefix("warning: ") }.joined(separator: "\n")
            #expect(try JSONDecoder().decode([String: ImageFacts].self, from: Data(recorded.utf8)) == [reference: facts])
            // Without the login the registry refuses, and the CLI says so and fails.
            do {
                _ = try await runCommand([try cwoBinary, "render", "-f", directory.appendingPathComponent("workload.yaml").path, "--resolve", "--registry-ca-file", registry.caFile])
                Issue.record("render --resolve without credentials succeeded")
            } catch {
                #expect("\(error)".contains("image \(reference): Unauthorized"))
            }
        } catch {
            failure = error
        }
        await registry.stop()
        if let failure { throw failure }
    }
}
