import ConfidentialWorkload
import ControllerRuntime
import Foundation
import Logging
import OCIRegistry
import Testing
import TestSupport

/// The resolver against the real registry: one lookup per reference however many workloads ask, every
/// waiter told when the answer arrives, failures sorted, tags looked up again after their TTL and digests never.
@Suite("Image resolver")
struct ImageResolverTests {
    /// A registry with `team/app:v1` and the resolver over it; `changed` yields each workload told.
    func withResolver(ttl: Duration = .seconds(600), credentials: Bool = true,
                      _ body: (TestRegistry, ImageResolver, AsyncStream<ObjectKey>) async throws -> Void) async throws {
        let registry = try await TestRegistry.start()
        let client = try RegistryClient(options: .init(caFile: registry.caFile), logger: Logger(label: "test"))
        let login = credentials ? RegistryClient.Credentials(username: registry.username, password: registry.password) : nil
        let (changed, tell) = AsyncStream.makeStream(of: ObjectKey.self)
        let resolver = ImageResolver(lookup: { request throws(RegistryError) in try await client.resolve(request.reference, credentials: login) },
                                     ttl: ttl, concurrency: 2)
        await resolver.notify { tell.yield($0) }
        let runner = Task { await resolver.run() }
        var failure: (any Error)?
        do { try await body(registry, resolver, changed) } catch { failure = error }
        resolver.finish()
        await runner.value
        try? await client.shutdown()
        await registry.stop()
        if let failure { throw failure }
    }

    static func keys(_ count: Int) -> [ObjectKey] { (0..<count).map { ObjectKey(namespace: "team", name: "web-\($0)") } }

    /// The next `count` workloads told, sorted.
    static func told(_ count: Int, _ stream: AsyncStream<ObjectKey>) async -> [ObjectKey] {
        var keys: [ObjectKey] = []
        for await key in stream {
            keys.append(key)
            if keys.count == count { break }
        }
        return keys.sorted()
    }

    @Test func manyWorkloadsOverFewImagesCostOneLookupPerImage() async throws {
        try await withResolver { registry, resolver, changed in
            let app = try await registry.pushImage("team/app", tag: "v1", config: ["Cmd": ["app"]])
            let side = try await registry.pushImage("team/side", tag: "v1", config: ["Cmd": ["side"]])
            let references = ["\(registry.host)/team/app:v1", "\(registry.host)/team/side:v1"]
            var waiting: [ObjectKey] = []
            for key in Self.keys(50) {
                // Asking never waits for the registry: what is not known yet is absent, and the asker is told later.
                let known = await resolver.facts(for: references, waiter: key)
                waiting += Array(repeating: key, count: references.count - known.count)
            }
            #expect(waiting.count >= 2, "the first workload cannot know anything yet")
            #expect(await Self.told(waiting.count, changed) == waiting.sorted())
            #expect(await resolver.lookups == 2)
            let known = await resolver.facts(for: references, waiter: ObjectKey(namespace: "team", name: "late"))
            #expect(knownFacts(known[references[0]])?.digest == app.digest)
            #expect(knownFacts(known[references[1]])?.digest == side.digest)
            #expect(await resolver.lookups == 2, "answered from the cache")
        }
    }

    func knownFacts(_ outcome: ImageResolver.Outcome?) -> ImageFacts? { outcome?.facts }

    @Test func failuresAreSortedAndDelayOnlyTheirOwnWorkloads() async throws {
        try await withResolver { registry, resolver, changed in
            let app = try await registry.pushImage("team/app", tag: "v1", config: ["Cmd": ["app"]])
            let down = "127.0.0.1:\(freePort())/team/app:v1"
            let missing = "\(registry.host)/team/absent:v1"
            let good = "\(registry.host)/team/app:v1"
            let (a, b, c) = (ObjectKey(namespace: "t", name: "down"), ObjectKey(namespace: "t", name: "missing"), ObjectKey(namespace: "t", name: "good"))
            _ = await resolver.facts(for: [down], waiter: a)
            _ = await resolver.facts(for: [missing], waiter: b)
            _ = await resolver.facts(for: [good], waiter: c)
            #expect(await Self.told(3, changed) == [a, b, c].sorted())
            let known = await resolver.facts(for: [down, missing, good], waiter: a)
            #expect(known[down]?.failure?.reason == "RegistryUnreachable")
            #expect(known[missing]?.failure?.reason == "ImageNotFound")
            #expect(known[down]?.facts == nil)
            #expect(knownFacts(known[good])?.digest == app.digest)
        }
    }

    @Test func factsStayThroughAFailedRenewal() async throws {
        try await withResolver(ttl: .zero) { registry, resolver, changed in
            let image = try await registry.pushImage("team/app", tag: "v1", config: ["Cmd": ["app"]])
            let reference = "\(registry.host)/team/app:v1"
            let key = ObjectKey(namespace: "t", name: "w")
            _ = await resolver.facts(for: [reference], waiter: key)
            _ = await Self.told(1, changed)
            await registry.stop()
            // Stale at once: renewed against a registry that is gone.
            _ = await resolver.facts(for: [reference], waiter: key)
            _ = await Self.told(1, changed)
            let outcome = await resolver.facts(for: [reference], waiter: key)[reference]
            #expect(outcome?.facts?.digest == image.digest, "the Deployment keeps the digest it runs")
            #expect(outcome?.failure?.reason == "RegistryUnreachable")
        }
    }

        @Test func withoutCredentialsTheReasonIsUnauthorized() async throws {
        try await withResolver(credentials: false) { registry, resolver, changed in
            try await registry.pushImage("team/app", tag: "v1", config: ["Cmd": ["app"]])
            let reference = "\(registry.host)/team/app:v1"
            let key = ObjectKey(namespace: "t", name: "w")
            _ = await resolver.facts(for: [reference], waiter: key)
            _ = await Self.told(1, changed)
            #expect(await resolver.facts(for: [reference], waiter: key)[reference]?.failure?.reason == "Unauthorized")
        }
    }

    @Test func tagsAreLookedUpAgainAfterTheirTTLAndDigestsNever() async throws {
        try await withResolver(ttl: .zero) { registry, resolver, changed in
            let first = try await registry.pushImage("team/app", tag: "v1", config: ["Cmd": ["one"]])
            let tag = "\(registry.host)/team/app:v1"
            let digest = "\(registry.host)/team/app@\(first.digest)"
            let key = ObjectKey(namespace: "t", name: "w")
            _ = await resolver.facts(for: [tag, digest], waiter: key)
            _ = await Self.told(2, changed)
            #expect(await resolver.lookups == 2)
            let second = try await registry.pushImage("team/app", tag: "v1", config: ["Cmd": ["two"]])
            // The tag is stale at once (TTL zero): the old answer is served while it is looked up again.
            let stale = await resolver.facts(for: [tag, digest], waiter: key)
            #expect(knownFacts(stale[tag])?.digest == first.digest)
            _ = await Self.told(1, changed)
            let fresh = await resolver.facts(for: [digest], waiter: key)
            #expect(knownFacts(fresh[digest])?.digest == first.digest)
            #expect(await resolver.lookups == 3, "the digest was not looked up again")
            let moved = await resolver.facts(for: [tag], waiter: key)
            #expect(knownFacts(moved[tag])?.digest == second.digest)
        }
    }
}
