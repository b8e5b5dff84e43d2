import Foundation
import Logging
import Testing
import TestSupport
@testable import OCIRegistry

/// The registry client against the real reference registry (TLS, htpasswd auth), with images the tests
/// build and push themselves.
@Suite("Registry client")
struct RegistryClientTests {
    static var config: [String: Any] { [
        "Entrypoint": ["/bin/server", "--listen"], "Cmd": [":8080"], "Env": ["PATH=/usr/bin:/bin", "MODE=production"],
        "User": "1000:1000", "WorkingDir": "/srv",
    ] }

    /// Runs `body` with a fresh registry and a client that trusts it; stops both whatever happens.
    func withRegistry(attempts: Int = 3, tokenAuth: Bool = false, _ body: (TestRegistry, RegistryClient) async throws -> Void) async throws {
        let registry = try await TestRegistry.start(tokenAuth: tokenAuth)
        var options = RegistryClient.Options(caFile: registry.caFile)
        options.maxAttempts = attempts
        let client = try RegistryClient(options: options, logger: Logger(label: "test"))
        var failure: (any Error)?
        do { try await body(registry, client) } catch { failure = error }
        try? await client.shutdown()
        await registry.stop()
        if let failure { throw failure }
    }

    func credentials(_ registry: TestRegistry) -> RegistryClient.Credentials {
        .init(username: registry.username, password: registry.password)
    }

    @Test func aTagResolvesToItsDigestAndConfig() async throws {
        try await withRegistry { registry, client in
            let image = try await registry.pushImage("team/app", tag: "v1", config: Self.config)
            let facts = try await client.resolve("\(registry.host)/team/app:v1", credentials: credentials(registry))
            #expect(facts.digest == image.digest)
            #expect(facts.manifestDigest == image.digest)
            #expect(facts.entrypoint == ["/bin/server", "--listen"])
            #expect(facts.cmd == [":8080"])
            #expect(facts.env == ["PATH=/usr/bin:/bin", "MODE=production"])
            #expect(facts.user == "1000:1000")
            #expect(facts.workingDir == "/srv")
            #expect(facts.layers == image.layers)
            // The same image by digest, as a locked Deployment names it.
            let byDigest = try await client.resolve("\(registry.host)/team/app@\(image.digest)", credentials: credentials(registry))
            #expect(byDigest == facts)
        }
    }

    @Test func anIndexIsFollowedToLinuxAmd64() async throws {
        try await withRegistry { registry, client in
            let arm = try await registry.pushImage("multi", tag: nil, config: ["Cmd": ["arm"]], architecture: "arm64")
            let amd = try await registry.pushImage("multi", tag: nil, config: ["Cmd": ["amd"]], architecture: "amd64")
            let index = try await registry.pushIndex("multi", tag: "latest", [(arm, "arm64"), (amd, "amd64")])
            // No tag means `latest`.
            let facts = try await client.resolve("\(registry.host)/multi", credentials: credentials(registry))
            #expect(facts.digest == index, "the reference locks to the index, as a pull by tag resolves it")
            #expect(facts.manifestDigest == amd.digest)
            #expect(facts.cmd == ["amd"])
            #expect(facts.entrypoint == nil)
            #expect(facts.layers == amd.layers)

            try await registry.pushIndex("multi", tag: "arm", [(arm, "arm64")])
            await #expect { try await client.resolve("\(registry.host)/multi:arm", credentials: credentials(registry)) } throws: {
                ($0 as? RegistryError)?.reason == "ManifestUnsupported" && "\($0)".contains("linux/amd64")
            }
        }
    }

    @Test func credentialsAreRequiredAndChecked() async throws {
        try await withRegistry { registry, client in
            try await registry.pushImage("private", tag: "v1", config: Self.config)
            let reference = "\(registry.host)/private:v1"
            await #expect { try await client.resolve(reference) } throws: { ($0 as? RegistryError)?.reason == "Unauthorized" }
            let wrong = RegistryClient.Credentials(username: registry.username, password: "not-" + registry.password)
            await #expect { try await client.resolve(reference, credentials: wrong) } throws: {
                ($0 as? RegistryError)?.reason == "Unauthorized" && ($0 as? RegistryError)?.status == 401
            }
            #expect(try await client.resolve(reference, credentials: credentials(registry)).cmd == [":8080"])
        }
    }

    @Test func bearerTokensAreFetchedWithTheCredentials() async throws {
        try await withRegistry(tokenAuth: true) { registry, client in
            let image = try await registry.pushImage("team/tokened", tag: "v1", config: Self.config)
            let reference = "\(registry.host)/team/tokened:v1"
            // The registry answers 401 with a Bearer challenge; the token service refuses without credentials.
            let challenge = try await registry.request(.GET, "/v2/team/tokened/manifests/v1", authorized: false)
            #expect(challenge.status == 401)
            #expect(challenge.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer realm=") == true)
            await #expect { try await client.resolve(reference) } throws: { ($0 as? RegistryError)?.reason == "Unauthorized" }
            let facts = try await client.resolve(reference, credentials: credentials(registry))
            #expect(facts.digest == image.digest)
            #expect(facts.cmd == [":8080"])
        }
    }

    @Test func missingImagesAndUnreachableRegistriesAreSorted() async throws {
        try await withRegistry(attempts: 2) { registry, client in
            let image = try await registry.pushImage("present", tag: "v1", config: Self.config)
            for reference in ["present:v2", "absent:v1", "present@sha256:" + String(repeating: "0", count: 64)] {
                await #expect("\(reference)") { try await client.resolve("\(registry.host)/\(reference)", credentials: credentials(registry)) } throws: {
                    ($0 as? RegistryError)?.reason == "ImageNotFound"
                }
            }
            #expect(try await client.resolve("\(registry.host)/present@\(image.digest)", credentials: credentials(registry)).digest == image.digest)
            // Nothing listens on a port just released.
            await #expect { try await client.resolve("127.0.0.1:\(freePort())/present:v1") } throws: {
                ($0 as? RegistryError)?.reason == "RegistryUnreachable"
            }
            // A registry whose certificate is not trusted is not reached either.
            let untrusting = try RegistryClient(options: .init(), logger: Logger(label: "test"))
            await #expect { try await untrusting.resolve("\(registry.host)/present:v1") } throws: {
                ($0 as? RegistryError)?.reason == "RegistryUnreachable"
            }
            try await untrusting.shutdown()
        }
    }

    @Test func retriesAreBoundedAndHonourRetryAfter() async throws {
        try await withRegistry { registry, _ in
            try await registry.pushImage("team/app", tag: "v1", config: Self.config)
            // The fault proxy answers in the registry's place when told to.
            let proxy = try await FaultProxy.start(upstreamPort: registry.port, upstreamCAFile: registry.caFile)
            var options = RegistryClient.Options(caFile: proxy.caFile)
            options.maxAttempts = 3
            let client = try RegistryClient(options: options, logger: Logger(label: "test"))
            let reference = "127.0.0.1:\(proxy.port)/team/app:v1"
            let manifests: @Sendable () -> [FaultProxy.Entry] = { proxy.log.filter { $0.path.contains("/manifests/") } }

            proxy.set(.respond(status: 503, retryAfter: 0))
            await #expect { try await client.resolve(reference, credentials: credentials(registry)) } throws: {
                ($0 as? RegistryError)?.reason == "RegistryUnreachable" && ($0 as? RegistryError)?.status == 503
            }
            #expect(manifests().count == 3, "maxAttempts requests, then the error")

            // A Retry-After longer than the client waits out fails at once and says how long.
            proxy.set(.respond(status: 429, retryAfter: 60))
            await #expect { try await client.resolve(reference, credentials: credentials(registry)) } throws: {
                ($0 as? RegistryError)?.retryAfter == .seconds(60)
            }
            #expect(manifests().count == 4)

            // Answered after one refusal: the client waited the second and asked again.
            proxy.set(.respond(status: 503, retryAfter: 1))
            let resolving = Task { try await client.resolve(reference, credentials: credentials(registry)) }
            _ = try await eventually("the refused attempt") { manifests().count == 5 ? true : nil }
            proxy.set(.pass)
            #expect(try await resolving.value.cmd == [":8080"])
            // Refused; then asked again, challenged (401) and asked with the credentials.
            let later = manifests().map(\.fault).dropFirst(4)
            #expect(later.first == .respond(status: 503, retryAfter: 1) && Array(later.suffix(2)) == [.pass, .pass])

            try await client.shutdown()
            await proxy.stop()
        }
    }

    @Test func aMovedTagResolvesToTheNewDigest() async throws {
        try await withRegistry { registry, client in
            let first = try await registry.pushImage("moving", tag: "stable", config: ["Cmd": ["one"]])
            let reference = "\(registry.host)/moving:stable"
            let before = try await client.resolve(reference, credentials: credentials(registry))
            let second = try await registry.pushImage("moving", tag: "stable", config: ["Cmd": ["two"]])
            let after = try await client.resolve(reference, credentials: credentials(registry))
            #expect(first.digest != second.digest)
            #expect(before.digest == first.digest && before.cmd == ["one"])
            #expect(after.digest == second.digest && after.cmd == ["two"])
        }
    }
}

@Suite("Image references")
struct ImageReferenceTests {
    @Test(arguments: [
        ("nginx", "docker.io/library/nginx:latest", "registry-1.docker.io"),
        ("nginx:1.27", "docker.io/library/nginx:1.27", "registry-1.docker.io"),
        ("docker.io/bitnami/redis", "docker.io/bitnami/redis:latest", "registry-1.docker.io"),
        ("user/app:v1", "docker.io/user/app:v1", "registry-1.docker.io"),
        ("index.docker.io/nginx:1.27", "index.docker.io/library/nginx:1.27", "registry-1.docker.io"),
        ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000"),
        ("127.0.0.1:5000/team/app:v2", "127.0.0.1:5000/team/app:v2", "127.0.0.1:5000"),
        ("ghcr.io/org/app@sha256:" + String(repeating: "a", count: 64), "ghcr.io/org/app@sha256:" + String(repeating: "a", count: 64), "ghcr.io"),
        ("mcr.microsoft.com/oss/app:1.0@sha256:" + String(repeating: "b", count: 64),
         "mcr.microsoft.com/oss/app:1.0@sha256:" + String(repeating: "b", count: 64), "mcr.microsoft.com"),
    ])
    func defaultsAreFilledIn(written: String, qualified: String, apiHost: String) throws {
        let reference = try #require(ImageReference(written))
        #expect(reference.description == qualified)
        #expect(reference.apiHost == apiHost)
    }

    @Test(arguments: ["", "Nginx", "app@sha256:abc", "app:", "a//b", "app@md5:" + String(repeating: "a", count: 32)])
    func malformedReferencesAreRefused(written: String) {
        #expect(ImageReference(written) == nil)
    }

    @Test func theDigestIsAskedForWhenBothAreGiven() throws {
        let digest = "sha256:" + String(repeating: "c", count: 64)
        #expect(try #require(ImageReference("app:v1@\(digest)")).manifestReference == digest)
        #expect(try #require(ImageReference("app:v1")).manifestReference == "v1")
    }

    @Test func bearerChallengesAreParsed() {
        let (scheme, parameters) = RegistryClient.parseChallenge(
            #"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#)
        #expect(scheme == "Bearer")
        #expect(parameters == ["realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"])
    }
}
